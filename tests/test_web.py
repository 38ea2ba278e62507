"""Every page and API route through the Flask test client, including the 4xx cases."""

import re
from urllib.parse import urlsplit

import pytest
from shapely.geometry import Point

from gis_service import create_app
from gis_service.assets import FOLIUM_ASSETS, VENDOR_URL
from layers.query import FeatureQuery
from tests.support import PASSWORDS, csrf_token, login, make_app, map_config


def store_of(app):
    return app.extensions["gis_store"]


# -- access --------------------------------------------------------------------------------
def test_anonymous_visitors_are_sent_to_login(client):
    response = client.get("/map?status=resolved")
    assert response.status_code == 302
    assert response.headers["Location"] == "/login?next=/map?status%3Dresolved"
    assert client.get("/").headers["Location"] == "/map"
    api = client.get("/api/layers")
    assert api.status_code == 401 and api.json["status"] == 401


def test_login_checks_password_and_csrf(client):
    token = csrf_token(client)
    wrong = client.post("/login", data={"username": "inspector", "password": "nope",
                                        "csrf_token": token})
    assert wrong.status_code == 401
    assert "Sai tên đăng nhập hoặc mật khẩu" in wrong.get_data(as_text=True)
    no_token = client.post("/login", data={"username": "inspector",
                                           "password": PASSWORDS["inspector"]})
    assert no_token.status_code == 400
    assert client.get("/map").status_code == 302  # still logged out


def test_login_follows_only_local_next_links(client):
    for target, expected in [("/map?ward=25195", "/map?ward=25195"),
                             ("//evil.example/x", "/map"), ("https://evil.example", "/map")]:
        response = client.post("/login", data={
            "username": "planner", "password": PASSWORDS["planner"], "next": target,
            "csrf_token": csrf_token(client)})
        assert response.headers["Location"] == expected
        client.post("/logout", data={"csrf_token": csrf_token(client, "/map")})


def test_logout_needs_post_and_csrf(inspector):
    assert inspector.get("/logout").status_code == 405
    assert inspector.post("/logout").status_code == 400
    assert inspector.get("/map").status_code == 200
    inspector.post("/logout", data={"csrf_token": csrf_token(inspector, "/map")})
    assert inspector.get("/map").status_code == 302


def test_session_cookie_and_security_headers(client):
    response = client.post("/login", data={
        "username": "admin", "password": PASSWORDS["admin"], "csrf_token": csrf_token(client)})
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    page = client.get("/map")
    csp = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp and "'unsafe-eval'" not in csp
    nonce = re.search(r"'nonce-([^']+)'", csp).group(1)
    scripts = re.findall(r"<script([^>]*)>", page.get_data(as_text=True))
    # Every script that runs carries the nonce; the map's data island is not a script.
    inline = [s for s in scripts if "src=" not in s and 'type="application/json"' not in s]
    assert inline and all(f'nonce="{nonce}"' in s for s in inline)
    assert page.headers["X-Content-Type-Options"] == "nosniff"
    assert page.headers["Referrer-Policy"] == "same-origin"


def test_secret_key_is_required_outside_development(tmp_path, monkeypatch):
    monkeypatch.delenv("GIS_SECRET_KEY", raising=False)
    with pytest.raises(RuntimeError, match="GIS_SECRET_KEY"):
        create_app({"DATABASE": str(tmp_path / "x.sqlite")})
    assert create_app({"DATABASE": str(tmp_path / "x.sqlite"), "ENV_NAME": "development"})


def test_secure_cookie_is_configurable(tmp_path, monkeypatch):
    monkeypatch.setenv("GIS_SESSION_COOKIE_SECURE", "true")
    monkeypatch.setenv("GIS_SECRET_KEY", "k")
    assert create_app({"DATABASE": str(tmp_path / "x.sqlite")}).config["SESSION_COOKIE_SECURE"]


# -- the inspector map --------------------------------------------------------------------
def test_map_is_vietnamese_by_default_and_english_on_request(inspector):
    vi = inspector.get("/map").get_data(as_text=True)
    assert "Bản đồ môi trường thành phố Đồng Xoài" in vi and "Đăng xuất" in vi
    assert "minh hoạ" in vi  # the sample data is labelled illustrative
    en = inspector.get("/map?lang=en").get_data(as_text=True)
    assert "Environmental map of Đồng Xoài" in en and "Log out" in en
    assert "Illustrative" in en or "illustrative" in en
    assert '"Resolved"' in en and '"Đã xử lý"' in vi  # vocabulary labels in the map config


def test_browser_language_is_honoured(client):
    login(client)
    en = client.get("/map", headers={"Accept-Language": "en-US,en;q=0.9"})
    assert "Log out" in en.get_data(as_text=True)
    vi = client.get("/map", headers={"Accept-Language": "vi-VN,vi;q=0.9,en;q=0.5"})
    assert "Đăng xuất" in vi.get_data(as_text=True)


