"""Vector tiles over HTTP (OGC API - Tiles shape, WebMercatorQuad): internal and public.

``/tiles/<slug>/<z>/<x>/<y>.mvt`` needs a login, like ``/api``, and takes the features
API's filters; ``/public/tiles/<map>/<slug>/…`` serves a public map's public layers with
their public fields only, hotspots only once verified (the public API's rules), and takes
no parameters. Each tile carries an ETag made from the layer's revision (which every
write to its features bumps), its data version and the request, so a client revalidates
with a 304 and a write is never served stale; tiles are kept in the per-worker answer
cache under that same key (``answer_cache``).
"""

from __future__ import annotations

from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from layers.errors import InvalidQuery
from layers.kinds import FieldDef, get_kind
from layers.query import FeatureQuery
from layers.store import Layer
from layers.tiles import (
    CLUSTER_MAX_ZOOM,
    MAX_ZOOM,
    WEBMERCATOR_QUAD,
    Tile,
    TileRequest,
    tile_filters,
)

from .answer_cache import PRIVATE_CACHE, PUBLIC_CACHE, cached_answer, layer_key
from .api import COMMON_PARAMS
from .auth import login_manager
from .public import PUBLIC_STATUSES, public_fields, public_layer
from .store_access import get_store

bp = Blueprint("tiles", __name__)
public_bp = Blueprint("public_tiles", __name__)

MVT_TYPE = "application/vnd.mapbox-vector-tile"
TILE_TEMPLATE = "/{tileMatrix}/{tileCol}/{tileRow}.mvt"


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def shown_properties(layer: Layer, fields: tuple[FieldDef, ...]) -> tuple[str | None, str | None]:
    """The title and colour fields a tile carries: the kind's title field and the layer's
    colour field, each only when it is among ``fields`` (for the public, the public ones)."""
    kind = get_kind(layer.kind)
    names = {f.name for f in fields}
    color = layer.color_by
    return (kind.title_field if kind.title_field in names else None,
            color if color in names else None)


def serve_tile(layer: Layer, wanted: TileRequest, cache_control: str) -> ResponseReturnValue:
    """The tile with its ETag, from the cache when this revision of it is there.

    The layer was read before the tile is made, so a tile is never older than the
    revision it is filed under (at worst newer, which the next revision replaces).
    """
    return cached_answer(("tile", *layer_key(layer), *wanted.key()), MVT_TYPE, cache_control,
                         lambda: get_store().vector_tile(layer.slug, wanted))


def tileset(layer: Layer, fields: tuple[FieldDef, ...], base: str) -> ResponseReturnValue:
    """The tileset's description: its matrix set, zooms and the templated tile link."""
    return jsonify({
        "id": layer.slug,
        "title": layer.title,
        "dataType": "vector",
        "crs": "http://www.opengis.net/def/crs/EPSG/0/3857",
        "tileMatrixSetURI": WEBMERCATOR_QUAD,
        "minzoom": 0,
        "maxzoom": MAX_ZOOM,
        "clusterMaxZoom": CLUSTER_MAX_ZOOM,
        "bounds": get_store().extent(layer.slug),
        "layers": [{"id": layer.slug, "geometryType": layer.geometry_type,
                    "properties": [n for n in shown_properties(layer, fields) if n]}],
        "links": [
            {"rel": "self", "type": "application/json", "href": base},
            {"rel": "item", "type": MVT_TYPE, "templated": True, "href": base + TILE_TEMPLATE},
        ],
    })


@bp.get("/tiles/<slug>")
def internal_tileset(slug: str) -> ResponseReturnValue:
    layer = get_store().get_layer(slug)
    return tileset(layer, layer.fields, url_for(".internal_tileset", slug=slug))


@bp.get("/tiles/<slug>/<int:z>/<int:x>/<int:y>.mvt")
def internal_tile(slug: str, z: int, x: int, y: int) -> ResponseReturnValue:
    layer = get_store().get_layer(slug)
    tile = Tile.checked(z, x, y)
    query = tile_filters(request.args.to_dict(flat=False), layer.fields, ignore=COMMON_PARAMS)
    title, color = shown_properties(layer, layer.fields)
    return serve_tile(layer, TileRequest(tile, query, title, color), PRIVATE_CACHE)


@public_bp.get("/public/tiles/<map_slug>/<slug>")
def public_tileset(map_slug: str, slug: str) -> ResponseReturnValue:
    layer = public_layer(map_slug, slug)
    return tileset(layer, public_fields(layer),
                   url_for(".public_tileset", map_slug=map_slug, slug=slug))


@public_bp.get("/public/tiles/<map_slug>/<slug>/<int:z>/<int:x>/<int:y>.mvt")
def public_tile(map_slug: str, slug: str, z: int, x: int, y: int) -> ResponseReturnValue:
    layer = public_layer(map_slug, slug)
    tile = Tile.checked(z, x, y)
    if any(name not in COMMON_PARAMS for name in request.args):
        raise InvalidQuery(_("Public tiles take no parameters."))
    # The public API's rules: public fields only, and only hotspots someone verified.
    query = FeatureQuery(equals={"status": PUBLIC_STATUSES}) if layer.kind == "hotspot" \
        else FeatureQuery()
    title, color = shown_properties(layer, public_fields(layer))
    return serve_tile(layer, TileRequest(tile, query, title, color), PUBLIC_CACHE)
