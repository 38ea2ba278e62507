"""Checks and repairs on imported data, every one counted and reported, never silent.

Hand-drawn geometries are often invalid; attribute columns arrive as text whatever they
hold. Here geometries are repaired (``make_valid``) or dropped when empty, geometry types
are reconciled, and each column gets a type — including dates written dd/mm/yyyy.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..kinds import FieldDef

DMY = re.compile(r"^\s*(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})\s*$")
ISO = re.compile(r"^\s*(\d{4})-(\d{2})-(\d{2})(?:[T ].*)?$")
FAMILIES = {
    "Point": "Point", "MultiPoint": "Point",
    "LineString": "LineString", "MultiLineString": "LineString",
    "Polygon": "MultiPolygon", "MultiPolygon": "MultiPolygon",
}


@dataclass
class GeometryReport:
    """What cleaning did to the geometries."""

    repaired: int = 0
    dropped_empty: int = 0
    geometry_type: str = "Geometry"
    mixed: bool = False


def clean_geometries(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, GeometryReport]:
    """Drop null/empty geometries, repair invalid ones and settle one geometry family."""
    report = GeometryReport()
    geoms = frame.geometry.values
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    report.dropped_empty = int(empty.sum())
    frame = frame.loc[~empty].copy()
    geoms = frame.geometry.values
    invalid = ~shapely.is_valid(geoms)
    report.repaired = int(invalid.sum())
    if report.repaired:
        fixed = shapely.make_valid(geoms[invalid])
        geoms = geoms.copy()
        geoms[invalid] = [_keep_family(g) for g in fixed]
        frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
    families = {FAMILIES.get(t, "Geometry") for t in frame.geometry.geom_type.unique()}
    if len(families) == 1:
        report.geometry_type = families.pop()
    else:
        report.mixed = True
    if report.geometry_type == "MultiPolygon":
        frame = frame.set_geometry(
            frame.geometry.apply(lambda g: shapely.MultiPolygon([g]) if g.geom_type == "Polygon"
                                 else g)
        )
    return frame, report


def _keep_family(geom: shapely.Geometry) -> shapely.Geometry:
    """``make_valid`` may return a collection with stray lines or points: keep the areas."""
    if geom.geom_type != "GeometryCollection":
        return geom
    polygons = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if polygons:
        return shapely.union_all(polygons)
    return geom


def outside_count(frame: gpd.GeoDataFrame, bounds: tuple[float, float, float, float],
                  margin_deg: float = 0.25) -> int:
    """How many features lie wholly outside the city's box widened by ``margin_deg``."""
    minx, miny, maxx, maxy = bounds
    box = shapely.box(minx - margin_deg, miny - margin_deg, maxx + margin_deg, maxy + margin_deg)
    return int((~frame.geometry.intersects(box)).sum())


def field_name(raw: str, taken: set[str]) -> str:
    """A stable ASCII key for a source column: ``Tên_Phường`` → ``ten_phuong``."""
    text = unicodedata.normalize("NFD", raw.replace("đ", "d").replace("Đ", "D"))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    key = re.sub(r"[^a-z0-9]+", "_", text).strip("_") or "field"
    if key[0].isdigit():
        key = "f_" + key
    base, n = key, 2
    while key in taken:
        key, n = f"{base}_{n}", n + 1
    taken.add(key)
    return key


def parse_date(value: str) -> str | None:
    """ISO date from ``dd/mm/yyyy`` (the Vietnamese order) or ``yyyy-mm-dd``; None if neither."""
    if match := DMY.match(value):
        day, month, year = map(int, match.groups())
    elif match := ISO.match(value):
        year, month, day = map(int, match.groups())
    else:
        return None
    try:
        return dt.date(year, month, day).isoformat()
    except ValueError:
        return None


def infer_column(values: pd.Series) -> tuple[str, pd.Series]:
    """The narrowest type every non-empty value fits, and the column converted to it."""
    if pd.api.types.is_bool_dtype(values):
        return "boolean", values.astype(object)
    if pd.api.types.is_integer_dtype(values):
        return "integer", values.astype(object)
    if pd.api.types.is_float_dtype(values):
        whole = values.dropna()
        if len(whole) and np.all(np.mod(whole, 1) == 0):
            return "integer", values.map(lambda v: None if pd.isna(v) else int(v)).astype(object)
        return "number", values.astype(object).where(values.notna(), None)
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date", values.map(lambda v: None if pd.isna(v) else v.date().isoformat())
    text = values.map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v))
                      else str(v).strip())
    present = text.dropna()
    present = present[present != ""]
    if len(present):
        dates = present.map(parse_date)
        if dates.notna().all():
            return "date", text.map(lambda v: parse_date(v) if v else None)
        numeric = pd.to_numeric(present, errors="coerce")
        # Codes with leading zeros ("0123") stay text: they are identifiers, not numbers.
        if numeric.notna().all() and not present.str.match(r"^0\d").any():
            if np.all(np.mod(numeric, 1) == 0):
                return "integer", text.map(lambda v: int(float(v)) if v else None)
            return "number", text.map(lambda v: float(v) if v else None)
    return "text", text.map(lambda v: v if v else None)


def infer_fields(frame: pd.DataFrame) -> tuple[pd.DataFrame, list[FieldDef]]:
    """Rename attribute columns to stable keys, type them, and describe them as FieldDefs."""
    taken: set[str] = set()
    columns: dict[str, pd.Series] = {}
    fields: list[FieldDef] = []
    for raw in frame.columns:
        key = field_name(str(raw), taken)
        kind, converted = infer_column(frame[raw])
        columns[key] = converted
        fields.append(FieldDef(key, kind, str(raw), str(raw)))
    out = pd.DataFrame(columns, index=frame.index)
    return out, fields
