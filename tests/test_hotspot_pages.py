"""Inspectors follow hotspots through the web: detail, status moves, inspections, edits."""

from __future__ import annotations

import io
import re

import pytest
from PIL import Image

from layers.query import FeatureQuery
from tests.support import csrf_token, login


@pytest.fixture
def first(app):
    store = app.extensions["gis_store"]
    query = FeatureQuery(equals={"status": ("reported",)}, limit=1)
    return store.query_features("hotspots", query).features[0]


def url(feature, tail=""):
    return f"/hotspots/hotspots/{feature.id}{tail}"


def jpeg_with_gps() -> bytes:
    image = Image.new("RGB", (40, 30), "red")
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"
    exif[0x8825] = {1: "N", 2: (11.0, 31.0, 12.0), 3: "E", 4: (106.0, 50.0, 1.0)}
    out = io.BytesIO()
    image.save(out, "JPEG", exif=exif)
    return out.getvalue()


def test_detail_page_shows_fields_moves_and_history(inspector, first):
    html = inspector.get(url(first)).get_data(as_text=True)
    assert first.properties["name"] in html and "Tiếp nhận" in html
    assert 'value="verified"' in html and 'value="dismissed"' in html
    assert 'value="resolved"' not in html  # not an allowed move from "reported"
    assert inspector.get("/hotspots/hotspots/999999").status_code == 404
    assert inspector.get("/hotspots/wards/1").status_code == 400


def test_status_moves_need_a_note_and_the_current_version(app, inspector, first):
    token = csrf_token(inspector, url(first))
    no_note = inspector.post(url(first, "/status"), data={
        "csrf_token": token, "to": "verified", "note": "", "version": first.version})
    assert no_note.status_code == 400 and "note" in no_note.get_data(as_text=True)
    done = inspector.post(url(first, "/status"), data={
        "csrf_token": token, "to": "verified", "note": "Đã xác minh tại chỗ",
        "version": first.version})
    assert done.status_code == 302
    stale = inspector.post(url(first, "/status"), data={
        "csrf_token": token, "to": "dismissed", "note": "Bác bỏ", "version": first.version})
    assert stale.status_code == 409
    store = app.extensions["gis_store"]
    assert store.get_feature("hotspots", first.id).properties["status"] == "verified"
    history = inspector.get(url(first)).get_data(as_text=True)
    assert "Đã xác minh tại chỗ" in history and "inspector" in history


def test_inspection_with_photo_strips_gps(app, inspector, first):
    token = csrf_token(inspector, url(first))
    response = inspector.post(url(first, "/inspections"), data={
        "csrf_token": token, "inspected_on": "2024-05-06", "finding": "Rác tồn đọng",
        "photos": (io.BytesIO(jpeg_with_gps()), "anh.jpg")}, content_type="multipart/form-data")
    assert response.status_code == 302
    html = inspector.get(url(first)).get_data(as_text=True)
    photo_url = re.search(r'src="(/hotspots/photos/\d+)"', html).group(1)
    photo = inspector.get(photo_url)
    assert photo.headers["Content-Type"] == "image/jpeg"
    assert b"SecretCam" not in photo.data
    assert not Image.open(io.BytesIO(photo.data)).getexif()
    bad = inspector.post(url(first, "/inspections"), data={
        "csrf_token": token, "inspected_on": "2024-05-06", "finding": "x",
        "photos": (io.BytesIO(b"<svg onload=alert(1)>"), "a.png")},
        content_type="multipart/form-data")
    assert bad.status_code == 400
    assert len(app.extensions["gis_store"].list_inspections("hotspots", first.id)) == 1


def test_two_inspectors_editing_the_same_hotspot(app, first):
    store = app.extensions["gis_store"]
    lan = login(app.test_client(), "inspector")
    minh = login(app.test_client(), "planner")
    page = lan.get(url(first, "/edit")).get_data(as_text=True)
    version = re.search(r'name="version" value="(\d+)"', page).group(1)
    form = {"lat": first.geometry.y, "lon": first.geometry.x, "name": first.properties["name"],
            "category": first.properties["category"], "severity": "3",
            "reported_at": first.properties["reported_at"], "ward": first.properties["ward"],
            "version": version}
    first_save = lan.post(url(first, "/edit"), data={**form, "csrf_token": csrf_token(
        lan, url(first)), "description": "Lan sửa"})
    assert first_save.status_code == 302
    second = minh.post(url(first, "/edit"), data={**form, "csrf_token": csrf_token(
        minh, url(first)), "description": "Minh sửa", "severity": "1"})
    assert second.status_code == 409
    text = second.get_data(as_text=True)
    assert "Lan sửa" in text and "Minh sửa" in text  # current value beside the stale one
    saved = store.get_feature("hotspots", first.id)
    assert saved.properties["description"] == "Lan sửa" and saved.properties["severity"] == 3


def test_add_a_hotspot_by_coordinates(app, inspector):
    form_page = inspector.get("/hotspots/hotspots/new?lat=11.52&lon=106.85")
    assert 'value="11.52"' in form_page.get_data(as_text=True)
    token = csrf_token(inspector, "/hotspots/hotspots/new")
    bad = inspector.post("/hotspots/hotspots/new", data={
        "csrf_token": token, "lat": "abc", "lon": "106.85", "name": "x"})
    assert bad.status_code == 400
    done = inspector.post("/hotspots/hotspots/new", data={
        "csrf_token": token, "lat": "11.521", "lon": "106.851", "name": "Khói đốt rác",
        "category": "air", "severity": "2", "ward": "25195"})
    assert done.status_code == 302
    new_id = int(done.headers["Location"].rsplit("/", 1)[1])
    feature = app.extensions["gis_store"].get_feature("hotspots", new_id)
    assert feature.properties["status"] == "reported" and feature.properties["reported_at"]
    entries, _ = app.extensions["gis_store"].list_audit(feature_id=new_id, layer="hotspots")
    assert entries[0].action == "feature.create" and entries[0].actor == "inspector"


def test_hotspot_pages_need_login_and_csrf(client, first):
    assert client.get(url(first)).status_code == 302
    login(client)
    assert client.post(url(first, "/status"), data={"to": "verified", "note": "x",
                                                   "version": 1}).status_code == 400


def test_map_links_to_hotspot_pages(inspector):
    html = inspector.get("/map").get_data(as_text=True)
    assert '"page_url": "/hotspots/hotspots/"' in html
    assert '"add_url": "/hotspots/hotspots/new"' in html
