"""The ``gis-service`` console script: Flask's commands (run, routes…) plus the app's own."""

from flask.cli import FlaskGroup

from . import create_app

cli = FlaskGroup(create_app=create_app, help="Web GIS for the Đồng Xoài environment office.")


def main() -> None:
    cli()
