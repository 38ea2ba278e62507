"""Language choice: Vietnamese by default, English by ``?lang=en`` or Accept-Language.

Also the one place where what the core says (``layers.messages.Message``) is translated:
``tr`` for JSON and code, and every template shows a Message in the page's language.
"""

from typing import Any
from urllib.parse import urlencode

from flask import Flask, current_app, has_app_context, has_request_context, request, session
from flask_babel import Babel, get_locale, gettext

from layers.messages import Message


def select_locale() -> str:
    """``?lang=`` wins and is remembered in the session; then the browser's preference.
    Outside a request (the command line) it is ``CLI_LANG``."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():
        cli = current_app.config["CLI_LANG"]
        return cli if cli in languages else languages[0]
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


def page_lang() -> str:
    """The language this request is answered in."""
    return str(get_locale() or current_app.config["LANGUAGES"][0])


def tr(value: Any) -> Any:
    """A core Message in the request's language, or the command line's (``CLI_LANG``);
    English outside the app (a notebook); any other value unchanged."""
    if isinstance(value, Message):
        return value.translated(gettext, page_lang()) if has_app_context() else str(value)
    return value


def init_app(app: Flask) -> None:
    Babel(app, locale_selector=select_locale)
    # Every {{ value }} passes here, so a Message reaches no page untranslated.
    app.jinja_env.finalize = tr
    app.jinja_env.filters["tr"] = tr
    app.jinja_env.globals["lang_url"] = lang_url
    app.context_processor(lambda: {"lang": page_lang()})
