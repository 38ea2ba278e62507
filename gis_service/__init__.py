"""gis_service: the web face of the Đồng Xoài environmental GIS (Flask app factory)."""

from __future__ import annotations

import secrets
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from layers.store import open_store

from . import (
    admin,
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
)
from .config import DefaultConfig


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    """Build an app: defaults, then ``GIS_*`` environment variables, then ``overrides``."""
    app = Flask(__name__, instance_relative_config=True)
    app.config.from_object(DefaultConfig)
    app.config.from_prefixed_env("GIS")
    app.config.update(overrides or {})
    if not app.config.get("SECRET_KEY"):
        if app.config["ENV_NAME"] != "development" and not app.testing:
            raise RuntimeError(
                "GIS_SECRET_KEY must be set outside development "
                "(for example: export GIS_SECRET_KEY=$(python -c 'import secrets; "
                "print(secrets.token_hex(32))'))"
            )
        app.config["SECRET_KEY"] = secrets.token_hex(32)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    if app.config["PROXY_FIX_X_FOR"]:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=int(app.config["PROXY_FIX_X_FOR"]))

    app.extensions["gis_store"] = open_store(app.config["DATABASE"])
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
    app.register_blueprint(public.bp)
    app.register_blueprint(public_maps.bp)
    app.register_blueprint(manage.api_bp)
    app.register_blueprint(api.bp, url_prefix="/api")
    return app
