"""Shared fixtures: a store, the app with the sample city, logged-in clients, a live server."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from layers.store import SQLiteStore
from tests.browser_support import browser, page, server  # noqa: F401 - shared fixtures
from tests.support import login, make_app


@pytest.fixture
def store(tmp_path: Path) -> SQLiteStore:
    return SQLiteStore(tmp_path / "store.sqlite")


@pytest.fixture
def app(tmp_path: Path) -> Flask:
    return make_app(tmp_path / "app.sqlite", TILE_URL="")


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def inspector(client: FlaskClient) -> FlaskClient:
    return login(client, "inspector")
