"""SQLite's side of ``place``: the place columns, their upgrade, and paged box queries.

A box query walks the cover's key ranges in order through one B-tree index (which holds
the float64 box too, so the box test needs no table row), and stops when the page is
full. Polygons and lines are then tested against the box itself: a feature whose box
overlaps the query box but whose shape does not is no match.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import shapely

from ..query import FeatureQuery
from .base import POINT_TYPES
from .common import range_operator, to_layer
from .place import BOX_TEST, SUMS_SHIFT, box_args, count_cap, cover, page_rows, place_rows, spans

PLACE_COLUMNS = {"hkey": "INTEGER", "minx": "REAL", "miny": "REAL", "maxx": "REAL",
                 "maxy": "REAL"}
LAYER_COLUMNS = {"span_x": "REAL", "span_y": "REAL", "revision": "INTEGER"}
PLACE_INDEX = """
CREATE INDEX IF NOT EXISTS features_place ON features(layer_id, hkey, id, minx, maxx, miny, maxy)
    WHERE archived_at IS NULL;
CREATE TABLE IF NOT EXISTS cluster_sums (
    layer_id INTEGER NOT NULL REFERENCES layers(id) ON DELETE CASCADE,
    cell INTEGER NOT NULL,
    value TEXT NOT NULL,
    n INTEGER NOT NULL,
    sx REAL NOT NULL,
    sy REAL NOT NULL,
    sid INTEGER NOT NULL,
    PRIMARY KEY (layer_id, cell, value)
) WITHOUT ROWID;
"""
# A point layer's sums per SUMS_LEVEL cell and colour value (as JSON text): how many
# points, their summed position, and their summed ids (a cell of one point holds its id).
_ADD_SUMS = (
    "INSERT INTO cluster_sums (layer_id, cell, value, n, sx, sy, sid)"  # noqa: S608
    f" SELECT f.layer_id, f.hkey >> {SUMS_SHIFT}, json_quote(json_extract(f.props, ?)),"
    " ? * count(*), ? * sum((f.minx + f.maxx) / 2), ? * sum((f.miny + f.maxy) / 2),"
    " ? * sum(f.id) FROM features f WHERE f.layer_id = ? AND f.archived_at IS NULL"
    " AND f.id BETWEEN ? AND ? GROUP BY 1, 2, 3"
    " ON CONFLICT (layer_id, cell, value) DO UPDATE SET n = n + excluded.n,"
    " sx = sx + excluded.sx, sy = sy + excluded.sy, sid = sid + excluded.sid")
COLUMNS = ("f.id, f.hkey, f.geom, f.props, f.version, f.created_at, f.updated_at,"
           " f.archived_at")
SET_PLACE = "hkey = ?, minx = ?, miny = ?, maxx = ?, maxy = ?"
_BOX = BOX_TEST.format(m="?")


def upgrade_place(con: sqlite3.Connection) -> None:
    """Schema 6, for a file of an older one: fill the place columns from each geometry
    and drop the R*Tree they replace, in one transaction."""
    con.execute("BEGIN IMMEDIATE")
    try:
        for table, columns in (("features", PLACE_COLUMNS), ("layers", LAYER_COLUMNS)):
            have = {r[1] for r in con.execute(f"PRAGMA table_info({table})")}
            for name, kind in columns.items():
                if name not in have:
                    con.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind} NOT NULL"
                                " DEFAULT 0")
        last = 0
        while rows := con.execute("SELECT id, geom FROM features WHERE id > ? ORDER BY id"
                                  " LIMIT 5000", (last,)).fetchall():
            places = place_rows(shapely.from_wkb([r[1] for r in rows]))
            con.executemany(f"UPDATE features SET {SET_PLACE} WHERE id = ?",  # noqa: S608
                            [(*p, r[0]) for p, r in zip(places, rows, strict=True)])
            last = rows[-1][0]
        con.execute("UPDATE layers SET span_x = (SELECT coalesce(max(maxx - minx), 0)"
                    " FROM features f WHERE f.layer_id = layers.id), span_y ="
                    " (SELECT coalesce(max(maxy - miny), 0) FROM features f"
                    " WHERE f.layer_id = layers.id)")
        con.execute("DROP TABLE IF EXISTS features_rtree")
        for statement in PLACE_INDEX.split(";")[:-1]:  # executescript would commit
            con.execute(statement)
        for (layer_id,) in con.execute("SELECT id FROM layers").fetchall():
            rebuild_sums(con, layer_id)
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def touch_layer(con: sqlite3.Connection, layer_id: int,
                places: list[tuple[int, float, float, float, float]]) -> None:
    """Record a write to the layer's features: a new revision, and the spans widened to
    hold the features just written."""
    span_x, span_y = spans(places)
    con.execute("UPDATE layers SET span_x = max(span_x, ?), span_y = max(span_y, ?),"
                " revision = revision + 1 WHERE id = ?", (span_x, span_y, layer_id))


def json_path(name: str | None) -> str | None:
    """The JSON path of a property (None reads as NULL in ``json_extract``)."""
    return None if name is None else '$."' + name.replace('"', '""') + '"'


def add_sums(con: sqlite3.Connection, layer_id: int, first: int, last: int,
             sign: int = 1) -> None:
    """Add the current features with ids first..last to a point layer's cluster sums (or,
    with ``sign`` -1, take them away), inside the caller's transaction."""
    layer = to_layer(con.execute("SELECT * FROM layers WHERE id = ?", (layer_id,)).fetchone(),
                     json.loads)
    if layer.geometry_type not in POINT_TYPES:
        return
    con.execute(_ADD_SUMS, [json_path(layer.color_by), sign, sign, sign, sign, layer_id,
                            first, last])
    if sign < 0:
        con.execute("DELETE FROM cluster_sums WHERE layer_id = ? AND n = 0", (layer_id,))


