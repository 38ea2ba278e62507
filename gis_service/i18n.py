"""Language choice: Vietnamese by default, English by ``?lang=en`` or Accept-Language."""

from urllib.parse import urlencode

from flask import Flask, current_app, request, session
from flask_babel import Babel, get_locale


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


def lang_url(lang: str) -> str:
    """This page's URL, with its query kept, in another language."""
    args = request.args.to_dict(flat=False)
    args["lang"] = [lang]
    return f"{request.path}?{urlencode(args, doseq=True)}"


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    app.jinja_env.globals["lang_url"] = lang_url
    app.context_processor(lambda: {"lang": str(get_locale() or app.config["LANGUAGES"][0])})
