"""How pages show times, dates and field values to people.

The store and the APIs keep times as UTC ISO text (``2026-12-01T18:38:00+00:00``) and dates
as ``yyyy-mm-dd``; people read them in Đồng Xoài's time as ``dd/mm/yyyy HH:mm`` and
``dd/mm/yyyy``. Templates use the ``when`` filter for both, and ``field_value`` for a
property as its layer defines it (vocabulary labels, not codes; years as written).
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from flask import Flask
from flask_babel import gettext

from layers.kinds import FieldDef

from .i18n import page_lang

LOCAL_TIME = ZoneInfo("Asia/Ho_Chi_Minh")


def when(value: Any) -> Any:
    """A stored time as local ``dd/mm/yyyy HH:mm``, a date as ``dd/mm/yyyy``; anything
    that is neither is shown as it is."""
    if isinstance(value, dt.datetime):
        moment = value
    elif isinstance(value, dt.date):
        return value.strftime("%d/%m/%Y")
    elif not isinstance(value, str) or not value[:4].isdigit() or value[4:5] != "-":
        return value
    elif len(value) == 10:
        try:
            return dt.date.fromisoformat(value).strftime("%d/%m/%Y")
        except ValueError:
            return value
    else:
        try:
            moment = dt.datetime.fromisoformat(value)
        except ValueError:
            return value
    if moment.tzinfo is None:  # the stores write UTC
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(LOCAL_TIME).strftime("%d/%m/%Y %H:%M")


def field_value(field: FieldDef | None, value: Any) -> Any:
    """A property as a person reads it: a choice's label, a date dd/mm/yyyy, yes/no."""
    if value is None or value == "" or field is None:
        return "—" if value is None or value == "" else value
    choice = field.choice(value)
    if choice is not None:
        return choice.label(page_lang())
    if field.type == "date":
        return when(value)
    if field.type == "boolean" and isinstance(value, bool):
        return gettext("Yes") if value else gettext("No")
    return value


def init_app(app: Flask) -> None:
    app.jinja_env.filters["when"] = when
    app.jinja_env.globals["field_value"] = field_value
