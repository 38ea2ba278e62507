"""Shared fixtures: a store, the app with the sample city, logged-in clients, a live server."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import make_server

from layers.store import SQLiteStore
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


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The real app served over HTTP on 127.0.0.1, for the browser tests."""
    db = tmp_path_factory.mktemp("live") / "live.sqlite"
    app = make_app(db, TESTING=False, ENV_NAME="development")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
