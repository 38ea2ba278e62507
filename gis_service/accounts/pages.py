"""Administrators' account pages (``/admin/users``): list, create, role, disable, reset.

Every write is a CSRF-checked POST by an admin and is audited by the store. A temporary
password is shown once, on the answer to the POST that made it, and never stored in the
session cookie or a flash message.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user

from layers.errors import InvalidFeature, UserExists
from layers.store.base import ROLES
from layers.store.common import USERNAME_MAX

from ..auth import require_role, role_label
from ..i18n import tr
from ..store_access import get_store
from . import create_account, reset_password

bp = Blueprint("accounts", __name__, url_prefix="/admin/users")
bp.before_request(require_role("admin"))


def _page(status: int = 200, *, temporary: tuple[str, str] | None = None,
          problem: str | None = None, form: dict[str, str] | None = None
          ) -> ResponseReturnValue:
    page = render_template("users.html", users=get_store().list_users(), roles=ROLES,
                           temporary=temporary, problem=problem, form=form or {},
                           username_max=USERNAME_MAX, me=current_user.get_id())
    return page, status, {"Cache-Control": "no-store"}


@bp.get("")
def index() -> ResponseReturnValue:
    return _page()


@bp.post("/new")
def create() -> ResponseReturnValue:
    form = {"username": request.form.get("username", ""), "role": request.form.get("role", "")}
    try:
        user, temporary = create_account(form["username"], None, form["role"],
                                         actor=current_user.get_id())
    except UserExists:
        return _page(409, problem=_("An account with this name already exists (names are "
                                    "the same whatever their upper or lower case)."), form=form)
    except InvalidFeature as exc:
        return _page(400, problem=tr(exc.message), form=form)
    return _page(201, temporary=(user.username, temporary or ""))


@bp.post("/<username>/role")
def set_role(username: str) -> ResponseReturnValue:
    role = request.form.get("role", "")
    if role not in ROLES:
        return _page(400, problem=_("Choose a role from the list."))
    get_store().update_user(username, role=role, actor=current_user.get_id())
    flash(_("The role of %(name)s is now %(role)s.", name=username,
            role=role_label(role)), "info")
    return redirect(url_for("accounts.index"))


@bp.post("/<username>/disable")
def disable(username: str) -> ResponseReturnValue:
    get_store().update_user(username, disabled=True, actor=current_user.get_id())
    flash(_("%(name)s is disabled and logged out everywhere.", name=username), "info")
    return redirect(url_for("accounts.index"))


@bp.post("/<username>/enable")
def enable(username: str) -> ResponseReturnValue:
    get_store().update_user(username, disabled=False, actor=current_user.get_id())
    flash(_("%(name)s can log in again.", name=username), "info")
    return redirect(url_for("accounts.index"))


@bp.post("/<username>/reset-password")
def reset(username: str) -> ResponseReturnValue:
    temporary = reset_password(username, actor=current_user.get_id())
    user = get_store().get_user(username)
    return _page(temporary=(user.username if user else username, temporary))
