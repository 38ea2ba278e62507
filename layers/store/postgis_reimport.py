"""The PostGIS store's re-import and restore: the SQL of ``reimport.ReimportMixin``.

Feature ids come from a sequence, which never hands one out twice; schema 5 adds the
columns a re-import needs (``FEATURES_UPGRADE``) and ``upgrade_features`` fills the
baselines of features stored before, as the SQLite store does.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

import psycopg
import shapely

from .common import Batch, Item, json_text
from .place import place_rows
from .postgis_place import SET_PLACE, rebuild_sums, touch_layer
from .reimport import Current, ReimportMixin, ReplacePlan, legacy_baselines

Row = dict[str, Any]

# Idempotent: fresh databases get the columns from here too.
FEATURES_UPGRADE = """
ALTER TABLE features ADD COLUMN IF NOT EXISTS import_key TEXT;
ALTER TABLE features ADD COLUMN IF NOT EXISTS base_geom BYTEA;
ALTER TABLE features ADD COLUMN IF NOT EXISTS base_props JSONB;
ALTER TABLE features ADD COLUMN IF NOT EXISTS archived_at TEXT COLLATE "C";
ALTER TABLE feature_archive ADD COLUMN IF NOT EXISTS feature_id BIGINT;
"""


def upgrade_features(conn: psycopg.Connection[Row]) -> None:
    """Schema 5, for an older database: baselines of the features stored before, from the
    audit log (what each held before its first edit by staff), else their own values."""
    conn.execute(FEATURES_UPGRADE)
    edits = conn.execute(
        "SELECT a.feature_id, a.before FROM audit_log a JOIN features f ON f.id = a.feature_id"
        " JOIN layers l ON l.id = f.layer_id AND l.slug = a.layer"
        " WHERE a.action IN ('feature.update', 'feature.status') AND a.at >= f.created_at"
        " AND f.base_props IS NULL ORDER BY a.id").fetchall()
    with conn.cursor() as cur:
        cur.executemany(
            "UPDATE features SET base_geom = %s, base_props = %s::jsonb WHERE id = %s",
            [(g, json_text(p), i) for i, (g, p) in legacy_baselines(
                [(r["feature_id"], r["before"]) for r in edits]).items()])
    conn.execute("UPDATE features SET base_geom = ST_AsBinary(geom), base_props = props"
                 " WHERE base_props IS NULL")


class PostGISReimportMixin(ReimportMixin):
    """The SQL of ``ReimportMixin`` for PostGIS."""

    _con: Callable[[], AbstractContextManager[psycopg.Connection[Row]]]
    _layer_row: Callable[..., Row]
    _insert_batch: Callable[[psycopg.Connection[Row], int, Batch, str], list[int]]

    def _reading(self) -> AbstractContextManager[psycopg.Connection[Row]]:
        return self._con()

    def _target(self, conn: psycopg.Connection[Row], slug: str, write: bool) -> Row:
        return self._layer_row(conn, slug, "update" if write else "")

    def _current(self, conn: psycopg.Connection[Row], layer_id: int) -> list[Current]:
        rows = conn.execute(
            "SELECT id, ST_AsBinary(geom) AS geom, props, import_key, base_geom, base_props,"
            " archived_at FROM features WHERE layer_id = %s ORDER BY id", (layer_id,)).fetchall()
        if not rows:
            return []
        geoms = shapely.from_wkb([r["geom"] for r in rows])
        bases = shapely.from_wkb([r["base_geom"] or r["geom"] for r in rows])
        return [Current(r["id"], r["import_key"], g, r["props"], b,
                        r["props"] if r["base_props"] is None else r["base_props"],
                        r["archived_at"] is not None)
                for r, g, b in zip(rows, geoms, bases, strict=True)]

    def _version_items(self, conn: psycopg.Connection[Row], layer_id: int, data_version: int
                       ) -> tuple[bool, list[Item], list[str | None]]:
        known = conn.execute(
            "SELECT 1 FROM layer_versions WHERE layer_id = %s AND data_version = %s",
            (layer_id, data_version)).fetchone()
        rows = conn.execute(
            "SELECT ST_AsBinary(geom) AS geom, props, feature_id FROM feature_archive"
            " WHERE layer_id = %s AND data_version = %s ORDER BY id",
            (layer_id, data_version)).fetchall()
        geoms = shapely.from_wkb([r["geom"] for r in rows]) if rows else []
        return (known is not None, [(g, r["props"]) for g, r in zip(geoms, rows, strict=True)],
                [None if r["feature_id"] is None else str(r["feature_id"]) for r in rows])

    def _write_plan(self, conn: psycopg.Connection[Row], row: Row, plan: ReplacePlan,
                    now: str) -> None:
        layer_id, current = row["id"], row["data_version"]
        conn.execute(
            "INSERT INTO feature_archive (layer_id, data_version, geom, props, feature_id)"
            " SELECT layer_id, %s, geom, props, id FROM features WHERE layer_id = %s"
            " AND archived_at IS NULL ORDER BY id", (current, layer_id))
        updates = plan.updates
        geoms = shapely.to_wkb([u.geometry for u in updates]) if updates else []
        bases = shapely.to_wkb([u.base_geometry for u in updates]) if updates else []
        places = place_rows([u.geometry for u in updates]) if updates else []
        with conn.cursor() as cur:
            cur.executemany(
                "UPDATE features SET geom = ST_GeomFromWKB(%s, 4326), props = %s::jsonb,"  # noqa: S608
                " version = version + %s, updated_at = CASE WHEN %s THEN %s ELSE updated_at END,"
                f" base_geom = %s, base_props = %s::jsonb, archived_at = NULL, {SET_PLACE}"
                " WHERE id = %s",
                [(g, json_text(u.properties), int(bool(u.changed)), bool(u.changed), now, b,
                  json_text(u.base_properties), *place, u.id)
                 for u, g, b, place in zip(updates, geoms, bases, places, strict=True)])
            cur.executemany("UPDATE features SET archived_at = %s WHERE id = %s",
                            [(now, c.id) for c in plan.archived])
        touch_layer(conn, layer_id, places)
        if plan.added.properties:
            self._insert_batch(conn, layer_id, plan.added, now)
        rebuild_sums(conn, layer_id)
        conn.execute("UPDATE layers SET data_version = %s, updated_at = %s WHERE id = %s",
                     (current + 1, now, layer_id))


