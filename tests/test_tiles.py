"""Vector tiles through HTTP, decoded as a map would: content, public rules, filters,
clusters, caching and revalidation, simplification, refusals, and GDAL reading one."""

from __future__ import annotations

import json
import math
import random
import re
import subprocess
from collections import Counter
from pathlib import Path

import mapbox_vector_tile
import pytest
from flask import Flask
from flask.testing import FlaskClient
from shapely.geometry import Point, Polygon, shape

from layers.kinds import KINDS
from tests.browser_support import serve
from tests.pg_cluster import cluster
from tests.support import csrf_token, login, make_app

MVT = "application/vnd.mapbox-vector-tile"
CITY = (106.88, 11.52)
PUBLIC_STATUSES = {"verified", "in_progress", "resolved"}


def tile_of(lon: float, lat: float, z: int) -> tuple[int, int, int]:
    n = 1 << z
    x = int((lon + 180) / 360 * n)
    y = int((1 - math.asinh(math.tan(math.radians(lat))) / math.pi) / 2 * n)
    return z, x, y


def tile_bounds(z: int, x: int, y: int) -> tuple[float, float, float, float]:
    n = 1 << z

    def lat(row: int) -> float:
        return math.degrees(math.atan(math.sinh(math.pi * (1 - 2 * row / n))))

    return x / n * 360 - 180, lat(y + 1), (x + 1) / n * 360 - 180, lat(y)


def features(response, slug: str) -> list[dict]:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.mimetype == MVT
    return mapbox_vector_tile.decode(response.data).get(slug, {"features": []})["features"]


def api_features(client: FlaskClient, slug: str, **params: str) -> list[dict]:
    found = client.get(f"/api/layers/{slug}/features", query_string={"limit": "10000", **params})
    assert found.status_code == 200
    return found.get_json()["features"]


def inside(feature: dict, bounds: tuple[float, float, float, float]) -> bool:
    lon, lat = feature["geometry"]["coordinates"]
    return bounds[0] < lon < bounds[2] and bounds[1] < lat < bounds[3]


@pytest.fixture
def crowd(app: Flask) -> list[tuple[Point, dict]]:
    """A public hotspot layer of 2 000 points over the city, clustered at low zoom."""
    rng = random.Random(9)
    statuses = [c.value for c in KINDS["hotspot"].field("status").choices]
    items = []
    for i in range(2000):
        point = Point(106.80 + rng.random() * 0.1, 11.48 + rng.random() * 0.08)
        items.append((point, {"name": f"Điểm {i}", "category": "water", "severity": 1,
                              "status": rng.choice(statuses), "reported_at": "2024-03-01",
                              "ward": "25201"}))
    store = app.extensions["gis_store"]
    store.create_layer("crowd", "Crowd", "hotspot", public=True, features=items)
    return items


def statuses_in(items: list[tuple[Point, dict]], tile: tuple[int, int, int]) -> Counter:
    """How many of ``items`` in the tile hold each status."""
    minx, miny, maxx, maxy = tile_bounds(*tile)
    return Counter(p["status"] for g, p in items if minx < g.x < maxx and miny < g.y < maxy)


def test_features_land_in_their_tile_with_only_the_styled_properties(inspector):
    z, x, y = tile_of(*CITY, 14)
    bounds = tile_bounds(z, x, y)
    expected = {f["id"]: f for f in api_features(inspector, "hotspots") if inside(f, bounds)}
    assert expected, "the sample has hotspots in the city's central tile"
    got = features(inspector.get(f"/tiles/hotspots/{z}/{x}/{y}.mvt"), "hotspots")
    assert {f["id"] for f in got} == set(expected)
    for f in got:
        # Only the title and the colour field: no description, ward, severity…
        assert f["properties"] == {k: expected[f["id"]]["properties"][k]
                                   for k in ("name", "status")}
        assert f["geometry"]["type"] == "Point"
        px, py = f["geometry"]["coordinates"]
        assert 0 <= px <= 4096 and 0 <= py <= 4096


def test_a_tile_away_from_the_features_is_a_valid_empty_tile(inspector):
    response = inspector.get("/tiles/hotspots/14/0/0.mvt")
    assert features(response, "hotspots") == []


def test_filters_apply_to_tiles(inspector):
    z, x, y = tile_of(*CITY, 13)
    bounds = tile_bounds(z, x, y)
    expected = {f["id"] for f in api_features(inspector, "hotspots", status="reported")
                if inside(f, bounds)}
    got = features(inspector.get(f"/tiles/hotspots/{z}/{x}/{y}.mvt?status=reported"),
                   "hotspots")
    assert {f["id"] for f in got} == expected and expected
    assert {f["properties"]["status"] for f in got} == {"reported"}


