"""Layer management for planners: upload, preview, publish, versions and restore.

Every route needs the planner or admin role (checked once for the blueprint); every
form carries a CSRF token. The pages call the same ``layers.ingest`` pipeline as the
CLI and the API.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flask import (
    Blueprint,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import get_locale
from flask_babel import gettext as _
from flask_login import current_user

from layers.errors import GisError, InvalidUpload, VersionConflict
from layers.ingest.encoding import ENCODINGS, LABELS
from layers.ingest.mapping import guess_mapping, ward_warnings
from layers.ingest.pipeline import Preview, PublishSpec, ReadOptions, plan_publish, publish
from layers.ingest.validate import field_name
from layers.kinds import KINDS
from layers.messages import Message
from layers.store import Layer
from layers.store.base import FileWins
from layers.store.reimport import ReplacePlan

from .auth import require_role
from .importing import plan_json, preview_json, published_json, read_options, run_preview
from .map_builder import MapLayer
from .map_pages import render_map
from .store_access import get_store
from .uploads import discard_upload, get_upload, save_upload

bp = Blueprint("manage", __name__, url_prefix="/layers")
bp.before_request(require_role("planner", "admin"))
# The same pipeline for scripts, under /api/ so errors come back as JSON.
api_bp = Blueprint("manage_api", __name__, url_prefix="/api/layers")
api_bp.before_request(require_role("planner", "admin"))

PREVIEW_MAP_FEATURES = 2000


def option_args(options: ReadOptions) -> dict[str, str]:
    """The options as query arguments, so every link and form keeps them."""
    values = {"dataset": options.dataset, "crs": options.crs_epsg, "encoding": options.encoding,
              "csv_x": options.csv_x, "csv_y": options.csv_y}
    return {k: str(v) for k, v in values.items() if v}


def publish_spec(form: dict[str, str], preview: Preview) -> PublishSpec:
    """Read the publish form: title, slug, kind, mapping, public flags, confirmation."""
    kind = form.get("kind") or "generic"
    if kind not in KINDS:
        raise InvalidUpload(Message("kind must be one of {kinds}", kinds=list(KINDS)))
    field_map = {
        key.removeprefix("map_"): value
        for key, value in form.items()
        if key.startswith("map_") and value
    }
    target = form.get("target", "")
    key = form.get("key", preview.key_guess)  # scripts: the guess
    return PublishSpec(
        slug=target or (form.get("slug") or "").strip(),
        title=(form.get("title") or "").strip(),
        kind=kind,
        field_map=field_map,
        public=form.get("public") == "on",
        private_fields=tuple(k.removeprefix("private_") for k in form if
                             k.startswith("private_")),
        confirmed=form.get("confirm") == "on",
        replace=bool(target),
        key=key or None,
        file_wins=file_wins(form),
        expected_version=expected_version(form),
    )


def file_wins(form: dict[str, str]) -> FileWins:
    """The conflicts ticked on the confirmation page (``win_<feature id>_<field>``)."""
    pairs = set()
    for name in form:
        feature_id, sep, field = name.removeprefix("win_").partition("_")
        if name.startswith("win_") and sep and feature_id.isdigit():
            pairs.add((int(feature_id), field))
    return FileWins(frozenset(pairs))


def expected_version(form: dict[str, str]) -> int | None:
    """The layer version the confirmation page showed the changes against."""
    value = form.get("expected_version", "")
    if value and not value.isdigit():
        raise InvalidUpload(Message("The form lost the version it was made from; reload the "
                                    "page"))
    return int(value) if value else None


def render_confirm(layer: Layer, plan: ReplacePlan, *, action: str, back: str,
                   hidden: dict[str, str], key: str | None = None,
                   restoring: int | None = None) -> ResponseReturnValue:
    """The diff a replace or restore would make, with a form to apply it (and settle
    conflicts); nothing is stored until that form comes back with ``apply``."""
    lang = str(get_locale() or "vi")
    labels = {f.name: f.label(lang) for f in layer.fields} | {"geometry": _("Location")}
    kept = {k: v for k, v in hidden.items()
            if k not in ("csrf_token", "apply", "expected_version") and not k.startswith("win_")}
    return render_template("replace_confirm.html", layer=layer, plan=plan,
                           counts=plan.counts(), examples=plan.examples(), labels=labels,
                           fields={f.name: f for f in layer.fields},
                           action=action, back=back, hidden=kept, key=key, restoring=restoring)


def preview_map(preview: Preview, token: str, options: ReadOptions) -> dict[str, str]:
    """A small map of the preview over the ward boundaries."""
    store = get_store()
    layer = Layer("preview", preview.upload_name, "generic", preview.geometry.geometry_type,
                  fields=tuple(preview.fields))
    layers = [MapLayer(w, url_for("api.features", slug=w.slug)) for w in store.list_layers()
              if w.kind == "ward"]
    url = url_for(".preview_features", token=token)
    layers.append(MapLayer(layer, url, {k: [v] for k, v in option_args(options).items()},
                           detail=False))
    minx, miny, maxx, maxy = preview.bounds
    return render_map(layers, (float(minx), float(miny), float(maxx), float(maxy)),
                      page_size=PREVIEW_MAP_FEATURES)


def crs_sources() -> dict[str, str]:
    """How the CRS was settled, in words."""
    return {
        "declared": _("declared in the file"),
        "declared-corrected": _("corrected from the file's declaration"),
        "guessed": _("guessed from the coordinates"),
        "user": _("chosen by you"),
    }


@bp.get("/")
def index() -> ResponseReturnValue:
    store = get_store()
    layers = [(la, store.count_features(la.slug)) for la in store.list_layers()]
    return render_template("layers.html", layers=layers)


@bp.post("/upload")
def upload() -> ResponseReturnValue:
    pending = save_upload(request.files.get("file"), current_user.get_id())
    return redirect(url_for(".preview", token=pending.token))


def render_preview(token: str, args: dict[str, str], form: dict[str, str] | None = None,
                   error: str | None = None) -> ResponseReturnValue:
    pending = get_upload(token, current_user.get_id())
    options = read_options(args)
    try:
        preview = run_preview(pending.path, pending.original_name, options)
    except InvalidUpload:
        if not option_args(options):  # refused as it came: there is nothing left to try
            discard_upload(pending)
        raise
    preview_geojson(pending.path, options).write_text(
        preview.frame.head(PREVIEW_MAP_FEATURES).to_json(drop_id=True), encoding="utf-8")
    kind = (form or args).get("kind") or "generic"
    if kind not in KINDS:
        raise InvalidUpload(Message("kind must be one of {kinds}", kinds=list(KINDS)))
    columns = [f.name for f in preview.fields]
    mapping = guess_mapping(kind, columns)
    if form:
        mapping = {k.removeprefix("map_"): v for k, v in form.items() if k.startswith("map_")}
    preview.warnings += ward_warnings(get_store(), kind, mapping, preview.distinct)
    stem = pending.original_name.rsplit(".", 1)[0]
    store = get_store()
    page = render_template(
        "import_preview.html",
        token=token,
        preview=preview,
        options=option_args(options),
        kind=kind,
        kinds=KINDS,
        columns=columns,
        mapping=mapping,
        encodings=[(e, LABELS[e]) for e in ENCODINGS],
        encoding_labels=LABELS,
        crs_sources=crs_sources(),
        replaceable=[la for la in store.list_layers() if la.kind == kind],
        key_guess=preview.key_guess,
        default_slug=field_name(stem, set()).replace("_", "-")[:40],
        default_title=stem,
        form=form or {},
        error=error,
        parts=preview_map(preview, token, options),
    )
    return page, 400 if error else 200


@bp.get("/import/<token>")
def preview(token: str) -> ResponseReturnValue:
    return render_preview(token, request.args.to_dict())


@bp.post("/import/<token>/discard")
def discard(token: str) -> ResponseReturnValue:
    """The planner drops an upload instead of publishing it; its files go at once."""
    discard_upload(get_upload(token, current_user.get_id()))
    flash(_("The upload was discarded."), "ok")
    return redirect(url_for(".index"))


@bp.get("/import/<token>/features")
def preview_features(token: str) -> ResponseReturnValue:
    """The preview's first features as GeoJSON, for its small map.

    Written by the preview page itself, so the file is not read and converted twice.
    """
    pending = get_upload(token, current_user.get_id())
    cached = preview_geojson(pending.path, read_options(request.args))
    if not cached.is_file():
        raise InvalidUpload(Message("Open the preview page first; it prepares this map"))
    return current_app.response_class(cached.read_bytes(), mimetype="application/geo+json")


def preview_geojson(upload: Path, options: ReadOptions) -> Path:
    """Where a preview's map features are kept, one file per way of reading the upload."""
    key = hashlib.sha256(repr(sorted(option_args(options).items())).encode()).hexdigest()[:16]
    return upload.parent / f"preview-{key}.geojson"


