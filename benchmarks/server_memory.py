"""Server memory as the layer grows: gunicorn workers' RSS at N = 10k, 100k and 1M points.

Issue 9 asks that a worker's memory stays flat whatever the layer holds: a request reads
what it returns, so serving a million points should cost no more memory than serving ten
thousand. For each N this starts gis_service as ``features_api.py`` does (gunicorn, 2
workers, SQLite store, an inspector's session), reads each worker's RSS from /proc after
start-up, then after the 20 ward-box pages (``limit=1000``) and a 10 s wrk run over them,
and after 50 vector tiles at zooms 12–15 over the city.

    .venv/bin/python benchmarks/server_memory.py [N ...]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path

import data
import requests
from features_api import Processes, check_answers, gis_service, lua_script, uptime, wrk


def worker_rss_mib(master_pid: int) -> list[float]:
    """The resident memory of the gunicorn master's worker processes, in MiB."""
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    sizes = []
    for pid in children:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                sizes.append(int(line.split()[1]) / 1024)
    return sizes


def city_tiles() -> list[str]:
    """50 tile paths over the city box, zooms 12 to 15."""
    minx, miny, maxx, maxy = data.CITY
    paths = []
    for z in (12, 13, 14, 15):
        n = 1 << z

        def column(lon: float, n: int = n) -> int:
            return int((lon + 180) / 360 * n)

        def row(lat: float, n: int = n) -> int:
            return int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)

        for x in range(column(minx), column(maxx) + 1):
            for y in range(row(maxy), row(miny) + 1):
                paths.append(f"/tiles/{data.SLUG}/{z}/{x}/{y}.mvt")
    step = max(1, len(paths) // 50)
    return paths[::step][:50]


def measure(n: int, work: Path) -> list[str]:
    procs = Processes()
    try:
        target = gis_service(f"sqlite-{n}", data.sqlite_url(n), work, procs)
        master = procs.started[-1].pid
        started = worker_rss_mib(master)
        check_answers(target)
        wrk(target, lua_script(target, work), 10)
        paged = worker_rss_mib(master)
        for path in city_tiles():
            answer = requests.get(target.base + path, headers=target.headers, timeout=120)
            answer.raise_for_status()
        tiled = worker_rss_mib(master)
    finally:
        procs.stop()

    def mib(values: list[float]) -> str:
        return " / ".join(f"{v:.0f}" for v in sorted(values))

    return [f"| {n:,} | {mib(started)} | {mib(paged)} | {mib(tiled)} |"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    lines = ["| N | workers' RSS after start-up, MiB | after 20 pages and 10 s of wrk"
             " | after 50 tiles |", "|---:|---:|---:|---:|"]
    before = uptime()
    with tempfile.TemporaryDirectory() as folder:
        for n in args.sizes:
            print(f"N={n:,}", file=sys.stderr)
            lines += measure(n, Path(folder))
    print("\n".join(lines))
    print(f"\nLoad before: `{before}`; after: `{uptime()}`")


if __name__ == "__main__":
    main()
