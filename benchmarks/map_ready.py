"""Map ready in headless Chromium: gis_service's /map (vector tiles for large layers) against
naive Folium pages, at 10 000, 100 000 and 1 000 000 hotspots (issue 9, item 5).

For each N an SQLite store holds the sample city plus N random hotspots (loaded through the
store API, cached in ``benchmarks/.data/`` per store code). The real app runs under gunicorn
(2 workers); the naive pages (GeoJson in a MarkerCluster up to 100 000, FastMarkerCluster at
every N) are static files. The approaches alternate within each of the rounds; each browser
run is a fresh context (cold cache), and the app's run then loads the page a second time in
the same context (warm cache). While the app's map loads, another user's GET /public/report
is timed. Run ``.venv/bin/python benchmarks/map_ready.py [N ...] [--rounds 3]``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import data
import numpy as np
import requests
import shapely
from features_api import MAIN_BIN, Processes, free_port, uptime, wait_for
from map_page import (
    BLANK_TILE,
    BOX,
    CHROMIUM,
    CHROMIUM_ARGS,
    NAIVE_READY,
    NAIVE_SHOWN,
    PASSWORD,
    USER,
    log_in,
    naive_html,
    serve,
    static_server,
)
from playwright.sync_api import Browser, sync_playwright
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from werkzeug.security import generate_password_hash

from gis_service.assets import point_folium_at_vendor
from layers.query import FeatureQuery
from layers.sample import load_sample
from layers.store import open_store

TIMEOUT_S = 180.0
GEOJSON_MAX = 100_000  # the inlined GeoJson page cannot be built or drawn at 1M
BATCH = 50_000
DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 3,
         "is_mobile": True, "has_touch": True}
APP_READY = "() => window.gisState && window.gisState.ready"
# What the app's map holds when ready: its count (the server's), plain features and
# clusters from the tiles, and the points those clusters count.
APP_SHOWN = """() => {
  const h = window.gisState.layers.hotspots;
  const clustered = [...document.querySelectorAll('.gis-tile-cluster-hotspots [data-count]')]
    .reduce((n, c) => n + Number(c.dataset.count), 0);
  return {count: h.count, tiled: !!h.tiled, features: h.features || 0,
          clusters: h.clusters || 0, drawn: (h.features || 0) + clustered};
}"""
# nginx in front of the app with gzip on, as a deployment would put it: the same app, the
# bytes a compressing front end sends (the app itself sends its JS, CSS and JSON as is).
GZIP_PROXY = """\
worker_processes 1;
pid {root}/nginx.pid;
error_log {root}/nginx-error.log error;
events {{ worker_connections 1024; }}
http {{
  access_log off;
  client_body_temp_path {root}/tmp-body;
  proxy_temp_path {root}/tmp-proxy;
  fastcgi_temp_path {root}/tmp-fastcgi;
  uwsgi_temp_path {root}/tmp-uwsgi;
  scgi_temp_path {root}/tmp-scgi;
  gzip on;
  gzip_proxied any;
  gzip_comp_level 6;
  gzip_min_length 256;
  gzip_types text/css text/javascript application/javascript application/json
             application/geo+json application/vnd.mapbox-vector-tile;
  server {{
    listen 127.0.0.1:{port};
    location / {{
      proxy_pass {upstream};
      proxy_set_header Host $http_host;
      proxy_max_temp_file_size 0;
      proxy_read_timeout 300s;
    }}
  }}
}}
"""
PROPS = {"category": "water", "severity": 1, "status": "reported", "reported_at": "2024-01-01",
         "ward": "25195"}


@dataclass
class Point:
    """A hotspot as ``naive_html`` reads it."""

    geometry: Any
    properties: dict[str, Any]


@dataclass
class Run:
    """One browser run."""

    ready_s: float | None  # None: not ready within TIMEOUT_S
    transferred: int  # CDP encodedDataLength summed: what crossed the wire, headers included
    requests: int
    by_kind: dict[str, int]
    shown: Any = None
    warm_s: float | None = None
    warm_transferred: int | None = None
    report_ms: list[float] = field(default_factory=list)


@dataclass
class Approach:
    """A page measured for one N."""

    name: str
    url: str
    ready: str
    shown: str
    context: dict[str, Any]
    app: bool = False
    html_bytes: int = 0
    build_s: float = 0.0
    runs: list[Run] = field(default_factory=list)


def hotspots(n: int) -> list[Point]:
    """N random hotspots inside the city box, seeded by N (the same on every run)."""
    rng = np.random.default_rng(data.SEED + n)
    x0, y0, x1, y1 = BOX
    geoms = shapely.points(rng.uniform(x0, x1, n), rng.uniform(y0, y1, n))
    return [Point(g, {"name": f"Điểm thử {i}", **PROPS}) for i, g in enumerate(geoms)]


def store_file(n: int, points: list[Point]) -> Path:
    """The sample city plus the N hotspots and an inspector, made on first use by this
    store code (``add_features`` in batches of BATCH)."""
    data.DATA.mkdir(parents=True, exist_ok=True)
    path = data.DATA / f"map-{n}-{data.store_code_tag()}.sqlite"
    if path.exists():
        return path
    tmp = path.with_suffix(".tmp.sqlite")
    tmp.unlink(missing_ok=True)
    start = time.perf_counter()
    store = open_store(str(tmp))
    load_sample(store)
    store.create_user(USER, generate_password_hash(PASSWORD), "inspector")
    for i in range(0, n, BATCH):
        store.add_features("hotspots", [(p.geometry, p.properties) for p in points[i:i + BATCH]])
    del store
    tmp.rename(path)
    print(f"  loaded {n:,} hotspots into {path.name} in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
    return path


def start_app(database: Path, work: Path, procs: Processes) -> str:
    """gunicorn, 2 sync workers, blank basemap: the app's URL."""
    port = free_port()
    folder = work / f"app-{port}"
    folder.mkdir()
    env = {**os.environ, "GIS_DATABASE": str(database), "GIS_SECRET_KEY": "benchmark-secret",
           "GIS_TILE_URL": BLANK_TILE, "GIS_RATELIMIT_DB": str(folder / "ratelimit.sqlite"),
           "GIS_UPLOAD_DIR": str(folder / "uploads")}
    log = work / f"app-{port}.log"
    proc = procs.start([str(MAIN_BIN / "gunicorn"), "--workers", "2", "--bind",
                        f"127.0.0.1:{port}", "--log-level", "warning", "--timeout", "300",
                        "gis_service:create_app()"], env=env, cwd=folder, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/login", proc, log)
    return base


def start_gzip_proxy(upstream: str, work: Path, procs: Processes) -> str:
    """nginx with gzip on in front of ``upstream``: its URL."""
    port = free_port()
    root = work / f"nginx-{port}"
    root.mkdir()
    conf = root / "nginx.conf"
    conf.write_text(GZIP_PROXY.format(root=root, port=port, upstream=upstream))
    log = work / f"nginx-{port}.log"
    proc = procs.start([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p",
                        str(root), "-g", "daemon off;"], log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/login", proc, log)
    return base


def kind_of(url: str) -> str:
    """What a response is, for the bytes breakdown."""
    path = url.split("?")[0]
    if path.endswith(".mvt"):
        return "tiles"
    if "/api/" in path:
        return "api"
    if path.endswith((".js", ".css")) or "/static/" in path:
        return "js+css"
    return "html+other"


class Probe:
    """Another user's GET /public/report, every ``every`` seconds while a map loads."""

    def __init__(self, url: str, every: float = 0.5) -> None:
        self.url, self.every, self.times = url, every, []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            t0 = time.perf_counter()
            answer = session.get(self.url, timeout=60)
            if answer.status_code != 200:
                raise RuntimeError(f"/public/report answered {answer.status_code}")
            self.times.append((time.perf_counter() - t0) * 1000)
            self.stop.wait(self.every)

    def __enter__(self) -> Probe:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join()


def load(page: Any, url: str, ready: str, deadline_s: float) -> float | None:
    """Seconds from navigation to ``ready``, or None past ``deadline_s``."""
    start = time.perf_counter()
    try:
        page.goto(url, wait_until="commit", timeout=deadline_s * 1000)
        left = deadline_s - (time.perf_counter() - start)
        page.wait_for_function(ready, timeout=max(left, 0.001) * 1000)
    except PlaywrightTimeout:
        return None
    return time.perf_counter() - start


def browse(browser: Browser, a: Approach, cookies: list[dict[str, Any]],
           report_url: str | None) -> Run:
    """One cold run of ``a`` in a fresh context (and, for the app, a warm second load)."""
    context = browser.new_context(**a.context)
    context.add_cookies(cookies)  # type: ignore[arg-type]
    page = context.new_page()
    page.on("pageerror", lambda e: print(f"  page error: {e}", file=sys.stderr))
    cdp = context.new_cdp_session(page)
    cdp.send("Network.enable")
    urls: dict[str, str] = {}
    got: list[tuple[str, int]] = []
    cdp.on("Network.responseReceived", lambda e: urls.__setitem__(e["requestId"],
                                                                 e["response"]["url"]))
    cdp.on("Network.loadingFinished", lambda e: got.append(
        (urls.get(e["requestId"], ""), int(e["encodedDataLength"]))))

    def totals() -> tuple[int, int, dict[str, int]]:
        page.wait_for_timeout(300)  # the last loadingFinished events
        kinds: dict[str, int] = {}
        for url, size in got:
            kinds[kind_of(url)] = kinds.get(kind_of(url), 0) + size
        return sum(s for _, s in got), len(got), kinds

    probe = Probe(report_url) if report_url else None
    if probe:
        probe.__enter__()
    try:
        ready_s = load(page, a.url, a.ready, TIMEOUT_S)
    finally:
        if probe:
            probe.__exit__()
    shown = page.evaluate(a.shown) if ready_s is not None else None
    transferred, count, kinds = totals()
    run = Run(ready_s, transferred, count, kinds, shown,
              report_ms=probe.times if probe else [])
    if a.app and ready_s is not None:
        got.clear()
        page.goto("about:blank")
        run.warm_s = load(page, a.url, a.ready, TIMEOUT_S)
        run.warm_transferred = totals()[0]
    context.close()
    return run


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """Median and range of the rounds."""
    if not values:
        return "–"
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def kb(n: float) -> str:
    return f"{n / 1e3:,.0f} KB" if n < 1e6 else f"{n / 1e6:,.2f} MB"


def sec(s: float) -> str:
    return f"{s:.2f} s"


def ready_text(runs: list[Run]) -> str:
    done = [r.ready_s for r in runs if r.ready_s is not None]
    late = len(runs) - len(done)
    text = spread(done, sec) if done else ""
    if late:
        text += f"{'; ' if text else ''}{late}× not ready in {TIMEOUT_S:.0f} s"
    return text


def shown_text(run: Run) -> str:
    if run.shown is None:
        return "–"
    if isinstance(run.shown, dict):
        s = run.shown
        return (f"count {s['count']:,}; {s['features']:,} points + {s['clusters']:,} clusters "
                f"of {s['drawn'] - s['features']:,}")
    return f"{int(run.shown):,}"


def table(n: int, approaches: list[Approach]) -> str:
    """The markdown results for one N."""
    lines = [f"N = {n:,} added (hotspots layer: {n + 150:,})", "",
             "| approach | HTML | build | ready, cold (median, range) | transferred, cold "
             "| requests | by kind (last run) | ready, warm cache | transferred, warm "
             "| drawn (last run) |",
             "|---|---:|---:|---:|---:|---:|---|---:|---:|---|"]
    for a in approaches:
        runs = a.runs
        kinds = ", ".join(f"{k} {kb(v)}" for k, v in sorted(runs[-1].by_kind.items()))
        warm = [r.warm_s for r in runs if r.warm_s is not None]
        warm_bytes = [float(r.warm_transferred) for r in runs if r.warm_transferred is not None]
        build = f"{a.build_s:.1f} s" if not a.app else "–"
        lines.append(
            f"| {a.name} | {kb(a.html_bytes)} | {build} | {ready_text(runs)} "
            f"| {spread([float(r.transferred) for r in runs], kb)} "
            f"| {spread([float(r.requests) for r in runs], lambda v: f'{v:.0f}')} | {kinds} "
            f"| {spread(warm, sec)} | {spread(warm_bytes, kb)} | {shown_text(runs[-1])} |")
    reports = [t for a in approaches for r in a.runs for t in r.report_ms]
    if reports:
        lines += ["", f"GET /public/report while the app's map loaded: {len(reports)} requests, "
                  f"median {statistics.median(reports):.0f} ms, max {max(reports):.0f} ms"]
    return "\n".join(lines)


def bench(n: int, args: argparse.Namespace, browser: Browser, work: Path,
          procs: Processes, static_url: str) -> tuple[str, dict[str, list[Run]]]:
    """Prepare N's store and pages, run the interleaved rounds: the table and the runs."""
    points = hotspots(n)
    database = store_file(n, points)
    base = start_app(database, work, procs)
    session = log_in(base)
    proxy = start_gzip_proxy(base, work, procs) if args.gzip else None
    # Cookies belong to the host, not the port: the proxy's pages send the same session.
    cookies = [{"name": c.name, "value": c.value or "", "url": base} for c in session.cookies]
    idle = []
    for _ in range(5):
        t0 = time.perf_counter()
        session.get(f"{base}/public/report", timeout=60).raise_for_status()
        idle.append((time.perf_counter() - t0) * 1000)
    map_html = session.get(f"{base}/map", timeout=60).content
    sample = open_store(str(database)).query_features("hotspots", FeatureQuery(limit=1000))
    every = [Point(f.geometry, f.properties) for f in sample.features
             if not f.properties.get("name", "").startswith("Điểm thử")] + points
    approaches = [Approach("gis_service /map (tiles)", f"{base}/map", APP_READY, APP_SHOWN,
                           DESKTOP, app=True, html_bytes=len(map_html))]
    if proxy:
        approaches.append(Approach("gis_service /map, behind nginx gzip", f"{proxy}/map",
                                   APP_READY, APP_SHOWN, DESKTOP, app=True,
                                   html_bytes=len(map_html)))
    if n >= args.phone_from and args.phone:
        approaches.append(Approach("gis_service /map, phone 390×844", f"{base}/map", APP_READY,
                                   APP_SHOWN, PHONE, app=True, html_bytes=len(map_html)))
    bounds = open_store(str(database)).extent("wards") or BOX
    for fast, name in ((False, "naive GeoJson in MarkerCluster"),
                       (True, "naive FastMarkerCluster")):
        if not fast and n > GEOJSON_MAX:
            continue
        t0 = time.perf_counter()
        html = naive_html(every, bounds, fast)  # type: ignore[arg-type]
        build = time.perf_counter() - t0
        file = work / f"naive-{n}-{int(fast)}.html"
        file.write_text(html, encoding="utf-8")
        del html
        approaches.append(Approach(name, f"{static_url}/{file.name}", NAIVE_READY, NAIVE_SHOWN,
                                   DESKTOP, html_bytes=file.stat().st_size, build_s=build))
    before = uptime()
    for round_ in range(args.rounds):
        k = round_ % len(approaches)
        for a in approaches[k:] + approaches[:k]:
            if a.runs and a.runs[-1].ready_s is None:
                continue  # not ready once: do not spend another 180 s on it
            print(f"N={n:,} round {round_ + 1}/{args.rounds}: {a.name}", file=sys.stderr,
                  flush=True)
            run = browse(browser, a, cookies if a.app else [],
                         f"{base}/public/report" if a.app else None)
            print(f"  ready {run.ready_s} s, {run.transferred:,} B, warm {run.warm_s} s "
                  f"{run.warm_transferred} B; report {[round(t) for t in run.report_ms]} ms",
                  file=sys.stderr, flush=True)
            a.runs.append(run)
    after = uptime()
    text = (f"{table(n, approaches)}\n\nGET /public/report with the server idle (5 requests): "
            f"median {statistics.median(idle):.0f} ms, max {max(idle):.0f} ms  \n"
            f"Load before: `{before}`  \nLoad after: `{after}`\n")
    return text, {a.name: a.runs for a in approaches}


def ratios(results: dict[int, dict[str, list[Run]]]) -> str:
    """The issue's targets, from the medians of the rounds."""
    def med(n: int, name: str) -> float | None:
        done = [r.ready_s for r in results.get(n, {}).get(name, []) if r.ready_s is not None]
        return statistics.median(done) if done else None

    app, fmc = "gis_service /map (tiles)", "naive FastMarkerCluster"
    lines = ["Targets (medians of the rounds):"]
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    a_small, a_large, f_large = med(small, app), med(large, app), med(large, fmc)
    if a_small and a_large:
        lines.append(f"- ready({large:,}) / ready({small:,}) = {a_large / a_small:.2f} "
                     f"(target ≤ 1.2)")
    if a_large:
        lines.append(f"- FastMarkerCluster / app at {large:,}: "
                     + (f"{f_large / a_large:.1f}×" if f_large else
                        f"not ready in {TIMEOUT_S:.0f} s, so > {TIMEOUT_S / a_large:.0f}×")
                     + " (target ≥ 10×)")
    for n in sizes:
        for name, runs in results[n].items():
            if not name.startswith("gis_service") or not runs:
                continue
            cold = statistics.median(r.transferred for r in runs)
            warm = [r.warm_transferred for r in runs if r.warm_transferred is not None]
            lines.append(f"- first view at {n:,}, {name}: {kb(cold)} cold"
                         + (f", {kb(statistics.median(warm))} with a warm cache" if warm else "")
                         + " (target ≤ 300 KB)")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(data.SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-phone", dest="phone", action="store_false",
                        help="skip the phone-size run")
    parser.add_argument("--phone-from", type=int, default=1_000_000,
                        help="smallest N with a phone-size run")
    parser.add_argument("--no-gzip", dest="gzip", action="store_false",
                        help="skip the run behind nginx with gzip")
    args = parser.parse_args()
    import layers

    print(f"code under test: {Path(layers.__file__).parent.parent}", file=sys.stderr)
    rev = subprocess.run(["git", "-C", str(data.HERE), "rev-parse", "--short", "HEAD"],  # noqa: S603,S607
                         capture_output=True, text=True).stdout.strip()
    point_folium_at_vendor()  # the naive pages load the same local Leaflet as the app
    work = Path(tempfile.mkdtemp(prefix="map-ready-"))
    procs = Processes()
    static_url, stop_static = serve(static_server(work))
    results: dict[int, dict[str, list[Run]]] = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for n in args.sizes:
                text, results[n] = bench(n, args, browser, work, procs, static_url)
                print(text, flush=True)
                procs.stop()
            browser.close()
    finally:
        procs.stop()
        stop_static()
    print(ratios(results))
    print(f"\nwork tree HEAD: {rev}")


if __name__ == "__main__":
    main()
