"""Planners' layer management through the web pages, the API and the CLI."""

from __future__ import annotations

import io
import re
from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Polygon

from layers.query import FeatureQuery
from tests.ingest_files import TRAP_PRJ, tm3, write_shapefile, zip_files
from tests.support import csrf_token, login
from tests.test_ingest import NAMES, hotspot_frame


def shapefile_bytes(tmp_path: Path, **kwargs) -> bytes:
    files = write_shapefile(tmp_path / "src", "diem_nong", hotspot_frame(), **kwargs)
    return zip_files(tmp_path / "diem_nong.zip", files).read_bytes()


def upload(client, data: bytes, name: str = "diem_nong.zip"):
    return client.post("/layers/upload", data={
        "file": (io.BytesIO(data), name), "csrf_token": csrf_token(client, "/layers/")},
        content_type="multipart/form-data")


@pytest.fixture
def planner(client):
    return login(client, "planner")


def test_only_planners_and_admins_manage_layers(client):
    assert client.get("/layers/").status_code == 302
    login(client, "inspector")
    page = client.get("/layers/")
    assert page.status_code == 403 and "Cán bộ kiểm tra" in page.get_data(as_text=True)
    api = client.post("/api/layers/import", headers={"X-CSRFToken": csrf_token(client, "/map")})
    assert api.status_code == 403 and api.is_json


def test_upload_preview_and_publish_a_legacy_shapefile(app, planner, tmp_path):
    response = upload(planner, shapefile_bytes(tmp_path, encoding="tcvn3", prj=TRAP_PRJ))
    assert response.status_code == 302
    token_url = response.headers["Location"]
    page = planner.get(token_url + "?kind=hotspot")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "EPSG:9212" in html and "TCVN3" in html and NAMES[0] in html
    assert 'name="confirm"' in html  # the corrected CRS must be confirmed
    assert '<option value="phuong" selected>' in html  # PHUONG guessed as the ward
    form = {"csrf_token": csrf_token(planner, token_url), "kind": "hotspot",
            "title": "Điểm nóng 2024", "slug": "diem-nong-2024", "map_name": "ten",
            "map_ward": "phuong", "map_status": "trang_thai", "map_category": "loai",
            "map_severity": "muc_do", "map_reported_at": "ngay"}
    refused = planner.post(token_url, data=form)
    assert refused.status_code == 400 and "confirm" in refused.get_data(as_text=True)
    store = app.extensions["gis_store"]
    assert "diem-nong-2024" not in [la.slug for la in store.list_layers()]
    done = planner.post(token_url, data={**form, "confirm": "on"})
    assert done.status_code == 302 and done.headers["Location"].endswith(
        "/layers/diem-nong-2024/versions")
    names = [f.properties["name"] for f in store.query_features(
        "diem-nong-2024", FeatureQuery()).features]
    assert names == NAMES
    assert planner.get(token_url).status_code == 400  # the upload is gone once published


def test_preview_map_and_its_features(planner, tmp_path):
    token_url = upload(planner, shapefile_bytes(tmp_path)).headers["Location"]
    html = planner.get(token_url).get_data(as_text=True)
    assert "GisMap.start(" in html and token_url + "/features" in html
    features = planner.get(token_url + "/features").json
    assert len(features["features"]) == 4


def test_reading_options_change_the_preview(planner, tmp_path):
    token_url = upload(planner, shapefile_bytes(tmp_path, encoding="vni", prj=None)).headers[
        "Location"]
    guessed = planner.get(token_url).get_data(as_text=True)
    assert "needs your confirmation" in guessed or "cần" in guessed
    wrong = planner.get(token_url + "?encoding=cp1258&crs=9212").get_data(as_text=True)
    assert NAMES[0] not in wrong
    bad = planner.get(token_url + "?crs=abc")
    assert bad.status_code == 400 and "EPSG" in bad.get_data(as_text=True)


