"""Where a feature lies, as both stores index it: a Z-order cell key and a float64 box.

SQLite's R*Tree keeps float32 boxes (so a box query answered up to 1.7 m outside) and
hands back its matches in no useful order, so a page of a large match cost the whole
match: count it, then sort it by id. A B-tree on (layer, key, id) instead returns a box's
features in key order. A page reads about what it returns, keyset paging resumes after
the last (key, id), and the float64 box columns make the bounding-box test exact.

The key interleaves the bits of the feature's box centre on a 2^24 × 2^24 grid over the
world (cells of 2.4 m by 1.2 m at the equator). A box is covered by the key ranges of a
few dozen grid cells; a feature wider than a point is found through its centre, so the box
is widened by half the widest feature of the layer (the layer's ``span``).
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

from ..tiles.grid import TileRequest
from .common import json_text

BITS = 24
_SIDE = 1 << BITS
EDGE_SPLITS = 5  # a cover's edge cells are 2^-5 of the box: about 100 ranges at most
COUNT_CAP = 10_000  # numberMatched is never counted past this


def count_cap(limit: int) -> int:
    """How far a query with this page size counts its matches (``numberMatched`` is left
    out beyond): ten pages' worth, so counting costs what a few pages cost."""
    return min(COUNT_CAP, 10 * limit)

Bounds = tuple[float, float, float, float]
Row = Any  # a database row that reads by column name


def _spread(v: np.ndarray) -> np.ndarray:
    """Put bit i of each 24-bit value at bit 2i."""
    v = v.astype(np.uint64)
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                        (1, 0x5555555555555555)):
        v = (v | (v << np.uint64(shift))) & np.uint64(mask)
    return v


