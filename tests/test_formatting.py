"""What people read on pages: local times dd/mm/yyyy HH:mm, field labels with old → new
values, years as written, and DBF text columns kept as text."""

from __future__ import annotations

import datetime as dt
import io
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import geopandas as gpd
import pytest
from shapely.geometry import Point

from layers.query import FeatureQuery
from tests.browser_support import log_in, open_popup_at, settle
from tests.ingest_files import tm3, write_shapefile, zip_files
from tests.support import csrf_token, login, map_config

ISO_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}")


def local(iso: str) -> str:
    """How a stored UTC time must read in Đồng Xoài."""
    moment = dt.datetime.fromisoformat(iso).astimezone(ZoneInfo("Asia/Ho_Chi_Minh"))
    return moment.strftime("%d/%m/%Y %H:%M")


def visible(html: str) -> str:
    """The page's text and attributes other than machine-readable ``datetime=``."""
    return re.sub(r'datetime="[^"]*"', "", html)


@pytest.fixture
def hotspot(app):
    store = app.extensions["gis_store"]
    query = FeatureQuery(equals={"status": ("reported",), "severity": (1,)}, limit=1)
    return store.query_features("hotspots", query).features[0]


def edit_severity(client, feature, severity: str, ward: str | None = None) -> None:
    path = f"/hotspots/hotspots/{feature.id}/edit"
    page = client.get(path).get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    props = feature.properties
    form = {"lat": feature.geometry.y, "lon": feature.geometry.x, "name": props["name"],
            "category": props["category"], "severity": severity,
            "reported_at": props["reported_at"], "ward": ward or props["ward"], "version": version,
            "csrf_token": csrf_token(client, f"/hotspots/hotspots/{feature.id}")}
    assert client.post(path, data=form).status_code == 302


def test_timeline_shows_local_times_and_labelled_changes(app, inspector, hotspot):
    edit_severity(inspector, hotspot, "3")
    html = inspector.get(f"/hotspots/hotspots/{hotspot.id}").get_data(as_text=True)
    timeline = html[html.index('id="timeline"'):]
    assert "Mức độ" in timeline and "Nhẹ → Nghiêm trọng" in timeline
    assert "severity" not in visible(timeline).replace('title="severity"', "")
    edited = app.extensions["gis_store"].get_feature("hotspots", hotspot.id)
    assert local(edited.updated_at) in html
    assert not ISO_TIME.search(visible(html))
    english = inspector.get(f"/hotspots/hotspots/{hotspot.id}?lang=en").get_data(as_text=True)
    assert "Severity" in english and "Low → High" in english


def test_audit_log_shows_local_times_and_labelled_changes(app, client, hotspot):
    admin = login(client, "admin")
    wards = {str(w.properties["code"]): w.properties["name"] for w in app.extensions[
        "gis_store"].query_features("wards", FeatureQuery()).features}
    other = next(code for code in wards if code != str(hotspot.properties["ward"]))
    edit_severity(admin, hotspot, "2", other)
    html = admin.get("/admin/audit?layer=hotspots").get_data(as_text=True)
    assert "Mức độ" in html and "Nhẹ → Trung bình" in html
    old = wards[str(hotspot.properties["ward"])]
    assert f"Phường/xã</span>: {old} → {wards[other]}" in html  # ward names, not codes
    row = next(r for r in html.split("<tr>") if "feature.update" in r)
    assert "&#34;" not in row and "severity" not in visible(row).replace('title="severity"', "")
    assert "sửa đối tượng" in row  # the action by its name, not feature.update
    entries, _ = app.extensions["gis_store"].list_audit(layer="hotspots", limit=1)
    assert local(entries[0].at) in html
    assert not ISO_TIME.search(visible(html))
    exported = admin.get("/admin/audit.csv?layer=hotspots").get_data(as_text=True)
    assert entries[0].at in exported  # the export keeps ISO for machines


def test_versions_page_shows_local_times(app, client):
    planner = login(client, "planner")
    html = planner.get("/layers/hotspots/versions").get_data(as_text=True)
    versions = app.extensions["gis_store"].list_versions("hotspots")
    assert local(versions[0].created_at) in html
    assert not ISO_TIME.search(visible(html))


def test_local_time_crosses_midnight():
    from gis_service.formatting import when

    assert when("2026-12-01T18:38:00+00:00") == "02/12/2026 01:38"
    assert when("2026-12-01") == "01/12/2026"
    assert when("not a time") == "not a time"


def test_a_founding_year_is_a_year(inspector):
    """The map shows since_year by its type; gis_map.js writes years as they are."""
    html = inspector.get("/map").get_data(as_text=True)
    fields = [f for layer in map_config(html)["layers"] for f in layer["fields"]
              if f["name"] == "since_year"]
    assert fields and {f["type"] for f in fields} == {"year"}
    script = Path(__file__).resolve().parents[1] / "gis_service" / "static" / "js" / "gis_map.js"
    assert "field.type === 'year'" in script.read_text(encoding="utf-8")


@pytest.mark.browser
def test_a_founding_year_reads_as_written_in_the_popup(page, server):
    feature = server.first("model-communities")
    year = feature.properties["since_year"]
    log_in(page, server)
    settle(page)
    open_popup_at(page, feature.geometry.y, feature.geometry.x)
    rows = dict(page.evaluate(
        """() => [...document.querySelectorAll('.leaflet-popup .gis-popup tr')]
            .map((r) => [r.cells[0].textContent, r.cells[1].textContent])"""
    ))
    assert rows["Năm thành lập"] == str(year)  # not "2.019"


def codes_shapefile(tmp_path: Path) -> bytes:
    """A ward-code column declared as text (DBF type C) and a founding year (type N)."""
    frame = gpd.GeoDataFrame({
        "MAXA": ["25195", "25210"],
        "TEN": ["Tân Phú", "Tân Bình"],
        "NAM_TL": [2020, 1998],
    }, geometry=[Point(*tm3(106.85, 11.52)), Point(*tm3(106.86, 11.53))], crs=9212)
    files = write_shapefile(tmp_path / "src", "ma_xa", frame)
    return zip_files(tmp_path / "ma_xa.zip", files).read_bytes()


def test_dbf_text_columns_stay_text_and_years_are_years(app, client, tmp_path):
    planner = login(client, "planner")
    upload = planner.post("/layers/upload", data={
        "file": (io.BytesIO(codes_shapefile(tmp_path)), "ma_xa.zip"),
        "csrf_token": csrf_token(planner, "/layers/")}, content_type="multipart/form-data")
    token_url = upload.headers["Location"]
    preview = planner.get(token_url).get_data(as_text=True)
    assert "25195" in preview and "25.195" not in preview and "2.020" not in preview
    done = planner.post(token_url, data={"csrf_token": csrf_token(planner, token_url),
                                         "kind": "generic", "title": "Mã xã", "slug": "ma-xa"})
    assert done.status_code == 302, done.get_data(as_text=True)
    layer = app.extensions["gis_store"].get_layer("ma-xa")
    assert {f.name: f.type for f in layer.fields} == {
        "maxa": "text", "ten": "text", "nam_tl": "year"}
    api = planner.get("/api/layers/ma-xa/features").get_json()
    assert sorted(f["properties"]["maxa"] for f in api["features"]) == ["25195", "25210"]
