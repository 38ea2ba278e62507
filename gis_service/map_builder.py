"""Builds the map pages with Folium: a static shell that holds no data at all.

Folium lays out the map, its controls and one empty container per layer (a marker
cluster for point layers, a feature group otherwise). ``static/js/gis_map.js`` then
fills those containers from the JSON API for the current view, so the page weight does
not grow with the data; a large layer (``MapLayer.tiles``) is drawn from vector tiles,
clustered on the server, instead.

branca renders each element's output again as a Jinja template, so any text placed in
what Folium renders would be evaluated (``{{7*7}}`` in a layer title becomes ``49``).
Nothing from a user, a file or the store therefore goes into Folium: layer titles, ward
names, filters and messages travel in ``config``, which the page's own autoescaped
template writes as a JSON data island (``_map_script.html``) for gis_map.js to read.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import folium
import folium.plugins
from branca.element import MacroElement
from folium.elements import JSCSSMixin
from jinja2 import Template

from layers.kinds import get_kind
from layers.store import Layer
from layers.store.base import POINT_TYPES


@dataclass
class MapLayer:
    """A layer as the map shows it: where to fetch it and which filters apply."""

    layer: Layer
    url: str
    params: dict[str, list[str]] = field(default_factory=dict)
    show: bool = True
    # Whether ``url``/<id> serves one whole feature (the API does; a preview does not).
    detail: bool = True
    # Where a feature's own page is (``page_url`` + id), for hotspots.
    page_url: str | None = None
    # Vector tiles of a large layer (a URL template with {z}/{x}/{y}); None: GeoJSON pages.
    tiles: str | None = None
    # A tiled layer's count of what its filters match, from the server: the map draws
    # clusters, so it cannot count. ``count_more``: there are more than ``count``.
    count: int | None = None
    count_more: bool = False


@dataclass
class MapSettings:
    """Everything about the page that is not a layer."""

    bounds: tuple[float, float, float, float]
    lang: str
    tile_url: str
    tile_attribution: str
    messages: dict[str, str]
    ward_names: dict[str, str]
    page_size: int
    # Form for a new hotspot at a point (``?lat=&lon=`` appended), when the user may add.
    add_url: str | None = None
    # Which controls to show (a public map may leave some out).
    controls: tuple[str, ...] = ("fullscreen", "locate", "legend")
    # Clicking the map fills the form fields #lat and #lon (the citizen report form).
    pick_location: bool = False


CONFIG_ID = "gis-map-config"  # the id of the JSON data island the page writes


class DataLoader(MacroElement):
    """Hands the map and its layer containers to gis_map.js, which reads the rest from the
    page's data island. The template's only inputs are Folium's own variable names."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        GisMap.start({{ this._parent.get_name() }}, [{{ this.groups }}], "{{ this.config_id }}");
        {% endmacro %}
        """
    )

    def __init__(self, groups: list[folium.map.Layer]) -> None:
        super().__init__()
        self._name = "DataLoader"
        self.groups = ", ".join(g.get_name() for g in groups)
        self.config_id = CONFIG_ID


class VectorTiles(JSCSSMixin):
    """Loads Leaflet.VectorGrid on a map that has a tiled layer; assets.py points its
    ``default_js`` at /static/vendor."""

    def __init__(self) -> None:
        super().__init__()
        self._name = "VectorTiles"


def layer_config(ml: MapLayer, lang: str) -> dict[str, Any]:
    """What the browser needs to fetch, draw, colour and label one layer."""
    layer = ml.layer
    kind = get_kind(layer.kind)
    color_field = layer.color_by
    colors: dict[str, str] = {}
    for f in layer.fields:
        if f.name == color_field:
            colors = {str(c.value): c.color for c in f.choices}
    names = {f.name for f in layer.fields}
    wanted = [n for n in dict.fromkeys((kind.title_field, color_field)) if n in names]
    return {
        "slug": layer.slug,
        "kind": layer.kind,
        # The map asks only for what it draws; a popup fetches the whole feature on click.
        "properties": wanted if ml.detail else [],
        "detail": ml.detail,
        "page_url": ml.page_url,
        "title": layer.title,
        "url": ml.url,
        "params": ml.params,
        "tiles": ml.tiles,
        "count": ml.count,
        "count_more": ml.count_more,
        "points": layer.geometry_type in POINT_TYPES,
        "polygons": layer.kind == "ward",
        "color": layer.style.get("color", kind.color),
        "color_by": color_field if colors else None,
        "colors": colors,
        "title_field": kind.title_field,
        "fields": [
            {
                "name": f.name,
                "label": f.label(lang),
                "type": f.type,
                "choices": {str(c.value): c.label(lang) for c in f.choices},
            }
            for f in layer.fields
        ],
        "legend": [
            {"label": c.label(lang), "color": c.color}
            for f in layer.fields
            if f.name == color_field
            for c in f.choices
        ],
    }


def build_map(layers: list[MapLayer], settings: MapSettings
              ) -> tuple[folium.Map, dict[str, Any]]:
    """The map shell and the data island's content, for ``settings.bounds``
    (minx, miny, maxx, maxy). Only ``settings``' own strings (the app's catalogue, the
    operator's tile settings) and numbers reach Folium; all data goes in the config."""
    minx, miny, maxx, maxy = settings.bounds
    m = folium.Map(
        location=[(miny + maxy) / 2, (minx + maxx) / 2],
        zoom_start=12,
        tiles=None,
        control_scale=False,  # gis_map.js adds a metric-only scale bar
        zoomSnap=0.5,
        maxZoom=19,  # on the map itself: clusters need it even without a tile layer
    )
    if settings.tile_url:
        folium.TileLayer(
            tiles=settings.tile_url,
            attr=settings.tile_attribution,
            name=settings.messages["basemap"],
            max_zoom=19,
            control=False,
        ).add_to(m)
    groups: list[folium.map.Layer] = []
    for ml in layers:
        # No name and no icon function here: gis_map.js builds the layer control with
        # the titles as text, and the cluster icons, from the data island.
        # A tiled layer is clustered on the server; its group holds the tile layer.
        if ml.layer.geometry_type in POINT_TYPES and not ml.tiles:
            group: folium.map.Layer = folium.plugins.MarkerCluster(
                show=ml.show,
                options={"maxClusterRadius": 50, "disableClusteringAtZoom": 17},
            )
        else:
            group = folium.FeatureGroup(show=ml.show)
        group.add_to(m)
        groups.append(group)
    if "fullscreen" in settings.controls:
        folium.plugins.Fullscreen(
            title=settings.messages["fullscreen"],
            title_cancel=settings.messages["exit_fullscreen"],
        ).add_to(m)
    if "locate" in settings.controls:
        folium.plugins.LocateControl(
            strings={"title": settings.messages["locate"]}, flyTo=True
        ).add_to(m)
    if any(ml.tiles for ml in layers):
        VectorTiles().add_to(m)
    DataLoader(groups).add_to(m)
    config = {
        # Fitted by the script without animation, so the first fetch is for the final view.
        "bounds": [[miny, minx], [maxy, maxx]],
        "layers": [layer_config(ml, settings.lang) for ml in layers],
        "ward_names": settings.ward_names,
        "messages": settings.messages,
        "page_size": settings.page_size,
        "add_url": settings.add_url,
        "legend": "legend" in settings.controls,
        "pick_location": settings.pick_location,
        "lang": settings.lang,
    }
    return m, config


def render_parts(m: folium.Map, config: dict[str, Any], nonce: str) -> dict[str, Any]:
    """Folium's header, body and script, with our CSP nonce on every inline script tag,
    and the config that ``_map_script.html`` writes as the data island."""
    root = m.get_root()
    root.render()
    header = root.header.render().replace("<script", f'<script nonce="{nonce}"')
    return {"header": header, "body": root.html.render(), "script": root.script.render(),
            "config": config, "config_id": CONFIG_ID}
