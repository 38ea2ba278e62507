"""The public map, its data and citizen reports: anonymous, read-only, public data only."""

from __future__ import annotations

import json
import re

import pytest
from shapely.geometry import Point

from layers.query import FeatureQuery
from layers.store import PublicMap
from tests.support import csrf_token, login, map_config


@pytest.fixture
def published(app):
    """Hotspots and wards public, description internal, and a public map "ban-do"."""
    store = app.extensions["gis_store"]
    store.update_layer("hotspots", public=True, private_fields=["description"])
    store.update_layer("wards", public=True)
    store.save_public_map(PublicMap("ban-do", "Bản đồ môi trường", ("wards", "hotspots",
                                                                    "collection-points")))
    return store


def api(client, path="", **params):
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return client.get(f"/public/api/ban-do/layers/hotspots/features{path}?{query}")


def test_public_data_is_public_layers_fields_and_verified_hotspots(client, published):
    data = api(client).json
    statuses = {f["properties"]["status"] for f in data["features"]}
    assert statuses == {"verified", "in_progress", "resolved"}
    expected = published.query_features("hotspots", FeatureQuery(
        equals={"status": ("verified", "in_progress", "resolved")})).matched
    assert data["numberMatched"] == expected
    assert all("description" not in f["properties"] and "meta" not in f
               for f in data["features"])
    assert client.get("/public/api/ban-do/layers/collection-points/features").status_code == 404
    assert client.get("/public/api/ban-do/layers/model-communities/features").status_code == 404
    assert client.get("/public/api/nope/layers/hotspots/features").status_code == 404
    reported = published.query_features("hotspots", FeatureQuery(
        equals={"status": ("reported",)}, limit=1)).features[0]
    assert api(client, f"/{reported.id}").status_code == 404
    shown = data["features"][0]
    one = api(client, f"/{shown['id']}").json
    assert one["properties"] == shown["properties"]


