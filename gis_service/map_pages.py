"""What every map page shares: the Folium shell with the app's settings, UI strings, wards.

The inspector map, the import preview, the public maps and the report form all render
through ``render_map``, so tiles, language and the CSP nonce are handled in one place.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import orjson
from flask import current_app, url_for
from flask_babel import get_locale
from flask_babel import gettext as _

from layers.query import DEFAULT_LIMIT, MAX_LIMIT, FeatureQuery, parse_query
from layers.store import Layer, Store
from layers.store.place import count_cap

from .answer_cache import AnswerCache, layer_key
from .map_builder import MapLayer, MapSettings, build_map, render_parts
from .security import csp_nonce


def map_messages() -> dict[str, str]:
    """UI strings the map script shows, in the current language."""
    return {
        "basemap": _("Basemap"),
        "fullscreen": _("Full screen"),
        "exit_fullscreen": _("Exit full screen"),
        "locate": _("Show my location"),
        "legend": _("Legend"),
        "loading": _("Loading…"),
        "load_error": _("Could not load layer"),
        "yes": _("Yes"),
        "no": _("No"),
        "shown": _("shown"),
        "details": _("Details and history"),
        "add_here": _("Add a hotspot here"),
        "copy_link": _("Copy a link to this view"),
        "link_copied": _("Link copied"),
        "features": _("features"),
    }


def tile_template(endpoint: str, **args: str) -> str:
    """The URL template ({z}/{x}/{y}) of a tile route, for Leaflet."""
    url = url_for(endpoint, **args, z=0, x=0, y=0)
    return url.removesuffix("0/0/0.mvt") + "{z}/{x}/{y}.mvt"


def cached_count(store: Store, layer: Layer, query: FeatureQuery | None) -> int | None:
    """The layer's feature count (``query`` None) or what ``query`` matches (None past the
    store's cap). Counting costs about 0.1 s a million features, so the worker's answer
    cache keeps it until a write to the layer's features bumps its revision."""
    cache: AnswerCache = current_app.extensions["gis_answer_cache"]
    key = ("map-count", *layer_key(layer), repr(query))
    kept = cache.get(key)
    if kept is not None:
        return orjson.loads(kept)
    count = (store.count_features(layer.slug) if query is None
             else store.query_features(layer.slug, query).matched)
    cache.put(key, orjson.dumps(count))
    return count


def with_tiles(store: Store, ml: MapLayer, tiles: str, shown: FeatureQuery) -> MapLayer:
    """``ml`` drawn from the vector tiles at ``tiles`` when its layer holds more than
    TILE_THRESHOLD features (GeoJSON pages of a large layer would load it whole), with the
    count of what ``shown`` (the map's filters) matches, which the tiles' clusters cannot
    give. Past the store's counting cap the count says "more than"."""
    total = cached_count(store, ml.layer, None) or 0
    if total <= current_app.config["TILE_THRESHOLD"]:
        return ml
    if not shown.equals and not shown.ranges:
        return replace(ml, tiles=tiles, count=total)
    counting = replace(shown, limit=DEFAULT_LIMIT, properties=())
    matched = cached_count(store, ml.layer, counting)
    if matched is None:
        return replace(ml, tiles=tiles, count=count_cap(counting.limit), count_more=True)
    return replace(ml, tiles=tiles, count=matched)


def ward_index(store: Store, layers: list[Layer]) -> tuple[dict[str, str], dict[str, tuple]]:
    """Names and bounds of every ward, by code, from all ward-kind layers."""
    names: dict[str, str] = {}
    bounds: dict[str, tuple] = {}
    for layer in layers:
        if layer.kind != "ward":
            continue
        page = store.query_features(layer.slug, parse_query({"limit": ["10000"]}, ()))
        for f in page.features:
            code = str(f.properties.get("code", ""))
            names[code] = f.properties.get("name", code)
            bounds[code] = f.geometry.bounds
    return names, bounds


def render_map(layers: list[MapLayer], bounds: tuple[float, float, float, float],
               **options: Any) -> dict[str, Any]:
    """Folium's header, body and script for a page, with the app's tiles and language,
    and the config for the page's data island."""
    settings = MapSettings(
        bounds=bounds,
        lang=str(get_locale() or "vi"),
        tile_url=current_app.config["TILE_URL"],
        tile_attribution=current_app.config["TILE_ATTRIBUTION"],
        messages=map_messages(),
        ward_names=options.pop("ward_names", {}),
        page_size=options.pop("page_size", MAX_LIMIT),
        **options,
    )
    return render_parts(*build_map(layers, settings), csp_nonce())
