"""Reading one dataset of an upload into a GeoDataFrame in its own coordinates.

Text of shapefiles and CSVs is read as Latin-1, which maps every byte to one character,
so the file's raw bytes come back exactly; ``encoding.py`` then decodes them with the
encoding the ``.cpg``, the detector or the planner chose. GeoPackage, GeoJSON and KML are
UTF-8 by definition and are read as such.
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import posixpath
import re
import sqlite3
import struct
import tempfile
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from typing import TypeVar
from urllib.parse import quote

import geopandas as gpd
import pandas as pd
import pyogrio
from pyogrio.errors import DataLayerError, DataSourceError

from ..errors import InvalidUpload
from ..messages import Message
from ..text import nfc
from .archive import Dataset, member_size, read_member_bytes
from .encoding import ENCODINGS, decode, detect_encoding
from .validate import field_name

# Coordinate headers as field_name() spells them: "Kinh độ", "KINH ĐỘ", "kinh do" → kinh_do,
# "Tọa độ X" and "Toạ độ X" → toa_do_x.
LON_NAMES = ("lon", "lng", "long", "longitude", "kinh_do", "kinhdo", "x", "easting",
             "toa_do_x", "toado_x")
LAT_NAMES = ("lat", "latitude", "vi_do", "vido", "y", "northing", "toa_do_y", "toado_y")
MAX_CSV_BYTES = 200 * 1024 * 1024
MAX_SHX_BYTES = 100 + 8 * 10_000_000  # the index of ten million shapes
# What may come before an XML document's root element, besides a DOCTYPE.
XML_PROLOG_SKIP = re.compile(rb"\s+|<\?.*?\?>|<!--.*?-->", re.S)
MAX_LISTED = 200  # GeoPackage layers listed for the planner to choose from
CHUNK_ROWS = 10_000  # features read at a time from GDAL: an import never holds the whole file
CHUNKED = ("shapefile", "gpkg")  # GDAL skips to a feature directly; GeoJSON is parsed again
FOLDER = "folder"  # the column holding a KML Placemark's Folder path
T = TypeVar("T")


def _no_more() -> Iterator[gpd.GeoDataFrame]:
    return iter(())


@dataclass
class RawData:
    """A dataset as read: raw text still to decode when ``raw_text`` is True.

    ``frame`` is its first chunk of at most CHUNK_ROWS features; ``more()`` reads the rest
    from the file, a chunk at a time, each time it is called, and ``reread()`` all of it
    again (None: ``frame`` is the whole file, as KML and CSV are always).
    """

    frame: gpd.GeoDataFrame
    declared_crs: str | None
    raw_text: bool
    warnings: list[Message] = field(default_factory=list)  # what GDAL warned of on reading
    declared_types: bool = False  # the source types its columns: its text stays text
    more: Callable[[], Iterator[gpd.GeoDataFrame]] = _no_more
    reread: Callable[[], Iterator[gpd.GeoDataFrame]] | None = None

    def chunks(self) -> Iterator[gpd.GeoDataFrame]:
        """Every chunk, the first one (kept) included."""
        yield self.frame
        yield from self.more()


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
    """KML with a DOCTYPE can define entities (XXE, entity bombs): such files are refused.
    A DOCTYPE can only stand in the prolog, before the root element; the prolog is read as
    XML reads it (comments and processing instructions skipped), so a "<kml>" inside a
    comment hides nothing, and "<!DOCTYPE html>" in a description after the root is text.
    KML is UTF-8: a UTF-16 or UTF-32 file, which a byte search cannot read, is refused."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff") or b"\x00" in data[:4]:
        raise InvalidUpload(Message(
            "{name} is not saved as UTF-8 text, as KML must be; save it as UTF-8 and upload "
            "again", name=name))
    pos = 3 if data.startswith(b"\xef\xbb\xbf") else 0
    while (skipped := XML_PROLOG_SKIP.match(data, pos)) and skipped.end() > pos:
        pos = skipped.end()
    if data[pos:pos + 9].lower().startswith((b"<!doctype", b"<!entity")):
        raise InvalidUpload(Message(
            "{name} declares a DOCTYPE or XML entities, which KML does not need and which can "
            "be used to read files from the server; remove them and upload again", name=name))


