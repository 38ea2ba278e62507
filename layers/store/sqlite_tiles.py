"""SQLite's vector tiles: the tile's features through the place index, drawn in Python.

A tile costs what it holds: its features are read through the cover of its box, like a
features page; clusters are summed in SQL per quadtree cell of the place key (its high
bits) over the same key ranges, so a low-zoom tile of a large layer reads its points'
index entries and values, not their geometries.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import shapely

from ..tiles.encode import CellRow, clusters_tile, features_tile
from ..tiles.grid import MAX_FEATURES, TileRequest
from .base import POINT_TYPES
from .common import to_layer
from .place import BITS, SUMS_LEVEL, SUMS_SHIFT, box_args, cover, split_by_sums, sums_values
from .sqlite_place import _BOX, _count_in_box, _filters, _in_box, json_path


def vector_tile(con: sqlite3.Connection, layer: sqlite3.Row, request: TileRequest) -> bytes:
    """The MVT of one tile: clusters when the layer holds points and the tile more of
    them than ``Tile.cluster_above``; else its features, at most MAX_FEATURES."""
    query = request.box_query
    points = layer["geometry_type"] in POINT_TYPES
    most = request.tile.cluster_above
    if points and _count_in_box(con, layer, query, most + 1) > most:
        return clusters_tile(layer["slug"], request, _cells(con, layer, request),
                             lambda ids: _titles(con, request, ids))
    rows = list(_in_box(con, layer, query, None, MAX_FEATURES, "f.id, f.hkey, f.geom, f.props"))
    return features_tile(layer["slug"], request, [r["id"] for r in rows],
                         shapely.from_wkb([r["geom"] for r in rows]),
                         [orjson.loads(r["props"]) for r in rows], simplify=not points)


def _cells(con: sqlite3.Connection, layer: sqlite3.Row, request: TileRequest
           ) -> Iterator[CellRow]:
    """Per (cluster cell, colour value): the points, their summed position and the
    smallest id (of a cell's only point, its id). Cells wholly inside the tile come from
    the layer's cluster sums when its filters allow, the rest from its points."""
    query = request.box_query
    assert query.bbox is not None
    ranges = cover(query.bbox, (layer["span_x"], layer["span_y"]))
    values = sums_values(request, to_layer(layer, json.loads).color_by)
    if values is not None:
        inner, ranges = split_by_sums(query.bbox)
        sql = ("SELECT cell >> ?, value, sum(n), sum(sx), sum(sy), sum(sid) FROM cluster_sums"  # noqa: S608
               " WHERE layer_id = ? AND cell BETWEEN ? AND ?"
               + (f" AND value IN ({', '.join('?' * len(values))})" if values else "")
               + " GROUP BY 1, 2")
        shift = 2 * (SUMS_LEVEL - request.tile.cluster_level)
        for lo, hi in inner:
            for cell, value, n, sx, sy, sid in con.execute(
                    sql, [shift, layer["id"], lo >> SUMS_SHIFT, hi >> SUMS_SHIFT, *values]):
                yield cell, orjson.loads(value), n, sx, sy, sid
    where, params = _filters(query)
    sql = ("SELECT f.hkey >> ? AS cell, json_extract(f.props, ?) AS v, count(*),"  # noqa: S608
           " sum((f.minx + f.maxx) / 2), sum((f.miny + f.maxy) / 2), min(f.id)"
           " FROM features f INDEXED BY features_place"
           " WHERE f.layer_id = ? AND f.archived_at IS NULL AND f.hkey BETWEEN ? AND ?"
           f" AND {_BOX}{where} GROUP BY cell, v")
    head = [2 * (BITS - request.tile.cluster_level), json_path(request.color), layer["id"]]
    for lo, hi in ranges:
        for row in con.execute(sql, [*head, lo, hi, *box_args(query.bbox), *params]):
            yield tuple(row)


def _titles(con: sqlite3.Connection, request: TileRequest, ids: list[int]) -> dict[int, Any]:
    marks = ", ".join("?" * len(ids))
    rows = con.execute(f"SELECT id, json_extract(props, ?) FROM features WHERE id IN ({marks})",  # noqa: S608
                       [json_path(request.title), *ids])
    return dict(rows.fetchall())
