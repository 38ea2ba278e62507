"""Configuration defaults; each can be overridden by a ``GIS_``-prefixed environment variable.

Flask's ``from_prefixed_env`` reads ``GIS_SECRET_KEY`` into ``SECRET_KEY`` and parses
JSON values, so ``GIS_SESSION_COOKIE_SECURE=true`` becomes a boolean.
"""

from pathlib import Path


class DefaultConfig:
    """Safe defaults: production mode, secure cookies off only because dev runs on http."""

    # "development" allows a throw-away SECRET_KEY; anything else requires GIS_SECRET_KEY.
    ENV_NAME = "production"
    SECRET_KEY: str | None = None
    # The store: an SQLite file (or sqlite:/// URL), or PostGIS as a PostgreSQL URL or DSN
    # (postgresql://user:password@host/dbname).
    DATABASE = str(Path.cwd() / "instance" / "gis.sqlite")
    # Basemap tiles; an empty string means no basemap (the map draws on a plain background).
    TILE_URL = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    TILE_ATTRIBUTION = "&copy; OpenStreetMap contributors"
    # Folder holding node_modules with the pinned Leaflet assets (see package.json there).
    ASSETS_DIR = str(Path(__file__).parent / "assets")
    # Languages the UI offers; the first is the default.
    LANGUAGES = ("vi", "en")
    # The language of the command line's output (and of the core's messages in it).
    CLI_LANG = "vi"
    BABEL_DEFAULT_LOCALE = "vi"
    BABEL_DEFAULT_TIMEZONE = "Asia/Ho_Chi_Minh"
    # Cookies: HttpOnly and SameSite always; Secure when served over https.
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # A login ends after this many minutes without a request, and this many hours after it
    # began, whatever happens; logout, a password change or disabling the account end it too.
    SESSION_IDLE_MINUTES = 60
    SESSION_MAX_HOURS = 12
    # Largest upload (bytes); Flask answers 413 past it.
    MAX_CONTENT_LENGTH = 200 * 1024 * 1024
    # Where uploads wait between preview and publish.
    UPLOAD_DIR = str(Path.cwd() / "instance" / "uploads")
    # An upload waiting for publish is removed after this many seconds without use.
    UPLOAD_MAX_AGE = 24 * 3600
    # The province's VN-2000 TM-3 zone, assumed first for files without a .prj (Bình Phước).
    DEFAULT_EPSG = 9212
    # The city's box (minLon, minLat, maxLon, maxLat): imports far outside it are flagged.
    CITY_BOUNDS = (106.755, 11.461, 106.933, 11.577)
    # SQLite file counting failed logins and public reports per client (shared by all
    # gunicorn workers of a host), whichever store holds the data.
    RATELIMIT_DB = str(Path.cwd() / "instance" / "ratelimit.sqlite")
    # Number of reverse proxies in front of the app whose X-Forwarded-For is trusted
    # (0: none). Without it, rate limits would see every client as the proxy.
    PROXY_FIX_X_FOR = 0
    # Who may show /embed/<map> and /public in an iframe: the CSP frame-ancestors sources,
    # e.g. "'self' https://dongxoai.binhphuoc.gov.vn". The rest of the app cannot be framed.
    EMBED_FRAME_ANCESTORS = "'self'"
    # Hotspot layer that citizen reports go to (default: the first hotspot layer).
    REPORT_LAYER: str | None = None
    # Page size the map uses when it fetches features from the API.
    MAP_PAGE_SIZE = 5000
    # Bytes of answers (vector tiles, feature pages) each worker keeps in memory, least
    # recently used dropped first.
    CACHE_BYTES = 64 * 1024 * 1024
    # Layers with more features than this are drawn from vector tiles (clustered on the
    # server), smaller ones from GeoJSON pages.
    TILE_THRESHOLD = 5000