def _damaged_shapefile(ds: Dataset, detail: Message) -> InvalidUpload:
    return InvalidUpload(Message(
        "{name} is damaged or incomplete ({detail}); nothing was imported. Export the "
        "shapefile again and upload all its files", name=ds.name, detail=detail))


def check_shapefile(ds: Dataset, features_read: int | None = None) -> None:
    """Refuse a shapefile whose parts disagree: GDAL reads a cut-off .shp without an error,
    handing back the shapes past the cut as empty ones, so they must be counted here.

    The .shx index holds one (offset, length) pair per shape and the .dbf header its record
    count; every shape must end inside the .shp, and the three must count the same rows
    (``features_read``: once read; before, GDAL may fail on the cut instead of saying so).
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
    if not count == records == (records if features_read is None else features_read):
        raise _damaged_shapefile(ds, Message(
            "the .shx index lists {shapes} shapes, the .dbf table {records} rows and "
            "{read} could be read", shapes=count, records=records, read=features_read))


def _gdal(ds: Dataset, read: Callable[[], T]) -> tuple[T, list[Message]]:
    """Run a pyogrio read: GDAL's errors refuse the file, its warnings are kept for the
    preview to show."""
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", RuntimeWarning)
            result = read()
    except (DataSourceError, DataLayerError, OSError, ValueError, RuntimeError) as exc:
        message = str(exc).replace(ds.path, ds.name)
        raise InvalidUpload(Message(
            "{name} could not be read as {format} (damaged or incomplete?): {error}",
            name=ds.name, format=ds.format, error=message)) from None
    return result, [Message("GDAL warned while reading {name}: {warning}", name=ds.name,
                            warning=str(w.message).replace(ds.path, ds.name))
                    for w in caught if issubclass(w.category, RuntimeWarning)]


def read_vector(ds: Dataset) -> RawData:
    """Shapefile, GeoPackage or GeoJSON through GDAL (pyogrio): shapefiles and GeoPackages
    CHUNK_ROWS at a time, GeoJSON whole (each skip would parse the file from its start)."""
    shapefile = ds.format == "shapefile"
    kwargs = {"encoding": "latin1"} if shapefile else {}
    size = CHUNK_ROWS if ds.format in CHUNKED else None
    fid = _fid_column(ds) if ds.format == "gpkg" else None

    def chunk(skip: int, after: int | None) -> tuple[gpd.GeoDataFrame, list[Message], int | None]:
        """The features past the first ``skip``; in a GeoPackage, those after the fid
        ``after``, which SQLite finds at once where an offset counts every row before it."""
        where = {"where": f'"{fid}" > {after}'} if fid and after is not None else {
            "skip_features": skip}
        part, warned = _gdal(ds, lambda: pyogrio.read_dataframe(
            ds.path, layer=ds.layer, max_features=size, fid_as_index=bool(fid), **where,
            **kwargs))
        last = int(part.index[-1]) if fid and len(part) else after
        return part, warned, last

    if shapefile:
        check_shapefile(ds)
    frame, notes, first_last = chunk(0, None)
    whole = size is None or len(frame) < size
    if not (frame.index.is_unique and frame.index.is_monotonic_increasing):
        fid = None  # not read in fid order (a view?): paging by fid could lose features
    if shapefile and whole:
        check_shapefile(ds, len(frame))

    def chunks_from(read: int, after: int | None) -> Iterator[gpd.GeoDataFrame]:
        while True:
            part, warned, after = chunk(read, after)
            notes.extend(w for w in warned if w not in notes)  # the same as raw.warnings
            read += len(part)
            if len(part):
                yield part
            if len(part) < CHUNK_ROWS:  # only chunked formats are read again
                break
        if shapefile:
            check_shapefile(ds, read)

    # The CRS as GDAL declared it ("EPSG:9212" or its WKT): pyproj keeps the text it was
    # given, so the file is opened once, which counts for a GeoPackage of many layers.
    declared = None if shapefile or frame.crs is None else frame.crs.srs
    raw = RawData(frame, declared, shapefile, notes, declared_types=True)
    if not whole:
        raw.more = lambda: chunks_from(len(frame), first_last)
        raw.reread = lambda: chunks_from(0, None)
    return raw


def _fid_column(ds: Dataset) -> str | None:
    """The name of a GeoPackage layer's fid column, quoted for SQL, if GDAL reports one."""
    try:
        name = pyogrio.read_info(ds.path, layer=ds.layer).get("fid_column")
    except (DataSourceError, DataLayerError, OSError, ValueError, RuntimeError):
        return None  # reading the layer itself will say what is wrong
    return name.replace('"', '""') if name else None


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


