"""Login and logout, server-side sessions, role checks and changing one's own password.

Roles are admin, planner and inspector; anonymous visitors are the public. The signed
session cookie holds a random session token besides the username; the store keeps the
token's digest, and every request looks it up, so logout, a password change, disabling an
account and the idle and absolute time-outs end a login on the server, whatever copies
of the cookie exist.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import (
    Blueprint,
    Flask,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, EqualTo, Length

from layers.store import User
from layers.store.common import USERNAME_MAX, user_key

from .accounts import WeakPassword, change_password, session_policy
from .accounts.passwords import PASSWORD_MAX, PASSWORD_MIN, verify_password
from .http_errors import error_response, wants_json
from .ratelimit import Limit, client_key, limiter, too_many
from .store_access import get_store

bp = Blueprint("auth", __name__)
login_manager = LoginManager()

# Failed logins per client address, whatever the username.
LOGIN_PER_ADDRESS = Limit(10, 5 * 60)
# Failed logins per username *from one address*: a stranger elsewhere cannot lock the real
# user out, while guessing one account from one address stays slow.
LOGIN_PER_USERNAME = Limit(5, 15 * 60)
# Wrong current passwords on the change-password form, per account.
CURRENT_PASSWORD = Limit(5, 15 * 60)
SESSION_KEY = "gis_session"
# What an account that must change its password may still reach.
OPEN_WHILE_CHANGING = {"auth.change_password", "auth.logout", "static", "vendor.vendor"}

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "planner": _l("Planner"),
    "inspector": _l("Inspector"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


class Account(UserMixin):
    """Flask-Login's view of a stored account; its id is the username (audit actor)."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(),
                                                       Length(max=USERNAME_MAX)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


class PasswordForm(FlaskForm):
    current = PasswordField(_l("Current password"),
                            validators=[DataRequired(), Length(max=200)])
    new = PasswordField(_l("New password"), validators=[DataRequired()])  # see passwords.py
    confirm = PasswordField(_l("New password again"), validators=[
        DataRequired(), EqualTo("new", message=_l("The two new passwords differ."))])
    next = HiddenField()


def safe_next(target: str | None) -> str:
    """Where to go after login: only a path of this site, else the map.

    Browsers drop tabs and line breaks from URLs and read ``\\`` as ``/``, so ``/\\t/host``
    would become ``//host`` (another site): any control character, whitespace or
    backslash refuses the target, as does ``//``. Never raises, so ``next`` cannot 500.
    """
    default = url_for("inspector.map_page")
    if not target or len(target) > 2000 or not target.startswith("/"):
        return default
    if target.startswith("//") or any(c == "\\" or c.isspace() or not c.isprintable()
                                      for c in target):
        return default
    return target


def start_session(user: User) -> None:
    """Log ``user`` in with a fresh server-side session."""
    session[SESSION_KEY] = get_store().open_session(user.username, session_policy())
    login_user(Account(user))


@login_manager.user_loader
def load_user(username: str) -> Account | None:
    token = session.get(SESSION_KEY)
    if not isinstance(token, str):
        return None
    user = get_store().session_user(token, session_policy())
    if user is None or user_key(user.username) != user_key(username):
        return None
    return Account(user)


@login_manager.unauthorized_handler
def unauthorized() -> ResponseReturnValue:
    if wants_json():
        return error_response(401, _("Log in first."))
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def require_role(*roles: str) -> Callable[[], ResponseReturnValue | None]:
    """A ``before_request`` hook admitting only logged-in users with one of ``roles``.

    Permissions are decided once per blueprint, not view by view.
    """

    def check() -> ResponseReturnValue | None:
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        if current_user.role not in roles:
            return error_response(403, _("Your role (%(role)s) cannot do this.",
                                         role=role_label(current_user.role)))
        return None

    return check


def must_change_first() -> ResponseReturnValue | None:
    """An account with a temporary password reaches nothing before choosing its own."""
    if (request.endpoint in OPEN_WHILE_CHANGING or not current_user.is_authenticated
            or not current_user.user.must_change_password):
        return None
    if wants_json():
        return error_response(403, _("Change your temporary password first."))
    return redirect(url_for("auth.change_password", next=request.full_path.rstrip("?")))


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        username = form.username.data.strip()
        # Only failed attempts count, checked before the password, so guessing slows down
        # while an office sharing one address never locks itself out by logging in.
        rl = limiter()
        address = client_key("login")
        checks = [(address, LOGIN_PER_ADDRESS),
                  (f"login:user:{user_key(username)}:{address}", LOGIN_PER_USERNAME)]
        wait = max(rl.retry_after(key, limit) for key, limit in checks)
        if wait:
            return too_many(wait)
        user = get_store().get_user(username)
        if verify_password(user, form.password.data) and user and not user.disabled:
            rl.reset(checks[1][0])  # this address's count for the name, never the address's
            start_session(user)
            if user.must_change_password:
                return redirect(url_for("auth.change_password", next=form.next.data or None))
            return redirect(safe_next(form.next.data))
        for key, limit in checks:
            rl.hit(key, limit)
        flash(_("Wrong username or password, or the account is disabled."), "error")
        return render_template("login.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    token = session.pop(SESSION_KEY, None)
    if isinstance(token, str):
        get_store().close_session(token)
    logout_user()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"], endpoint="change_password")
def change_password_page() -> ResponseReturnValue:
    if not current_user.is_authenticated:
        return login_manager.unauthorized()
    user: User = current_user.user
    form = PasswordForm(next=request.args.get("next", ""))
    problem = None
    if form.validate_on_submit():
        key, rl = f"password:user:{user_key(user.username)}", limiter()
        wait = rl.retry_after(key, CURRENT_PASSWORD)
        if wait:
            return too_many(wait)
        if not verify_password(user, form.current.data):
            rl.hit(key, CURRENT_PASSWORD)
            problem = _("The current password is wrong.")
        else:
            try:
                change_password(user, form.new.data)
            except WeakPassword as exc:
                problem = exc.message
            else:
                rl.reset(key)
                start_session(get_store().get_user(user.username) or user)
                flash(_("Password changed. Every other session of this account has ended."),
                      "info")
                return redirect(safe_next(form.next.data))
    elif form.is_submitted():
        problem = next((f"{f.label.text}: {e}" for f in form for e in f.errors), None)
    status = 400 if problem else 200
    return render_template("password.html", form=form, problem=problem,
                           must_change=user.must_change_password, password_min=PASSWORD_MIN,
                           password_max=PASSWORD_MAX), status


def init_app(app: Flask) -> None:
    session_policy(app.config)  # a bad time-out setting fails the start, not each request
    login_manager.init_app(app)
    app.jinja_env.globals["role_label"] = role_label
    app.before_request(must_change_first)
    app.register_blueprint(bp)
