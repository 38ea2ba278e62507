"""The one import pipeline behind the upload page, the CLI and the API.

``preview_upload`` reads an upload and says what it understood — format, CRS and text
encoding, each with how sure it is, warnings and the first rows — without storing
anything. ``publish`` then stores the layer in one transaction, after the planner has
confirmed anything uncertain. Nothing is ever published silently on a guess.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
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
from ..wards import place_wards
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
from .read import choose_dataset, expand_layers, read_dataset
from .validate import GeometryReport, clean_geometries, infer_fields, outside_count

DEFAULT_CITY_BOUNDS = (106.755, 11.461, 106.933, 11.577)


@dataclass(frozen=True)
class ReadOptions:
    """The planner's answers to what the service could not be sure of."""

    dataset: str | None = None
    crs_epsg: int | None = None
    encoding: str | None = None
    csv_x: str | None = None
    csv_y: str | None = None


@dataclass
class Preview:
    """What the service understood of an upload, before anything is stored."""

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
    warnings: list[Message] = field(default_factory=list)

    @property
    def feature_count(self) -> int:
        return len(self.frame)

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


def _text_samples(frame: gpd.GeoDataFrame, limit: int | None = 5000) -> list[bytes]:
    """Raw text of the column names and values: at most ``limit``, or all of it (None)."""
    geometry = frame.geometry.name
    samples = [str(c).encode("latin-1") for c in frame.columns if c != geometry]
    for column in frame.columns:
        if column != geometry and pd.api.types.is_string_dtype(frame[column]):
            values = frame[column].dropna().astype(str)
            head = values if limit is None else values.head(limit // 4)
            samples += [v.encode("latin-1") for v in head if v]
    return samples if limit is None else samples[:limit]


def _settle_encoding(ds: Dataset, frame: gpd.GeoDataFrame, override: str | None
                     ) -> tuple[str, EncodingGuess, str, list[Message]]:
    """Planner's choice, else the .cpg, else detection from the bytes themselves.

    A .cpg that the bytes contradict is reported; one they cannot even be decoded with, or
    under which far fewer words read as Vietnamese than in another encoding, is overruled by
    the detector, since publishing mojibake would lose the names. A file whose values are
    partly UTF-8 and partly legacy (merged files) is read value by value, whatever the .cpg.
    """
    samples = _text_samples(frame)
    guess = detect_encoding(samples)
    if override:
        return override, guess, "user", []
    mixed = detect_mixed(samples) and detect_mixed(_text_samples(frame, None))
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
    frame = raw.frame
    warnings: list[Message] = [*listing, *raw.warnings]
    encoding, guess, encoding_source = "utf-8", None, "format"
    if raw.raw_text:
        encoding, guess, encoding_source, notes = _settle_encoding(ds, frame, options.encoding)
        frame = _decode_text(frame, encoding)
        warnings += notes
    frame, geometry = clean_geometries(frame)
    if frame.empty:
        raise InvalidUpload(Message("{name} has no feature with a geometry", name=ds.name))
    if options.crs_epsg:
        crs = _user_crs(options.crs_epsg)
    else:
        declared = raw.declared_crs
        if ds.format == "shapefile":
            prj = read_member_bytes(ds, ".prj")
            declared = prj.decode("latin-1") if prj else None
        crs = diagnose_crs(declared, tuple(frame.total_bounds), default_epsg=default_epsg,
                           city_bounds=city_bounds)
        crs = check_datum(crs, frame.geometry.values, list(wards), city_bounds, default_epsg)
    if crs.epsg is None:
        raise InvalidUpload(Message(
            "The coordinates of {name} fit no known coordinate system; choose one (EPSG code)",
            name=ds.name))
    warnings += list(crs.warnings)
    frame = _to_wgs84(frame, crs.epsg)
    attributes, fields = infer_fields(pd.DataFrame(frame.drop(columns=frame.geometry.name)),
                                      declared=raw.declared_types)
    frame = gpd.GeoDataFrame(attributes, geometry=frame.geometry.values, crs=4326)
    outside = outside_count(frame, city_bounds)
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
                   fields, geometry, outside, warnings)


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


