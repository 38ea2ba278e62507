"""Reading one dataset of an upload into a GeoDataFrame in its own coordinates.

Text of shapefiles and CSVs is read as Latin-1, which maps every byte to one character,
so the file's raw bytes come back exactly; ``encoding.py`` then decodes them with the
encoding the ``.cpg``, the detector or the planner chose. GeoPackage, GeoJSON and KML are
UTF-8 by definition and are read as such.
"""

from __future__ import annotations

import csv
import io
import posixpath
import re
import struct
import warnings
from dataclasses import dataclass, field, replace

import geopandas as gpd
import pandas as pd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from ..errors import InvalidUpload
from ..messages import Message
from .archive import Dataset, member_size, read_member_bytes

LON_NAMES = ("lon", "lng", "long", "longitude", "kinh_do", "kinhdo", "x", "easting", "toa_do_x")
LAT_NAMES = ("lat", "latitude", "vi_do", "vido", "y", "northing", "toa_do_y")
MAX_CSV_BYTES = 200 * 1024 * 1024
MAX_SHX_BYTES = 100 + 8 * 10_000_000  # the index of ten million shapes


@dataclass
class RawData:
    """A dataset as read: raw text still to decode when ``raw_text`` is True."""

    frame: gpd.GeoDataFrame
    declared_crs: str | None
    raw_text: bool
    warnings: list[Message] = field(default_factory=list)  # what GDAL warned of on reading
    declared_types: bool = False  # the source types its columns: its text stays text


def dataset_bytes(ds: Dataset, limit: int) -> bytes:
    """The bytes of a dataset's main file, inside the zip or not, refusing more than ``limit``."""
    if ds.path.startswith("/vsizip/"):
        data = read_member_bytes(ds, posixpath.splitext(ds.path)[1], limit + 1) or b""
    else:
        with open(ds.path.removeprefix("CSV:"), "rb") as handle:
            data = handle.read(limit + 1)
    if len(data) > limit:
        raise InvalidUpload(Message("{name} is larger than {limit} MB", name=ds.name,
                                    limit=limit // 2**20))
    return data


def refuse_xml_entities(data: bytes, name: str) -> None:
    """KML with a DOCTYPE can define external entities (XXE): such files are refused."""
    head = data[:65536].lower()
    if b"<!doctype" in head or b"<!entity" in head:
        raise InvalidUpload(Message(
            "{name} declares a DOCTYPE or XML entities, which KML does not need and which can "
            "be used to read files from the server; remove them and upload again", name=name))


def _damaged_shapefile(ds: Dataset, detail: Message) -> InvalidUpload:
    return InvalidUpload(Message(
        "{name} is damaged or incomplete ({detail}); nothing was imported. Export the "
        "shapefile again and upload all its files", name=ds.name, detail=detail))


def check_shapefile(ds: Dataset, features_read: int) -> None:
    """Refuse a shapefile whose parts disagree: GDAL reads a cut-off .shp without an error,
    handing back the shapes past the cut as empty ones, so they must be counted here.

    The .shx index holds one (offset, length) pair per shape and the .dbf header its record
    count; every shape must end inside the .shp, and the three must count the same rows.
    """
    shx = read_member_bytes(ds, ".shx", MAX_SHX_BYTES) or b""
    shp_size = member_size(ds, ".shp") or 0
    head = read_member_bytes(ds, ".shp", 100) or b""
    dbf = read_member_bytes(ds, ".dbf", 32) or b""
    if len(shx) < 100 or len(head) < 100 or len(dbf) < 8:
        raise _damaged_shapefile(ds, Message("a header is missing"))
    count = (len(shx) - 100) // 8
    index = struct.unpack(f">{2 * count}i", shx[100:100 + 8 * count])
    needed = max([100, 2 * struct.unpack(">i", head[24:28])[0]]
                 + [2 * (index[i] + index[i + 1]) + 8 for i in range(0, len(index), 2)])
    if shp_size < needed:
        raise _damaged_shapefile(ds, Message(
            "the .shp file holds {size} bytes of the {needed} its shapes need",
            size=shp_size, needed=needed))
    records = struct.unpack("<I", dbf[4:8])[0]
    if not count == records == features_read:
        raise _damaged_shapefile(ds, Message(
            "the .shx index lists {shapes} shapes, the .dbf table {records} rows and "
            "{read} could be read", shapes=count, records=records, read=features_read))


def read_vector(ds: Dataset) -> RawData:
    """Shapefile, GeoPackage, GeoJSON or KML through GDAL (pyogrio).

    GDAL's errors refuse the file; its warnings are kept for the preview to show.
    """
    shapefile = ds.format == "shapefile"
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            info = pyogrio.read_info(ds.path, layer=ds.layer) if ds.layer else (
                pyogrio.read_info(ds.path))
            kwargs = {"encoding": "latin1"} if shapefile else {}
            frame = pyogrio.read_dataframe(ds.path, layer=ds.layer, **kwargs)
    except (DataSourceError, DataLayerError, OSError, ValueError, RuntimeError) as exc:
        message = str(exc).replace(ds.path, ds.name)
        raise InvalidUpload(Message(
            "{name} could not be read as {format} (damaged or incomplete?): {error}",
            name=ds.name, format=ds.format, error=message)) from None
    if shapefile:
        check_shapefile(ds, len(frame))
    notes = [Message("GDAL warned while reading {name}: {warning}", name=ds.name,
                     warning=str(w.message).replace(ds.path, ds.name))
             for w in caught if issubclass(w.category, RuntimeWarning)]
    # KML's ExtendedData is untyped text whatever it holds; the other formats type columns.
    return RawData(frame, None if shapefile else info.get("crs"), shapefile, notes,
                   declared_types=ds.format != "kml")


def _pick(columns: list[str], names: tuple[str, ...], chosen: str | None) -> str | None:
    if chosen:
        if chosen not in columns:
            raise InvalidUpload(Message("The CSV has no column {column!r}; it has {columns}",
                                        column=chosen, columns=columns))
        return chosen
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[n] for n in names if n in lowered), None)


