"""Import benchmark: our preview_upload + publish against GDAL's ogr2ogr, side by side.

Generates seeded VN-2000 / TM-3 106-15 (EPSG:9212) shapefiles with Windows-1258 text and no
.cpg (100 000 points, 20 000 polygons with ~1 % bow-ties), zips them as a planner would, then
times each importer (median of 3) and breaks our time down by pipeline stage. Not a test.
Run: ``.venv/bin/python benchmarks/ingest.py [--points N] [--polygons N] [--runs N]``.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import os
import platform
import pstats
import statistics
import subprocess
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from unittest import mock

import geopandas as gpd
import numpy as np
import pyogrio
import pyproj
import shapely
from pyproj import Geod

from layers.ingest import pipeline
from layers.ingest.encoding import encode
from layers.store import SQLiteStore

BOX = (106.76, 11.47, 106.93, 11.57)
WARDS = ("Tân Phú", "Tân Đồng", "Tân Bình", "Tân Xuân", "Tân Thiện", "Tiến Thành",
         "Tiến Hưng", "Tân Thành")
STREETS = ("Phú Riềng Đỏ", "Hùng Vương", "Lê Quý Đôn", "Nguyễn Huệ", "Trần Hưng Đạo",
           "Đồng Xoài", "Lý Thường Kiệt", "Quốc lộ 14")
KINDS = ("Điểm tập kết rác", "Thùng rác công cộng", "Trạm trung chuyển")
STAGES = {
    "read (zip checks + pyogrio)": ("open_upload", "expand_layers", "read_dataset"),
    "decode (detect + re-decode)": ("_settle_encoding", "_decode_text"),
    "crs/reproject": ("diagnose_crs", "_to_wgs84"),
    "validate (clean + outside)": ("clean_geometries", "outside_count"),
    "infer types": ("infer_fields",),
    "publish prep (_features)": ("_features", "place_wards"),
}


@functools.cache
def cp1258(text: str) -> str:
    """Windows-1258 bytes of ``text`` as a Latin-1 str, for pyogrio's latin1 writer."""
    return encode(text, "cp1258").decode("latin-1")


def attributes(rng: np.random.Generator, n: int) -> dict[str, list[object]]:
    """Vietnamese name, ward, integer, float and dd/mm/yyyy date columns."""
    kinds, streets = rng.integers(len(KINDS), size=n), rng.integers(len(STREETS), size=n)
    days, months = rng.integers(1, 29, n), rng.integers(1, 13, n)
    years = rng.integers(2015, 2025, n)
    return {
        "ten": [cp1258(f"{KINDS[k]} đường {STREETS[s]} số") + f" {i}"
                for i, (k, s) in enumerate(zip(kinds, streets, strict=True), 1)],
        "phuong": [cp1258(WARDS[w]) for w in rng.integers(len(WARDS), size=n)],
        "so_luong": rng.integers(0, 500, n),
        "dien_tich": np.round(rng.uniform(1, 5000, n), 2),
        "ngay": [f"{d:02d}/{m:02d}/{y}" for d, m, y in zip(days, months, years, strict=True)],
    }


