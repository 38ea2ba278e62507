"""Bad input as an attacker or a careless hand sends it: a clear 4xx, never a 500.

Ids no store can hold, absurd paging and dates, places and dates that cannot be true,
oversized or direction-reversing text, stale pages, and uploads that must not pile up.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import time
from pathlib import Path

import pytest

from layers.query import FeatureQuery
from tests.support import csrf_token, login
from tests.test_manage import shapefile_bytes, upload
from tests.test_public import report

HUGE_IDS = ("99999999999999999999", str(2**63), "-1", "abc")
ARGUMENT = re.compile(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>")
VALUES = {"slug": "hotspots", "layer_slug": "hotspots", "map_slug": "default", "token": "x" * 32,
          "code": "PA-ABCDEFGH", "filename": "x"}


@pytest.fixture
def admin(client):
    return login(client, "admin")


@pytest.fixture
def first(app):
    store = app.extensions["gis_store"]
    return store.query_features("hotspots", FeatureQuery(
        equals={"status": ("reported",)}, limit=1)).features[0]


def id_routes(app) -> list[tuple[str, str]]:
    """(method, URL pattern with {id}) of every route that takes an integer id."""
    out = []
    for rule in app.url_map.iter_rules():
        if "int" not in [c for c, _ in ARGUMENT.findall(rule.rule)]:
            continue
        pattern = ARGUMENT.sub(lambda m: "{id}" if m.group(1) == "int" else VALUES.get(
            m.group(2), "x"), rule.rule)
        out += [(method, pattern) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return out


def test_ids_no_store_can_hold_are_not_found_on_every_route(app, admin):
    routes = id_routes(app)
    assert len(routes) >= 8  # detail, status, inspections, edit, photo, API, public, restore
    token = csrf_token(admin, "/layers/")
    public = app.test_client()  # the anonymous route answers strangers the same way
    for method, pattern in routes:
        for bad in HUGE_IDS:
            path = pattern.format(id=bad)
            for client in (admin, public) if path.startswith("/public/") else (admin,):
                response = client.open(path, method=method, data={"csrf_token": token})
                assert response.status_code == 404, (method, path, response.status_code)
                if path.startswith(("/api/", "/public/api/")):
                    assert response.is_json and response.json["status"] == 404, path


def test_audit_paging_and_dates_out_of_range_are_clear(admin):
    offset = admin.get("/admin/audit?offset=" + "9" * 40)
    assert offset.status_code == 400 and "offset" in offset.get_data(as_text=True)
    assert admin.get("/admin/audit?offset=-5").status_code == 400
    for path in ("/admin/audit?to=9999-12-31", "/admin/audit.csv?to=9999-12-31",
                 "/admin/audit?from=0001-01-01&to=9999-12-31"):
        response = admin.get(path)
        assert response.status_code == 200, path
    everything = admin.get("/admin/audit.csv?to=9999-12-31").get_data(as_text=True)
    assert "layer.create" in everything  # up to the last day: every entry
    future = admin.get("/admin/audit.csv?from=9999-12-31").get_data(as_text=True)
    assert "layer.create" not in future
    assert admin.get("/admin/audit?to=10000-01-01").status_code == 400


def test_public_api_errors_are_json(app, client):
    store = app.extensions["gis_store"]
    internal = store.query_features("collection-points", FeatureQuery(limit=1)).features[0]
    for path in ("/public/api/default/layers/collection-points/features",
                 f"/public/api/default/layers/collection-points/features/{internal.id}",
                 "/public/api/nope/layers/hotspots/features",
                 "/public/api/default/layers/nope/features",
                 "/public/api/default/layers/hotspots/features?bbox=1,2"):
        response = client.get(path)
        assert response.status_code in (400, 404) and response.is_json, path
        assert response.json["error"], path


def test_nul_characters_are_refused_at_the_door(app, client, admin):
    """No text holds NUL; PostgreSQL cannot even store one, so it answered 500 there."""
    stranger = app.test_client()
    for path in ("/public/report/%00", "/embed/%00", "/public?x=%00",
                 "/public/api/%00/layers/hotspots/features"):
        assert stranger.get(path).status_code == 400, path
    for path in ("/admin/audit?user=%00", "/admin/audit?layer=%00", "/hotspots/%00/1",
                 "/layers/%00/versions", "/api/layers/%00"):
        assert admin.get(path).status_code == 400, path
    api = admin.get("/api/layers/hotspots/features?ward=%00")
    assert api.status_code == 400 and api.is_json
    store = app.extensions["gis_store"]
    before = store.count_features("hotspots")
    assert report(stranger, contact="0912\x00345").status_code == 400
    assert store.count_features("hotspots") == before


@pytest.mark.parametrize(("lat", "lon"), [("0", "0"), ("10.0", "106.0"), ("11.52", "-106.85")])
def test_citizen_reports_far_outside_the_city_are_refused(app, client, lat, lon):
    store = app.extensions["gis_store"]
    before = store.count_features("hotspots")
    response = report(client, lat=lat, lon=lon)
    assert response.status_code == 400
    assert store.count_features("hotspots") == before


def test_hotspots_added_far_outside_the_city_are_refused(app, client):
    inspector = login(client, "inspector")
    store = app.extensions["gis_store"]
    before = store.count_features("hotspots")
    response = inspector.post("/hotspots/hotspots/new", data={
        "csrf_token": csrf_token(inspector, "/hotspots/hotspots/new"), "name": "Ở đảo Null",
        "category": "air", "severity": "1", "lat": "0", "lon": "0"})
    assert response.status_code == 400
    assert store.count_features("hotspots") == before


def inspect(client, feature, day: str):
    return client.post(f"/hotspots/hotspots/{feature.id}/inspections", data={
        "csrf_token": csrf_token(client, f"/hotspots/hotspots/{feature.id}"),
        "inspected_on": day, "finding": "Còn rác"}, content_type="multipart/form-data")


def test_inspections_dated_in_the_future_or_long_ago_are_refused(app, client, first):
    inspector = login(client, "inspector")
    store = app.extensions["gis_store"]
    later = (dt.date.today() + dt.timedelta(days=3)).isoformat()
    for day in ("9999-12-31", later, "1900-01-01", "0001-01-01"):
        response = inspect(inspector, first, day)
        assert response.status_code == 400, day
        assert "01/01/1990" in response.get_data(as_text=True)
    assert store.list_inspections("hotspots", first.id) == []
    assert inspect(inspector, first, dt.date.today().isoformat()).status_code == 302


def new_hotspot(client, **fields):
    data = {"csrf_token": csrf_token(client, "/hotspots/hotspots/new"), "name": "Bãi rác",
            "category": "illegal_dumping", "severity": "2", "lat": "11.52", "lon": "106.86"}
    return client.post("/hotspots/hotspots/new", data={**data, **fields})


def test_oversized_names_and_titles_are_refused_with_a_clear_message(app, client):
    planner = login(client, "planner")
    store = app.extensions["gis_store"]
    before = store.count_features("hotspots")
    long_name = new_hotspot(planner, name="Bãi rác " * 50)  # 400 characters
    assert long_name.status_code == 400
    assert "300" in long_name.get_data(as_text=True)
    huge = new_hotspot(planner, name="x" * 2_000_000)  # 2 MB
    assert huge.status_code in (400, 413)
    assert store.count_features("hotspots") == before
    token = csrf_token(planner, "/layers/hotspots/versions")
    long_title = planner.post("/layers/hotspots/settings", data={
        "csrf_token": token, "title": "Tiêu đề " * 40})
    assert long_title.status_code == 400 and "200" in long_title.get_data(as_text=True)
    huge_title = planner.post("/layers/hotspots/settings", data={
        "csrf_token": token, "title": "x" * 1_000_000})
    assert huge_title.status_code in (400, 413)
    assert len(store.get_layer("hotspots").title) < 200
    long_report = report(app.test_client(), description="x" * 2001)
    assert long_report.status_code == 400 and "2000" in long_report.get_data(as_text=True)


def test_an_oversized_column_name_is_refused_at_the_preview(app, client):
    planner = login(client, "planner")
    column = "Tên " + "x" * 300_000
    data = json.dumps({"type": "FeatureCollection", "features": [{
        "type": "Feature", "geometry": {"type": "Point", "coordinates": [106.85, 11.52]},
        "properties": {column: "a"}}]}).encode()
    refused = planner.get(upload(planner, data, "diem.geojson").headers["Location"])
    assert refused.status_code == 400 and "200" in refused.get_data(as_text=True)
    assert len(refused.get_data()) < 20_000  # the column is not echoed back whole
    assert pending(app) == []


def test_direction_overrides_are_removed_from_text(app, client):
    planner = login(client, "planner")
    store = app.extensions["gis_store"]
    added = new_hotspot(planner, name="Bãi rác \u202egnp.exe", description="\u2066x\u2069y")
    assert added.status_code == 302
    feature_id = int(added.headers["Location"].rsplit("/", 1)[1])
    props = store.get_feature("hotspots", feature_id).properties
    assert props["name"] == "Bãi rác gnp.exe" and props["description"] == "xy"
    only_marks = new_hotspot(planner, name="\u202e\u200f")
    assert only_marks.status_code == 400  # nothing is left of the name: it is missing
    planner.post("/layers/hotspots/settings", data={
        "csrf_token": csrf_token(planner, "/layers/hotspots/versions"),
        "title": "Điểm nóng\u202e 2024"})
    assert store.get_layer("hotspots").title == "Điểm nóng 2024"


def test_a_hotspot_moved_far_outside_the_city_is_refused(app, client, first):
    inspector = login(client, "inspector")
    url = f"/hotspots/hotspots/{first.id}/edit"
    form = {**{k: str(v) for k, v in first.properties.items()}, "lon": "0", "lat": "0",
            "version": str(first.version), "csrf_token": csrf_token(inspector, url)}
    assert inspector.post(url, data=form).status_code == 400
    store = app.extensions["gis_store"]
    assert store.get_feature("hotspots", first.id).geometry.equals(first.geometry)
    kept = {**form, "lon": str(first.geometry.x), "lat": str(first.geometry.y)}
    assert inspector.post(url, data=kept).status_code == 302  # not moved: saved as it is


def test_a_stale_status_move_is_a_conflict(app, first):
    one, two = (login(app.test_client(), "inspector") for _ in range(2))
    url = f"/hotspots/hotspots/{first.id}/status"
    forms = [{"csrf_token": csrf_token(c, f"/hotspots/hotspots/{first.id}"), "to": "verified",
              "note": "Đã xác minh", "version": first.version} for c in (one, two)]
    assert one.post(url, data=forms[0]).status_code == 302
    stale = two.post(url, data=forms[1])  # the same move, from the page before the first
    assert stale.status_code == 409
    page = stale.get_data(as_text=True)
    assert "Đã xác minh" in page  # the hotspot as it is now
    store = app.extensions["gis_store"]
    assert store.get_feature("hotspots", first.id).version == first.version + 1


# -- uploads ------------------------------------------------------------------------------
def pending(app) -> list[Path]:
    root = Path(app.config["UPLOAD_DIR"])
    return sorted(p for p in root.iterdir() if p.is_dir()) if root.exists() else []


def test_an_unreadable_upload_is_removed_when_refused(app, client):
    planner = login(client, "planner")
    response = upload(planner, b"PK\x03\x04 not really a zip", "hong.zip")
    refused = planner.get(response.headers["Location"])
    assert refused.status_code == 400
    assert pending(app) == []


def test_an_upload_name_loses_its_direction_overrides(client, tmp_path):
    planner = login(client, "planner")
    token_url = upload(planner, shapefile_bytes(tmp_path), "diem_nong\u202egpj.zip").headers[
        "Location"]
    page = planner.get(token_url).get_data(as_text=True)
    assert "diem_nonggpj.zip" in page and "\u202e" not in page


def test_a_discarded_upload_is_removed(app, client, tmp_path):
    planner = login(client, "planner")
    token_url = upload(planner, shapefile_bytes(tmp_path)).headers["Location"]
    page = planner.get(token_url).get_data(as_text=True)
    assert 'id="discard"' in page and len(pending(app)) == 1
    done = planner.post(token_url + "/discard", data={"csrf_token": csrf_token(planner,
                                                                              token_url)})
    assert done.status_code == 302 and done.headers["Location"].endswith("/layers/")
    assert pending(app) == [] and planner.get(token_url).status_code == 400
    other = login(app.test_client(), "admin")  # someone else's upload is not theirs to drop
    token_url = upload(planner, shapefile_bytes(tmp_path)).headers["Location"]
    refused = other.post(token_url + "/discard", data={"csrf_token": csrf_token(other,
                                                                               "/layers/")})
    assert refused.status_code == 400 and len(pending(app)) == 1


def age(folder: Path, seconds: float) -> None:
    old = time.time() - seconds
    for path in [*folder.iterdir(), folder]:
        os.utime(path, (old, old))


def test_abandoned_uploads_expire(app, client, tmp_path):
    planner = login(client, "planner")
    first_url = upload(planner, shapefile_bytes(tmp_path)).headers["Location"]
    [abandoned] = pending(app)
    age(abandoned, app.config["UPLOAD_MAX_AGE"] + 60)
    (Path(app.config["UPLOAD_DIR"]) / "keep-me.txt").write_text("not an upload")
    upload(planner, shapefile_bytes(tmp_path))  # each new upload sweeps the old ones
    assert abandoned not in pending(app) and len(pending(app)) == 1
    assert planner.get(first_url).status_code == 400
    assert (Path(app.config["UPLOAD_DIR"]) / "keep-me.txt").exists()
    runner = app.test_cli_runner()
    kept = runner.invoke(args=["uploads", "clean"])
    assert kept.exit_code == 0 and "Removed 0" in kept.output and len(pending(app)) == 1
    cleaned = runner.invoke(args=["uploads", "clean", "--max-age", "0"])
    assert cleaned.exit_code == 0 and "Removed 1" in cleaned.output and pending(app) == []
