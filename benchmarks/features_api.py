"""Features API throughput: gis_service (SQLite, PostGIS) against pygeoapi and nginx, wrk.

For each N the same points (``data.py``) are served by
  (a) gis_service under gunicorn (2 workers) on an SQLite store,
  (b) the same on a PostGIS store (a private cluster as the tests start, or GIS_BENCH_PG_DSN),
  (c) pygeoapi 0.21 under gunicorn (2 workers), OGR provider on the GeoPackage,
  (d) nginx serving gis_service's 20 answers as static files (the machine's ceiling).
Each is loaded with ``wrk -t2 -c10 -d20s --latency`` rotating through the 20 ward boxes with
``limit=1000``, after a 3 s warm-up, in interleaved rounds. gis_service's API needs a login:
one inspector account logs in through the real form and wrk sends its session cookie.

Run ``make bench-deps`` first, then
``.venv/bin/python benchmarks/features_api.py [N ...]`` (default 10 000, 100 000, 1 000 000).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import data
import orjson
import requests
from map_page import PASSWORD, USER, log_in
from werkzeug.security import generate_password_hash

from layers.store import open_store

ALT_BIN = data.HERE / ".venv-alt" / "bin"
MAIN_BIN = Path(sys.executable).parent
TARGETS = ("sqlite", "postgis", "pygeoapi", "nginx")
LABELS = {"sqlite": "gis_service, SQLite", "postgis": "gis_service, PostGIS",
          "pygeoapi": "pygeoapi 0.21, OGR on GeoPackage", "nginx": "nginx, static answers"}
LIMIT = 1000
PYGEOAPI_CONFIG = """\
server:
  bind: {{host: 127.0.0.1, port: {port}}}
  url: http://127.0.0.1:{port}
  mimetype: application/json; charset=UTF-8
  encoding: utf-8
  languages: [en-US]
  pretty_print: false
  gzip: false
  limits: {{default_items: 10, max_items: 10000}}
  map: {{url: 'https://tile.openstreetmap.org/{{z}}/{{x}}/{{y}}.png', attribution: OSM}}
logging: {{level: ERROR}}
metadata:
  identification: {{title: bench, description: bench, keywords: [bench], url: 'http://x',
                   terms_of_service: 'http://x'}}
  license: {{name: CC-BY 4.0, url: 'http://x'}}
  provider: {{name: bench}}
  contact: {{name: bench}}
resources:
  points:
    type: collection
    title: points
    description: benchmark points
    keywords: [points]
    extents:
      spatial: {{bbox: [106.755, 11.461, 106.933, 11.577],
                crs: 'http://www.opengis.net/def/crs/OGC/1.3/CRS84'}}
    providers:
      - type: feature
        name: OGR
        id_field: id
        layer: points
        data:
          source_type: GPKG
          source: {gpkg}
          source_capabilities: {{paging: true}}
"""
NGINX_CONFIG = """\
worker_processes 2;
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
  types {{ application/geo+json json; }}
  server {{ listen 127.0.0.1:{port}; root {root}/static; }}
}}
"""
ROTATE_LUA = """\
local paths = {{ {paths} }}
local i = 0
{headers}
request = function()
  i = i % #paths + 1
  return wrk.format("GET", paths[i])
