"""Large layers: pages that cost what they return, boxes that are exact, on both stores.

The API is read as a client reads it: the first page, then each ``next`` link. The answers
are checked against shapely's own count of the points in the box.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import numpy as np
import pytest
from flask.testing import FlaskClient
from shapely.geometry import Point

from layers.query import FeatureQuery
from layers.store import PostGISStore, SQLiteStore, Store
from layers.store.place import COUNT_CAP, count_cap
from tests.pg_cluster import cluster
from tests.support import login, make_app

CITY = (106.755, 11.461, 106.933, 11.577)
WARD_BOX = (106.80, 11.49, 106.83, 11.52)


def random_points(n: int, seed: int = 7) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.column_stack([rng.uniform(CITY[0], CITY[2], n), rng.uniform(CITY[1], CITY[3], n)])


def add_points(store: Store, slug: str, xy: np.ndarray) -> list[int]:
    store.create_layer(slug, "Điểm quan trắc (minh hoạ)", "generic", geometry_type="Point")
    return store.add_features(slug, ((Point(x, y), {"n": i}) for i, (x, y) in enumerate(xy)))


def inside(xy: np.ndarray, box: tuple[float, float, float, float]) -> np.ndarray:
    return ((xy[:, 0] >= box[0]) & (xy[:, 0] <= box[2]) & (xy[:, 1] >= box[1])
            & (xy[:, 1] <= box[3]))


def read_all(client: FlaskClient, url: str) -> tuple[list[int], list[dict]]:
    """Every feature id of a query, page after page, and the pages' bodies."""
    ids, bodies = [], []
    while url:
        answer = client.get(url)
        assert answer.status_code == 200, answer.get_data(as_text=True)
        body = answer.get_json()
        bodies.append(body)
        ids += [f["id"] for f in body["features"]]
        url = next((link["href"] for link in body["links"] if link["rel"] == "next"), None)
    return ids, bodies


@pytest.fixture
def app_with_points(tmp_path: Path):
    app = make_app(tmp_path / "app.sqlite", TILE_URL="")
    xy = random_points(3000)
    ids = add_points(app.extensions["gis_store"], "diem", xy)
    return app, xy, np.array(ids)


def test_next_links_walk_every_match_of_a_box_once(app_with_points):
    app, xy, ids = app_with_points
    client = login(app.test_client(), "inspector")
    box = ",".join(map(str, WARD_BOX))
    got, bodies = read_all(client, f"/api/layers/diem/features?bbox={box}&limit=25")
    expected = set(ids[inside(xy, WARD_BOX)].tolist())
    assert len(expected) > 100  # several pages
    assert len(got) == len(set(got)) and set(got) == expected
    assert all(b["numberMatched"] == len(expected) for b in bodies)
    assert [b["numberReturned"] for b in bodies][:-1] == [25] * (len(bodies) - 1)
    # Without a box the pages come by id.
    everything, _ = read_all(client, "/api/layers/diem/features?limit=1000")
    assert everything == sorted(ids.tolist())


def test_a_next_link_keeps_the_filters_and_a_bad_after_is_refused(app_with_points):
    app, _, _ = app_with_points
    client = login(app.test_client(), "inspector")
    first = client.get("/api/layers/diem/features?limit=5&bbox=106.7,11.4,107,11.6").get_json()
    [link] = [link["href"] for link in first["links"] if link["rel"] == "next"]
    assert "bbox=106.7" in link and "after=" in link and "limit=5" in link
    refused = client.get("/api/layers/diem/features?after=12;DROP")
    assert refused.status_code == 400 and "after" in refused.get_json()["error"]
    for api in ("/api/layers/diem/features", "/public/api/default/layers/hotspots/features"):
        offset = client.get(f"{api}?offset=100")
        assert offset.status_code == 400 and "after" in offset.get_json()["error"], api


def stores(tmp_path: Path) -> list[Store]:
    return [SQLiteStore(tmp_path / "s.sqlite"), PostGISStore(cluster().new_schema())]


