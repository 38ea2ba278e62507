"""Administrators' pages: the audit log of every change, filtered and exported as CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io

import orjson
from flask import Blueprint, Response, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext as _l

from layers.errors import InvalidQuery
from layers.messages import Message
from layers.query import whole_number
from layers.store import AuditEntry

from .auth import require_role
from .map_pages import ward_index
from .store_access import get_store

bp = Blueprint("admin", __name__, url_prefix="/admin")
bp.before_request(require_role("admin"))

PAGE = 100
EXPORT_LIMIT = 100_000

# What each audit action is called on the page; the CSV keeps the action's own name.
ACTIONS = {
    "layer.create": _l("layer created"), "layer.update": _l("layer settings"),
    "layer.replace": _l("layer data replaced"), "layer.delete": _l("layer deleted"),
    "feature.create": _l("feature added"), "features.add": _l("features added"),
    "feature.update": _l("feature edited"), "feature.status": _l("status changed"),
    "feature.archive": _l("feature archived"), "feature.restore": _l("feature restored"),
    "feature.reimport": _l("feature re-imported"), "inspection.add": _l("inspection"),
    "report.create": _l("citizen report"), "public_map.save": _l("public map saved"),
    "user.create": _l("account created"), "user.role": _l("role changed"),
    "user.disable": _l("account disabled"), "user.enable": _l("account enabled"),
    "user.password": _l("password set"),
}


def _filters(args: dict[str, str]) -> dict[str, str | None]:
    """user, layer and a date range (YYYY-MM-DD, ``to`` inclusive) from the query string."""
    out: dict[str, str | None] = {"actor": args.get("user") or None,
                                  "layer": args.get("layer") or None, "since": None,
                                  "until": None}
    for name, key, shift in (("from", "since", 0), ("to", "until", 1)):
        if args.get(name):
            try:
                day = dt.date.fromisoformat(args[name])
            except ValueError:
                raise InvalidQuery(
                    Message("{name} must be a date written YYYY-MM-DD", name=name)) from None
            if shift and day == dt.date.max:
                continue  # up to the last day there is: no upper bound at all
            out[key] = (day + dt.timedelta(days=shift)).isoformat()
    return out


def _offset(args: dict[str, str]) -> int:
    """The page's offset: a bounded whole number, or the start."""
    text = args.get("offset", "").strip()
    return whole_number("offset", text, 0, 10**9) if text else 0


@bp.get("/audit")
def audit() -> ResponseReturnValue:
    args = request.args.to_dict()
    offset = _offset(args)
    entries, total = get_store().list_audit(**_filters(args), limit=PAGE, offset=offset)
    layers = get_store().list_layers()
    return render_template("audit.html", entries=entries, total=total, offset=offset,
                           page=PAGE, args=args, actions=ACTIONS,
                           layers=[la.slug for la in layers],
                           layer_fields={la.slug: la.fields for la in layers},
                           ward_names=ward_index(get_store(), layers)[0])


def _cell(value: object) -> str:
    """A CSV cell a spreadsheet will not run as a formula (=, +, -, @ are neutralised)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _dump(value: object) -> str:
    return "" if value is None else orjson.dumps(value).decode("utf-8")


def _row(e: AuditEntry) -> list[str]:
    return [_cell(x) for x in (e.id, e.at, e.actor, e.action, e.layer, e.feature_id,
                               e.note, _dump(e.before), _dump(e.after))]


@bp.get("/audit.csv")
def audit_csv() -> ResponseReturnValue:
    entries, _ = get_store().list_audit(**_filters(request.args.to_dict()),
                                        limit=EXPORT_LIMIT)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["id", "at", "user", "action", "layer", "feature_id", "note", "before",
                     "after"])
    writer.writerows(_row(e) for e in entries)
    # A BOM so that Excel opens the Vietnamese text as UTF-8.
    return Response("\ufeff" + out.getvalue(), mimetype="text/csv; charset=utf-8",
                    headers={"Content-Disposition": "attachment; filename=audit.csv"})
