"""Checks and repairs on imported data, every one counted and reported, never silent.

Hand-drawn geometries are often invalid; attribute columns arrive as text whatever they
hold. Here geometries are repaired (``make_valid``) or dropped when empty, geometry types
are reconciled, and each column gets a type — including dates written dd/mm/yyyy.
"""

from __future__ import annotations

import datetime as dt
import re
import unicodedata
from dataclasses import dataclass, field

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
    families: frozenset[str] = frozenset()  # of the geometries kept

    def merge(self, other: GeometryReport) -> GeometryReport:
        """The report of two chunks of one file read one after the other."""
        return _report(self.repaired + other.repaired,
                       self.dropped_empty + other.dropped_empty,
                       self.dropped_nonfinite + other.dropped_nonfinite,
                       self.families | other.families)


def _report(repaired: int, empty: int, nonfinite: int, families: frozenset[str]
            ) -> GeometryReport:
    only = next(iter(families)) if len(families) == 1 else "Geometry"
    return GeometryReport(repaired, empty, nonfinite, only, len(families) > 1, families)


def clean_geometries(frame: gpd.GeoDataFrame, family: str | None = None
                     ) -> tuple[gpd.GeoDataFrame, GeometryReport]:
    """Drop null/empty geometries and those with NaN or infinite coordinates, drop heights,
    repair invalid ones and settle one geometry family.

    ``family`` is the one the whole file settled on, when ``frame`` is one chunk of it: its
    polygons are then made multi only if every chunk's are polygons (default: the frame's).
    """
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
    families = frozenset(FAMILIES.get(t, "Geometry") for t in frame.geometry.geom_type.unique())
    report = _report(report.repaired, report.dropped_empty, report.dropped_nonfinite, families)
    if (family or report.geometry_type) == "MultiPolygon":
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


def outside_count(boxes: np.ndarray, bounds: tuple[float, float, float, float],
                  margin_deg: float = 0.25) -> int:
    """How many features lie wholly outside the city's box widened by ``margin_deg``, from
    their lon/lat bounding boxes (rows of minx, miny, maxx, maxy), which a streamed import
    keeps for every feature where it cannot keep the geometries."""
    minx, miny, maxx, maxy = bounds
    return int(((boxes[:, 0] > maxx + margin_deg) | (boxes[:, 2] < minx - margin_deg)
                | (boxes[:, 1] > maxy + margin_deg) | (boxes[:, 3] < miny - margin_deg)).sum())


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


def _source_kind(values: pd.Series) -> str:
    """How the source typed a column: boolean, integer, float, date, or text (anything)."""
    if pd.api.types.is_bool_dtype(values):
        return "boolean"
    if pd.api.types.is_integer_dtype(values):
        return "integer"
    if pd.api.types.is_float_dtype(values):
        return "float"
    if pd.api.types.is_datetime64_any_dtype(values):
        return "date"
    return "text"


def _leading_zero(text: str) -> bool:
    """Codes with leading zeros ("0123") stay text: they are identifiers, not numbers."""
    return len(text) > 1 and text[0] == "0" and text[1].isdigit()