def test_map_page_is_a_shell_whose_size_does_not_grow_with_data(app, inspector):
    before = inspector.get("/map").get_data(as_text=True)
    store = store_of(app)
    names = [f"Điểm kiểm tra số {i}" for i in range(2000)]
    store.add_features("hotspots", [
        (Point(106.85, 11.52), {"name": n, "category": "water", "severity": 1,
                                "status": "reported", "reported_at": "2024-01-01", "ward": "25195"})
        for n in names])
    after = inspector.get("/map").get_data(as_text=True)
    assert "Điểm kiểm tra số 1999" not in after
    first_sample = store.query_features("hotspots", FeatureQuery(limit=1)).features[0]
    assert first_sample.properties["name"] not in after
    assert abs(len(after) - len(before)) < 600  # only random element ids and the nonce differ


def test_map_filters_reach_the_layers_that_understand_them(inspector):
    page = inspector.get("/map?status=resolved&ward=25201&reported_from=2022-01-01")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    layers = {la["slug"]: la for la in map_config(html)["layers"]}
    assert layers["hotspots"]["params"] == {
        "status": ["resolved"], "ward": ["25201"], "reported_from": ["2022-01-01"]}
    assert layers["collection-points"]["params"] == {"ward": ["25201"]}
    assert layers["wards"]["params"] == {}
    assert '<option value="resolved" selected>' in html
    assert '<option value="25201" selected>' in html


@pytest.mark.parametrize("query", ["status=fixed", "severity=9", "reported_from=32/01/2024",
                                   "colour=red", "bbox=1,2,3,4"])
def test_bad_map_filters_get_a_400_page(inspector, query):
    response = inspector.get(f"/map?{query}")
    assert response.status_code == 400
    text = response.get_data(as_text=True)
    assert "Yêu cầu không hợp lệ" in text and "Traceback" not in text


def test_pages_only_reference_this_site_and_the_tile_host(app, client):
    hosts = set()
    for path in ["/login", "/map", "/map?lang=en", "/nope"]:
        if path == "/map":
            login(client)
        html = client.get(path).get_data(as_text=True)
        for url in re.findall(r"""(?:src|href)=["']([^"']+)["']""", html):
            hosts.add(urlsplit(url).netloc)
        hosts |= {urlsplit(u).netloc for u in re.findall(r"https?://[^\s\"'<>)]+", html)}
    assert hosts <= {""}, hosts  # TILE_URL is empty in tests: nothing but this site


def test_tile_host_is_the_only_outside_host_when_configured(tmp_path):
    app = make_app(tmp_path / "t.sqlite")
    client = login(app.test_client())
    html = client.get("/map").get_data(as_text=True)
    hosts = {urlsplit(u).netloc for u in re.findall(r"https?://[^\s\"'<>)]+", html)}
    assert hosts == {"tile.openstreetmap.org"}


def test_vendor_assets_are_served_locally(client):
    for js, css in FOLIUM_ASSETS.values():
        for _, path in js + css:
            response = client.get(f"{VENDOR_URL}/{path}")
            assert response.status_code == 200, path
            assert len(response.data) > 500
    assert client.get(f"{VENDOR_URL}/leaflet/dist/images/layers.png").status_code == 200
    assert client.get(f"{VENDOR_URL}/leaflet/package.json").status_code == 404
    assert client.get(f"{VENDOR_URL}/leaflet/dist/../../../package.json").status_code == 404
    assert client.get("/static/js/gis_map.js").status_code == 200


def test_unknown_pages_get_a_friendly_404(inspector):
    response = inspector.get("/no-such-page")
    assert response.status_code == 404
    assert "Không tìm thấy" in response.get_data(as_text=True)


# -- API ---------------------------------------------------------------------------------
def test_api_lists_layers_with_their_fields(inspector):
    layers = inspector.get("/api/layers").json["layers"]
    assert [la["slug"] for la in layers] == [
        "wards", "hotspots", "collection-points", "model-communities", "places-of-worship"]
    hot = layers[1]
    assert hot["kind"] == "hotspot" and hot["geometry_type"] == "Point"
    assert hot["features_url"] == "/api/layers/hotspots/features"
    status = next(f for f in hot["fields"] if f["name"] == "status")
    assert status["choices"][0] == {"value": "reported", "vi": "Tiếp nhận", "en": "Reported",
                                    "color": "#e53935"}
    one = inspector.get("/api/layers/wards").json
    assert one["count"] == 8 and len(one["extent"]) == 4


