"""Which layers a map page draws from vector tiles (more than GIS_TILE_THRESHOLD features)
and which from GeoJSON pages, as the pages' data islands tell the browser; the browser side
is in test_browser_tiles.py."""

from __future__ import annotations

from pathlib import Path

from shapely.geometry import Point

from tests.support import login, make_app, map_config

VECTORGRID = "/static/vendor/leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js"
PUBLIC = ["verified", "in_progress", "resolved"]


def layers(html: str) -> dict[str, dict]:
    return {la["slug"]: la for la in map_config(html)["layers"]}


def test_small_layers_keep_geojson_by_default(tmp_path: Path) -> None:
    app = make_app(tmp_path / "a.sqlite", TILE_URL="")
    page = login(app.test_client()).get("/map").get_data(as_text=True)
    assert all(la["tiles"] is None for la in layers(page).values())
    assert VECTORGRID not in page  # no tile code on a map that needs none


def test_large_layers_get_tiles_with_the_servers_count(tmp_path: Path) -> None:
    app = make_app(tmp_path / "a.sqlite", TILE_URL="", TILE_THRESHOLD=100)
    store = app.extensions["gis_store"]
    client = login(app.test_client())
    page = client.get("/map").get_data(as_text=True)
    shown = layers(page)
    assert shown["hotspots"]["tiles"] == "/tiles/hotspots/{z}/{x}/{y}.mvt"
    assert shown["hotspots"]["count"] == store.count_features("hotspots") > 100
    assert shown["wards"]["tiles"] is None and shown["wards"]["count"] is None
    assert VECTORGRID in page
    assert client.get(VECTORGRID).status_code == 200
    # The filters go to the tiles as parameters, and the count is of what they match.
    filtered = layers(client.get("/map?status=verified").get_data(as_text=True))["hotspots"]
    assert filtered["params"] == {"status": ["verified"]}
    verified = client.get("/api/layers/hotspots/features?status=verified").get_json()
    assert filtered["count"] == verified["numberMatched"] > 0
    assert not filtered["count_more"]
    tile = client.get(filtered["tiles"].format(z=12, x=3263, y=1910) + "?status=verified")
    assert tile.status_code == 200
    assert tile.content_type == "application/vnd.mapbox-vector-tile"


def test_public_maps_use_the_public_tiles_and_count_what_the_public_sees(
        tmp_path: Path) -> None:
    app = make_app(tmp_path / "a.sqlite", TILE_URL="", TILE_THRESHOLD=100)
    client = app.test_client()
    for path in ("/public", "/embed/default"):
        hotspots = layers(client.get(path).get_data(as_text=True))["hotspots"]
        assert hotspots["tiles"] == "/public/tiles/default/hotspots/{z}/{x}/{y}.mvt"
        seen = client.get("/public/api/default/layers/hotspots/features").get_json()
        assert hotspots["count"] == seen["numberMatched"]
        assert hotspots["count"] < app.extensions["gis_store"].count_features("hotspots")


def test_a_count_past_the_stores_cap_says_more_than(tmp_path: Path) -> None:
    app = make_app(tmp_path / "a.sqlite", TILE_URL="")
    store = app.extensions["gis_store"]
    store.add_features("hotspots", [
        (Point(106.85 + 0.00001 * (i % 100), 11.52 + 0.00001 * (i // 100)),
         {"name": f"P{i}", "category": "other", "severity": 1, "status": "reported",
          "reported_at": "2024-05-01"}) for i in range(10_001)])
    hotspots = layers(login(app.test_client()).get("/map?status=reported")
                      .get_data(as_text=True))["hotspots"]
    assert hotspots["tiles"]
    assert (hotspots["count"], hotspots["count_more"]) == (10_000, True)


def test_the_count_follows_every_write(tmp_path: Path) -> None:
    app = make_app(tmp_path / "a.sqlite", TILE_URL="", TILE_THRESHOLD=100)
    store = app.extensions["gis_store"]
    client = login(app.test_client())

    def counts() -> tuple[int, int]:
        return (layers(client.get("/map").get_data(as_text=True))["hotspots"]["count"],
                layers(client.get("/map?status=verified").get_data(as_text=True))
                ["hotspots"]["count"])

    total, verified = counts()
    assert counts() == (total, verified)  # asked again: the same (from the worker's cache)
    [new] = store.add_features("hotspots", [
        (Point(106.85, 11.52), {"name": "Mới", "category": "other", "severity": 1,
                                "status": "reported", "reported_at": "2024-05-01"})])
    assert counts() == (total + 1, verified)
    spot = store.get_feature("hotspots", new)
    store.update_feature("hotspots", new, expected_version=spot.version,
                         properties={**spot.properties, "status": "verified"})
    assert counts() == (total + 1, verified + 1)
