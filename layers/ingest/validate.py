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

from ..errors import InvalidUpload
from ..kinds import FieldDef, year_like
from ..messages import Message
from ..text import TITLE_MAX, nfc

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
    dropped_nonfinite: int = 0  # coordinates NaN or infinite: GEOS cannot even test them
    geometry_type: str = "Geometry"
    mixed: bool = False


def clean_geometries(frame: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, GeometryReport]:
    """Drop null/empty geometries and those with NaN or infinite coordinates, drop heights,
    repair invalid ones and settle one geometry family."""
    report = GeometryReport()
    geoms = frame.geometry.values
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    report.dropped_empty = int(empty.sum())
    coords, owner = shapely.get_coordinates(geoms, return_index=True)
    nonfinite = np.zeros(len(geoms), dtype=bool)
    nonfinite[owner[~np.isfinite(coords).all(axis=1)]] = True
    report.dropped_nonfinite = int((nonfinite & ~empty).sum())
    frame = frame.loc[~(empty | nonfinite)].copy()
    # Heights (KML's altitudes, 3D shapefiles) go: maps and stores are 2D, PostGIS refuses Z.
    if shapely.has_z(frame.geometry.values).any():
        frame = frame.set_geometry(gpd.GeoSeries(
            shapely.force_2d(frame.geometry.values), index=frame.index, crs=frame.crs))
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
        geoms = frame.geometry.values.to_numpy().copy()
        single = shapely.get_type_id(geoms) == 3
        geoms[single] = shapely.multipolygons(geoms[single], indices=np.arange(single.sum()))
        frame = frame.set_geometry(gpd.GeoSeries(geoms, index=frame.index, crs=frame.crs))
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


def _native(value: object) -> object:
    """Plain Python value, None for every kind of missing (None, NaN, NA, NaT)."""
    if value is None or (pd.api.types.is_scalar(value) and pd.isna(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def infer_column(values: pd.Series, *, declared: bool = False) -> tuple[str, list[object]]:
    """The narrowest type every non-empty value fits, and the values converted to it.

    Text is examined once per distinct value (names and dates repeat a lot), and the
    result is plain Python values with None for empty, ready to store. ``declared`` says the
    source typed its columns (a DBF, a GeoPackage): a text column then stays text, as a ward
    code ``'25195'`` in a DBF character field must, and only its written dates are read.
    """
    raw = [_native(v) for v in values.tolist()]
    present = [v for v in raw if v is not None]
    if pd.api.types.is_bool_dtype(values):
        return "boolean", [None if v is None else bool(v) for v in raw]
    if pd.api.types.is_integer_dtype(values):
        return "integer", raw
    if pd.api.types.is_float_dtype(values):
        if all(float(v).is_integer() for v in present):
            return "integer", [None if v is None else int(v) for v in raw]
        return "number", raw
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date", [None if v is None else v.date().isoformat() for v in raw]
    text = {v: str(v).strip() for v in set(present)}
    distinct = {t for t in text.values() if t}
    if distinct:
        dates = {t: parse_date(t) for t in distinct}
        if all(dates.values()):
            return "date", [dates.get(text[v]) if v is not None else None for v in raw]
        numbers = {t: None if declared else _number(t) for t in distinct}
        # Codes with leading zeros ("0123") stay text: they are identifiers, not numbers.
        if all(n is not None for n in numbers.values()) and not any(
                len(t) > 1 and t[0] == "0" and t[1].isdigit() for t in distinct):
            whole = all(float(n).is_integer() for n in numbers.values())
            convert = (lambda t: int(numbers[t])) if whole else (lambda t: numbers[t])
            return ("integer" if whole else "number"), [
                convert(text[v]) if v is not None and text[v] else None for v in raw]
    return "text", [text[v] or None if v is not None else None for v in raw]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


def infer_fields(frame: pd.DataFrame, *, declared: bool = False
                 ) -> tuple[pd.DataFrame, list[FieldDef]]:
    """Rename attribute columns to stable keys, type them, and describe them as FieldDefs.

    ``declared``: the source typed its columns (see ``infer_column``). Whole numbers in a
    column named as years (``nam_thanh_lap``, ``since_year``) are years, shown as 2020.
    """
    taken: set[str] = set()
    columns: dict[str, pd.Series] = {}
    fields: list[FieldDef] = []
    for raw in frame.columns:
        label = nfc(str(raw))
        if len(label) > TITLE_MAX:  # a column's name becomes a field's key and label
            raise InvalidUpload(Message(
                "A column name is longer than {limit} characters ({start}…): rename it in "
                "the file", limit=TITLE_MAX, start=label[:40]))
        key = field_name(label, taken)
        kind, converted = infer_column(frame[raw], declared=declared)
        if kind == "integer" and year_like(key, (v for v in converted if v is not None)):
            kind = "year"
        columns[key] = pd.Series(converted, index=frame.index, dtype=object)
        fields.append(FieldDef(key, kind, label, label))
    out = pd.DataFrame(columns, index=frame.index)
    return out, fields
