"""The ``gis-service`` console script: Flask's commands (run, routes…) plus the app's own.

Commands that only change the store (``users``, ``sample``, ``layers``…) work from a plain
shell without ``GIS_SECRET_KEY``; ``run``, which serves requests, refuses to start without
one outside development, with a message instead of a traceback.
"""

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo, run_command

from . import SECRET_KEY_MISSING, create_app, needs_secret_key


def commands_app() -> Flask:
    return create_app(serving=False)


@click.command("run", params=run_command.params, help=run_command.help,
               context_settings=run_command.context_settings)
@click.pass_context
def checked_run(ctx: click.Context, **options: object) -> None:
    if needs_secret_key(ctx.ensure_object(ScriptInfo).load_app()):
        raise click.ClickException(SECRET_KEY_MISSING)
    ctx.invoke(run_command, **options)


cli = FlaskGroup(create_app=commands_app, help="Web GIS for the Đồng Xoài environment office.")
cli.add_command(checked_run)


def main() -> None:
    cli()
