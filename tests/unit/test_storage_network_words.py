"""Every word of the storage panel, the Networks page and the NIC addresses comes from the catalogs: each key
their templates and scripts name exists in English and Korean (a missing key would show as itself)."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from vmdeck.api import i18n

WEB = resources.files("vmdeck.web")
FILES = ["templates/storage_panel.html", "templates/networks.html", "templates/nic_addresses.html",
         "static/js/storage.js", "static/js/networks.js", "static/js/nics.js"]
# t('key'), t("key"), t(`key`) with a literal key; a built one (`networks.mode.${mode}`) falls back to its value.
_KEY = re.compile(r"""\bt\(\s*['"]([a-z0-9_.]+)['"]""")


@pytest.mark.parametrize("name", FILES)
def test_each_key_exists_in_both_languages(name: str) -> None:
    text = (WEB / name).read_text(encoding="utf-8")
    keys = set(_KEY.findall(text))
    assert keys, f"{name} names no message"
    for lang in i18n.LANGUAGES:
        missing = keys - set(i18n.catalog(lang))
        assert not missing, f"{name}: {sorted(missing)} missing in {lang}"


def test_the_network_modes_have_words() -> None:
    for lang in i18n.LANGUAGES:
        assert {f"networks.mode.{m}" for m in ("nat", "isolated", "routed", "open")} <= set(i18n.catalog(lang))