for _prefix, _uri in (("gx", "http://www.google.com/kml/ext/2.2"),
                      ("atom", "http://www.w3.org/2005/Atom")):
    ET.register_namespace(_prefix, _uri)  # how flatten_kml writes Google's extensions back


def _placemarks(elem: ET.Element, path: tuple[str, ...]
                ) -> Iterator[tuple[ET.Element, tuple[str, ...]]]:
    """Every Placemark under ``elem`` in document order, with the names of its Folders."""
    for child in elem:
        tag = _local(child.tag)
        if tag == "Placemark":
            yield child, path
        elif tag in ("Document", "Folder"):
            name = next((c.text or "" for c in child if _local(c.tag) == "name"), "").strip()
            yield from _placemarks(child, path + ((name,) if tag == "Folder" and name else ()))


def flatten_kml(data: bytes) -> tuple[bytes, list[str | None]] | None:
    """The KML with all its Placemarks in one Document, and each one's Folder path
    ("Phường Tân Xuân / Năm 2024 / Quý 1"), or None if it is not well-formed XML.

    GDAL's LIBKML driver makes each Folder a layer, and reading a layer parses the whole
    file again: a KMZ of 300 folders took 12 s. One Document is one layer, read once.
    """
    try:
        # Safe: refuse_xml_entities refused a DOCTYPE, so nothing can define an entity.
        root = ET.fromstring(data)  # noqa: S314
    except ET.ParseError:
        return None
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    found = list(_placemarks(root, ()))
    schemas = [e for e in root.iter() if _local(e.tag) == "Schema"]  # QGIS's typed fields
    document = ET.Element(f"{{{namespace}}}Document" if namespace else "Document")
    document.extend([*schemas, *(placemark for placemark, _ in found)])
    root[:] = [document]
    if namespace:  # LIBKML wants KML unprefixed (ElementTree would write ns0:kml), gx: kept
        for elem in root.iter():
            elem.tag = elem.tag.removeprefix(f"{{{namespace}}}")
            for key in [k for k in elem.attrib if k.startswith(f"{{{namespace}}}")]:
                elem.attrib[_local(key)] = elem.attrib.pop(key)
        root.set("xmlns", namespace)
    flat = ET.tostring(root, encoding="utf-8")
    return flat, [" / ".join(path) or None for _, path in found]


# What LIBKML puts in its own columns for a plain Placemark.
KML_DEFAULTS = {"id": None, "Name": None, "description": None, "timestamp": None,
                "begin": None, "end": None, "altitudeMode": None, "tessellate": -1,
                "extrude": 0, "visibility": -1, "drawOrder": None, "icon": None}


