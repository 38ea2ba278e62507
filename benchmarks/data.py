"""The data every features benchmark shares: N random points, 20 ward boxes, a city box.

The points are made once per N (fixed seed) into ``benchmarks/.data/`` as a GeoPackage,
which the alternatives read (pygeoapi's OGR provider, GDAL/OGR, pyogrio), and are loaded
into gis_service stores through the store's public API only (``open_store`` and
``create_layer``), so this works whatever the store keeps inside. Run it as
``.venv/bin/python benchmarks/data.py [N ...]`` to make the files ahead of a benchmark.
"""

from __future__ import annotations

import hashlib
import os
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pyogrio
import shapely

from layers.kinds import FieldDef
from layers.store import Store, open_store

HERE = Path(__file__).resolve().parent
DATA = HERE / ".data"
SIZES = (10_000, 100_000, 1_000_000)
CITY = (106.755, 11.461, 106.933, 11.577)  # minLon, minLat, maxLon, maxLat (config CITY_BOUNDS)
WARD_SIDE = 0.03  # degrees: a ward-sized box holds ~4.4 % of the points (43 600 of 1M)
SLUG, GPKG_LAYER = "points", "points"
SEED = 2026
CATEGORIES = ("rác thải", "nước thải", "khói bụi", "tiếng ồn", "mùi hôi", "đất đá")
STREETS = ("Phú Riềng Đỏ", "Hùng Vương", "Trần Hưng Đạo", "Lê Quý Đôn", "Nguyễn Huệ",
           "Đồng Xoài", "Tôn Đức Thắng", "Lý Thường Kiệt")
FIELDS = (
    FieldDef("name", "text", "Tên", "Name", required=True),
    FieldDef("category", "text", "Loại", "Category", filterable=True),
    FieldDef("severity", "integer", "Mức độ", "Severity", filterable=True, minimum=1,
             maximum=5),
)
Box = tuple[float, float, float, float]


def ward_boxes(count: int = 20, seed: int = SEED) -> list[Box]:
    """``count`` fixed boxes of WARD_SIDE degrees lying wholly inside the city box."""
    rng = random.Random(seed)
    x0, y0, x1, y1 = CITY
    boxes = []
    for _ in range(count):
        minx = round(rng.uniform(x0, x1 - WARD_SIDE), 6)
        miny = round(rng.uniform(y0, y1 - WARD_SIDE), 6)
        boxes.append((minx, miny, round(minx + WARD_SIDE, 6), round(miny + WARD_SIDE, 6)))
    return boxes


def bbox_text(box: Box) -> str:
    """A box as the ``bbox`` query parameter writes it (every digit: the answers are
    checked against the box itself)."""
    return ",".join(repr(v) for v in box)


def points_frame(n: int) -> gpd.GeoDataFrame:
    """N uniform random points in the city box with Vietnamese text, seeded by N."""
    rng = np.random.default_rng(SEED + n)
    x0, y0, x1, y1 = CITY
    xs, ys = rng.uniform(x0, x1, n), rng.uniform(y0, y1, n)
    ids = np.arange(1, n + 1)
    streets = np.array(STREETS)[rng.integers(0, len(STREETS), n)]
    names = [f"Điểm quan trắc số {i} đường {s}" for i, s in zip(ids, streets, strict=True)]
    return gpd.GeoDataFrame({
        "id": ids,
        "name": names,
        "category": np.array(CATEGORIES)[rng.integers(0, len(CATEGORIES), n)],
        "severity": rng.integers(1, 6, n),
    }, geometry=shapely.points(xs, ys), crs="EPSG:4326")


def gpkg_path(n: int) -> Path:
    """The GeoPackage of N points, written on first use (layer ``points``, fid = id)."""
    path = DATA / f"points-{n}.gpkg"
    if not path.exists():
        DATA.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.gpkg")
        tmp.unlink(missing_ok=True)
        # VERSION=1.3: Debian's GDAL 3.6 (pygeoapi's) opens it without a warning.
        pyogrio.write_dataframe(points_frame(n), tmp, layer=GPKG_LAYER, driver="GPKG",
                                dataset_options={"VERSION": "1.3"})
        tmp.rename(path)
    return path


def features(n: int) -> Iterator[tuple[Any, dict[str, Any]]]:
    """The same N points as (geometry, properties) for a store, in GeoPackage fid order."""
    frame = pyogrio.read_dataframe(gpkg_path(n), layer=GPKG_LAYER)
    for geom, name, category, severity in zip(frame.geometry, frame["name"],
                                              frame["category"], frame["severity"],
                                              strict=True):
        yield geom, {"name": name, "category": category, "severity": int(severity)}


def store_code_tag() -> str:
    """A short hash of the store code being run: a cached SQLite file is only reused by
    the code that wrote it (a newer schema migrates a file, an older one refuses it)."""
    import layers.store as package

    digest = hashlib.sha256()
    for file in sorted(Path(package.__file__).parent.glob("*.py")):
        digest.update(file.read_bytes())
    return digest.hexdigest()[:8]


def load(store: Store, n: int, slug: str = SLUG) -> float:
    """Make ``slug`` hold the N points (unless it already holds N): seconds spent loading."""
    if any(layer.slug == slug for layer in store.list_layers()):
        if store.count_features(slug) == n:
            return 0.0
        store.delete_layer(slug)
    start = time.perf_counter()
    store.create_layer(slug, f"{n:,} điểm thử", "generic", geometry_type="Point",
                       fields=FIELDS, features=features(n), note="benchmark data")
    return time.perf_counter() - start


def sqlite_url(n: int) -> str:
    """An SQLite store file holding the N points, made on first use by this store code."""
    DATA.mkdir(parents=True, exist_ok=True)
    path = DATA / f"store-{n}-{store_code_tag()}.sqlite"
    seconds = load(open_store(str(path)), n)
    if seconds:
        print(f"  loaded {n:,} points into {path.name} in {seconds:.1f} s", file=sys.stderr)
    return str(path)


def postgis_dsn(n: int) -> str:
    """A PostGIS database holding the N points.

    ``GIS_BENCH_PG_DSN`` names a database with PostGIS to use; its ``points`` layer is
    replaced when it holds another N. Without it a private cluster is started as the tests
    do (tests/pg_cluster.py, removed at exit) and each N gets a database of its own.
    """
    dsn = os.environ.get("GIS_BENCH_PG_DSN")
    if not dsn:
        sys.path.append(str(HERE.parent))  # tests/ (PYTHONPATH, if set, still wins)
        from tests.pg_cluster import cluster

        dsn = cluster().new_database()
    seconds = load(open_store(dsn), n)
    if seconds:
        print(f"  loaded {n:,} points into PostGIS in {seconds:.1f} s", file=sys.stderr)
    # The state a database reaches a minute after an import, once autovacuum has run:
    # until the visibility map is set, each index entry a query reads costs a table visit.
    # Run at once after the load, VACUUM here left the map unset; a few seconds later it
    # sets it.
    import psycopg

    time.sleep(5)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("VACUUM (ANALYZE) features")
    return dsn


def main() -> None:
    """Write the GeoPackages (and print the boxes) for the sizes given, default all."""
    for n in [int(a) for a in sys.argv[1:]] or SIZES:
        print(gpkg_path(n))
    for box in ward_boxes():
        print(bbox_text(box))


if __name__ == "__main__":
    main()