def _features(preview: Preview, spec: PublishSpec) -> tuple[
        list[tuple[shapely.Geometry, dict[str, Any]]], tuple[FieldDef, ...]]:
    frame = preview.frame
    if spec.kind == "generic":
        fields = tuple(
            FieldDef(f.name, f.type, f.vi, f.en, public=f.name not in spec.private_fields)
            for f in preview.fields
        )
        names = [f.name for f in fields]
        props = [{k: v for k, v in zip(names, row, strict=True) if v is not None}
                 for row in _rows(frame, names)]
        return list(zip(frame.geometry.values, props, strict=True)), fields
    kind = get_kind(spec.kind)
    unknown = sorted(set(spec.field_map) - {f.name for f in kind.fields})
    missing_sources = sorted(set(spec.field_map.values()) - set(frame.columns))
    if unknown or missing_sources:
        raise InvalidUpload(Message("Field mapping refers to unknown fields: {names}",
                                    names=unknown + missing_sources))
    required = [f for f in kind.fields if f.required and f.name not in spec.field_map]
    if required:
        raise InvalidUpload(Message("A {kind} layer needs these fields mapped: {fields}",
                                    kind=kind, fields=required))
    items = []
    targets = list(spec.field_map)
    sources = [spec.field_map[t] for t in targets]
    for geom, row in zip(frame.geometry.values, _rows(frame, sources), strict=True):
        props: dict[str, Any] = {}
        for target, raw in zip(targets, row, strict=True):
            f = kind.field(target)
            value = _choice_value(f, raw)
            if value is not None:
                props[target] = value
        items.append((geom, props))
    fields = tuple(replace(f, public=f.name not in spec.private_fields) for f in kind.fields)
    return items, fields


def _prepared(store: Store, preview: Preview, spec: PublishSpec
              ) -> tuple[list[tuple[shapely.Geometry, dict[str, Any]]], tuple[FieldDef, ...],
                         list[Any] | None]:
    """The features to store, the layer's fields and each row's key, once confirmed."""
    if spec.key is not None and spec.key not in preview.frame.columns:
        raise InvalidUpload(Message("The file has no column {column} to match rows on",
                                    column=spec.key))
    if preview.needs_confirmation and not spec.confirmed:
        raise InvalidUpload(Message(
            "The coordinate system was guessed or corrected (EPSG:{epsg}): confirm it before "
            "publishing", epsg=preview.crs.epsg))
    if spec.kind != "generic" and preview.geometry.mixed:
        raise InvalidUpload(
            Message("Mixed geometry types can only be published as a generic layer"))
    items, fields = _features(preview, spec)
    items = place_wards(store, spec.kind, items)  # ward names as codes; missing: located
    return items, fields, preview.frame[spec.key].tolist() if spec.key else None


def plan_publish(store: Store, preview: Preview, spec: PublishSpec) -> ReplacePlan:
    """What publishing ``preview`` over the layer ``spec.slug`` would change, for the
    planner to confirm; stores nothing."""
    items, _, keys = _prepared(store, preview, spec)
    return store.plan_replace(spec.slug, items, keys=keys, file_wins=spec.file_wins)


def publish(store: Store, preview: Preview, spec: PublishSpec, *, actor: str = "system"
            ) -> Layer:
    """Store the previewed data as a new layer, or a new version of ``spec.slug`` whose
    rows are matched to its features by ``spec.key``."""
    items, fields, keys = _prepared(store, preview, spec)
    note = spec.note or Message(IMPORT_NOTE, name=preview.upload_name)
    if spec.replace:
        store.replace_features(spec.slug, items, keys=keys, file_wins=spec.file_wins,
                               expected_version=spec.expected_version, note=note, actor=actor)
        return store.get_layer(spec.slug)
    geometry_type = preview.geometry.geometry_type
    if spec.kind != "generic":
        geometry_type = get_kind(spec.kind).geometry_type
    return store.create_layer(
        spec.slug, spec.title, spec.kind, geometry_type=geometry_type, public=spec.public,
        fields=fields, features=items, keys=keys, note=note, actor=actor,
    )
