"""The SQLite store's records beside the map data: audit log, inspections and photos.

Kept apart from ``sqlite.py`` so each file stays readable; ``SQLiteStore`` mixes this in
and every write here runs inside the store's own transactions.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import orjson
from shapely.geometry.base import BaseGeometry

from ..errors import FeatureNotFound, LayerNotFound
from ..messages import Message
from .base import AuditEntry, Inspection, PublicMap, StoredPhoto
from .common import (
    CITIZEN,
    audit_values,
    audit_where,
    checked_inspection,
    inspection_entry,
    json_or_none,
    report_entry,
    report_photo_record,
    to_audit_entry,
    utc_now,
)

RECORDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    layer TEXT,
    feature_id INTEGER,
    before TEXT,
    after TEXT,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_feature ON audit_log(layer, feature_id);
CREATE INDEX IF NOT EXISTS audit_at ON audit_log(at);
CREATE TABLE IF NOT EXISTS inspections (
    id INTEGER PRIMARY KEY,
    layer TEXT NOT NULL,
    feature_id INTEGER NOT NULL,
    inspected_on TEXT NOT NULL,
    inspector TEXT NOT NULL,
    finding TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inspections_feature ON inspections(layer, feature_id);
CREATE TABLE IF NOT EXISTS public_maps (
    slug TEXT PRIMARY KEY,
    config TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    code TEXT PRIMARY KEY,
    layer TEXT NOT NULL,
    feature_id INTEGER NOT NULL,
    contact TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id INTEGER PRIMARY KEY,
    inspection_id INTEGER NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BLOB NOT NULL
);
"""