def test_public_data_is_cacheable(client, published):
    first = api(client, limit=5)
    assert first.headers["Cache-Control"] == "public, max-age=60"
    etag = first.headers["ETag"]
    again = client.get("/public/api/ban-do/layers/hotspots/features?limit=5",
                       headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b""
    feature = api(client, limit=1).json["features"][0]
    published.update_feature("hotspots", feature["id"], expected_version=published.get_feature(
        "hotspots", feature["id"]).version, properties={
            **published.get_feature("hotspots", feature["id"]).properties, "severity": 3,
            "name": "Đổi tên"})
    changed = client.get("/public/api/ban-do/layers/hotspots/features?limit=5",
                         headers={"If-None-Match": etag})
    assert changed.status_code == 200 and changed.headers["ETag"] != etag


def test_public_pages_need_no_login_and_can_be_framed_only_by_the_city(app, client, published):
    page = client.get("/embed/ban-do")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert "Bản đồ môi trường" in html and "/public/api/ban-do/layers/hotspots/features" in html
    assert "collection-points" not in html  # internal layer left out although configured
    assert '"description"' not in html  # internal field not even in the config
    assert "frame-ancestors 'self'" in page.headers["Content-Security-Policy"]
    assert "X-Frame-Options" not in page.headers
    app.config["EMBED_FRAME_ANCESTORS"] = "https://dongxoai.example.vn"
    framed = client.get("/public")
    assert "frame-ancestors https://dongxoai.example.vn" in framed.headers[
        "Content-Security-Policy"]
    login_page = client.get("/login")
    assert "frame-ancestors 'none'" in login_page.headers["Content-Security-Policy"]
    assert login_page.headers["X-Frame-Options"] == "DENY"
    assert client.get("/embed/nope").status_code == 404


def report(client, **fields):
    token = csrf_token(client, "/public/report")
    data = {"csrf_token": token, "lat": "11.53", "lon": "106.88", "category": "odour",
            "description": "Mùi hôi từ cống thoát nước", "contact": "0912 345 678"}
    data.update(fields)
    return client.post("/public/report", data=data, content_type="multipart/form-data")


def test_citizen_report_is_queued_for_inspectors_and_private(app, client, published):
    response = report(client)
    assert response.status_code == 302
    code = response.headers["Location"].rsplit("/", 1)[1]
    assert re.fullmatch(r"PA-[A-Z2-9]{8}", code)
    status_page = client.get(f"/public/report/{code}").get_data(as_text=True)
    assert code in status_page and "Tiếp nhận" in status_page
    assert "0912 345 678" not in status_page
    layer, feature_id = published.find_report(code)
    feature = published.get_feature(layer, feature_id)
    assert feature.properties["status"] == "reported"
    assert feature.properties["source"] == "citizen" and feature.properties["ward"]
    assert "0912" not in str(feature.properties)
    assert api(client, f"/{feature_id}").status_code == 404  # not public until verified
    inspector = login(app.test_client(), "inspector")
    detail = inspector.get(f"/hotspots/hotspots/{feature_id}").get_data(as_text=True)
    assert "Mùi hôi từ cống thoát nước" in detail
    assert code in detail and "0912 345 678" in detail  # inspectors can call back
    assert client.get("/public/report/PA-NOTACODE").status_code == 404


def test_report_form_refuses_bad_input_and_bots(app, client, published):
    before = published.count_features("hotspots")
    assert report(client, lat="", lon="").status_code == 400
    assert report(client, category="ufo").status_code == 400
    assert report(client, description="  ").status_code == 400
    bot = report(client, website="http://spam.example")
    assert bot.status_code == 200 and "PA-" not in bot.get_data(as_text=True)
    no_csrf = client.post("/public/report", data={"lat": "11.5", "lon": "106.8",
                                                  "category": "air", "description": "x"})
    assert no_csrf.status_code == 400
    assert published.count_features("hotspots") == before


def test_reports_are_rate_limited_per_client(client, published):
    for _ in range(5):
        assert report(client).status_code == 302
    limited = report(client)
    assert limited.status_code == 429 and limited.headers["Retry-After"]


def test_internal_layers_stay_off_the_default_public_map(client, published):
    html = client.get("/public").get_data(as_text=True)
    assert "/public/api/default/layers/hotspots/features" in html
    assert "model-communities" not in html
    assert client.get("/public/api/default/layers/model-communities/features").status_code == 404


def test_layer_settings_page_controls_what_is_public(app, client):
    store = app.extensions["gis_store"]
    login(client, "planner")
    token = csrf_token(client, "/layers/places-of-worship/versions")
    response = client.post("/layers/places-of-worship/settings", data={
        "csrf_token": token, "title": "Cơ sở tôn giáo", "public": "on",
        "private_in_model": "on"})
    assert response.status_code == 302
    layer = store.get_layer("places-of-worship")
    assert layer.public and [f.name for f in layer.fields if not f.public] == ["in_model"]
    entries, _ = store.list_audit(layer="places-of-worship", actor="planner")
    assert entries[0].action == "layer.update"
    store.add_features("places-of-worship", [(Point(106.85, 11.52), {
        "name": "Chùa mới", "religion": "buddhism", "in_model": True})])


def test_internal_ward_layers_do_not_name_wards_on_public_pages(client, published):
    store = published
    store.create_layer("to-dan-pho", "Tổ dân phố (nội bộ)", "ward", features=[
        (Point(106.85, 11.52).buffer(0.001), {"code": "77001", "name": "Tổ nội bộ số 7",
                                               "type": "phuong"})])
    for path in ("/public", "/embed/ban-do", "/public/report"):
        config = map_config(client.get(path).get_data(as_text=True))
        assert "77001" not in config["ward_names"], path
        assert "Tổ nội bộ số 7" not in json.dumps(config, ensure_ascii=False), path
    assert "Phường Tân Phú" in map_config(client.get("/public").get_data(as_text=True))[
        "ward_names"].values()
    login(client, "inspector")
    assert "77001" in map_config(client.get("/map").get_data(as_text=True))["ward_names"]


def test_the_public_legend_lists_only_the_statuses_the_public_sees(client, published):
    config = map_config(client.get("/embed/ban-do").get_data(as_text=True))
    hotspots = next(la for la in config["layers"] if la["slug"] == "hotspots")
    assert [item["label"] for item in hotspots["legend"]] == [
        "Đã xác minh", "Đang xử lý", "Đã xử lý"]
    login(client, "inspector")
    inside = map_config(client.get("/map").get_data(as_text=True))
    legend = next(la for la in inside["layers"] if la["slug"] == "hotspots")["legend"]
    assert {"Tiếp nhận", "Không xác lập"} <= {item["label"] for item in legend}


def test_a_citizen_report_is_stored_as_the_hotspot_it_describes(app, client, published):
    client.get("/public/report?lang=en")  # an English page: the stored data stays Vietnamese
    response = report(client, description="Khói đen từ lò đốt rác lúc 5 giờ sáng")
    assert response.status_code == 302
    code = response.headers["Location"].rsplit("/", 1)[1]
    layer, feature_id = published.find_report(code)
    props = published.get_feature(layer, feature_id).properties
    assert props["name"] == "Mùi hôi (người dân phản ánh)"
    assert props["description"] == "Khói đen từ lò đốt rác lúc 5 giờ sáng"
    assert props["severity"] == 0  # not yet assessed, until an inspector says
    assert published.list_inspections(layer, feature_id) == []
    inspector = login(app.test_client(), "inspector")
    detail = inspector.get(f"/hotspots/{layer}/{feature_id}").get_data(as_text=True)
    assert "Chưa đánh giá" in detail and "kiểm tra ngày" not in detail.lower()
    form = {"csrf_token": csrf_token(inspector, f"/hotspots/{layer}/{feature_id}"),
            "to": "verified", "note": "Đã gọi điện cho chủ lò đốt — ghi chú nội bộ",
            "version": published.get_feature(layer, feature_id).version}
    moved = inspector.post(f"/hotspots/{layer}/{feature_id}/status", data=form)
    assert moved.status_code == 302, moved.get_data(as_text=True)
    page = client.get(f"/public/report/{code}?lang=vi").get_data(as_text=True)
    steps = re.search(r'<ol class="timeline" id="public-timeline">(.*?)</ol>', page, re.S)
    assert steps
    items = re.findall(r"<li>(.*?)</li>", steps.group(1), re.S)
    assert [re.sub(r"<[^>]+>", "", i).split(" · ")[1] for i in items] == [
        "Tiếp nhận", "Đã xác minh"]
    assert all(re.search(r"\d{2}/\d{2}/\d{4}", i) for i in items)
    assert "ghi chú nội bộ" not in page and "inspector" not in page