@bp.post("/import/<token>")
def publish_upload(token: str) -> ResponseReturnValue:
    pending = get_upload(token, current_user.get_id())
    form = request.form.to_dict()
    store = get_store()
    try:
        preview = run_preview(pending.path, pending.original_name, read_options(form))
        spec = publish_spec(form, preview)
        if spec.replace and form.get("apply") != "1":
            return render_confirm(
                store.get_layer(spec.slug), plan_publish(store, preview, spec),
                action=url_for(".publish_upload", token=token), hidden=form, key=spec.key,
                back=url_for(".preview", token=token, **option_args(read_options(form))))
        layer = publish(store, preview, spec, actor=current_user.get_id())
    except VersionConflict as exc:  # replaced meanwhile: the diff shown is out of date
        return render_preview(token, form, form, exc.message)[0], 409
    except GisError as exc:
        return render_preview(token, form, form, exc.message)
    discard_upload(pending)
    flash(_("Published %(count)d features to “%(title)s”.", count=preview.feature_count,
            title=layer.title), "ok")
    return redirect(url_for(".versions", slug=layer.slug))


@bp.get("/<slug>/versions")
def versions(slug: str) -> ResponseReturnValue:
    store = get_store()
    return render_template("versions.html", layer=store.get_layer(slug),
                           versions=store.list_versions(slug))