class RecordsMixin:
    """Audit log, inspections and photos for ``SQLiteStore``."""

    _tx: Callable[[], AbstractContextManager[sqlite3.Connection]]
    _con: Callable[[], sqlite3.Connection]
    _feature_row: Callable[[sqlite3.Connection, str, int], sqlite3.Row]
    _layer_row: Callable[[sqlite3.Connection, str], sqlite3.Row]
    _insert_many: Callable[..., list[int]]

    @staticmethod
    def _audit(con: sqlite3.Connection, actor: str, action: str, *, layer: str | None = None,
               feature_id: int | None = None, before: Any = None, after: Any = None,
               note: str = "", at: str | None = None) -> None:
        """One audit row, written in the caller's transaction so it cannot be lost."""
        con.execute(
            "INSERT INTO audit_log (at, actor, action, layer, feature_id, before, after, note)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            audit_values(at, actor, action, layer, feature_id, before, after, note),
        )

    def list_audit(self, *, actor: str | None = None, layer: str | None = None,
                   feature_id: int | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 200, offset: int = 0,
                   ) -> tuple[list[AuditEntry], int]:
        where, params = audit_where("?", actor=actor, layer=layer, feature_id=feature_id,
                                    since=since, until=until)
        con = self._con()
        total = con.execute(f"SELECT count(*) FROM audit_log WHERE {where}", params)  # noqa: S608
        rows = con.execute(
            f"SELECT * FROM audit_log WHERE {where} ORDER BY id DESC LIMIT ? OFFSET ?",  # noqa: S608
            [*params, limit, offset],
        )
        entries = [to_audit_entry(r, orjson.loads) for r in rows]
        return entries, int(total.fetchone()[0])

    def add_inspection(self, slug: str, feature_id: int, *, inspected_on: str, inspector: str,
                       finding: str, photos: tuple[tuple[str, int, int, bytes], ...] = (),
                       actor: str = "system") -> int:
        day, finding = checked_inspection(inspected_on, finding)
        now = utc_now()
        with self._tx() as con:
            self._feature_row(con, slug, feature_id)
            cur = con.execute(
                "INSERT INTO inspections (layer, feature_id, inspected_on, inspector, finding,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?)",
                (slug, feature_id, day, inspector, finding, now),
            )
            inspection_id = int(cur.lastrowid)
            con.executemany(
                "INSERT INTO photos (inspection_id, mime, width, height, data)"
                " VALUES (?, ?, ?, ?, ?)",
                [(inspection_id, *photo) for photo in photos],
            )
            self._audit(con, actor, "inspection.add", layer=slug, feature_id=feature_id,
                        after=inspection_entry(day, inspector, finding, len(photos)), at=now)
        return inspection_id

    def list_inspections(self, slug: str, feature_id: int) -> list[Inspection]:
        con = self._con()
        rows = con.execute(
            "SELECT i.*, (SELECT group_concat(p.id) FROM photos p WHERE p.inspection_id = i.id)"
            " AS photo_ids FROM inspections i WHERE layer = ? AND feature_id = ?"
            " ORDER BY inspected_on DESC, id DESC",
            (slug, feature_id),
        )
        return [
            Inspection(r["id"], r["inspected_on"], r["inspector"], r["finding"], r["created_at"],
                       tuple(int(p) for p in (r["photo_ids"] or "").split(",") if p))
            for r in rows
        ]

    def save_public_map(self, public_map: PublicMap, *, actor: str = "system") -> None:
        now = utc_now()
        config = public_map.to_dict()
        with self._tx() as con:
            old = con.execute("SELECT config FROM public_maps WHERE slug = ?",
                              (public_map.slug,)).fetchone()
            con.execute(
                "INSERT INTO public_maps (slug, config, updated_at) VALUES (?, ?, ?)"
                " ON CONFLICT(slug) DO UPDATE SET config = excluded.config,"
                " updated_at = excluded.updated_at",
                (public_map.slug, json_or_none(config), now),
            )
            self._audit(con, actor, "public_map.save", at=now, after=config,
                        before=None if old is None else orjson.loads(old["config"]))

    def get_public_map(self, slug: str) -> PublicMap:
        row = self._con().execute("SELECT config FROM public_maps WHERE slug = ?",
                                  (slug,)).fetchone()
        if row is None:
            raise LayerNotFound(Message("No public map named {slug!r}", slug=slug))
        return PublicMap.from_dict(orjson.loads(row["config"]))

    def list_public_maps(self) -> list[PublicMap]:
        rows = self._con().execute("SELECT config FROM public_maps ORDER BY slug")
        return [PublicMap.from_dict(orjson.loads(r["config"])) for r in rows]

    def create_report(self, slug: str, geometry: BaseGeometry, properties: dict[str, Any], *,
                      code: str, contact: str = "",
                      photo: tuple[str, int, int, bytes] | None = None) -> int:
        """A citizen's report: the hotspot (their words are its description), its private
        contact row and its photo, at once."""
        now = utc_now()
        with self._tx() as con:
            row = self._layer_row(con, slug)
            [feature_id] = self._insert_many(con, row, [(geometry, properties)], now)
            con.execute("INSERT INTO reports (code, layer, feature_id, contact, created_at)"
                        " VALUES (?, ?, ?, ?, ?)", (code, slug, feature_id, contact, now))
            if photo:
                cur = con.execute(
                    "INSERT INTO inspections (layer, feature_id, inspected_on, inspector,"
                    " finding, created_at) VALUES (?, ?, ?, ?, ?, ?)",
                    (slug, feature_id, *report_photo_record(now), now))
                con.execute("INSERT INTO photos (inspection_id, mime, width, height, data)"
                            " VALUES (?, ?, ?, ?, ?)", (cur.lastrowid, *photo))
            self._audit(con, CITIZEN, "report.create", layer=slug, feature_id=feature_id,
                        after=report_entry(properties, code), at=now)
        return feature_id

    def find_report(self, code: str) -> tuple[str, int]:
        row = self._con().execute("SELECT layer, feature_id FROM reports WHERE code = ?",
                                  (code,)).fetchone()
        if row is None:
            raise FeatureNotFound(Message("No report with the code {code!r}", code=code))
        return row["layer"], row["feature_id"]

    def report_contact(self, slug: str, feature_id: int) -> tuple[str, str] | None:
        row = self._con().execute(
            "SELECT code, contact FROM reports WHERE layer = ? AND feature_id = ?",
            (slug, feature_id)).fetchone()
        return None if row is None else (row["code"], row["contact"])

    def get_photo(self, photo_id: int) -> StoredPhoto:
        row = self._con().execute(
            "SELECT p.*, i.layer, i.feature_id FROM photos p"
            " JOIN inspections i ON i.id = p.inspection_id WHERE p.id = ?",
            (photo_id,),
        ).fetchone()
        if row is None:
            raise FeatureNotFound(Message("No photo {id}", id=photo_id))
        return StoredPhoto(row["id"], row["layer"], row["feature_id"], row["mime"], row["width"],
                           row["height"], row["data"])