def rebuild_sums(con: sqlite3.Connection, layer_id: int) -> None:
    """The layer's cluster sums made again from its current features (after a replace)."""
    con.execute("DELETE FROM cluster_sums WHERE layer_id = ?", (layer_id,))
    add_sums(con, layer_id, 0, 2**63 - 1)


def _filters(query: FeatureQuery) -> tuple[str, list[Any]]:
    """The property filters as SQL; field names travel as JSON-path parameters."""
    clauses, params = [], []
    for name, values in sorted(query.equals.items()):
        clauses.append(f" AND json_extract(f.props, ?) IN ({', '.join('?' * len(values))})")
        params += [f"$.{name}", *values]
    for name, op, value in query.ranges:
        clauses.append(f" AND json_extract(f.props, ?) {range_operator(op)} ?")
        params += [f"$.{name}", value]
    return "".join(clauses), params


def query_page(con: sqlite3.Connection, layer: sqlite3.Row, query: FeatureQuery
               ) -> tuple[list[sqlite3.Row], int | None, tuple[int, int] | None]:
    """One page of rows, the number matched (None past ``count_cap``) and the next ``after``."""
    cap = count_cap(query.limit)
    want = query.limit + 1
    if query.bbox is None:
        where, params = _filters(query)
        after = query.after[1] if query.after else 0
        rows = con.execute(
            f"SELECT {COLUMNS} FROM features f WHERE f.layer_id = ? AND f.archived_at IS NULL"  # noqa: S608
            f" AND f.id > ?{where} ORDER BY f.id LIMIT ?",
            [layer["id"], after, *params, want]).fetchall()
        page, after_next = page_rows(rows, query.limit, by_place=False)
        if query.after is None and after_next is None:
            return page, len(page), None
        found = con.execute(
            "SELECT count(*) FROM (SELECT 1 FROM features f WHERE f.layer_id = ?"  # noqa: S608
            f" AND f.archived_at IS NULL{where} LIMIT ?)",
            [layer["id"], *params, cap + 1]).fetchone()[0]
        return page, found if found <= cap else None, after_next
    rows = list(_in_box(con, layer, query, query.after, want, COLUMNS))
    page, after_next = page_rows(rows, query.limit, by_place=True)
    if query.after is None and after_next is None:
        return page, len(page), None
    found = _count_in_box(con, layer, query, cap + 1)
    return page, found if found <= cap else None, after_next


def _count_in_box(con: sqlite3.Connection, layer: sqlite3.Row, query: FeatureQuery,
                  most: int) -> int:
    """The features in the query's box, counted up to ``most``: from the index alone for
    points, range by range; other shapes are read to test them."""
    assert query.bbox is not None
    if layer["geometry_type"] != "Point":
        return sum(1 for _ in _in_box(con, layer, query, None, most, "f.id, f.hkey, f.geom"))
    where, params = _filters(query)
    sql = ("SELECT count(*) FROM (SELECT 1 FROM features f INDEXED BY features_place"  # noqa: S608
           " WHERE f.layer_id = ? AND f.archived_at IS NULL AND f.hkey BETWEEN ? AND ?"
           f" AND {_BOX}{where} LIMIT ?)")
    found = 0
    for lo, hi in cover(query.bbox, (layer["span_x"], layer["span_y"])):
        found += con.execute(sql, [layer["id"], lo, hi, *box_args(query.bbox), *params,
                                   most - found]).fetchone()[0]
        if found >= most:
            break
    return found


def _in_box(con: sqlite3.Connection, layer: sqlite3.Row, query: FeatureQuery,
            after: tuple[int, int] | None, want: int, columns: str
            ) -> Iterator[sqlite3.Row]:
    """Up to ``want`` features in the query's box, in (key, id) order after ``after``;
    ``columns`` are those to read (``geom`` among them unless the layer holds points)."""
    assert query.bbox is not None
    where, params = _filters(query)
    shape = None if layer["geometry_type"] == "Point" else shapely.box(*query.bbox)
    key, last_id = after or (-1, -1)
    sql = (f"SELECT {columns} FROM features f INDEXED BY features_place"  # noqa: S608
           " WHERE f.layer_id = ? AND f.archived_at IS NULL AND f.hkey BETWEEN ? AND ?"
           f" AND (f.hkey > ? OR f.id > ?) AND {_BOX}{where} ORDER BY f.hkey, f.id LIMIT ?")
    for lo, hi in cover(query.bbox, (layer["span_x"], layer["span_y"])):
        if hi < key:
            continue
        start, start_id = (key, last_id) if lo <= key else (lo, -1)
        while want > 0:
            chunk = want if shape is None else max(want, 200)
            rows = con.execute(sql, [layer["id"], start, hi, start, start_id,
                                     *box_args(query.bbox), *params, chunk]).fetchall()
            kept = rows
            if shape is not None and rows:
                hits = shapely.intersects(shapely.from_wkb([r["geom"] for r in rows]), shape)
                kept = [r for r, hit in zip(rows, hits.tolist(), strict=True) if hit]
            yield from kept[:want]
            want -= min(len(kept), want)
            if len(rows) < chunk:
                break
            start, start_id = rows[-1]["hkey"], rows[-1]["id"]
        if want <= 0:
            return
