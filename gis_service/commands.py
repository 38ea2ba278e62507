"""Commands registered on the app: ``gis-service sample``, ``init``, ``users``, ``layers``."""

from __future__ import annotations

import secrets

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext

from layers.errors import GisError, LayerExists
from layers.sample import ILLUSTRATIVE_NOTE_EN, load_sample
from layers.store.base import ROLES

from .auth import create_account
from .layer_commands import layers_group
from .store_access import get_store
from .uploads import uploads_group


def _fail(exc: GisError) -> None:
    raise click.ClickException(exc.message)


@click.command("sample")
@with_appcontext
@click.option("--replace", is_flag=True, help="Delete and reload the sample layers.")
@click.option("--seed", default=2021, show_default=True, help="Random seed of the generator.")
def sample_command(replace: bool, seed: int) -> None:
    """Load the illustrative sample city (wards, hotspots, points)."""
    try:
        counts = load_sample(get_store(), seed=seed, replace=replace)
    except LayerExists as exc:
        raise click.ClickException(f"{exc.message} (gis-service sample --replace)") from None
    for slug, n in counts.items():
        click.echo(f"{slug}: {n} features")
    click.echo(ILLUSTRATIVE_NOTE_EN)


@click.command("init")
@with_appcontext
def init_command() -> None:
    """First start: load the sample if the store is empty and create an admin if none.

    The admin's password is random and printed once; change accounts with ``users``.
    """
    store = get_store()
    if not store.list_layers():
        counts = load_sample(store)
        click.echo(f"Loaded sample data ({sum(counts.values())} features). {ILLUSTRATIVE_NOTE_EN}")
    if not store.list_users():
        password = secrets.token_urlsafe(12)
        create_account("admin", password, "admin")
        click.echo(f"Created account 'admin' with password: {password}")
    click.echo(f"Store: {current_app.config['DATABASE']}")


users = AppGroup("users", help="Manage accounts.")


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.password_option(help="Prompted for (hidden) when not given.")
def users_create(username: str, role: str, password: str) -> None:
    """Create an account with a role (admin, planner or inspector)."""
    try:
        create_account(username, password, role)
    except GisError as exc:
        _fail(exc)
    click.echo(f"Created {role} account {username!r}")


@users.command("list")
def users_list() -> None:
    """List accounts and their roles."""
    for user in get_store().list_users():
        click.echo(f"{user.username}\t{user.role}\t{user.created_at}")


def init_app(app: Flask) -> None:
    for command in (sample_command, init_command, users, layers_group, uploads_group):
        app.cli.add_command(command)
