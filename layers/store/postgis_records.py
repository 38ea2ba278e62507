"""The PostGIS store's records beside the map data: audit log, inspections, photos, maps.

The PostgreSQL twin of ``sqlite_records.py``: the checks and audit payloads both share
come from ``common.py``; each write runs inside the store's own transaction. Audit values
are ``json`` (not JSONB) so they read back with their keys in the order they were written.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
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
    parsed_already,
    report_entry,
    report_photo_record,
    to_audit_entry,
    utc_now,
)

RECORDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    id BIGSERIAL PRIMARY KEY,
    at TEXT COLLATE "C" NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    layer TEXT,
    feature_id BIGINT,
    before JSON,
    after JSON,
    note TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS audit_feature ON audit_log(layer, feature_id);
CREATE INDEX IF NOT EXISTS audit_at ON audit_log(at);
CREATE TABLE IF NOT EXISTS inspections (
    id BIGSERIAL PRIMARY KEY,
    layer TEXT NOT NULL,
    feature_id BIGINT NOT NULL,
    inspected_on TEXT COLLATE "C" NOT NULL,
    inspector TEXT NOT NULL,
    finding TEXT NOT NULL,
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE INDEX IF NOT EXISTS inspections_feature ON inspections(layer, feature_id);
CREATE TABLE IF NOT EXISTS public_maps (
    slug TEXT COLLATE "C" PRIMARY KEY,
    config JSON NOT NULL,
    updated_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS reports (
    code TEXT PRIMARY KEY,
    layer TEXT NOT NULL,
    feature_id BIGINT NOT NULL,
    contact TEXT NOT NULL DEFAULT '',
    created_at TEXT COLLATE "C" NOT NULL
);
CREATE TABLE IF NOT EXISTS photos (
    id BIGSERIAL PRIMARY KEY,
    inspection_id BIGINT NOT NULL REFERENCES inspections(id) ON DELETE CASCADE,
    mime TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    data BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS photos_inspection ON photos(inspection_id, id);
"""

Row = dict[str, Any]
Conn = psycopg.Connection[Row]


