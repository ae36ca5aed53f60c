"""The web UI's message catalogs: both languages carry the same keys, no key is defined twice."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from vmdeck.api import i18n


def test_both_languages_carry_the_same_keys() -> None:
    english, korean = i18n.catalog("en"), i18n.catalog("ko")
    assert set(english) - set(korean) == set(), "keys missing in Korean"
    assert set(korean) - set(english) == set(), "keys missing in English"
    assert all(text.strip() for text in [*english.values(), *korean.values()])


def test_each_area_file_exists_in_both_languages() -> None:
    folder = resources.files("vmdeck.web") / "i18n"
    areas = {lang: sorted(f.name for f in (folder / lang).iterdir()) for lang in i18n.LANGUAGES}
    assert areas["en"] == areas["ko"]


def test_a_key_in_two_area_files_is_refused(tmp_path, monkeypatch) -> None:
    for name in ("a.json", "b.json"):
        (tmp_path / "web" / "i18n" / "en").mkdir(parents=True, exist_ok=True)
        (tmp_path / "web" / "i18n" / "en" / name).write_text(json.dumps({"same.key": name}))

    class FakeRoot:
        def __truediv__(self, part: str):  # resources.files("vmdeck.web") / "i18n" / lang
            return tmp_path / "web" / part

    monkeypatch.setattr(i18n.resources, "files", lambda package: FakeRoot())
    i18n.catalog.cache_clear()
    try:
        with pytest.raises(ValueError, match="same.key.*a.json and b.json"):
            i18n.catalog("en")
    finally:
        i18n.catalog.cache_clear()



def _placeholders(text: str) -> set[str]:
    return set(re.findall(r"\{(\w+)\}", text))


def test_both_languages_fill_in_the_same_values() -> None:
    english, korean = i18n.catalog("en"), i18n.catalog("ko")
    differ = {key: (english[key], korean[key]) for key in english if _placeholders(english[key]) != _placeholders(korean[key])}
    assert differ == {}


def test_the_korean_catalog_is_korean() -> None:
    # Technical words (vCPU, QEMU, ISO, MAC) stay as they are in both; every other message is written in Korean.
    english, korean = i18n.catalog("en"), i18n.catalog("ko")
    hangul = re.compile(r"[\uac00-\ud7a3]")
    untranslated = [key for key, text in korean.items() if key != "brand"  # vmdeck is vmdeck
                    and not hangul.search(text) and re.search(r"[a-z]{4,}", _PLACEHOLDER.sub("", text))
                    and text == english[key]]
    assert untranslated == [], "English words in the Korean catalog"
    assert sum(bool(hangul.search(text)) for text in korean.values()) > 0.9 * len(korean)


# t('key'), tv('key'), tNodes('key') with a literal key, in the templates and the pages' scripts.
_USED = re.compile(r"""\b(?:t|tv|tNodes|tNodesStrong)\(\s*'([a-z][\w.]*)'""")
_PLACEHOLDER = re.compile(r"\{\w+\}")


def test_every_message_the_pages_ask_for_exists() -> None:
    web = resources.files("vmdeck.web")
    english = i18n.catalog("en")
    files = [*(web / "templates").iterdir(), *(web / "static" / "js").iterdir()]
    asked = {(f.name, key) for f in files if f.name.endswith((".html", ".js"))
             for key in _USED.findall(f.read_text(encoding="utf-8"))}
    assert len(asked) > 300
    assert sorted((name, key) for name, key in asked if key not in english) == []


def test_a_template_value_is_marked_and_escaped() -> None:
    tv = i18n.marked_translator("ko")
    shown = str(tv("error.forbidden.who", user="<b>ann</b>"))
    assert shown.startswith('<span class="val">&lt;b&gt;ann&lt;/b&gt;</span>')
    assert "관리자" in shown
