"""The import pipeline end to end: files as agencies send them, to a layer on the map."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import geopandas as gpd
import pyogrio
import pytest
from pyproj import Geod
from shapely.geometry import Point, Polygon

from layers.errors import InvalidFeature, InvalidUpload, LayerNotFound
from layers.ingest.pipeline import PublishSpec, ReadOptions, preview_upload, publish
from layers.query import FeatureQuery
from layers.sample import load_sample
from layers.store import SQLiteStore
from tests.ingest_files import TM3_POINT, TRAP_PRJ, WGS84_POINT, tm3, write_shapefile, zip_files

GEOD = Geod(ellps="WGS84")
NAMES = ["Bãi rác tự phát đường Phú Riềng Đỏ", "Ô nhiễm nguồn nước suối Đồng Xoài",
         "Cơ sở chế biến mủ cao su Tiến Hưng", "Điểm tập kết rác chợ Tân Phú"]
WARDS = ["Phường Tân Phú", "Xã Tiến Hưng", "Phường Tân Bình", "tân xuân"]


def metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return GEOD.inv(a[0], a[1], b[0], b[1])[2]


def hotspot_frame(crs: int = 9212) -> gpd.GeoDataFrame:
    points = [Point(*TM3_POINT)] + [Point(*tm3(106.85 + i * 0.01, 11.52)) for i in range(1, 4)]
    return gpd.GeoDataFrame({
        "TEN": NAMES,
        "PHUONG": WARDS,
        "TRANG_THAI": ["Tiếp nhận", "Đã xử lý", "đang xử lý", "Đã xác minh"],
        "LOAI": ["illegal_dumping", "water", "polluting_facility", "illegal_dumping"],
        "MUC_DO": [1, 2, 3, 2],
        "NGAY": ["05/03/2022", "17/11/2023", "01/02/2024", "29/02/2024"],
    }, geometry=points, crs=crs)


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    store = SQLiteStore(tmp_path / "store.sqlite")
    load_sample(store)
    return store


def shapefile_zip(tmp_path: Path, name: str = "diem_nong", **kwargs) -> Path:
    files = write_shapefile(tmp_path / "src", name, hotspot_frame(), **kwargs)
    return zip_files(tmp_path / f"{name}.zip", files)


HOTSPOT_MAP = {"name": "ten", "ward": "phuong", "status": "trang_thai", "category": "loai",
               "severity": "muc_do", "reported_at": "ngay"}


# -- CRS ---------------------------------------------------------------------------------
def test_vn2000_shapefile_lands_within_a_metre(tmp_path):
    preview = preview_upload(shapefile_zip(tmp_path, encoding="cp1258"), "diem_nong.zip")
    assert preview.crs.epsg == 9212 and not preview.needs_confirmation
    first = preview.frame.geometry.iloc[0]
    assert metres((first.x, first.y), WGS84_POINT) < 1.0
    assert preview.outside == 0


def test_trap_prj_is_corrected_and_needs_confirmation(tmp_path, store):
    path = shapefile_zip(tmp_path, encoding="cp1258", prj=TRAP_PRJ)
    preview = preview_upload(path, "diem_nong.zip")
    assert preview.crs.epsg == 9212 and preview.crs.source == "declared-corrected"
    assert preview.needs_confirmation
    assert any("m" in w and "WGS" in w for w in preview.warnings)
    first = preview.frame.geometry.iloc[0]
    assert metres((first.x, first.y), WGS84_POINT) < 1.0
    spec = PublishSpec("diem-nong", "Điểm nóng nhập", "hotspot", HOTSPOT_MAP)
    with pytest.raises(InvalidUpload, match="confirm"):
        publish(store, preview, spec)
    with pytest.raises(LayerNotFound):
        store.get_layer("diem-nong")
    layer = publish(store, preview, PublishSpec(**{**spec.__dict__, "confirmed": True}))
    assert store.count_features(layer.slug) == 4


def test_missing_prj_is_guessed_from_the_eastings(tmp_path):
    preview = preview_upload(shapefile_zip(tmp_path, prj=None), "diem_nong.zip")
    assert preview.crs.epsg == 9212 and preview.crs.source == "guessed"
    assert preview.needs_confirmation
    assert [c.epsg for c in preview.crs.candidates][0] == 9212


def test_planner_can_override_the_crs(tmp_path):
    path = shapefile_zip(tmp_path, prj=None)
    preview = preview_upload(path, "diem_nong.zip", ReadOptions(crs_epsg=9212))
    assert preview.crs.source == "user" and not preview.needs_confirmation
    with pytest.raises(InvalidUpload, match="EPSG:999999"):
        preview_upload(path, "diem_nong.zip", ReadOptions(crs_epsg=999999))


# -- encodings ---------------------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["cp1258", "tcvn3", "vni", "utf-8"])
def test_legacy_encodings_are_detected_and_decoded_to_nfc(tmp_path, encoding):
    preview = preview_upload(shapefile_zip(tmp_path, encoding=encoding), "diem_nong.zip")
    assert preview.encoding.encoding == encoding
    assert preview.encoding_source == "detected"
    assert preview.frame["ten"].tolist() == NAMES
    assert preview.frame["phuong"].tolist() == WARDS


def test_cpg_is_honoured_unless_the_bytes_contradict_it(tmp_path):
    right = preview_upload(shapefile_zip(tmp_path, encoding="cp1258", cpg="1258"), "d.zip")
    assert right.encoding_source == "cpg" and right.frame["ten"].tolist() == NAMES
    wrong = shapefile_zip(tmp_path, name="sai", encoding="tcvn3", cpg="UTF-8")
    overruled = preview_upload(wrong, "sai.zip")
    assert overruled.encoding_source == "detected" and overruled.frame["ten"].tolist() == NAMES
    assert any(".cpg" in w for w in overruled.warnings)
    forced = preview_upload(wrong, "sai.zip", ReadOptions(encoding="cp1258"))
    assert forced.encoding_source == "user" and forced.frame["ten"].tolist() != NAMES
    fixed = preview_upload(wrong, "sai.zip", ReadOptions(encoding="tcvn3"))
    assert fixed.encoding_source == "user" and fixed.frame["ten"].tolist() == NAMES


# -- formats -----------------------------------------------------------------------------
def test_zip_with_several_shapefiles_lets_the_planner_choose(tmp_path):
    a = write_shapefile(tmp_path / "a", "diem_nong", hotspot_frame())
    wards = gpd.GeoDataFrame({"TEN": ["Ô 1"]}, geometry=[Polygon(
        [tm3(106.80, 11.50), tm3(106.81, 11.50), tm3(106.81, 11.51)])], crs=9212)
    b = write_shapefile(tmp_path / "b", "ranh_gioi", wards)
    archive = zipfile.ZipFile(tmp_path / "nhieu.zip", "w")
    for f in a:
        archive.write(f, f"du_lieu/{f.name}")
    for f in b:
        archive.write(f, f"du_lieu/ranh/{f.name}")
    archive.close()
    first = preview_upload(tmp_path / "nhieu.zip", "nhieu.zip")
    assert len(first.datasets) == 2
    other = next(d.name for d in first.datasets if d.name != first.dataset.name)
    chosen = preview_upload(tmp_path / "nhieu.zip", "nhieu.zip", ReadOptions(dataset=other))
    assert chosen.dataset.name == other and chosen.geometry.geometry_type in (
        "MultiPolygon", "Point")
    assert {chosen.geometry.geometry_type, first.geometry.geometry_type} == {
        "MultiPolygon", "Point"}


def test_geopackage_layer_choice_geojson_kml_kmz(tmp_path):
    frame = hotspot_frame().to_crs(4326)
    gpkg = tmp_path / "du_lieu.gpkg"
    pyogrio.write_dataframe(frame, gpkg, layer="diem_nong")
    pyogrio.write_dataframe(frame.head(2), gpkg, layer="hai_diem", append=False)
    both = preview_upload(gpkg, "du_lieu.gpkg")
    assert len(both.datasets) == 2
    two = preview_upload(gpkg, "du_lieu.gpkg", ReadOptions(dataset=both.datasets[1].name))
    assert {two.feature_count, both.feature_count} == {2, 4}
    geojson = tmp_path / "diem.geojson"
    frame.to_file(geojson, driver="GeoJSON")
    assert preview_upload(geojson, "diem.geojson").frame["ten"].tolist() == NAMES
    kml = tmp_path / "diem.kml"
    pyogrio.write_dataframe(frame[["TEN", "geometry"]], kml, driver="KML")
    from_kml = preview_upload(kml, "diem.kml")
    assert from_kml.feature_count == 4 and from_kml.crs.epsg == 4326
    kmz = tmp_path / "diem.kmz"
    with zipfile.ZipFile(kmz, "w") as archive:
        archive.write(kml, "doc.kml")
    assert preview_upload(kmz, "diem.kmz").feature_count == 4


def test_csv_with_lonlat_and_with_projected_xy(tmp_path):
    lonlat = tmp_path / "diem.csv"
    lonlat.write_text("ten,lon,lat,ngay\nChùa Phước Huệ,106.85,11.52,03/04/2024\n"
                      "Nhà thờ Giáo xứ Đồng Xoài,\"106,86\",11.53,15/12/2023\n", encoding="utf-8")
    preview = preview_upload(lonlat, "diem.csv")
    assert preview.crs.epsg == 4326 and preview.feature_count == 2
    assert preview.frame["ngay"].tolist() == ["2024-04-03", "2023-12-15"]
    assert preview.frame["ten"].tolist()[0] == "Chùa Phước Huệ"
    xy = tmp_path / "toa_do.csv"
    xy.write_text(f"ten;x;y\nĐiểm A;{TM3_POINT[0]};{TM3_POINT[1]}\n", encoding="utf-8")
    projected = preview_upload(xy, "toa_do.csv")
    assert projected.crs.epsg == 9212 and projected.needs_confirmation
    point = projected.frame.geometry.iloc[0]
    assert metres((point.x, point.y), WGS84_POINT) < 1.0


# -- validation --------------------------------------------------------------------------
def test_invalid_and_empty_geometries_are_counted_and_types_inferred(tmp_path):
    bowtie = Polygon([tm3(106.80, 11.50), tm3(106.82, 11.52), tm3(106.82, 11.50),
                      tm3(106.80, 11.52)])
    square = Polygon([tm3(106.83, 11.50), tm3(106.84, 11.50), tm3(106.84, 11.51),
                      tm3(106.83, 11.51)])
    frame = gpd.GeoDataFrame({"TEN": ["hỏng", "tốt", "trống"], "SO_HO": [10, 20, 30],
                              "DIEN_TICH": [1.5, 2.25, 3.0], "MA": ["001", "002", "003"]},
                             geometry=[bowtie, square, None], crs=9212)
    files = write_shapefile(tmp_path / "src", "vung", frame)
    preview = preview_upload(zip_files(tmp_path / "vung.zip", files), "vung.zip")
    assert preview.geometry.repaired == 1 and preview.geometry.dropped_empty == 1
    assert preview.feature_count == 2 and preview.frame.geometry.is_valid.all()
    assert any("repaired" in w for w in preview.warnings)
    types = {f.name: f.type for f in preview.fields}
    assert types == {"ten": "text", "so_ho": "integer", "dien_tich": "number", "ma": "text"}


def test_features_far_from_the_city_are_flagged(tmp_path):
    path = tmp_path / "xa.geojson"
    gpd.GeoDataFrame({"ten": ["Hà Nội"]}, geometry=[Point(105.85, 21.03)], crs=4326).to_file(
        path, driver="GeoJSON")
    preview = preview_upload(path, "xa.geojson")
    assert preview.outside == 1 and any("outside the city" in w for w in preview.warnings)


# -- publishing --------------------------------------------------------------------------
def test_publish_maps_fields_wards_and_vocabulary_labels(tmp_path, store):
    preview = preview_upload(shapefile_zip(tmp_path, encoding="vni"), "diem_nong.zip")
    layer = publish(store, preview, PublishSpec("nhap", "Điểm nóng nhập", "hotspot",
                                                 HOTSPOT_MAP, public=True,
                                                 private_fields=("description",)))
    assert layer.public and not layer.fields[[f.name for f in layer.fields].index(
        "description")].public
    features = store.query_features("nhap", FeatureQuery()).features
    props = [f.properties for f in features]
    assert [p["ward"] for p in props] == ["25195", "25213", "25201", "25204"]
    assert [p["status"] for p in props] == ["reported", "resolved", "in_progress", "verified"]
    assert props[0]["reported_at"] == "2022-03-05" and props[0]["name"] == NAMES[0]
    assert metres((features[0].geometry.x, features[0].geometry.y), WGS84_POINT) < 1.0


def test_generic_publish_keeps_all_columns(tmp_path, store):
    preview = preview_upload(shapefile_zip(tmp_path), "diem_nong.zip")
    layer = publish(store, preview, PublishSpec("chung", "Lớp chung", private_fields=("ngay",)))
    assert [f.name for f in layer.fields] == ["ten", "phuong", "trang_thai", "loai", "muc_do",
                                              "ngay"]
    assert [f.public for f in layer.fields][-1] is False
    first = store.query_features("chung", FeatureQuery(limit=1)).features[0]
    assert first.properties["muc_do"] == 1 and first.properties["ngay"] == "2022-03-05"


def test_missing_required_mapping_and_bad_values_store_nothing(tmp_path, store):
    preview = preview_upload(shapefile_zip(tmp_path), "diem_nong.zip")
    with pytest.raises(InvalidUpload, match="Status"):
        publish(store, preview, PublishSpec("x", "X", "hotspot", {"name": "ten"}))
    bad = {**HOTSPOT_MAP, "severity": "ngay"}  # dates are no severity: feature 1 fails
    with pytest.raises(InvalidFeature, match="Feature 1"):
        publish(store, preview, PublishSpec("x", "X", "hotspot", bad))
    with pytest.raises(LayerNotFound):
        store.get_layer("x")


def test_a_crash_half_way_through_an_import_leaves_no_trace(tmp_path, store, monkeypatch):
    preview = preview_upload(shapefile_zip(tmp_path), "diem_nong.zip")
    before = {la.slug: store.count_features(la.slug) for la in store.list_layers()}
    original, calls = SQLiteStore._insert_batch, []

    def failing_batch(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # the first batch is already written when the disk fills up
            raise OSError("disk full")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(SQLiteStore, "BATCH", 2)
    monkeypatch.setattr(SQLiteStore, "_insert_batch", failing_batch)
    with pytest.raises(OSError):
        publish(store, preview, PublishSpec("nhap", "Nhập", "hotspot", HOTSPOT_MAP))
    monkeypatch.undo()
    assert len(calls) == 2
    assert {la.slug: store.count_features(la.slug) for la in store.list_layers()} == before


def test_reupload_makes_a_new_version_and_the_old_one_can_be_restored(tmp_path, store):
    preview = preview_upload(shapefile_zip(tmp_path), "diem_nong.zip")
    publish(store, preview, PublishSpec("nhap", "Nhập", "hotspot", HOTSPOT_MAP))
    smaller = hotspot_frame().head(2)
    files = write_shapefile(tmp_path / "v2", "diem_nong", smaller)
    second = preview_upload(zip_files(tmp_path / "v2.zip", files), "v2.zip")
    publish(store, second, PublishSpec("nhap", "Nhập", "hotspot", HOTSPOT_MAP, replace=True))
    assert store.count_features("nhap") == 2
    assert [v.data_version for v in store.list_versions("nhap")] == [2, 1]
    store.restore_version("nhap", 1)
    assert store.count_features("nhap") == 4


# -- hardening ---------------------------------------------------------------------------
def test_hostile_and_broken_files_are_refused_clearly(tmp_path):
    xxe = tmp_path / "xxe.kml"
    xxe.write_text('<?xml version="1.0"?><!DOCTYPE kml [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
                   '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&x;</name>'
                   "<Point><coordinates>106.85,11.52</coordinates></Point></Placemark></kml>")
    with pytest.raises(InvalidUpload, match="DOCTYPE"):
        preview_upload(xxe, "xxe.kml")
    empty = tmp_path / "rong.geojson"
    empty.write_text(json.dumps({"type": "FeatureCollection", "features": []}))
    with pytest.raises(InvalidUpload, match="no features"):
        preview_upload(empty, "rong.geojson")
    cut = tmp_path / "cut.geojson"
    full = gpd.GeoDataFrame({"ten": ["a"] * 50}, geometry=[Point(106.85, 11.52)] * 50, crs=4326)
    full.to_file(cut, driver="GeoJSON")
    cut.write_bytes(cut.read_bytes()[:700])
    with pytest.raises(InvalidUpload, match="could not be read"):
        preview_upload(cut, "cut.geojson")
    bad_csv = tmp_path / "sai.csv"
    bad_csv.write_text("ten,lon,lat\nA,106.85,11.52\nB,abc,11.5\nC,106.9,\n", encoding="utf-8")
    with pytest.raises(InvalidUpload, match=r"2 row\(s\).*line 3, 4"):
        preview_upload(bad_csv, "sai.csv")
    files = write_shapefile(tmp_path / "src", "thieu", hotspot_frame())
    no_dbf = zip_files(tmp_path / "thieu.zip", [f for f in files if f.suffix != ".dbf"])
    with pytest.raises(InvalidUpload, match=r"thieu\.dbf"):
        preview_upload(no_dbf, "thieu.zip")


def cut_shapefile_zip(tmp_path: Path, count: int = 10) -> Path:
    """A zipped shapefile of ``count`` points whose .shp lost its second half in transit."""
    frame = gpd.GeoDataFrame({"TEN": [f"Điểm {i}" for i in range(count)]},
                             geometry=[Point(*tm3(106.85 + i * 0.001, 11.52))
                                       for i in range(count)], crs=9212)
    files = write_shapefile(tmp_path / "cut", "diem_cut", frame)
    shp = next(f for f in files if f.suffix == ".shp")
    shp.write_bytes(shp.read_bytes()[: shp.stat().st_size // 2])
    return zip_files(tmp_path / "diem_cut.zip", files)


def test_a_cut_shapefile_is_refused_not_partly_read(tmp_path, store):
    with pytest.raises(InvalidUpload, match=r"damaged or incomplete.*\.shp file holds"):
        preview_upload(cut_shapefile_zip(tmp_path), "diem_cut.zip")
    assert "diem-cut" not in [la.slug for la in store.list_layers()]



@pytest.mark.parametrize("kml", [
    # A "<kml>" in a comment before the DOCTYPE must not end the prolog early.
    '<?xml version="1.0"?><!-- <kml> --><!DOCTYPE kml [<!ENTITY x "y">]>'
    '<kml xmlns="http://www.opengis.net/kml/2.2"><Placemark><name>&x;</name>'
    "<Point><coordinates>106.85,11.52</coordinates></Point></Placemark></kml>",
    '<?xml version="1.0"?><?pi <kml> ?>\n<!doctype kml [<!ENTITY x "y">]><kml/>',
])
def test_a_doctype_hidden_behind_a_comment_is_refused(tmp_path, kml):
    path = tmp_path / "an.kml"
    path.write_text(kml)
    with pytest.raises(InvalidUpload, match="DOCTYPE"):
        preview_upload(path, "an.kml")


def test_a_utf16_kml_is_refused_since_its_doctype_could_not_be_seen(tmp_path):
    """Refused (by the content check, or the UTF-8 rule behind it), never parsed."""
    path = tmp_path / "utf16.kml"
    path.write_bytes('<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE kml [<!ENTITY x "y">]>'
                     '<kml xmlns="http://www.opengis.net/kml/2.2"/>'.encode("utf-16"))
    with pytest.raises(InvalidUpload):
        preview_upload(path, "utf16.kml")
