"""Public maps for the city website: planners choose the public layers, the view, the controls.

Only layers already marked public can be chosen (an internal or unknown one is refused, not
silently dropped), so an embedded map can never show internal data. Every route needs the
planner or admin role and every form a CSRF token, like the other layer pages.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from markupsafe import escape
from werkzeug.datastructures import MultiDict
from werkzeug.routing import BuildError

from layers.errors import GisError, InvalidFeature, InvalidQuery, LayerExists, LayerNotFound
from layers.query import parse_bbox
from layers.store.base import PublicMap, check_slug
from layers.text import nfc

from .auth import require_role
from .i18n import tr
from .store_access import get_store

bp = Blueprint("public_maps", __name__, url_prefix="/layers/public-maps")
bp.before_request(require_role("planner", "admin"))

CONTROLS = ("fullscreen", "locate", "legend", "report")
BOUND_NAMES = ("min_lon", "min_lat", "max_lon", "max_lat")
TITLE_MAX = 200


def control_labels() -> dict[str, str]:
    """Labels per request, so they follow the chosen language."""
    return {"fullscreen": _("Full screen"), "locate": _("Show my location"),
            "legend": _("Legend"), "report": _("Button for citizens to report pollution")}


def bound_labels() -> dict[str, str]:
    return {"min_lon": _("West (min. longitude)"), "min_lat": _("South (min. latitude)"),
            "max_lon": _("East (max. longitude)"), "max_lat": _("North (max. latitude)")}


def embed_url(slug: str) -> str:
    """The address the city website frames.

    Falls back to the path the ``public`` blueprint serves, so this page works (and its
    tests run) whether or not that blueprint is registered.
    """
    try:
        return url_for("public.embed", slug=slug, _external=True)
    except BuildError:
        return request.host_url + "embed/" + slug


def iframe_snippet(public_map: PublicMap) -> str:
    """The HTML to paste; attribute values are escaped, so any title is safe in it."""
    return (f'<iframe src="{escape(embed_url(public_map.slug))}" '
            f'title="{escape(public_map.title)}" width="100%" height="480" '
            'style="border:0" loading="lazy" allowfullscreen></iframe>')


def outside_sites(ancestors: str) -> list[str]:
    """The sites other than this one that ``GIS_EMBED_FRAME_ANCESTORS`` lets frame a public
    map; with none, a snippet pasted on the city website would be refused by browsers."""
    return [source for source in ancestors.split() if source not in ("'self'", "'none'")]


def new_slug(text: str) -> str:
    """A valid short name no other public map uses (edits keep theirs)."""
    slug = text.strip()
    try:
        check_slug(slug)
    except InvalidFeature:
        raise InvalidFeature(_("The short name must be 1–63 lowercase letters, digits, '-' or "
                               "'_', starting with a letter or digit.")) from None
    try:
        get_store().get_public_map(slug)
    except LayerNotFound:
        return slug
    raise LayerExists(_("A public map named “%(slug)s” already exists; choose another short "
                        "name or edit that map.", slug=slug))


def chosen_layers(chosen: list[str]) -> tuple[str, ...]:
    public = {la.slug for la in get_store().list_layers(public_only=True)}
    wanted = tuple(dict.fromkeys(s.strip() for s in chosen if s.strip()))
    refused = [s for s in wanted if s not in public]
    if refused:
        raise InvalidFeature(_("Only public layers can be shown on a public map; not public or "
                               "unknown: %(slugs)s", slugs=", ".join(refused)))
    if not wanted:
        raise InvalidFeature(_("Choose at least one layer."))
    return wanted


def read_bounds(form: MultiDict[str, str]) -> tuple[float, float, float, float] | None:
    """None fits the layers; otherwise four numbers checked like the API's bbox.

    A decimal comma (106,85 — how Vietnamese write numbers) is read as a point.
    """
    view = form.get("view", "fit")
    if view == "fit":
        return None
    if view != "bounds":
        raise InvalidQuery(_("Choose how the map first opens."))
    values = [form.get(name, "").strip().replace(",", ".") for name in BOUND_NAMES]
    if not all(values):
        raise InvalidQuery(_("Enter all four numbers of the initial view, or choose to fit "
                             "the layers."))
    try:
        return parse_bbox(",".join(values))
    except InvalidQuery as exc:
        raise InvalidQuery(_("The initial view is not valid: %(reason)s",
                             reason=tr(exc.message))) from None


def read_form(form: MultiDict[str, str], slug: str) -> PublicMap:
    title = nfc(form.get("title", ""))
    if not title:
        raise InvalidFeature(_("Enter a title for the map."))
    if len(title) > TITLE_MAX:
        raise InvalidFeature(_("The title is longer than %(max)d characters.", max=TITLE_MAX))
    controls = form.getlist("controls")
    unknown = [c for c in controls if c not in CONTROLS]
    if unknown:
        raise InvalidFeature(_("Unknown control: %(names)s", names=", ".join(unknown)))
    return PublicMap(slug, title, chosen_layers(form.getlist("layers")), read_bounds(form),
                     tuple(c for c in CONTROLS if c in controls))


def form_values(form: MultiDict[str, str], slug: str) -> dict[str, Any]:
    """What was typed, to show it again with the error."""
    return {"slug": slug, "title": form.get("title", ""), "layers": form.getlist("layers"),
            "controls": form.getlist("controls"), "view": form.get("view", "fit"),
            **{name: form.get(name, "") for name in BOUND_NAMES}}


def map_values(public_map: PublicMap | None) -> dict[str, Any]:
    """A stored map's values for the form; a new map starts with every control."""
    if public_map is None:
        return {"slug": "", "title": "", "layers": [], "controls": list(CONTROLS),
                "view": "fit", **dict.fromkeys(BOUND_NAMES, "")}
    bounds = [str(v) for v in public_map.bounds] if public_map.bounds else [""] * 4
    return {"slug": public_map.slug, "title": public_map.title,
            "layers": list(public_map.layers), "controls": list(public_map.controls),
            "view": "bounds" if public_map.bounds else "fit",
            **dict(zip(BOUND_NAMES, bounds, strict=True))}


