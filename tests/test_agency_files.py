"""Agency files that used to fail (issue 8): KML/KMZ as Google Earth and QGIS write them,
CSV as Vietnamese offices write it, non-finite coordinates, GeoPackages of thousands of
layers. Each is sent as a planner sends it: the upload page, then the CLI."""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from shapely.geometry import Point

from layers.ingest.encoding import encode
from layers.query import FeatureQuery
from tests.ingest_files import (
    WGS84_POINT,
    google_earth_kml,
    kml_folder,
    many_layer_geopackage,
    nonfinite_shapefile_zip,
    placemark,
    tm3,
)
from tests.support import csrf_token, login

HTML = '<b>Ghi chú:</b> gần chợ<br/><a href="https://example.vn/anh.jpg">ảnh</a>'


@pytest.fixture
def planner(client):
    return login(client, "planner")


def upload(client, data: bytes, name: str):
    """The upload page's form; returns the preview page's address."""
    response = client.post("/layers/upload", data={
        "file": (io.BytesIO(data), name), "csrf_token": csrf_token(client, "/layers/")},
        content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def publish(client, token_url: str, slug: str, **extra: str):
    """The preview page's publish form, as a generic layer with the CRS confirmed."""
    form = {"csrf_token": csrf_token(client, token_url), "kind": "generic", "title": slug,
            "slug": slug, "confirm": "on", **extra}
    response = client.post(token_url, data=form)
    assert response.status_code == 302, response.get_data(as_text=True)


def stored(app, slug: str) -> list:
    return app.extensions["gis_store"].query_features(slug, FeatureQuery()).features


# -- 1. KML and KMZ ----------------------------------------------------------------------------
def test_google_earth_kml_without_timestamps_is_published_with_nulls_not_nat(app, planner):
    kml = google_earth_kml(kml_folder(
        "Phường Tân Xuân", placemark("Bãi rác tự phát", 106.85, 11.52, HTML, muc_do="cao"),
        placemark("Điểm đổ trộm", 106.86, 11.53)))
    token_url = upload(planner, kml.encode("utf-8"), "Điểm rác.kml")
    page = planner.get(token_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "NaT" not in html and "Bãi rác tự phát" in html
    publish(planner, token_url, "diem-rac")
    features = stored(app, "diem-rac")
    assert [f.properties["name"] for f in features] == ["Bãi rác tự phát", "Điểm đổ trộm"]
    first, second = (f.properties for f in features)
    assert first["description"] == HTML  # the HTML is kept as text, as written
    assert first["muc_do"] == "cao" and first["folder"] == "Phường Tân Xuân"
    assert "NaT" not in repr([f.properties for f in features])
    assert not {"timestamp", "begin", "end", "tessellate"} & (first.keys() | second.keys())
    assert features[0].geometry.wkt == "POINT (106.85 11.52)"  # KML's altitude dropped


def nested_kmz(path: Path) -> Path:
    """A KMZ of nested Folders, ward / year / quarter, names repeated across wards."""
    kml = google_earth_kml(
        kml_folder("Phường Tân Xuân", placemark("a", 106.81, 11.51), kml_folder(
            "Năm 2024", placemark("b", 106.82, 11.52),
            kml_folder("Quý 1", placemark("c", 106.83, 11.53), placemark("d", 106.84, 11.54)),
            kml_folder("Quý 2", placemark("e", 106.85, 11.55)))),
        kml_folder("Phường Tân Phú", kml_folder("Năm 2024", kml_folder(
            "Quý 1", placemark("f", 106.86, 11.56)))))
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("doc.kml", kml)
        archive.writestr("files/icon.png", b"\x89PNG\r\n")
    return path


def test_kmz_with_nested_folders_keeps_every_placemark_and_its_folder_path(app, tmp_path):
    path = nested_kmz(tmp_path / "Điểm theo quý.kmz")
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0, shown.output
    assert "6 features" in shown.output and "folder (text)" in shown.output
    done = runner.invoke(args=["layers", "import", str(path), "--slug", "theo-quy", "--yes"])
    assert done.exit_code == 0, done.output
    folders = {f.properties["name"]: f.properties.get("folder") for f in stored(app, "theo-quy")}
    assert folders == {
        "a": "Phường Tân Xuân",
        "b": "Phường Tân Xuân / Năm 2024",
        "c": "Phường Tân Xuân / Năm 2024 / Quý 1",
        "d": "Phường Tân Xuân / Năm 2024 / Quý 1",
        "e": "Phường Tân Xuân / Năm 2024 / Quý 2",
        "f": "Phường Tân Phú / Năm 2024 / Quý 1",
    }


def test_a_kmz_of_hundreds_of_folders_is_read_in_one_pass(app, tmp_path):
    # LIBKML makes each Folder a layer and parses the whole file again for each: 12 s here.
    kml = google_earth_kml(*(kml_folder(f"Tổ {i}", *(
        placemark(f"điểm {i}-{j}", 106.80 + j / 1000, 11.50 + i / 10000, HTML, ma=f"0{j}")
        for j in range(5))) for i in range(300)))
    path = tmp_path / "to_dan_pho.kmz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("doc.kml", kml)
    started = time.perf_counter()
    shown = app.test_cli_runner().invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0, shown.output
    assert "1500 features" in shown.output and "ma (text)" in shown.output
    assert time.perf_counter() - started < 3  # measured: 0.3 s


def test_kml_as_qgis_writes_it_keeps_schema_fields_and_empty_dates_are_null(
        app, planner, tmp_path):
    # QGIS exports KML through GDAL's KML driver, as `ogr2ogr -f KML` does: a Schema of
    # SimpleFields, SchemaData per Placemark, all typed as strings.
    frame = gpd.GeoDataFrame(
        {"Tên": ["Bãi rác tự phát", "Điểm đổ trộm"], "Mã": ["000123", "000124"],
         "Số hộ": [12, 3], "Ngày phát hiện": ["03/04/2024", ""]},
        geometry=[Point(106.85, 11.52), Point(106.86, 11.53)], crs=4326)
    path = tmp_path / "qgis.kml"
    with pytest.warns(RuntimeWarning, match="adjusted"):  # GDAL: "Điểm rác" → "Điểm_rác"
        pyogrio.write_dataframe(frame, path, driver="KML", layer="Điểm rác")
    assert "<SimpleField" in path.read_text(encoding="utf-8")
    token_url = upload(planner, path.read_bytes(), "qgis.kml")
    html = planner.get(token_url).get_data(as_text=True)
    assert "Ngày phát hiện" in html and "NaT" not in html
    publish(planner, token_url, "qgis-kml")
    rows = [f.properties for f in stored(app, "qgis-kml")]
    assert rows[0]["ten"] == "Bãi rác tự phát" and rows[0]["ma"] == "000123"
    assert rows[0]["so_ho"] == 12 and rows[0]["ngay_phat_hien"] == "2024-04-03"
    assert "ngay_phat_hien" not in rows[1]  # empty: null, not "NaT" nor ""


def test_empty_dates_of_a_geopackage_become_nulls(app, planner, tmp_path):
    # Not a KML special case: any typed date column with gaps (GDAL hands back NaT).
    frame = gpd.GeoDataFrame(
        {"ten": ["A", "B"], "ngay": [None, None], "cap_nhat": ["2024-04-03", None]},
        geometry=[Point(106.85, 11.52), Point(106.86, 11.53)], crs=4326)
    frame["ngay"] = frame["ngay"].astype("datetime64[ms]")
    frame["cap_nhat"] = frame["cap_nhat"].astype("datetime64[ms]")
    path = tmp_path / "ngay.gpkg"
    pyogrio.write_dataframe(frame, path)
    token_url = upload(planner, path.read_bytes(), "ngay.gpkg")
    assert "NaT" not in planner.get(token_url).get_data(as_text=True)
    publish(planner, token_url, "ngay-gpkg")
    rows = [f.properties for f in stored(app, "ngay-gpkg")]
    assert rows == [{"ten": "A", "cap_nhat": "2024-04-03"}, {"ten": "B"}]


# -- 4. CSV as Vietnamese offices write it -----------------------------------------------------
OFFICE_ROWS = [["Tên", "Phường", "Kinh độ", "Vĩ độ", "Ngày phát hiện"],
               ["Bãi rác tự phát", "Tân Xuân", "106,8472", "11,5197", "03/04/2024"],
               ["Điểm đổ trộm", "Tân Phú", "106.86", "11.53", "15/12/2023"]]


def office_csv(encoding: str, header: list[str] | None = None, bom: bool = False) -> bytes:
    """A CSV as Excel saves it in a Vietnamese office: semicolons, CRLF, no BOM unless asked."""
    rows = [header or OFFICE_ROWS[0], *OFFICE_ROWS[1:]]
    text = "".join(";".join(row) + "\r\n" for row in rows)
    return (b"\xef\xbb\xbf" if bom else b"") + encode(text, encoding)


def test_windows_1258_csv_with_vietnamese_headers_is_published(app, planner):
    token_url = upload(planner, office_csv("cp1258"), "diem_ra_soat.csv")
    page = planner.get(token_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert "Ngày phát hiện" in html and "Bãi rác tự phát" in html and "Windows-1258" in html
    publish(planner, token_url, "ra-soat")
    features = stored(app, "ra-soat")
    assert [f.properties for f in features] == [
        {"ten": "Bãi rác tự phát", "phuong": "Tân Xuân", "ngay_phat_hien": "2024-04-03"},
        {"ten": "Điểm đổ trộm", "phuong": "Tân Phú", "ngay_phat_hien": "2023-12-15"}]
    assert (features[0].geometry.x, features[0].geometry.y) == WGS84_POINT
    layer = app.extensions["gis_store"].get_layer("ra-soat")
    labels = {f.name: f.vi for f in layer.fields}
    assert labels["ngay_phat_hien"] == "Ngày phát hiện" and labels["phuong"] == "Phường"


@pytest.mark.parametrize("encoding, bom", [("utf-8", False), ("utf-8", True), ("tcvn3", False),
                                           ("vni", False)])
def test_the_csv_encoding_is_detected_from_its_bytes(app, tmp_path, encoding, bom):
    path = tmp_path / "diem.csv"
    path.write_bytes(office_csv(encoding, bom=bom))
    shown = app.test_cli_runner().invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0, shown.output
    assert f"Encoding: {encoding}" in shown.output and "ngay_phat_hien (date)" in shown.output


@pytest.mark.parametrize("x, y", [
    ("Kinh độ", "Vĩ độ"), ("KINH ĐỘ", "VĨ ĐỘ"), ("Kinh do", "Vi do"), ("kinh_do", "vi_do"),
    ("Tọa độ X", "Tọa độ Y"), ("Toạ độ X", "Toạ độ Y"), ("TỌA ĐỘ X", "TỌA ĐỘ Y"), ("X", "Y"),
    ("lon", "lat"), ("lng", "lat"), ("Longitude", "Latitude"), ("LON", "LAT")])
def test_coordinate_headers_are_recognised_in_every_spelling(app, tmp_path, x, y):
    path = tmp_path / "diem.csv"
    path.write_bytes(office_csv("cp1258", ["Tên", "Phường", x, y, "Ngày phát hiện"]))
    shown = app.test_cli_runner().invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0, shown.output
    assert "2 features" in shown.output and "EPSG:4326" in shown.output


def test_a_csv_without_coordinate_columns_is_refused_in_vietnamese(planner):
    data = office_csv("cp1258", ["Tên", "Phường", "Đông", "Bắc", "Ngày phát hiện"])
    page = planner.get(upload(planner, data, "khong_toa_do.csv"))
    html = page.get_data(as_text=True)
    assert page.status_code == 400 and "không có cột tọa độ" in html and "Kinh độ" in html


# -- 5. non-finite coordinates -----------------------------------------------------------------
def test_nan_and_infinite_coordinates_are_left_out_counted_and_warned(app, planner, tmp_path):
    points = [tm3(106.85, 11.52), (111.0, 1274000.0), (222.0, 1274000.0), (565000.0, 333.0),
              tm3(106.86, 11.53)]
    frame = gpd.GeoDataFrame({"TEN": ["tốt 1", "nan", "vô cực", "âm vô cực", "tốt 2"]},
                             geometry=[Point(p) for p in points], crs=9212)
    data = nonfinite_shapefile_zip(tmp_path / "src", frame, {
        111.0: float("nan"), 222.0: float("inf"), 333.0: float("-inf")}).read_bytes()
    token_url = upload(planner, data, "diem.zip")
    page = planner.get(token_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200, html
    assert "Đã bỏ 3 đối tượng có tọa độ không phải là số" in html
    publish(planner, token_url, "diem-nan")
    assert [f.properties["ten"] for f in stored(app, "diem-nan")] == ["tốt 1", "tốt 2"]


# -- 7. a GeoPackage of thousands of layers ----------------------------------------------------
@pytest.fixture(scope="module")
def many_layers(tmp_path_factory) -> Path:
    started = time.perf_counter()
    path = many_layer_geopackage(tmp_path_factory.mktemp("gpkg") / "lop.gpkg", 3000)
    assert time.perf_counter() - started < 3  # measured: about 0.5 s
    return path


def test_thousands_of_layers_are_listed_bounded_and_picked_by_name(app, planner, many_layers):
    started = time.perf_counter()
    token_url = upload(planner, many_layers.read_bytes(), "lop.gpkg")
    page = planner.get(token_url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "lop.gpkg có 3000 lớp; chỉ liệt kê 200 lớp đầu tiên" in html
    assert html.count('<option value="lop_') == 200 and 'list="dataset-names"' in html
    far = planner.get(token_url + "?dataset=lop_2999")  # past the listed ones, by its name
    assert far.status_code == 200 and "điểm 2999" in far.get_data(as_text=True)
    missing = planner.get(token_url + "?dataset=lop_9999")
    assert missing.status_code == 400 and "không có" in missing.get_data(as_text=True)
    publish(planner, token_url, "lop-2998", dataset="lop.gpkg › lop_2998")
    assert [f.properties["ten"] for f in stored(app, "lop-2998")] == ["điểm 2998"]
    assert time.perf_counter() - started < 15


def test_the_cli_lists_the_layers_and_imports_one_by_name(app, many_layers):
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["layers", "import", str(many_layers), "--preview"])
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    listed = [line.strip() for line in lines if line.startswith("  lop.gpkg › ")]
    assert len(listed) == 200 and listed[0] == "lop.gpkg › lop_0000"
    assert "3000" in shown.output
    done = runner.invoke(args=["layers", "import", str(many_layers), "--dataset", "lop_1234",
                               "--slug", "lop-1234", "--yes"])
    assert done.exit_code == 0, done.output
    assert [f.properties["ten"] for f in stored(app, "lop-1234")] == ["điểm 1234"]
    missing = runner.invoke(args=["layers", "import", str(many_layers), "--dataset", "khong"])
    assert missing.exit_code != 0 and "khong" in missing.output
