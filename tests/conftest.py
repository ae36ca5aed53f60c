"""Shared pytest settings: every test gets its own vmdeck config dir and database (no user templates or
registered hosts leak in)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _isolated_config(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VMDECK_CONFIG_DIR", str(tmp_path_factory.mktemp("vmdeck-config")))
    monkeypatch.setenv("VMDECK_DB", str(tmp_path_factory.mktemp("vmdeck-db") / "vmdeck.sqlite"))
