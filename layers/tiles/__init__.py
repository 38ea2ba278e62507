"""Vector tiles of a layer (Mapbox Vector Tile, WebMercatorQuad z/x/y), for both stores.

``grid`` holds the tile math, the limits of a tile and what a request for one asks;
``encode`` turns features and point clusters into MVT bytes (the SQLite store's encoder,
and the clusters' on both stores; PostGIS encodes its plain features with ``ST_AsMVT``).
Nothing here knows Flask: the web face is ``gis_service/tiles.py``.
"""

from .grid import (
    CLUSTER_MAX_ZOOM,
    CLUSTER_MIN_POINTS,
    MAX_FEATURES,
    MAX_ZOOM,
    WEBMERCATOR_QUAD,
    Tile,
    TileRequest,
    tile_filters,
)

__all__ = ["CLUSTER_MAX_ZOOM", "CLUSTER_MIN_POINTS", "MAX_FEATURES", "MAX_ZOOM",
           "WEBMERCATOR_QUAD", "Tile", "TileRequest", "tile_filters"]