def test_hostile_uploads_get_a_clear_400(planner, tmp_path):
    for data, name, message in [
        (b"PK\x03\x04broken", "x.zip", "tệp nén bị hỏng"),
        (b"hello", "x.zip", ""),
        (b"", "x.zip", ""),
    ]:
        response = upload(planner, data, name)
        if response.status_code == 302:
            response = planner.get(response.headers["Location"])
        assert response.status_code == 400, name
        assert message in response.get_data(as_text=True)
    no_file = planner.post("/layers/upload", data={"csrf_token": csrf_token(planner, "/layers/")})
    assert no_file.status_code == 400
    no_csrf = planner.post("/layers/upload", data={"file": (io.BytesIO(b"x"), "x.zip")},
                           content_type="multipart/form-data")
    assert no_csrf.status_code == 400


def test_uploads_over_the_cap_get_413(tmp_path):
    from tests.support import make_app

    app = make_app(tmp_path / "cap.sqlite", MAX_CONTENT_LENGTH=1000,
                   UPLOAD_DIR=str(tmp_path / "up"))
    client = login(app.test_client(), "planner")
    token = csrf_token(client, "/layers/")
    response = client.post("/layers/upload", data={
        "file": (io.BytesIO(b"0" * 5000), "big.zip"), "csrf_token": token},
        content_type="multipart/form-data")
    assert response.status_code == 413
    assert not any((tmp_path / "up").glob("*/upload*"))


def test_an_upload_belongs_to_its_uploader(app, planner, tmp_path):
    token_url = upload(planner, shapefile_bytes(tmp_path)).headers["Location"]
    other = login(app.test_client(), "admin")
    assert other.get(token_url).status_code == 400


def test_versions_page_and_restore(app, planner, tmp_path):
    store = app.extensions["gis_store"]
    store.replace_features("hotspots", [], note="emptied by mistake")
    page = planner.get("/layers/hotspots/versions").get_data(as_text=True)
    assert "emptied by mistake" in page
    token = csrf_token(planner, "/layers/hotspots/versions")
    assert planner.post("/layers/hotspots/versions/1/restore").status_code == 400  # no CSRF
    shown = planner.post("/layers/hotspots/versions/1/restore", data={"csrf_token": token})
    assert shown.status_code == 200 and 'id="count-changed">150<' in shown.get_data(
        as_text=True) and store.count_features("hotspots") == 0  # the diff first
    done = planner.post("/layers/hotspots/versions/1/restore", data={
        "csrf_token": token, "apply": "1"})
    assert done.status_code == 302 and store.count_features("hotspots") == 150
    missing = planner.post("/layers/hotspots/versions/99/restore", data={"csrf_token": token})
    assert missing.status_code == 400
    assert planner.get("/layers/nope/versions").status_code == 404


def test_layers_page_lists_layers(planner):
    html = planner.get("/layers/").get_data(as_text=True)
    assert "Điểm nóng ô nhiễm (minh hoạ)" in html and 'type="file"' in html
    assert re.search(r"<td>150</td>", html)


def test_api_import_previews_and_publishes(app, planner, tmp_path):
    data = shapefile_bytes(tmp_path, encoding="cp1258")
    headers = {"X-CSRFToken": csrf_token(planner, "/layers/")}

    def post(**fields):
        return planner.post("/api/layers/import", headers=headers,
                            data={"file": (io.BytesIO(data), "diem.zip"), **fields},
                            content_type="multipart/form-data")

    preview = post(preview="1").json
    assert preview["crs"]["epsg"] == 9212 and preview["encoding"]["encoding"] == "cp1258"
    assert preview["rows"][0]["ten"] == NAMES[0]
    created = post(slug="diem-api", title="Điểm API")
    assert created.status_code == 201 and created.json["features"] == 4
    assert app.extensions["gis_store"].count_features("diem-api") == 4
    again = post(slug="diem-api", title="Điểm API")
    assert again.status_code == 409 and again.is_json
    without_token = planner.post("/api/layers/import", data={"file": (io.BytesIO(data), "d.zip")},
                                 content_type="multipart/form-data")
    assert without_token.status_code == 400


