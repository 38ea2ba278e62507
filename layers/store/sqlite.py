"""The embedded default store: one SQLite file, features indexed by place (``place``).

No server and no extension: geometries are WKB blobs, properties JSON text, and the
spatial index is a B-tree over each feature's Z-order key and float64 box. The file runs
in WAL mode so map readers never wait for a writer; every write is one
``BEGIN IMMEDIATE`` transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from array import array
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import shapely
from shapely.geometry.base import BaseGeometry

from ..kinds import FieldDef
from ..query import FeatureQuery
from ..tiles.grid import TileRequest
from .base import Feature, FeaturePage, Layer, LayerVersion, Store
from .common import (
    Batch,
    added_entry,
    changed_layer,
    checked_edit,
    checked_layer,
    created_entry,
    feature_not_found,
    insert_batches,
    json_text,
    layer_exists,
    layer_not_found,
    to_features,
    to_layer,
    utc_now,
)
from .place import first_revision, place_rows
from .sqlite_accounts import ACCOUNTS_SCHEMA, AccountsMixin, upgrade_accounts
from .sqlite_place import (
    PLACE_INDEX,
    SET_PLACE,
    add_sums,
    query_page,
    touch_layer,
    upgrade_place,
)
from .sqlite_records import RECORDS_SCHEMA, RecordsMixin
from .sqlite_reimport import FEATURES_TABLE, SQLiteReimportMixin, upgrade_features
from .sqlite_tiles import vector_tile

SCHEMA_VERSION = 6
SCHEMA = """
CREATE TABLE IF NOT EXISTS layers (
    id INTEGER PRIMARY KEY,
    slug TEXT NOT NULL UNIQUE,
    title TEXT NOT NULL,
    kind TEXT NOT NULL,
    geometry_type TEXT NOT NULL,
    public INTEGER NOT NULL DEFAULT 0,
    style TEXT NOT NULL DEFAULT '{}',
    fields TEXT NOT NULL DEFAULT '[]',
    data_version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    span_x REAL NOT NULL DEFAULT 0,
    span_y REAL NOT NULL DEFAULT 0,
    revision INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS layer_versions (
    layer_id INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    data_version INTEGER NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    created_at TEXT NOT NULL,
    PRIMARY KEY (layer_id, data_version)
);
CREATE TABLE IF NOT EXISTS feature_archive (
    layer_id INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    data_version INTEGER NOT NULL,
    geom BLOB NOT NULL,
    props TEXT NOT NULL,
    feature_id INTEGER
);
CREATE INDEX IF NOT EXISTS feature_archive_version ON feature_archive(layer_id, data_version);
""" + FEATURES_TABLE.format(name="features") + """
CREATE INDEX IF NOT EXISTS features_layer ON features(layer_id, id);
""" + PLACE_INDEX


class SQLiteStore(AccountsMixin, RecordsMixin, SQLiteReimportMixin, Store):
    """Store backed by one SQLite file; safe to share between threads."""

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._migrate()

    def _migrate(self) -> None:
        """Create the schema, or refuse a file written by a newer version of the software.

        ``PRAGMA user_version`` records the schema version; later versions add their
        upgrade steps here, keyed by the version they upgrade from.
        """
        con = self._con()
        found = con.execute("PRAGMA user_version").fetchone()[0]
        if found > SCHEMA_VERSION:
            raise RuntimeError(
                f"{self.path} was written by a newer gis_service (schema {found}); upgrade it"
            )
        if found < SCHEMA_VERSION:
            if 0 < found < 4:
                upgrade_accounts(con)
            if 0 < found < 5:
                upgrade_features(con)
            if 0 < found < 6:
                upgrade_place(con)
            # executescript manages its own transaction; the statements are idempotent.
            con.executescript(
                SCHEMA + RECORDS_SCHEMA + ACCOUNTS_SCHEMA
                + f"\nPRAGMA user_version = {SCHEMA_VERSION};"
            )

    # -- connection and transactions -------------------------------------------------
    def _con(self) -> sqlite3.Connection:
        con = getattr(self._local, "con", None)
        if con is None:
            con = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA foreign_keys=ON")
            con.execute("PRAGMA synchronous=NORMAL")
            con.execute("PRAGMA cache_size=-65536")  # 64 MiB: R*Tree inserts stay in memory
            self._local.con = con
        return con

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed on success, rolled back on any exception."""
        con = self._con()
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")

    # -- layers ---------------------------------------------------------------------------
    def _layer_row(self, con: sqlite3.Connection, slug: str) -> sqlite3.Row:
        row = con.execute("SELECT * FROM layers WHERE slug = ?", (slug,)).fetchone()
        if row is None:
            raise layer_not_found(slug)
        return row

    @staticmethod
    def _to_layer(row: sqlite3.Row) -> Layer:
        return to_layer(row, json.loads)

    def create_layer(
        self,
        slug: str,
        title: str,
        kind: str,
        *,
        geometry_type: str | None = None,
        public: bool = False,
        style: dict[str, Any] | None = None,
        fields: Iterable[FieldDef] | None = None,
        features: Iterable[tuple[BaseGeometry, dict[str, Any]]] = (),
        keys: Sequence[str | None] | None = None,
        note: str = "",
        actor: str = "system",
    ) -> Layer:
        title, geometry_type, field_defs = checked_layer(slug, title, kind, geometry_type, fields)
        now = utc_now()
        with self._tx() as con:
            if con.execute("SELECT 1 FROM layers WHERE slug = ?", (slug,)).fetchone():
                raise layer_exists(slug)
            con.execute(
                "INSERT INTO layers (slug, title, kind, geometry_type, public, style, fields,"
                " created_at, updated_at, revision) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (slug, title, kind, geometry_type, int(public), json.dumps(style or {}),
                 json.dumps([f.to_dict() for f in field_defs], ensure_ascii=False), now, now,
                 first_revision()),
            )
            row = self._layer_row(con, slug)
            count = len(self._insert_many(con, row, features, now, keys))
            self._log_version(con, row["id"], 1, note, now)
            self._audit(con, actor, "layer.create", layer=slug, note=note, at=now,
                        after=created_entry(self._to_layer(row), count))
        return self.get_layer(slug)

    def get_layer(self, slug: str) -> Layer:
        return self._to_layer(self._layer_row(self._con(), slug))

    def update_layer(self, slug: str, *, title: str | None = None, public: bool | None = None,
                     private_fields: Iterable[str] | None = None, actor: str = "system"
                     ) -> Layer:
        now = utc_now()
        with self._tx() as con:
            before = self._to_layer(self._layer_row(con, slug))
            changed = changed_layer(before, title, public, private_fields)
            con.execute(
                "UPDATE layers SET title = ?, public = ?, fields = ?, updated_at = ?"
                " WHERE slug = ?",
                (changed.title, int(changed.public),
                 json.dumps([f.to_dict() for f in changed.fields], ensure_ascii=False), now,
                 slug),
            )
            after = self._to_layer(self._layer_row(con, slug))
            self._audit(con, actor, "layer.update", layer=slug, at=now,
                        before=before.to_dict(), after=after.to_dict())
        return after

    def list_layers(self, *, public_only: bool = False) -> list[Layer]:
        rows = self._con().execute(
            "SELECT * FROM layers WHERE public = 1 OR ? = 0 ORDER BY id", (int(public_only),)
        )
        return [self._to_layer(r) for r in rows]

    def delete_layer(self, slug: str, *, actor: str = "system") -> None:
        with self._tx() as con:
            row = self._layer_row(con, slug)
            layer_id = row["id"]
            self._audit(con, actor, "layer.delete", layer=slug,
                        before=self._to_layer(row).to_dict())
            con.execute("DELETE FROM features WHERE layer_id = ?", (layer_id,))
            con.execute("DELETE FROM layers WHERE id = ?", (layer_id,))

    # -- features -------------------------------------------------------------------------
    def add_features(
        self, slug: str, items: Iterable[tuple[BaseGeometry, dict[str, Any]]], *,
        actor: str = "system", note: str = "",
    ) -> list[int]:
        now = utc_now()
        with self._tx() as con:
            row = self._layer_row(con, slug)
            ids = list(self._insert_many(con, row, items, now))
            con.execute("UPDATE layers SET updated_at = ? WHERE id = ?", (now, row["id"]))
            if ids:
                action, feature_id, after = added_entry(
                    ids, lambda i: self._to_features(slug, [self._feature_row(con, slug, i)])[0])
                self._audit(con, actor, action, layer=slug, feature_id=feature_id, after=after,
                            note=note, at=now)
        return ids

    BATCH = 2000  # features checked and written per executemany

    def _insert_many(
        self,
        con: sqlite3.Connection,
        row: sqlite3.Row,
        items: Iterable[tuple[BaseGeometry, dict[str, Any]]],
        now: str,
        keys: Sequence[str | None] | None = None,
    ) -> array[int]:
        """Check and insert features inside the caller's transaction, a batch at a time."""
        return insert_batches(self._to_layer(row), items, self.BATCH,
                              lambda batch: self._insert_batch(con, row["id"], batch, now), keys)

    def _insert_batch(self, con: sqlite3.Connection, layer_id: int, batch: Batch, now: str
                      ) -> list[int]:
        """Write one checked batch with its place columns; its ids, in the items' order.

        Each feature is its own baseline (none is stored) until staff edit it or an import
        changes it (``reimport``): the row holds one copy of its data, not two.
        """
        # Ids are assigned here, in the items' order; the write transaction is exclusive, so
        # nobody else can take them meanwhile. Past the AUTOINCREMENT sequence too, so an
        # id once handed out is never handed out again.
        start = con.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'features'), 0),"
            " coalesce((SELECT max(id) FROM features), 0)) + 1").fetchone()[0]
        ids = list(range(start, start + len(batch.properties)))
        wkb = shapely.to_wkb(batch.geometries)
        keys = batch.keys or [None] * len(ids)
        places = place_rows(batch.geometries)
        con.executemany(
            "INSERT INTO features (id, layer_id, geom, props, created_at, updated_at,"
            " import_key, hkey, minx, miny, maxx, maxy)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(i, layer_id, w, text, now, now, k, *p)
             for i, w, k, text, p in zip(ids, wkb, keys, map(json_text, batch.properties),
                                         places, strict=True)],
        )
        touch_layer(con, layer_id, places)
        add_sums(con, layer_id, ids[0], ids[-1])
        return ids

    @staticmethod
    def _log_version(
        con: sqlite3.Connection, layer_id: int, version: int, note: str, now: str
    ) -> None:
        con.execute(
            "INSERT INTO layer_versions (layer_id, data_version, note, created_at)"
            " VALUES (?, ?, ?, ?)",
            (layer_id, version, note, now),
        )

    def list_versions(self, slug: str) -> list[LayerVersion]:
        con = self._con()
        row = self._layer_row(con, slug)
        rows = con.execute(
            "SELECT v.*, (SELECT count(*) FROM feature_archive a WHERE a.layer_id = v.layer_id"
            " AND a.data_version = v.data_version) AS archived"
            " FROM layer_versions v WHERE v.layer_id = ? ORDER BY v.data_version DESC",
            (row["id"],),
        )
        current = row["data_version"]
        return [
            LayerVersion(
                r["data_version"],
                self.count_features(slug) if r["data_version"] == current else r["archived"],
                r["note"],
                r["created_at"],
                r["data_version"] == current,
            )
            for r in rows
        ]

    @staticmethod
    def _to_features(slug: str, rows: list[sqlite3.Row]) -> list[Feature]:
        return to_features(slug, rows, orjson.loads)

    def query_features(self, slug: str, query: FeatureQuery) -> FeaturePage:
        rows, matched, after = query_page(self._con(), self._layer_row(self._con(), slug), query)
        return FeaturePage(self._to_features(slug, rows), matched, query, after)

    def _feature_row(self, con: sqlite3.Connection, slug: str, feature_id: int,
                     archived: bool = False) -> sqlite3.Row:
        """A current feature's row (or an archived one's too): archived ones take no edits."""
        layer_id = self._layer_row(con, slug)["id"]
        row = con.execute(
            "SELECT * FROM features WHERE id = ? AND layer_id = ?"
            " AND (archived_at IS NULL OR ?)", (feature_id, layer_id, archived)
        ).fetchone()
        if row is None:
            raise feature_not_found(slug, feature_id)
        return row

    def get_feature(self, slug: str, feature_id: int, *, archived: bool = False) -> Feature:
        row = self._feature_row(self._con(), slug, feature_id, archived)
        return self._to_features(slug, [row])[0]

    def update_feature(
        self,
        slug: str,
        feature_id: int,
        *,
        expected_version: int,
        geometry: BaseGeometry | None = None,
        properties: dict[str, Any] | None = None,
        actor: str = "system",
        action: str = "feature.update",
        note: str = "",
    ) -> Feature:
        now = utc_now()
        with self._tx() as con:
            row = self._feature_row(con, slug, feature_id)
            layer = self.get_layer(slug)
            current = self._to_features(slug, [row])[0]
            geom, props = checked_edit(layer, current, expected_version, geometry, properties)
            places = place_rows([geom])
            add_sums(con, row["layer_id"], feature_id, feature_id, -1)
            con.execute(
                "UPDATE features SET base_geom = coalesce(base_geom, geom),"  # noqa: S608
                " base_props = coalesce(base_props, props), geom = ?, props = ?,"
                f" version = version + 1, updated_at = ?, {SET_PLACE} WHERE id = ?",
                (shapely.to_wkb(geom), json_text(props), now, *places[0], feature_id),
            )
            touch_layer(con, row["layer_id"], places)
            add_sums(con, row["layer_id"], feature_id, feature_id)
            updated = self._to_features(slug, [self._feature_row(con, slug, feature_id)])[0]
            self._audit(con, actor, action, layer=slug, feature_id=feature_id, note=note,
                        before=current.to_geojson(), after=updated.to_geojson(), at=now)
        return updated

    def extent(self, slug: str) -> tuple[float, float, float, float] | None:
        con = self._con()
        layer_id = self._layer_row(con, slug)["id"]
        row = con.execute(
            "SELECT min(minx), min(miny), max(maxx), max(maxy) FROM features"
            " WHERE layer_id = ? AND archived_at IS NULL", (layer_id,)).fetchone()
        return None if row[0] is None else (row[0], row[1], row[2], row[3])

    def count_features(self, slug: str) -> int:
        con = self._con()
        layer_id = self._layer_row(con, slug)["id"]
        row = con.execute("SELECT count(*) FROM features WHERE layer_id = ?"
                          " AND archived_at IS NULL", (layer_id,))
        return int(row.fetchone()[0])

    def vector_tile(self, slug: str, request: TileRequest) -> bytes:
        con = self._con()
        return vector_tile(con, self._layer_row(con, slug), request)
