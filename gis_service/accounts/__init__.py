"""Accounts as people manage them: creating, roles, disabling, passwords, sessions.

The web pages (``pages.py``, ``gis_service.auth``) and the CLI (``commands.py``) both go
through these functions, so a rule holds whichever face is used.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import current_app

from layers.errors import InvalidFeature
from layers.store import User
from layers.store.base import SessionPolicy

from ..store_access import get_store
from .passwords import hash_password, password_problem, temporary_password


class WeakPassword(InvalidFeature):
    """A new password that the policy refuses; its message says why."""


def session_policy(config: Mapping[str, Any] | None = None) -> SessionPolicy:
    """The configured idle and absolute time-outs of a login (of the current app by
    default); a setting that is not a positive number stops the app from starting."""
    config = current_app.config if config is None else config
    try:
        policy = SessionPolicy(int(float(config["SESSION_IDLE_MINUTES"]) * 60),
                               int(float(config["SESSION_MAX_HOURS"]) * 3600))
    except (TypeError, ValueError):
        policy = SessionPolicy(0, 0)
    if policy.idle_seconds <= 0 or policy.max_seconds <= 0:
        raise RuntimeError("GIS_SESSION_IDLE_MINUTES and GIS_SESSION_MAX_HOURS must be "
                           "positive numbers (minutes and hours)")
    return policy


def checked_password(password: str, username: str) -> str:
    problem = password_problem(password, username)
    if problem:
        raise WeakPassword(problem)
    return password


def create_account(username: str, password: str | None, role: str, *,
                   actor: str = "system") -> tuple[User, str | None]:
    """Create an account; without a password it gets a temporary one, returned once and
    to be changed at the first login. Raises UserExists, WeakPassword or InvalidFeature."""
    temporary = None if password else temporary_password()
    if password:
        checked_password(password, username)
    user = get_store().create_user(username, hash_password(password or temporary), role,
                                   must_change_password=temporary is not None, actor=actor)
    return user, temporary


def reset_password(username: str, *, actor: str) -> str:
    """Give an account a temporary password (returned once) and end its sessions."""
    temporary = temporary_password()
    get_store().set_password(username, hash_password(temporary), must_change=True, actor=actor)
    return temporary


def change_password(user: User, new_password: str) -> None:
    """The owner's new password; every session of the account ends with the old one."""
    checked_password(new_password, user.username)
    get_store().set_password(user.username, hash_password(new_password), must_change=False,
                             actor=user.username)
