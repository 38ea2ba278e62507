"""Re-importing a layer: which current feature each incoming row is, and what changes.

Both stores read their features into ``Current`` records and hand them to ``plan``, then
write what the plan says in the same transaction; so SQLite and PostGIS match, merge and
count alike, and the preview shows exactly what applying will do.

A feature keeps, beside its values, the values its last import (or restore, or its
creation) gave it: the *baseline*. A field whose value differs from its baseline was
changed by staff. When the file brings a new value for such a field, that is a conflict:
the staff's value stays unless the planner chose the file's (``FileWins``).
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping, shape
from shapely.geometry.base import BaseGeometry

from ..errors import InvalidFeature, VersionConflict
from ..messages import Message
from .base import STAFF_WINS, FileWins, Layer
from .common import Batch, Item, Row, checked_batch, checked_restore, key_text, utc_now

GEOMETRY = "geometry"  # the pseudo-field a conflict names when the location differs
EXAMPLES = 5  # rows of each kind a diff shows


@dataclass(frozen=True)
class Current:
    """A stored feature as a re-import sees it: values, baseline, key and archive state."""

    id: int
    key: str | None
    geometry: BaseGeometry
    properties: dict[str, Any]
    base_geometry: BaseGeometry
    base_properties: dict[str, Any]
    archived: bool


@dataclass(frozen=True)
class Conflict:
    """A field staff changed since the last import, for which the file brings another value."""

    feature_id: int
    key: str | None
    name: str  # the feature's title, for people
    field: str
    staff: Any
    file: Any
    file_wins: bool


@dataclass(frozen=True)
class Update:
    """A matched feature's values after the merge, and its new baseline (the file's)."""

    id: int
    key: str | None
    geometry: BaseGeometry
    properties: dict[str, Any]
    base_geometry: BaseGeometry
    base_properties: dict[str, Any]
    changed: tuple[str, ...]  # fields whose value changes
    returns: bool  # an archived feature the file brings back
    before: Current


@dataclass(frozen=True)
class Example:
    """One row of a diff, as a person reads it."""

    feature_id: int | None
    key: str | None
    name: str
    fields: tuple[str, ...] = ()


@dataclass
class ReplacePlan:
    """What replacing a layer's data will do; the same object the store then applies."""

    layer: str
    data_version: int
    matched_by: str  # "key", "id" (a restore) or "none"
    added: Batch
    updates: list[Update]
    archived: list[Current]
    conflicts: list[Conflict] = field(default_factory=list)

    @property
    def changed(self) -> list[Update]:
        return [u for u in self.updates if u.changed or u.returns]

    @property
    def unchanged(self) -> int:
        return len(self.updates) - len(self.changed)

    def counts(self) -> dict[str, int]:
        return {"added": len(self.added.properties), "changed": len(self.changed),
                "unchanged": self.unchanged, "archived": len(self.archived),
                "conflicts": len(self.conflicts),
                "file_wins": sum(c.file_wins for c in self.conflicts)}

    def examples(self, n: int = EXAMPLES) -> dict[str, list[Example]]:
        """A few rows of each kind, for the confirmation page and the CLI."""
        added = [Example(None, k, title_of(p)) for k, p in zip(
            self.added.keys or [None] * len(self.added.properties), self.added.properties,
            strict=True)][:n]
        return {
            "added": added,
            "changed": [Example(u.id, u.key, title_of(u.properties), u.changed)
                        for u in self.changed[:n]],
            "archived": [Example(c.id, c.key, title_of(c.properties)) for c in self.archived[:n]],
        }


def title_of(props: dict[str, Any]) -> str:
    return str(props.get("name") or props.get("ten") or props.get("title") or "")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, BaseGeometry) or isinstance(b, BaseGeometry):
        return a is not None and b is not None and a.equals_exact(b, 1e-9)
    return a == b


def _merge(cur: Current, geometry: BaseGeometry, props: dict[str, Any], file_wins: FileWins,
           conflicts: list[Conflict]) -> Update:
    """Field by field: the file's value where staff left the field alone, else the staff's
    unless the planner chose the file's."""
    staff = {**cur.properties, GEOMETRY: cur.geometry}
    base = {**cur.base_properties, GEOMETRY: cur.base_geometry}
    file = {**props, GEOMETRY: geometry}
    merged: dict[str, Any] = {}
    for name in dict.fromkeys([*file, *staff]):
        mine, theirs = staff.get(name), file.get(name)
        if _same(mine, theirs) or _same(mine, base.get(name)):
            value = theirs
        else:
            wins = file_wins(cur.id, name)
            conflicts.append(Conflict(cur.id, cur.key, title_of(cur.properties), name,
                                      _shown(mine), _shown(theirs), wins))
            value = theirs if wins else mine
        if value is not None:
            merged[name] = value
    changed = tuple(n for n in merged.keys() | staff.keys()
                    if not _same(merged.get(n), staff.get(n)))
    new_geometry = merged.pop(GEOMETRY)
    return Update(cur.id, cur.key, new_geometry, merged, geometry, props,
                  tuple(sorted(changed)), cur.archived, cur)


