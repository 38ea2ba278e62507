"""What a password must be, and checking one in the same time whether the account exists.

Strength is zxcvbn's estimate (its lists hold 30 000 common passwords and English words)
plus a short list of Vietnamese favourites shipped beside this file; nothing is looked up
over the network. Messages are shown as they are, so they are in the page's language.
"""

from __future__ import annotations

import functools
import secrets
from pathlib import Path

from flask_babel import gettext as _
from werkzeug.security import check_password_hash, generate_password_hash
from zxcvbn import zxcvbn
from zxcvbn.matching import RANKED_DICTIONARIES

from layers.store import User
from layers.store.common import user_key

PASSWORD_MIN = 10
PASSWORD_MAX = 128
# zxcvbn's score 3: "safely unguessable", about 10^8 guesses or more.
MIN_SCORE = 3
# Words of this place that make a password easier to guess, as zxcvbn's "user inputs".
LOCAL_WORDS = ("dongxoai", "binhphuoc", "moitruong", "gis", "gisservice", "admin")
_LIST = Path(__file__).with_name("common_passwords_vi.txt")


@functools.cache
def _common_vi() -> frozenset[str]:
    lines = _LIST.read_text(encoding="utf-8").splitlines()
    return frozenset(w.strip().casefold() for w in lines if w.strip() and not w.startswith("#"))


def is_common(password: str) -> bool:
    word = password.casefold()
    return word in RANKED_DICTIONARIES["passwords"] or word in _common_vi()


def password_problem(password: str, username: str) -> str | None:
    """Why ``password`` may not be used by ``username``, or None when it is good enough."""
    if len(password) < PASSWORD_MIN:
        return _("A password needs at least %(count)d characters.", count=PASSWORD_MIN)
    if len(password) > PASSWORD_MAX:
        return _("A password has at most %(count)d characters.", count=PASSWORD_MAX)
    if len(set(password)) == 1:
        return _("A password cannot be one character repeated.")
    name = user_key(username)
    if len(name) >= 3 and name in password.casefold():
        return _("A password cannot contain the username.")
    if is_common(password):
        return _("This password is on the list of common passwords; choose another.")
    if zxcvbn(password[:72], user_inputs=[name, *LOCAL_WORDS])["score"] < MIN_SCORE:
        return _("This password is too easy to guess: use several words, or mix in other "
                 "kinds of characters.")
    return None


def hash_password(password: str) -> str:
    return generate_password_hash(password)


def temporary_password() -> str:
    """A random password an administrator hands over; it must be changed at first use."""
    return secrets.token_urlsafe(12)


@functools.cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


def verify_password(user: User | None, password: str) -> bool:
    """True when ``password`` is the account's. An unknown name is checked against a dummy
    hash of the same kind, so the answer takes as long and tells nobody that it is unknown."""
    ok = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    return ok and user is not None