def render_form(values: dict[str, Any], existing: PublicMap | None = None, error: str = "",
                status: int = 200) -> ResponseReturnValue:
    layers = get_store().list_layers(public_only=True)
    public = {la.slug for la in layers}
    return render_template(
        "public_map_form.html", values=values, existing=existing, layers=layers,
        stale=[s for s in existing.layers if s not in public] if existing else [],
        controls=control_labels(), bounds=bound_labels(),
        placeholders=dict(zip(BOUND_NAMES, current_app.config["CITY_BOUNDS"], strict=True)),
        snippet=iframe_snippet(existing) if existing else "",
        embed_url=embed_url(existing.slug) if existing else "", error=error,
        frame_sites=outside_sites(current_app.config["EMBED_FRAME_ANCESTORS"]),
    ), status


def submit(existing: PublicMap | None) -> ResponseReturnValue:
    """Validate and save, or show the form again with the reason (nothing is stored)."""
    form = request.form
    try:
        slug = existing.slug if existing else new_slug(form.get("slug", ""))
        public_map = read_form(form, slug)
    except GisError as exc:
        status = 409 if isinstance(exc, LayerExists) else 400
        slug = existing.slug if existing else form.get("slug", "")
        return render_form(form_values(form, slug), existing, exc.message, status)
    get_store().save_public_map(public_map, actor=current_user.get_id())
    flash(_("Public map “%(title)s” saved.", title=public_map.title), "ok")
    return redirect(url_for(".edit", slug=public_map.slug))


@bp.get("/")
def index() -> ResponseReturnValue:
    store = get_store()
    titles = {la.slug: la.title for la in store.list_layers()}
    maps = [(m, embed_url(m.slug)) for m in store.list_public_maps()]
    return render_template("public_maps.html", maps=maps, titles=titles)


@bp.route("/new", methods=["GET", "POST"])
def new() -> ResponseReturnValue:
    if request.method == "POST":
        return submit(None)
    return render_form(map_values(None))


@bp.route("/<slug>/edit", methods=["GET", "POST"])
def edit(slug: str) -> ResponseReturnValue:
    existing = get_store().get_public_map(slug)  # LayerNotFound → 404
    if request.method == "POST":
        return submit(existing)
    return render_form(map_values(existing), existing)
