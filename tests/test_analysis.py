"""Per-ward analysis: totals reconcile with the store, areas are right, the ranking is sound."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from shapely.geometry import MultiPolygon, Point, box

from layers import analysis
from layers.analysis import OPEN_STATUSES, SUMMARY_COLUMNS, layer_frame, ward_summary
from layers.kinds import FieldDef, get_kind
from layers.query import FeatureQuery
from layers.sample import load_sample
from layers.store import SQLiteStore

POINT_SLUGS = {
    "hotspots": "hotspots",
    "collection-points": "collection_points",
    "model-communities": "model_communities",
}


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> SQLiteStore:
    store = SQLiteStore(tmp_path_factory.mktemp("analysis") / "s.sqlite")
    load_sample(store)
    return store


@pytest.fixture(scope="module")
def summary(sample_store: SQLiteStore) -> pd.DataFrame:
    return ward_summary(sample_store)


def matched(store: SQLiteStore, slug: str, **equals: tuple) -> int | None:
    # A page of 1000 counts up to 10 000 matches, more than the sample city holds.
    return store.query_features(slug, FeatureQuery(limit=1000, equals=equals)).matched


# -- layer_frame --------------------------------------------------------------------------


def test_layer_frame_has_every_feature_in_wgs84(sample_store: SQLiteStore) -> None:
    frame = layer_frame(sample_store, "hotspots")
    assert frame.crs.to_epsg() == 4326
    assert len(frame) == sample_store.count_features("hotspots")
    assert frame["id"].is_unique and list(frame.columns[:1]) == ["id"]
    assert set(frame.geom_type) == {"Point"}
    first = sample_store.get_feature("hotspots", int(frame["id"].iloc[0]))
    assert frame.iloc[0]["name"] == first.properties["name"]
    assert frame.geometry.iloc[0].equals(first.geometry)


def test_layer_frame_pages_through_large_layers(
    sample_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analysis, "MAX_LIMIT", 7)
    frame = layer_frame(sample_store, "hotspots")
    assert len(frame) == sample_store.count_features("hotspots")
    assert frame["id"].is_unique and frame["id"].is_monotonic_increasing


def test_layer_frame_of_an_empty_layer(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "e.sqlite")
    store.create_layer("empty", "Empty", "hotspot")
    frame = layer_frame(store, "empty")
    assert frame.empty and "id" in frame.columns and frame.crs.to_epsg() == 4326


# -- the sample city ----------------------------------------------------------------------


def test_one_row_per_ward(sample_store: SQLiteStore, summary: pd.DataFrame) -> None:
    assert list(summary.columns) == SUMMARY_COLUMNS
    wards = layer_frame(sample_store, "wards")
    assert sorted(summary["code"]) == sorted(wards["code"])
    assert dict(zip(summary["code"], summary["name"], strict=True)) == dict(
        zip(wards["code"], wards["name"], strict=True)
    )


def test_totals_equal_layer_counts(sample_store: SQLiteStore, summary: pd.DataFrame) -> None:
    for slug, column in POINT_SLUGS.items():
        assert summary[column].sum() == sample_store.count_features(slug), slug
    assert summary.attrs["unassigned"] == dict.fromkeys(POINT_SLUGS, 0)


def test_spatial_assignment_agrees_with_the_ward_property(
    sample_store: SQLiteStore, summary: pd.DataFrame
) -> None:
    # Every sample point lies strictly inside the ward its property names.
    by_code = summary.set_index("code")
    for slug, column in POINT_SLUGS.items():
        by_property = layer_frame(sample_store, slug)["ward"].value_counts()
        assert by_code[column].to_dict() == by_property.reindex(by_code.index, fill_value=0
                                                                ).to_dict(), slug


def test_status_accounting_matches_the_store(
    sample_store: SQLiteStore, summary: pd.DataFrame
) -> None:
    assert (
        summary["open_hotspots"] + summary["resolved_hotspots"] + summary["dismissed_hotspots"]
        == summary["hotspots"]
    ).all()
    statuses = {c.value for c in get_kind("hotspot").field("status").choices}
    assert set(OPEN_STATUSES) | {"resolved", "dismissed"} == statuses
    assert summary["open_hotspots"].sum() == matched(sample_store, "hotspots",
                                                     status=OPEN_STATUSES)
    assert summary["resolved_hotspots"].sum() == matched(sample_store, "hotspots",
                                                         status=("resolved",))
    assert summary["dismissed_hotspots"].sum() == matched(sample_store, "hotspots",
                                                          status=("dismissed",))
    severity = sum(
        f.properties["severity"]
        for f in sample_store.query_features(
            "hotspots", FeatureQuery(limit=1000, equals={"status": OPEN_STATUSES})
        ).features
    )
    assert summary["open_severity"].sum() == severity


def test_area_is_the_city_area(summary: pd.DataFrame) -> None:
    assert summary["area_km2"].sum() == pytest.approx(165, rel=0.10)
    assert (summary["area_km2"] > 1).all()


def test_priority_rank_is_a_permutation_ordered_by_score(summary: pd.DataFrame) -> None:
    assert sorted(summary["priority_rank"]) == list(range(1, 9))
    assert summary["priority_score"].to_numpy() == pytest.approx(
        (summary["open_severity"] / summary["area_km2"]).to_numpy()
    )
    ranked = summary.sort_values("priority_rank")
    assert ranked["priority_score"].is_monotonic_decreasing
    assert summary["open_per_km2"].to_numpy() == pytest.approx(
        (summary["open_hotspots"] / summary["area_km2"]).to_numpy()
    )


# -- a store small enough to check by hand ------------------------------------------------

# Two 0.01° × 0.01° squares side by side at 11.50–11.51° N. At 11.505° N one hundredth of a
# degree is 1.1062 km of latitude and 1.0910 km of longitude, so each square is about 1.2068 km²
# on the ellipsoid; TM-3's scale near 106.8° E (0.99994) makes it 1.2067 km² in EPSG:9212.
SQUARE_KM2 = 1.2067
WEST = MultiPolygon([box(106.80, 11.50, 106.81, 11.51)])
EAST = MultiPolygon([box(106.81, 11.50, 106.82, 11.51)])


def hotspot(x: float, y: float, severity: int, status: str, ward: str | None = None) -> tuple:
    props = {"name": f"H {x} {y}", "category": "water", "severity": severity,
             "status": status, "reported_at": "2024-01-01"}
    if ward:
        props["ward"] = ward
    return Point(x, y), props


def two_ward_store(path: Path) -> SQLiteStore:
    store = SQLiteStore(path)
    store.create_layer("wards", "Wards", "ward")
    store.add_features("wards", [
        (WEST, {"code": "W", "name": "Phường Tây", "type": "phuong"}),
        (EAST, {"code": "E", "name": "Xã Đông", "type": "xa"}),
    ])
    store.create_layer("hotspots", "Hotspots", "hotspot")
    store.add_features("hotspots", [
        hotspot(106.801, 11.501, 3, "reported", ward="E"),  # in the west, whatever it says
        hotspot(106.805, 11.505, 1, "verified"),
        hotspot(106.808, 11.502, 2, "resolved"),
        hotspot(106.809, 11.509, 3, "dismissed"),
        hotspot(106.815, 11.505, 2, "in_progress", ward="W"),  # in the east
        hotspot(106.830, 11.505, 3, "reported"),  # outside both wards
    ])
    # An imported generic layer: no ward field at all.
    store.create_layer("bins", "Bins", "generic", geometry_type="Point",
                       fields=[FieldDef("name", "text", "Tên", "Name")])
    store.add_features("bins", [
        (Point(106.802, 11.503), {"name": "w1"}),
        (Point(106.807, 11.507), {"name": "w2"}),
        (Point(106.812, 11.501), {"name": "e1"}),
        (Point(106.815, 11.505), {"name": "e2"}),
        (Point(106.819, 11.509), {"name": "e3"}),
        (Point(106.81, 11.505), {"name": "on the shared boundary"}),
    ])
    store.create_layer("models", "Models", "model_community")
    store.add_features("models", [
        (Point(106.815, 11.508), {"name": "m1", "model_type": "composting"}),
    ])
    return store


def test_hand_computed_two_ward_summary(tmp_path: Path) -> None:
    store = two_ward_store(tmp_path / "two.sqlite")
    summary = ward_summary(store, points_slug="bins", models_slug="models")
    rows = summary.set_index("code")
    west, east = rows.loc["W"], rows.loc["E"]
    assert west["name"] == "Phường Tây" and east["name"] == "Xã Đông"
    assert west["area_km2"] == pytest.approx(SQUARE_KM2, rel=1e-3)
    assert east["area_km2"] == pytest.approx(SQUARE_KM2, rel=1e-3)

    expected = {
        # column: (west, east)
        "hotspots": (4, 1),
        "open_hotspots": (2, 1),
        "resolved_hotspots": (1, 0),
        "dismissed_hotspots": (1, 0),
        "open_severity": (3 + 1, 2),
        "collection_points": (2, 3),
        "model_communities": (0, 1),
        "priority_rank": (1, 2),
    }
    for column, (w, e) in expected.items():
        assert (west[column], east[column]) == (w, e), column
    assert west["priority_score"] == pytest.approx(4 / SQUARE_KM2, rel=1e-3)
    assert east["priority_score"] == pytest.approx(2 / SQUARE_KM2, rel=1e-3)
    assert west["open_per_km2"] == pytest.approx(2 / SQUARE_KM2, rel=1e-3)
    assert east["collection_points_per_km2"] == pytest.approx(3 / SQUARE_KM2, rel=1e-3)
    assert list(summary["code"]) == ["W", "E"]  # rows come in priority order
    # The hotspot east of both wards and the bin on their shared edge belong to neither.
    assert summary.attrs["unassigned"] == {"hotspots": 1, "bins": 1, "models": 0}


def test_ties_and_empty_layers(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "tie.sqlite")
    store.create_layer("wards", "Wards", "ward")
    store.add_features("wards", [
        (EAST, {"code": "2", "name": "B", "type": "xa"}),
        (WEST, {"code": "1", "name": "A", "type": "xa"}),
    ])
    for slug, kind in (("hotspots", "hotspot"), ("collection-points", "collection_point"),
                       ("model-communities", "model_community")):
        store.create_layer(slug, slug, kind)
    summary = ward_summary(store)
    assert list(summary["code"]) == ["1", "2"]  # equal scores: the lower code first
    assert list(summary["priority_rank"]) == [1, 2]
    assert (summary[["hotspots", "collection_points", "model_communities"]] == 0).all().all()
    assert (summary["priority_score"] == 0).all()


def test_generic_layers_without_the_standard_fields(tmp_path: Path) -> None:
    """Imported layers may lack code, name, severity or status: fall back, don't fail."""
    store = SQLiteStore(tmp_path / "generic.sqlite")
    store.create_layer("wards", "Wards", "generic", geometry_type="MultiPolygon")
    (west_id,) = store.add_features("wards", [(WEST, {"TEN": "Tây"})])
    store.create_layer("hotspots", "Hotspots", "generic", geometry_type="Point")
    store.add_features("hotspots", [
        (Point(106.801, 11.501), {"status": "reported"}),  # no severity: weighs 1
        (Point(106.802, 11.502), {"severity": "3"}),  # no status: not open
    ])
    for slug in ("collection-points", "model-communities"):
        store.create_layer(slug, slug, "generic", geometry_type="Point")
    row = ward_summary(store).iloc[0]
    assert (row["code"], row["name"]) == (str(west_id), str(west_id))
    assert (row["hotspots"], row["open_hotspots"], row["open_severity"]) == (2, 1, 1)
