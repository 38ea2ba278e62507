"""The inspector map: wards and thematic layers, filtered on the server, behind login."""

from __future__ import annotations

from flask import Blueprint, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_login import login_required

from layers.errors import InvalidQuery
from layers.kinds import KINDS
from layers.messages import Message
from layers.query import MAX_LIMIT, filter_params, parse_query
from layers.store import Layer, Store

from .map_builder import MapLayer
from .map_pages import render_map, tile_template, ward_index, with_tiles
from .store_access import get_store

bp = Blueprint("inspector", __name__)

# Parameters of the map page that are not layer filters.
PAGE_PARAMS = ("lang",)
# Hotspot vocabularies offered as select boxes in the filter panel.
HOTSPOT_FILTERS = ("status", "category", "severity")


def split_filters(
    args: dict[str, list[str]], layers: list[Layer]
) -> tuple[dict[str, list[str]], dict[str, dict[str, list[str]]]]:
    """Check the page's filters and give each layer the ones its fields accept.

    A filter no layer understands is refused, like a bad value, with a 400.
    """
    filters = {k: v for k, v in args.items() if k not in PAGE_PARAMS and any(x.strip() for x in v)}
    per_layer: dict[str, dict[str, list[str]]] = {}
    understood: set[str] = set()
    for layer in layers:
        accepted = set(filter_params(layer.fields))
        mine = {k: v for k, v in filters.items() if k in accepted}
        parse_query(mine, layer.fields)  # raises InvalidQuery on a bad value
        per_layer[layer.slug] = mine
        understood |= set(mine)
    unknown = sorted(set(filters) - understood)
    if unknown:
        raise InvalidQuery(Message("Unknown map filter(s): {names}", names=unknown))
    return filters, per_layer


def map_bounds(store: Store, layers: list[Layer]) -> tuple[float, float, float, float]:
    """The view that shows the wards (or, without wards, all layers, or the default)."""
    preferred = [la for la in layers if la.kind == "ward"] or layers
    extents = [e for e in (store.extent(la.slug) for la in preferred) if e]
    if not extents:
        return tuple(current_app.config["CITY_BOUNDS"])  # type: ignore[return-value]
    return (
        min(e[0] for e in extents),
        min(e[1] for e in extents),
        max(e[2] for e in extents),
        max(e[3] for e in extents),
    )


def choice_options(field: str, lang: str) -> list[tuple[str, str]]:
    """(value, label) pairs of a hotspot vocabulary, for a filter's select box."""
    return [(str(c.value), c.label(lang)) for c in KINDS["hotspot"].field(field).choices]


def hotspot_page(layer: Layer) -> str | None:
    """Prefix of a hotspot's own page (its id follows), for the map's popups."""
    if layer.kind != "hotspot":
        return None
    return url_for("hotspots.detail", slug=layer.slug, feature_id=0).removesuffix("0")


@bp.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for(".map_page"))


@bp.get("/map")
@login_required
def map_page() -> ResponseReturnValue:
    store = get_store()
    layers = store.list_layers()
    filters, per_layer = split_filters(request.args.to_dict(flat=False), layers)
    ward_names, ward_bounds = ward_index(store, layers)
    chosen_ward = (filters.get("ward") or [""])[-1]
    bounds = ward_bounds.get(chosen_ward) or map_bounds(store, layers)
    lang = str(get_locale() or "vi")
    # A layer whose style says ``"show": false`` starts switched off, and fetches nothing
    # until it is switched on.
    map_layers = [
        with_tiles(store,
                   MapLayer(la, url_for("api.features", slug=la.slug), per_layer[la.slug],
                            show=bool(la.style.get("show", True)), page_url=hotspot_page(la)),
                   tile_template("tiles.internal_tile", slug=la.slug),
                   parse_query(per_layer[la.slug], la.fields))
        for la in layers
    ]
    hotspot_layers = [la for la in layers if la.kind == "hotspot"]
    add_url = url_for("hotspots.new", slug=hotspot_layers[0].slug) if hotspot_layers else None
    parts = render_map(map_layers, bounds, ward_names=ward_names, add_url=add_url,
                       page_size=min(current_app.config["MAP_PAGE_SIZE"], MAX_LIMIT))
    return render_template(
        "map.html",
        parts=parts,
        filters={k: v[-1] for k, v in filters.items()},
        wards=sorted(ward_names.items(), key=lambda kv: kv[1]),
        **{f"{name}_choices": choice_options(name, lang) for name in HOTSPOT_FILTERS},
        layer_count=len(layers),
        add_url=add_url,
    )
