/*
 * Fills the Folium-built map with features fetched from the JSON API for the current
 * view. Every value from the data is written with textContent or as a DOM node, never
 * through innerHTML, so names like "<img onerror=...>" stay text.
 */
(function () {
  'use strict';

  var state = { ready: false, layers: {} };
  window.gisState = state;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }

  function safeColor(value, fallback) {
    return /^#[0-9a-fA-F]{3,8}$/.test(String(value)) ? value : fallback;
  }

  function safeClass(slug) {
    return String(slug).replace(/[^a-z0-9_-]/g, '');
  }

  function formatValue(field, value, cfg) {
    if (value === null || value === undefined || value === '') { return ''; }
    if (field.name === 'ward' && cfg.ward_names[value]) { return cfg.ward_names[value]; }
    if (field.type === 'choice' && field.choices[String(value)] !== undefined) {
      return field.choices[String(value)];
    }
    if (field.type === 'boolean') { return value ? cfg.messages.yes : cfg.messages.no; }
    if (field.type === 'date' && /^\d{4}-\d{2}-\d{2}$/.test(value) && cfg.lang !== 'en') {
      var p = value.split('-');
      return p[2] + '/' + p[1] + '/' + p[0];
    }
    if (field.type === 'year') { return String(value); }  // 2020, not 2.020
    if (typeof value === 'number') { return value.toLocaleString(cfg.lang === 'en' ? 'en' : 'vi'); }
    return String(value);
  }

  function popupContent(layerCfg, feature, cfg) {
    var props = feature.properties || {};
    var box = el('div', 'gis-popup');
    box.appendChild(el('div', 'gis-popup-kind', layerCfg.title));
    box.appendChild(el('h3', null, props[layerCfg.title_field] || ('#' + feature.id)));
    var table = el('table');
    var fields = layerCfg.fields.length ? layerCfg.fields : Object.keys(props).map(function (k) {
      return { name: k, label: k, type: 'text', choices: {} };
    });
    fields.forEach(function (field) {
      if (field.name === layerCfg.title_field) { return; }
      var text = formatValue(field, props[field.name], cfg);
      if (text === '') { return; }
      var row = el('tr');
      row.appendChild(el('th', null, field.label));
      row.appendChild(el('td', null, text));
      table.appendChild(row);
    });
    box.appendChild(table);
    if (layerCfg.page_url) {
      var link = el('a', 'gis-popup-link', cfg.messages.details);
      link.href = layerCfg.page_url + encodeURIComponent(feature.id);
      box.appendChild(link);
    }
    return box;
  }

  function featureColor(layerCfg, feature) {
    var props = feature.properties || {};
    var base = safeColor(layerCfg.color, '#3f51b5');
    if (!layerCfg.color_by) { return base; }
    return safeColor(layerCfg.colors[String(props[layerCfg.color_by])], base);
  }

  // One icon per layer and colour: Leaflet builds each marker's element from it only when
  // the marker is shown, so 100 000 features do not mean 100 000 DOM nodes up front.
  var icons = {};
  function markerIcon(layerCfg, color) {
    var key = layerCfg.slug + ' ' + color;
    if (!icons[key]) {
      icons[key] = L.divIcon({
        html: '<span class="gis-dot" style="background:' + color + '"></span>',  // a checked #hex
        className: 'gis-marker gis-marker-' + safeClass(layerCfg.slug),
        iconSize: [16, 16]
      });
    }
    return icons[key];
  }

  // A "loading" box for a popup; the whole feature ``id`` is fetched from the API and its
  // content handed to ``show`` when it arrives.
  function loadFeature(layerCfg, id, cfg, show) {
    var box = el('div', 'gis-popup-loading', cfg.messages.loading);
    fetch(layerCfg.url + '/' + encodeURIComponent(id),
          { credentials: 'same-origin', headers: { Accept: 'application/json' } })
      .then(function (r) {
        if (!r.ok) { throw new Error('HTTP ' + r.status); }
        return r.json();
      })
      .then(function (full) { show(popupContent(layerCfg, full, cfg)); })
      .catch(function () { box.textContent = cfg.messages.load_error; });
    return box;
  }

  // A popup is built when it opens. Layers fetched with only the drawn properties get the
  // whole feature from the API then.
  function bindPopup(layer, layerCfg, feature, cfg) {
    layer.bindPopup(function () {
      if (!layerCfg.detail) { return popupContent(layerCfg, feature, cfg); }
      return loadFeature(layerCfg, feature.id, cfg, function (content) {
        // Replacing the content function with the element also stops Leaflet from
        // calling the function (and fetching) again on the next update.
        layer.getPopup().setContent(content);
      });
    }, cfg.popup);
  }

  // Popups fit between the controls in the corners (zoom and tools on the left, the layer
  // control on the right, legend, scale and attribution below), phones included: they are
  // narrower than the gap, scroll past its height, and are panned clear of the edges.
  function popupOptions(map) {
    var size = map.getSize();
    return {
      maxWidth: Math.max(150, Math.min(320, size.x - 170)),
      maxHeight: Math.max(150, size.y - 200),
      autoPanPaddingTopLeft: L.point(56, 64),
      autoPanPaddingBottomRight: L.point(56, 76)
    };
  }

  function toLeaflet(layerCfg, data, cfg) {
    return L.geoJSON(data, {
      pointToLayer: function (feature, latlng) {
        return L.marker(latlng, { icon: markerIcon(layerCfg, featureColor(layerCfg, feature)) });
      },
      style: function (feature) {
        var color = featureColor(layerCfg, feature);
        return layerCfg.polygons
          ? { color: color, weight: 2, fillOpacity: 0.04, className: 'gis-ward gis-shape-' + safeClass(layerCfg.slug) }
          : { color: color, weight: 2, fillOpacity: 0.2, className: 'gis-shape-' + safeClass(layerCfg.slug) };
      },
      onEachFeature: function (feature, layer) {
        // On a map for picking a place, a click must pick, not open a popup.
        if (!cfg.pick_location) { bindPopup(layer, layerCfg, feature, cfg); }
        if (layerCfg.polygons) {
          var name = (feature.properties || {})[layerCfg.title_field];
          layer.bindTooltip(el('span', null, name), {
            permanent: true, direction: 'center', className: 'gis-ward-label'
          });
        }
      }
    });
  }

  function query(layerCfg, bounds, cfg) {
    var params = new URLSearchParams();
    Object.keys(layerCfg.params).forEach(function (key) {
      layerCfg.params[key].forEach(function (v) { params.append(key, v); });
    });
    params.set('bbox', [bounds.getWest(), bounds.getSouth(), bounds.getEast(), bounds.getNorth()]
      .map(function (x) { return Math.max(-180, Math.min(180, x)).toFixed(6); }).join(','));
    params.set('limit', String(cfg.page_size));
    if (layerCfg.properties.length) { params.set('properties', layerCfg.properties.join(',')); }
    return layerCfg.url + '?' + params.toString();
  }

  // Small layers' pages go before the tiles of large ones (priority 'low' there).
  async function getPage(url, signal) {
    var response = await fetch(url, { signal: signal, credentials: 'same-origin', priority: 'high',
                                      headers: { Accept: 'application/json' } });
    if (!response.ok) { throw new Error('HTTP ' + response.status); }
    return response.json();
  }

  // Each page links to the next one (it resumes after the page's last feature).
  async function fetchAll(url, signal) {
    var features = [];
    while (url) {
      var page = await getPage(url, signal);
      features = features.concat(page.features);
      var next = (page.links || []).filter(function (l) { return l.rel === 'next'; })[0];
      url = next ? next.href : null;
    }
    return { type: 'FeatureCollection', features: features };
  }

  function clampBounds(bounds) {
    var sw = bounds.getSouthWest(), ne = bounds.getNorthEast();
    return L.latLngBounds([Math.max(-90, sw.lat), Math.max(-180, sw.lng)],
                          [Math.min(90, ne.lat), Math.min(180, ne.lng)]);
  }

  function addLegend(map, cfg) {
    var control = L.control({ position: 'bottomright' });
    control.onAdd = function () {
      var box = el('div', 'gis-legend leaflet-bar');
      var details = el('details');
      // Open only where it leaves most of the map free; folded on phones.
      var size = map.getSize();
      details.open = size.x > 700 && size.y > 450;
      details.appendChild(el('summary', null, cfg.messages.legend));
      cfg.layers.forEach(function (layerCfg) {
        var section = el('div', 'gis-legend-layer');
        section.appendChild(el('strong', null, layerCfg.title));
        var status = el('span', 'gis-legend-count');
        status.dataset.slug = layerCfg.slug;
        section.appendChild(status);
        var items = layerCfg.legend.length ? layerCfg.legend
          : [{ label: layerCfg.title, color: layerCfg.color }];
        items.forEach(function (item) {
          var row = el('div', 'gis-legend-item');
          var swatch = el('span', 'gis-dot');
          swatch.style.background = safeColor(item.color, '#3f51b5');
          row.appendChild(swatch);
          row.appendChild(el('span', null, item.label));
          section.appendChild(row);
        });
        details.appendChild(section);
      });
      box.appendChild(details);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    control.addTo(map);
  }

  // The report form: a click (or the browser's location) fills #lat and #lon.
  function pickLocation(map) {
    var marker = null;
    var lat = document.getElementById('lat'), lon = document.getElementById('lon');
    function place(latlng) {
      if (marker) { marker.setLatLng(latlng); } else { marker = L.marker(latlng).addTo(map); }
      lat.value = latlng.lat.toFixed(6);
      lon.value = latlng.lng.toFixed(6);
    }
    map.on('click', function (e) { place(e.latlng); });
    map.on('locationfound', function (e) { place(e.latlng); });
    function typed() {
      var la = Number(lat.value), lo = Number(lon.value);
      if (lat.value && lon.value && isFinite(la) && isFinite(lo)) { place(L.latLng(la, lo)); }
    }
    lat.addEventListener('change', typed);
    lon.addEventListener('change', typed);
    typed();
  }

  function showCount(slug, text) {
    document.querySelectorAll('.gis-legend-count').forEach(function (node) {
      if (node.dataset.slug === slug) { node.textContent = text; }
    });
  }

  // Leaflet's layer control writes names with innerHTML: hand it the title as escaped text.
  function escapedName(text) {
    return el('span', null, text).innerHTML;
  }

  // A cluster's icon in its layer's colour, so that a "16" says what it counts.
  function clusterIcon(cluster, layerCfg) {
    var n = cluster.getChildCount();
    var size = n < 10 ? 'small' : (n < 100 ? 'medium' : 'large');
    var inner = el('div');
    inner.style.background = safeColor(layerCfg.color, '#3f51b5');
    inner.appendChild(el('span', null, n));
    return L.divIcon({
      html: inner,
      className: 'marker-cluster marker-cluster-' + size + ' gis-cluster gis-cluster-' +
        safeClass(layerCfg.slug),
      iconSize: L.point(40, 40)
    });
  }

  // The view lives in the URL's fragment (#map=zoom/lat/lon), beside the filters in the
  // query, so a link reopens the same place.
  function readView() {
    var m = /(?:^#|&)map=(\d{1,2}(?:\.\d+)?)\/(-?\d{1,2}(?:\.\d+)?)\/(-?\d{1,3}(?:\.\d+)?)/
      .exec(window.location.hash);
    if (!m) { return null; }
    var zoom = Number(m[1]), lat = Number(m[2]), lng = Number(m[3]);
    if (zoom > 19 || Math.abs(lat) > 90 || Math.abs(lng) > 180) { return null; }
    return { zoom: zoom, center: L.latLng(lat, lng) };
  }

  function writeView(map) {
    var c = map.getCenter();
    var hash = '#map=' + map.getZoom() + '/' + c.lat.toFixed(5) + '/' + c.lng.toFixed(5);
    history.replaceState(history.state, '', window.location.pathname + window.location.search + hash);
  }

  // A chain link drawn as SVG: an emoji would need a font the device may lack.
  function linkIcon() {
    var ns = 'http://www.w3.org/2000/svg';
    var svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '16');
    svg.setAttribute('height', '16');
    svg.setAttribute('aria-hidden', 'true');
    ['M10 14a4 4 0 0 0 5.7 0l3-3a4 4 0 0 0-5.7-5.7l-1 1',
     'M14 10a4 4 0 0 0-5.7 0l-3 3a4 4 0 0 0 5.7 5.7l1-1'].forEach(function (d) {
      var path = document.createElementNS(ns, 'path');
      path.setAttribute('d', d);
      path.setAttribute('fill', 'none');
      path.setAttribute('stroke', '#333');
      path.setAttribute('stroke-width', '2');
      path.setAttribute('stroke-linecap', 'round');
      svg.appendChild(path);
    });
    return svg;
  }

  function addCopyLink(map, cfg) {
    var control = L.control({ position: 'topleft' });
    control.onAdd = function () {
      var box = el('div', 'leaflet-bar gis-copy-link');
      var button = el('a');
      button.appendChild(linkIcon());
      button.href = '#';
      button.setAttribute('role', 'button');
      button.title = cfg.messages.copy_link;
      button.setAttribute('aria-label', cfg.messages.copy_link);
      var note = el('span', 'gis-copy-note');
      note.setAttribute('role', 'status');
      L.DomEvent.on(button, 'click', function (e) {
        L.DomEvent.preventDefault(e);
        writeView(map);
        var done = function () { note.textContent = cfg.messages.link_copied; };
        if (navigator.clipboard && navigator.clipboard.writeText) {
          navigator.clipboard.writeText(window.location.href).then(done, function () {
            note.textContent = window.location.href;
          });
        } else {
          note.textContent = window.location.href;
        }
        setTimeout(function () { note.textContent = ''; }, 4000);
      });
      box.appendChild(button);
      box.appendChild(note);
      L.DomEvent.disableClickPropagation(box);
      return box;
    };
    control.addTo(map);
  }

  // -- Large layers: vector tiles (Leaflet.VectorGrid), clustered on the server ----------

  var TILE_EXTENT = 4096;  // the MVT extent the tile server writes

  function tileUrl(layerCfg) {
    var params = new URLSearchParams();
    Object.keys(layerCfg.params).forEach(function (key) {
      layerCfg.params[key].forEach(function (v) { params.append(key, v); });
    });
    var query = params.toString();  // encoded, so no "{...}" reaches VectorGrid's template
    return layerCfg.tiles + (query ? '?' + query : '');
  }

  function countText(n, cfg) {
    return Number(n).toLocaleString(cfg.lang === 'en' ? 'en' : 'vi');
  }

  // A cluster's mix by the colour field ({"reported": 12, ...}), as [label, colour, n].
  function clusterMix(layerCfg, counts) {
    var field = layerCfg.fields.filter(function (f) { return f.name === layerCfg.color_by; })[0];
    var mix = [];
    var parsed = {};
    try { parsed = JSON.parse(counts || '{}') || {}; } catch (e) { parsed = {}; }
    Object.keys(parsed).forEach(function (value) {
      var n = Number(parsed[value]);
      if (!(n > 0)) { return; }
      var props = {};
      props[layerCfg.color_by] = value;
      var known = field && Object.prototype.hasOwnProperty.call(field.choices, value);
      mix.push([known ? field.choices[value] : value, featureColor(layerCfg, { properties: props }), n]);
    });
    return mix.sort(function (a, b) { return b[2] - a[2]; });
  }

  // A server cluster: a disc sized by its count, a ring showing its mix by colour, the
  // count as text; clicking it zooms in.
  function clusterMarker(layerCfg, props, latlng, map, cfg, scale) {
    var count = Math.max(0, Math.round(Number(props.count) || 0));
    var mix = clusterMix(layerCfg, props.counts);
    // 22 px for a few points to about 50 for a million: clusters lie on a 64 px grid of
    // their tile, which is drawn at ``scale`` between zoom levels.
    var size = Math.round((22 + 5 * Math.log10(Math.max(1, count))) * scale);
    var base = safeColor(layerCfg.color, '#3f51b5');
    var total = mix.reduce(function (n, m) { return n + m[2]; }, 0);
    var ring = el('div', 'gis-tile-cluster-ring');
    if (total) {
      var at = 0;
      ring.style.background = 'conic-gradient(' + mix.map(function (m) {
        var from = at;
        at += 360 * m[2] / total;
        return m[1] + ' ' + from.toFixed(1) + 'deg ' + at.toFixed(1) + 'deg';  // checked #hex
      }).join(', ') + ')';
    } else {
      ring.style.background = base;
    }
    ring.style.width = ring.style.height = size + 'px';
    var compact = new Intl.NumberFormat(cfg.lang === 'en' ? 'en' : 'vi',
                                        { notation: 'compact', maximumFractionDigits: 1 });
    ring.appendChild(el('span', 'gis-tile-cluster-count', compact.format(count)));
    ring.dataset.count = String(count);
    ring.title = [layerCfg.title + ': ' + countText(count, cfg)].concat(mix.map(function (m) {
      return m[0] + ': ' + countText(m[2], cfg);
    })).join('\n');
    var marker = L.marker(latlng, {
      icon: L.divIcon({ html: ring, iconSize: L.point(size, size),
                        className: 'gis-tile-cluster gis-tile-cluster-' + safeClass(layerCfg.slug) })
    });
    marker.on('click', function () {
      map.setView(latlng, Math.min(map.getZoom() + 2, map.getMaxZoom()));
    });
    return marker;
  }

  function tileStyle(layerCfg, kinds) {
    return function (props) {
      if (props.cluster) { return []; }  // drawn as counted icons instead
      var color = featureColor(layerCfg, { properties: props });
      var type = (kinds.get(props) || {}).type;
      if (type === 1) {
        return { radius: 6, weight: 2, color: '#ffffff', fill: true, fillColor: color, fillOpacity: 0.95 };
      }
      if (type === 2) { return { color: color, weight: 2 }; }
      return { color: color, weight: layerCfg.polygons ? 2 : 1, fill: true, fillColor: color,
               fillOpacity: layerCfg.polygons ? 0.04 : 0.2 };
    };
  }

  // One large layer: plain features painted on canvas tiles, clusters as counted icons.
  // VectorGrid keeps only a feature's properties, so its id and geometry type are kept
  // here by properties object.
  function tiledLayer(layerCfg, group, map, cfg, onChange) {
    var kinds = new WeakMap();
    var clusters = L.layerGroup();
    var byTile = {};  // tile key -> { markers, features }
    var pending = {};  // tile key -> the AbortController of its request
    var styles = {};
    styles[layerCfg.slug] = tileStyle(layerCfg, kinds);
    var Layer = L.VectorGrid.Protobuf.extend({
      // Each request can be given up: a tile that leaves the view before it arrives does
      // not hold a connection the next view's tiles need.
      _getVectorTilePromise: function (coords) {
        var self = this;
        var key = this._tileCoordsToKey(coords);
        var controller = new AbortController();
        var options = this.options.fetchOptions;
        pending[key] = controller;
        this.options.fetchOptions = L.extend({}, options, { signal: controller.signal });
        try {
          var promise = L.VectorGrid.Protobuf.prototype._getVectorTilePromise.call(this, coords);
        } finally {
          this.options.fetchOptions = options;
        }
        function settled() {
          if (pending[key] === controller) { delete pending[key]; }
        }
        return promise
          .then(function (tile) { settled(); return self._split(coords, tile); },
                function () { settled(); return { layers: {} }; });
      },
      // Leaflet says "load" when a tile arrives and none is awaited; say it too when the
      // last tile awaited leaves the view instead.
      _removeTile: function (key) {
        if (pending[key]) { pending[key].abort(); delete pending[key]; }
        L.VectorGrid.Protobuf.prototype._removeTile.call(this, key);
        if (this._loading && this._noTilesToLoad()) {
          this._loading = false;
          this.fire('load');
        }
      },
      // Takes the clusters out of a tile (each drawn once, by the tile it lies in).
      _split: function (coords, tile) {
        var key = this._tileCoordsToKey(coords);
        var data = tile.layers[layerCfg.slug];
        var layers = {};
        var entry = { markers: [], features: 0 };
        if (data && this._tiles[key]) {
          var size = this.getTileSize();
          var extent = data.extent || TILE_EXTENT;
          var scale = Math.max(0.7, Math.min(1, map.getZoomScale(map.getZoom(), coords.z)));
          data.features = data.features.filter(function (feat) {
            var props = feat.properties || {};
            if (!props.cluster) {
              kinds.set(props, { id: feat.id, type: feat.type });
              entry.features += 1;
              return true;
            }
            var at = feat.geometry[0] && feat.geometry[0][0];
            if (at && at.x >= 0 && at.y >= 0 && at.x < extent && at.y < extent) {
              var latlng = map.unproject(L.point((coords.x + at.x / extent) * size.x,
                                                 (coords.y + at.y / extent) * size.y), coords.z);
              var marker = clusterMarker(layerCfg, props, latlng, map, cfg, scale);
              entry.markers.push(marker);
              clusters.addLayer(marker);
            }
            return false;
          });
          layers[layerCfg.slug] = data;
          byTile[key] = entry;
          onChange();
        }
        return { layers: layers };
      }
    });
    var grid = new Layer(tileUrl(layerCfg), {
      rendererFactory: L.canvas.tile,
      vectorTileLayerStyles: styles,
      interactive: false,  // clicks are matched in ``hit``, so shapes below stay clickable
      getFeatureId: function (feat) { return feat.id; },
      pane: 'gisTiles',
      maxZoom: map.getMaxZoom(),
      fetchOptions: { credentials: 'same-origin', priority: 'low' }
    });
    grid.on('tileunload', function (e) {
      var key = grid._tileCoordsToKey(e.coords);
      (byTile[key] ? byTile[key].markers : []).forEach(function (m) { clusters.removeLayer(m); });
      delete byTile[key];
      onChange();
    });
    group.addLayer(grid);
    group.addLayer(clusters);
    return {
      grid: grid,
      // What the current tiles hold: plain features and clusters.
      drawn: function () {
        return Object.keys(byTile).reduce(function (n, key) {
          return { features: n.features + byTile[key].features,
                   clusters: n.clusters + byTile[key].markers.length };
        }, { features: 0, clusters: 0 });
      },
      // The feature under a click at ``latlng``, with its id, or null.
      hit: function (latlng) {
        var z = grid._tileZoom;
        if (z === undefined || !grid._vectorTiles) { return null; }
        var size = grid.getTileSize();
        var p = map.project(latlng, z);
        var coords = p.unscaleBy(size).floor();
        coords.z = z;
        var renderer = grid._vectorTiles[grid._tileCoordsToKey(coords)];
        if (!renderer) { return null; }
        var local = p.subtract(coords.scaleBy(size));
        var found = null;
        Object.keys(renderer._layers).forEach(function (id) {
          var shape = renderer._layers[id];
          if (!shape._pxBounds && shape.makeInteractive) { shape.makeInteractive(); }
          if (kinds.get(shape.properties) && shape._containsPoint(local)) { found = shape; }
        });
        if (!found) { return null; }
        var meta = kinds.get(found.properties);
        return { id: meta.id, properties: found.properties,
                 // A point's popup stands on the point, a shape's where it was clicked.
                 latlng: meta.type === 1 ? map.unproject(found._point.add(coords.scaleBy(size)), z)
                   : latlng };
      }
    };
  }

  var GisMap = {
    // ``containers`` are Folium's empty layer groups, in the order of the config's layers;
    // the config itself is the page's JSON data island (never a template).
    start: function (map, containers, configId) {
      var cfg = JSON.parse(document.getElementById(configId).textContent);
      var groups = {};
      var control = L.control.layers(null, null, { collapsed: true });
      cfg.layers.forEach(function (layerCfg, i) {
        var group = containers[i];
        groups[layerCfg.slug] = group;
        if (layerCfg.points && !layerCfg.tiles && group.options) {
          group.options.iconCreateFunction = function (c) { return clusterIcon(c, layerCfg); };
        }
        control.addOverlay(group, escapedName(layerCfg.title));
      });
      if (cfg.layers.length) { control.addTo(map); }
      var loaded = {};
      var controller = null;
      var view = readView();
      if (view) {
        map.setView(view.center, view.zoom, { animate: false });
      } else {
        map.fitBounds(cfg.bounds, { animate: false });
      }
      L.control.scale({ imperial: false }).addTo(map);
      cfg.popup = popupOptions(map);
      map.on('resize', function () { cfg.popup = popupOptions(map); });
      addCopyLink(map, cfg);
      if (cfg.legend && cfg.layers.length) { addLegend(map, cfg); }
      if (cfg.pick_location) { pickLocation(map); }

      // Ready when the GeoJSON layers have their pages and the tiled ones their tiles.
      var fetching = true;
      var tiled = {};
      function updateReady() {
        state.ready = !fetching && Object.keys(tiled).every(function (slug) {
          return !tiled[slug].loading;
        });
      }

      // Small layers come as GeoJSON pages for the view; only those switched on.
      async function refresh() {
        var view = clampBounds(map.getBounds().pad(0.25));
        var pending = cfg.layers.filter(function (l) {
          return !l.tiles && map.hasLayer(groups[l.slug]) &&
            !(loaded[l.slug] && loaded[l.slug].contains(map.getBounds()));
        });
        if (!pending.length) { fetching = false; updateReady(); return; }
        if (controller) { controller.abort(); }
        controller = new AbortController();
        var signal = controller.signal;
        fetching = true;
        updateReady();
        await Promise.all(pending.map(async function (layerCfg) {
          var group = groups[layerCfg.slug];
          state.layers[layerCfg.slug] = { loading: true, count: 0, error: null };
          showCount(layerCfg.slug, ' · ' + cfg.messages.loading);
          try {
            var data = await fetchAll(query(layerCfg, view, cfg), signal);
            group.clearLayers();
            if (layerCfg.points && group.addLayers) {
              group.addLayers(toLeaflet(layerCfg, data, cfg).getLayers());
            } else {
              toLeaflet(layerCfg, data, cfg).eachLayer(function (l) { group.addLayer(l); });
            }
            loaded[layerCfg.slug] = view;
            state.layers[layerCfg.slug] = { loading: false, count: data.features.length, error: null };
            showCount(layerCfg.slug, ' · ' + data.features.length + ' ' + cfg.messages.shown);
          } catch (err) {
            if (err.name === 'AbortError') { return; }
            state.layers[layerCfg.slug] = { loading: false, count: 0, error: String(err) };
            showCount(layerCfg.slug, ' · ' + cfg.messages.load_error);
          }
        }));
        if (!signal.aborted) { fetching = false; updateReady(); }
      }

      // Large layers come as vector tiles, which Leaflet asks for as the view moves, for a
      // layer that is switched on; the count is the server's, as the tiles hold clusters.
      function addTiled(layerCfg) {
        var slug = layerCfg.slug;
        var handle = tiledLayer(layerCfg, groups[slug], map, cfg, function () {
          if (!handle) { return; }
          var drawn = handle.drawn();
          state.layers[slug].features = drawn.features;
          state.layers[slug].clusters = drawn.clusters;
        });
        tiled[slug] = handle;
        state.layers[slug] = { loading: false, count: layerCfg.count, error: null, tiled: true,
                               features: 0, clusters: 0 };
        showCount(slug, ' · ' + (layerCfg.count_more ? '> ' : '') +
                  countText(layerCfg.count, cfg) + ' ' + cfg.messages.features);
        function loading(flag) {
          return function () {
            handle.loading = flag;
            state.layers[slug].loading = flag;
            updateReady();
          };
        }
        handle.grid.on('loading', loading(true));
        handle.grid.on('load remove', loading(false));
        handle.loading = map.hasLayer(groups[slug]) && handle.grid.isLoading();
        state.layers[slug].loading = handle.loading;
      }

      // A click on a tiled feature opens its popup. Tiles take no pointer events, so the
      // click is matched here, before Leaflet sees it: a feature drawn over a ward wins
      // (markers and popups keep their own clicks).
      function tiledAt(latlng) {
        var shown = cfg.layers.filter(function (l) {
          return l.tiles && map.hasLayer(groups[l.slug]);
        }).reverse();  // the last drawn lies on top
        for (var i = 0; i < shown.length; i++) {
          var found = tiled[shown[i].slug].hit(latlng);
          if (found) { return { layerCfg: shown[i], found: found }; }
        }
        return null;
      }
      function openTiled(layerCfg, found) {
        var popup = L.popup(cfg.popup).setLatLng(found.latlng);
        popup.setContent(layerCfg.detail
          ? loadFeature(layerCfg, found.id, cfg, function (content) { popup.setContent(content); })
          : popupContent(layerCfg, found, cfg));
        popup.openOn(map);
      }
      if (!cfg.pick_location) {
        map.getContainer().addEventListener('click', function (e) {
          var target = e.target;
          if ((map.dragging && map.dragging.moved()) || !target.closest ||
              !target.closest('.leaflet-map-pane') ||
              target.closest('.leaflet-marker-icon, .leaflet-popup')) { return; }
          var at = tiledAt(map.mouseEventToLatLng(e));
          if (at) {
            e.stopPropagation();
            openTiled(at.layerCfg, at.found);
          }
        }, true);
        // The pointer says what can be clicked, once per frame at most.
        var hovering = false;
        map.on('mousemove', function (e) {
          if (hovering) { return; }
          hovering = true;
          L.Util.requestAnimFrame(function () {
            hovering = false;
            map.getContainer().classList.toggle('gis-tile-hover', !!tiledAt(e.latlng));
          });
        });
      }

      // Ward names crowd a small screen at city scale: smaller below zoom 13, hidden below 12.
      function labelScale() {
        var container = map.getContainer();
        container.classList.toggle('gis-labels-small', map.getZoom() < 13);
        container.classList.toggle('gis-labels-hidden', map.getZoom() < 12);
      }
      map.on('zoomend', labelScale);
      labelScale();

      // Right click, or a long press on a phone, offers to add a hotspot at that point.
      if (cfg.add_url) {
        map.on('contextmenu', function (e) {
          var link = el('a', 'gis-add-link', cfg.messages.add_here);
          link.href = cfg.add_url + '?lat=' + e.latlng.lat.toFixed(6) +
            '&lon=' + e.latlng.lng.toFixed(6);
          L.popup().setLatLng(e.latlng).setContent(link).openOn(map);
        });
      }

      var timer = null;
      function schedule() {
        fetching = true;
        updateReady();
        clearTimeout(timer);
        timer = setTimeout(refresh, 150);
      }
      // Redrawing a layer removes the marker whose popup is open, and the popup with it; a
      // popup's autopan moves the map, so its fetch waits until the popup closes. Dragging
      // the map away closes the popup first.
      var popupOpen = false, missed = false;
      map.on('popupopen', function () { popupOpen = true; });
      map.on('popupclose', function () {
        popupOpen = false;
        if (missed) { missed = false; schedule(); }
      });
      map.on('dragstart', function () { map.closePopup(); });
      map.on('moveend', function () {
        writeView(map);
        if (popupOpen) { missed = true; return; }
        schedule();
      });
      map.on('overlayadd', schedule);  // a layer switched on fetches its view now
      refresh();
      // After the small layers' first requests, so their pages do not queue behind tiles.
      var pane = map.createPane('gisTiles');
      pane.style.zIndex = 450;  // above shapes, below markers
      pane.style.pointerEvents = 'none';
      cfg.layers.forEach(function (layerCfg) { if (layerCfg.tiles) { addTiled(layerCfg); } });
    }
  };

  window.GisMap = GisMap;
})();
