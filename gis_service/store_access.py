"""Access to the app's Store from request code."""

from flask import current_app

from layers.store import Store


def get_store() -> Store:
    """The Store opened by ``create_app`` for this application."""
    return current_app.extensions["gis_store"]
