"""Map page benchmark: gis_service's /map (Folium shell + JSON API) against naive Folium pages.

For each N the sample city's hotspots are topped up with N random ones; both sides are served
on 127.0.0.1 and timed in headless Debian Chromium. Not part of the test suite. Run it as
``.venv/bin/python benchmarks/map_page.py [N ...]`` (default N: 1 000, 10 000, 100 000).
"""

from __future__ import annotations

import functools
import logging
import random
import re
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import folium.plugins
import requests
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from shapely.geometry import Point
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

from gis_service import create_app
from gis_service.assets import point_folium_at_vendor
from layers.query import FeatureQuery
from layers.sample import load_sample
from layers.store import Feature, Store

T = TypeVar("T")
SIZES = (1_000, 10_000, 100_000)
BOX = (106.80, 11.48, 106.92, 11.56)  # minLon, minLat, maxLon, maxLat
TIMEOUT_S = 180.0
REPEATS = 5  # server / Python timings: median of 5 after one warm-up run
BROWSER_RUNS = 3  # Chromium timings: median of 3 cold runs, each in a fresh context
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
# A 1x1 transparent GIF as the basemap of both pages: no tile traffic. (With TILE_URL = "",
# the app's map has no maxZoom and Leaflet.markercluster throws, so the map never loads.)
BLANK_TILE = "data:image/gif;base64,R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
USER, PASSWORD = "inspector", "inspector-pass-1"
VENDOR_DIR = Path(__file__).resolve().parents[1] / "gis_service" / "assets" / "node_modules"
APP_READY = "() => window.gisState && window.gisState.ready"
APP_SHOWN = "() => window.gisState.layers.hotspots.count"
NAIVE_READY = """() => document.readyState === 'complete'
    && document.querySelector('.marker-cluster') !== null"""
# Points on a naive page: single markers plus the child counts written on the clusters.
NAIVE_SHOWN = """() => document.querySelectorAll('.leaflet-marker-icon:not(.marker-cluster)').length
    + [...document.querySelectorAll('.marker-cluster')]
        .reduce((n, c) => n + Number(c.textContent.trim()), 0)"""


@dataclass
class Row:
    """One line of the results table."""
    n: int
    approach: str
    html_bytes: int
    build_ms: float
    browser_s: float | None  # None: no ready state within TIMEOUT_S
    transferred: int
    shown: int | None


def top_up(store: Store, count: int, rng: random.Random) -> None:
    """Add ``count`` random, valid hotspots inside the city box."""
    props = {"category": "water", "severity": 1, "status": "reported",
             "reported_at": "2024-01-01", "ward": "25195"}
    start, (x0, y0, x1, y1) = store.count_features("hotspots"), BOX
    store.add_features("hotspots", [(Point(rng.uniform(x0, x1), rng.uniform(y0, y1)),
                                     {"name": f"Điểm thử {start + i}", **props})
                                    for i in range(count)])


def naive_html(features: list[Feature], bounds: Sequence[float], fast: bool) -> str:
    """The common Folium page: every hotspot inlined, in a marker cluster."""
    minx, miny, maxx, maxy = bounds
    m = folium.Map(location=[(miny + maxy) / 2, (minx + maxx) / 2], tiles=BLANK_TILE,
                   attr="blank", max_zoom=19)
    if fast:
        points = [[f.geometry.y, f.geometry.x] for f in features]
        # Folium's default callback needs Leaflet.awesome-markers (a CDN file): plain markers.
        callback = "function (row) { return L.marker(new L.LatLng(row[0], row[1])); }"
        folium.plugins.FastMarkerCluster(points, callback=callback).add_to(m)
    else:
        cluster = folium.plugins.MarkerCluster().add_to(m)
        data = {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": {"type": "Point", "coordinates": [f.geometry.x,
             f.geometry.y]}, "properties": f.properties} for f in features]}
        fields = ["name", "category", "status", "reported_at"]
        folium.GeoJson(data, marker=folium.Marker(),
                       popup=folium.GeoJsonPopup(fields=fields)).add_to(cluster)
    m.fit_bounds([[miny, minx], [maxy, maxx]])
    return m.get_root().render()


