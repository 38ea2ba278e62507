"""Hostile text planted everywhere users and uploaded files put text stays text in Chromium.

Scripts would not run anyway (the CSP allows only nonce'd scripts), so besides
``window.__xss`` each page is checked for CSP violations and injected elements: either
means some escaping failed. Each page must also show the payloads as text, not drop them.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from urllib.parse import urlencode, urlsplit

import pytest
from playwright.sync_api import Page
from shapely.geometry import Point, box

from layers.kinds import FieldDef
from layers.store import PublicMap
from layers.workflow import move_status
from tests.browser_support import Server, log_in, open_popup_at, serve, settle

pytestmark = pytest.mark.browser

PAYLOADS = (
    '<img src=x onerror="window.__xss=1">',
    "</script><script>window.__xss=2</script>",
    "`${window.__xss=3}`",
    "'\"><svg onload=\"window.__xss=4\">",
    "javascript:window.__xss=5",
    "\"');window.__xss=6;//",
    # Template text: branca renders Folium's output again as Jinja, so these must stay text
    # (test_template_injection.py sends the whole corpus; titles hold at most 200 characters).
    "{{7*7}}",
    "{# x",
)
N = len(PAYLOADS)
ALL = " ".join(PAYLOADS)  # titles: every payload in one string
CSP_WATCH = """window.__csp = [];
document.addEventListener('securitypolicyviolation',
    (e) => window.__csp.push('CSP ' + e.violatedDirective + ' ' + e.sample));"""
# Elements or scripts a payload would have become, and CSP refusals of inline code.
INJECTED = """() => [...document.querySelectorAll('img[src="x"], svg[onload], [onerror], [onload]')]
    .map((e) => e.outerHTML)
    .concat([...document.scripts].filter((s) => s.text.trim().startsWith('window.__xss'))
        .map((s) => s.outerHTML))
    .concat(window.__csp || [])"""


@dataclass
class Scene:
    server: Server
    points: list[Point]  # of the generic layer, one per payload
    hotspots: list[tuple[int, Point]]


@dataclass
class Watch:
    """A tab that records dialogs and uncaught errors; ``check`` asserts nothing ran."""

    page: Page
    dialogs: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def check(self, *texts: str, scope: str = "body") -> None:
        assert self.page.evaluate("() => window.__xss") is None, self.page.url
        assert self.page.evaluate(INJECTED) == [], self.page.url
        assert not self.dialogs and not self.errors, (self.page.url, self.dialogs, self.errors)
        shown = self.page.inner_text(scope)
        for text in texts:
            assert text in shown, (self.page.url, scope, text)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    # No basemap: tiles would only be requests to the internet.
    with serve(tmp_path_factory.mktemp("xss"), TILE_URL="") as server:
        store = server.store
        fields = (FieldDef("name", "text", PAYLOADS[0], PAYLOADS[0]),
                  *(FieldDef(f"f{k}", "text", PAYLOADS[k], PAYLOADS[k]) for k in range(1, N)))
        points = [Point(106.815 + 0.016 * i, 11.487 + 0.011 * i) for i in range(N)]
        store.create_layer(
            "xss-points", ALL, "generic", geometry_type="Point", public=True, fields=fields,
            note=ALL, features=[(pt, {f.name: PAYLOADS[(i + k) % N] for k, f in enumerate(fields)})
                                for i, pt in enumerate(points)])
        store.create_layer("xss-wards", ALL, "ward", public=True, features=[
            (box(106.83 + 0.014 * i, 11.545, 106.838 + 0.014 * i, 11.552),
             {"code": f"9999{i}", "name": p, "type": "phuong"}) for i, p in enumerate(PAYLOADS)])
        spots = [Point(106.842 + 0.013 * i, 11.509) for i in range(N)]
        ids = store.add_features("hotspots", [
            (pt, {"name": p, "description": p, "category": "other", "severity": 2,
                  "status": "verified", "reported_at": "2024-05-01", "ward": f"9999{i}"})
            for i, (p, pt) in enumerate(zip(PAYLOADS, spots, strict=True))], actor="inspector")
        for i, fid in enumerate(ids):
            store.add_inspection("hotspots", fid, inspected_on="2024-05-02",
                                 inspector="inspector", finding=PAYLOADS[i], actor="inspector")
            move_status(store, "hotspots", fid, "in_progress", note=PAYLOADS[(i + 1) % N],
                        actor="inspector",
                        expected_version=store.get_feature("hotspots", fid).version)
        store.update_layer("hotspots", public=True)
        store.save_public_map(PublicMap("xss", ALL, ("xss-points", "hotspots", "xss-wards")))
        yield Scene(server, points, list(zip(ids, spots, strict=True)))


@pytest.fixture
def watch(page: Page) -> Watch:
    watched = Watch(page)
    page.add_init_script(CSP_WATCH)
    page.on("dialog", lambda d: (watched.dialogs.append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: watched.errors.append(str(e)))
    return watched


def open_popup(watch: Watch, at: Point) -> str:
    """Centre ``at`` at street level, click the marker there, the popup's text."""
    popup = open_popup_at(watch.page, at.y, at.x)
    watch.check()
    return popup.text_content() or ""  # not inner_text: the CSS upper-cases the layer title


