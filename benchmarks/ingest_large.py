"""Large-import benchmark: `gis-service layers import` of a 1M-point GeoPackage against
ogr2ogr, interleaved, with each process's wall time and peak memory.

The GeoPackage is benchmarks/data.py's (uniform random points over the city, an ``id``,
a Vietnamese name, a category and a severity; GeoPackage 1.3, written with pyogrio). Each
round runs, one after the other, in fresh processes and into fresh output files:
- *ours*: ``gis-service layers import points.gpkg --slug points --yes`` into a new SQLite
  store (the whole pipeline: preview, then publish; the ``id`` column is the guessed key);
- *ogr2ogr GPKG*: ``ogr2ogr -f GPKG out.gpkg points.gpkg`` (with its R*Tree index);
- *ogr2ogr SQLite*: ``ogr2ogr -f SQLite out.sqlite points.gpkg`` (no spatial index);
- *store alone*: the same points handed to the SQLite store's ``create_layer`` straight from
  pyogrio, 10 000 at a time, without the pipeline: what the store itself costs;
- *app start*: ``gis-service layers list`` on an empty store: the command's own start-up;
- with ``--before TREE`` (a checkout of an older commit, e.g. ``git archive HEAD~1 | tar -x
  -C TREE``, with ``gis_service/assets/node_modules`` linked in), *before*: the same
  import by that tree's code (``PYTHONPATH=TREE``).
Peak memory is each child's own ``ru_maxrss`` (``os.wait4``); this script imports no large
library itself, since a child's count starts from the parent it was forked from. Not a test.
Run: ``.venv/bin/python benchmarks/ingest_large.py [--points N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
CLI = [sys.executable, "-c", "from gis_service.cli import main; main()"]


def child(command: list[str], env: dict[str, str] | None = None, cwd: str | None = None
          ) -> tuple[float, float]:
    """Run ``command``; its wall seconds and peak resident memory in MiB."""
    start = time.perf_counter()
    process = subprocess.Popen(command, env={**os.environ, **(env or {})}, cwd=cwd,  # noqa: S603
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{command[:4]} failed: {process.stderr.read().decode()[-2000:]}")
    process.stderr.close()
    return seconds, usage.ru_maxrss / 1024


def feed_store(source: str, database: str) -> None:
    """The store alone: create_layer over the points read 10 000 at a time."""
    import numpy as np
    import pyogrio

    from benchmarks.data import FIELDS, GPKG_LAYER
    from layers.store import open_store

    def items():  # noqa: ANN202 - a generator of (geometry, properties)
        skip = 0
        while len(part := pyogrio.read_dataframe(source, layer=GPKG_LAYER, skip_features=skip,
                                                 max_features=10_000)):
            skip += len(part)
            yield from zip(np.asarray(part.geometry.values), ({
                "name": n, "category": c, "severity": int(s)} for n, c, s in zip(
                    part["name"], part["category"], part["severity"], strict=True)),
                strict=True)

    open_store(database).create_layer("points", "points", "generic", geometry_type="Point",
                                      fields=FIELDS, features=items())


def spread(values: list[float], unit: str = "") -> str:
    return (f"{statistics.median(values):.2f}{unit} ({min(values):.2f}–{max(values):.2f})"
            if len(values) > 1 else f"{values[0]:.2f}{unit}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--before", metavar="TREE", help="also time this tree's import")
    parser.add_argument("--feed-store", nargs=2, metavar=("GPKG", "DATABASE"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.feed_store:
        feed_store(*args.feed_store)
        return
    source = subprocess.run(  # noqa: S603 - made in a child: this process stays small
        [sys.executable, "-c", f"from benchmarks.data import gpkg_path; print(gpkg_path("
         f"{args.points}))"], cwd=HERE.parent, check=True, capture_output=True,
        text=True).stdout.strip()
    print(f"{args.points:,} points in {source} ({Path(source).stat().st_size / 2**20:.0f} MiB);"
          f" load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores at the start")
    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        jobs = {
            "ours: gis-service layers import": lambda i: child(
                [*CLI, "layers", "import", source, "--slug", "points", "--yes"],
                {"GIS_DATABASE": str(work / f"ours-{i}.sqlite"), "GIS_CLI_LANG": "en"}),
            "ogr2ogr -f GPKG": lambda i: child(
                ["ogr2ogr", "-f", "GPKG", str(work / f"ogr-{i}.gpkg"), source]),
            "ogr2ogr -f SQLite": lambda i: child(
                ["ogr2ogr", "-f", "SQLite", str(work / f"ogr-{i}.sqlite"), source]),
            "store alone (create_layer)": lambda i: child(
                [sys.executable, __file__, "--feed-store", source,
                 str(work / f"store-{i}.sqlite")]),
            "app start (layers list)": lambda i: child(
                [*CLI, "layers", "list"], {"GIS_DATABASE": str(work / f"empty-{i}.sqlite")}),
        }
        if args.before:
            jobs["before: the same import by --before's code"] = lambda i: child(
                [*CLI, "layers", "import", source, "--slug", "points", "--yes"],
                {"GIS_DATABASE": str(work / f"before-{i}.sqlite"), "GIS_CLI_LANG": "en",
                 "PYTHONPATH": args.before}, cwd=args.before)  # python -c puts cwd first
        for i in range(args.runs):
            for name, job in jobs.items():
                results.setdefault(name, []).append(job(i))
                print(f"  run {i + 1} {name}: {results[name][-1][0]:.2f} s, "
                      f"{results[name][-1][1]:.0f} MiB", file=sys.stderr)
            for file in work.iterdir():  # 1M-point outputs are large: keep /tmp small
                file.unlink()
    print(f"load average {os.getloadavg()[0]:.2f} at the end\n")
    print("| process | wall time, s: median (min–max) | peak RSS, MiB: median (min–max) |\n"
          "|---|---:|---:|")
    for name, runs in results.items():
        print(f"| {name} | {spread([t for t, _ in runs])} | {spread([m for _, m in runs])} |")
    ours = results["ours: gis-service layers import"]
    others = [n for n in results if n.startswith(("ogr2ogr", "store", "before"))]
    for other in others:
        ratios = [a[0] / b[0] for a, b in zip(ours, results[other], strict=True)]
        print(f"\nours / {other}, time, per round: {spread(ratios, '×')}", end="")
    print()


if __name__ == "__main__":
    main()
