"""The hotspot workflow: which status may follow which, and recording each move.

Statuses are data (``kinds.HOTSPOT_STATUS``); the allowed moves live here, in one table,
so the web page, the API and any script offer and enforce the same ones.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from .errors import InvalidFeature
from .messages import Message
from .store import Feature, Store
from .store.common import CITIZEN, check_version

TRANSITIONS: dict[str, tuple[str, ...]] = {
    "reported": ("verified", "dismissed"),
    "verified": ("in_progress", "dismissed"),
    "in_progress": ("resolved",),
    "resolved": ("in_progress",),  # reopened: the problem came back
    "dismissed": (),
}


def next_statuses(status: str) -> tuple[str, ...]:
    """The statuses a hotspot in ``status`` may move to."""
    return TRANSITIONS.get(status, ())


def move_status(store: Store, slug: str, feature_id: int, to: str, *, note: str, actor: str,
                expected_version: int, on: dt.date | None = None) -> Feature:
    """Move a hotspot along an allowed transition, with the note every move requires.

    Resolving sets ``resolved_at`` (today unless ``on`` is given); reopening clears it. The
    edit is version-checked like any other, so two inspectors cannot both move it.
    """
    layer = store.get_layer(slug)
    if layer.kind != "hotspot":
        raise InvalidFeature(Message("Layer {slug!r} holds no hotspots", slug=slug))
    note = note.strip()
    if not note:
        raise InvalidFeature(Message("Every status change needs a note saying why"))
    feature = store.get_feature(slug, feature_id)
    # A stale page is a conflict, whichever move it offered: check that before the move.
    check_version(feature, expected_version)
    current = str(feature.properties.get("status"))
    if to not in next_statuses(current):
        raise InvalidFeature(Message(
            "A hotspot that is {current} cannot become {to} (allowed: {allowed})",
            current=current, to=to, allowed=list(next_statuses(current)) or "—"))
    props = dict(feature.properties, status=to)
    if to == "resolved":
        props["resolved_at"] = (on or dt.date.today()).isoformat()
    else:
        props.pop("resolved_at", None)
    return store.update_feature(slug, feature_id, expected_version=expected_version,
                                properties=props, actor=actor, action="feature.status",
                                note=note)


@dataclass(frozen=True)
class TimelineEntry:
    """One line of a hotspot's history, newest first."""

    at: str
    actor: str
    kind: str  # "created", "status", "edit", "inspection", "report_photo", "archived"
    summary: dict[str, object]
    note: str = ""
    photo_ids: tuple[int, ...] = ()


def timeline(store: Store, slug: str, feature_id: int) -> list[TimelineEntry]:
    """Creation, status moves, edits and inspections of a feature, newest first."""
    entries, _ = store.list_audit(layer=slug, feature_id=feature_id, limit=1000)
    out: list[TimelineEntry] = []
    for e in entries:
        if e.action == "inspection.add":
            continue  # listed from the inspections themselves, with their photos
        before = (e.before or {}).get("properties", {})
        after = (e.after or {}).get("properties", {})
        if e.action == "feature.status":
            summary = {"from": before.get("status"), "to": after.get("status")}
            kind = "status"
        elif e.action in ("feature.create", "report.create"):
            summary, kind = {"status": after.get("status")}, "created"
        elif e.action == "feature.archive":
            summary, kind = {}, "archived"
        else:
            summary, kind = {"changes": e.changes()}, "edit"
        out.append(TimelineEntry(e.at, e.actor, kind, summary, e.note))
    for i in store.list_inspections(slug, feature_id):
        # A citizen's photo comes with the report; it is not an inspection.
        kind = "report_photo" if i.inspector == CITIZEN else "inspection"
        out.append(TimelineEntry(i.created_at, i.inspector, kind,
                                 {"inspected_on": i.inspected_on}, i.finding, i.photo_ids))
    if not any(t.kind == "created" for t in out):
        # Imported in bulk: the feature itself still knows when it arrived.
        feature = store.get_feature(slug, feature_id, archived=True)
        out.append(TimelineEntry(feature.created_at, "", "created",
                                 {"status": feature.properties.get("status")}))
    return sorted(out, key=lambda t: t.at, reverse=True)


@dataclass(frozen=True)
class PublicStep:
    """A step of a hotspot's history the public may follow: when, and the status reached.
    Notes, names and findings stay internal."""

    at: str
    status: str


def public_timeline(store: Store, slug: str, feature_id: int) -> list[PublicStep]:
    """The report and every status move of a hotspot, oldest first, without who or why."""
    return [PublicStep(t.at, str(t.summary["status" if t.kind == "created" else "to"]))
            for t in reversed(timeline(store, slug, feature_id))
            if t.kind in ("created", "status")]