def check_map_chrome(watch: Watch, wards: bool = True) -> None:
    """Legend, layer control (opened) and the permanent ward labels show the text as text."""
    page = watch.page
    settle(page)
    watch.check(ALL, scope=".gis-legend")
    page.click(".gis-legend summary")  # fold it: a long title makes it as wide as the map
    page.hover(".leaflet-control-layers")
    page.wait_for_selector(".leaflet-control-layers-expanded")
    watch.check(ALL, scope=".leaflet-control-layers-overlays")
    if wards:
        labels = page.locator(".gis-ward-label").all_text_contents()
        assert set(PAYLOADS) <= set(labels), labels
    page.mouse.move(5, 5)


def test_inspector_map(watch: Watch, scene: Scene) -> None:
    log_in(watch.page, scene.server, "/map", role="inspector")
    check_map_chrome(watch)
    options = watch.page.locator("select[name=ward] option").all_text_contents()
    assert set(PAYLOADS) <= set(options)
    text = open_popup(watch, scene.points[0])
    assert all(p in text for p in PAYLOADS) and ALL in text, text
    assert watch.page.locator(".leaflet-popup h3").text_content() == PAYLOADS[0]
    fid, at = scene.hotspots[3]
    text = open_popup(watch, at)
    assert text.count(PAYLOADS[3]) == 3, text  # name, description and ward name
    href = watch.page.locator(".leaflet-popup a.gis-popup-link").get_attribute("href")
    assert href == f"/hotspots/hotspots/{fid}", href


def test_hotspot_detail_and_edit_pages(watch: Watch, scene: Scene) -> None:
    page = watch.page
    for i, (fid, _) in enumerate(scene.hotspots):
        path = f"/hotspots/hotspots/{fid}"
        if i == 0:
            log_in(page, scene.server, path, role="inspector")
        else:
            page.goto(scene.server.url + path)
        p, note = PAYLOADS[i], PAYLOADS[(i + 1) % N]
        watch.check(p, scope="h1")
        watch.check(p, scope="#fields")  # description and ward name
        watch.check(p, note, scope="#timeline")  # finding, status note
        assert page.title().startswith(p)
        page.goto(f"{scene.server.url}{path}/edit")
        watch.check()
        assert page.locator("#hotspot-form input[name=name]").input_value() == p
        assert page.locator("#hotspot-form textarea[name=description]").input_value() == p
        assert page.locator("select[name=ward] option:checked").inner_text() == p


def test_planner_pages(watch: Watch, scene: Scene) -> None:
    page = watch.page
    log_in(page, scene.server, "/layers/", role="planner")
    watch.check(ALL, scope="main table")
    for slug in ("xss-wards", "xss-points"):
        page.goto(f"{scene.server.url}/layers/{slug}/versions")
        watch.check(ALL, scope="h1")
        assert page.locator("input[name=title]").input_value() == ALL
    watch.check(ALL, scope="main table")  # the version note of the first import
    watch.check(*PAYLOADS, scope="#layer-settings")  # the field labels
    page.goto(f"{scene.server.url}/layers/public-maps/")
    watch.check(ALL, scope="main table")


def test_audit_log_and_reflected_filters(watch: Watch, scene: Scene) -> None:
    page = watch.page
    log_in(page, scene.server, "/admin/audit", role="admin")
    watch.check(*PAYLOADS, scope="#audit")  # the status notes
    for p in PAYLOADS:
        page.goto(f"{scene.server.url}/admin/audit?{urlencode({'user': p})}")
        watch.check()
        assert page.locator("input[name=user]").input_value() == p


def test_error_pages_reflect_input_as_text(watch: Watch, scene: Scene) -> None:
    log_in(watch.page, scene.server, "/map", role="inspector")
    for p in PAYLOADS:
        watch.page.goto(f"{scene.server.url}/map?{urlencode({p: '1'})}")
        watch.check(p, scope=".message")


@pytest.mark.parametrize("path", ["/embed/xss", "/public"])
def test_public_maps(watch: Watch, scene: Scene, path: str) -> None:
    page = watch.page
    page.goto(scene.server.url + path)
    check_map_chrome(watch)
    if path == "/embed/xss":
        watch.check(ALL, scope=".brand")
        assert page.title() == ALL
    text = open_popup(watch, scene.points[2])
    assert all(p in text for p in PAYLOADS) and ALL in text, text
    text = open_popup(watch, scene.hotspots[5][1])
    assert text.count(PAYLOADS[5]) == 3, text  # name, description and ward name


def test_citizen_report(watch: Watch, scene: Scene) -> None:
    page = watch.page
    page.goto(scene.server.url + "/public/report")
    settle(page)
    page.select_option("select[name=category]", "odour")
    page.fill("textarea[name=description]", ALL)
    page.fill("input[name=contact]", PAYLOADS[3])
    page.click("#report-form button[type=submit]")  # no place chosen: the form comes back
    page.wait_for_selector(".flash.error")
    watch.check()
    assert page.locator("textarea[name=description]").input_value() == ALL
    assert page.locator("input[name=contact]").input_value() == PAYLOADS[3]
    settle(page)
    frame = page.locator(".folium-map").bounding_box()
    assert frame is not None
    page.mouse.click(frame["x"] + frame["width"] / 2, frame["y"] + frame["height"] / 2)
    assert page.locator("#lat").input_value()
    page.click("#report-form button[type=submit]")
    page.wait_for_url("**/public/report/PA-*")
    code = urlsplit(page.url).path.rsplit("/", 1)[1]
    watch.check(code, scope="#code")
    slug, fid = scene.server.store.find_report(code)
    log_in(page, scene.server, f"/hotspots/{slug}/{fid}", role="inspector")
    watch.check(ALL, scope="#fields")  # the citizen's description, as the description
