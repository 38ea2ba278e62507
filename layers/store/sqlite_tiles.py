"""SQLite's vector tiles: the tile's features through the place index, drawn in Python.

A tile costs what it holds: its features are read through the cover of its box, like a
features page; clusters are summed in SQL per quadtree cell of the place key (its high
bits) over the same key ranges, so a low-zoom tile of a large layer reads its points'
index entries and values, not their geometries.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

import orjson
import shapely

from ..tiles.encode import CellRow, clusters_tile, features_tile
from ..tiles.grid import CLUSTER_MIN_POINTS, MAX_FEATURES, TileRequest
from .place import BITS, box_args, cover
from .sqlite_place import _BOX, _filters, _in_box

POINT_TYPES = ("Point", "MultiPoint")


def _path(name: str | None) -> str | None:
    """The JSON path of a property (None reads as NULL in ``json_extract``)."""
    return None if name is None else '$."' + name.replace('"', '""') + '"'


def vector_tile(con: sqlite3.Connection, layer: sqlite3.Row, request: TileRequest) -> bytes:
    """The MVT of one tile: clusters when the layer holds points, the zoom is below
    CLUSTER_MAX_ZOOM and the tile holds more than CLUSTER_MIN_POINTS of them; else its
    features, at most MAX_FEATURES."""
    query = request.box_query
    points = layer["geometry_type"] in POINT_TYPES
    if points and request.tile.clusters:
        held = sum(1 for _ in _in_box(con, layer, query, None, CLUSTER_MIN_POINTS + 1,
                                      "f.id, f.hkey"))
        if held > CLUSTER_MIN_POINTS:
            return clusters_tile(layer["slug"], request, _cells(con, layer, request),
                                 lambda ids: _titles(con, request, ids))
    rows = list(_in_box(con, layer, query, None, MAX_FEATURES, "f.id, f.hkey, f.geom, f.props"))
    return features_tile(layer["slug"], request, [r["id"] for r in rows],
                         shapely.from_wkb([r["geom"] for r in rows]),
                         [orjson.loads(r["props"]) for r in rows], simplify=not points)


def _cells(con: sqlite3.Connection, layer: sqlite3.Row, request: TileRequest
           ) -> Iterator[CellRow]:
    """Per (cluster cell, colour value): the points, their summed position and the
    smallest id, over each key range of the tile's cover."""
    query = request.box_query
    assert query.bbox is not None
    where, params = _filters(query)
    sql = ("SELECT f.hkey >> ? AS cell, json_extract(f.props, ?) AS v, count(*),"  # noqa: S608
           " sum((f.minx + f.maxx) / 2), sum((f.miny + f.maxy) / 2), min(f.id)"
           " FROM features f INDEXED BY features_place"
           " WHERE f.layer_id = ? AND f.archived_at IS NULL AND f.hkey BETWEEN ? AND ?"
           f" AND {_BOX}{where} GROUP BY cell, v")
    head = [2 * (BITS - request.tile.cluster_level), _path(request.color), layer["id"]]
    for lo, hi in cover(query.bbox, (layer["span_x"], layer["span_y"])):
        for row in con.execute(sql, [*head, lo, hi, *box_args(query.bbox), *params]):
            yield tuple(row)


def _titles(con: sqlite3.Connection, request: TileRequest, ids: list[int]) -> dict[int, Any]:
    marks = ", ".join("?" * len(ids))
    rows = con.execute(f"SELECT id, json_extract(props, ?) FROM features WHERE id IN ({marks})",  # noqa: S608
                       [_path(request.title), *ids])
    return dict(rows.fetchall())
