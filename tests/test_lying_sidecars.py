"""Agency files whose sidecars lie: a `.cpg` naming the wrong encoding, text merged from two
encodings, a `.prj` naming WGS 84 over VN-2000 coordinates. Sent as a planner sends them:
uploaded through the pages (preview, then publish) and imported with the CLI."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely
from pyproj import Geod

from layers.ingest.crs import transformer_to_wgs84
from layers.query import FeatureQuery
from tests.ingest_files import write_shapefile, zip_files
from tests.support import csrf_token, login
from tests.test_ingest import NAMES, WARDS, hotspot_frame

GEOD = Geod(ellps="WGS84")


@pytest.fixture
def planner(client):
    return login(client, "planner")


def upload(client, path: Path) -> str:
    """Upload ``path`` through the form; the preview's URL."""
    response = client.post("/layers/upload", data={
        "file": (io.BytesIO(path.read_bytes()), path.name),
        "csrf_token": csrf_token(client, "/layers/")}, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    return response.headers["Location"]


def page_text(client, url: str) -> str:
    page = client.get(url)
    assert page.status_code == 200, page.get_data(as_text=True)
    return html.unescape(page.get_data(as_text=True))


def publish_generic(client, url: str, slug: str, **extra: str):
    return client.post(url, data={"csrf_token": csrf_token(client, url), "kind": "generic",
                                  "title": slug, "slug": slug, **extra})


def stored(app, slug: str) -> list:
    return app.extensions["gis_store"].query_features(slug, FeatureQuery()).features


def shapefile(tmp_path: Path, name: str, frame: gpd.GeoDataFrame, **kwargs) -> Path:
    return zip_files(tmp_path / f"{name}.zip", write_shapefile(tmp_path / name, name, frame,
                                                               **kwargs))


# -- 2. a .cpg that lies --------------------------------------------------------------------


@pytest.mark.parametrize(("encoding", "cpg", "declared", "used"), [
    ("vni", "1258", "Windows-1258", "VNI-Windows"),
    ("tcvn3", "1258", "Windows-1258", "TCVN3 (ABC)"),
    ("vni", "65001", "UTF-8", "VNI-Windows"),
])
def test_a_cpg_that_lies_is_overruled_with_the_evidence(app, planner, tmp_path, encoding, cpg,
                                                        declared, used):
    url = upload(planner, shapefile(tmp_path, "diem", hotspot_frame(), encoding=encoding,
                                    cpg=cpg, prj="epsg"))
    text = page_text(planner, url)
    said = re.search(rf"Tệp \.cpg khai báo {re.escape(declared)}, nhưng văn bản đã được đọc "
                     rf"theo {re.escape(used)}: (\d+) trên (\d+) từ có dấu là tiếng Việt hợp lệ",
                     text)
    assert said and said.group(1) == said.group(2), text
    assert NAMES[0] in text and "Baơi raùc" not in text
    # The planner can still insist on the declaration.
    insisted = page_text(planner, url + "?encoding=cp1258")
    assert NAMES[0] not in insisted and "do bạn chọn" in insisted
    done = publish_generic(planner, url, f"diem-{encoding}-{cpg}")
    assert done.status_code == 302, done.get_data(as_text=True)
    rows = stored(app, f"diem-{encoding}-{cpg}")
    assert sorted(f.properties["ten"] for f in rows) == sorted(NAMES)
    assert sorted(f.properties["phuong"] for f in rows) == sorted(WARDS)


def test_cli_reads_a_lying_cpg_by_its_bytes(app, tmp_path):
    path = shapefile(tmp_path, "diem", hotspot_frame(), encoding="vni", cpg="1258")
    shown = app.test_cli_runner().invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0, shown.output
    assert "Encoding: vni (detected)" in shown.output
    assert ".cpg" in shown.output and "50" in shown.output


# -- 3. mixed encodings -------------------------------------------------------------------

MIXED = ["utf-8", "cp1258", "utf-8", "cp1258"]


@pytest.mark.parametrize("cpg", [None, "1258", "UTF-8"])
def test_a_file_merged_from_utf8_and_cp1258_keeps_every_string(app, planner, tmp_path, cpg):
    url = upload(planner, shapefile(tmp_path, "gop", hotspot_frame(), encoding=MIXED, cpg=cpg))
    text = page_text(planner, url)
    assert re.search(r"Tệp trộn lẫn nhiều bảng mã.*: \d+ chuỗi là UTF-8 và \d+ chuỗi là "
                     r"Windows-1258", text), text
    assert "UTF-8 + Windows-1258" in text
    done = publish_generic(planner, url, "gop")
    assert done.status_code == 302, done.get_data(as_text=True)
    rows = stored(app, "gop")
    assert [f.properties["ten"] for f in rows] == NAMES
    assert [f.properties["phuong"] for f in rows] == WARDS
    assert [f.properties["trang_thai"] for f in rows] == [
        "Tiếp nhận", "Đã xử lý", "đang xử lý", "Đã xác minh"]


def test_cli_imports_a_merged_file_exactly(app, tmp_path):
    path = shapefile(tmp_path, "gop", hotspot_frame(), encoding=MIXED)
    runner = app.test_cli_runner()
    shown = runner.invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0 and "utf-8+cp1258" in shown.output, shown.output
    done = runner.invoke(args=["layers", "import", str(path), "--yes", "--slug", "gop"])
    assert done.exit_code == 0, done.output
    assert [f.properties["ten"] for f in stored(app, "gop")] == NAMES


# -- 6. a .prj that lies about the datum ----------------------------------------------------


def boundary_markers(app) -> np.ndarray:
    """Ward boundary markers (mốc địa giới), lon/lat, 12 along each sample ward's edge."""
    points = [ward.geometry.boundary.interpolate(f, normalized=True)
              for ward in stored(app, "wards") for f in np.linspace(0, 1, 12, endpoint=False)]
    return shapely.get_coordinates(points)


def markers_file(tmp_path: Path, lonlat: np.ndarray, *, vn2000: bool) -> Path:
    """The markers in UTM 48N, on the VN-2000 datum or truly WGS 84, behind a 32648 .prj."""
    if vn2000:
        x, y = transformer_to_wgs84(3405).transform(lonlat[:, 0], lonlat[:, 1],
                                                    direction="INVERSE")
    else:
        x, y = gpd.GeoSeries(gpd.points_from_xy(lonlat[:, 0], lonlat[:, 1]), crs=4326) \
            .to_crs(32648).pipe(lambda s: (s.x.to_numpy(), s.y.to_numpy()))
    frame = gpd.GeoDataFrame({"TEN": [f"Mốc {i}" for i in range(len(lonlat))]},
                             geometry=gpd.points_from_xy(x, y), crs=32648)
    return shapefile(tmp_path, "moc_vn" if vn2000 else "moc_wgs", frame)


def test_vn2000_behind_a_wgs84_utm_prj_is_caught_and_offered(app, planner, tmp_path):
    truth = boundary_markers(app)
    url = upload(planner, markers_file(tmp_path, truth, vn2000=True))
    text = page_text(planner, url)
    assert "EPSG:3405 — VN-2000 / UTM zone 48N" in text
    warning = re.search(r"Đọc theo EPSG:32648 \(WGS 84\), (\d+) trên (\d+) đỉnh.*?(\d+) đỉnh "
                        r"nằm trên ranh giới.*?cho (\d+) đỉnh trong phường/xã và (\d+) đỉnh "
                        r"trên ranh giới, lệch nhau (\d+) m", text)
    assert warning, text
    on_wgs, n, on_vn, shift = (int(warning.group(i)) for i in (3, 2, 5, 6))
    assert on_vn == n > on_wgs and 200 <= shift <= 250
    assert 'name="confirm"' in text  # offered, never applied without the planner
    link = re.search(r'<a class="reread" href="([^"]+)">Đọc theo EPSG:32648</a>', text)
    assert link, text  # one click reads the file as declared, and says nothing of a shift
    as_declared = page_text(planner, link.group(1))
    assert "EPSG:32648 —" in as_declared and "lệch nhau" not in as_declared
    refused = publish_generic(planner, url, "moc")
    assert refused.status_code == 400
    done = publish_generic(planner, url, "moc", confirm="on")
    assert done.status_code == 302, done.get_data(as_text=True)
    got = sorted((f.geometry.x, f.geometry.y, f.properties["ten"]) for f in stored(app, "moc"))
    want = sorted((x, y, f"Mốc {i}") for i, (x, y) in enumerate(truth))
    assert all(GEOD.inv(a[0], a[1], b[0], b[1])[2] < 1.0 for a, b in zip(got, want, strict=True))


def test_true_wgs84_utm_is_left_alone(app, planner, tmp_path):
    url = upload(planner, markers_file(tmp_path, boundary_markers(app), vn2000=False))
    text = page_text(planner, url)
    assert "EPSG:32648" in text and "lệch nhau" not in text and 'name="confirm"' not in text


def test_cli_preview_offers_the_vn2000_reading(app, tmp_path):
    runner = app.test_cli_runner()
    path = markers_file(tmp_path, boundary_markers(app), vn2000=True)
    shown = runner.invoke(args=["layers", "import", str(path), "--preview"])
    assert shown.exit_code == 0 and "CRS: EPSG:3405" in shown.output, shown.output
    assert "EPSG:32648" in shown.output and "VN-2000" in shown.output
    refused = runner.invoke(args=["layers", "import", str(path), "--slug", "moc"])
    assert refused.exit_code == 1 and "--yes" in refused.output
    right = markers_file(tmp_path, boundary_markers(app), vn2000=False)
    plain = runner.invoke(args=["layers", "import", str(right), "--preview"])
    assert plain.exit_code == 0 and "CRS: EPSG:32648 (declared" in plain.output, plain.output


@pytest.mark.parametrize(("epsg", "counterpart"), [
    (32648, 3405), (32649, 3406), (4326, None), (3405, None), (9212, None), (3857, None)])
def test_every_wgs84_projection_used_in_vietnam_has_its_vn2000_reading(epsg, counterpart):
    from layers.ingest.crs import vn2000_counterpart

    assert vn2000_counterpart(epsg) == counterpart