def _shown(value: Any) -> Any:
    return mapping(value) if isinstance(value, BaseGeometry) else value


def plan(layer: Layer, data_version: int, current: Sequence[Current], items: Sequence[Item],
         keys: Sequence[str | None] | None, *, by_id: bool = False,
         file_wins: FileWins) -> ReplacePlan:
    """Match ``items`` to ``current`` features and merge them.

    ``keys`` are the rows' values of the key column the planner chose (None: match nothing,
    every row is a new feature); with ``by_id`` they are feature ids (a restore). A row
    matches the live feature of that key first, else an archived one, which comes back.
    Current features no row matches are archived. Raises InvalidFeature for a bad row or a
    key that several rows share.
    """
    batch = checked_batch(layer, list(items), 1)
    row_keys = [key_text(k) for k in keys] if keys is not None else [None] * len(items)
    seen: dict[str, int] = {}
    for n, k in enumerate(row_keys, start=1):
        if k is not None and k in seen and not by_id:
            raise InvalidFeature(Message(
                "Rows {first} and {second} both have the key {key}: choose a key column whose "
                "values are unique, or none", first=seen[k], second=n, key=repr(k)))
        if k is not None:
            seen.setdefault(k, n)
    index: dict[str, Current] = {}
    if keys is not None:
        for cur in sorted(current, key=lambda c: (c.archived, c.id)):
            k = str(cur.id) if by_id else cur.key
            if k is not None:
                index.setdefault(k, cur)
    conflicts: list[Conflict] = []
    updates: list[Update] = []
    added: list[int] = []
    matched: set[int] = set()
    for n, k in enumerate(row_keys):
        cur = index.get(k) if k is not None else None
        if cur is None or cur.id in matched:
            added.append(n)
            continue
        matched.add(cur.id)
        updates.append(_merge(cur, batch.geometries[n], batch.properties[n], file_wins,
                              conflicts))
    archived = [c for c in current if not c.archived and c.id not in matched]
    new = Batch(np.asarray([batch.geometries[n] for n in added], dtype=object),
                [batch.properties[n] for n in added], 1,
                None if by_id else [row_keys[n] for n in added])
    return ReplacePlan(layer.slug, data_version, "id" if by_id else (
        "none" if keys is None else "key"), new, updates, archived, conflicts)


def feature_json(feature_id: int, geometry: BaseGeometry, props: dict[str, Any]
                 ) -> dict[str, Any]:
    """A feature as the audit log keeps it (``Feature.to_geojson`` without the meta)."""
    return {"type": "Feature", "id": feature_id, "geometry": mapping(geometry),
            "properties": props}


def replaced_summary(plan: ReplacePlan) -> dict[str, Any]:
    """``layer.replace``'s after value: the new version and what the merge did."""
    return {"data_version": plan.data_version + 1, "matched_by": plan.matched_by,
            **plan.counts()}


def legacy_baselines(edits: Sequence[tuple[int, dict[str, Any] | None]]
                     ) -> dict[int, tuple[bytes, dict[str, Any]]]:
    """Baselines for features stored before schema 5, from their audit entries in order:
    the values (WKB, properties) before each feature's first edit by staff."""
    out: dict[int, tuple[bytes, dict[str, Any]]] = {}
    for feature_id, before in edits:
        if feature_id not in out and before and before.get("geometry"):
            out[feature_id] = (shapely.to_wkb(shape(before["geometry"])),
                               before.get("properties") or {})
    return out


