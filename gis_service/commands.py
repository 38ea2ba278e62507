"""Commands registered on the app: ``gis-service sample``, ``init``, ``users``, ``layers``."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from flask import Flask, current_app
from flask.cli import AppGroup, with_appcontext
from flask_babel import force_locale

from layers.errors import GisError, LayerExists
from layers.sample import ILLUSTRATIVE_NOTE_EN, load_sample
from layers.store.base import ROLES

from .accounts import create_account, reset_password
from .layer_commands import layers_group
from .store_access import get_store
from .uploads import uploads_group

# Who the audit log names for changes made from the command line.
CLI_ACTOR = "cli"


def _fail(exc: GisError) -> None:
    raise click.ClickException(exc.message)


@contextmanager
def _account_change() -> Iterator[None]:
    """Messages in English (the CLI's language) and core errors as clean exits."""
    with force_locale("en"):
        try:
            yield
        except GisError as exc:
            _fail(exc)


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

    The admin gets a temporary password, printed once and changed at the first login;
    change accounts with ``users``.
    """
    store = get_store()
    if not store.list_layers():
        counts = load_sample(store)
        click.echo(f"Loaded sample data ({sum(counts.values())} features). {ILLUSTRATIVE_NOTE_EN}")
    if not store.list_users():
        with _account_change():
            _, password = create_account("admin", None, "admin", actor=CLI_ACTOR)
        click.echo(f"Created account 'admin' with temporary password: {password}"
                   " (to be changed at the first login)")
    click.echo(f"Store: {current_app.config['DATABASE']}")


users = AppGroup("users", help="Manage accounts.")


@users.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), required=True)
@click.password_option(help="Prompted for (hidden) when not given.")
def users_create(username: str, role: str, password: str) -> None:
    """Create an account with a role (admin, planner or inspector)."""
    with _account_change():
        user, _ = create_account(username, password, role, actor=CLI_ACTOR)
    click.echo(f"Created {role} account {user.username!r}")


@users.command("list")
def users_list() -> None:
    """List accounts: name, role, state and creation time."""
    for user in get_store().list_users():
        state = ("disabled" if user.disabled else
                 "must-change-password" if user.must_change_password else "active")
        click.echo(f"{user.username}\t{user.role}\t{state}\t{user.created_at}")


@users.command("set-role")
@click.argument("username")
@click.argument("role", type=click.Choice(ROLES))
def users_set_role(username: str, role: str) -> None:
    """Give an account another role."""
    with _account_change():
        user = get_store().update_user(username, role=role, actor=CLI_ACTOR)
    click.echo(f"{user.username!r} is now {role}")


@users.command("disable")
@click.argument("username")
def users_disable(username: str) -> None:
    """Disable an account (it keeps its history) and end all its sessions."""
    with _account_change():
        user = get_store().update_user(username, disabled=True, actor=CLI_ACTOR)
    click.echo(f"Disabled {user.username!r}; its sessions have ended")


@users.command("enable")
@click.argument("username")
def users_enable(username: str) -> None:
    """Let a disabled account log in again."""
    with _account_change():
        user = get_store().update_user(username, disabled=False, actor=CLI_ACTOR)
    click.echo(f"Enabled {user.username!r}")


@users.command("reset-password")
@click.argument("username")
def users_reset_password(username: str) -> None:
    """Give an account a temporary password (printed once) to change at the next login."""
    with _account_change():
        password = reset_password(username, actor=CLI_ACTOR)
    click.echo(f"Temporary password of {username!r}: {password}"
               " (to be changed at the next login; its sessions have ended)")


def init_app(app: Flask) -> None:
    for command in (sample_command, init_command, users, layers_group, uploads_group):
        app.cli.add_command(command)
