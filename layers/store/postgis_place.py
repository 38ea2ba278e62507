"""PostGIS's side of ``place``: the place columns, their upgrade, and paged box queries.

One statement walks the cover's key ranges in order (a nested loop over them, each an
index range scan) and stops at the page's end; ``ST_Intersects`` then tests the shapes, so
the answers are SQLite's, in the same order. Statements are never prepared (the pool's
``prepare_threshold=None``): a generic plan cannot know how selective a box is.
"""

from __future__ import annotations

from typing import Any

import psycopg
import shapely

from ..query import FeatureQuery
from .base import POINT_TYPES
from .common import json_text, parsed_already, range_operator, to_layer
from .place import BOX_TEST, SUMS_SHIFT, box_args, count_cap, cover, page_rows, place_rows, spans

Row = dict[str, Any]

PLACE_SCHEMA = """
ALTER TABLE layers ADD COLUMN IF NOT EXISTS span_x DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE layers ADD COLUMN IF NOT EXISTS span_y DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE layers ADD COLUMN IF NOT EXISTS revision BIGINT NOT NULL DEFAULT 0;
ALTER TABLE features ADD COLUMN IF NOT EXISTS hkey BIGINT NOT NULL DEFAULT 0;
ALTER TABLE features ADD COLUMN IF NOT EXISTS minx DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE features ADD COLUMN IF NOT EXISTS miny DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE features ADD COLUMN IF NOT EXISTS maxx DOUBLE PRECISION NOT NULL DEFAULT 0;
ALTER TABLE features ADD COLUMN IF NOT EXISTS maxy DOUBLE PRECISION NOT NULL DEFAULT 0;
CREATE INDEX IF NOT EXISTS features_place ON features (layer_id, hkey, id)
    INCLUDE (minx, miny, maxx, maxy) WHERE archived_at IS NULL;
CREATE TABLE IF NOT EXISTS cluster_sums (
    layer_id BIGINT NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    cell BIGINT NOT NULL,
    value TEXT COLLATE "C" NOT NULL,
    n BIGINT NOT NULL,
    sx DOUBLE PRECISION NOT NULL,
    sy DOUBLE PRECISION NOT NULL,
    sid BIGINT NOT NULL,
    PRIMARY KEY (layer_id, cell, value)
);
"""
# SQLite's sums (sqlite_place), the colour value as JSON text as jsonb writes it.
_ADD_SUMS = (
    "INSERT INTO cluster_sums (layer_id, cell, value, n, sx, sy, sid)"  # noqa: S608
    f" SELECT f.layer_id, f.hkey >> {SUMS_SHIFT},"
    " coalesce((f.props -> %s::text)::text, 'null'), %s * count(*),"
    " %s * sum((f.minx + f.maxx) / 2), %s * sum((f.miny + f.maxy) / 2), %s * sum(f.id)"
    " FROM features f WHERE f.layer_id = %s AND f.archived_at IS NULL"
    " AND f.id BETWEEN %s AND %s GROUP BY 1, 2, 3"
    " ON CONFLICT (layer_id, cell, value) DO UPDATE SET n = cluster_sums.n + excluded.n,"
    " sx = cluster_sums.sx + excluded.sx, sy = cluster_sums.sy + excluded.sy,"
    " sid = cluster_sums.sid + excluded.sid")
COLUMNS = ("f.id, f.hkey, ST_AsBinary(f.geom) AS geom, f.props, f.version, f.created_at,"
           " f.updated_at, f.archived_at")
SET_PLACE = "hkey = %s, minx = %s, miny = %s, maxx = %s, maxy = %s"
_BOX = BOX_TEST.format(m="%s")


def upgrade_place(conn: psycopg.Connection[Row]) -> None:
    """Schema 6, for a database of an older one: fill the place columns (which
    ``PLACE_SCHEMA`` added) from each geometry, inside the caller's transaction."""
    last = 0
    while rows := conn.execute("SELECT id, ST_AsBinary(geom) AS geom FROM features"
                               " WHERE id > %s ORDER BY id LIMIT 5000", (last,)).fetchall():
        places = place_rows(shapely.from_wkb([r["geom"] for r in rows]))
        with conn.cursor() as cur:
            cur.executemany(f"UPDATE features SET {SET_PLACE} WHERE id = %s",  # noqa: S608
                            [(*p, r["id"]) for p, r in zip(places, rows, strict=True)])
        last = rows[-1]["id"]
    conn.execute("UPDATE layers SET span_x = s.w, span_y = s.h FROM (SELECT layer_id,"
                 " max(maxx - minx) AS w, max(maxy - miny) AS h FROM features GROUP BY layer_id)"
                 " s WHERE s.layer_id = layers.id")
    for row in conn.execute("SELECT id FROM layers").fetchall():
        rebuild_sums(conn, row["id"])