@dataclass
class ColumnEvidence:
    """What the values of one column seen so far allow it to be, chunk after chunk, so a
    streamed file is typed as if it had been read whole: the narrowest type every non-empty
    value fits. Text is examined once per distinct value (names and dates repeat a lot).

    ``declared`` says the source typed its columns (a DBF, a GeoPackage): a text column then
    stays text, as a ward code ``'25195'`` in a DBF character field must, and only its
    written dates are read.
    """

    declared: bool = False
    sources: set[str] = field(default_factory=set)  # _source_kind of each chunk
    texts: bool = False  # some non-empty text was seen
    dates: bool = True  # every non-empty text is a date
    numbers: bool = True  # every non-empty text is a number
    zeros: bool = False  # some text has a leading zero
    whole: bool = True  # every number (float or numeric text) is whole
    low: float = np.inf  # the smallest and largest number, to tell years
    high: float = -np.inf

    def observe(self, values: pd.Series) -> None:
        source = _source_kind(values)
        self.sources.add(source)
        if source in ("boolean", "date"):
            return
        if source != "text":
            numbers = values.dropna().to_numpy(dtype=float)
            if len(numbers):
                self.whole = self.whole and bool((np.isfinite(numbers)
                                                   & (numbers == np.round(numbers))).all())
                self.low, self.high = min(self.low, numbers.min()), max(self.high, numbers.max())
            return
        if self.texts and not (self.dates or self.numbers):
            return  # text already, whatever comes: a name column need not be read again
        distinct = {t for t in (str(v).strip() for v in values.dropna().unique().tolist()) if t}
        if not distinct:
            return
        self.texts = True
        self.dates = self.dates and all(parse_date(t) for t in distinct)
        if self.numbers:
            numbers = [None if self.declared else _number(t) for t in distinct]
            self.numbers = all(n is not None for n in numbers)
            if self.numbers:
                self.zeros = self.zeros or any(_leading_zero(t) for t in distinct)
                self.whole = self.whole and all(float(n).is_integer() for n in numbers)
                self.low, self.high = min(self.low, *numbers), max(self.high, *numbers)

    def kind(self, key: str) -> str:
        """The type of the column named ``key`` (a year: whole numbers in a column named
        as years, ``nam_thanh_lap``, ``since_year``)."""
        kind = "text"
        if self.sources == {"boolean"}:
            kind = "boolean"
        elif self.sources == {"date"}:
            kind = "date"
        elif self.sources and self.sources <= {"integer", "float"}:
            kind = "integer" if self.whole else "number"
        elif self.sources == {"text"} and self.texts:
            if self.dates:
                kind = "date"
            elif self.numbers and not self.zeros:
                kind = "integer" if self.whole else "number"
        seen = (self.low, self.high) if self.low <= self.high else ()
        return "year" if kind == "integer" and year_like(key, seen) else kind

    @staticmethod
    def convert(values: pd.Series, kind: str) -> list[object]:
        """The values as plain Python values of ``kind``, with None for empty, ready to
        store. Text is converted once per distinct value."""
        raw = values.tolist()  # Python values; NaN, None or NaT where missing
        missing = values.isna().tolist()
        source = _source_kind(values)
        if kind == "boolean":
            return [None if m else bool(v) for v, m in zip(raw, missing, strict=True)]
        if source == "date" and kind == "date":
            return [None if m else v.date().isoformat() for v, m in zip(raw, missing,
                                                                        strict=True)]
        if source in ("integer", "float") and kind in ("integer", "year", "number"):
            if kind == "number":
                return [None if m else v for v, m in zip(raw, missing, strict=True)]
            return [None if m else int(v) for v, m in zip(raw, missing, strict=True)]
        text = {v: (v if type(v) is str else str(_native(v))).strip()
                for v in values.dropna().unique().tolist()}
        if kind == "date":
            value = {v: parse_date(t) if t else None for v, t in text.items()}
        elif kind in ("integer", "year", "number"):
            value = {v: _number(t) if t else None for v, t in text.items()}
            if kind != "number":
                value = {v: None if n is None else int(n) for v, n in value.items()}
        else:
            value = {v: t or None for v, t in text.items()}
        return [None if m else value[v] for v, m in zip(raw, missing, strict=True)]


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if np.isfinite(value) else None


class FieldEvidence:
    """The attribute columns of a file: stable keys, and the evidence for each one's type,
    gathered chunk by chunk; then the FieldDefs and any chunk converted to them."""

    def __init__(self, columns: list[object], *, declared: bool = False) -> None:
        taken: set[str] = set()
        self.columns = columns
        self.labels: list[str] = []
        self.keys: list[str] = []
        for raw in columns:
            label = nfc(str(raw))
            if len(label) > TITLE_MAX:  # a column's name becomes a field's key and label
                raise InvalidUpload(Message(
                    "A column name is longer than {limit} characters ({start}…): rename it "
                    "in the file", limit=TITLE_MAX, start=label[:40]))
            self.labels.append(label)
            self.keys.append(field_name(label, taken))
        self.evidence = [ColumnEvidence(declared) for _ in columns]

    def observe(self, frame: pd.DataFrame) -> None:
        for raw, evidence in zip(self.columns, self.evidence, strict=True):
            evidence.observe(frame[raw])

    def fields(self) -> list[FieldDef]:
        return [FieldDef(key, evidence.kind(key), label, label) for key, label, evidence in
                zip(self.keys, self.labels, self.evidence, strict=True)]

    def convert(self, frame: pd.DataFrame, fields: list[FieldDef]) -> pd.DataFrame:
        """``frame``'s columns renamed to their keys and converted to ``fields``' types."""
        columns = {f.name: pd.Series(ColumnEvidence.convert(frame[raw], f.type),
                                     index=frame.index, dtype=object)
                   for raw, f in zip(self.columns, fields, strict=True)}
        return pd.DataFrame(columns, index=frame.index)