end
"""


@dataclass
class Target:
    """A running server and the 20 paths (one per ward box) wrk rotates through."""

    name: str
    base: str
    paths: list[str]
    headers: dict[str, str] = field(default_factory=dict)
    bytes_per_answer: float = 0.0
    features_per_answer: float = 0.0
    outside: int = 0  # features of the 20 answers lying outside their box
    runs: list[WrkRun] = field(default_factory=list)


@dataclass
class WrkRun:
    """What one wrk run printed."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Processes:
    """The servers this run started, each in a process group of its own, stopped at the end."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[bytes]] = []

    def start(self, command: list[str], *, env: dict[str, str] | None = None,
              cwd: Path | None = None, log: Path) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            proc = subprocess.Popen(command, env=env, cwd=cwd, stdout=out,  # noqa: S603
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.started.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.started:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.started.clear()


def wait_for(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 90) -> None:
    """Wait until ``url`` answers at all; a server that exits or never answers is fatal."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            requests.get(url, timeout=5, allow_redirects=False)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def gis_service(name: str, database: str, work: Path, procs: Processes) -> Target:
    """gunicorn, 2 workers, on ``database``; logged in as an inspector made in the store."""
    store = open_store(database)
    if store.get_user(USER) is None:
        store.create_user(USER, generate_password_hash(PASSWORD), "inspector")
    port = free_port()
    folder = work / name
    folder.mkdir()
    env = {**os.environ, "GIS_DATABASE": database, "GIS_SECRET_KEY": "benchmark-secret",
           "GIS_RATELIMIT_DB": str(folder / "ratelimit.sqlite"),
           "GIS_UPLOAD_DIR": str(folder / "uploads")}
    log = work / f"{name}.log"
    proc = procs.start([str(MAIN_BIN / "gunicorn"), "--workers", "2", "--bind",
                        f"127.0.0.1:{port}", "--log-level", "warning",
                        "gis_service:create_app()"], env=env, cwd=folder, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/login", proc, log)
    session = log_in(base)
    cookie = "; ".join(f"{c.name}={c.value}" for c in session.cookies)
    paths = [f"/api/layers/{data.SLUG}/features?bbox={data.bbox_text(b)}&limit={LIMIT}"
             for b in data.ward_boxes()]
    return Target(name, base, paths, {"Cookie": cookie})


def pygeoapi(n: int, work: Path, procs: Processes) -> Target:
    """pygeoapi's Flask app under gunicorn, 2 workers, OGR provider on the GeoPackage."""
    port = free_port()
    folder = work / "pygeoapi"
    folder.mkdir()
    config, openapi = folder / "config.yml", folder / "openapi.yml"
    config.write_text(PYGEOAPI_CONFIG.format(port=port, gpkg=data.gpkg_path(n)))
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"PYGEOAPI_CONFIG": str(config), "PYGEOAPI_OPENAPI": str(openapi)}
    for command in (["config", "validate", "-c", str(config)],
                    ["openapi", "generate", str(config), "--output-file", str(openapi)]):
        done = subprocess.run([str(ALT_BIN / "pygeoapi"), *command], env=env,  # noqa: S603
                              capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(f"pygeoapi {command[0]} failed:\n{done.stderr[-3000:]}")
    log = work / "pygeoapi.log"
    proc = procs.start([str(ALT_BIN / "gunicorn"), "--workers", "2", "--bind",
                        f"127.0.0.1:{port}", "--log-level", "warning",
                        "pygeoapi.flask_app:APP"], env=env, cwd=folder, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/conformance?f=json", proc, log)
    paths = [f"/collections/points/items?f=json&limit={LIMIT}&bbox={data.bbox_text(b)}"
             for b in data.ward_boxes()]
    return Target("pygeoapi", base, paths)


def nginx(answers: list[bytes], work: Path, procs: Processes) -> Target:
    """nginx (2 workers) serving ``answers`` as files: what this machine can do at best."""
    root = work / "nginx"
    (root / "static").mkdir(parents=True)
    for i, body in enumerate(answers):
        (root / "static" / f"{i}.json").write_bytes(body)
    for folder in (work, root, root / "static"):
        folder.chmod(0o755)  # nginx's workers run as nobody
    port = free_port()
    conf = root / "nginx.conf"
    conf.write_text(NGINX_CONFIG.format(root=root, port=port))
    log = work / "nginx.log"
    proc = procs.start([shutil.which("nginx") or "/usr/sbin/nginx", "-c", str(conf), "-p",
                        str(root), "-g", "daemon off;"], log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/0.json", proc, log)
    return Target("nginx", base, [f"/{i}.json" for i in range(len(answers))])


def check_answers(target: Target) -> list[bytes]:
    """Fetch the 20 answers once: each must be a 200 FeatureCollection. Records their mean
    size and feature count, and how many features lie outside the requested box."""
    bodies, counts, outside = [], [], 0
    for path, box in zip(target.paths, data.ward_boxes(), strict=True):
        answer = requests.get(target.base + path, headers=target.headers, timeout=120,
                              allow_redirects=False)
        if answer.status_code != 200:
            raise RuntimeError(f"{target.name}: {path} answered {answer.status_code}")
        body = orjson.loads(answer.content)
        bodies.append(answer.content)
        counts.append(len(body["features"]))
        minx, miny, maxx, maxy = box
        outside += sum(1 for f in body["features"]
                       if not (minx <= f["geometry"]["coordinates"][0] <= maxx
                               and miny <= f["geometry"]["coordinates"][1] <= maxy))
    target.bytes_per_answer = statistics.mean(len(b) for b in bodies)
    target.features_per_answer = statistics.mean(counts)
    target.outside = outside
    return bodies


def lua_script(target: Target, work: Path) -> Path:
    """The wrk script that cycles through the target's 20 paths with its headers."""
    paths = ", ".join(f'"{p}"' for p in target.paths)
    headers = "\n".join(f'wrk.headers["{k}"] = "{v}"' for k, v in target.headers.items())
    script = work / f"rotate-{target.name}.lua"
    script.write_text(ROTATE_LUA.format(paths=paths, headers=headers))
    return script


UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(value) * UNITS_MS[unit]


def wrk(target: Target, script: Path, seconds: int) -> WrkRun:
    """One ``wrk -t2 -c10 --latency`` run of ``seconds`` against the target."""
    out = subprocess.run(["wrk", "-t2", "-c10", f"-d{seconds}s", "--timeout", "30s",  # noqa: S603,S607
                          "--latency", "-s", str(script), target.base], capture_output=True,
                         text=True, check=True).stdout

    def grab(pattern: str, default: str = "0") -> str:
        found = re.search(pattern, out)
        return found[1] if found else default

    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                       out)
    return WrkRun(rps=float(grab(r"Requests/sec:\s+([\d.]+)")),
                  p50_ms=_ms(grab(r"\s50%\s+(\S+)", "0ms")),
                  p99_ms=_ms(grab(r"\s99%\s+(\S+)", "0ms")),
                  requests=int(grab(r"(\d+) requests in")),
                  non_2xx=int(grab(r"Non-2xx or 3xx responses: (\d+)")),
                  socket_errors=sum(int(e) for e in errors.groups()) if errors else 0)


def still_logged_in(target: Target) -> None:
    """A 302 to /login would count as a success in wrk: check the session held."""
    answer = requests.get(target.base + target.paths[0], headers=target.headers, timeout=120,
                          allow_redirects=False)
    if answer.status_code != 200:
        raise RuntimeError(f"{target.name} answered {answer.status_code} after its run")


def spread(values: list[float], fmt: Callable[[float], str]) -> str:
    """Median of the rounds, and their range when there is more than one."""
    if len(values) == 1:
        return fmt(values[0])
    return f"{fmt(statistics.median(values))} ({fmt(min(values))}–{fmt(max(values))})"


def table(n: int, targets: list[Target]) -> str:
    """The markdown results for one N."""
    base = next((t for t in targets if t.name == "pygeoapi"), None)
    lines = [f"N = {n:,}", "",
             "| server | req/s | p50 | p99 | requests | non-2xx | socket errors "
             "| bytes/answer | features/answer | outside box | × pygeoapi |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for t in targets:
        ratio = "–"
        if base and t is not base:
            ratio = spread([r.rps / b.rps for r, b in zip(t.runs, base.runs, strict=True)],
                           lambda v: f"{v:.2f}×")
        lines.append(
            f"| {LABELS[t.name]} | {spread([r.rps for r in t.runs], lambda v: f'{v:,.1f}')} "
            f"| {spread([r.p50_ms for r in t.runs], lambda v: f'{v:,.1f} ms')} "
            f"| {spread([r.p99_ms for r in t.runs], lambda v: f'{v:,.1f} ms')} "
            f"| {sum(r.requests for r in t.runs):,} | {sum(r.non_2xx for r in t.runs)} "
            f"| {sum(r.socket_errors for r in t.runs)} | {t.bytes_per_answer:,.0f} "
            f"| {t.features_per_answer:,.0f} | {t.outside} | {ratio} |")
    return "\n".join(lines)


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True,  # noqa: S603,S607
                          text=True).stdout.strip()


def bench(n: int, names: list[str], args: argparse.Namespace) -> str:
    """Start the servers for N, run the interleaved rounds, stop them: the results table."""
    work = Path(tempfile.mkdtemp(prefix=f"features-api-{n}-"))
    procs = Processes()
    try:
        targets: list[Target] = []
        print(f"N={n:,}: preparing data and servers", file=sys.stderr, flush=True)
        data.gpkg_path(n)
        if "sqlite" in names:
            targets.append(gis_service("sqlite", data.sqlite_url(n), work, procs))
        if "postgis" in names:
            targets.append(gis_service("postgis", data.postgis_dsn(n), work, procs))
        if "pygeoapi" in names:
            targets.append(pygeoapi(n, work, procs))
        answers = [check_answers(t) for t in targets]
        if "nginx" in names:
            static = nginx(answers[0] if answers else [b"{}"] * 20, work, procs)
            check_answers(static)
            targets.append(static)
        scripts = {t.name: lua_script(t, work) for t in targets}
        before = uptime()
        for round_ in range(args.rounds):
            # Each round starts with another server, so none always runs first or last.
            order = targets[round_ % len(targets):] + targets[:round_ % len(targets)]
            for t in order:
                print(f"N={n:,} round {round_ + 1}/{args.rounds}: {t.name}", file=sys.stderr,
                      flush=True)
                wrk(t, scripts[t.name], args.warmup)
                t.runs.append(wrk(t, scripts[t.name], args.duration))
                if t.headers:
                    still_logged_in(t)
        after = uptime()
        return (f"{table(n, targets)}\n\nLoad before: `{before}`  \n"
                f"Load after: `{after}`\n")
    finally:
        procs.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(data.SIZES))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before it")
    parser.add_argument("--targets", default=",".join(TARGETS),
                        help=f"comma-separated, of {', '.join(TARGETS)}")
    args = parser.parse_args()
    names = [t for t in args.targets.split(",") if t]
    unknown = set(names) - set(TARGETS)
    if unknown:
        parser.error(f"unknown targets {sorted(unknown)}")
    import layers

    print(f"code under test: {Path(layers.__file__).parent.parent}", file=sys.stderr)
    for n in args.sizes:
        print(bench(n, names, args), flush=True)


if __name__ == "__main__":
    main()
