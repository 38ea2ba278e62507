"""Wards agree everywhere: names as agencies write them are codes, and a feature that names
no ward gets the ward it lies in, whether it came from the form, a citizen or a file."""

from __future__ import annotations

import geopandas as gpd
import pytest
from shapely import unary_union
from shapely.geometry import Point, shape

from layers.query import FeatureQuery
from tests.ingest_files import tm3, write_shapefile, zip_files
from tests.support import csrf_token, login
from tests.test_bad_input import new_hotspot
from tests.test_manage import upload
from tests.test_public import report

SPELLINGS = {"P. Tân Phú": "25195", "P.Tân Thiện": "25205", "X. Tiến Hưng": "25213",
             "TAN BINH": "25201", "Tan Binh": "25201", "phường tân đồng": "25198",
             "25207": "25207"}


@pytest.fixture
def planner(client):
    return login(client, "planner")


def ward_at(client, lon: float, lat: float) -> str:
    """The code of the ward whose boundary holds the point, read from the API."""
    wards = client.get("/api/layers/wards/features").json["features"]
    [code] = [w["properties"]["code"] for w in wards
              if shape(w["geometry"]).contains(Point(lon, lat))]
    return code


def filtered(client, code: str) -> set[int]:
    page = client.get(f"/api/layers/hotspots/features?ward={code}&limit=10000").json
    return {f["id"] for f in page["features"]}


def added_id(response) -> int:
    assert response.status_code == 302, response.get_data(as_text=True)
    return int(response.headers["Location"].rsplit("/", 1)[1])


def test_ward_names_as_agencies_write_them_match_their_codes(app, planner):
    store = app.extensions["gis_store"]
    for spelling, code in SPELLINGS.items():
        feature_id = added_id(new_hotspot(planner, ward=spelling))
        assert store.get_feature("hotspots", feature_id).properties["ward"] == code, spelling


@pytest.mark.parametrize("text", ["Phường Không Có", "{{7*7}}", "99999", "x" * 500])
def test_text_that_names_no_ward_is_refused(app, planner, text):
    store = app.extensions["gis_store"]
    before = store.count_features("hotspots")
    response = new_hotspot(planner, ward=text)
    assert response.status_code == 400
    assert "match no ward" in response.get_data(as_text=True) or "khớp" in response.get_data(
        as_text=True)
    assert store.count_features("hotspots") == before


def test_a_hotspot_added_without_a_ward_gets_the_ward_it_lies_in(app, planner):
    form = planner.get("/hotspots/hotspots/new").get_data(as_text=True)
    assert '<option value="">— phường/xã nơi điểm nằm —</option>' in form  # it says so
    code = ward_at(planner, 106.884, 11.536)
    feature_id = added_id(new_hotspot(planner, ward="", lon="106.884", lat="11.536"))
    store = app.extensions["gis_store"]
    assert store.get_feature("hotspots", feature_id).properties["ward"] == code
    assert feature_id in filtered(planner, code)  # the ward filter finds it


def test_an_edit_that_clears_the_ward_gets_it_back_by_location(app, planner):
    store = app.extensions["gis_store"]
    feature = store.query_features("hotspots", FeatureQuery(limit=1)).features[0]
    url = f"/hotspots/hotspots/{feature.id}/edit"
    form = {**{k: str(v) for k, v in feature.properties.items()}, "ward": "",
            "lon": str(feature.geometry.x), "lat": str(feature.geometry.y),
            "version": str(feature.version), "csrf_token": csrf_token(planner, url)}
    assert planner.post(url, data=form).status_code == 302
    code = ward_at(planner, feature.geometry.x, feature.geometry.y)
    assert store.get_feature("hotspots", feature.id).properties["ward"] == code