def _spread_int(v: int) -> int:
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                        (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def _code(cx: int, cy: int) -> int:
    """The Z-order code of one cell (``_morton`` for a single cell, without numpy)."""
    return _spread_int(cx) | (_spread_int(cy) << 1)


def _grid(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Grid column and row of each position (degrees), clamped to the world."""
    gx = np.floor((np.asarray(x, dtype=float) + 180.0) / 360.0 * _SIDE)
    gy = np.floor((np.asarray(y, dtype=float) + 90.0) / 180.0 * _SIDE)
    return (np.clip(gx, 0, _SIDE - 1).astype(np.int64),
            np.clip(gy, 0, _SIDE - 1).astype(np.int64))


def _morton(gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    return (_spread(gx) | (_spread(gy) << np.uint64(1))).astype(np.int64)


def place_rows(geometries: Sequence[object] | np.ndarray) -> list[tuple[int, float, float,
                                                                         float, float]]:
    """(key, minx, miny, maxx, maxy) of each geometry, in the given order."""
    bounds = shapely.bounds(np.asarray(geometries, dtype=object))
    keys = _morton(*_grid((bounds[:, 0] + bounds[:, 2]) / 2, (bounds[:, 1] + bounds[:, 3]) / 2))
    return [(k, *b) for k, b in zip(keys.tolist(), bounds.tolist(), strict=True)]


def spans(rows: Sequence[tuple[int, float, float, float, float]]) -> tuple[float, float]:
    """The widest and the tallest of these boxes (0 for points)."""
    if not rows:
        return 0.0, 0.0
    box = np.asarray([r[1:] for r in rows], dtype=float)
    return float((box[:, 2] - box[:, 0]).max()), float((box[:, 3] - box[:, 1]).max())


@functools.lru_cache(maxsize=512)  # a map asks for the same boxes again and again
def cover(bbox: Bounds, span: tuple[float, float] = (0.0, 0.0)) -> tuple[tuple[int, int], ...]:
    """Ascending, disjoint inclusive key ranges that hold every feature whose box can
    overlap ``bbox``, for a layer whose widest feature measures ``span`` (degrees).

    A quadtree walk: cells inside the box are taken whole (and merge into long ranges),
    cells on its edge are split until they are about 1/32 of the box, so what a query
    reads outside the box stays a small share of what it reads inside.
    """
    minx, miny, maxx, maxy = bbox
    half_w, half_h = span[0] / 2, span[1] / 2
    (x0, x1), (y0, y1) = _grid(np.array([minx - half_w, maxx + half_w]),
                               np.array([miny - half_h, maxy + half_h]))
    x0, x1, y0, y1 = int(x0), int(x1), int(y0), int(y1)
    top = min(BITS, math.ceil(math.log2(max(x1 - x0, y1 - y0) + 1)))
    return _walk(x0, x1, y0, y1, top, max(0, top - EDGE_SPLITS), edges=True)


def _walk(x0: int, x1: int, y0: int, y1: int, top: int, finest: int, edges: bool
          ) -> tuple[tuple[int, int], ...]:
    """The key ranges of the grid rectangle [x0, x1] × [y0, y1] (inclusive, finest grid
    units), walked down from cells of level ``top``: cells inside it whole, and cells on
    its edge split down to level ``finest``, then kept if ``edges`` (else left out)."""
    ranges: list[tuple[int, int]] = []

    def visit(cx: int, cy: int, level: int) -> None:
        left, right = cx << level, ((cx + 1) << level) - 1
        bottom, top_ = cy << level, ((cy + 1) << level) - 1
        if right < x0 or left > x1 or top_ < y0 or bottom > y1:
            return
        whole = x0 <= left and right <= x1 and y0 <= bottom and top_ <= y1
        if whole or level <= finest:
            if not (whole or edges):
                return
            code = _code(cx, cy)
            lo, hi = code << (2 * level), ((code + 1) << (2 * level)) - 1
            if ranges and ranges[-1][1] + 1 == lo:
                ranges[-1] = (ranges[-1][0], hi)
            else:
                ranges.append((lo, hi))
            return
        for dy in (0, 1):  # children in Z order: x varies fastest
            for dx in (0, 1):
                visit(2 * cx + dx, 2 * cy + dy, level - 1)

    starts = [(cx, cy) for cy in range(y0 >> top, (y1 >> top) + 1)
              for cx in range(x0 >> top, (x1 >> top) + 1)]
    for cx, cy in sorted(starts, key=lambda c: _code(*c)):
        visit(cx, cy, top)
    return tuple(ranges)


# Cluster sums are kept per cell of this level (about 610 m by 305 m): a tile up to zoom
# 14 draws its clusters from them instead of from its points.
SUMS_LEVEL = 16
SUMS_SHIFT = 2 * (BITS - SUMS_LEVEL)  # a key's cell at SUMS_LEVEL is key >> SUMS_SHIFT


@functools.lru_cache(maxsize=512)
def split_by_sums(bbox: Bounds) -> tuple[tuple[tuple[int, int], ...], tuple[tuple[int, int], ...]]:
    """The key ranges of the SUMS_LEVEL cells that lie wholly inside ``bbox`` (their sums
    can be taken as they are), and the ranges of the rest of the box's cover (whose points
    are read and tested one by one). Together they hold each key of the cover once."""
    minx, miny, maxx, maxy = bbox
    side = 1 << SUMS_LEVEL
    # Whole cells: from the first cell boundary at or after the box's minimum to the last
    # at or before its maximum, in cells of SUMS_LEVEL.
    cx0 = math.ceil((minx + 180.0) / 360.0 * side)
    cx1 = math.floor((maxx + 180.0) / 360.0 * side) - 1
    cy0 = math.ceil((miny + 90.0) / 180.0 * side)
    cy1 = math.floor((maxy + 90.0) / 180.0 * side) - 1
    inner: tuple[tuple[int, int], ...] = ()
    if cx0 <= cx1 and cy0 <= cy1:
        unit = BITS - SUMS_LEVEL
        x0, x1 = cx0 << unit, ((cx1 + 1) << unit) - 1
        y0, y1 = cy0 << unit, ((cy1 + 1) << unit) - 1
        top = min(BITS, math.ceil(math.log2(max(x1 - x0, y1 - y0) + 1)))
        inner = _walk(x0, x1, y0, y1, top, unit, edges=False)
    return inner, _without(cover(bbox), inner)


def sums_values(request: TileRequest, color_by: str | None) -> list[str] | None:
    """Whether a tile's clusters may come from the layer's cluster sums, kept per colour
    value: None if not (the tile is too deep, or filtered by something else); else the
    colour values (as JSON text) it keeps, an empty list for all of them."""
    query = request.query
    if request.tile.cluster_level > SUMS_LEVEL or query.ranges:
        return None
    if request.color not in (None, color_by) or set(query.equals) - {color_by}:
        return None
    return [json_text(v) for v in query.equals.get(color_by or "", ())]


def _without(ranges: Sequence[tuple[int, int]], holes: Sequence[tuple[int, int]]
             ) -> tuple[tuple[int, int], ...]:
    """``ranges`` less ``holes`` (both ascending, disjoint, inclusive)."""
    out: list[tuple[int, int]] = []
    pending = list(holes)
    for lo, hi in ranges:
        start = lo
        for h_lo, h_hi in pending:
            if h_hi < start or h_lo > hi:
                continue
            if h_lo > start:
                out.append((start, h_lo - 1))
            start = h_hi + 1
            if start > hi:
                break
        if start <= hi:
            out.append((start, hi))
    return tuple(out)


def first_revision() -> int:
    """A new layer's first revision: the clock in microseconds, so a layer deleted and
    made again under its slug never repeats a revision an old tile is cached under."""
    return time.time_ns() // 1000


def page_rows(rows: list[Row], limit: int, by_place: bool
              ) -> tuple[list[Row], tuple[int, int] | None]:
    """A page of at most ``limit`` of ``rows`` (fetched one past it) and the ``after`` of
    the next page, if the extra row shows there is one."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], (last["hkey"] if by_place else 0, last["id"])


def box_args(query_bbox: Bounds) -> list[float]:
    """The bound values of the SQL box test ``maxx >= ? AND minx <= ? AND maxy >= ? AND
    miny <= ?``: a feature whose box touches the query box matches."""
    minx, miny, maxx, maxy = query_bbox
    return [minx, maxx, miny, maxy]


BOX_TEST = "f.maxx >= {m} AND f.minx <= {m} AND f.maxy >= {m} AND f.miny <= {m}"