class PostGISRecordsMixin:
    """Audit log, inspections, photos, public maps and reports for ``PostGISStore``."""

    _tx: Callable[[], AbstractContextManager[Conn]]
    _con: Callable[[], AbstractContextManager[Conn]]
    _feature_row: Callable[..., Row]
    _layer_row: Callable[..., Row]
    _insert_many: Callable[..., list[int]]

    @staticmethod
    def _audit(conn: Conn, actor: str, action: str, *, layer: str | None = None,
               feature_id: int | None = None, before: Any = None, after: Any = None,
               note: str = "", at: str | None = None) -> None:
        """One audit row, written in the caller's transaction so it cannot be lost."""
        conn.execute(
            "INSERT INTO audit_log (at, actor, action, layer, feature_id, before, after, note)"
            " VALUES (%s, %s, %s, %s, %s, %s::json, %s::json, %s)",
            audit_values(at, actor, action, layer, feature_id, before, after, note),
        )

    def list_audit(self, *, actor: str | None = None, layer: str | None = None,
                   feature_id: int | None = None, since: str | None = None,
                   until: str | None = None, limit: int = 200, offset: int = 0,
                   ) -> tuple[list[AuditEntry], int]:
        where, params = audit_where("%s", actor=actor, layer=layer, feature_id=feature_id,
                                    since=since, until=until)
        with self._con() as conn:
            total = conn.execute(
                f"SELECT count(*) AS n FROM audit_log WHERE {where}", params  # noqa: S608
            ).fetchone()["n"]
            rows = conn.execute(
                f"SELECT * FROM audit_log WHERE {where}"  # noqa: S608
                " ORDER BY id DESC LIMIT %s OFFSET %s",
                [*params, limit, offset],
            ).fetchall()
        return [to_audit_entry(r, parsed_already) for r in rows], int(total)

    def add_inspection(self, slug: str, feature_id: int, *, inspected_on: str, inspector: str,
                       finding: str, photos: tuple[tuple[str, int, int, bytes], ...] = (),
                       actor: str = "system") -> int:
        day, finding = checked_inspection(inspected_on, finding)
        now = utc_now()
        with self._tx() as conn:
            self._feature_row(conn, slug, feature_id, "share")
            inspection_id = int(conn.execute(
                "INSERT INTO inspections (layer, feature_id, inspected_on, inspector, finding,"
                " created_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                (slug, feature_id, day, inspector, finding, now),
            ).fetchone()["id"])
            if photos:
                conn.cursor().executemany(
                    "INSERT INTO photos (inspection_id, mime, width, height, data)"
                    " VALUES (%s, %s, %s, %s, %s)",
                    [(inspection_id, *photo) for photo in photos],
                )
            self._audit(conn, actor, "inspection.add", layer=slug, feature_id=feature_id,
                        after=inspection_entry(day, inspector, finding, len(photos)), at=now)
        return inspection_id

    def list_inspections(self, slug: str, feature_id: int) -> list[Inspection]:
        with self._con() as conn:
            rows = conn.execute(
                "SELECT i.*, ARRAY(SELECT p.id FROM photos p WHERE p.inspection_id = i.id"
                " ORDER BY p.id) AS photo_ids FROM inspections i"
                " WHERE layer = %s AND feature_id = %s ORDER BY inspected_on DESC, id DESC",
                (slug, feature_id),
            ).fetchall()
        return [
            Inspection(r["id"], r["inspected_on"], r["inspector"], r["finding"], r["created_at"],
                       tuple(int(p) for p in r["photo_ids"]))
            for r in rows
        ]

    def save_public_map(self, public_map: PublicMap, *, actor: str = "system") -> None:
        now = utc_now()
        config = public_map.to_dict()
        with self._tx() as conn:
            old = conn.execute("SELECT config FROM public_maps WHERE slug = %s FOR UPDATE",
                               (public_map.slug,)).fetchone()
            conn.execute(
                "INSERT INTO public_maps (slug, config, updated_at) VALUES (%s, %s::json, %s)"
                " ON CONFLICT (slug) DO UPDATE SET config = excluded.config,"
                " updated_at = excluded.updated_at",
                (public_map.slug, json_or_none(config), now),
            )
            self._audit(conn, actor, "public_map.save", at=now, after=config,
                        before=None if old is None else old["config"])

    def get_public_map(self, slug: str) -> PublicMap:
        with self._con() as conn:
            row = conn.execute("SELECT config FROM public_maps WHERE slug = %s",
                               (slug,)).fetchone()
        if row is None:
            raise LayerNotFound(Message("No public map named {slug!r}", slug=slug))
        return PublicMap.from_dict(row["config"])

    def list_public_maps(self) -> list[PublicMap]:
        with self._con() as conn:
            rows = conn.execute("SELECT config FROM public_maps ORDER BY slug").fetchall()
        return [PublicMap.from_dict(r["config"]) for r in rows]

    def create_report(self, slug: str, geometry: BaseGeometry, properties: dict[str, Any], *,
                      code: str, contact: str = "",
                      photo: tuple[str, int, int, bytes] | None = None) -> int:
        """A citizen's report: the hotspot (their words are its description), its private
        contact row and its photo, at once."""
        now = utc_now()
        with self._tx() as conn:
            row = self._layer_row(conn, slug, "update")
            [feature_id] = self._insert_many(conn, row, [(geometry, properties)], now)
            conn.execute("INSERT INTO reports (code, layer, feature_id, contact, created_at)"
                         " VALUES (%s, %s, %s, %s, %s)", (code, slug, feature_id, contact, now))
            if photo:
                inspection_id = conn.execute(
                    "INSERT INTO inspections (layer, feature_id, inspected_on, inspector,"
                    " finding, created_at) VALUES (%s, %s, %s, %s, %s, %s) RETURNING id",
                    (slug, feature_id, *report_photo_record(now), now),
                ).fetchone()["id"]
                conn.execute("INSERT INTO photos (inspection_id, mime, width, height, data)"
                             " VALUES (%s, %s, %s, %s, %s)", (inspection_id, *photo))
            self._audit(conn, CITIZEN, "report.create", layer=slug, feature_id=feature_id,
                        after=report_entry(properties, code), at=now)
        return feature_id

    def find_report(self, code: str) -> tuple[str, int]:
        with self._con() as conn:
            row = conn.execute("SELECT layer, feature_id FROM reports WHERE code = %s",
                               (code,)).fetchone()
        if row is None:
            raise FeatureNotFound(Message("No report with the code {code!r}", code=code))
        return row["layer"], row["feature_id"]

    def report_contact(self, slug: str, feature_id: int) -> tuple[str, str] | None:
        with self._con() as conn:
            row = conn.execute(
                "SELECT code, contact FROM reports WHERE layer = %s AND feature_id = %s",
                (slug, feature_id)).fetchone()
        return None if row is None else (row["code"], row["contact"])

    def get_photo(self, photo_id: int) -> StoredPhoto:
        with self._con() as conn:
            row = conn.execute(
                "SELECT p.*, i.layer, i.feature_id FROM photos p"
                " JOIN inspections i ON i.id = p.inspection_id WHERE p.id = %s",
                (photo_id,),
            ).fetchone()
        if row is None:
            raise FeatureNotFound(Message("No photo {id}", id=photo_id))
        return StoredPhoto(row["id"], row["layer"], row["feature_id"], row["mime"], row["width"],
                           row["height"], bytes(row["data"]))
