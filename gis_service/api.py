"""JSON API: layers, their features as GeoJSON with bbox/paging/filters, one feature.

Every route here needs a logged-in user: the data is internal until the public map
(a later version) serves only public layers and fields.
"""

from __future__ import annotations

import orjson
from flask import Blueprint, jsonify, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_login import current_user

from layers.query import parse_query

from .answer_cache import GEOJSON, PRIVATE_CACHE, args_key, cached_answer, layer_key
from .auth import login_manager
from .paging import next_links, page_counts
from .store_access import get_store

bp = Blueprint("api", __name__)

# Parameters the API accepts on every route besides the layer's own filters.
COMMON_PARAMS = ("lang",)


@bp.before_request
def require_login() -> ResponseReturnValue | None:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    return None


def _lang() -> str:
    return str(get_locale() or "vi")


@bp.get("/layers")
def list_layers() -> ResponseReturnValue:
    store = get_store()
    return jsonify(
        layers=[
            {**layer.to_dict(_lang()), "features_url": url_for(".features", slug=layer.slug)}
            for layer in store.list_layers()
        ]
    )


@bp.get("/layers/<slug>")
def layer(slug: str) -> ResponseReturnValue:
    store = get_store()
    found = store.get_layer(slug)
    return jsonify(
        {
            **found.to_dict(_lang()),
            "count": store.count_features(slug),
            "extent": store.extent(slug),
            "features_url": url_for(".features", slug=slug),
        }
    )


@bp.get("/layers/<slug>/features")
def features(slug: str) -> ResponseReturnValue:
    """A page of features as a GeoJSON FeatureCollection, with a ``next`` link if more."""
    store = get_store()
    found = store.get_layer(slug)
    args = request.args.to_dict(flat=False)
    query = parse_query(args, found.fields, ignore=COMMON_PARAMS)

    def page() -> bytes:
        found_page = store.query_features(slug, query)
        # orjson: feature pages are the API's bulk; it serialises them several times faster.
        return orjson.dumps({
            "type": "FeatureCollection",
            "features": [f.to_geojson(query.properties) for f in found_page.features],
            **page_counts(found_page),
            "links": next_links(found_page, lambda **a: url_for(".features", slug=slug, **a),
                                args),
        })

    key = ("features", *layer_key(found), args_key(args))
    return cached_answer(key, GEOJSON, PRIVATE_CACHE, page)


@bp.get("/layers/<slug>/features/<int:feature_id>")
def feature(slug: str, feature_id: int) -> ResponseReturnValue:
    return jsonify(get_store().get_feature(slug, feature_id).to_geojson())
