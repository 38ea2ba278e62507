"""Hotspot pages for inspectors: detail with timeline, status moves, inspections, edits.

Every logged-in role may follow hotspots (checked once for the blueprint); every form
carries a CSRF token and the version it was made from, so a stale edit gets a 409 that
shows what changed instead of overwriting it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry

from layers.errors import InvalidFeature, InvalidUpload, VersionConflict
from layers.kinds import KINDS
from layers.messages import Message
from layers.photos import sanitise_photo
from layers.store import Feature, Layer
from layers.wards import check_near_city, place_wards
from layers.workflow import move_status, next_statuses, timeline

from .auth import require_role
from .map_builder import MapLayer
from .map_pages import render_map, ward_index
from .store_access import get_store

bp = Blueprint("hotspots", __name__, url_prefix="/hotspots")
bp.before_request(require_role("inspector", "planner", "admin"))

HOTSPOT = KINDS["hotspot"]
# Fields an edit form offers; status and resolved_at move only through the workflow.
EDITABLE = [f for f in HOTSPOT.fields if f.name not in ("status", "resolved_at")]


def hotspot_layer(slug: str) -> Layer:
    layer = get_store().get_layer(slug)
    if layer.kind != "hotspot":
        raise InvalidFeature(Message("Layer {slug!r} holds no hotspots", slug=slug))
    return layer


def _version(form: dict[str, str]) -> int:
    try:
        return int(form.get("version", ""))
    except ValueError:
        raise InvalidFeature(
            Message("The form lost the version it was made from; reload the page")) from None


def _point(form: dict[str, str]) -> Point:
    try:
        lon, lat = float(form.get("lon", "")), float(form.get("lat", ""))
    except ValueError:
        raise InvalidFeature(
            Message("Longitude and latitude must be numbers in degrees")) from None
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidFeature(Message("Longitude and latitude must be in degrees (WGS84)"))
    return Point(lon, lat)


def _placed(form: dict[str, str], before: BaseGeometry | None = None) -> Point:
    """The form's point; a new or moved place must lie near the city (0, 0 is a mistake),
    while one left where it was (an import may hold far ones) is kept as it is."""
    point = _point(form)
    if before is None or not point.equals(before):
        check_near_city(point, tuple(current_app.config["CITY_BOUNDS"]))
    return point


def _props(form: dict[str, str], base: dict[str, Any]) -> dict[str, Any]:
    """The edit form's fields over the feature's other properties (status stays as it is)."""
    props = {k: v for k, v in base.items() if k not in {f.name for f in EDITABLE}}
    props.update({f.name: form.get(f.name, "") for f in EDITABLE})
    return props


def render_detail(slug: str, feature: Feature, status: int = 200, error: str = "",
                  form: dict[str, str] | None = None) -> ResponseReturnValue:
    store = get_store()
    return render_template(
        "hotspot.html", layer=hotspot_layer(slug), feature=feature, kind=HOTSPOT,
        moves=next_statuses(str(feature.properties.get("status"))),
        timeline=timeline(store, slug, feature.id), ward_names=ward_names(),
        report=store.report_contact(slug, feature.id),
        error=error, form=form or {}, today=dt.date.today().isoformat(),
    ), status


def ward_names() -> dict[str, str]:
    store = get_store()
    return ward_index(store, store.list_layers())[0]


@bp.get("/<slug>/<int:feature_id>")
def detail(slug: str, feature_id: int) -> ResponseReturnValue:
    hotspot_layer(slug)
    # An archived hotspot (left out by a re-import) keeps its page and history.
    return render_detail(slug, get_store().get_feature(slug, feature_id, archived=True))


@bp.post("/<slug>/<int:feature_id>/status")
def status(slug: str, feature_id: int) -> ResponseReturnValue:
    form = request.form.to_dict()
    store = get_store()
    try:
        move_status(store, slug, feature_id, form.get("to", ""), note=form.get("note", ""),
                    actor=current_user.get_id(), expected_version=_version(form))
    except VersionConflict as exc:
        return render_detail(slug, store.get_feature(slug, feature_id), 409, exc.message, form)
    except InvalidFeature as exc:
        return render_detail(slug, store.get_feature(slug, feature_id), 400, exc.message, form)
    flash(_("Status changed."), "ok")
    return redirect(url_for(".detail", slug=slug, feature_id=feature_id))


@bp.post("/<slug>/<int:feature_id>/inspections")
def inspect(slug: str, feature_id: int) -> ResponseReturnValue:
    hotspot_layer(slug)
    form = request.form.to_dict()
    store = get_store()
    try:
        photos = tuple(
            (p.mime, p.width, p.height, p.data)
            for p in (sanitise_photo(f.read()) for f in request.files.getlist("photos")
                      if f and f.filename)
        )
        store.add_inspection(slug, feature_id, inspected_on=form.get("inspected_on", ""),
                             inspector=current_user.get_id(), finding=form.get("finding", ""),
                             photos=photos, actor=current_user.get_id())
    except (InvalidFeature, InvalidUpload) as exc:
        return render_detail(slug, store.get_feature(slug, feature_id), 400, exc.message, form)
    flash(_("Inspection recorded."), "ok")
    return redirect(url_for(".detail", slug=slug, feature_id=feature_id))


@bp.route("/<slug>/<int:feature_id>/edit", methods=["GET", "POST"])
def edit(slug: str, feature_id: int) -> ResponseReturnValue:
    hotspot_layer(slug)
    store = get_store()
    feature = store.get_feature(slug, feature_id)
    if request.method == "GET":
        return render_form(slug, feature=feature)
    form = request.form.to_dict()
    try:
        [(point, props)] = place_wards(store, HOTSPOT.name, [
            (_placed(form, feature.geometry), _props(form, feature.properties))])
        store.update_feature(slug, feature_id, expected_version=_version(form),
                             geometry=point, properties=props,
                             actor=current_user.get_id(), note=form.get("note", "").strip())
    except VersionConflict:
        return render_form(slug, feature=store.get_feature(slug, feature_id), form=form,
                           status=409, conflict=True)
    except InvalidFeature as exc:
        return render_form(slug, feature=feature, form=form, status=400, error=exc.message)
    flash(_("Changes saved."), "ok")
    return redirect(url_for(".detail", slug=slug, feature_id=feature_id))


@bp.route("/<slug>/new", methods=["GET", "POST"])
def new(slug: str) -> ResponseReturnValue:
    hotspot_layer(slug)
    if request.method == "GET":
        return render_form(slug, form=request.args.to_dict())
    form = request.form.to_dict()
    props = _props(form, {"status": "reported"})
    props["reported_at"] = props.get("reported_at") or dt.date.today().isoformat()
    store = get_store()
    try:
        [feature_id] = store.add_features(slug, place_wards(store, HOTSPOT.name,
                                                            [(_placed(form), props)]),
                                          actor=current_user.get_id())
    except InvalidFeature as exc:
        return render_form(slug, form=form, status=400, error=exc.message)
    flash(_("Hotspot added."), "ok")
    return redirect(url_for(".detail", slug=slug, feature_id=feature_id))


def render_form(slug: str, *, feature: Feature | None = None,
                form: dict[str, str] | None = None, status: int = 200, error: str = "",
                conflict: bool = False) -> ResponseReturnValue:
    """The add/edit form; after a conflict it shows the current values beside the user's."""
    values: dict[str, Any] = dict(feature.properties) if feature else {}
    if feature:
        values.update(lon=feature.geometry.x, lat=feature.geometry.y)
    yours = form or {}
    if not conflict:
        values.update(yours)
    changed = [f for f in EDITABLE if conflict and str(yours.get(f.name, "")) != str(
        (feature.properties if feature else {}).get(f.name, ""))]
    store = get_store()
    wards = [MapLayer(w, url_for("api.features", slug=w.slug)) for w in store.list_layers()
             if w.kind == "ward"]
    parts = render_map(wards, tuple(current_app.config["CITY_BOUNDS"]), controls=("locate",),
                       pick_location=True)
    return render_template(
        "hotspot_form.html", layer=hotspot_layer(slug), feature=feature, fields=EDITABLE,
        values=values, yours=yours, conflict=conflict, changed=changed, error=error,
        wards=sorted(ward_names().items(), key=lambda kv: kv[1]), parts=parts,
    ), status


@bp.get("/photos/<int:photo_id>")
def photo(photo_id: int) -> ResponseReturnValue:
    stored = get_store().get_photo(photo_id)
    return stored.data, 200, {"Content-Type": stored.mime,
                              "Cache-Control": "private, max-age=3600",
                              "Content-Disposition": f"inline; filename=photo-{stored.id}"}
