"""Language choice: Vietnamese by default, English by ``?lang=en`` or Accept-Language."""

from flask import Flask, current_app, request, session
from flask_babel import Babel


def select_locale() -> str:
    """``?lang=`` wins and is remembered in the session; then the browser's preference."""
    languages = current_app.config["LANGUAGES"]
    asked = request.args.get("lang")
    if asked in languages:
        session["lang"] = asked
        return asked
    if session.get("lang") in languages:
        return session["lang"]
    return request.accept_languages.best_match(languages, default=languages[0]) or languages[0]


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