def test_no_feature_outside_the_box_however_close(tmp_path):
    """The float32 index boxes of SQLite's R*Tree answered up to 1.7 m outside a box."""
    box = (106.8, 11.5, 106.81, 11.51)
    step = 1e-7  # about 1 cm
    edge = [(box[0], 11.505), (box[2], 11.505), (106.805, box[1]), (106.805, box[3])]
    outside = [(box[0] - step, 11.505), (box[2] + step, 11.505), (106.805, box[1] - step),
               (106.805, box[3] + step)]
    for store in stores(tmp_path):
        ids = add_points(store, "diem", np.array(edge + outside))
        page = store.query_features("diem", FeatureQuery(bbox=box))
        assert sorted(f.id for f in page.features) == ids[:4], type(store).__name__
        assert page.matched == 4


def test_number_matched_is_exact_when_cheap_and_left_out_beyond(tmp_path):
    rng = np.random.default_rng(3)
    dense = np.column_stack([rng.uniform(106.80, 106.81, COUNT_CAP + 50),
                             rng.uniform(11.50, 11.51, COUNT_CAP + 50)])
    small = (106.800, 11.500, 106.801, 11.501)
    for store in stores(tmp_path):
        add_points(store, "diem", dense)
        big = store.query_features("diem", FeatureQuery(bbox=(106.7, 11.4, 106.9, 11.6),
                                                        limit=100))
        assert big.matched is None and big.next_after is not None
        whole = store.query_features("diem", FeatureQuery(limit=100))
        assert whole.matched is None
        few = store.query_features("diem", FeatureQuery(bbox=small, limit=50))
        assert few.matched == int(inside(dense, small).sum()) > 50


def test_both_stores_give_the_same_pages_in_the_same_order(tmp_path):
    xy = random_points(4000, seed=11)
    sqlite, postgis = stores(tmp_path)
    for store in (sqlite, postgis):
        add_points(store, "diem", xy)
    for box in (WARD_BOX, CITY, (106.9, 11.55, 106.9001, 11.5501)):
        pages = []
        for store in (sqlite, postgis):
            query, seen = FeatureQuery(bbox=box, limit=300), []
            while True:
                page = store.query_features("diem", query)
                seen.append([f.properties["n"] for f in page.features])
                if page.next_after is None:
                    break
                query = FeatureQuery(bbox=box, limit=300, after=page.next_after)
            pages.append(seen)
        assert pages[0] == pages[1]
        assert sum(map(len, pages[0])) == int(inside(xy, box).sum())


def vm_steps(store: SQLiteStore, query: FeatureQuery) -> int:
    """SQLite virtual-machine steps one query takes: a measure of its work that does not
    depend on the machine's load."""
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    con = store._con()
    con.set_progress_handler(count, 100)
    try:
        store.query_features("diem", query)
    finally:
        con.set_progress_handler(None, 0)
    return steps


def test_a_page_costs_what_it_returns_not_what_the_layer_holds(tmp_path):
    small, large = SQLiteStore(tmp_path / "small.sqlite"), SQLiteStore(tmp_path / "large.sqlite")
    add_points(small, "diem", random_points(5_000))
    add_points(large, "diem", random_points(100_000))
    # Both layers hold more than count_cap(20) matches in each box: both count up to it.
    assert inside(random_points(5_000), WARD_BOX).sum() > count_cap(20)
    for query in (FeatureQuery(bbox=CITY, limit=20), FeatureQuery(bbox=WARD_BOX, limit=20),
                  FeatureQuery(limit=20)):
        ratio = vm_steps(large, query) / vm_steps(small, query)
        assert ratio < 2, (query, ratio)  # 20 when every match was counted and sorted


