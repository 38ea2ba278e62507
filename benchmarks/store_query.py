"""Store query latency: ``store.query_features`` (SQLite, PostGIS) against GDAL/OGR.

For each N the same points (``data.py``) are queried in-process with ``bbox`` and
``limit=1000``, for the 20 ward boxes and the city-wide box, by
  - gis_service's SQLite store and PostGIS store (``query_features(slug, parse_query(...))``,
    the store kept open as a gunicorn worker keeps it, so its connection is reused),
  - pyogrio ``read_dataframe(bbox=..., max_features=1000)`` on the GeoPackage (GDAL 3.12
    wheel, opens the file on each call),
  - osgeo.ogr ``SetSpatialFilterRect`` on the same GeoPackage, opened once (Debian's GDAL
    3.6, in a worker process of benchmarks/.venv-alt that times itself).
The methods take turns box by box (interleaved), for several rounds after a warm-up round.

Run ``make bench-deps`` first, then
``.venv/bin/python benchmarks/store_query.py [N ...]`` (default 10 000, 100 000, 1 000 000).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import data
import numpy as np
import pyogrio

from layers.query import parse_query
from layers.store import Store, open_store

LIMIT = 1000
METHODS = ("sqlite", "postgis", "pyogrio", "ogr")
LABELS = {"sqlite": "gis_service SQLite store", "postgis": "gis_service PostGIS store",
          "pyogrio": "pyogrio.read_dataframe (GDAL 3.12)",
          "ogr": "osgeo.ogr, dataset kept open (GDAL 3.6)"}
Box = data.Box


@dataclass
class Answer:
    """One timed query: milliseconds, features returned, of them outside the box, and the
    number of matches the method claimed (None when it does not say)."""

    ms: float
    returned: int
    outside: int
    matched: int | None = None


@dataclass
class Series:
    """A method's answers, for the ward boxes and for the city box."""

    ward: list[Answer] = field(default_factory=list)
    city: list[Answer] = field(default_factory=list)
    matched_error: list[int] = field(default_factory=list)  # claimed − exact, ward boxes


def outside(xs: np.ndarray, ys: np.ndarray, box: Box) -> int:
    minx, miny, maxx, maxy = box
    return int((~((xs >= minx) & (xs <= maxx) & (ys >= miny) & (ys <= maxy))).sum())


def store_method(store: Store) -> Callable[[Box], Answer]:
    """A query through the store's public API, as the features API makes it."""
    fields = store.get_layer(data.SLUG).fields

    def run(box: Box) -> Answer:
        query = parse_query({"bbox": [data.bbox_text(box)], "limit": [str(LIMIT)]}, fields)
        start = time.perf_counter()
        page = store.query_features(data.SLUG, query)
        ms = (time.perf_counter() - start) * 1000
        xs = np.array([f.geometry.x for f in page.features])
        ys = np.array([f.geometry.y for f in page.features])
        return Answer(ms, len(page.features), outside(xs, ys, box), page.matched)

    return run


def pyogrio_method(gpkg: Path) -> Callable[[Box], Answer]:
    def run(box: Box) -> Answer:
        start = time.perf_counter()
        frame = pyogrio.read_dataframe(gpkg, layer=data.GPKG_LAYER, bbox=box,
                                       max_features=LIMIT)
        ms = (time.perf_counter() - start) * 1000
        return Answer(ms, len(frame), outside(frame.geometry.x.to_numpy(),
                                              frame.geometry.y.to_numpy(), box))

    return run


