"""Accounts: login and logout, password hashing and role checks.

Roles are admin, planner and inspector; anonymous visitors are the public.
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
    url_for,
)
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import LoginManager, UserMixin, current_user, login_user, logout_user
from flask_wtf import FlaskForm
from werkzeug.security import check_password_hash, generate_password_hash
from wtforms import HiddenField, PasswordField, StringField
from wtforms.validators import DataRequired, Length

from layers.errors import InvalidFeature
from layers.store import User

from .http_errors import error_response, wants_json
from .ratelimit import Limit, client_key, limiter, too_many
from .store_access import get_store

bp = Blueprint("auth", __name__)
login_manager = LoginManager()


LOGIN_PER_ADDRESS = Limit(10, 5 * 60)  # failed logins per client address
LOGIN_PER_USERNAME = Limit(5, 15 * 60)  # failed logins per username, from anywhere

ROLE_LABELS = {
    "admin": _l("Administrator"),
    "planner": _l("Planner"),
    "inspector": _l("Inspector"),
}


def role_label(role: str) -> str:
    return str(ROLE_LABELS.get(role, role))


class Account(UserMixin):
    """Flask-Login's view of a stored account."""

    def __init__(self, user: User) -> None:
        self.user = user

    def get_id(self) -> str:
        return self.user.username

    @property
    def role(self) -> str:
        return self.user.role


class LoginForm(FlaskForm):
    username = StringField(_l("Username"), validators=[DataRequired(), Length(max=100)])
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=200)])
    next = HiddenField()


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def create_account(username: str, password: str, role: str) -> User:
    """Create an account; the store refuses duplicates and unknown roles."""
    if len(password) < 8:
        raise InvalidFeature("A password needs at least 8 characters")
    return get_store().create_user(username, hash_password(password), role)


def safe_next(target: str | None) -> str:
    """Only same-site paths are followed after login, never another host."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("inspector.map_page")


@login_manager.user_loader
def load_user(username: str) -> Account | None:
    user = get_store().get_user(username)
    return Account(user) if user else None


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


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    form = LoginForm(next=request.args.get("next", ""))
    if form.validate_on_submit():
        username = form.username.data.strip()
        # Only failed attempts count, checked before the password, so guessing slows down
        # while an office sharing one address never locks itself out by logging in.
        rl = limiter()
        checks = [(client_key("login"), LOGIN_PER_ADDRESS),
                  (f"login:user:{username.casefold()}", LOGIN_PER_USERNAME)]
        wait = max(rl.retry_after(key, limit) for key, limit in checks)
        if wait:
            return too_many(wait)
        user = get_store().get_user(username)
        if user and check_password_hash(user.password_hash, form.password.data):
            rl.reset(checks[1][0])  # the username's count only, never the address's
            login_user(Account(user))
            return redirect(safe_next(form.next.data))
        for key, limit in checks:
            rl.hit(key, limit)
        flash(_("Wrong username or password."), "error")
        return render_template("login.html", form=form), 401
    status = 400 if form.is_submitted() else 200
    return render_template("login.html", form=form), status


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    return redirect(url_for("auth.login"))


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    app.jinja_env.globals["role_label"] = role_label
    app.register_blueprint(bp)