@bp.post("/<slug>/settings")
def settings(slug: str) -> ResponseReturnValue:
    """Title, public flag and internal fields of an existing layer."""
    form = request.form.to_dict()
    get_store().update_layer(
        slug, title=form.get("title", ""), public=form.get("public") == "on",
        private_fields=[k.removeprefix("private_") for k in form if k.startswith("private_")],
        actor=current_user.get_id())
    flash(_("Layer settings saved."), "ok")
    return redirect(url_for(".versions", slug=slug))


@bp.post("/<slug>/versions/<int:version>/restore")
def restore(slug: str, version: int) -> ResponseReturnValue:
    """First the diff restoring would make; applied when its form comes back."""
    form = request.form.to_dict()
    store = get_store()
    if form.get("apply") != "1":
        return render_confirm(
            store.get_layer(slug), store.plan_restore(slug, version, file_wins=file_wins(form)),
            action=url_for(".restore", slug=slug, version=version), hidden={},
            back=url_for(".versions", slug=slug), restoring=version)
    new = store.restore_version(slug, version, file_wins=file_wins(form),
                                expected_version=expected_version(form),
                                actor=current_user.get_id())
    flash(_("Version %(old)d restored as version %(new)d.", old=version, new=new), "ok")
    return redirect(url_for(".versions", slug=slug))


@api_bp.post("/import")
def api_import() -> ResponseReturnValue:
    """The pipeline for scripts: multipart ``file`` plus the publish form's fields.

    With ``preview=1`` nothing is stored and the preview is returned as JSON. Replacing a
    layer (``target``) answers the diff it would make, and makes it with ``apply=1``.
    """
    pending = save_upload(request.files.get("file"), current_user.get_id())
    try:
        form = request.form.to_dict()
        preview = run_preview(pending.path, pending.original_name, read_options(form))
        if form.get("preview") == "1":
            return jsonify(preview_json(preview))
        spec = publish_spec(form, preview)
        if spec.replace and form.get("apply") != "1":
            return jsonify(plan_json(plan_publish(get_store(), preview, spec)))
        layer = publish(get_store(), preview, spec, actor=current_user.get_id())
    finally:
        discard_upload(pending)
    return jsonify(published_json(layer, preview)), 201
