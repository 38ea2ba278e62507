"""WebMercatorQuad tile math, the limits of one tile, and what a request for a tile asks.

A tile z/x/y covers 1/2^z of the Web Mercator world each way, x to the east and y to the
south from the north-west corner (the OGC WebMercatorQuad and XYZ convention). Its
features are found through the place index by the tile's box in degrees, then drawn in
the tile's own 4096 × 4096 grid.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from ..errors import InvalidQuery
from ..kinds import FieldDef
from ..messages import Message
from ..query import FeatureQuery, parse_query

WEBMERCATOR_QUAD = "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad"
MAX_ZOOM = 22
EXTENT = 4096  # units across a tile
BUFFER = 64  # units drawn past each edge, so lines and outlines meet across tiles
PIXEL = EXTENT / 256  # one pixel of a 256-pixel tile: the simplification tolerance
# Below this zoom a tile holding more than CLUSTER_MIN_POINTS points shows clusters.
CLUSTER_MAX_ZOOM = 15
CLUSTER_MIN_POINTS = 300
# A cluster cell is a quarter of a tile wide (64 pixels): 2 levels below the tile.
CLUSTER_LEVELS = 2
MAX_FEATURES = 5000  # a tile never holds more
HALF_WORLD = 20037508.342789244  # metres from the Web Mercator origin to the world's edge
MAX_LATITUDE = 85.0511287798066  # where the square Web Mercator world ends

Bounds = tuple[float, float, float, float]
# Parameters of the features API that make no sense for a tile, which has its own box.
PAGING_PARAMS = ("bbox", "limit", "after", "properties")


@dataclass(frozen=True)
class Tile:
    """One tile of the WebMercatorQuad matrix; ``checked`` refuses one outside it."""

    z: int
    x: int
    y: int

    @classmethod
    def checked(cls, z: int, x: int, y: int) -> Tile:
        if not 0 <= z <= MAX_ZOOM:
            raise InvalidQuery(Message("The zoom level must be between 0 and {max}; got {z}",
                                       max=MAX_ZOOM, z=z))
        last = (1 << z) - 1
        for name, value in (("x", x), ("y", y)):
            if not 0 <= value <= last:
                raise InvalidQuery(Message(
                    "Tile {name} must be between 0 and {last} at zoom {z}; got {value}",
                    name=name, last=last, z=z, value=value))
        return cls(z, x, y)

    def mercator_bounds(self) -> Bounds:
        """(minx, miny, maxx, maxy) in EPSG:3857 metres, as ``ST_TileEnvelope`` gives."""
        size = 2 * HALF_WORLD / (1 << self.z)
        minx = -HALF_WORLD + self.x * size
        maxy = HALF_WORLD - self.y * size
        return minx, maxy - size, minx + size, maxy

    def bounds(self) -> Bounds:
        """(minLon, minLat, maxLon, maxLat) of the tile in degrees."""
        n = 1 << self.z

        def lat(row: int) -> float:
            return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

        return self.x / n * 360 - 180, lat(self.y + 1), (self.x + 1) / n * 360 - 180, lat(self.y)

    @property
    def cluster_above(self) -> int:
        """How many points the tile may hold before they are clustered: a few hundred
        below CLUSTER_MAX_ZOOM, MAX_FEATURES above (a tile never holds more)."""
        return CLUSTER_MIN_POINTS if self.z < CLUSTER_MAX_ZOOM else MAX_FEATURES

    @property
    def cluster_level(self) -> int:
        """The quadtree level of its cluster cells, about 64 pixels wide: a place key's
        cell at that level is its top 2 × level bits (``place.BITS`` in all)."""
        return self.z + CLUSTER_LEVELS


@dataclass(frozen=True)
class TileRequest:
    """What a tile shows: the layer's features in ``tile`` matching ``query`` (its box
    is the tile's), with only the ``title`` and ``color`` properties (None: left out);
    clusters count their points by ``color``."""

    tile: Tile
    query: FeatureQuery
    title: str | None = None
    color: str | None = None

    @property
    def properties(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(n for n in (self.title, self.color) if n))

    @property
    def box_query(self) -> FeatureQuery:
        """The filters over the tile's box, capped at MAX_FEATURES."""
        return replace(self.query, bbox=self.tile.bounds(), limit=MAX_FEATURES, after=None,
                       properties=None)

    def key(self) -> tuple[object, ...]:
        """Everything the tile's content depends on, besides the layer's data."""
        query = self.query
        return (self.tile.z, self.tile.x, self.tile.y, self.title, self.color,
                tuple(sorted(query.equals.items())), tuple(sorted(query.ranges)))


def tile_filters(args: Mapping[str, list[str]], fields: Iterable[FieldDef], *,
                 ignore: Iterable[str] = ()) -> FeatureQuery:
    """A tile's filters from its query string, as the features API reads them; paging
    parameters are refused, since a tile has its own box and its own feature cap."""
    for name in PAGING_PARAMS:
        if any(v.strip() for v in args.get(name, ())):
            raise InvalidQuery(Message(
                "{name} is not accepted on tiles: a tile has its own box and size; use the"
                " features API for it", name=name))
    return parse_query(args, fields, ignore=ignore)