class ReimportMixin:
    """``plan_replace``, ``replace_features``, ``plan_restore`` and ``restore_version`` for
    both stores; each store reads and writes through the hooks below in its own dialect."""

    _tx: Callable[[], AbstractContextManager[Any]]
    _to_layer: Callable[[Row], Layer]
    _log_version: Callable[[Any, int, int, str, str], None]
    _audit: Callable[..., None]

    @abstractmethod
    def _reading(self) -> AbstractContextManager[Any]:
        """A connection for reads."""

    @abstractmethod
    def _target(self, conn: Any, slug: str, write: bool) -> Row:
        """The layer's row; locked against other writers when ``write``."""

    @abstractmethod
    def _current(self, conn: Any, layer_id: int) -> list[Current]:
        """Every feature of the layer, archived ones too."""

    @abstractmethod
    def _version_items(self, conn: Any, layer_id: int, data_version: int
                       ) -> tuple[bool, list[Item], list[str | None]]:
        """(version known, its features, their ids as text) from the archive."""

    @abstractmethod
    def _write_plan(self, conn: Any, row: Row, plan: ReplacePlan, now: str) -> None:
        """Keep the current data as a version, update, archive and add as planned, and
        count the layer one version on."""

    def _plan(self, conn: Any, row: Row, items: Sequence[Item],
              keys: Sequence[str | None] | None, by_id: bool, file_wins: FileWins
              ) -> ReplacePlan:
        return plan(self._to_layer(row), row["data_version"], self._current(conn, row["id"]),
                    items, keys, by_id=by_id, file_wins=file_wins)

    def plan_replace(self, slug: str, items: Sequence[Item], *,
                     keys: Sequence[str | None] | None = None,
                     file_wins: FileWins = STAFF_WINS) -> ReplacePlan:
        with self._reading() as conn:
            return self._plan(conn, self._target(conn, slug, False), items, keys, False,
                              file_wins)

    def replace_features(self, slug: str, items: Sequence[Item], *,
                         keys: Sequence[str | None] | None = None,
                         file_wins: FileWins = STAFF_WINS, expected_version: int | None = None,
                         note: str = "", actor: str = "system") -> int:
        with self._tx() as conn:
            row = self._target(conn, slug, True)
            _expect(row, expected_version)
            return self._apply(conn, row, self._plan(conn, row, list(items), keys, False,
                                                     file_wins), note, actor)

    def _restored(self, conn: Any, row: Row, data_version: int) -> tuple[str, list[Item],
                                                                         list[str | None]]:
        known, items, keys = self._version_items(conn, row["id"], data_version)
        note = checked_restore(row["slug"], data_version, row["data_version"], known)
        return note, items, keys

    def plan_restore(self, slug: str, data_version: int, *, file_wins: FileWins = STAFF_WINS
                     ) -> ReplacePlan:
        with self._reading() as conn:
            row = self._target(conn, slug, False)
            _, items, keys = self._restored(conn, row, data_version)
            return self._plan(conn, row, items, keys, True, file_wins)

    def restore_version(self, slug: str, data_version: int, *, file_wins: FileWins = STAFF_WINS,
                        expected_version: int | None = None, actor: str = "system") -> int:
        with self._tx() as conn:
            row = self._target(conn, slug, True)
            _expect(row, expected_version)
            note, items, keys = self._restored(conn, row, data_version)
            return self._apply(conn, row, self._plan(conn, row, items, keys, True, file_wins),
                               note, actor)

    def _apply(self, conn: Any, row: Row, plan: ReplacePlan, note: str, actor: str) -> int:
        """Write a plan and its audit trail: the layer's, and one entry per feature it
        changed or archived, so each hotspot's timeline tells what the import did to it."""
        now = utc_now()
        slug, current = row["slug"], row["data_version"]
        self._write_plan(conn, row, plan, now)
        self._log_version(conn, row["id"], current + 1, note, now)
        self._audit(conn, actor, "layer.replace", layer=slug, note=note, at=now,
                    before={"data_version": current}, after=replaced_summary(plan))
        action = "feature.restore" if plan.matched_by == "id" else "feature.reimport"
        for u in plan.changed:
            self._audit(conn, actor, action, layer=slug, feature_id=u.id, note=note, at=now,
                        before=feature_json(u.id, u.before.geometry, u.before.properties),
                        after=feature_json(u.id, u.geometry, u.properties))
        for c in plan.archived:
            self._audit(conn, actor, "feature.archive", layer=slug, feature_id=c.id, note=note,
                        at=now, before=feature_json(c.id, c.geometry, c.properties),
                        after={"archived_at": now})
        return current + 1


def _expect(row: Row, expected: int | None) -> None:
    """Refuse applying a diff computed against a version that is no longer current."""
    if expected is not None and expected != row["data_version"]:
        raise VersionConflict(Message(
            "Layer {slug} changed since you reviewed the changes (now version {current}, you "
            "reviewed version {expected}); review them again", slug=repr(row["slug"]),
            current=row["data_version"], expected=expected))