def _number(text: str) -> float | None:
    value = text.strip().replace(" ", "")
    if value.count(",") == 1 and "." not in value:
        value = value.replace(",", ".")  # decimal comma, as Vietnamese spreadsheets write it
    try:
        number = float(value)
    except ValueError:
        return None
    return number if number == number and abs(number) != float("inf") else None


def read_csv(data: bytes, name: str, x: str | None = None, y: str | None = None) -> RawData:
    """A CSV with coordinate columns (lon/lat or projected x/y) as points, text left raw."""
    try:
        table = pd.read_csv(io.BytesIO(data), dtype=str, encoding="latin1", sep=None,
                            engine="python", keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidUpload(Message("{name} is not a readable CSV table: {error}", name=name,
                                    error=str(exc))) from None
    columns = [str(c) for c in table.columns]
    x_col = _pick(columns, LON_NAMES, x)
    y_col = _pick(columns, LAT_NAMES, y)
    if not x_col or not y_col:
        raise InvalidUpload(Message(
            "{name} has no coordinate columns: name them lon/lat (or x/y for projected "
            "coordinates); its columns are {columns}", name=name, columns=columns))
    xs, ys = table[x_col].map(_number), table[y_col].map(_number)
    bad = [i + 2 for i in range(len(table)) if pd.isna(xs.iloc[i]) or pd.isna(ys.iloc[i])]
    if bad:
        rows = ", ".join(map(str, bad[:5])) + (" …" if len(bad) > 5 else "")
        raise InvalidUpload(Message(
            "{name}: {count} row(s) have coordinates that are not numbers (line {rows})",
            name=name, count=len(bad), rows=rows))
    frame = gpd.GeoDataFrame(
        table.drop(columns=[x_col, y_col]),
        geometry=gpd.points_from_xy(xs.astype(float), ys.astype(float)),
    )
    return RawData(frame, None, True)


def expand_layers(datasets: list[Dataset]) -> list[Dataset]:
    """One dataset per layer of a GeoPackage, so the planner can choose the layer."""
    out: list[Dataset] = []
    for ds in datasets:
        if ds.format != "gpkg":
            out.append(ds)
            continue
        try:
            names = [str(row[0]) for row in pyogrio.list_layers(ds.path)]
        except (DataSourceError, OSError, ValueError, RuntimeError) as exc:
            raise InvalidUpload(Message("{name} is not a readable GeoPackage: {error}",
                                        name=ds.name, error=str(exc))) from None
        if not names:
            raise InvalidUpload(Message("{name} contains no layer", name=ds.name))
        out += [replace(ds, name=f"{ds.name} › {n}" if len(names) > 1 else ds.name, layer=n)
                for n in names]
    return out


def read_dataset(ds: Dataset, *, csv_x: str | None = None,
                 csv_y: str | None = None) -> RawData:
    """Read ``ds`` safely; an unreadable or empty dataset is an InvalidUpload."""
    if ds.format == "kml":
        refuse_xml_entities(dataset_bytes(ds, MAX_CSV_BYTES), ds.name)
    if ds.format == "csv":
        raw = read_csv(dataset_bytes(ds, MAX_CSV_BYTES), ds.name, csv_x, csv_y)
    else:
        raw = read_vector(ds)
    if raw.frame.empty:
        raise InvalidUpload(Message("{name} contains no features", name=ds.name))
    raw.frame.columns = [re.sub(r"\s+", " ", str(c)).strip() if c != raw.frame.geometry.name
                         else c for c in raw.frame.columns]
    return raw
