"""The web UI's languages (api layer): Korean and English message catalogs, and which one a request gets.

The catalogs are JSON files under web/i18n/LANG/, one per area of the UI (common.json, learn.json, ...)
so that work on one page does not touch another's words. They are merged here, for the server's
templates and for the pages' scripts (GET /i18n/LANG.json, static/js/i18n.js); a key defined in two
files of one language is an error, not a silent override. The
choice: the `vmdeck_lang` cookie the language switch sets (it outlives signing out and in), else the
browser's Accept-Language, else English.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from markupsafe import Markup, escape
from starlette.requests import HTTPConnection

from vmdeck.errors import NotFound

__all__ = ["LANGUAGES", "DEFAULT", "COOKIE", "catalog", "choose", "translator", "marked_translator", "router"]

LANGUAGES = ("en", "ko")
DEFAULT = "en"
COOKIE = "vmdeck_lang"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """Every message of one language, merged from its area files."""
    if lang not in LANGUAGES:
        raise KeyError(lang)
    folder = resources.files("vmdeck.web") / "i18n" / lang
    merged: dict[str, str] = {}
    origin: dict[str, str] = {}
    for area in sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name):
        messages: dict[str, str] = json.loads(area.read_text(encoding="utf-8"))
        for key, text in messages.items():
            if key in merged:
                raise ValueError(f"message {key!r} of {lang} is in both {origin[key]} and {area.name}")
            merged[key] = text
            origin[key] = area.name
    return merged


router = APIRouter()


@router.get("/i18n/{lang}.json", include_in_schema=False)
def serve_catalog(lang: str) -> JSONResponse:
    """The merged catalog for the pages' scripts; public, as the sign-in page needs its words too."""
    if lang not in LANGUAGES:
        raise NotFound(f"no language {lang!r}; vmdeck speaks {', '.join(LANGUAGES)}")
    return JSONResponse(catalog(lang), headers={"Cache-Control": "private, max-age=300"})


def _from_accept_language(header: str) -> str | None:
    """The best of our languages in an Accept-Language header ("ko-KR,ko;q=0.9,en;q=0.8")."""
    ranked: list[tuple[float, int, str]] = []
    for index, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        quality = 1.0
        if params.strip().startswith("q="):
            try:
                quality = float(params.strip()[2:])
            except ValueError:
                continue
        primary = tag.strip().lower().split("-")[0]
        if primary in LANGUAGES and quality > 0:
            ranked.append((-quality, index, primary))
    return min(ranked)[2] if ranked else None


def choose(conn: HTTPConnection) -> str:
    chosen = conn.cookies.get(COOKIE, "")
    if chosen in LANGUAGES:
        return chosen
    return _from_accept_language(conn.headers.get("accept-language", "")) or DEFAULT


def translator(lang: str) -> Callable[..., str]:
    """t(key, **values): the message in `lang` (English when that catalog lacks it), {names} filled in."""
    messages = catalog(lang)
    fallback = catalog(DEFAULT)

    def t(key: str, **values: object) -> str:
        text = messages.get(key) or fallback.get(key) or key
        for name, value in values.items():
            text = text.replace("{" + name + "}", str(value))
        return text

    return t


def marked_translator(lang: str) -> Callable[..., Markup]:
    """tv(key, **values) for templates: the message as HTML with each value in a <span class="val">, so the
    page's catalog check tells words (the catalog's) from values (a user's or a VM's name)."""
    t = translator(lang)

    def tv(key: str, **values: object) -> Markup:
        html = escape(t(key))
        for name, value in values.items():
            html = Markup(html.replace("{" + name + "}", Markup('<span class="val">{}</span>').format(value)))
        return Markup(html)

    return tv
