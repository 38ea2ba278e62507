"""Helpers shared by the tests: an app with the sample city and accounts, and logging in."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

from gis_service import create_app
from layers.sample import load_sample
from tests.pg_cluster import cluster

PASSWORDS = {"admin": "admin-pass-1", "planner": "planner-pass-1", "inspector": "inspector-pass-1"}


def test_database(db: Path) -> str:
    """Where a test app keeps its data: the SQLite file ``db``, or a fresh PostGIS schema
    when GIS_TEST_STORE=postgis (``make test`` runs the suite on both stores)."""
    if os.environ.get("GIS_TEST_STORE") == "postgis":
        return cluster().new_schema()
    return str(db)


def make_app(db: Path, **overrides: object) -> Flask:
    """An app on ``db`` with the sample city and one account per role."""
    # The command line speaks Vietnamese by default; tests read its English, except
    # test_cli.py's check of the default.
    app = create_app({"TESTING": True, "DATABASE": test_database(db), "SECRET_KEY": "test-secret",
                      "CLI_LANG": "en",
                      "RATELIMIT_DB": str(db.parent / "ratelimit.sqlite"),
                      "UPLOAD_DIR": str(db.parent / "uploads"), **overrides})
    store = app.extensions["gis_store"]
    load_sample(store)
    for role, password in PASSWORDS.items():
        # A cheap hash keeps fixtures fast; the app's own accounts use the strong default.
        store.create_user(role, generate_password_hash(password, "pbkdf2:sha256:1000"), role)
    return app


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of a page's form, as a browser would submit it."""
    page = client.get(path).get_data(as_text=True)
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page) or re.search(
        r'name="csrf_token" value="([^"]+)"', page
    )
    assert match, f"no CSRF token on {path}"
    return match.group(1)


def login(client: FlaskClient, role: str = "inspector") -> FlaskClient:
    """Log ``client`` in through the real form, CSRF token included."""
    response = client.post(
        "/login",
        data={"username": role, "password": PASSWORDS[role], "csrf_token": csrf_token(client)},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def map_config(html: str) -> dict:
    """The map's data island: what a map page hands gis_map.js (titles, layers, filters)."""
    match = re.search(r'<script type="application/json" id="gis-map-config">(.*?)</script>',
                      html, re.S)
    assert match, "no map data island on the page"
    return json.loads(match.group(1))
