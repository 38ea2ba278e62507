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

  // A popup is built when it opens. Layers fetched with only the drawn properties get the
  // whole feature from the API then.
  function bindPopup(layer, layerCfg, feature, cfg) {
    layer.bindPopup(function () {
      if (!layerCfg.detail) { return popupContent(layerCfg, feature, cfg); }
      var box = el('div', 'gis-popup-loading', cfg.messages.loading);
      fetch(layerCfg.url + '/' + encodeURIComponent(feature.id),
            { credentials: 'same-origin', headers: { Accept: 'application/json' } })
        .then(function (r) {
          if (!r.ok) { throw new Error('HTTP ' + r.status); }
          return r.json();
        })
        .then(function (full) {
          // Replacing the content function with the element also stops Leaflet from
          // calling the function (and fetching) again on the next update.
          layer.getPopup().setContent(popupContent(layerCfg, full, cfg));
        })
        .catch(function () { box.textContent = cfg.messages.load_error; });
      return box;
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

  async function getPage(url, signal) {
    var response = await fetch(url, { signal: signal, credentials: 'same-origin',
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
        if (layerCfg.points && group.options) {
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

      async function refresh() {
        var view = clampBounds(map.getBounds().pad(0.25));
        var pending = cfg.layers.filter(function (l) {
          return !(loaded[l.slug] && loaded[l.slug].contains(map.getBounds()));
        });
        if (!pending.length) { state.ready = true; return; }
        if (controller) { controller.abort(); }
        controller = new AbortController();
        var signal = controller.signal;
        state.ready = false;
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
        if (!signal.aborted) { state.ready = true; }
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
        state.ready = false;
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
      refresh();
    }
  };

  window.GisMap = GisMap;
})();
