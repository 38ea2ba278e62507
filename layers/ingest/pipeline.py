"""The one import pipeline behind the upload page, the CLI and the API.

``preview_upload`` reads an upload and says what it understood — format, CRS and text
encoding, each with how sure it is, warnings and the first rows — without storing
anything. ``publish`` then stores the layer in one transaction, after the planner has
confirmed anything uncertain. Nothing is ever published silently on a guess.

Both stream: the file is read CHUNK_ROWS features at a time, the preview keeping only
counts, bounding boxes, type evidence and its first rows, and publishing reading the file
again chunk by chunk into the store's transaction, so a million features never sit in
memory at once. A bad feature anywhere still rolls the whole import back.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import chain
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidUpload
from ..kinds import FieldDef, get_kind
from ..messages import IMPORT_NOTE, Message
from ..store import Layer, Store
from ..store.base import STAFF_WINS, FileWins
from ..store.reimport import ReplacePlan
from ..text import nfc
from ..wards import Wards, has_wards
from .archive import Dataset, UploadLimits, open_upload, read_member_bytes
from .crs import CrsCandidate, CrsDiagnosis, check_datum, diagnose_crs, transformer_to_wgs84
from .encoding import (
    EncodingGuess,
    decode,
    detect_encoding,
    detect_mixed,
    encoding_from_cpg,
    overruled_declaration,
)
from .mapping import KeyEvidence
from .read import RawData, choose_dataset, expand_layers, read_dataset
from .validate import ColumnEvidence, FieldEvidence, GeometryReport, clean_geometries, outside_count

DEFAULT_CITY_BOUNDS = (106.755, 11.461, 106.933, 11.577)
SAMPLE_ROWS = 2000  # the first rows a preview keeps, for its table and its map
MAX_DISTINCT = 1000  # distinct values kept per column (ward names are checked against them)
DATUM_SAMPLE = 16_000  # geometries kept, spread over the file, for check_datum to pick from
Item = tuple[shapely.Geometry, dict[str, Any]]


@dataclass(frozen=True)
class ReadOptions:
    """The planner's answers to what the service could not be sure of."""

    dataset: str | None = None
    crs_epsg: int | None = None
    encoding: str | None = None
    csv_x: str | None = None
    csv_y: str | None = None


