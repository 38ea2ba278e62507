"""The import pipeline as the web pages, the API and the CLI all call it, with app settings."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from typing import Any

from flask import current_app

from layers.errors import InvalidUpload
from layers.ingest.archive import UploadLimits
from layers.ingest.encoding import ENCODINGS
from layers.ingest.pipeline import Preview, ReadOptions, preview_upload
from layers.messages import Message
from layers.store import Layer
from layers.store.reimport import ReplacePlan
from layers.wards import Wards

from .i18n import tr
from .store_access import get_store


def limits() -> UploadLimits:
    return UploadLimits(max_upload_bytes=current_app.config["MAX_CONTENT_LENGTH"])


def _int_arg(args: dict[str, str], name: str) -> int | None:
    value = (args.get(name) or "").strip().removeprefix("EPSG:").removeprefix("epsg:")
    if not value:
        return None
    if not value.isdigit():
        raise InvalidUpload(Message("{name} must be an EPSG code such as 9212", name=name))
    return int(value)


def read_options(args: dict[str, str]) -> ReadOptions:
    """The planner's overrides, from the preview form or the API."""
    encoding = args.get("encoding") or None
    if encoding and encoding not in ENCODINGS:
        raise InvalidUpload(Message("encoding must be one of {known}", known=list(ENCODINGS)))
    return ReadOptions(
        dataset=args.get("dataset") or None,
        crs_epsg=_int_arg(args, "crs"),
        encoding=encoding,
        csv_x=args.get("csv_x") or None,
        csv_y=args.get("csv_y") or None,
    )


def run_preview(path: Path, name: str, options: ReadOptions) -> Preview:
    config = current_app.config
    return preview_upload(path, name, options, limits=limits(),
                          default_epsg=config["DEFAULT_EPSG"],
                          city_bounds=tuple(config["CITY_BOUNDS"]),
                          wards=Wards.of(get_store()).shapes)



def published_json(layer: Layer, preview: Preview) -> dict[str, Any]:
    """The API's answer to a publish: the layer, and what the import repaired or left out,
    so a script sees the same warnings a planner reads in the preview."""
    return {**layer.to_dict(), "features": preview.feature_count,
            "warnings": [tr(w) for w in preview.warnings],
            "repaired": preview.geometry.repaired,
            "dropped_empty": preview.geometry.dropped_empty,
            "dropped_nonfinite": preview.geometry.dropped_nonfinite}


def preview_json(preview: Preview) -> dict[str, Any]:
    """The preview as data: what the pipeline understood and how sure it is."""
    crs = preview.crs
    return {
        "dataset": preview.dataset.name,
        "datasets": [d.name for d in preview.datasets],
        "format": preview.dataset.format,
        "feature_count": preview.feature_count,
        "geometry_type": preview.geometry.geometry_type,
        "crs": {"epsg": crs.epsg, "source": crs.source, "confidence": crs.confidence,
                "needs_confirmation": crs.needs_confirmation,
                "candidates": [{"epsg": c.epsg, "name": c.name, "confidence": c.confidence,
                                "reason": tr(c.reason)} for c in crs.candidates]},
        "encoding": None if preview.encoding is None else {
            "encoding": preview.encoding.encoding, "confidence": preview.encoding.confidence,
            "evidence": tr(preview.encoding.evidence), "source": preview.encoding_source,
            "used": preview.text_encoding},
        "fields": [f.to_dict() for f in preview.fields],
        "rows": preview.rows(),
        "warnings": [tr(w) for w in preview.warnings],
        "repaired": preview.geometry.repaired,
        "dropped_empty": preview.geometry.dropped_empty,
        "outside": preview.outside,
    }


def plan_json(plan: ReplacePlan) -> dict[str, Any]:
    """A replace's or restore's diff as data, for scripts and the CLI: counts, examples
    and the conflicts with staff changes (the first 500)."""
    return {
        "layer": plan.layer,
        "data_version": plan.data_version,
        "matched_by": plan.matched_by,
        "counts": plan.counts(),
        "examples": {kind: [asdict(e) for e in rows] for kind, rows in plan.examples().items()},
        "conflicts": [asdict(c) for c in plan.conflicts[:500]],
    }
