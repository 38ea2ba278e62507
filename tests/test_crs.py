"""CRS diagnosis: VN-2000 shifts are applied, the D_WGS_1984 .prj trap is caught, guesses rank."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from pyproj import CRS, Geod, Transformer

from layers.ingest.crs import (
    VN2000_EPSG,
    CrsDiagnosis,
    diagnose_crs,
    shift_metres,
    transformer_to_wgs84,
)

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference" / "vn2000_test_points.json"
GEOD = Geod(ellps="WGS84")
DX_WGS84 = (106.8472, 11.5197)  # lon, lat of the computed Đồng Xoài reference point

_GEOGCS_WGS84 = (
    'GEOGCS["GCS_WGS_1984",DATUM["D_WGS_1984",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)
_GEOGCS_VN2000 = (
    'GEOGCS["GCS_VN_2000",DATUM["D_Vietnam_2000",SPHEROID["WGS_1984",6378137.0,298.257223563]],'
    'PRIMEM["Greenwich",0.0],UNIT["Degree",0.0174532925199433]]'
)
_TM3_106_15 = (
    'PROJECTION["Transverse_Mercator"],PARAMETER["False_Easting",500000.0],'
    'PARAMETER["False_Northing",0.0],PARAMETER["Central_Meridian",106.25],'
    'PARAMETER["Scale_Factor",0.9999],PARAMETER["Latitude_Of_Origin",0.0],UNIT["Meter",1.0]]'
)
# What ArcGIS/MapInfo exports from Vietnamese templates often look like: TM-3 on "WGS 84".
TRAP_PRJ = f'PROJCS["VN2000_TM3_BinhPhuoc_106_15",{_GEOGCS_WGS84},{_TM3_106_15}'
# ESRI-style VN-2000 TM-3, no AUTHORITY: pyproj alone may build a custom CRS without EPSG:6960.
VN2000_PRJ = f'PROJCS["VN_2000_TM3_106_15_Binh_Phuoc",{_GEOGCS_VN2000},{_TM3_106_15}'
# OGC flavour with a hand-written TOWGS84 (a BoundCRS in pyproj).
VN2000_TOWGS84_PRJ = (
    'PROJCS["VN-2000 / TM-3 Binh Phuoc",GEOGCS["VN-2000",DATUM["VN_2000",'
    'SPHEROID["WGS 84",6378137,298.257223563],TOWGS84[-191.90441429,-39.30318279,'
    '-111.45032835,0.00928836,-0.01975479,0.00427372,0.252906278]],PRIMEM["Greenwich",0],'
    'UNIT["degree",0.0174532925199433]],PROJECTION["Transverse_Mercator"],'
    'PARAMETER["latitude_of_origin",0],PARAMETER["central_meridian",106.25],'
    'PARAMETER["scale_factor",0.9999],PARAMETER["false_easting",500000],'
    'PARAMETER["false_northing",0],UNIT["metre",1]]'
)

TM3_BOUNDS = (564000.0, 1273000.0, 566000.0, 1275000.0)
UTM_BOUNDS = (700000.0, 1273000.0, 702000.0, 1275000.0)
TM3_107_45_BOUNDS = (400000.0, 1273000.0, 402000.0, 1275000.0)
DEGREE_BOUNDS = (106.80, 11.50, 106.88, 11.55)


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(GEOD.inv(a[0], a[1], b[0], b[1])[2])


def _reference() -> dict:
    if not REFERENCE.is_file():
        pytest.fail(f"reference check points missing: {REFERENCE}")
    return json.loads(REFERENCE.read_text(encoding="utf-8"))


def _dms(text: str) -> float:
    deg, minutes, seconds, hemi = re.fullmatch(r"(\d+)°(\d+)'([\d.]+)\"([NSEW])", text).groups()
    value = int(deg) + int(minutes) / 60 + float(seconds) / 3600
    return -value if hemi in "SW" else value


# --- transformations -------------------------------------------------------------------------


def test_vn2000_codes_are_the_ones_pyproj_knows() -> None:
    expected = {4756, 3405, 3406, *range(5896, 5900), *range(9205, 9219)}
    assert expected == VN2000_EPSG
    assert CRS.from_epsg(5899).name == "VN-2000 / TM-3 107-45"


@pytest.mark.parametrize("epsg", sorted(VN2000_EPSG))
def test_every_vn2000_transformer_uses_the_official_shift(epsg: int) -> None:
    assert "VN-2000 to WGS 84 (2)" in transformer_to_wgs84(epsg).description


def test_transformer_is_cached() -> None:
    assert transformer_to_wgs84(9212) is transformer_to_wgs84(9212)


@pytest.mark.parametrize(
    ("epsg", "xy", "lonlat"),
    [
        (9212, (564948.563, 1274006.181), DX_WGS84),
        (9212, (570705.753, 1275158.027), (106.9, 11.53)),
        (3405, (701269.756, 1274204.084), DX_WGS84),
    ],
)
def test_known_points_within_a_metre(epsg: int, xy: tuple, lonlat: tuple) -> None:
    assert _metres(transformer_to_wgs84(epsg).transform(*xy), lonlat) < 1.0


def test_reference_file_points_within_a_metre() -> None:
    ref = _reference()["computed_reference_dong_xoai"]
    lonlat = tuple(ref["wgs84_lonlat"])
    assert _metres(transformer_to_wgs84(9212).transform(*ref["vn2000_tm3_106_15_EN"]), lonlat) < 1
    assert (
        _metres(transformer_to_wgs84(3405).transform(*ref["vn2000_utm48n_EPSG3405_EN"]), lonlat) < 1
    )
    assert (
        _metres(
            transformer_to_wgs84(5899).transform(*ref["if_wrong_CM_107d45_EPSG5899_EN"]), lonlat
        )
        < 1
    )


@pytest.mark.parametrize("point_id", ["VP1", "NT1", "C1"])
def test_published_geographic_pairs_within_3_m(point_id: str) -> None:
    point = next(
        p for p in _reference()["published_pairs_geographic"]["points"] if p["id"] == point_id
    )
    vn_lat, vn_lon = map(_dms, point["vn2000_dms"])
    wgs_lat, wgs_lon = map(_dms, point["wgs84_dms"])
    assert _metres(transformer_to_wgs84(4756).transform(vn_lon, vn_lat), (wgs_lon, wgs_lat)) < 3.0
    # and the check is meaningful: without the shift the points are ~200 m apart
    assert _metres((vn_lon, vn_lat), (wgs_lon, wgs_lat)) > 150


# --- the D_WGS_1984 trap ---------------------------------------------------------------------


def test_literal_trap_reading_matches_the_no_shift_reference() -> None:
    ref = _reference()["computed_reference_dong_xoai"]
    literal = Transformer.from_crs(4326, CRS.from_wkt(TRAP_PRJ), always_xy=True)
    assert _metres_en(literal.transform(*DX_WGS84), ref["if_datum_shift_omitted_EN"]) < 1.0


def _metres_en(a: tuple[float, float], b: list[float]) -> float:
    return ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5


def test_trap_prj_is_corrected_to_9212_and_flagged() -> None:
    d = diagnose_crs(TRAP_PRJ, TM3_BOUNDS)
    assert (d.epsg, d.source, d.needs_confirmation) == (9212, "declared-corrected", True)
    assert d.candidates[0].epsg == 9212
    shift = shift_metres(TRAP_PRJ, 9212, 565000.0, 1274000.0)
    assert 150 < shift < 300
    quoted = [float(m) for w in d.warnings for m in re.findall(r"about (\d+) m", w)]
    assert len(quoted) == 1 and 150 < quoted[0] < 300
    assert abs(quoted[0] - shift) < 5


# --- declared CRSs ---------------------------------------------------------------------------


@pytest.mark.parametrize("prj", [VN2000_PRJ, VN2000_TOWGS84_PRJ])
def test_vn2000_prj_maps_to_9212_and_applies_the_shift(prj: str) -> None:
    d = diagnose_crs(prj, TM3_BOUNDS)
    assert d.epsg == 9212
    assert d.source in ("declared", "declared-corrected")
    assert not d.needs_confirmation
    xy = transformer_to_wgs84(d.epsg).transform(564948.563, 1274006.181)
    assert _metres(xy, DX_WGS84) < 1.0


@pytest.mark.parametrize(
    ("declared", "bounds"),
    [
        ("EPSG:9212", TM3_BOUNDS),
        ("EPSG:3405", UTM_BOUNDS),
        ("EPSG:4326", DEGREE_BOUNDS),
        ("EPSG:32648", UTM_BOUNDS),
    ],
)
def test_plain_epsg_declarations_are_honoured(declared: str, bounds: tuple) -> None:
    d = diagnose_crs(declared, bounds)
    assert d.epsg == int(declared.split(":")[1])
    assert d.source == "declared"
    assert not d.needs_confirmation
    assert d.confidence >= 0.9
    assert d.candidates[0].epsg == d.epsg


def test_esri_vn2000_geographic_is_4756() -> None:
    d = diagnose_crs(_GEOGCS_VN2000, DEGREE_BOUNDS)
    assert d.epsg == 4756 and not d.needs_confirmation


def test_declared_crs_that_puts_data_outside_vietnam_falls_back_to_a_guess() -> None:
    d = diagnose_crs("EPSG:4326", TM3_BOUNDS)  # metres labelled as degrees
    assert d.epsg == 9212 and d.source == "guessed" and d.needs_confirmation
    assert any("do not fall in Vietnam" in w for w in d.warnings)


def test_unparseable_declaration_is_guessed() -> None:
    d = diagnose_crs("not a crs", TM3_BOUNDS)
    assert d.epsg == 9212 and d.source == "guessed" and d.needs_confirmation


# --- guesses without a .prj ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bounds", "expected"),
    [(TM3_BOUNDS, 9212), (UTM_BOUNDS, 3405), (TM3_107_45_BOUNDS, 5899), (DEGREE_BOUNDS, 4326)],
)
def test_guess_ranks_the_reading_that_lands_in_the_city_first(bounds: tuple, expected: int) -> None:
    d = diagnose_crs(None, bounds)
    assert d.epsg == expected and d.candidates[0].epsg == expected
    assert d.source == "guessed" and d.needs_confirmation
    assert [c.confidence for c in d.candidates] == sorted(
        (c.confidence for c in d.candidates), reverse=True
    )


def test_degree_guess_offers_vn2000_geographic_as_runner_up() -> None:
    d = diagnose_crs(None, DEGREE_BOUNDS)
    assert [c.epsg for c in d.candidates][:2] == [4326, 4756]
    assert d.confidence < 0.7  # the two readings are only ~225 m apart: genuinely ambiguous


def test_utm_guess_keeps_wgs84_utm_as_a_lower_candidate() -> None:
    codes = [c.epsg for c in diagnose_crs(None, UTM_BOUNDS).candidates]
    assert 32648 in codes and codes.index(3405) < codes.index(32648)


@pytest.mark.parametrize(
    "bounds", [(0.0, 0.0, 10.0, 10.0), (1e9, 1e9, 1e9 + 10, 1e9 + 10), (float("nan"),) * 4]
)
def test_nonsense_bounds_need_confirmation(bounds: tuple) -> None:
    d = diagnose_crs(None, bounds)
    assert d.needs_confirmation and d.confidence < 0.2
    assert d.epsg is None and d.candidates == ()


def test_default_epsg_breaks_ties() -> None:
    # Without a city to aim for, several TM-3 zones place these eastings inside their own area.
    tied = diagnose_crs(None, TM3_BOUNDS, city_bounds=None)
    assert tied.epsg == 9212
    other = diagnose_crs(None, TM3_BOUNDS, city_bounds=None, default_epsg=9210)
    assert other.epsg == 9210 and tied.confidence < 0.5  # a tie is never confident
    # With degrees, the province's choice decides between WGS 84 and VN-2000 geographic.
    assert diagnose_crs(None, DEGREE_BOUNDS, default_epsg=4756).epsg == 4756


def test_city_beats_default_when_coordinates_are_clear() -> None:
    assert diagnose_crs(None, UTM_BOUNDS, default_epsg=9212).epsg == 3405


def test_diagnosis_is_immutable() -> None:
    d = diagnose_crs("EPSG:9212", TM3_BOUNDS)
    assert isinstance(d, CrsDiagnosis)
    with pytest.raises(AttributeError):
        d.epsg = 4326  # type: ignore[misc]