def browse_once(browser: Browser, url: str, ready: str, cookies: list[dict[str, Any]],
                shown: str) -> tuple[float | None, int, int | None]:
    """Seconds from navigation to ``ready`` (cold cache), response body bytes, points shown."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.add_cookies(cookies)  # type: ignore[arg-type]
    page = context.new_page()
    finished: list[Any] = []
    page.on("requestfinished", lambda r: finished.append(r))
    page.on("pageerror", lambda e: print(f"  page error: {e}", file=sys.stderr))
    start = time.perf_counter()
    elapsed: float | None = None
    count: int | None = None
    try:
        page.goto(url, wait_until="commit", timeout=TIMEOUT_S * 1000)
        left = TIMEOUT_S - (time.perf_counter() - start)
        page.wait_for_function(ready, timeout=max(left, 0.001) * 1000)
        elapsed = time.perf_counter() - start
        count = int(page.evaluate(shown))
    except PlaywrightTimeout:
        pass
    total = sum(max(r.sizes()["responseBodySize"], 0) for r in finished)
    context.close()
    return elapsed, total, count


def browse(*args: Any) -> tuple[float | None, int, int | None]:
    """``browse_once`` BROWSER_RUNS times: the median time (None after a timeout)."""
    times: list[float] = []
    for _ in range(BROWSER_RUNS):
        elapsed, total, count = browse_once(*args)
        if elapsed is None:
            return None, total, count
        times.append(elapsed)
    return statistics.median(times), total, count


def serve(http: Any) -> tuple[str, Callable[[], None]]:
    """Run a server bound to 127.0.0.1 in a thread: its URL and its stop function."""
    threading.Thread(target=http.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{http.server_address[1]}", http.shutdown


def static_server(root: Path) -> ThreadingHTTPServer:
    """Files of ``root`` and, under /static/vendor/, the app's vendored node_modules."""

    class Handler(SimpleHTTPRequestHandler):
        def translate_path(self, path: str) -> str:
            prefix = "/static/vendor/"
            if path.startswith(prefix):
                return str(VENDOR_DIR / path.split("?")[0][len(prefix):])
            return super().translate_path(path)

        def log_message(self, *args: Any) -> None:
            pass

    return ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))


def log_in(base: str) -> requests.Session:
    """A session logged in through the real form, CSRF token included."""
    session = requests.Session()
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', session.get(f"{base}/login").text)
    assert token, "no CSRF token on /login"
    answer = session.post(f"{base}/login", allow_redirects=False,
                          data={"username": USER, "password": PASSWORD, "csrf_token": token[1]})
    assert answer.status_code == 302, answer.text
    return session


def table(rows: list[Row]) -> str:
    """The results as a markdown table."""
    def mb(n: int) -> str:
        return f"{n / 1e6:.2f} MB" if n >= 1e6 else f"{n / 1e3:.1f} kB"

    lines = ["| N added | hotspots drawn | approach | HTML of the page | build + render | "
             "navigation → drawn | bytes transferred |", "|---:|---:|---|---:|---:|---:|---:|"]
    for r in rows:
        when = f"{r.browser_s:.2f} s" if r.browser_s is not None else f"> {TIMEOUT_S:.0f} s"
        shown = f"{r.shown:,}" if r.shown is not None else "–"
        lines.append(f"| {r.n:,} | {shown} | {r.approach} | {mb(r.html_bytes)} | "
                     f"{r.build_ms:,.0f} ms | {when} | {mb(r.transferred)} |")
    return "\n".join(lines)


def timed(run: Callable[[], T]) -> tuple[float, T]:
    """Median milliseconds of REPEATS runs, and the last result."""
    times, result = [], run()
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        result = run()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times), result


def main() -> None:
    """Measure every N on both sides and print the table."""
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="map-bench-"))
    app = create_app({"DATABASE": str(work / "bench.sqlite"), "SECRET_KEY": "bench",
                      "TILE_URL": BLANK_TILE, "ENV_NAME": "development"})
    store: Store = app.extensions["gis_store"]
    load_sample(store)
    store.create_user(USER, generate_password_hash(PASSWORD), "inspector")
    point_folium_at_vendor()
    app_url, stop_app = serve(make_server("127.0.0.1", 0, app, threaded=True))
    static_url, stop_static = serve(static_server(work))
    session = log_in(app_url)
    cookies = [{"name": c.name, "value": c.value or "", "url": app_url} for c in session.cookies]
    bounds, rng, rows, added = store.extent("wards") or BOX, random.Random(2024), [], 0
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        for n in [int(a) for a in sys.argv[1:]] or SIZES:
            top_up(store, n - added, rng)
            added = n
            print(f"N={n:,}: gis_service", file=sys.stderr, flush=True)
            ms, html = timed(lambda: session.get(f"{app_url}/map").content)
            got = browse(browser, f"{app_url}/map", APP_READY, cookies, APP_SHOWN)
            rows.append(Row(n, "gis_service /map + API", len(html), ms, *got))
            features = store.query_features("hotspots", FeatureQuery(limit=10**7)).features
            for fast, name in ((False, "naive GeoJson in MarkerCluster"),
                               (True, "naive FastMarkerCluster")):
                print(f"N={n:,}: {name}", file=sys.stderr, flush=True)
                ms, page = timed(functools.partial(naive_html, features, bounds, fast))
                file = work / f"naive-{n}-{int(fast)}.html"
                file.write_text(page, encoding="utf-8")
                got = browse(browser, f"{static_url}/{file.name}", NAIVE_READY, [], NAIVE_SHOWN)
                rows.append(Row(n, name, file.stat().st_size, ms, *got))
        browser.close()
    stop_app(), stop_static()
    shutil.rmtree(work, ignore_errors=True)
    print(table(rows))


if __name__ == "__main__":
    main()
