"""The web UI's message catalogs: both languages carry the same keys, no key is defined twice."""

from __future__ import annotations

import json
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