def read_kml(ds: Dataset, data: bytes) -> RawData:
    """A KML (or a KMZ's): every Placemark of every Folder, with the Folder path as a
    ``folder`` column; LIBKML's own columns are kept only when a Placemark sets them. KML
    text is UTF-8, its ExtendedData untyped text."""
    flat = flatten_kml(data)
    # In a .kml file: GDAL's LIBKML driver, the one that reads ExtendedData, goes by the name.
    with tempfile.TemporaryDirectory() as folder:
        source = ds.path  # not well-formed XML: GDAL says what is wrong
        if flat:
            source = os.path.join(folder, "flat.kml")
            with open(source, "wb") as file:
                file.write(flat[0])
        frame, notes = _gdal(replace(ds, path=source), lambda: pyogrio.read_dataframe(source))
    if flat and len(flat[1]) == len(frame) and any(flat[1]):
        name = FOLDER if FOLDER not in frame.columns else f"kml_{FOLDER}"
        frame.insert(len(frame.columns) - 1, name, flat[1])
    unset = [c for c, default in KML_DEFAULTS.items() if c in frame.columns and all(
        pd.isna(v) or v == default for v in frame[c])]
    return RawData(frame.drop(columns=unset), "EPSG:4326", False, notes, declared_types=False)


def _header_names(columns: list[str], table: pd.DataFrame) -> list[list[str]]:
    """The CSV's headers (read as Latin-1) as each encoding would spell them, the one the
    detector finds in the headers and first rows first; encodings the bytes cannot be
    decoded with are left out."""
    samples = [c.encode("latin-1") for c in columns] + [
        v.encode("latin-1") for v in table.head(200).to_numpy().ravel().tolist() if v]
    first = detect_encoding(samples).encoding
    readings = []
    for encoding in (first, *(e for e in ENCODINGS if e != first)):
        try:
            readings.append([decode(c.encode("latin-1"), encoding) for c in columns])
        except InvalidUpload:
            continue
    return readings


