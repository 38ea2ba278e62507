"""The one place where core errors and HTTP errors become responses.

API clients (paths under /api/ and /public/api/) get JSON ``{"error": ..., "status": ...}``;
people get the error page. Nothing reaches the user as a traceback.
"""

from __future__ import annotations

from flask import Flask, current_app, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.routing import IntegerConverter, Map

from layers import errors

from .i18n import tr

STATUS: dict[type[errors.GisError], int] = {
    errors.LayerNotFound: 404,
    errors.FeatureNotFound: 404,
    errors.InvalidQuery: 400,
    errors.InvalidFeature: 400,
    errors.InvalidUpload: 400,
    errors.LayerExists: 409,
    errors.UserExists: 409,
    errors.UserNotFound: 404,
    errors.VersionConflict: 409,
}


TITLES = {
    400: _l("The request is not valid"),
    401: _l("Please log in"),
    403: _l("You do not have permission for this"),
    404: _l("Not found"),
    405: _l("This action is not allowed here"),
    409: _l("Conflict with the current data"),
    413: _l("The upload is too large"),
    429: _l("Too many attempts"),
    500: _l("Something went wrong on the server"),
}


# Paths whose clients are scripts and maps, not people: their errors are JSON too.
API_PREFIXES = ("/api/", "/public/api/", "/tiles/", "/public/tiles/")
# The largest id or version number a store holds (a signed 64-bit integer).
MAX_ID = 2**63 - 1


class StoreIdConverter(IntegerConverter):
    """``<int:…>`` in every route: a store id or version, so one no store can hold (above
    2^63 − 1) does not match, and the answer is Not Found instead of a database error."""

    def __init__(self, map: Map, fixed_digits: int = 0, min: int | None = None,  # noqa: A002
                 max: int | None = MAX_ID, signed: bool = False) -> None:  # noqa: A002
        super().__init__(map, fixed_digits, min, max, signed)


def wants_json() -> bool:
    return request.path.startswith(API_PREFIXES)


def error_response(status: int, message: str) -> ResponseReturnValue:
    if wants_json():
        return jsonify(error=tr(message), status=status), status
    title = TITLES.get(status, TITLES[400 if status < 500 else 500])
    page = render_template("error.html", status=status, title=title, message=message)
    return page, status


def refuse_nul() -> ResponseReturnValue | None:
    """A NUL character in the path, the query or a form field is refused at the door: it is
    never text, and PostgreSQL cannot even hold it (uploaded files are not form fields)."""
    texts = [request.path, *(x for kv in request.args.lists() for x in (kv[0], *kv[1]))]
    if request.method == "POST":
        texts += [x for kv in request.form.lists() for x in (kv[0], *kv[1])]
    if any("\x00" in text for text in texts):
        return error_response(400, _("The request holds a NUL character, which no text may "
                                     "contain."))
    return None


def handle_gis_error(exc: errors.GisError) -> ResponseReturnValue:
    status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
    return error_response(status, exc.message)


def handle_csrf_error(exc: CSRFError) -> ResponseReturnValue:
    return error_response(
        400, _("The form expired or was not sent from this site; reload the page and try again.")
    )


def handle_http_error(exc: HTTPException) -> ResponseReturnValue:
    return error_response(exc.code or 500, exc.description or exc.name)


def handle_unexpected(exc: Exception) -> ResponseReturnValue:
    """Log the traceback for operators; show the user a plain message."""
    current_app.logger.exception("Unhandled error on %s", request.path)
    return error_response(500, InternalServerError.description)


def init_app(app: Flask) -> None:
    """Register the handlers, and the id converter before any route that uses it."""
    app.url_map.converters["int"] = StoreIdConverter
    app.before_request(refuse_nul)
    app.register_error_handler(errors.GisError, handle_gis_error)
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(Exception, handle_unexpected)
