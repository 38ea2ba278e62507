"""The public side: read-only maps for the city website, their data, citizen reports.

No login. Only layers marked public, only their public fields, and for hotspots only
those an inspector has verified ("so that the people know and supervise", plan II.5).
Data answers carry an ETag and Cache-Control so a reverse proxy can cache them.
"""

from __future__ import annotations

import datetime as dt
import secrets
from dataclasses import replace

import orjson
from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from shapely.geometry import Point

from layers.errors import FeatureNotFound, InvalidFeature, InvalidUpload, LayerNotFound
from layers.kinds import KINDS, NOT_ASSESSED, FieldDef
from layers.photos import sanitise_photo
from layers.query import FeatureQuery, parse_query
from layers.store import Feature, Layer, PublicMap
from layers.text import checked_text
from layers.wards import check_near_city, place_wards
from layers.workflow import public_timeline

from .answer_cache import GEOJSON, PUBLIC_CACHE, args_key, cached_answer, layer_key
from .map_builder import MapLayer
from .map_pages import render_map, tile_template, ward_index, with_tiles
from .paging import next_links, page_counts
from .ratelimit import Limit, client_key, limiter, too_many
from .store_access import get_store

bp = Blueprint("public", __name__)

# Hotspots the public sees: verified ones, whatever happened to them after.
PUBLIC_STATUSES = ("verified", "in_progress", "resolved")
DEFAULT_MAP = "default"  # the public map shown at /public
REPORT_LIMITS = (("report", Limit(5, 10 * 60)), ("report-day", Limit(20, 24 * 3600)))
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read over the phone
CITIZEN_SOURCE = KINDS["hotspot"].field("source").choice("citizen")
REPORT_MAX, CONTACT_MAX = 2000, 300  # characters of a report's description and contact


def public_fields(layer: Layer) -> tuple[FieldDef, ...]:
    """The fields the public sees; a hotspot's status offers only the statuses it can see,
    so the public legend lists no "reported" or "dismissed"."""
    return tuple(
        replace(f, choices=tuple(c for c in f.choices if c.value in PUBLIC_STATUSES))
        if layer.kind == "hotspot" and f.name == "status" else f
        for f in layer.fields if f.public)


def public_map(slug: str) -> PublicMap:
    """A configured public map; ``default`` falls back to every public layer."""
    store = get_store()
    try:
        return store.get_public_map(slug)
    except LayerNotFound:
        if slug != DEFAULT_MAP:
            raise
    layers = tuple(la.slug for la in store.list_layers(public_only=True))
    return PublicMap(DEFAULT_MAP, _("Environmental map of Đồng Xoài"), layers)


def public_layer(map_slug: str, layer_slug: str) -> Layer:
    """A layer shown on that public map, and public; anything else is "not found"."""
    if layer_slug not in public_map(map_slug).layers:
        abort(404)
    layer = get_store().get_layer(layer_slug)
    if not layer.public:
        abort(404)
    return layer


def public_names(layer: Layer) -> tuple[str, ...]:
    """The properties the public sees of a layer's features: its public fields."""
    return tuple(f.name for f in public_fields(layer))


def visible(layer: Layer, feature: Feature) -> bool:
    return layer.kind != "hotspot" or feature.properties.get("status") in PUBLIC_STATUSES


@bp.get("/public/api/<map_slug>/layers/<layer_slug>/features")
def features(map_slug: str, layer_slug: str) -> ResponseReturnValue:
    layer = public_layer(map_slug, layer_slug)
    args = request.args.to_dict(flat=False)
    # ``offset`` is passed on to be refused by name: ignored, a client paging by offset
    # would get its first page again and again.
    paging = {k: v for k, v in args.items() if k in ("bbox", "limit", "after", "offset")}
    query = parse_query(paging, public_fields(layer))
    if layer.kind == "hotspot":
        query = FeatureQuery(query.bbox, query.limit, query.after, {"status": PUBLIC_STATUSES})

    names = public_names(layer)

    def page() -> bytes:
        found = get_store().query_features(layer_slug, query)
        return orjson.dumps({
            "type": "FeatureCollection",
            "features": [f.to_geojson(names) for f in found.features],
            **page_counts(found),
            "links": next_links(found, lambda **a: url_for(".features", map_slug=map_slug,
                                                           layer_slug=layer_slug, **a), paging),
        })

    # The public fields are in the key: a field made internal leaves the answers at once.
    key = ("public-features", *layer_key(layer), names, map_slug, args_key(paging))
    return cached_answer(key, GEOJSON, PUBLIC_CACHE, page)


@bp.get("/public/api/<map_slug>/layers/<layer_slug>/features/<int:feature_id>")
def feature(map_slug: str, layer_slug: str, feature_id: int) -> ResponseReturnValue:
    layer = public_layer(map_slug, layer_slug)
    found = get_store().get_feature(layer_slug, feature_id)
    if not visible(layer, found):
        abort(404)
    names = public_names(layer)
    key = ("public-feature", *layer_key(layer), names, feature_id)
    return cached_answer(key, GEOJSON, PUBLIC_CACHE, lambda: orjson.dumps(found.to_geojson(names)))


def shown_layers(config: PublicMap) -> list[Layer]:
    """The map's layers that are public now (a layer may have been made internal since)."""
    public = {la.slug: la for la in get_store().list_layers(public_only=True)}
    return [public[s] for s in config.layers if s in public]


def shown_query(layer: Layer) -> FeatureQuery:
    """What the public sees of a layer: verified hotspots, every feature of the others."""
    if layer.kind == "hotspot":
        return FeatureQuery(equals={"status": PUBLIC_STATUSES})
    return FeatureQuery()


