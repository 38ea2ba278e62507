"""``gis-service layers …``: import files, list layers, list and restore versions."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import click
from flask.cli import AppGroup
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from layers.errors import GisError
from layers.ingest.mapping import guess_mapping
from layers.ingest.pipeline import Preview, PublishSpec, plan_publish, publish
from layers.ingest.validate import field_name
from layers.kinds import KINDS
from layers.store.base import FileWins

from .i18n import tr
from .importing import plan_json, preview_json, read_options, run_preview
from .store_access import get_store

layers_group = AppGroup("layers", help="Manage layers: import files, versions.")
CLI_ACTOR = "cli"  # the audit log's name for changes made from the command line
NOT_APPLIED = _l("Nothing was changed: rerun with --yes to apply.")


def _summary(data: dict) -> str:
    """The preview as the upload page shows it, in the command line's language."""
    crs = data["crs"]
    lines = [
        _("Dataset: %(name)s (%(format)s), %(count)d features, %(type)s", name=data["dataset"],
          format=data["format"], count=data["feature_count"], type=data["geometry_type"]),
        _("CRS: EPSG:%(epsg)s (%(source)s, confidence %(confidence)d%%)", epsg=crs["epsg"],
          source=crs["source"], confidence=round(crs["confidence"] * 100)),
    ]
    lines += [_("  candidate EPSG:%(epsg)s %(name)s (%(confidence)d%%): %(reason)s",
                epsg=c["epsg"], name=c["name"], confidence=round(c["confidence"] * 100),
                reason=c["reason"]) for c in crs["candidates"]]
    if data["encoding"]:
        enc = data["encoding"]
        lines.append(_("Encoding: %(used)s (%(source)s); detector: %(found)s (%(confidence)d%%): "
                       "%(evidence)s", used=enc["used"], source=enc["source"],
                       found=enc["encoding"], confidence=round(enc["confidence"] * 100),
                       evidence=enc["evidence"]))
    lines.append(_("Fields: %(fields)s", fields=", ".join(
        f"{f['name']} ({f['type']})" for f in data["fields"])))
    lines += [_("Warning: %(text)s", text=w) for w in data["warnings"]]
    if len(data["datasets"]) > 1:  # a zip's members, a GeoPackage's layers: --dataset NAME
        lines += [_("Datasets (--dataset NAME):"), *(f"  {name}" for name in data["datasets"])]
    return "\n".join(lines)


def _key(key: str | None, preview: Preview) -> str | None:
    """The key column as the planner named it (any case), 'none', or the guess."""
    if key is None:
        return preview.key_guess
    return None if key.strip().lower() == "none" else field_name(key.strip(), set())


def _file_wins(fields: tuple[str, ...]) -> FileWins:
    return FileWins(fields=frozenset("*" if f == "all" else f for f in fields))


def diff_text(data: dict[str, Any]) -> str:
    """What a replace or restore will change, as the confirmation page shows it."""
    counts = data["counts"]
    lines = [_("Changes to %(layer)r (version %(version)d, rows matched by %(by)s): %(added)d "
               "added, %(changed)d changed, %(unchanged)d unchanged, %(archived)d archived, "
               "%(conflicts)d conflicts with staff changes", layer=data["layer"],
               version=data["data_version"], by=data["matched_by"], **counts)]
    for kind, rows in data["examples"].items():
        lines += [f"  {kind}: key={e['key'] or '-'} id={e['feature_id'] or '-'} {e['name']}"
                  + (f" ({', '.join(e['fields'])})" if e["fields"] else "") for e in rows]
    lines += [_("  conflict: key=%(key)s id=%(id)s %(field)s: staff %(staff)r, file %(file)r "
                "-> keeps %(winner)s", key=c["key"] or "-", id=c["feature_id"],
                field=c["field"], staff=c["staff"], file=c["file"],
                winner=_("the file's") if c["file_wins"] else _("staff's"))
              for c in data["conflicts"]]
    return "\n".join(lines)


@layers_group.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--kind", type=click.Choice(list(KINDS)), default="generic", show_default=True)
@click.option("--title", help="Layer title (default: the file name).")
@click.option("--slug", help="Short name of the new layer (default: from the file name).")
@click.option("--crs", "crs", help="EPSG code of the file's coordinates, e.g. 9212.")
@click.option("--encoding", help="Text encoding: utf-8, cp1258, tcvn3 or vni.")
@click.option("--dataset", help="Which dataset of the upload (zip member, GeoPackage layer).")
@click.option("--map", "mappings", multiple=True, metavar="FIELD=COLUMN",
              help="Map a column onto a kind's field (repeatable); obvious ones are guessed.")
@click.option("--private", multiple=True, metavar="FIELD", help="Keep a field internal.")
@click.option("--public", is_flag=True, help="Show the layer on the public map.")
@click.option("--replace", "replace_slug", metavar="SLUG",
              help="Make this file a new version of an existing layer.")
