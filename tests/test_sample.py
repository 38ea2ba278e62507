"""The illustrative sample data: plausible Đồng Xoài geography, valid features, reproducible."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import time
import unicodedata
from pathlib import Path

import numpy as np
import pyproj
import pytest
import shapely
from shapely.geometry import shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from layers.errors import LayerExists
from layers.kinds import clean_properties, get_kind
from layers.sample import (
    _HOTSPOT_NAMES,
    _WORSHIP,
    ILLUSTRATIVE_NOTE_EN,
    ILLUSTRATIVE_NOTE_VI,
    SAMPLE_LAYERS,
    build_sample,
    load_sample,
)
from layers.store import SQLiteStore

REFERENCE = (
    Path(__file__).resolve().parents[2]
    / "shared" / "reference" / "dong_xoai_city_boundary_pre2025.geojson"
)
WARDS = {
    "25195": "Phường Tân Phú",
    "25198": "Phường Tân Đồng",
    "25201": "Phường Tân Bình",
    "25204": "Phường Tân Xuân",
    "25205": "Phường Tân Thiện",
    "25207": "Xã Tân Thành",
    "25210": "Phường Tiến Thành",
    "25213": "Xã Tiến Hưng",
}
POINT_LAYERS = ("hotspots", "collection-points", "model-communities", "places-of-worship")
_TO_UTM = pyproj.Transformer.from_crs(4326, 32648, always_xy=True)


def km2(geom: BaseGeometry) -> float:
    """Area in km², measured in UTM 48N rather than in square degrees."""
    return shapely.transform(geom, lambda xy: np.column_stack(_TO_UTM.transform(*xy.T))).area / 1e6


def choice_values(kind: str, field: str) -> set:
    definition = get_kind(kind).field(field)
    assert definition is not None
    return {c.value for c in definition.choices}


@pytest.fixture(scope="module")
def sample() -> dict:
    return build_sample()


@pytest.fixture(scope="module")
def wards(sample: dict) -> dict[str, BaseGeometry]:
    return {props["code"]: geom for geom, props in sample["wards"]}


@pytest.fixture(scope="module")
def outline(wards: dict[str, BaseGeometry]) -> BaseGeometry:
    return unary_union(list(wards.values()))


def test_layers_slugs_and_kinds_in_order(sample: dict) -> None:
    assert list(SAMPLE_LAYERS.items()) == [
        ("wards", "ward"),
        ("hotspots", "hotspot"),
        ("collection-points", "collection_point"),
        ("model-communities", "model_community"),
        ("places-of-worship", "place_of_worship"),
    ]
    assert list(sample) == list(SAMPLE_LAYERS)


def test_eight_official_wards(sample: dict) -> None:
    props = [p for _, p in sample["wards"]]
    assert {p["code"]: p["name"] for p in props} == WARDS
    assert len(props) == 8
    for p in props:
        assert p["type"] == ("xa" if p["name"].startswith("Xã ") else "phuong")
        assert 1_000 <= p["population"] <= 60_000


def test_ward_geometries_are_valid_multipolygons(sample: dict) -> None:
    for geom, _ in sample["wards"]:
        assert geom.geom_type == "MultiPolygon"
        assert geom.is_valid and not geom.is_empty


def test_wards_tile_the_outline_without_gaps_or_overlaps(
    wards: dict[str, BaseGeometry], outline: BaseGeometry
) -> None:
    assert outline.geom_type == "Polygon"  # one piece...
    assert not outline.interiors  # ...with no holes between wards
    assert sum(w.area for w in wards.values()) == pytest.approx(outline.area, rel=1e-9)
    for a, b in itertools.combinations(wards.values(), 2):
        assert a.intersection(b).area < 1e-12


def test_outline_size_and_position(outline: BaseGeometry) -> None:
    assert 167 * 0.92 <= km2(outline) <= 167 * 1.08
    minx, miny, maxx, maxy = outline.bounds
    assert minx >= 106.755 and maxx <= 106.933
    assert miny >= 11.461 and maxy <= 11.577
    assert 3 <= len(outline.exterior.coords) - 1 <= 40  # a hand-made outline, not a copy


def test_outline_approximates_the_real_city(outline: BaseGeometry) -> None:
    real = shape(json.loads(REFERENCE.read_text(encoding="utf-8"))["features"][0]["geometry"])
    assert km2(outline.intersection(real)) >= 0.75 * km2(outline)


def test_central_urban_ward_is_small_and_near_the_centre(
    wards: dict[str, BaseGeometry]
) -> None:
    tan_phu = wards["25195"]
    assert tan_phu.distance(shapely.Point(106.88, 11.53)) < 0.01
    assert km2(tan_phu) < min(km2(wards[c]) for c in ("25207", "25210", "25213"))
    assert wards["25207"].centroid.y > tan_phu.centroid.y  # Tân Thành to the north
    assert wards["25210"].centroid.x < tan_phu.centroid.x  # Tiến Thành to the west
    assert wards["25213"].centroid.y < tan_phu.centroid.y  # Tiến Hưng to the south


def test_feature_counts(sample: dict) -> None:
    assert 130 <= len(sample["hotspots"]) <= 170
    assert 270 <= len(sample["collection-points"]) <= 330
    assert 35 <= len(sample["model-communities"]) <= 45
    assert 50 <= len(sample["places-of-worship"]) <= 70


def test_every_point_lies_strictly_inside_its_ward(
    sample: dict, wards: dict[str, BaseGeometry]
) -> None:
    for slug in POINT_LAYERS:
        for geom, props in sample[slug]:
            assert geom.geom_type == "Point"
            assert props["ward"] in WARDS
            assert geom.within(wards[props["ward"]]), (slug, props)


def test_properties_are_already_clean_for_their_kind(sample: dict) -> None:
    for slug, kind in SAMPLE_LAYERS.items():
        fields = get_kind(kind).fields
        required = {f.name for f in fields if f.required}
        for _, props in sample[slug]:
            assert clean_properties(fields, props) == props
            assert required <= props.keys()


def test_all_text_is_nfc(sample: dict) -> None:
    texts = [ILLUSTRATIVE_NOTE_VI, ILLUSTRATIVE_NOTE_EN]
    for features in sample.values():
        texts += [v for _, p in features for v in p.values() if isinstance(v, str)]
    for text in texts:
        assert unicodedata.is_normalized("NFC", text), text


def test_hotspots_cover_every_status_and_category(sample: dict) -> None:
    props = [p for _, p in sample["hotspots"]]
    assert {p["status"] for p in props} == choice_values("hotspot", "status")
    assert {p["category"] for p in props} == choice_values("hotspot", "category")
    assert {p["severity"] for p in props} == {1, 2, 3}
    assert all(p["source"] in choice_values("hotspot", "source") for p in props)
    assert all(p["name"] and p["description"] for p in props)


def test_hotspot_dates(sample: dict) -> None:
    first, last = dt.date(2021, 1, 1), dt.date(2025, 12, 31)
    reported = []
    for _, p in sample["hotspots"]:
        day = dt.date.fromisoformat(p["reported_at"])
        assert first <= day <= last
        reported.append(day)
        assert ("resolved_at" in p) == (p["status"] == "resolved")
        if "resolved_at" in p:
            assert day <= dt.date.fromisoformat(p["resolved_at"]) <= last
    assert {d.year for d in reported} == {2021, 2022, 2023, 2024, 2025}


def test_vocabulary_tables_match_the_kinds() -> None:
    assert set(_HOTSPOT_NAMES) == choice_values("hotspot", "category")
    assert set(_WORSHIP) == choice_values("place_of_worship", "religion")


def test_other_point_layers(sample: dict) -> None:
    models = [p for _, p in sample["model-communities"]]
    assert all(2015 <= p["since_year"] <= 2025 and p["households"] > 0 for p in models)
    assert all(p["partner"] for p in models)
    worship = [p for _, p in sample["places-of-worship"]]
    assert {p["religion"] for p in worship} == choice_values("place_of_worship", "religion")
    assert {p["in_model"] for p in worship} == {True, False}
    prefixes = ("Chùa ", "Nhà thờ Giáo xứ ", "Thánh thất Cao Đài ", "Hội thánh Tin Lành ", "Miếu ")
    assert all(p["name"].startswith(prefixes) for p in worship)
    points = [p for _, p in sample["collection-points"]]
    assert {p["type"] for p in points} == choice_values("collection_point", "type")


def _frozen(data: dict) -> dict:
    return {slug: [(g.wkb, p) for g, p in features] for slug, features in data.items()}


def test_same_seed_same_data_other_seed_other_points() -> None:
    assert _frozen(build_sample(7)) == _frozen(build_sample(7))
    a, b = build_sample(7), build_sample(8)
    assert [g.wkb for g, _ in a["wards"]] == [g.wkb for g, _ in b["wards"]]
    assert [g.wkb for g, _ in a["hotspots"]] != [g.wkb for g, _ in b["hotspots"]]


def test_build_is_fast() -> None:
    start = time.perf_counter()
    build_sample()
    assert time.perf_counter() - start < 1.0


def test_load_sample_creates_illustrative_layers(tmp_path: Path, sample: dict) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    counts = load_sample(store)
    assert counts == {slug: len(features) for slug, features in sample.items()}
    for slug, kind in SAMPLE_LAYERS.items():
        layer = store.get_layer(slug)
        assert layer.kind == kind
        assert layer.title.endswith(" (minh hoạ)")
        assert layer.public == (slug in {"wards", "hotspots"})
        assert store.count_features(slug) == counts[slug]
    assert store.get_layer("wards").title == "Ranh giới phường/xã (minh hoạ)"


def test_load_sample_twice_needs_replace(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.sqlite")
    counts = load_sample(store)
    with pytest.raises(LayerExists):
        load_sample(store)
    assert load_sample(store, replace=True) == counts
    assert {slug: store.count_features(slug) for slug in SAMPLE_LAYERS} == counts
