"""gis_service: the web face of the Đồng Xoài environmental GIS (Flask app factory)."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from layers.store import open_store

from . import (
    admin,
    answer_cache,
    api,
    assets,
    auth,
    commands,
    formatting,
    hotspots,
    http_errors,
    i18n,
    inspector,
    manage,
    public,
    public_maps,
    security,
    tiles,
)
from .accounts import pages as account_pages
from .config import DefaultConfig

# A message naming the setting, not a secret.
SECRET_KEY_MISSING = (
    "GIS_SECRET_KEY must be set to serve requests outside development "  # noqa: S105
    "(for example: export GIS_SECRET_KEY=$(python -c 'import secrets; "
    "print(secrets.token_hex(32))'))"
)


def needs_secret_key(app: Flask) -> bool:
    """True when serving this app would sign sessions with a throw-away key outside
    development: each worker would have its own, and logins would not survive a restart."""
    return bool(app.config.get("SECRET_KEY_THROWAWAY")) and app.config["ENV_NAME"] != (
        "development") and not app.testing


def create_app(overrides: dict[str, Any] | None = None, *, serving: bool = True) -> Flask:
    """Build an app: defaults, then ``GIS_*`` environment variables, then ``overrides``.

    ``serving=False`` is for commands that never answer a request (``users``, ``sample``…):
    they sign nothing, so they run without ``GIS_SECRET_KEY``.
    """
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(DefaultConfig)
    app.config.from_prefixed_env("GIS")
    app.config.update(overrides or {})
    if not app.config.get("SECRET_KEY"):
        app.config.update(SECRET_KEY=secrets.token_hex(32), SECRET_KEY_THROWAWAY=True)
        if serving and needs_secret_key(app):
            raise RuntimeError(SECRET_KEY_MISSING)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if app.config["PROXY_FIX_X_FOR"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))

    app.extensions["gis_store"] = open_store(app.config["DATABASE"])
    answer_cache.init_app(app)
    assets.init_app(app)
    i18n.init_app(app)
    formatting.init_app(app)
    security.init_app(app)
    auth.init_app(app)
    http_errors.init_app(app)
    commands.init_app(app)
    app.register_blueprint(inspector.bp)
    app.register_blueprint(manage.bp)
    app.register_blueprint(hotspots.bp)
    app.register_blueprint(admin.bp)
    app.register_blueprint(account_pages.bp)
    app.register_blueprint(public.bp)
    app.register_blueprint(public_maps.bp)
    app.register_blueprint(manage.api_bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    app.register_blueprint(tiles.bp)
    app.register_blueprint(tiles.public_bp)
    return app
