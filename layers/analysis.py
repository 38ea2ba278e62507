"""Per-ward analysis of the plan's layers, as (Geo)DataFrames for notebooks and reports.

Why: the plan asks each ward to supervise its hotspots and waste collection (II.5, IV.2),
so planners need one table per ward — counts, densities and a monitoring priority — that
they can recompute from whatever layers the store holds, sample or imported.

Points are assigned to wards by location, never by their ``ward`` property: imported
layers often lack it, and a typo in it must not move a hotspot to another ward.
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from shapely.geometry.base import BaseGeometry

from .query import MAX_LIMIT, FeatureQuery
from .store.base import Store

# Area is measured in the national projected CRS the province's own files use
# (VN-2000 / TM-3 106-15, scale 0.9999): about 0.01 % from the ellipsoidal area here.
AREA_CRS = "EPSG:9212"

# Hotspot statuses (values of ``layers.kinds.HOTSPOT_STATUS``) still needing follow-up.
OPEN_STATUSES = ("reported", "verified", "in_progress")
RESOLVED_STATUS = "resolved"
DISMISSED_STATUS = "dismissed"

# Weight of a hotspot whose severity is missing or not 1–3 (generic imported layers).
DEFAULT_SEVERITY = 1

PRIORITY_FORMULA = (
    "priority_score = (sum of severity 1–3 of open hotspots, i.e. status reported, verified "
    "or in_progress) / ward area in km²; priority_rank 1 = highest score; ties go to the ward "
    "with more open hotspots, then to the lower ward code"
)

SUMMARY_COLUMNS = [
    "priority_rank", "code", "name", "area_km2",
    "hotspots", "open_hotspots", "resolved_hotspots", "dismissed_hotspots",
    "open_severity", "open_per_km2", "priority_score",
    "collection_points", "collection_points_per_km2", "model_communities",
]


def layer_frame(store: Store, slug: str) -> gpd.GeoDataFrame:
    """All features of a layer as a GeoDataFrame (EPSG:4326, ``id`` plus one column per property).

    Pages through ``query_features`` with the largest page the store allows, so a layer of
    any size comes back whole without one unbounded query.
    """
    rows: list[dict[str, Any]] = []
    geoms: list[BaseGeometry] = []
    after: tuple[int, int] | None = None
    while True:
        page = store.query_features(slug, FeatureQuery(limit=MAX_LIMIT, after=after))
        for f in page.features:
            rows.append({**f.properties, "id": f.id})  # the feature id wins over a property
            geoms.append(f.geometry)
        if page.next_after is None:
            break
        after = page.next_after
    frame = pd.DataFrame(rows, columns=None if rows else ["id"])
    frame = frame[["id", *[c for c in frame.columns if c != "id"]]]
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geoms, crs="EPSG:4326"),
                            crs="EPSG:4326")


def _ward_of(points: gpd.GeoDataFrame, wards: gpd.GeoDataFrame) -> pd.Series:
    """Ward code of each point lying inside a ward; a point in two overlapping wards counts once.

    Points outside every ward (or exactly on a boundary) get no ward and are left out of
    the per-ward counts; ``ward_summary`` reports how many in ``attrs["unassigned"]``.
    """
    if points.empty:
        return pd.Series([], dtype=object, index=points.index)
    joined = gpd.sjoin(
        points[["geometry"]], wards[["__ward", "geometry"]], how="left", predicate="within"
    )
    joined = joined[~joined.index.duplicated(keep="first")]
    return joined["__ward"].reindex(points.index)


def _count_by_ward(codes: pd.Series, index: pd.Index) -> pd.Series:
    return codes.dropna().value_counts().reindex(index, fill_value=0).astype(int)


def ward_summary(
    store: Store,
    wards_slug: str = "wards",
    hotspots_slug: str = "hotspots",
    points_slug: str = "collection-points",
    models_slug: str = "model-communities",
) -> pd.DataFrame:
    """One row per ward: area, hotspot counts by outcome, collection points, model communities.

    Rows are sorted by ``priority_rank`` (see ``PRIORITY_FORMULA``): open hotspots weighted by
    severity per km², so a small ward with a few serious open cases comes before a large
    rural one with the same cases spread out. It is a monitoring aid, not a verdict.
    ``attrs["unassigned"]`` counts, per point layer, the features inside no ward.
    """
    wards = layer_frame(store, wards_slug)
    codes = wards.get("code", wards["id"]).astype(str)
    wards["__ward"] = codes
    out = pd.DataFrame({
        "code": codes.to_numpy(),
        "name": wards.get("name", codes).fillna(codes).astype(str).to_numpy(),
        "area_km2": wards.to_crs(AREA_CRS).area.to_numpy() / 1e6,
    }).set_index("code", drop=False)
    out.index.name = None

    hotspots = layer_frame(store, hotspots_slug)
    hot_ward = _ward_of(hotspots, wards)
    status = hotspots.get("status", pd.Series(None, index=hotspots.index, dtype=object))
    severity = pd.to_numeric(
        hotspots.get("severity", pd.Series(np.nan, index=hotspots.index)), errors="coerce"
    )
    severity = severity.where(severity.isin([1, 2, 3]), DEFAULT_SEVERITY)
    is_open = status.isin(OPEN_STATUSES)
    out["hotspots"] = _count_by_ward(hot_ward, out.index)
    out["open_hotspots"] = _count_by_ward(hot_ward[is_open], out.index)
    out["resolved_hotspots"] = _count_by_ward(hot_ward[status == RESOLVED_STATUS], out.index)
    out["dismissed_hotspots"] = _count_by_ward(hot_ward[status == DISMISSED_STATUS], out.index)
    out["open_severity"] = (
        severity[is_open].groupby(hot_ward[is_open]).sum()
        .reindex(out.index, fill_value=0).astype(int)
    )

    points = layer_frame(store, points_slug)
    point_ward = _ward_of(points, wards)
    out["collection_points"] = _count_by_ward(point_ward, out.index)
    models = layer_frame(store, models_slug)
    model_ward = _ward_of(models, wards)
    out["model_communities"] = _count_by_ward(model_ward, out.index)

    area = out["area_km2"].where(out["area_km2"] > 0)  # a degenerate ward gets NaN, not inf
    out["open_per_km2"] = out["open_hotspots"] / area
    out["collection_points_per_km2"] = out["collection_points"] / area
    out["priority_score"] = out["open_severity"] / area
    ordered = out.sort_values(
        ["priority_score", "open_hotspots", "code"],
        ascending=[False, False, True], na_position="last",
    )
    ordered["priority_rank"] = np.arange(1, len(ordered) + 1)
    result = ordered[SUMMARY_COLUMNS].reset_index(drop=True)
    result.attrs["priority_formula"] = PRIORITY_FORMULA
    result.attrs["unassigned"] = {
        hotspots_slug: int(hot_ward.isna().sum()),
        points_slug: int(point_ward.isna().sum()),
        models_slug: int(model_ward.isna().sum()),
    }
    return result