def test_public_tiles_hide_private_fields_unverified_hotspots_and_internal_layers(app, client):
    store = app.extensions["gis_store"]
    store.update_layer("hotspots", private_fields=["name"])
    z, x, y = tile_of(*CITY, 12)
    got = features(client.get(f"/public/tiles/default/hotspots/{z}/{x}/{y}.mvt"), "hotspots")
    inspector = login(app.test_client())
    every = features(inspector.get(f"/tiles/hotspots/{z}/{x}/{y}.mvt"), "hotspots")
    assert {f["properties"]["status"] for f in every} - PUBLIC_STATUSES, "the sample has some"
    assert got and {f["id"] for f in got} == {
        f["id"] for f in every if f["properties"]["status"] in PUBLIC_STATUSES}
    for f in got:
        assert set(f["properties"]) == {"status"}  # the name is private now
        assert f["properties"]["status"] in PUBLIC_STATUSES
    assert client.get(f"/public/tiles/default/collection-points/{z}/{x}/{y}.mvt"
                      ).status_code == 404
    assert client.get("/public/tiles/default/collection-points").status_code == 404
    assert client.get(f"/public/tiles/nowhere/hotspots/{z}/{x}/{y}.mvt").status_code == 404
    # Anonymous visitors get no internal tile, and public tiles take no filters.
    assert client.get(f"/tiles/hotspots/{z}/{x}/{y}.mvt").status_code == 401
    refused = client.get(f"/public/tiles/default/hotspots/{z}/{x}/{y}.mvt?status=reported",
                         headers={"Accept-Language": "en"})
    assert refused.status_code == 400 and "no parameters" in refused.get_json()["error"]


def test_clusters_count_the_points_of_their_tile_by_status(app, crowd):
    client = login(app.test_client())
    z, x, y = tile_of(106.85, 11.52, 10)
    expected = statuses_in(crowd, (z, x, y))
    assert sum(expected.values()) > 500  # the tile holds many of the points, not all
    got = features(client.get(f"/tiles/crowd/{z}/{x}/{y}.mvt"), "crowd")
    clusters = [f for f in got if f["properties"].get("cluster")]
    assert clusters and len(got) < 100
    total = Counter()
    for f in got:
        if f["properties"].get("cluster"):
            counts = json.loads(f["properties"]["counts"])
            assert sum(counts.values()) == f["properties"]["count"] > 1
            assert "id" not in f or f["id"] == 0
            total.update(counts)
        else:  # a cell of one point is that point
            total[f["properties"]["status"]] += 1
    assert total == expected
    # Filtered, the clusters count only what matches.
    got = features(client.get(f"/tiles/crowd/{z}/{x}/{y}.mvt?status=verified&status=reported"),
                   "crowd")
    shown = Counter()
    for f in got:
        shown.update(json.loads(f["properties"]["counts"]) if f["properties"].get("cluster")
                     else {f["properties"]["status"]: 1})
    assert shown == {"verified": expected["verified"], "reported": expected["reported"]}
    # Publicly, only the verified statuses are counted.
    anonymous = app.test_client()
    got = features(anonymous.get(f"/public/tiles/default/crowd/{z}/{x}/{y}.mvt"), "crowd")
    public = Counter()
    for f in got:
        public.update(json.loads(f["properties"]["counts"]) if f["properties"].get("cluster")
                      else {f["properties"]["status"]: 1})
    assert public == {s: n for s, n in expected.items() if s in PUBLIC_STATUSES}
    # A private colour field is neither shown nor counted.
    app.extensions["gis_store"].update_layer("crowd", private_fields=["status"])
    got = features(anonymous.get(f"/public/tiles/default/crowd/{z}/{x}/{y}.mvt"), "crowd")
    assert got and all("status" not in f["properties"] for f in got)
    assert all(f["properties"]["counts"] == "{}" for f in got if f["properties"].get("cluster"))
    assert sum(f["properties"].get("count", 1) for f in got) == sum(public.values())


def tile_totals(client: FlaskClient, url: str, slug: str) -> Counter:
    """The points a tile shows, by status: its clusters' counts and its single points."""
    total = Counter()
    for f in features(client.get(url), slug):
        total.update(json.loads(f["properties"]["counts"]) if f["properties"].get("cluster")
                     else {f["properties"]["status"]: 1})
    return total


