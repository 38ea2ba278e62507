"""Self-hosted front-end assets: pinned npm packages served by the app, never a CDN.

Folium keeps its JS/CSS lists as class attributes, so they are rewritten here once, for
the map and every plugin the app uses, to point at ``/static/vendor/...``.
"""

from __future__ import annotations

from pathlib import Path

import folium
import folium.plugins
from flask import Blueprint, Flask, abort, current_app, send_from_directory
from flask.typing import ResponseReturnValue

from .map_builder import VectorTiles

VENDOR_URL = "/static/vendor"

# Only these folders of node_modules are served (no package.json, no sources).
SERVED_DIRS = (
    "leaflet/dist",
    "leaflet.markercluster/dist",
    "leaflet.fullscreen",
    "leaflet.locatecontrol/dist",
    "leaflet.vectorgrid/dist",
)
SERVED_SUFFIXES = (".js", ".css", ".png", ".svg")

FOLIUM_ASSETS: dict[type, tuple[list[tuple[str, str]], list[tuple[str, str]]]] = {
    folium.Map: (
        [("leaflet", "leaflet/dist/leaflet.js")],
        [("leaflet_css", "leaflet/dist/leaflet.css")],
    ),
    folium.plugins.MarkerCluster: (
        [("markerclusterjs", "leaflet.markercluster/dist/leaflet.markercluster.js")],
        [
            ("markerclustercss", "leaflet.markercluster/dist/MarkerCluster.css"),
            ("markerclusterdefaultcss", "leaflet.markercluster/dist/MarkerCluster.Default.css"),
        ],
    ),
    folium.plugins.Fullscreen: (
        [("Control.Fullscreen.js", "leaflet.fullscreen/Control.FullScreen.js")],
        [("Control.FullScreen.css", "leaflet.fullscreen/Control.FullScreen.css")],
    ),
    folium.plugins.LocateControl: (
        [("Control_locate_min_js", "leaflet.locatecontrol/dist/L.Control.Locate.min.js")],
        [("Control_locate_min_css", "leaflet.locatecontrol/dist/L.Control.Locate.min.css")],
    ),
    VectorTiles: (
        [("leaflet_vectorgrid", "leaflet.vectorgrid/dist/Leaflet.VectorGrid.bundled.min.js")],
        [],
    ),
}

bp = Blueprint("vendor", __name__)


def node_modules() -> Path:
    return Path(current_app.config["ASSETS_DIR"]) / "node_modules"


@bp.get(f"{VENDOR_URL}/<path:filename>")
def vendor(filename: str) -> ResponseReturnValue:
    """Serve one pinned asset file from the allow-listed package folders."""
    if not filename.startswith(SERVED_DIRS) or not filename.endswith(SERVED_SUFFIXES):
        abort(404)
    return send_from_directory(node_modules(), filename, max_age=86400)


def point_folium_at_vendor() -> None:
    """Replace Folium's CDN asset lists with the app's own URLs (idempotent)."""
    for cls, (js, css) in FOLIUM_ASSETS.items():
        cls.default_js = [(name, f"{VENDOR_URL}/{path}") for name, path in js]
        cls.default_css = [(name, f"{VENDOR_URL}/{path}") for name, path in css]


def init_app(app: Flask) -> None:
    missing = [
        path
        for _, (js, css) in FOLIUM_ASSETS.items()
        for _, path in js + css
        if not (Path(app.config["ASSETS_DIR"]) / "node_modules" / path).is_file()
    ]
    if missing:
        raise RuntimeError(
            f"Front-end assets missing under {app.config['ASSETS_DIR']}/node_modules "
            f"({missing[0]} …); run `make assets` (npm ci) first"
        )
    point_folium_at_vendor()
    app.register_blueprint(bp)
