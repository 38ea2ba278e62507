"""CSRF protection and security headers for every response.

Pages get a per-request CSP nonce: inline scripts we write (including Folium's map
script) carry it, so a script injected through data would not run even if escaping
failed somewhere.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from flask import Flask, Response, current_app, g, request
from flask_wtf.csrf import CSRFProtect

csrf = CSRFProtect()


def csp_nonce() -> str:
    """The nonce of this request, created on first use."""
    if "csp_nonce" not in g:
        g.csp_nonce = secrets.token_urlsafe(16)
    return g.csp_nonce


def _tile_origin() -> str:
    url = current_app.config.get("TILE_URL") or ""
    parts = urlsplit(url.replace("{s}", "a"))
    if not parts.scheme or not parts.hostname:
        return ""
    host = parts.hostname
    if "{s}" in url:
        host = "*." + host.split(".", 1)[1]
    return f"{parts.scheme}://{host}"


# Pages the city website may show in an iframe; everything else refuses to be framed.
FRAMEABLE = {"public.index", "public.embed"}


def set_security_headers(response: Response) -> Response:
    nonce = g.get("csp_nonce")
    frameable = request.endpoint in FRAMEABLE
    ancestors = current_app.config["EMBED_FRAME_ANCESTORS"] if frameable else "'none'"
    script_src = f"'self' 'nonce-{nonce}'" if nonce else "'self'"
    response.headers["Content-Security-Policy"] = "; ".join(
        [
            "default-src 'self'",
            f"script-src {script_src}",
            "style-src 'self' 'unsafe-inline'",
            f"img-src 'self' data: {_tile_origin()}".rstrip(),
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "same-origin"
    if not frameable:
        response.headers["X-Frame-Options"] = "DENY"
    return response


def init_app(app: Flask) -> None:
    csrf.init_app(app)
    app.jinja_env.globals["csp_nonce"] = csp_nonce
    app.after_request(set_security_headers)
