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

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import shapely

BITS = 24
_SIDE = 1 << BITS
CELLS_PER_SIDE = 8  # a cover has at most 9 × 9 cells: few ranges, little scanned outside
COUNT_CAP = 10_000  # numberMatched is counted up to this, and left out beyond it

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


def cover(bbox: Bounds, span: tuple[float, float] = (0.0, 0.0)) -> list[tuple[int, int]]:
    """Ascending, disjoint inclusive key ranges that hold every feature whose box can
    overlap ``bbox``, for a layer whose widest feature measures ``span`` (degrees)."""
    minx, miny, maxx, maxy = bbox
    half_w, half_h = span[0] / 2, span[1] / 2
    (x0, x1), (y0, y1) = _grid(np.array([minx - half_w, maxx + half_w]),
                               np.array([miny - half_h, maxy + half_h]))
    x0, x1, y0, y1 = int(x0), int(x1), int(y0), int(y1)
    cells = max(x1 - x0, y1 - y0) + 1
    # The coarsest grid on which the box spans at most CELLS_PER_SIDE cells a side.
    level = 0 if cells <= CELLS_PER_SIDE else math.ceil(math.log2(cells / CELLS_PER_SIDE))
    while max((x1 >> level) - (x0 >> level), (y1 >> level) - (y0 >> level)) >= CELLS_PER_SIDE:
        level += 1
    gx, gy = np.meshgrid(np.arange(x0 >> level, (x1 >> level) + 1),
                         np.arange(y0 >> level, (y1 >> level) + 1))
    codes = np.sort(_morton(gx.ravel(), gy.ravel())).tolist()
    ranges: list[tuple[int, int]] = []
    start = prev = codes[0]
    for code in [*codes[1:], None]:
        if code is not None and code == prev + 1:
            prev = code
            continue
        ranges.append((start << (2 * level), ((prev + 1) << (2 * level)) - 1))
        if code is not None:
            start = prev = code
    return ranges


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
