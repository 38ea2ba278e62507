"""Large layers on the map in headless Chromium: vector tiles above GIS_TILE_THRESHOLD,
GeoJSON pages below it, popups fetched by id, filters in the tile requests, layers that are
off by default fetching nothing, and a first view that stays small.

The threshold is set low (50) so that the sample city's hotspots, with a dense patch of
600 more, count as large and the tests stay fast.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Browser, Page, Request
from shapely.geometry import Point

from layers.kinds import FieldDef
from tests.browser_support import Server, log_in, open_popup_at, serve, settle, shown_points
from tests.support import PASSWORDS

pytestmark = pytest.mark.browser

MAP = "window[document.querySelector('.folium-map').id]"
PAYLOAD = '<img src=x onerror="window.__xss=1"> {{7*7}}'
STATUSES = ("reported", "verified", "in_progress")
NAME = (FieldDef("name", "text", "Tên", "Name"),)
# What the first view of an empty browser cache may transfer (measured: 26 KB of tiles for
# the 751 hotspots, half of it headers; 116 KB of page, pages and tiles of every layer;
# 437 KB in all, of which the pinned Leaflet files, served uncompressed, are about 300 KB).
LARGE_LAYER_BYTES = 40_000
DATA_BYTES = 150_000
FIRST_VIEW_BYTES = 460_000


@dataclass
class Scene:
    server: Server
    spot_id: int
    spot: Point


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    with serve(tmp_path_factory.mktemp("tiles"), TILE_URL="", TILE_THRESHOLD=50) as server:
        store = server.store
        # A dense patch, clustered on the server at city scale, in three statuses.
        store.add_features("hotspots", [
            (Point(106.8765 + 0.0004 * (i % 25), 11.5255 + 0.0004 * (i // 25)),
             {"name": f"Điểm {i}", "category": "other", "severity": 2,
              "status": STATUSES[i % 3], "reported_at": "2024-05-01"})
            for i in range(600)], actor="inspector")
        spot = Point(106.8305, 11.5012)
        [spot_id] = store.add_features("hotspots", [
            (spot, {"name": PAYLOAD, "category": "other", "severity": 2, "status": "verified",
                    "reported_at": "2024-05-01"})], actor="inspector")
        # Internal layers switched off until someone wants them: one large, one small.
        store.create_layer("sensors", "Cảm biến (thử)", "generic", geometry_type="Point",
                           style={"show": False}, fields=NAME, features=[
                               (Point(106.84 + 0.001 * i, 11.52), {"name": f"S{i}"})
                               for i in range(80)])
        store.create_layer("benches", "Ghế đá (thử)", "generic", geometry_type="Point",
                           style={"show": False}, fields=NAME, features=[
                               (Point(106.85 + 0.001 * i, 11.53), {"name": f"B{i}"})
                               for i in range(5)])
        yield Scene(server, spot_id, spot)


@pytest.fixture
def requests(page: Page) -> list[Request]:
    seen: list[Request] = []
    page.on("request", lambda r: seen.append(r))
    return seen


def paths(requests: list[Request], prefix: str) -> list[str]:
    return [r.url for r in requests if urlsplit(r.url).path.startswith(prefix)]


def legend_count(page: Page, slug: str) -> str:
    return page.locator(f".gis-legend-count[data-slug='{slug}']").text_content() or ""


def test_large_layers_come_as_tiles_small_ones_as_geojson(page: Page, scene: Scene,
                                                          requests: list[Request]) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    log_in(page, scene.server)
    settle(page)
    tiles = paths(requests, "/tiles/hotspots/")
    assert tiles and all(urlsplit(u).path.endswith(".mvt") for u in tiles), tiles
    assert not paths(requests, "/api/layers/hotspots/features")
    for small in ("wards", "model-communities"):
        assert paths(requests, f"/api/layers/{small}/features"), small
        assert not paths(requests, f"/tiles/{small}/"), small
    # The small layers' pages were asked for before any tile: a large layer never holds
    # them up.
    urls = [r.url for r in requests]
    assert urls.index(paths(requests, "/api/layers/wards/features")[0]) < urls.index(tiles[0])
    # Drawn: plain points on canvas tiles, the dense patch as clusters that count it.
    drawn = page.evaluate("() => window.gisState.layers.hotspots")
    assert drawn["clusters"] > 0, drawn
    counts = [int(n) for n in page.locator(".gis-tile-cluster-hotspots [data-count]")
              .evaluate_all("(nodes) => nodes.map((n) => n.dataset.count)")]
    assert sum(counts) + drawn["features"] <= scene.server.matched("hotspots")
    assert sum(counts) >= 300, counts
    ring = page.locator(".gis-tile-cluster-hotspots .gis-tile-cluster-ring").first
    assert "conic-gradient" in ring.evaluate("(n) => n.style.background")  # the status mix
    # The legend counts the layer from the server, not what the clusters let it draw.
    total = scene.server.store.count_features("hotspots")
    assert legend_count(page, "hotspots") == f" · {total:,}".replace(",", ".") + " đối tượng"
    assert page.locator(".gis-marker-hotspots, .gis-cluster-hotspots").count() == 0
    assert not errors


def test_a_cluster_click_zooms_in(page: Page, scene: Scene) -> None:
    log_in(page, scene.server)
    settle(page)
    before = page.evaluate(f"() => {MAP}.getZoom()")
    page.locator(".gis-tile-cluster-hotspots").first.click()
    page.wait_for_function(f"(z) => {MAP}.getZoom() > z", arg=before)
    settle(page)


def test_tiles_that_leave_the_view_are_given_up(page: Page, scene: Scene) -> None:
    failed: list[str] = []
    page.on("requestfailed", lambda r: failed.append(r.url))
    log_in(page, scene.server)
    settle(page)
    # Zooming in and out faster than the tiles arrive: the tiles left behind are cancelled
    # and the map still settles (Leaflet alone would wait for them for ever).
    page.evaluate(f"""async () => {{
        for (const z of [16, 17, 18, 15, 17, 13]) {{
            {MAP}.setView([11.53, 106.88], z, {{animate: false}});
            await new Promise((done) => setTimeout(done, 10));
        }} }}""")
    settle(page)
    assert any(urlsplit(u).path.startswith("/tiles/") for u in failed)
    assert page.evaluate("() => window.gisState.layers.hotspots.loading") is False


def test_a_tiled_features_popup_is_fetched_by_id_and_escaped(page: Page, scene: Scene,
                                                             requests: list[Request]) -> None:
    log_in(page, scene.server)
    settle(page)
    popup = open_popup_at(page, scene.spot.y, scene.spot.x)
    popup.locator("h3").wait_for()
    assert popup.locator("h3").inner_text() == PAYLOAD
    assert page.evaluate("() => window.__xss") is None
    assert page.locator("img[src='x']").count() == 0
    assert paths(requests, f"/api/layers/hotspots/features/{scene.spot_id}")
    assert popup.locator("a.gis-popup-link").get_attribute("href", timeout=1000).endswith(
        f"/{scene.spot_id}")


def test_a_filter_asks_for_tiles_with_it(page: Page, scene: Scene,
                                         requests: list[Request]) -> None:
    log_in(page, scene.server)
    settle(page)
    page.click("details.filters summary")
    page.select_option("select[name=status]", "verified")
    page.click("#filters button[type=submit]")
    page.wait_for_url(lambda url: "status=verified" in url, wait_until="domcontentloaded")
    settle(page)
    first = max(i for i, r in enumerate(requests) if r.is_navigation_request())
    tiles = paths(requests[first:], "/tiles/hotspots/")
    assert tiles
    assert all(parse_qs(urlsplit(u).query) == {"status": ["verified"]} for u in tiles), tiles
    verified = scene.server.matched("hotspots", {"status": ["verified"]})
    assert legend_count(page, "hotspots") == f" · {verified} đối tượng"


def test_layers_off_by_default_fetch_nothing_until_switched_on(
        page: Page, scene: Scene, requests: list[Request]) -> None:
    log_in(page, scene.server)
    settle(page)
    assert paths(requests, "/api/layers/wards/features")  # the map did load
    assert not paths(requests, "/tiles/sensors/")
    assert not paths(requests, "/api/layers/benches/")
    page.hover(".leaflet-control-layers")
    overlays = page.locator(".leaflet-control-layers-overlays label")
    overlays.filter(has_text="Cảm biến (thử)").locator("input").check()
    overlays.filter(has_text="Ghế đá (thử)").locator("input").check()
    page.mouse.move(5, 5)
    settle(page)
    assert paths(requests, "/tiles/sensors/")
    assert paths(requests, "/api/layers/benches/features")
    assert shown_points(page, "benches") == 5
    assert page.evaluate("() => window.gisState.layers.sensors.features") > 0


def test_the_public_map_draws_from_the_public_tiles(page: Page, scene: Scene,
                                                   requests: list[Request]) -> None:
    page.goto(scene.server.url + "/public")
    settle(page)
    assert paths(requests, "/public/tiles/default/hotspots/")
    assert not paths(requests, "/tiles/") and not paths(requests, "/api/")
    assert not paths(requests, "/public/api/default/layers/hotspots/features")
    assert paths(requests, "/public/api/default/layers/wards/features")
    shown = scene.server.matched("hotspots", {"status": ["verified", "in_progress", "resolved"]})
    assert legend_count(page, "hotspots") == f" · {shown} đối tượng"
    popup = open_popup_at(page, scene.spot.y, scene.spot.x)  # a verified hotspot
    popup.locator("h3").wait_for()
    assert popup.locator("h3").inner_text() == PAYLOAD
    assert paths(requests, f"/public/api/default/layers/hotspots/features/{scene.spot_id}")


def test_the_first_view_transfers_little(browser: Browser, scene: Scene) -> None:
    # A browser with nothing cached, logged in without loading a page.
    context = browser.new_context(locale="vi-VN", viewport={"width": 1280, "height": 900})
    form = context.request.get(scene.server.url + "/login").text()
    token = re.search(r'name="csrf_token"[^>]* value="([^"]+)"', form)
    assert token
    context.request.post(scene.server.url + "/login", form={
        "username": "inspector", "password": PASSWORDS["inspector"], "csrf_token": token[1]})
    page = context.new_page()
    seen: list[Request] = []
    page.on("requestfinished", lambda r: seen.append(r))
    page.goto(scene.server.url + "/map")
    settle(page)
    page.wait_for_load_state("networkidle")

    def size(r: Request) -> int:
        s = r.sizes()
        return s["responseBodySize"] + s["responseHeadersSize"]

    def part(prefix: str) -> int:
        return sum(size(r) for r in seen if urlsplit(r.url).path.startswith(prefix))

    total = sum(size(r) for r in seen)
    large = part("/tiles/hotspots/")
    data = total - part("/static/")
    context.close()
    assert 0 < large <= LARGE_LAYER_BYTES, large
    assert data <= DATA_BYTES, data
    assert total <= FIRST_VIEW_BYTES, total