def test_cli_import_needs_confirmation_for_a_guessed_crs(app, tmp_path):
    path = tmp_path / "diem_nong.zip"
    path.write_bytes(shapefile_bytes(tmp_path, encoding="tcvn3", prj=None))
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0 and "EPSG:9212" in shown.output and "tcvn3" in shown.output
    refused = runner.invoke(args=["layers", "import", str(path), "--kind", "hotspot"])
    assert refused.exit_code == 1 and "--yes" in refused.output
    done = runner.invoke(args=["layers", "import", str(path), "--kind", "hotspot", "--yes",
                               "--map", "name=TEN", "--title", "Điểm nóng CLI"])
    assert done.exit_code == 0, done.output
    store = app.extensions["gis_store"]
    assert store.count_features("diem-nong") == 4
    names = [f.properties["name"] for f in store.query_features("diem-nong",
                                                                FeatureQuery()).features]
    assert names == NAMES
    again = runner.invoke(args=["layers", "import", str(path), "--kind", "hotspot", "--yes",
                                "--replace", "diem-nong"])
    assert again.exit_code == 0 and "version 2" in again.output
    listed = runner.invoke(args=["layers", "versions", "diem-nong"])
    assert '"version": 2' in listed.output and '"version": 1' in listed.output
    restored = runner.invoke(args=["layers", "restore", "diem-nong", "1", "--yes"])
    assert restored.exit_code == 0 and "version 3" in restored.output


def test_a_cut_shapefile_is_refused_in_vietnamese_and_stores_nothing(app, planner, tmp_path):
    from tests.test_ingest import cut_shapefile_zip

    store = app.extensions["gis_store"]
    before = [la.slug for la in store.list_layers()]
    data = cut_shapefile_zip(tmp_path).read_bytes()
    page = planner.get(upload(planner, data, "diem_cut.zip").headers["Location"])
    assert page.status_code == 400
    assert "bị hỏng hoặc không đầy đủ" in page.get_data(as_text=True)
    headers = {"X-CSRFToken": csrf_token(planner, "/layers/")}
    api = planner.post("/api/layers/import", headers=headers,
                       data={"file": (io.BytesIO(data), "diem_cut.zip"), "slug": "diem-cut",
                             "title": "Cắt", "confirm": "on"},
                       content_type="multipart/form-data")
    assert api.status_code == 400 and "không đầy đủ" in api.json["error"]
    assert [la.slug for la in store.list_layers()] == before


def test_api_publish_answers_what_was_repaired_and_left_out(app, planner, tmp_path):
    bowtie = Polygon([tm3(106.80, 11.50), tm3(106.82, 11.52), tm3(106.82, 11.50),
                      tm3(106.80, 11.52)])
    square = Polygon([tm3(106.83, 11.50), tm3(106.84, 11.50), tm3(106.84, 11.51),
                      tm3(106.83, 11.51)])
    frame = gpd.GeoDataFrame({"TEN": ["hỏng", "tốt", "trống"]},
                             geometry=[bowtie, square, None], crs=9212)
    data = zip_files(tmp_path / "vung.zip", write_shapefile(tmp_path / "src", "vung", frame)
                     ).read_bytes()
    created = planner.post("/api/layers/import", headers={
        "X-CSRFToken": csrf_token(planner, "/layers/")}, data={
        "file": (io.BytesIO(data), "vung.zip"), "slug": "vung", "title": "Vùng"},
        content_type="multipart/form-data")
    assert created.status_code == 201, created.get_data(as_text=True)
    body = created.json
    assert body["features"] == 2 and body["repaired"] == 1 and body["dropped_empty"] == 1
    assert len(body["warnings"]) >= 2 and all(isinstance(w, str) for w in body["warnings"])
    assert any("make_valid" in w for w in body["warnings"])  # in Vietnamese, the tool named