def touch_layer(conn: psycopg.Connection[Row], layer_id: int,
                places: list[tuple[int, float, float, float, float]]) -> None:
    """Record a write to the layer's features: a new revision, and the spans widened to
    hold the features just written."""
    span_x, span_y = spans(places)
    conn.execute("UPDATE layers SET span_x = GREATEST(span_x, %s), span_y = GREATEST(span_y,"
                 " %s), revision = revision + 1 WHERE id = %s", (span_x, span_y, layer_id))


def add_sums(conn: psycopg.Connection[Row], layer_id: int, first: int, last: int,
             sign: int = 1) -> None:
    """Add the current features with ids first..last to a point layer's cluster sums (or,
    with ``sign`` -1, take them away), inside the caller's transaction."""
    layer = to_layer(conn.execute("SELECT * FROM layers WHERE id = %s", (layer_id,)
                                  ).fetchone(), parsed_already)
    if layer.geometry_type not in POINT_TYPES:
        return
    conn.execute(_ADD_SUMS, [layer.color_by, sign, sign, sign, sign, layer_id, first, last])
    if sign < 0:
        conn.execute("DELETE FROM cluster_sums WHERE layer_id = %s AND n = 0", (layer_id,))


def rebuild_sums(conn: psycopg.Connection[Row], layer_id: int) -> None:
    """The layer's cluster sums made again from its current features (after a replace)."""
    conn.execute("DELETE FROM cluster_sums WHERE layer_id = %s", (layer_id,))
    add_sums(conn, layer_id, 0, 2**63 - 1)


def _filters(query: FeatureQuery) -> tuple[str, list[Any]]:
    """The property filters as SQL; field names travel as parameters too."""
    clauses, params = [], []
    for name, values in sorted(query.equals.items()):
        # JSON equality: the integer 2 matches 2, not "2", as json_extract does in SQLite.
        clauses.append(" AND (f.props -> %s) = ANY(%s::jsonb[])")
        params += [name, [json_text(v) for v in values]]
    for name, op, value in query.ranges:
        clauses.append(f' AND (f.props ->> %s) COLLATE "C" {range_operator(op)} %s')
        params += [name, value]
    return "".join(clauses), params


def query_page(conn: psycopg.Connection[Row], layer: Row, query: FeatureQuery
               ) -> tuple[list[Row], int | None, tuple[int, int] | None]:
    """One page of rows, the number matched (None past ``count_cap``) and the next ``after``."""
    cap = count_cap(query.limit)
    where, params = _filters(query)
    want = query.limit + 1
    if query.bbox is None:
        after = query.after[1] if query.after else 0
        rows = conn.execute(
            f"SELECT {COLUMNS} FROM features f WHERE f.layer_id = %s"  # noqa: S608
            f" AND f.archived_at IS NULL AND f.id > %s{where} ORDER BY f.id LIMIT %s",
            [layer["id"], after, *params, want]).fetchall()
        page, after_next = page_rows(rows, query.limit, by_place=False)
        if query.after is None and after_next is None:
            return page, len(page), None
        found = conn.execute(
            "SELECT count(*) AS n FROM (SELECT 1 FROM features f WHERE f.layer_id = %s"  # noqa: S608
            f" AND f.archived_at IS NULL{where} LIMIT %s) s",
            [layer["id"], *params, cap + 1]).fetchone()["n"]
        return page, found if found <= cap else None, after_next
    key, last_id = query.after or (-1, -1)
    every = cover(query.bbox, (layer["span_x"], layer["span_y"]))
    ranges = [(lo, hi) for lo, hi in every if hi >= key]
    if layer["geometry_type"] != "Point":
        where += " AND ST_Intersects(f.geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
        params += list(query.bbox)
    inner = ("FROM features f WHERE f.layer_id = %s AND f.archived_at IS NULL"
             " AND f.hkey BETWEEN GREATEST(r.lo, %s) AND r.hi AND (f.hkey > %s OR f.id > %s)"
             f" AND {_BOX}{where}")
    args = [[lo for lo, _ in ranges], [hi for _, hi in ranges], layer["id"], key, key,
            last_id, *box_args(query.bbox), *params]
    # Rows come range by range, each in (key, id) order: the LIMIT ends the walk early.
    rows = conn.execute(
        "SELECT x.* FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) CROSS JOIN LATERAL"  # noqa: S608
        f" (SELECT {COLUMNS} {inner} ORDER BY f.hkey, f.id LIMIT %s) x LIMIT %s",
        [*args, want, want]).fetchall()
    page, after_next = page_rows(rows, query.limit, by_place=True)
    if query.after is None and after_next is None:
        return page, len(page), None
    args[:2] = [[lo for lo, _ in every], [hi for _, hi in every]]
    args[3:6] = [-1, -1, -1]
    found = conn.execute(
        "SELECT count(*) AS n FROM (SELECT 1 FROM unnest(%s::bigint[], %s::bigint[])"  # noqa: S608
        f" AS r(lo, hi) CROSS JOIN LATERAL (SELECT 1 {inner} LIMIT %s) x LIMIT %s) s",
        [*args, cap + 1, cap + 1]).fetchone()["n"]
    return page, found if found <= cap else None, after_next
