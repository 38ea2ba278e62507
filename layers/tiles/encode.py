"""Features and point clusters drawn into a tile, as MVT bytes (mapbox-vector-tile).

The drawing is what PostGIS's ``ST_AsMVTGeom`` does, so both stores serve the same tile:
Web Mercator, then the tile's grid (y down), lines and polygons simplified by one pixel,
clipped to the tile and its buffer, snapped to whole units (a shape that collapses is
left out). Clusters are built the same way on both stores, from the per-cell sums the
store's SQL hands back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import mapbox_vector_tile
import numpy as np
import shapely
from mapbox_vector_tile.encoder import on_invalid_geometry_make_valid

from .grid import BUFFER, EXTENT, HALF_WORLD, MAX_LATITUDE, PIXEL, Tile, TileRequest

RADIUS = HALF_WORLD / math.pi  # the sphere of EPSG:3857, metres
Shape = Any  # a shapely geometry
# (cell, colour value, points, sum of x, sum of y, smallest id)
CellRow = tuple[int, Any, int, float, float, int]
# The titles of these features, by id: read only for the cells of one point.
Titles = Callable[[list[int]], dict[int, Any]]


def _to_tile(tile: Tile) -> Callable[[np.ndarray], np.ndarray]:
    """Longitude/latitude pairs to the tile's units, y down."""
    minx, _, maxx, maxy = tile.mercator_bounds()
    scale = EXTENT / (maxx - minx)

    def convert(lonlat: np.ndarray) -> np.ndarray:
        x = np.radians(lonlat[:, 0]) * RADIUS
        lat = np.radians(np.clip(lonlat[:, 1], -MAX_LATITUDE, MAX_LATITUDE))
        y = RADIUS * np.log(np.tan(np.pi / 4 + lat / 2))
        return np.column_stack(((x - minx) * scale, (maxy - y) * scale))

    return convert


def drawn(geometries: Sequence[Shape], tile: Tile, simplify: bool) -> np.ndarray:
    """The shapes (EPSG:4326) in the tile's units, simplified (lines and polygons) by
    one pixel, clipped to the tile and its buffer and snapped to whole units."""
    shapes = shapely.transform(np.asarray(geometries, dtype=object), _to_tile(tile))
    if simplify:
        shapes = shapely.simplify(shapes, PIXEL, preserve_topology=True)
    shapes = shapely.clip_by_rect(shapes, -BUFFER, -BUFFER, EXTENT + BUFFER, EXTENT + BUFFER)
    return shapely.set_precision(shapes, 1.0)


def kept_properties(request: TileRequest, props: dict[str, Any]) -> dict[str, Any]:
    """Only the properties the tile carries, and none that is null."""
    return {k: props[k] for k in request.properties if props.get(k) is not None}


def encode(name: str, features: Iterable[tuple[int | None, Shape, dict[str, Any]]]) -> bytes:
    """One MVT layer named ``name`` of (id, shape in tile units, properties); a tile with
    nothing to draw is the empty tile (no layer), as ``ST_AsMVT`` gives it."""
    kept = [{"geometry": shape, "properties": props, **({} if fid is None else {"id": fid})}
            for fid, shape, props in features if not shape.is_empty]
    if not kept:
        return b""
    return mapbox_vector_tile.encode(
        [{"name": name, "features": kept}],
        default_options={"extents": EXTENT, "y_coord_down": True,
                         "on_invalid_geometry": on_invalid_geometry_make_valid})


def features_tile(name: str, request: TileRequest, ids: Sequence[int],
                  geometries: Sequence[Shape], properties: Sequence[dict[str, Any]],
                  simplify: bool) -> bytes:
    """A tile of plain features: their ids, shapes and the request's properties."""
    shapes = drawn(geometries, request.tile, simplify) if len(ids) else []
    return encode(name, ((fid, shape, kept_properties(request, props))
                         for fid, shape, props in zip(ids, shapes, properties, strict=True)))


@dataclass
class _Cell:
    """The points of one cluster cell: how many, their summed position, counts by colour,
    and (for a cell of one point) that point's id and colour."""

    n: int = 0
    sx: float = 0.0
    sy: float = 0.0
    counts: dict[str, int] = field(default_factory=dict)
    single: tuple[int, Any] = (0, None)


def clusters_tile(name: str, request: TileRequest, rows: Iterable[CellRow],
                  titles: Titles) -> bytes:
    """A tile of clusters from per-(cell, colour value) sums: a cell of several points is
    one Point at their mean with ``cluster``, ``count`` and ``counts`` (JSON text, by
    colour value); a cell of one point is that point, with its id and properties."""
    cells: dict[int, _Cell] = {}
    for cell, value, n, sx, sy, fid in rows:
        c = cells.setdefault(cell, _Cell())
        c.n, c.sx, c.sy = c.n + n, c.sx + sx, c.sy + sy
        if request.color is not None:  # a layer without a colour field counts only
            key = "" if value is None else str(value)
            c.counts[key] = c.counts.get(key, 0) + n
        c.single = (fid, value)
    ordered = [cells[k] for k in sorted(cells)]
    if not ordered:
        return b""
    singles = [c.single[0] for c in ordered if c.n == 1]
    title_of = titles(singles) if singles and request.title else {}
    shapes = drawn(shapely.points([(c.sx / c.n, c.sy / c.n) for c in ordered]),
                   request.tile, simplify=False)
    features = []
    for c, shape in zip(ordered, shapes, strict=True):
        if c.n == 1:
            fid, value = c.single
            props = kept_properties(request, {request.title or "": title_of.get(fid),
                                              request.color or "": value})
            features.append((fid, shape, props))
        else:
            counts = json.dumps(dict(sorted(c.counts.items())), ensure_ascii=False)
            features.append((None, shape, {"cluster": True, "count": c.n, "counts": counts}))
    return encode(name, features)
