#!/usr/bin/env bash
# Install what the benchmarks' alternatives need; safe to run again (each step is skipped
# when its result is already there). Run as root from anywhere: `make bench-deps`.
#
#  - Debian's python3-gdal (GDAL's Python bindings: pygeoapi's OGR provider and osgeo.ogr
#    in store_query.py), wrk (HTTP load) and nginx (static files: the machine's ceiling);
#  - benchmarks/.venv-alt: a venv from Debian's /usr/bin/python3.11 (the bindings are built
#    for it) with pygeoapi and gunicorn, and a .pth file that exposes Debian's osgeo;
#  - benchmarks/.venv-tipg: tipg in a venv of its own (its pins differ from pygeoapi's),
#    for the tile comparison on PostGIS. A failure here is reported, not fatal.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ALT="$HERE/.venv-alt"
TIPG="$HERE/.venv-tipg"
PY=/usr/bin/python3.11
PYGEOAPI_VERSION="${PYGEOAPI_VERSION:-0.21.0}"
APT_PACKAGES=(python3-gdal wrk nginx)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "Install Debian's ${missing[*]} (apt-get install, as root) first" >&2
    exit 1
  fi
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
# Debian starts nginx on port 80 when it installs it; the benchmark runs its own.
if command -v systemctl >/dev/null && systemctl is-active --quiet nginx 2>/dev/null; then
  systemctl stop nginx || true
fi

if [ ! -x "$ALT/bin/python" ]; then
  "$PY" -m venv "$ALT"
fi
if ! "$ALT/bin/python" -c "import pygeoapi, gunicorn" 2>/dev/null; then
  "$ALT/bin/pip" install -q --upgrade pip
  "$ALT/bin/pip" install -q "pygeoapi==$PYGEOAPI_VERSION" gunicorn
fi
# GDAL's bindings come from Debian, not from a wheel: a .pth names a folder of symlinks to
# them (not the whole dist-packages, whose other modules would shadow the venv's).
site="$("$ALT/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
mkdir -p "$ALT/debian-gdal"
for mod in osgeo osgeo_utils; do
  ln -sfn "/usr/lib/python3/dist-packages/$mod" "$ALT/debian-gdal/$mod"
done
echo "$ALT/debian-gdal" > "$site/debian_gdal.pth"
"$ALT/bin/python" -c "from osgeo import gdal, ogr; import pygeoapi; \
print('alt venv: GDAL', gdal.__version__, '| pygeoapi', pygeoapi.__version__)"

if [ ! -x "$TIPG/bin/tipg" ] && [ -z "${SKIP_TIPG:-}" ]; then
  [ -x "$TIPG/bin/python" ] || "$PY" -m venv "$TIPG"
  if "$TIPG/bin/pip" install -q tipg uvicorn; then
    echo "tipg venv: $("$TIPG/bin/python" -c 'import tipg; print("tipg", tipg.__version__)')"
  else
    echo "tipg did not install (the tile comparison will be skipped)" >&2
  fi
elif [ -x "$TIPG/bin/tipg" ]; then
  echo "tipg venv: $("$TIPG/bin/python" -c 'import tipg; print("tipg", tipg.__version__)')"
fi
echo "wrk: $(command -v wrk) | nginx: $(command -v nginx || ls /usr/sbin/nginx)"