def test_api_features_are_geojson_with_filters(app, inspector):
    data = inspector.get("/api/layers/hotspots/features").json
    assert data["type"] == "FeatureCollection"
    assert data["numberMatched"] == data["numberReturned"] == len(data["features"]) == 150
    feature = data["features"][0]
    assert feature["geometry"]["type"] == "Point" and "status" in feature["properties"]
    resolved = inspector.get("/api/layers/hotspots/features?status=resolved&severity=3").json
    assert resolved["numberMatched"] > 0
    assert all(f["properties"]["status"] == "resolved" and f["properties"]["severity"] == 3
               for f in resolved["features"])
    bbox = "106.85,11.50,106.90,11.55"
    boxed = inspector.get(f"/api/layers/collection-points/features?bbox={bbox}").json
    assert 0 < boxed["numberMatched"] < 300
    for f in boxed["features"]:
        lon, lat = f["geometry"]["coordinates"]
        assert 106.85 <= lon <= 106.90 and 11.50 <= lat <= 11.55


def test_api_paging_follows_next_links(inspector):
    url, seen = "/api/layers/collection-points/features?limit=120&type=bin_cluster", []
    while url:
        page = inspector.get(url).json
        seen += [f["id"] for f in page["features"]]
        url = next((link["href"] for link in page["links"] if link["rel"] == "next"), None)
    total = inspector.get("/api/layers/collection-points/features?type=bin_cluster").json
    assert seen == [f["id"] for f in total["features"]] and len(set(seen)) == len(seen)


def test_api_one_feature(inspector):
    first = inspector.get("/api/layers/wards/features?limit=1").json["features"][0]
    one = inspector.get(f"/api/layers/wards/features/{first['id']}").json
    assert one["properties"]["name"] == first["properties"]["name"]
    assert one["meta"]["version"] == 1


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/api/layers/nope", 404, "No layer named 'nope'"),
        ("/api/layers/nope/features", 404, "No layer"),
        ("/api/layers/hotspots/features/999999", 404, "no feature 999999"),
        ("/api/layers/hotspots/features/abc", 404, ""),
        ("/api/layers/hotspots/features?bbox=1,2,3", 400, "bbox"),
        ("/api/layers/hotspots/features?bbox=106.9,11.6,106.8,11.5", 400, "bbox"),
        ("/api/layers/hotspots/features?limit=100000", 400, "limit"),
        ("/api/layers/hotspots/features?limit=-5", 400, "limit"),
        ("/api/layers/hotspots/features?after=x", 400, "after"),
        ("/api/layers/hotspots/features?status=open", 400, "status must be one of"),
        ("/api/layers/hotspots/features?reported_to=2024-13-01", 400, "YYYY-MM-DD"),
        ("/api/layers/wards/features?status=resolved", 400, "Unknown parameter 'status'"),
    ],
)
def test_api_bad_requests_get_clear_json_errors(inspector, url, status, message):
    response = inspector.get(url, headers={"Accept-Language": "en"})  # the English ids
    assert response.status_code == status
    assert response.is_json and response.json["status"] == status
    assert message in response.json["error"]


def test_api_ward_filter_in_vietnamese_text_is_nfc(app, inspector):
    page = inspector.get("/api/layers/wards/features").json
    names = {f["properties"]["name"] for f in page["features"]}
    assert "Phường Tân Đồng" in names and "Xã Tiến Hưng" in names


def test_every_page_declares_its_language(client):
    assert '<html lang="vi">' in client.get("/login").get_data(as_text=True)
    english = client.get("/login?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and ">Log in<" in english
    assert '<html lang="en">' in client.get("/nope").get_data(as_text=True)  # session keeps it


def test_api_lean_pages_carry_only_the_named_properties(inspector):
    lean = inspector.get("/api/layers/hotspots/features?properties=name,status&limit=5").json
    first = lean["features"][0]
    assert set(first["properties"]) == {"name", "status"} and "meta" not in first
    full = inspector.get(f"/api/layers/hotspots/features/{first['id']}").json
    assert full["properties"]["name"] == first["properties"]["name"]
    lon, lat = first["geometry"]["coordinates"]
    assert abs(lon - full["geometry"]["coordinates"][0]) < 1e-7
    assert round(lon, 7) == lon and round(lat, 7) == lat
    bad = inspector.get("/api/layers/hotspots/features?properties=name,password")
    assert bad.status_code == 400 and "password" in bad.json["error"]


def test_failed_logins_are_rate_limited_per_username(client):
    for _ in range(5):
        wrong = client.post("/login", data={"username": "planner", "password": "guess",
                                            "csrf_token": csrf_token(client)})
        assert wrong.status_code == 401
    blocked = client.post("/login", data={"username": "planner", "password": PASSWORDS[
        "planner"], "csrf_token": csrf_token(client)})
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) > 0
    other = client.post("/login", data={"username": "inspector", "password": PASSWORDS[
        "inspector"], "csrf_token": csrf_token(client)})
    assert other.status_code == 302  # another account from the same address still works
