"""PostGIS's vector tiles: ``ST_AsMVT`` over ``ST_AsMVTGeom`` for the tile's features.

The features are found as a features page finds them (the cover's key ranges, the exact
box test, ``ST_Intersects`` for shapes), simplified by one pixel in Web Mercator and
encoded by PostGIS in the same statement. Clusters are summed per quadtree cell of the
place key in SQL and drawn by the shared encoder, so both stores serve the same clusters.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import psycopg

from ..tiles.encode import CellRow, clusters_tile
from ..tiles.grid import BUFFER, EXTENT, MAX_FEATURES, PIXEL, TileRequest
from .base import POINT_TYPES
from .common import parsed_already, to_layer
from .place import BITS, SUMS_LEVEL, SUMS_SHIFT, box_args, cover, split_by_sums, sums_values
from .postgis_place import _BOX, _filters

Row = dict[str, Any]


def _matches(layer: Row, request: TileRequest, columns: str, limit: int,
             column_args: tuple[Any, ...] = ()) -> tuple[str, list[Any]]:
    """SQL (and its parameters) of up to ``limit`` of the tile's features, in key order:
    ``columns`` (with their parameters ``column_args``) of each, range by range."""
    query = request.box_query
    assert query.bbox is not None
    where, params = _filters(query)
    if layer["geometry_type"] not in POINT_TYPES:
        where += " AND ST_Intersects(f.geom, ST_MakeEnvelope(%s, %s, %s, %s, 4326))"
        params += list(query.bbox)
    ranges = cover(query.bbox, (layer["span_x"], layer["span_y"]))
    sql = ("SELECT x.* FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) CROSS JOIN LATERAL"  # noqa: S608
           f" (SELECT {columns} FROM features f WHERE f.layer_id = %s AND f.archived_at IS NULL"
           f" AND f.hkey BETWEEN r.lo AND r.hi AND {_BOX}{where} ORDER BY f.hkey, f.id"
           " LIMIT %s) x LIMIT %s")
    return sql, [[lo for lo, _ in ranges], [hi for _, hi in ranges], *column_args, layer["id"],
                 *box_args(query.bbox), *params, limit, limit]


def vector_tile(conn: psycopg.Connection[Row], layer: Row, request: TileRequest) -> bytes:
    """The MVT of one tile, as SQLite's ``vector_tile`` draws it: clusters for more points
    than ``Tile.cluster_above``, else at most MAX_FEATURES features."""
    points = layer["geometry_type"] in POINT_TYPES
    if points:
        most = request.tile.cluster_above
        sql, args = _matches(layer, request, "1", most + 1)
        held = conn.execute(f"SELECT count(*) AS n FROM ({sql}) s", args).fetchone()["n"]  # noqa: S608
        if held > most:
            return clusters_tile(layer["slug"], request, _cells(conn, layer, request),
                                 lambda ids: _titles(conn, request, ids))
    names = request.properties
    props = ("jsonb_strip_nulls(jsonb_build_object("
             + ", ".join("%s::text, f.props -> %s::text" for _ in names) + ")) AS props")
    sql, args = _matches(layer, request, f"f.id, f.geom, {props}", MAX_FEATURES,
                         tuple(n for name in names for n in (name, name)))
    tile = request.tile
    shape = "ST_Transform(m.geom, 3857)"
    if not points:
        shape = f"ST_SimplifyPreserveTopology({shape}, %s)"
    merc = tile.mercator_bounds()
    row = conn.execute(
        "SELECT ST_AsMVT(t, %s, %s, 'geom', 'id') AS mvt FROM (SELECT m.id, m.props,"  # noqa: S608
        f" ST_AsMVTGeom({shape}, ST_TileEnvelope(%s, %s, %s), %s, %s, true) AS geom"
        f" FROM ({sql}) m) t WHERE t.geom IS NOT NULL",
        [layer["slug"], EXTENT, *([] if points else [(merc[2] - merc[0]) * PIXEL / EXTENT]),
         tile.z, tile.x, tile.y, EXTENT, BUFFER, *args]).fetchone()
    return bytes(row["mvt"] or b"")


def _cells(conn: psycopg.Connection[Row], layer: Row, request: TileRequest
           ) -> Iterator[CellRow]:
    """Per (cluster cell, colour value): the points, their summed position, the smallest
    id and a title, over the tile's cover."""
    query = request.box_query
    assert query.bbox is not None
    ranges = cover(query.bbox, (layer["span_x"], layer["span_y"]))
    values = sums_values(request, to_layer(layer, parsed_already).color_by)
    if values is not None:  # cells wholly inside the tile: from the layer's cluster sums
        inner, ranges = split_by_sums(query.bbox)
        sums = conn.execute(
            "SELECT s.cell >> %s AS cell, s.value, sum(s.n)::bigint AS n, sum(s.sx) AS sx,"
            " sum(s.sy) AS sy, sum(s.sid)::bigint AS id"
            " FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi) JOIN cluster_sums s"
            " ON s.layer_id = %s AND s.cell BETWEEN r.lo AND r.hi"
            " WHERE cardinality(%s::text[]) = 0 OR s.value = ANY(%s::text[]) GROUP BY 1, 2",
            [2 * (SUMS_LEVEL - request.tile.cluster_level),
             [lo >> SUMS_SHIFT for lo, _ in inner], [hi >> SUMS_SHIFT for _, hi in inner],
             layer["id"], values, values]).fetchall()
        for r in sums:
            yield r["cell"], orjson.loads(r["value"]), r["n"], r["sx"], r["sy"], r["id"]
    where, params = _filters(query)
    # OFFSET 0 keeps the lateral subquery whole: one index range scan per key range.
    # Flattened into a join, it was planned as a scan of the whole table.
    rows = conn.execute(
        "SELECT p.hkey >> %s AS cell, p.v, count(*) AS n, sum(p.x) AS sx, sum(p.y) AS sy,"  # noqa: S608
        " min(p.id) AS id FROM unnest(%s::bigint[], %s::bigint[]) AS r(lo, hi)"
        " CROSS JOIN LATERAL (SELECT f.hkey, f.id, (f.minx + f.maxx) / 2 AS x,"
        " (f.miny + f.maxy) / 2 AS y, f.props -> %s::text AS v FROM features f"
        " WHERE f.layer_id = %s AND f.archived_at IS NULL AND f.hkey BETWEEN r.lo AND r.hi"
        f" AND {_BOX}{where} OFFSET 0) p GROUP BY 1, 2",
        [2 * (BITS - request.tile.cluster_level), [lo for lo, _ in ranges],
         [hi for _, hi in ranges], request.color, layer["id"], *box_args(query.bbox),
         *params]).fetchall()
    for r in rows:
        yield r["cell"], r["v"], r["n"], r["sx"], r["sy"], r["id"]


def _titles(conn: psycopg.Connection[Row], request: TileRequest, ids: list[int]
            ) -> dict[int, Any]:
    rows = conn.execute("SELECT id, props -> %s::text AS t FROM features WHERE id = ANY(%s)",
                        [request.title, ids]).fetchall()
    return {r["id"]: r["t"] for r in rows}