def map_layers(config: PublicMap, layers: list[Layer]) -> list[MapLayer]:
    """Layers as the public map draws them: public fields only, from the public API (or
    its tiles, for a large layer)."""
    return [
        with_tiles(get_store(),
                   MapLayer(replace(la, public=True, fields=public_fields(la)),
                            url_for(".features", map_slug=config.slug, layer_slug=la.slug)),
                   tile_template("public_tiles.public_tile", map_slug=config.slug, slug=la.slug),
                   shown_query(la))
        for la in layers
    ]


def render_public(config: PublicMap) -> ResponseReturnValue:
    store = get_store()
    layers = shown_layers(config)
    extents = [e for e in (store.extent(la.slug) for la in layers) if e]
    bounds = config.bounds or (
        (min(e[0] for e in extents), min(e[1] for e in extents),
         max(e[2] for e in extents), max(e[3] for e in extents)) if extents
        else tuple(current_app.config["CITY_BOUNDS"]))
    parts = render_map(map_layers(config, layers), bounds, ward_names=ward_names(),
                       controls=config.controls)
    illustrative = any("(minh hoạ)" in la.title for la in layers)
    return render_template("public.html", parts=parts, config=config,
                           illustrative=illustrative, can_report=report_layer() is not None
                           and "report" in config.controls)


def ward_names() -> dict[str, str]:
    """Ward names for popups, from public ward layers only: an internal layer's are private."""
    store = get_store()
    return ward_index(store, store.list_layers(public_only=True))[0]


@bp.get("/public")
def index() -> ResponseReturnValue:
    return render_public(public_map(DEFAULT_MAP))


@bp.get("/embed/<slug>")
def embed(slug: str) -> ResponseReturnValue:
    return render_public(public_map(slug))


# -- citizen reports -------------------------------------------------------------------
def report_layer() -> Layer | None:
    """The hotspot layer reports go to: REPORT_LAYER, or the first hotspot layer."""
    store = get_store()
    wanted = current_app.config.get("REPORT_LAYER")
    for layer in store.list_layers():
        if layer.kind == "hotspot" and (not wanted or layer.slug == wanted):
            return layer
    return None


def render_report(form: dict[str, str], status: int = 200, error: str = ""
                  ) -> ResponseReturnValue:
    # The public ward boundaries, for orientation while picking the place.
    default = public_map(DEFAULT_MAP)
    wards = map_layers(default, [la for la in shown_layers(default) if la.kind == "ward"])
    parts = render_map(wards, tuple(current_app.config["CITY_BOUNDS"]), controls=("locate",),
                       pick_location=True)
    return render_template("report.html", parts=parts, form=form, error=error,
                           categories=KINDS["hotspot"].field("category").choices), status


@bp.route("/public/report", methods=["GET", "POST"])
def report() -> ResponseReturnValue:
    layer = report_layer()
    if layer is None:
        abort(404)
    if request.method == "GET":
        return render_report({})
    form = request.form.to_dict()
    if form.get("website"):  # the honeypot: people never see this field, bots fill it
        return render_template("report_done.html", code=None)
    rl = limiter()
    for scope, limit in REPORT_LIMITS:
        key = client_key(scope)
        if not rl.hit(key, limit):
            return too_many(rl.retry_after(key, limit))
    try:
        point = Point(float(form.get("lon", "")), float(form.get("lat", "")))
    except ValueError:
        return render_report(form, 400, _("Choose the place on the map (or use your location)."))
    category = form.get("category", "")
    choice = KINDS["hotspot"].field("category").choice(category)
    if choice is None:
        return render_report(form, 400, _("Choose what kind of problem it is."))
    photo = None
    upload = request.files.get("photo")
    try:
        check_near_city(point, tuple(current_app.config["CITY_BOUNDS"]))
        description = checked_text(form.get("description", ""), "description", REPORT_MAX)
        if not description:
            return render_report(form, 400, _("Describe what you saw."))
        contact = checked_text(form.get("contact", ""), "contact", CONTACT_MAX)
        if upload and upload.filename:
            p = sanitise_photo(upload.read())
            photo = (p.mime, p.width, p.height, p.data)
        code = "PA-" + "".join(secrets.choice(CODE_ALPHABET) for _ in range(8))
        # Stored data is Vietnamese whatever language the citizen's page was in.
        props = {"name": f"{choice.vi} ({CITIZEN_SOURCE.vi.lower()})", "category": category,
                 "description": description, "severity": NOT_ASSESSED,
                 "status": "reported", "reported_at": dt.date.today().isoformat(),
                 "source": CITIZEN_SOURCE.value}
        [(point, props)] = place_wards(get_store(), layer.kind, [(point, props)])
        get_store().create_report(layer.slug, point, props, code=code, contact=contact,
                                  photo=photo)
    except (InvalidFeature, InvalidUpload) as exc:
        return render_report(form, 400, exc.message)
    return redirect(url_for(".report_status", code=code))


@bp.get("/public/report/<code>")
def report_status(code: str) -> ResponseReturnValue:
    store = get_store()
    try:
        slug, feature_id = store.find_report(code.strip().upper())
        found = store.get_feature(slug, feature_id)
    except (FeatureNotFound, LayerNotFound):
        abort(404)
    hotspot = KINDS["hotspot"]
    return render_template("report_done.html", code=code.upper(), feature=found,
                           steps=public_timeline(store, slug, feature_id),
                           status_field=hotspot.field("status"),
                           status=hotspot.field("status").choice(found.properties["status"]),
                           category=hotspot.field("category").choice(
                               found.properties["category"]))