def test_cluster_counts_follow_every_write(app, crowd):
    """Clusters wholly inside a tile are drawn from sums the store keeps as it writes:
    after a move, a status change, an addition and a replace they still count exactly."""
    client, store = login(app.test_client()), app.extensions["gis_store"]
    tile = tile_of(106.85, 11.52, 12)
    url = f"/tiles/crowd/{tile[0]}/{tile[1]}/{tile[2]}.mvt"

    def current() -> list[tuple[Point, dict]]:
        return [(shape(f["geometry"]), f["properties"])
                for f in api_features(client, "crowd")]

    assert tile_totals(client, url, "crowd") == statuses_in(current(), tile)
    bounds = tile_bounds(*tile)
    inside_one = next(f for f in api_features(client, "crowd") if inside(f, bounds))
    moved = store.update_feature(  # out of the tile, and resolved
        "crowd", inside_one["id"], expected_version=1,
        geometry=Point(bounds[2] + 0.01, bounds[3] + 0.01),
        properties={**inside_one["properties"], "status": "resolved",
                    "resolved_at": "2024-05-01"})
    assert moved.version == 2
    assert tile_totals(client, url, "crowd") == statuses_in(current(), tile)
    store.add_features("crowd", [(Point((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2),
                                  {**crowd[0][1], "status": "dismissed"})] * 3)
    assert tile_totals(client, url, "crowd") == statuses_in(current(), tile)
    store.replace_features("crowd", crowd[:700])
    assert tile_totals(client, url, "crowd") == statuses_in(crowd[:700], tile)


def test_clusters_split_into_points_at_high_zoom(app, crowd):
    client = login(app.test_client())
    z, x, y = tile_of(106.85, 11.52, 15)
    bounds = tile_bounds(z, x, y)
    expected = {f["id"] for f in api_features(client, "crowd") if inside(f, bounds)}
    got = features(client.get(f"/tiles/crowd/{z}/{x}/{y}.mvt"), "crowd")
    assert {f["id"] for f in got} == expected
    assert not any(f["properties"].get("cluster") for f in got)


def test_a_tile_never_holds_more_than_5000_features_and_never_drops_a_point(app):
    # 6 000 points in a box well inside one zoom-15 tile.
    z, x, y = tile_of(*CITY, 15)
    minx, miny, maxx, maxy = tile_bounds(z, x, y)
    rng = random.Random(3)
    items = [(Point(minx + (0.25 + rng.random() / 2) * (maxx - minx),
                    miny + (0.25 + rng.random() / 2) * (maxy - miny)), {"name": f"P{i}"})
             for i in range(6000)]
    app.extensions["gis_store"].create_layer("dense", "Dense", "generic",
                                             geometry_type="Point", features=items)
    client = login(app.test_client())
    # Past the zoom where clusters end, too many to draw one by one are still clusters.
    deep = features(client.get(f"/tiles/dense/{z}/{x}/{y}.mvt"), "dense")
    assert len(deep) <= 5000 and sum(f["properties"].get("count", 1) for f in deep) == 6000
    # One zoom out, they are clusters again, and count all 6 000.
    clusters = features(client.get(f"/tiles/dense/{z - 1}/{x // 2}/{y // 2}.mvt"), "dense")
    assert sum(f["properties"].get("count", 1) for f in clusters) == 6000
    assert all(f["properties"]["counts"] == "{}" for f in clusters  # no colour field
               if f["properties"].get("cluster"))
    assert len(clusters) < 10


def test_a_write_changes_the_etag_and_the_tile(app):
    client = login(app.test_client())
    z, x, y = tile_of(*CITY, 14)
    url = f"/tiles/hotspots/{z}/{x}/{y}.mvt"
    first = client.get(url)
    etag = first.headers["ETag"]
    assert first.headers["Cache-Control"] == "private, max-age=0, must-revalidate"
    assert client.get(url, headers={"If-None-Match": etag}).status_code == 304
    reported = next(f for f in features(first, "hotspots")
                    if f["properties"]["status"] == "reported")
    detail = client.get(f"/api/layers/hotspots/features/{reported['id']}").get_json()
    moved = client.post(f"/hotspots/hotspots/{reported['id']}/status",
                        data={"to": "verified", "note": "Đã kiểm tra",
                              "version": detail["meta"]["version"],
                              "csrf_token": csrf_token(client, "/map")})
    assert moved.status_code in (200, 302), moved.get_data(as_text=True)
    again = client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 200 and again.headers["ETag"] != etag
    now = {f["id"]: f for f in features(again, "hotspots")}
    assert now[reported["id"]]["properties"]["status"] == "verified"
    # An edit of the name (update_feature through the edit form's store call) too.
    store = app.extensions["gis_store"]
    current = store.get_feature("hotspots", reported["id"])
    store.update_feature("hotspots", reported["id"], expected_version=current.version,
                         properties={**current.properties, "name": "Tên mới"})
    third = client.get(url, headers={"If-None-Match": again.headers["ETag"]})
    assert third.status_code == 200
    assert {f["id"]: f for f in features(third, "hotspots")}[reported["id"]][
        "properties"]["name"] == "Tên mới"


def test_a_layer_made_again_under_its_slug_is_never_served_its_old_tiles(app):
    """Deleted and made again within the same second, with as many writes: the cache and
    the ETag still tell the two apart (a layer's revisions start from the clock)."""
    client, store = login(app.test_client(), "admin"), app.extensions["gis_store"]
    z, x, y = tile_of(*CITY, 14)
    url = f"/tiles/again/{z}/{x}/{y}.mvt"
    bounds = tile_bounds(z, x, y)
    middle = Point((bounds[0] + bounds[2]) / 2, (bounds[1] + bounds[3]) / 2)
    store.create_layer("again", "Lần đầu", "generic", geometry_type="Point",
                       features=[(middle, {"n": 1})])
    first = client.get(url)
    store.delete_layer("again")
    store.create_layer("again", "Lần sau", "generic", geometry_type="Point",
                       features=[(middle, {"n": 2}), (middle, {"n": 3})])
    second = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    assert second.status_code == 200 and second.headers["ETag"] != first.headers["ETag"]
    assert len(features(second, "again")) == 2 and len(features(first, "again")) == 1


def test_public_tiles_are_cacheable_and_revalidate(client):
    z, x, y = tile_of(*CITY, 12)
    url = f"/public/tiles/default/hotspots/{z}/{x}/{y}.mvt"
    first = client.get(url)
    assert first.headers["Cache-Control"] == "public, max-age=60"
    assert client.get(url, headers={"If-None-Match": first.headers["ETag"]}).status_code == 304
    assert client.get(url).data == first.data


def test_polygons_are_simplified_at_low_zoom(app):
    # A circle of 2 000 vertices, 0.01° across, in the city.
    ring = [(106.88 + 0.01 * math.cos(a), 11.52 + 0.01 * math.sin(a))
            for a in (2 * math.pi * i / 2000 for i in range(2000))]
    store = app.extensions["gis_store"]
    store.create_layer("circle", "Circle", "generic", geometry_type="Polygon",
                       features=[(Polygon(ring), {})])
    client = login(app.test_client())

    def vertices(z: int) -> int:
        got = features(client.get("/tiles/circle/{}/{}/{}.mvt".format(*tile_of(106.88, 11.52, z))),
                       "circle")
        assert len(got) == 1 and got[0]["geometry"]["type"] == "Polygon"
        return sum(len(r) for r in got[0]["geometry"]["coordinates"])

    low, high = vertices(8), vertices(13)
    assert 4 <= low < high < 2000, (low, high)
    assert low < 30


def test_both_stores_serve_the_same_tiles(tmp_path: Path, crowd):
    """The same data on SQLite and on PostGIS: the same features, ids and properties, the
    same clusters and points, and polygons that differ by at most a unit's rounding."""
    ring = [(106.88 + 0.01 * math.cos(a), 11.52 + 0.01 * math.sin(a))
            for a in (2 * math.pi * i / 500 for i in range(500))]
    clients = []
    for database in (str(tmp_path / "same.sqlite"), cluster().new_schema()):
        app = make_app(tmp_path / "same.sqlite", TILE_URL="", DATABASE=database)
        store = app.extensions["gis_store"]
        store.create_layer("crowd", "Crowd", "hotspot", features=crowd)
        store.create_layer("circle", "Circle", "generic", geometry_type="Polygon",
                           features=[(Polygon(ring), {})])
        clients.append(login(app.test_client()))
    for slug, z in (("crowd", 10), ("crowd", 12), ("crowd", 15), ("hotspots", 13),
                    ("wards", 11), ("wards", 14), ("circle", 8), ("circle", 14)):
        _, x, y = tile_of(106.86, 11.52, z)
        for url in (f"/tiles/{slug}/{z}/{x + dx}/{y}.mvt" for dx in (-1, 0, 1)):
            sqlite, postgis = (sorted(features(c.get(url), slug), key=lambda f: (
                f.get("id", 0), str(f["geometry"]["coordinates"]))) for c in clients)
            assert [(f.get("id"), f["properties"]) for f in sqlite] == [
                (f.get("id"), f["properties"]) for f in postgis], url
            for a, b in zip(sqlite, postgis, strict=True):
                one, other = shape(a["geometry"]), shape(b["geometry"])
                if one.area:
                    assert one.symmetric_difference(other).area < 0.05 * one.area, url
                else:
                    assert one.equals(other), url


def test_tileset_metadata(inspector, client):
    body = inspector.get("/tiles/hotspots").get_json()
    assert body["tileMatrixSetURI"] == (
        "http://www.opengis.net/def/tilematrixset/OGC/1.0/WebMercatorQuad")
    item = next(link for link in body["links"] if link["rel"] == "item")
    assert item["templated"] and item["href"].endswith(
        "/tiles/hotspots/{tileMatrix}/{tileCol}/{tileRow}.mvt")
    assert body["minzoom"] == 0 and body["maxzoom"] == 22
    public = client.get("/public/tiles/default/hotspots").get_json()
    assert next(link for link in public["links"] if link["rel"] == "item")["href"].endswith(
        "/public/tiles/default/hotspots/{tileMatrix}/{tileCol}/{tileRow}.mvt")


@pytest.mark.parametrize(("path", "status", "says"), [
    ("/tiles/hotspots/23/0/0.mvt", 400, "zoom level must be between 0 and 22"),
    ("/tiles/hotspots/3/8/0.mvt", 400, "x must be between 0 and 7"),
    ("/tiles/hotspots/3/0/8.mvt", 400, "y must be between 0 and 7"),
    ("/tiles/hotspots/3/-1/0.mvt", 404, ""),
    ("/tiles/hotspots/a/b/c.mvt", 404, ""),
    ("/tiles/hotspots/3/0/99999999999999999999999.mvt", 404, ""),
    ("/tiles/hotspots/2/1/1.mvt?bbox=1,2,3,4", 400, "bbox is not accepted on tiles"),
    ("/tiles/hotspots/2/1/1.mvt?limit=5", 400, "limit is not accepted on tiles"),
    ("/tiles/hotspots/2/1/1.mvt?status=fixed", 400, "status must be one of"),
    ("/tiles/hotspots/2/1/1.mvt?colour=red", 400, "Unknown parameter"),
    ("/tiles/hotspots/2/1/1.mvt?reported_from=01/02/2024", 400, "YYYY-MM-DD"),
    ("/tiles/nowhere/2/1/1.mvt", 404, ""),
    ("/tiles/nowhere", 404, ""),
    ("/public/tiles/default/hotspots/40/1/1.mvt", 400, "zoom level"),
])
def test_bad_tiles_get_a_clear_4xx(inspector, path, status, says):
    response = inspector.get(path, headers={"Accept-Language": "en"})
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert body["status"] == status
    assert says in body["error"]


def test_gdal_reads_a_served_tile(tmp_path: Path):
    """GDAL's MVT driver, a real client, reads a public tile over HTTP."""
    z, x, y = tile_of(*CITY, 13)
    with serve(tmp_path) as live:
        url = f"{live.url}/public/tiles/default/hotspots/{z}/{x}/{y}.mvt"
        out = subprocess.run(
            ["ogrinfo", "-ro", "-al", "-q", "-oo", f"X={x}", "-oo", f"Y={y}", "-oo", f"Z={z}",
             f"/vsicurl/{url}"], capture_output=True, text=True, timeout=60,
            env={"GDAL_HTTP_UNSAFESSL": "NO", "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".mvt",
                 "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, out.stderr
        statuses = re.findall(r"status \(String\) = (\w+)", out.stdout)
        ids = {int(i) for i in re.findall(r"mvt_id \(Integer64\) = (\d+)", out.stdout)}
        bounds = tile_bounds(z, x, y)
        import urllib.request
        with urllib.request.urlopen(  # noqa: S310 - the test's own server
                f"{live.url}/public/api/default/layers/hotspots/features?limit=10000") as r:
            shown = {f["id"] for f in json.load(r)["features"] if inside(f, bounds)}
    assert statuses and set(statuses) <= PUBLIC_STATUSES
    assert ids == shown
