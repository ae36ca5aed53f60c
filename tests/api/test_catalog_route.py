"""GET /i18n/LANG.json: the merged catalog the pages' scripts load, public (the sign-in page needs it)."""

from __future__ import annotations

from fastapi.testclient import TestClient

from vmdeck.api import i18n


def test_the_catalog_is_served_and_an_unknown_language_is_404(anon: TestClient) -> None:
    served = anon.get("/i18n/ko.json")
    assert served.status_code == 200
    assert served.json() == i18n.catalog("ko")
    assert anon.get("/i18n/xx.json").status_code == 404
