"""Vector tiles per second: gis_service's public tiles against tipg on the same PostGIS.

For each N the points of ``data.py`` are loaded into a PostGIS store (a private cluster, or
GIS_BENCH_PG_DSN) and made public, so the default public map shows them. Two servers answer
the same ~50 tiles at zooms 12-15 over the city:
  (a) gis_service under gunicorn (2 sync workers): /public/tiles/default/points/{z}/{x}/{y}.mvt
      (clusters below zoom 15 from the store's cluster sums; each worker caches tiles);
  (b) tipg under uvicorn (2 workers), on the store's ``public.features`` table:
      /collections/public.features/tiles/WebMercatorQuad/{z}/{x}/{y} (no clustering; at most
      TIPG_MAX_FEATURES_PER_TILE = 10 000 features a tile, every column as a property).
Each round restarts both servers (in turn, alternating who goes first), fetches each tile
once in order ("cold": the first request of each URL after a restart), then runs
``wrk -t2 -c10 -d20s`` rotating through the tiles after a 3 s warm-up ("warm").
Run ``make bench-deps`` first, then ``.venv/bin/python benchmarks/tiles_api.py [N ...]``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import data
import mapbox_vector_tile
import psycopg.conninfo
import requests
from features_api import (
    MAIN_BIN,
    Processes,
    Target,
    free_port,
    lua_script,
    spread,
    uptime,
    wait_for,
    wrk,
)

from layers.store import open_store

TIPG_BIN = data.HERE / ".venv-tipg" / "bin"
ZOOMS = (12, 13, 14, 15)
TILES = 50
LABELS = {"gis_service": "gis_service public tiles, PostGIS (ST_AsMVT, clusters)",
          "tipg": "tipg 1.6.1, public.features, every column",
          "tipg-id": "tipg 1.6.1, public.features, `?properties=id`"}
Tile = tuple[int, int, int]


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int]:
    """The WebMercatorQuad column and row holding a point at zoom z."""
    n = 2 ** z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return x, y


def city_tiles(count: int = TILES) -> list[Tile]:
    """Every city tile at zooms 12 and 13, then seeded random ones at 14 and 15 up to
    ``count``, in a seeded random order (the same list on every run)."""
    x0, y0, x1, y1 = data.CITY
    by_zoom: dict[int, list[Tile]] = {}
    for z in ZOOMS:
        (ax, ay), (bx, by) = tile_of(x0, y1, z), tile_of(x1, y0, z)
        by_zoom[z] = [(z, x, y) for x in range(ax, bx + 1) for y in range(ay, by + 1)]
    rng = random.Random(data.SEED)
    tiles = by_zoom[12] + by_zoom[13]
    left = count - len(tiles)
    tiles += rng.sample(by_zoom[14], left // 2) + rng.sample(by_zoom[15], left - left // 2)
    rng.shuffle(tiles)
    return tiles


def start_ours(dsn: str, work: Path, procs: Processes) -> str:
    """gunicorn, 2 sync workers, on the PostGIS store."""
    port = free_port()
    folder = work / f"ours-{port}"
    folder.mkdir()
    env = {**os.environ, "GIS_DATABASE": dsn, "GIS_SECRET_KEY": "benchmark-secret",
           "GIS_RATELIMIT_DB": str(folder / "ratelimit.sqlite"),
           "GIS_UPLOAD_DIR": str(folder / "uploads")}
    log = work / f"ours-{port}.log"
    proc = procs.start([str(MAIN_BIN / "gunicorn"), "--workers", "2", "--bind",
                        f"127.0.0.1:{port}", "--log-level", "warning",
                        "gis_service:create_app()"], env=env, cwd=folder, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/login", proc, log)
    return base


def start_tipg(dsn: str, work: Path, procs: Processes) -> str:
    """tipg under uvicorn, 2 workers, on the same database."""
    port = free_port()
    parts = psycopg.conninfo.conninfo_to_dict(dsn)
    url = (f"postgresql://{parts.get('user', 'postgres')}@{parts.get('host', '127.0.0.1')}:"
           f"{parts.get('port', 5432)}/{parts['dbname']}")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env |= {"DATABASE_URL": url, "TIPG_DB_SCHEMAS": '["public"]'}
    log = work / f"tipg-{port}.log"
    proc = procs.start([str(TIPG_BIN / "uvicorn"), "tipg.main:app", "--host", "127.0.0.1",
                        "--port", str(port), "--workers", "2", "--log-level", "warning"],
                       env=env, cwd=work, log=log)
    base = f"http://127.0.0.1:{port}"
    wait_for(f"{base}/collections/public.features", proc, log)
    return base


def paths(name: str, tiles: list[Tile]) -> list[str]:
    """The tile paths of a server: tipg with every column as a property (its default), or
    with only the id (closest to ours, which hold the id and the name)."""
    if name.startswith("tipg"):
        query = "?properties=id" if name == "tipg-id" else ""
        return [f"/collections/public.features/tiles/WebMercatorQuad/{z}/{x}/{y}{query}"
                for z, x, y in tiles]
    return [f"/public/tiles/default/{data.SLUG}/{z}/{x}/{y}.mvt" for z, x, y in tiles]


def cold_pass(base: str, tile_paths: list[str]) -> tuple[list[float], list[bytes]]:
    """Each tile once, in order, on a new connection each: milliseconds and bodies."""
    times, bodies = [], []
    for path in tile_paths:
        t0 = time.perf_counter()
        answer = requests.get(base + path, timeout=120)
        times.append((time.perf_counter() - t0) * 1000)
        if answer.status_code != 200:
            raise RuntimeError(f"{base}{path} answered {answer.status_code}")
        bodies.append(answer.content)
    return times, bodies


def tile_content(bodies: list[bytes]) -> tuple[float, float, float]:
    """Mean bytes, features and points counted (a cluster counts its points) per tile."""
    features, points = [], []
    for body in bodies:
        layers = mapbox_vector_tile.decode(body) if body else {}
        feats = [f for layer in layers.values() for f in layer["features"]]
        features.append(len(feats))
        points.append(sum(int(f["properties"].get("count", 1))
                          if f["properties"].get("cluster") else 1 for f in feats))
    return (statistics.mean(len(b) for b in bodies), statistics.mean(features),
            statistics.mean(points))


def bench(n: int, args: argparse.Namespace) -> str:
    """Load N, run the interleaved rounds: the markdown results."""
    work = Path(tempfile.mkdtemp(prefix=f"tiles-{n}-"))
    tiles = city_tiles()
    zooms = {z: sum(1 for t in tiles if t[0] == z) for z in ZOOMS}
    dsn = data.postgis_dsn(n)
    store = open_store(dsn)
    if not store.get_layer(data.SLUG).public:
        store.update_layer(data.SLUG, public=True)
    names = ["gis_service", "tipg", "tipg-id"]
    cold: dict[str, list[list[float]]] = {k: [] for k in names}
    runs: dict[str, list] = {k: [] for k in names}
    content: dict[str, tuple[float, float, float]] = {}
    before = uptime()
    try:
        for round_ in range(args.rounds):
            k = round_ % len(names)
            for name in names[k:] + names[:k]:
                print(f"N={n:,} round {round_ + 1}/{args.rounds}: {name}", file=sys.stderr,
                      flush=True)
                procs = Processes()
                try:
                    start = start_tipg if name.startswith("tipg") else start_ours
                    base = start(dsn, work, procs)
                    target = Target(name, base, paths(name, tiles))
                    times, bodies = cold_pass(base, target.paths)
                    cold[name].append(times)
                    content.setdefault(name, tile_content(bodies))
                    script = lua_script(target, work)
                    wrk(target, script, args.warmup)
                    runs[name].append(wrk(target, script, args.duration))
                    print(f"  cold {sum(times) / 1000:.2f} s for {len(times)} tiles; warm "
                          f"{runs[name][-1].rps:.1f} req/s", file=sys.stderr, flush=True)
                finally:
                    procs.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    after = uptime()
    lines = [f"N = {n:,}; {len(tiles)} tiles ({json.dumps(zooms)} by zoom)", "",
             "| server | cold pass: total (50 tiles) | cold: median tile | cold: max tile "
             "| warm wrk: tiles/s | p50 | p99 | requests | non-2xx | socket errors "
             "| bytes/tile | features/tile | points counted/tile |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name in names:
        rs, cs = runs[name], cold[name]
        size, feats, points = content[name]
        lines.append(
            f"| {LABELS[name]} | {spread([sum(c) / 1000 for c in cs], lambda v: f'{v:.2f} s')} "
            f"| {spread([statistics.median(c) for c in cs], lambda v: f'{v:,.1f} ms')} "
            f"| {spread([max(c) for c in cs], lambda v: f'{v:,.0f} ms')} "
            f"| {spread([r.rps for r in rs], lambda v: f'{v:,.1f}')} "
            f"| {spread([r.p50_ms for r in rs], lambda v: f'{v:,.1f} ms')} "
            f"| {spread([r.p99_ms for r in rs], lambda v: f'{v:,.1f} ms')} "
            f"| {sum(r.requests for r in rs):,} | {sum(r.non_2xx for r in rs)} "
            f"| {sum(r.socket_errors for r in rs)} | {size:,.0f} | {feats:,.0f} | {points:,.0f} |")
    lines.append("")
    for other in names[1:]:
        ratio = [a.rps / b.rps for a, b in zip(runs["gis_service"], runs[other], strict=True)]
        cold_ratio = [sum(b) / sum(a) for a, b in zip(cold["gis_service"], cold[other],
                                                       strict=True)]
        lines.append(f"- against {LABELS[other]}: warm tiles/s, gis_service / it: "
                     f"{spread(ratio, lambda v: f'{v:.1f}×')}; cold pass, its time / "
                     f"gis_service's: {spread(cold_ratio, lambda v: f'{v:.1f}×')}")
    lines += ["", f"Load before: `{before}`  \nLoad after: `{after}`"]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[1_000_000])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=20, help="seconds of each wrk run")
    parser.add_argument("--warmup", type=int, default=3, help="seconds of warm-up before it")
    args = parser.parse_args()
    import layers

    print(f"code under test: {Path(layers.__file__).parent.parent}", file=sys.stderr)
    for n in args.sizes:
        print(bench(n, args), flush=True)


if __name__ == "__main__":
    main()