@dataclass(frozen=True)
class Reading:
    """How each chunk of the file becomes what is stored, as the preview settled it: the
    text encoding (None: the format's own Unicode), the CRS, the geometry family and the
    field types."""

    chunks: Callable[[], Iterator[gpd.GeoDataFrame]]  # the file's, each time from the start
    encoding: str | None
    epsg: int
    family: str
    evidence: FieldEvidence
    fields: list[FieldDef]

    def frame(self, chunk: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        """One chunk decoded, cleaned, in WGS 84, with its columns keyed and typed."""
        if self.encoding:
            chunk = _decode_text(chunk, self.encoding)
        chunk, _ = clean_geometries(chunk, self.family)
        chunk = _to_wgs84(chunk, self.epsg)
        attributes = self.evidence.convert(chunk.drop(columns=chunk.geometry.name),
                                           self.fields)
        return gpd.GeoDataFrame(attributes, geometry=chunk.geometry.values, crs=4326)

    def frames(self) -> Iterator[gpd.GeoDataFrame]:
        """The whole file, chunk after chunk, read again from the upload."""
        return (self.frame(chunk) for chunk in self.chunks())


@dataclass
class Preview:
    """What the service understood of an upload, before anything is stored.

    ``frame`` holds only the first SAMPLE_ROWS features (cleaned, in WGS 84, typed); the
    counts, ``bounds`` (lon/lat), the key guess and the warnings are the whole file's.
    ``distinct`` has each column's distinct values (the first rows' when it has more than
    MAX_DISTINCT), to check ward names with.
    """

    upload_name: str
    datasets: list[Dataset]
    dataset: Dataset
    crs: CrsDiagnosis
    encoding: EncodingGuess | None  # the detector's opinion, shown even when overruled
    encoding_source: str  # "format", "cpg", "detected" or "user"
    text_encoding: str  # the encoding the text was actually decoded with
    frame: gpd.GeoDataFrame
    fields: list[FieldDef]
    geometry: GeometryReport
    outside: int
    feature_count: int
    bounds: tuple[float, float, float, float]
    key_guess: str | None
    distinct: dict[str, list[Any]]
    reading: Reading
    warnings: list[Message] = field(default_factory=list)

    @property
    def needs_confirmation(self) -> bool:
        return self.crs.needs_confirmation

    def rows(self, n: int = 10) -> list[dict[str, Any]]:
        """The first ``n`` rows of attributes, for the preview table."""
        head = self.frame.drop(columns=self.frame.geometry.name).head(n)
        return [{k: _plain(v) for k, v in row.items()} for row in head.to_dict("records")]


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    return value.item() if isinstance(value, np.generic) else value


def _decode_text(frame: gpd.GeoDataFrame, encoding: str) -> gpd.GeoDataFrame:
    """Re-decode Latin-1-read text (columns and names) with the real encoding, to NFC."""
    geometry = frame.geometry.name

    def fix(value: Any) -> Any:
        return decode(value.encode("latin-1"), encoding) if isinstance(value, str) else value

    out = frame.copy()
    for column in out.columns:
        if column != geometry and pd.api.types.is_string_dtype(out[column]):
            values = out[column].astype(object)
            decoded = {v: fix(v) for v in values.dropna().unique()}  # names repeat a lot
            out[column] = values.map(decoded).astype(object).where(values.notna(), None)
    out.columns = [c if c == geometry else fix(c) for c in out.columns]
    return out


def _text_samples(frame: gpd.GeoDataFrame, limit: int | None = 5000, *, names: bool = True
                  ) -> list[bytes]:
    """Raw text of the column names (unless not ``names``) and values: at most ``limit``,
    or all of it (None)."""
    geometry = frame.geometry.name
    samples = [str(c).encode("latin-1") for c in frame.columns if c != geometry and names]
    for column in frame.columns:
        if column != geometry and pd.api.types.is_string_dtype(frame[column]):
            values = frame[column].dropna().astype(str)
            head = values if limit is None else values.head(limit // 4)
            samples += [v.encode("latin-1") for v in head if v]
    return samples if limit is None else samples[:limit]


def _settle_encoding(ds: Dataset, raw: RawData, override: str | None
                     ) -> tuple[str, EncodingGuess, str, list[Message]]:
    """Planner's choice, else the .cpg, else detection from the bytes themselves.

    A .cpg that the bytes contradict is reported; one they cannot even be decoded with, or
    under which far fewer words read as Vietnamese than in another encoding, is overruled by
    the detector, since publishing mojibake would lose the names. A file whose values are
    partly UTF-8 and partly legacy (merged files) is read value by value, whatever the .cpg.
    The samples come from the first chunk; only a file that looks mixed there is read
    through (its text alone) to count both kinds.
    """
    samples = _text_samples(raw.frame)
    guess = detect_encoding(samples)
    if override:
        return override, guess, "user", []
    mixed = detect_mixed(samples) and detect_mixed(chain.from_iterable(
        _text_samples(chunk, None, names=n == 0) for n, chunk in enumerate(raw.chunks())))
    if mixed:
        return mixed[0], guess, "detected", [mixed[1]]
    cpg = read_member_bytes(ds, ".cpg")
    declared = encoding_from_cpg(cpg.decode("ascii", "replace")) if cpg else None
    if not declared:
        return guess.encoding, guess, "detected", []
    overruled = overruled_declaration(guess, declared)
    if overruled:
        return guess.encoding, guess, "detected", [overruled]
    try:
        for sample in samples:
            decode(sample, declared)
    except InvalidUpload:
        return guess.encoding, guess, "detected", [Message(
            "The .cpg says {declared} but the text cannot be read that way; it was read as "
            "{used} instead: check the names in the preview", declared=declared,
            used=guess.encoding)]
    if guess.encoding != declared and guess.confidence >= 0.8:
        return declared, guess, "cpg", [Message(
            "The .cpg says {declared} but the text looks like {detected}: check the names in "
            "the preview and change the encoding if they look wrong", declared=declared,
            detected=guess.encoding)]
    return declared, guess, "cpg", []


def _user_crs(epsg: int) -> CrsDiagnosis:
    try:
        transformer_to_wgs84(epsg)
    except Exception:  # noqa: BLE001 - pyproj raises several classes for unknown codes
        raise InvalidUpload(
            Message("EPSG:{epsg} is not a coordinate system PROJ knows", epsg=epsg)) from None
    candidate = CrsCandidate(epsg, f"EPSG:{epsg}", 1.0, Message("Chosen by the planner"))
    return CrsDiagnosis(epsg, "user", 1.0, (candidate,), (), False)


def _to_wgs84(frame: gpd.GeoDataFrame, epsg: int) -> gpd.GeoDataFrame:
    """Reproject with the transformer that carries the VN-2000 datum shift."""
    if epsg == 4326:
        return frame.set_crs(4326, allow_override=True)
    transformer = transformer_to_wgs84(epsg)

    def move(coords: np.ndarray) -> np.ndarray:
        x, y = transformer.transform(coords[:, 0], coords[:, 1])
        return np.column_stack([x, y])

    moved = shapely.transform(frame.geometry.values, move)
    return frame.set_geometry(gpd.GeoSeries(moved, index=frame.index, crs=4326))


def preview_upload(
    path: Path,
    original_name: str,
    options: ReadOptions = ReadOptions(),
    *,
    limits: UploadLimits | None = None,
    default_epsg: int = 9212,
    city_bounds: tuple[float, float, float, float] = DEFAULT_CITY_BOUNDS,
    wards: Sequence[BaseGeometry] = (),
) -> Preview:
    """Read an upload and report what it holds; stores nothing. ``wards`` (lon/lat shapes)
    let a WGS 84 `.prj` over VN-2000 coordinates be caught (:func:`check_datum`)."""
    datasets, listing = expand_layers(open_upload(path, original_name, limits or UploadLimits()),
                                      options.dataset)
    ds = choose_dataset(datasets, options.dataset)
    raw = read_dataset(ds, csv_x=options.csv_x, csv_y=options.csv_y)
    encoding, guess, encoding_source, notes = "utf-8", None, "format", []
    if raw.raw_text:
        encoding, guess, encoding_source, notes = _settle_encoding(ds, raw, options.encoding)
    scan = _Scan(raw, encoding if raw.raw_text else None)
    warnings: list[Message] = [*listing, *raw.warnings, *notes]
    geometry = scan.report
    if not scan.count:
        raise InvalidUpload(Message("{name} has no feature with a geometry", name=ds.name))
    if options.crs_epsg:
        crs = _user_crs(options.crs_epsg)
    else:
        declared = raw.declared_crs
        if ds.format == "shapefile":
            prj = read_member_bytes(ds, ".prj")
            declared = prj.decode("latin-1") if prj else None
        crs = diagnose_crs(declared, scan.total_bounds(), default_epsg=default_epsg,
                           city_bounds=city_bounds)
        crs = check_datum(crs, np.asarray(scan.datum, dtype=object), list(wards), city_bounds,
                          default_epsg)
    if crs.epsg is None:
        raise InvalidUpload(Message(
            "The coordinates of {name} fit no known coordinate system; choose one (EPSG code)",
            name=ds.name))
    warnings += list(crs.warnings)
    fields = scan.evidence.fields()
    # A file read in chunks is read again to publish, rather than kept.
    frames = raw.reread or (lambda: iter([raw.frame]))
    reading = Reading(frames, scan.encoding, crs.epsg, geometry.geometry_type, scan.evidence,
                      fields)
    frame = reading.frame(raw.frame).head(SAMPLE_ROWS)
    boxes = _lonlat_boxes(np.concatenate(scan.boxes), crs.epsg)
    outside = outside_count(boxes, city_bounds)
    if geometry.repaired:
        warnings.append(Message("{n} invalid geometries were repaired (make_valid)",
                                n=geometry.repaired))
    if geometry.dropped_empty:
        warnings.append(Message("{n} features without a geometry were left out",
                                n=geometry.dropped_empty))
    if geometry.dropped_nonfinite:
        warnings.append(Message(
            "{n} features with coordinates that are not numbers (NaN or infinite) were left "
            "out", n=geometry.dropped_nonfinite))
    if geometry.mixed:
        warnings.append(
            Message("The layer mixes points, lines and polygons: it can only be generic"))
    if outside:
        warnings.append(Message(
            "{n} features lie far outside the city: check the coordinate system", n=outside))
    return Preview(original_name, datasets, ds, crs, guess, encoding_source, encoding, frame,
                   fields, geometry, outside, scan.count, _total_bounds(boxes), scan.keys.guess(),
                   scan.distinct(fields, frame), reading, warnings)


class _Scan:
    """The preview's one pass over the file: each chunk decoded and cleaned, then only
    what the preview reports is kept — the geometry counts, every feature's bounding box
    (in the file's CRS), a spread sample of geometries for the datum check, the evidence
    for each column's type and for the key column, and the first distinct values."""

    def __init__(self, raw: RawData, encoding: str | None) -> None:
        self.encoding = encoding
        self.report = GeometryReport()
        self.count = 0
        self.boxes: list[np.ndarray] = []
        self.extent: list[tuple[float, float, float, float]] = []
        self.datum: list[shapely.Geometry] = []
        self.stride = 1  # every stride-th kept geometry is in the datum sample
        chunks = (_decode_text(chunk, encoding) if encoding else chunk for chunk in raw.chunks())
        first = next(chunks)
        columns = [c for c in first.columns if c != first.geometry.name]
        self.evidence = FieldEvidence(columns, declared=raw.declared_types)
        self.keys = KeyEvidence(dict(zip(self.evidence.keys, columns, strict=True)))
        self.values: list[dict[Any, None] | None] = [{} for _ in columns]
        for chunk in chain([first], chunks):
            self._add(chunk)

    def _add(self, chunk: gpd.GeoDataFrame) -> None:
        chunk, report = clean_geometries(chunk, "Geometry")  # counts only: no multi needed
        self.report = self.report.merge(report)
        geoms = np.asarray(chunk.geometry.values)
        boxes = shapely.bounds(geoms)
        if len(boxes):  # a chunk may have lost every geometry
            self.extent.append(_total_bounds(boxes))  # exact, for the CRS diagnosis
        self.boxes.append(boxes.astype(np.float32))  # 16 bytes a feature, to count outside
        self.datum += list(geoms[(-self.count) % self.stride::self.stride])
        while len(self.datum) > DATUM_SAMPLE:
            self.datum, self.stride = self.datum[::2], self.stride * 2
        self.count += len(chunk)
        self.evidence.observe(chunk)
        self.keys.observe(chunk)
        for n, column in enumerate(self.evidence.columns):
            if self.values[n] is not None:
                self.values[n] = dict.fromkeys(chain(self.values[n], pd.unique(chunk[column])))
                if len(self.values[n]) > MAX_DISTINCT:
                    self.values[n] = None

    def total_bounds(self) -> tuple[float, float, float, float]:
        return _total_bounds(np.array(self.extent))

    def distinct(self, fields: list[FieldDef], sample: gpd.GeoDataFrame
                 ) -> dict[str, list[Any]]:
        """Each field's distinct values as stored (the sample's when there are many)."""
        return {f.name: sample[f.name].tolist() if values is None else ColumnEvidence.convert(
                    pd.Series(list(values), dtype=object), f.type)
                for f, values in zip(fields, self.values, strict=True)}


def _total_bounds(boxes: np.ndarray) -> tuple[float, float, float, float]:
    """The box around bounding boxes (rows of minx, miny, maxx, maxy)."""
    return (*np.nanmin(boxes[:, :2], axis=0).astype(float).tolist(),
            *np.nanmax(boxes[:, 2:], axis=0).astype(float).tolist())


def _lonlat_boxes(boxes: np.ndarray, epsg: int) -> np.ndarray:
    """Bounding boxes in the file's CRS as lon/lat boxes (of their corners)."""
    if epsg == 4326:
        return boxes
    transformer = transformer_to_wgs84(epsg)
    xs, ys = boxes[:, [0, 2, 0, 2]], boxes[:, [1, 1, 3, 3]]
    lon, lat = transformer.transform(xs.ravel(), ys.ravel())
    lon, lat = np.reshape(lon, xs.shape), np.reshape(lat, ys.shape)
    return np.column_stack([lon.min(axis=1), lat.min(axis=1), lon.max(axis=1), lat.max(axis=1)])


@dataclass(frozen=True)
class PublishSpec:
    """How the planner wants the preview stored."""

    slug: str
    title: str
    kind: str = "generic"
    field_map: dict[str, str] = field(default_factory=dict)  # kind field -> source key
    public: bool = False
    private_fields: tuple[str, ...] = ()
    confirmed: bool = False
    replace: bool = False
    note: str = ""
    key: str | None = None  # the column whose values say which feature a row is, next time
    file_wins: FileWins = STAFF_WINS  # conflicts the planner settled for the file's value
    expected_version: int | None = None  # the layer version the planner saw the diff of


def _rows(frame: gpd.GeoDataFrame, columns: list[str]) -> Iterator[tuple[Any, ...]]:
    """Row tuples of the named columns, as the plain values ``infer_fields`` produced."""
    return zip(*(frame[c].tolist() for c in columns), strict=True) if columns else (
        () for _ in range(len(frame)))


def _choice_value(f: FieldDef, value: Any) -> Any:
    """Accept a vocabulary's Vietnamese or English label as well as its value."""
    if value is None or not f.choices:
        return value
    text = nfc(str(value)).lower()
    for c in f.choices:
        if text in (str(c.value).lower(), c.vi.lower(), c.en.lower()):
            return c.value
    return value


def _item_maker(preview: Preview, spec: PublishSpec
                ) -> tuple[Callable[[gpd.GeoDataFrame], list[Item]], tuple[FieldDef, ...]]:
    """How a chunk becomes the items to store, and the layer's fields; the mapping is
    checked here, before anything is read again."""
    if spec.kind == "generic":
        fields = tuple(
            FieldDef(f.name, f.type, f.vi, f.en, public=f.name not in spec.private_fields)
            for f in preview.fields
        )
        names = [f.name for f in fields]

        def generic(frame: gpd.GeoDataFrame) -> list[Item]:
            props = [dict(zip(names, row, strict=True)) if None not in row else
                     {k: v for k, v in zip(names, row, strict=True) if v is not None}
                     for row in _rows(frame, names)]
            return list(zip(np.asarray(frame.geometry.values), props, strict=True))
        return generic, fields
    kind = get_kind(spec.kind)
    unknown = sorted(set(spec.field_map) - {f.name for f in kind.fields})
    missing_sources = sorted(set(spec.field_map.values()) - {f.name for f in preview.fields})
    if unknown or missing_sources:
        raise InvalidUpload(Message("Field mapping refers to unknown fields: {names}",
                                    names=unknown + missing_sources))
    required = [f for f in kind.fields if f.required and f.name not in spec.field_map]
    if required:
        raise InvalidUpload(Message("A {kind} layer needs these fields mapped: {fields}",
                                    kind=kind, fields=required))
    targets = list(spec.field_map)
    sources = [spec.field_map[t] for t in targets]
    defs = [kind.field(t) for t in targets]

    def mapped(frame: gpd.GeoDataFrame) -> list[Item]:
        items = []
        for geom, row in zip(np.asarray(frame.geometry.values), _rows(frame, sources),
                             strict=True):
            props: dict[str, Any] = {}
            for target, f, raw in zip(targets, defs, row, strict=True):
                value = _choice_value(f, raw)
                if value is not None:
                    props[target] = value
            items.append((geom, props))
        return items
    fields = tuple(replace(f, public=f.name not in spec.private_fields) for f in kind.fields)
    return mapped, fields


Chunks = Iterator[tuple[list[Item], list[Any] | None]]


def _prepared(store: Store, preview: Preview, spec: PublishSpec
              ) -> tuple[Chunks, tuple[FieldDef, ...]]:
    """The features to store, chunk by chunk with each row's key, and the layer's fields,
    once confirmed. The chunks are read from the file as they are asked for."""
    if spec.key is not None and spec.key not in {f.name for f in preview.fields}:
        raise InvalidUpload(Message("The file has no column {column} to match rows on",
                                    column=spec.key))
    if preview.needs_confirmation and not spec.confirmed:
        raise InvalidUpload(Message(
            "The coordinate system was guessed or corrected (EPSG:{epsg}): confirm it before "
            "publishing", epsg=preview.crs.epsg))
    if spec.kind != "generic" and preview.geometry.mixed:
        raise InvalidUpload(
            Message("Mixed geometry types can only be published as a generic layer"))
    make, fields = _item_maker(preview, spec)
    # Read once, before the store's transaction: ward names as codes; missing: located.
    wards = Wards.of(store) if has_wards(spec.kind) else None

    def chunks() -> Chunks:
        for frame in preview.reading.frames():
            items = make(frame)
            yield (wards.place(items) if wards else items,
                   frame[spec.key].tolist() if spec.key else None)
    return chunks(), fields


def _whole(chunks: Chunks) -> tuple[list[Item], list[Any] | None]:
    """Every chunk at once, for a replace, whose diff matches the whole file at once."""
    parts = list(chunks)
    items = [item for part, _ in parts for item in part]
    if not parts or parts[0][1] is None:
        return items, None
    return items, [key for _, keys in parts for key in keys or ()]


class _StreamedKeys(Sequence[Any]):
    """The key of each streamed item, kept only until the store has written it.

    ``insert_batches`` asks for a batch's keys right after reading the batch's items, so
    only the keys of the chunks read since are held; asking for older ones is a bug.
    """

    def __init__(self, count: int) -> None:
        self._count = count
        self._start = 0  # the position of self._keys[0] in the file
        self._keys: list[Any] = []

    def feed(self, keys: list[Any]) -> None:
        self._keys += keys

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: int | slice) -> Any:  # type: ignore[override]
        start, stop = (index.start or 0, index.stop) if isinstance(index, slice) else (
            index, index + 1)
        if start < self._start or stop > self._start + len(self._keys):
            raise IndexError(f"keys {start}-{stop} are not held while streaming")
        del self._keys[:start - self._start]
        self._start = start
        part = self._keys[:stop - start]
        return part if isinstance(index, slice) else part[0]


def plan_publish(store: Store, preview: Preview, spec: PublishSpec) -> ReplacePlan:
    """What publishing ``preview`` over the layer ``spec.slug`` would change, for the
    planner to confirm; stores nothing."""
    chunks, _ = _prepared(store, preview, spec)
    items, keys = _whole(chunks)
    return store.plan_replace(spec.slug, items, keys=keys, file_wins=spec.file_wins)


def publish(store: Store, preview: Preview, spec: PublishSpec, *, actor: str = "system"
            ) -> Layer:
    """Store the previewed data as a new layer, streamed into the store's one transaction,
    or a new version of ``spec.slug`` whose rows are matched to its features by
    ``spec.key`` (a replace holds the whole file: its diff needs every row)."""
    chunks, fields = _prepared(store, preview, spec)
    note = spec.note or Message(IMPORT_NOTE, name=preview.upload_name)
    if spec.replace:
        items, keys = _whole(chunks)
        store.replace_features(spec.slug, items, keys=keys, file_wins=spec.file_wins,
                               expected_version=spec.expected_version, note=note, actor=actor)
        return store.get_layer(spec.slug)
    streamed = _StreamedKeys(preview.feature_count) if spec.key else None

    def items() -> Iterator[Item]:
        for part, part_keys in chunks:
            if streamed is not None:
                streamed.feed(part_keys or [])
            yield from part

    geometry_type = preview.geometry.geometry_type
    if spec.kind != "generic":
        geometry_type = get_kind(spec.kind).geometry_type
    return store.create_layer(
        spec.slug, spec.title, spec.kind, geometry_type=geometry_type, public=spec.public,
        fields=fields, features=items(), keys=streamed, note=note, actor=actor,
    )
