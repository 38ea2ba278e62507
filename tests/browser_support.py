"""Real-browser helpers: the live app with its store, headless Debian Chromium, logging in."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, Locator, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError
from werkzeug.serving import make_server

from layers.query import parse_query
from layers.store import Feature, Store
from tests.support import PASSWORDS, make_app

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
# Data loaded, no Leaflet zoom or marker-cluster animation still running.
SETTLED = """() => window.gisState && window.gisState.ready === true
    && !document.querySelector('.leaflet-zoom-anim, .leaflet-cluster-anim')"""
# Points a layer shows: single markers plus the child counts written on its clusters.
SHOWN_POINTS = """(slug) => document.querySelectorAll('.gis-marker-' + slug).length
    + [...document.querySelectorAll('.gis-cluster-' + slug)]
        .reduce((n, cluster) => n + Number(cluster.textContent.trim()), 0)"""


@dataclass
class Server:
    """The real app served on 127.0.0.1, with a handle on the store it reads."""

    url: str
    store: Store
    tile_host: str

    def matched(self, slug: str, args: dict[str, list[str]] | None = None) -> int:
        fields = self.store.get_layer(slug).fields
        return self.store.query_features(slug, parse_query(args or {}, fields)).matched

    def first(self, slug: str) -> Feature:
        return self.store.query_features(slug, parse_query({"limit": ["1"]}, ())).features[0]

    def ward_name(self, code: str) -> str:
        wards = self.store.query_features("wards", parse_query({}, ())).features
        return next(str(w.properties["name"]) for w in wards if w.properties["code"] == code)


@contextmanager
def serve(folder: Path, **overrides: object) -> Iterator[Server]:
    """The real app with the sample city, over HTTP on 127.0.0.1, while the block runs."""
    app = make_app(folder / "live.sqlite", TESTING=False, ENV_NAME="development", **overrides)
    http = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=http.serve_forever, daemon=True).start()
    tile_host = urlsplit(app.config["TILE_URL"].replace("{s}", "a")).hostname or ""
    try:
        yield Server(f"http://127.0.0.1:{http.server_port}", app.extensions["gis_store"],
                     tile_host)
    finally:
        http.shutdown()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The app with the default basemap settings, shared by a test module."""
    with serve(tmp_path_factory.mktemp("browser")) as live:
        yield live


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except PlaywrightError as exc:
            pytest.fail(f"could not launch Chromium at {CHROMIUM}: {exc}")
        yield browser
        browser.close()


@pytest.fixture
def page(browser: Browser, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh tab with no cookies, of a Vietnamese browser unless parametrized."""
    locale = getattr(request, "param", "vi-VN")
    context = browser.new_context(locale=locale, viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def log_in(page: Page, server: Server, path: str = "/map", role: str = "inspector") -> None:
    """Ask for ``path`` anonymously, fill the login form it leads to, land back on ``path``."""
    page.goto(server.url + path)
    assert urlsplit(page.url).path == "/login", page.url
    page.fill("#username", role)
    page.fill("#password", PASSWORDS[role])
    page.click("main form button[type=submit]")
    page.wait_for_url(lambda url: urlsplit(url).path == urlsplit(path).path,
                      wait_until="domcontentloaded")


def settle(page: Page) -> None:
    page.wait_for_function(SETTLED)
    errors = page.evaluate("() => Object.values(window.gisState.layers).map((l) => l.error)")
    assert not any(errors), errors


def shown_points(page: Page, slug: str) -> int:
    return int(page.evaluate(SHOWN_POINTS, slug))


def open_popup_at(page: Page, lat: float, lon: float) -> Locator:
    """Centre a point at street level (clusters broken up), click it, and the popup."""
    page.evaluate("""([lat, lon]) => window[document.querySelector('.folium-map').id]
        .setView([lat, lon], 18, {animate: false})""", [lat, lon])
    settle(page)
    box = page.locator(".folium-map").bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    popup = page.locator(".leaflet-popup .gis-popup")
    popup.wait_for()
    return popup