class OgrWorker:
    """osgeo.ogr in benchmarks/.venv-alt (ogr_worker.py), one query per line."""

    def __init__(self, gpkg: Path) -> None:
        python = data.HERE / ".venv-alt" / "bin" / "python"
        self.proc = subprocess.Popen(  # noqa: S603
            [str(python), str(data.HERE / "ogr_worker.py"), str(gpkg), data.GPKG_LAYER],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def __call__(self, box: Box) -> Answer:
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write(" ".join(map(repr, box)) + f" {LIMIT}\n")
        self.proc.stdin.flush()
        ms, returned, out = self.proc.stdout.readline().split()
        return Answer(float(ms), int(returned), int(out))

    def close(self) -> None:
        assert self.proc.stdin
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


def p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[-1] if len(values) > 1 \
        else values[0]


def table(n: int, series: dict[str, Series], rounds: int) -> str:
    """The markdown results for one N."""
    lines = [f"N = {n:,}; ward boxes: {20 * rounds} queries per method, city box: {rounds}",
             "",
             "| method | ward median | ward p95 | city median | city max | returned (ward / city) "
             "| outside box | numberMatched − exact (ward, min…max) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, s in series.items():
        ward = [a.ms for a in s.ward]
        city = [a.ms for a in s.city]
        err = (f"{min(s.matched_error):+d} … {max(s.matched_error):+d}" if s.matched_error
               else "–")
        lines.append(
            f"| {LABELS[name]} | {statistics.median(ward):,.1f} ms | {p95(ward):,.1f} ms "
            f"| {statistics.median(city):,.1f} ms | {max(city):,.1f} ms "
            f"| {statistics.mean(a.returned for a in s.ward):,.0f} / "
            f"{statistics.mean(a.returned for a in s.city):,.0f} "
            f"| {sum(a.outside for a in s.ward + s.city)} | {err} |")
    ratios = []
    for alternative in ("ogr", "pyogrio"):
        for name in ("sqlite", "postgis"):
            if name in series and alternative in series:
                ward = (p95([a.ms for a in series[name].ward])
                        / p95([a.ms for a in series[alternative].ward]))
                city = (statistics.median(a.ms for a in series[name].city)
                        / statistics.median(a.ms for a in series[alternative].city))
                ratios.append(f"{LABELS[name]} / {alternative}: ward p95 {ward:.2f}×, "
                              f"city median {city:.2f}×")
    return "\n".join(lines) + ("\n\n" + "  \n".join(ratios) if ratios else "")


def bench(n: int, names: list[str], rounds: int) -> str:
    """Interleave the methods box by box: one warm-up round, then ``rounds`` measured."""
    print(f"N={n:,}: preparing data", file=sys.stderr, flush=True)
    gpkg = data.gpkg_path(n)
    frame = pyogrio.read_dataframe(gpkg, layer=data.GPKG_LAYER, columns=[])
    xs, ys = frame.geometry.x.to_numpy(), frame.geometry.y.to_numpy()
    boxes = data.ward_boxes()
    exact = [len(xs) - outside(xs, ys, b) for b in boxes]
    methods: dict[str, Callable[[Box], Answer]] = {}
    worker = None
    if "sqlite" in names:
        methods["sqlite"] = store_method(open_store(data.sqlite_url(n)))
    if "postgis" in names:
        methods["postgis"] = store_method(open_store(data.postgis_dsn(n)))
    if "pyogrio" in names:
        methods["pyogrio"] = pyogrio_method(gpkg)
    if "ogr" in names:
        methods["ogr"] = worker = OgrWorker(gpkg)
    series = {name: Series() for name in methods}
    order = list(methods)
    try:
        for round_ in range(rounds + 1):
            print(f"N={n:,}: round {round_}/{rounds}" + (" (warm-up)" if not round_ else ""),
                  file=sys.stderr, flush=True)
            for i, box in enumerate([*boxes, data.CITY]):
                order = order[1:] + order[:1]  # who goes first changes at every box
                for name in order:
                    answer = methods[name](box)
                    if not round_:
                        continue
                    if i < len(boxes):
                        series[name].ward.append(answer)
                        if answer.matched is not None:
                            series[name].matched_error.append(answer.matched - exact[i])
                    else:
                        series[name].city.append(answer)
    finally:
        if worker:
            worker.close()
    return table(n, series, rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("sizes", nargs="*", type=int, default=list(data.SIZES))
    parser.add_argument("--rounds", type=int, default=5,
                        help="measured rounds over the 21 boxes (after one warm-up)")
    parser.add_argument("--methods", default=",".join(METHODS),
                        help=f"comma-separated, of {', '.join(METHODS)}")
    args = parser.parse_args()
    names = [m for m in args.methods.split(",") if m]
    unknown = set(names) - set(METHODS)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}")
    import layers

    print(f"code under test: {Path(layers.__file__).parent.parent}", file=sys.stderr)
    for n in args.sizes:
        print(bench(n, names, args.rounds), flush=True)
        print(file=sys.stderr)


if __name__ == "__main__":
    main()
