"""The web UI's languages (api layer): Korean and English message catalogs, and which one a request gets.

The catalogs are JSON files under web/static/i18n/, read here for the server's templates and fetched
as they are by the pages' scripts, so one file per language holds every string a page shows. The
choice: the `vmdeck_lang` cookie the language switch sets (it outlives signing out and in), else the
browser's Accept-Language, else English.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from importlib import resources

from starlette.requests import HTTPConnection

__all__ = ["LANGUAGES", "DEFAULT", "COOKIE", "catalog", "choose", "translator"]

LANGUAGES = ("en", "ko")
DEFAULT = "en"
COOKIE = "vmdeck_lang"


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    path = resources.files("vmdeck.web") / "static" / "i18n" / f"{lang}.json"
    data: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return data


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