def test_features_get_the_ward_of_the_newest_boundaries(app, client, planner):
    """After a boundary change (the 2025 merger) the new ward layer is the one places lie in
    and a name both layers use means the new ward; the old wards' other names still match
    their codes, so history keeps its meaning."""
    store = app.extensions["gis_store"]
    old = {w.properties["code"]: w.geometry
           for w in store.query_features("wards", FeatureQuery()).features}
    west = unary_union([old["25207"], old["25210"]])  # Tân Thành and Tiến Thành
    east = unary_union([g for code, g in old.items() if code not in ("25207", "25210")])
    store.create_layer("wards-2025", "Phường 2025", "ward", features=[
        (west, {"code": "26001", "name": "Phường Tân Thành", "type": "phuong"}),
        (east, {"code": "26000", "name": "Phường Bình Phước", "type": "phuong"})])
    response = report(app.test_client(), lat="11.516", lon="106.888")
    slug, feature_id = store.find_report(response.headers["Location"].rsplit("/", 1)[1])
    assert store.get_feature(slug, feature_id).properties["ward"] == "26000"
    for spelling, code in {"P. Tân Phú": "25195", "P. Bình Phước": "26000",
                           "Tân Thành": "26001", "X. Tân Thành": "25207"}.items():
        added = added_id(new_hotspot(planner, ward=spelling))
        assert store.get_feature("hotspots", added).properties["ward"] == code, spelling


def hotspots_zip(tmp_path, wards: list[str | None]):
    points = [Point(*tm3(106.884, 11.536)), Point(*tm3(106.895, 11.488)),
              Point(*tm3(106.868, 11.527)), Point(*tm3(106.888, 11.516))]
    frame = gpd.GeoDataFrame({
        "TEN": ["Bãi rác A", "Bãi rác B", "Bãi rác C", "Bãi rác D"], "PHUONG": wards,
        "LOAI": ["illegal_dumping"] * 4, "MUC_DO": [1, 2, 3, 2],
        "TRANG_THAI": ["Tiếp nhận"] * 4, "NGAY": ["05/03/2022"] * 4,
    }, geometry=points, crs=9212)
    files = write_shapefile(tmp_path / "src", "diem_nong", frame)
    return zip_files(tmp_path / "diem_nong.zip", files).read_bytes()


def publish_form(planner, token_url: str, slug: str) -> dict[str, str]:
    return {"csrf_token": csrf_token(planner, token_url), "kind": "hotspot", "title": slug,
            "slug": slug, "map_name": "ten", "map_ward": "phuong", "map_status": "trang_thai",
            "map_category": "loai", "map_severity": "muc_do", "map_reported_at": "ngay",
            "confirm": "on"}


def test_an_import_matches_ward_names_and_locates_features_without_one(app, planner, tmp_path):
    data = hotspots_zip(tmp_path, ["P. Tân Phú", "X. Tiến Hưng", "TAN BINH", None])
    token_url = upload(planner, data).headers["Location"]
    page = planner.get(token_url + "?kind=hotspot").get_data(as_text=True)
    assert "match no ward" not in page
    done = planner.post(token_url, data=publish_form(planner, token_url, "nhap-phuong"))
    assert done.status_code == 302
    store = app.extensions["gis_store"]
    wards = [f.properties.get("ward") for f in store.query_features(
        "nhap-phuong", FeatureQuery()).features]
    assert wards == ["25195", "25213", "25201", ward_at(planner, 106.888, 11.516)]


def test_an_import_warns_about_ward_names_that_match_nothing(app, planner, tmp_path):
    data = hotspots_zip(tmp_path, ["P. Tân Phú", "Phường Mới", "TAN BINH", "Phường Mới"])
    token_url = upload(planner, data).headers["Location"]
    page = planner.get(token_url + "?kind=hotspot").get_data(as_text=True)
    assert page.count("Phường Mới") >= 2 and "&#39;Phường Mới&#39;" in page  # in the warning
    refused = planner.post(token_url, data=publish_form(planner, token_url, "nhap-sai"))
    assert refused.status_code == 400 and "Phường Mới" in refused.get_data(as_text=True)
    store = app.extensions["gis_store"]
    assert "nhap-sai" not in [la.slug for la in store.list_layers()]
