"""``gis-service layers …``: import files, list layers, list and restore versions."""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask.cli import AppGroup

from layers.errors import GisError
from layers.ingest.mapping import guess_mapping
from layers.ingest.pipeline import PublishSpec, publish
from layers.ingest.validate import field_name
from layers.kinds import KINDS

from .importing import preview_json, read_options, run_preview
from .store_access import get_store

layers_group = AppGroup("layers", help="Manage layers: import files, versions.")
CLI_ACTOR = "cli"  # the audit log's name for changes made from the command line


def _summary(data: dict) -> str:
    crs = data["crs"]
    lines = [
        f"Dataset: {data['dataset']} ({data['format']}), {data['feature_count']} features, "
        f"{data['geometry_type']}",
        f"CRS: EPSG:{crs['epsg']} ({crs['source']}, confidence {crs['confidence']:.0%})",
    ]
    lines += [f"  candidate EPSG:{c['epsg']} {c['name']} ({c['confidence']:.0%}): {c['reason']}"
              for c in crs["candidates"]]
    if data["encoding"]:
        enc = data["encoding"]
        lines.append(f"Encoding: {enc['used']} ({enc['source']}); detector: {enc['encoding']} "
                     f"({enc['confidence']:.0%}): {enc['evidence']}")
    lines.append("Fields: " + ", ".join(f"{f['name']} ({f['type']})" for f in data["fields"]))
    lines += [f"Warning: {w}" for w in data["warnings"]]
    if len(data["datasets"]) > 1:  # a zip's members, a GeoPackage's layers: --dataset NAME
        lines += ["Datasets (--dataset NAME):", *(f"  {name}" for name in data["datasets"])]
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
@click.option("--yes", is_flag=True, help="Confirm a guessed or corrected CRS.")
@click.option("--preview", "preview_only", is_flag=True, help="Only show what would be imported.")
def import_command(file: Path, kind: str, title: str | None, slug: str | None, crs: str | None,
                   encoding: str | None, dataset: str | None, mappings: tuple[str, ...],
                   private: tuple[str, ...], public: bool, replace_slug: str | None, yes: bool,
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
            raise click.ClickException(
                f"The coordinate system EPSG:{preview.crs.epsg} was guessed or corrected. "
                "Check it, then rerun with --yes, or give the right one with --crs EPSG."
            )
        field_map = guess_mapping(kind, [f.name for f in preview.fields])
        for item in mappings:
            target, sep, source = item.partition("=")
            if not sep:
                raise click.BadParameter(f"{item!r} is not FIELD=COLUMN", param_hint="--map")
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
        )
        layer = publish(get_store(), preview, spec, actor=CLI_ACTOR)
    except GisError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Published {preview.feature_count} features to {layer.slug!r} "
               f"(version {layer.data_version}).")


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
        raise click.ClickException(exc.message) from None
    for v in versions:
        click.echo(json.dumps({"version": v.data_version, "features": v.feature_count,
                               "current": v.current, "created_at": v.created_at,
                               "note": v.note}, ensure_ascii=False))


@layers_group.command("restore")
@click.argument("slug")
@click.argument("version", type=int)
def restore_command(slug: str, version: int) -> None:
    """Make an earlier version of a layer's data current again."""
    try:
        new = get_store().restore_version(slug, version, actor=CLI_ACTOR)
    except GisError as exc:
        raise click.ClickException(exc.message) from None
    click.echo(f"Version {version} of {slug!r} restored as version {new}.")
