"""The SQLite store's re-import and restore: match, merge, archive, in one transaction.

The matching, merging and auditing are ``reimport``'s; this mixin reads the features it
needs and writes what the plan says. ``upgrade_features`` brings a file of schema 4 or older to
schema 5: feature ids handed out once only (AUTOINCREMENT), keys, baselines, archiving.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import orjson
import shapely

from .common import Batch, Item, json_text
from .place import place_rows
from .reimport import Current, ReimportMixin, ReplacePlan, legacy_baselines
from .sqlite_place import SET_PLACE, rebuild_sums, touch_layer

FEATURES_TABLE = """
CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    layer_id INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    geom BLOB NOT NULL,
    props TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 1,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    import_key TEXT,
    base_geom BLOB,
    base_props TEXT,
    archived_at TEXT,
    hkey INTEGER NOT NULL DEFAULT 0,
    minx REAL NOT NULL DEFAULT 0,
    miny REAL NOT NULL DEFAULT 0,
    maxx REAL NOT NULL DEFAULT 0,
    maxy REAL NOT NULL DEFAULT 0
);
"""


def upgrade_features(con: sqlite3.Connection) -> None:
    """Schema 5, for a file of an older one: rebuild ``features`` with AUTOINCREMENT,
    keeping every id (so inspections and the audit log still point right), and
    start the id sequence past every id history names, so none is handed out again.

    The baseline of each feature is what it held before its first edit by staff, read
    from the audit log (entries older than the feature belong to an earlier holder of a
    reused id and are skipped); a feature never edited is its own baseline.
    """
    con.execute("BEGIN IMMEDIATE")
    try:
        columns = {r[1] for r in con.execute("PRAGMA table_info(features)")}
        if "archived_at" not in columns:
            con.execute(FEATURES_TABLE.format(name="features_v5"))
            con.execute(
                "INSERT INTO features_v5 (id, layer_id, geom, props, version, created_at,"
                " updated_at, base_geom, base_props) SELECT id, layer_id, geom, props, version,"
                " created_at, updated_at, geom, props FROM features")
            con.execute("DROP TABLE features")
            con.execute("ALTER TABLE features_v5 RENAME TO features")
            edits = con.execute(
                "SELECT a.feature_id, a.before FROM audit_log a"
                " JOIN features f ON f.id = a.feature_id"
                " JOIN layers l ON l.id = f.layer_id AND l.slug = a.layer"
                " WHERE a.action IN ('feature.update', 'feature.status')"
                " AND a.at >= f.created_at ORDER BY a.id").fetchall()
            con.executemany(
                "UPDATE features SET base_geom = ?, base_props = ? WHERE id = ?",
                [(g, json_text(p), i) for i, (g, p) in legacy_baselines(
                    [(r["feature_id"], orjson.loads(r["before"])) for r in edits]).items()])
            top = con.execute(
                "SELECT max(coalesce((SELECT max(id) FROM features), 0),"
                " coalesce((SELECT max(feature_id) FROM audit_log), 0),"
                " coalesce((SELECT max(feature_id) FROM inspections), 0),"
                " coalesce((SELECT max(feature_id) FROM reports), 0))").fetchone()[0]
            con.execute("DELETE FROM sqlite_sequence WHERE name = 'features'")
            con.execute("INSERT INTO sqlite_sequence (name, seq) VALUES ('features', ?)", (top,))
        archive = {r[1] for r in con.execute("PRAGMA table_info(feature_archive)")}
        if "feature_id" not in archive:
            con.execute("ALTER TABLE feature_archive ADD COLUMN feature_id INTEGER")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


class SQLiteReimportMixin(ReimportMixin):
    """The SQL of ``ReimportMixin`` for SQLite."""

    _con: Callable[[], sqlite3.Connection]
    _layer_row: Callable[[sqlite3.Connection, str], sqlite3.Row]
    _insert_batch: Callable[[sqlite3.Connection, int, Batch, str], list[int]]

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        yield self._con()

    def _target(self, conn: sqlite3.Connection, slug: str, write: bool) -> sqlite3.Row:
        return self._layer_row(conn, slug)  # a write transaction is exclusive already

    def _current(self, conn: sqlite3.Connection, layer_id: int) -> list[Current]:
        rows = conn.execute(
            "SELECT id, geom, props, import_key, base_geom, base_props, archived_at"
            " FROM features WHERE layer_id = ? ORDER BY id", (layer_id,)).fetchall()
        if not rows:
            return []
        geoms = shapely.from_wkb([r["geom"] for r in rows])
        bases = shapely.from_wkb([r["base_geom"] or r["geom"] for r in rows])
        return [Current(r["id"], r["import_key"], g, orjson.loads(r["props"]), b,
                        orjson.loads(r["base_props"] or r["props"]), r["archived_at"] is not None)
                for r, g, b in zip(rows, geoms, bases, strict=True)]

    def _version_items(self, conn: sqlite3.Connection, layer_id: int, data_version: int
                       ) -> tuple[bool, list[Item], list[str | None]]:
        known = conn.execute(
            "SELECT 1 FROM layer_versions WHERE layer_id = ? AND data_version = ?",
            (layer_id, data_version)).fetchone()
        rows = conn.execute(
            "SELECT geom, props, feature_id FROM feature_archive WHERE layer_id = ?"
            " AND data_version = ? ORDER BY rowid", (layer_id, data_version)).fetchall()
        geoms = shapely.from_wkb([r["geom"] for r in rows]) if rows else []
        return (known is not None,
                [(g, orjson.loads(r["props"])) for g, r in zip(geoms, rows, strict=True)],
                [None if r["feature_id"] is None else str(r["feature_id"]) for r in rows])

    def _write_plan(self, conn: sqlite3.Connection, row: sqlite3.Row, plan: ReplacePlan,
                    now: str) -> None:
        layer_id, current = row["id"], row["data_version"]
        conn.execute(
            "INSERT INTO feature_archive (layer_id, data_version, geom, props, feature_id)"
            " SELECT layer_id, ?, geom, props, id FROM features WHERE layer_id = ?"
            " AND archived_at IS NULL ORDER BY id", (current, layer_id))
        updates = plan.updates
        geoms = shapely.to_wkb([u.geometry for u in updates]) if updates else []
        bases = shapely.to_wkb([u.base_geometry for u in updates]) if updates else []
        places = place_rows([u.geometry for u in updates]) if updates else []
        conn.executemany(
            "UPDATE features SET geom = ?, props = ?, version = version + ?,"  # noqa: S608
            " updated_at = CASE WHEN ? THEN ? ELSE updated_at END, base_geom = ?,"
            f" base_props = ?, archived_at = NULL, {SET_PLACE} WHERE id = ?",
            [(g, json_text(u.properties), int(bool(u.changed)), bool(u.changed), now, b,
              json_text(u.base_properties), *place, u.id)
             for u, g, b, place in zip(updates, geoms, bases, places, strict=True)])
        touch_layer(conn, layer_id, places)
        conn.executemany("UPDATE features SET archived_at = ? WHERE id = ?",
                         [(now, c.id) for c in plan.archived])
        if plan.added.properties:
            self._insert_batch(conn, layer_id, plan.added, now)
        rebuild_sums(conn, layer_id)
        conn.execute("UPDATE layers SET data_version = ?, updated_at = ? WHERE id = ?",
                     (current + 1, now, layer_id))