def test_a_kept_postgis_connection_keeps_the_right_plan(tmp_path):
    """psycopg prepares a statement on its fifth use; PostgreSQL's generic plan for it then
    scanned every match of a city-wide box (120 ms became 3.3 s at 1M points)."""
    store = PostGISStore(cluster().new_schema())
    add_points(store, "diem", random_points(60_000))
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        page = store.query_features("diem", FeatureQuery(bbox=CITY, limit=1000))
        timings.append(time.perf_counter() - started)
        assert len(page.features) == 1000
    with store._pool.connection() as conn:  # the one connection all 20 used
        prepared = conn.execute("SELECT count(*) AS n FROM pg_prepared_statements").fetchone()
    assert prepared["n"] == 0
    assert statistics.median(timings[-5:]) < 3 * statistics.median(timings[:3]) + 0.05


def test_a_schema_5_file_gains_its_place_index(tmp_path):
    """A file from before the place index (an R*Tree, no place columns) is upgraded in
    place: its points and its wards are found by box as before, and the R*Tree is gone."""
    import sqlite3

    from shapely.geometry import box as shape_box

    path = tmp_path / "old.sqlite"
    store = SQLiteStore(path)
    ids = add_points(store, "diem", np.array([(106.81, 11.51), (106.90, 11.55)]))
    store.create_layer("wards", "Phường (minh hoạ)", "ward")
    [ward] = store.add_features("wards", [(shape_box(106.70, 11.40, 106.95, 11.60),
                                           {"code": "1", "name": "x", "type": "phuong"})])
    con = sqlite3.connect(path)
    con.executescript("""
        DROP INDEX features_place;
        ALTER TABLE features DROP COLUMN hkey; ALTER TABLE features DROP COLUMN minx;
        ALTER TABLE features DROP COLUMN miny; ALTER TABLE features DROP COLUMN maxx;
        ALTER TABLE features DROP COLUMN maxy;
        ALTER TABLE layers DROP COLUMN span_x; ALTER TABLE layers DROP COLUMN span_y;
        ALTER TABLE layers DROP COLUMN revision;
        CREATE VIRTUAL TABLE features_rtree USING rtree(id, minx, maxx, miny, maxy);
        PRAGMA user_version = 5;""")
    con.close()
    upgraded = SQLiteStore(path)
    near_first = FeatureQuery(bbox=(106.805, 11.505, 106.815, 11.515))
    assert [f.id for f in upgraded.query_features("diem", near_first).features] == ids[:1]
    # A corner of the ward, far from its centre: found through the layer's span.
    corner = FeatureQuery(bbox=(106.71, 11.41, 106.72, 11.42))
    assert [f.id for f in upgraded.query_features("wards", corner).features] == [ward]
    tables = {r[0] for r in sqlite3.connect(path).execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "features_rtree" not in tables


def test_a_schema_5_postgis_database_gains_its_place_index():
    import psycopg

    dsn = cluster().new_schema()
    store = PostGISStore(dsn)
    ids = add_points(store, "diem", np.array([(106.81, 11.51), (106.90, 11.55)]))
    store.close()
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE features DROP COLUMN hkey, DROP COLUMN minx, DROP COLUMN miny,"
                     " DROP COLUMN maxx, DROP COLUMN maxy; ALTER TABLE layers DROP COLUMN"
                     " span_x, DROP COLUMN span_y, DROP COLUMN revision;"
                     " UPDATE gis_schema SET version = 5")
    upgraded = PostGISStore(dsn)
    near_second = FeatureQuery(bbox=(106.895, 11.545, 106.905, 11.555))
    assert [f.id for f in upgraded.query_features("diem", near_second).features] == ids[1:]
    upgraded.close()


def test_a_feature_page_is_kept_and_revalidated_until_a_write(app_with_points):
    app, xy, ids = app_with_points
    client = login(app.test_client(), "inspector")
    url = "/api/layers/diem/features?limit=5&bbox=" + ",".join(map(str, WARD_BOX))
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=0, must-revalidate"
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    shown = first.get_json()["features"][0]
    store = app.extensions["gis_store"]
    store.update_feature("diem", shown["id"], expected_version=1, properties={"n": -1})
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    assert again.get_json()["features"][0]["properties"] == {"n": -1}