def polygons(rng: np.random.Generator, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """~50 m squares and hexagons around (x, y); about 1 % are self-intersecting bow-ties."""
    out = []
    for cx, cy, shape in zip(x, y, rng.random(len(x)), strict=True):
        if shape < 0.01:
            ring = [(0, 0), (50, 50), (50, 0), (0, 50)]  # bow-tie: invalid on purpose
        elif shape < 0.5:
            ring = [(0, 0), (50, 0), (50, 50), (0, 50)]
        else:
            a = np.linspace(0, 2 * np.pi, 7)[:-1]
            ring = list(zip(25 * np.cos(a), 25 * np.sin(a), strict=True))
        out.append(shapely.Polygon([(cx + dx, cy + dy) for dx, dy in ring]))
    return np.array(out, dtype=object)


def make_zip(folder: Path, name: str, n: int, seed: int, polygon: bool) -> Path:
    """Write one seeded EPSG:9212 shapefile (cp1258 text, no .cpg) and zip it."""
    rng = np.random.default_rng(seed)
    lon, lat = rng.uniform(BOX[0], BOX[2], n), rng.uniform(BOX[1], BOX[3], n)
    x, y = pyproj.Transformer.from_crs(4326, 9212, always_xy=True).transform(lon, lat)
    geoms = polygons(rng, x, y) if polygon else shapely.points(x, y)
    frame = gpd.GeoDataFrame(attributes(rng, n), geometry=geoms, crs=9212)
    shp = folder / f"{name}.shp"
    pyogrio.write_dataframe(frame, shp, encoding="latin1")
    shp.with_suffix(".cpg").unlink(missing_ok=True)
    shp.with_suffix(".prj").write_text(pyproj.CRS.from_epsg(9212).to_wkt("WKT1_ESRI"))
    archive = folder / f"{name}.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for ext in (".shp", ".shx", ".dbf", ".prj"):
            zf.write(shp.with_suffix(ext), f"{name}{ext}")
    return archive


def ours(archive: Path, store_file: Path) -> pipeline.Preview:
    """Our full import: preview_upload then publish into a fresh SQLite store file."""
    preview = pipeline.preview_upload(archive, archive.name, pipeline.ReadOptions())
    spec = pipeline.PublishSpec(archive.stem, archive.stem, kind="generic", confirmed=True)
    pipeline.publish(SQLiteStore(store_file), preview, spec)
    return preview


def ogr2ogr(source: str, out: Path) -> None:
    """GDAL's reference conversion of the same data to a GeoPackage in WGS 84."""
    subprocess.run(["ogr2ogr", "-f", "GPKG", "-t_srs", "EPSG:4326", str(out), source],  # noqa: S603,S607
                   check=True, capture_output=True)


def timed_runs(job: Callable[[Path], object], outputs: list[Path]) -> list[float]:
    """Wall-clock seconds of ``job(output)`` for each fresh output path."""
    times = []
    for output in outputs:
        start = time.perf_counter()
        job(output)
        times.append(time.perf_counter() - start)
    return times


@contextmanager
def stage_clock() -> Iterator[dict[str, float]]:
    """Patch the pipeline's stage functions (and store insert) with wall-clock accumulators."""
    totals = dict.fromkeys([*STAGES, "store insert (create_layer)"], 0.0)

    def timed(stage: str, fn: Callable[..., object]) -> Callable[..., object]:
        def wrapper(*args: object, **kwargs: object) -> object:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                totals[stage] += time.perf_counter() - start
        return wrapper

    with ExitStack() as stack:
        for stage, names in STAGES.items():
            for name in names:
                patched = timed(stage, getattr(pipeline, name))
                stack.enter_context(mock.patch.object(pipeline, name, patched))
        create = timed("store insert (create_layer)", SQLiteStore.create_layer)
        stack.enter_context(mock.patch.object(SQLiteStore, "create_layer", create))
        yield totals


def hotspots(archive: Path, store_file: Path, top: int = 15) -> list[tuple[str, float, float]]:
    """Project functions (plus the hottest C/library ones) by cumulative time under cProfile."""
    profiler = cProfile.Profile()
    profiler.runcall(ours, archive, store_file)
    rows = []
    for (path, line, func), (_, _, tottime, cumtime, _) in pstats.Stats(profiler).stats.items():
        where = f"{Path(path).parent.name}/{Path(path).name}:{line}" if line else path
        rows.append((f"{func} ({where})", cumtime, tottime))
    mine = [r for r in rows if any(f"({d}/" in r[0] for d in ("layers", "ingest", "store"))]
    by_self = sorted(rows, key=lambda r: -r[2])[:top]
    return sorted(mine, key=lambda r: -r[1])[:top] + [("-- by own time --", 0, 0), *by_self]


def ogr_offset_m(preview: pipeline.Preview, gpkg: Path) -> tuple[float, float, str]:
    """Median/max metres between our and ogr2ogr's first 1000 positions; its 1st name (UTF-8)."""
    theirs = pyogrio.read_dataframe(gpkg, max_features=1000, encoding="latin1")
    a = shapely.bounds(preview.frame.geometry.values[:1000])  # box centres: bow-ties have
    b = shapely.bounds(theirs.geometry.values)  # no centroid, and ours are repaired
    dist = Geod(ellps="WGS84").inv((a[:, 0] + a[:, 2]) / 2, (a[:, 1] + a[:, 3]) / 2,
                                   (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2)[2]
    name = str(theirs.iloc[0]["ten"]).encode("latin-1").decode("utf-8", "replace")
    return float(np.median(dist)), float(np.max(dist)), name


def main() -> None:
    """Generate, time, profile and print the markdown report."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=100_000)
    parser.add_argument("--polygons", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    gdal = subprocess.run(["ogr2ogr", "--version"], capture_output=True, text=True,  # noqa: S603,S607
                          check=True).stdout.strip()
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text()
                .splitlines() if line.startswith("model name")), platform.machine())
    print(f"nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}; ogr2ogr: {gdal}; "
          f"pyogrio GDAL "
          f"{pyogrio.__gdal_version_string__}, PROJ {pyproj.proj_version_str}; load average "
          f"{os.getloadavg()[0]:.2f}\n")
    table, stages, notes, profiles = [], {}, [], {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)

        def outs(prefix: str, suffix: str = ".gpkg") -> list[Path]:
            return [work / f"{prefix}{i}{suffix}" for i in range(args.runs)]

        jobs = [("points", args.points, 1, False), ("polygons", args.polygons, 2, True)]
        for name, n, seed, polygon in jobs:
            start = time.perf_counter()
            archive = make_zip(work, name, n, seed, polygon)
            print(f"generated {archive.name}: {n} features, {archive.stat().st_size / 2**20:.1f}"
                  f" MiB zipped, in {time.perf_counter() - start:.1f} s")
            zipped, plain = f"/vsizip/{archive}/{name}.shp", str(work / f"{name}.shp")
            runs = {
                "ours": timed_runs(functools.partial(ours, archive), outs(f"{name}-", ".db")),
                "ogr2ogr zip": timed_runs(functools.partial(ogr2ogr, zipped), outs(f"{name}-z")),
                "ogr2ogr shp": timed_runs(functools.partial(ogr2ogr, plain), outs(f"{name}-s")),
            }
            notes.append(f"{name} runs (s): " + "; ".join(
                f"{k} " + ", ".join(f"{t:.2f}" for t in v) for k, v in runs.items()))
            mine, ogr, shp = (statistics.median(v) for v in runs.values())
            with stage_clock() as totals:
                start = time.perf_counter()
                preview = ours(archive, work / f"{name}-stages.db")
                totals["total (this run)"] = time.perf_counter() - start
            totals["other"] = 2 * totals["total (this run)"] - sum(totals.values())
            stages[name] = totals
            profiles[name] = hotspots(archive, work / f"{name}-profile.db")
            offset, worst, first = ogr_offset_m(preview, work / f"{name}-z0.gpkg")
            notes.append(f"{name}: ogr2ogr positions are {offset:.3f} m (median; max {worst:.3f})"
                         f" from ours; its first name reads {first!r}, ours "
                         f"{preview.frame.iloc[0]['ten']!r}; "
                         f"encoding {preview.text_encoding} ({preview.encoding_source}), "
                         f"EPSG:{preview.crs.epsg}; {preview.geometry.repaired} repaired")
            ratio = mine / ogr
            table.append(f"| {name} | {n:,} | {mine:.2f} | {ogr:.2f} | {shp:.2f} | {ratio:.1f}× "
                         f"| {'yes' if ratio <= 1.5 else 'no'} |")
            for f in work.glob("*.db*"):  # the stores are large: keep /tmp small
                f.unlink()
    print("\n| dataset | features | our import (s) | ogr2ogr zip (s) | ogr2ogr .shp (s) | ratio "
          "| target ≤ 1.5× |\n|---|---:|---:|---:|---:|---:|---|\n" + "\n".join(table))
    print("\n| stage (one run, s) | " + " | ".join(stages) + " |\n|---|" + "---:|" * len(stages))
    for stage in next(iter(stages.values())):
        print(f"| {stage} | " + " | ".join(f"{t[stage]:.2f}" for t in stages.values()) + " |")
    notes.append(f"load average at the end: {os.getloadavg()[0]:.2f} (on {os.cpu_count()} cores)")
    print("\n" + "\n".join(f"- {note}" for note in notes))
    for name, rows in profiles.items():
        print(f"\ncProfile, {name} (function, cumulative s, own s):")
        for label, cum, own in rows:
            print(f"  {label}" if not cum else f"  {cum:7.2f} {own:7.2f}  {label}")


if __name__ == "__main__":
    main()