def _pick(columns: list[str], readings: list[list[str]], names: tuple[str, ...],
          chosen: str | None) -> str | None:
    """The column named like a coordinate (any case, with or without diacritics), or the
    one the planner chose, by its name as the file spells it."""
    if chosen:
        wanted = field_name(nfc(chosen), set())
        for reading in readings:
            for column, shown in zip(columns, reading, strict=True):
                if chosen in (column, shown) or field_name(shown, set()) == wanted:
                    return column
        raise InvalidUpload(Message("The CSV has no column {column!r}; it has {columns}",
                                    column=chosen, columns=readings[0] if readings else columns))
    for reading in readings:
        keys = {field_name(shown, set()): column for column, shown in zip(columns, reading,
                                                                           strict=True)}
        found = next((keys[n] for n in names if n in keys), None)
        if found:
            return found
    return None


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
    data = data.removeprefix(b"\xef\xbb\xbf")  # Excel's "CSV UTF-8" starts with a BOM
    try:
        table = pd.read_csv(io.BytesIO(data), dtype=str, encoding="latin1", sep=None,
                            engine="python", keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise InvalidUpload(Message("{name} is not a readable CSV table: {error}", name=name,
                                    error=str(exc))) from None
    columns = [str(c) for c in table.columns]
    readings = _header_names(columns, table)
    x_col = _pick(columns, readings, LON_NAMES, x)
    y_col = _pick(columns, readings, LAT_NAMES, y)
    if not x_col or not y_col:
        raise InvalidUpload(Message(
            "{name} has no coordinate columns: name them lon/lat, Kinh độ/Vĩ độ (or x/y, "
            "Tọa độ X/Tọa độ Y for projected coordinates); its columns are {columns}",
            name=name, columns=readings[0] if readings else columns))
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


def _gpkg_layers(ds: Dataset, wanted: str | None) -> tuple[list[str], int, bool]:
    """The first MAX_LISTED feature tables of a GeoPackage, how many there are, and whether
    ``wanted`` is one of them: one query on gpkg_contents, where GDAL opens every table.
    A GeoPackage inside a zip, or an SQLite file that is no GeoPackage, is asked of GDAL."""
    if not ds.path.startswith("/vsizip/"):
        try:
            with contextlib.closing(sqlite3.connect(
                    f"file:{quote(ds.path)}?mode=ro&immutable=1", uri=True)) as db:
                query = "FROM gpkg_contents WHERE data_type = 'features'"
                names = [str(r[0]) for r in db.execute(
                    f"SELECT table_name {query} ORDER BY rowid LIMIT ?", (MAX_LISTED,))]
                count = db.execute(f"SELECT count(*) {query}").fetchone()[0]
                found = wanted is not None and db.execute(
                    f"SELECT 1 {query} AND table_name = ?", (wanted,)).fetchone() is not None
            return names, count, found
        except sqlite3.Error:
            pass
    try:
        every = [str(row[0]) for row in pyogrio.list_layers(ds.path)]
    except (DataSourceError, OSError, ValueError, RuntimeError) as exc:
        raise InvalidUpload(Message("{name} is not a readable GeoPackage: {error}",
                                    name=ds.name, error=str(exc))) from None
    return every[:MAX_LISTED], len(every), wanted in every


def expand_layers(datasets: list[Dataset], wanted: str | None = None
                  ) -> tuple[list[Dataset], list[Message]]:
    """One dataset per layer of a GeoPackage, so the planner can choose the layer: at most
    MAX_LISTED of them (a note says how many more), plus the ``wanted`` one wherever it is."""
    out: list[Dataset] = []
    notes: list[Message] = []
    for ds in datasets:
        if ds.format != "gpkg":
            out.append(ds)
            continue
        layer = nfc(wanted.strip()).removeprefix(f"{ds.name} › ") if wanted else None
        names, count, found = _gpkg_layers(ds, layer)
        if not names:
            raise InvalidUpload(Message("{name} contains no layer", name=ds.name))
        if found and layer not in names:
            names.append(layer)
        if count > len(names):
            notes.append(Message(
                "{name} has {count} layers; only the first {shown} are listed: type the name "
                "of another layer to read it", name=ds.name, count=count, shown=MAX_LISTED))
        out += [replace(ds, name=f"{ds.name} › {n}" if count > 1 else ds.name, layer=n)
                for n in names]
    return out, notes


def choose_dataset(datasets: list[Dataset], wanted: str | None) -> Dataset:
    """The dataset the planner named, by its full name or, for a layer, the layer's name."""
    if wanted is None:
        return datasets[0]
    wanted = nfc(wanted.strip())
    for ds in datasets:
        if wanted in (ds.name, ds.layer):
            return ds
    names = [ds.name for ds in datasets[:20]] + (["…"] if len(datasets) > 20 else [])
    raise InvalidUpload(Message("The upload has no dataset {wanted!r}; it has: {names}",
                                wanted=wanted, names=", ".join(names)))


def read_dataset(ds: Dataset, *, csv_x: str | None = None,
                 csv_y: str | None = None) -> RawData:
    """Read ``ds`` safely; an unreadable or empty dataset is an InvalidUpload."""
    if ds.format == "kml":
        data = dataset_bytes(ds, MAX_CSV_BYTES)
        refuse_xml_entities(data, ds.name)
        raw = read_kml(ds, data)
    elif ds.format == "csv":
        raw = read_csv(dataset_bytes(ds, MAX_CSV_BYTES), ds.name, csv_x, csv_y)
    else:
        raw = read_vector(ds)
    if raw.frame.empty:
        raise InvalidUpload(Message("{name} contains no features", name=ds.name))
    _tidy_columns(raw.frame, raw.raw_text)
    more, reread, raw_text = raw.more, raw.reread, raw.raw_text  # not raw: its first chunk
    raw.more = lambda: (_tidy_columns(part, raw_text) for part in more())  # may be let go
    if reread:
        raw.reread = lambda: (_tidy_columns(part, raw_text) for part in reread())
    return raw


def _tidy_columns(frame: gpd.GeoDataFrame, raw_text: bool) -> gpd.GeoDataFrame:
    """Column names with their runs of white space made one space, and trimmed (in place)."""
    # Raw text is bytes as Latin-1: its "\xa0" may be half of a UTF-8 "à", not a space.
    space = r"[ \t\r\n\f\v]+" if raw_text else r"\s+"
    frame.columns = [re.sub(space, " ", str(c)).strip(" ")
                     if c != frame.geometry.name else c for c in frame.columns]
    return frame