@click.option("--key", help="Column whose values say which feature a row is, so a later "
              "--replace updates that feature; 'none' for no key (default: guessed, e.g. MA).")
@click.option("--file-wins", "file_wins", multiple=True, metavar="FIELD",
              help="With --replace: take the file's value of FIELD ('all' for every field) "
                   "where staff changed it since the last import (default: staff's stays).")
@click.option("--yes", is_flag=True,
              help="Confirm a guessed or corrected CRS, and apply the changes --replace shows.")
@click.option("--preview", "preview_only", is_flag=True, help="Only show what would be imported.")
def import_command(file: Path, kind: str, title: str | None, slug: str | None, crs: str | None,
                   encoding: str | None, dataset: str | None, mappings: tuple[str, ...],
                   private: tuple[str, ...], public: bool, replace_slug: str | None,
                   key: str | None, file_wins: tuple[str, ...], yes: bool,
                   preview_only: bool) -> None:
    """Import FILE (zipped shapefile, GeoPackage, GeoJSON, KML/KMZ, CSV) as a layer."""
    try:
        options = read_options({"crs": crs or "", "encoding": encoding or "",
                                "dataset": dataset or ""})
        preview = run_preview(file, file.name, options)
        click.echo(_summary(preview_json(preview)))
        if preview_only:
            return
        if preview.needs_confirmation and not yes:
            raise click.ClickException(_(
                "The coordinate system EPSG:%(epsg)s was guessed or corrected. Check it, then "
                "rerun with --yes, or give the right one with --crs EPSG.",
                epsg=preview.crs.epsg))
        field_map = guess_mapping(kind, [f.name for f in preview.fields])
        for item in mappings:
            target, sep, source = item.partition("=")
            if not sep:
                raise click.BadParameter(_("%(item)r is not FIELD=COLUMN", item=item),
                                         param_hint="--map")
            field_map[target.strip()] = field_name(source.strip(), set())
        spec = PublishSpec(
            slug=replace_slug or slug or field_name(file.stem, set()).replace("_", "-")[:40],
            title=title or file.stem,
            kind=kind,
            field_map=field_map,
            public=public,
            private_fields=private,
            confirmed=yes,
            replace=bool(replace_slug),
            key=_key(key, preview),
            file_wins=_file_wins(file_wins),
        )
        if replace_slug:
            plan = plan_publish(get_store(), preview, spec)
            click.echo(diff_text(plan_json(plan)))
            if not yes:
                raise click.ClickException(str(NOT_APPLIED))
            spec = replace(spec, expected_version=plan.data_version)
        layer = publish(get_store(), preview, spec, actor=CLI_ACTOR)
    except GisError as exc:
        raise click.ClickException(tr(exc.message)) from None
    click.echo(_("Published %(count)d features to %(slug)r (version %(version)d).",
                 count=preview.feature_count, slug=layer.slug, version=layer.data_version))


@layers_group.command("list")
def list_command() -> None:
    """List layers with their kind, feature count and version."""
    store = get_store()
    for layer in store.list_layers():
        click.echo(f"{layer.slug}\t{layer.kind}\t{store.count_features(layer.slug)}\t"
                   f"v{layer.data_version}\t{'public' if layer.public else 'internal'}\t"
                   f"{layer.title}")


@layers_group.command("versions")
@click.argument("slug")
def versions_command(slug: str) -> None:
    """List a layer's data versions."""
    try:
        versions = get_store().list_versions(slug)
    except GisError as exc:
        raise click.ClickException(tr(exc.message)) from None
    for v in versions:
        click.echo(json.dumps({"version": v.data_version, "features": v.feature_count,
                               "current": v.current, "created_at": v.created_at,
                               "note": v.note}, ensure_ascii=False))


@layers_group.command("restore")
@click.argument("slug")
@click.argument("version", type=int)
@click.option("--file-wins", "file_wins", multiple=True, metavar="FIELD",
              help="Take the version's value of FIELD ('all' for every field) where staff "
                   "changed it since (default: the staff's stays).")
@click.option("--yes", is_flag=True, help="Apply the changes shown.")
def restore_command(slug: str, version: int, file_wins: tuple[str, ...], yes: bool) -> None:
    """Make an earlier version of a layer's data current again: shows the changes, and
    makes them with --yes."""
    store = get_store()
    wins = _file_wins(file_wins)
    try:
        plan = store.plan_restore(slug, version, file_wins=wins)
        click.echo(diff_text(plan_json(plan)))
        if not yes:
            raise click.ClickException(str(NOT_APPLIED))
        new = store.restore_version(slug, version, file_wins=wins,
                                    expected_version=plan.data_version, actor=CLI_ACTOR)
    except GisError as exc:
        raise click.ClickException(tr(exc.message)) from None
    click.echo(_("Version %(old)d of %(slug)r restored as version %(new)d.", old=version,
                 slug=slug, new=new))
