"""Console links (vmdeck.api.console_link): asked for with the console's own rule, spent once by a browser
that is not signed in, worthless afterwards and for another VM; the page says why in plain words."""

from __future__ import annotations

from fastapi.testclient import TestClient

from vmdeck.api.tickets import TicketBook


def test_a_link_opens_the_console_page_once(client: TestClient) -> None:
    made = client.post("/api/vms/busy/console/link")
    assert made.status_code == 200, made.text
    body = made.json()
    assert body["vm"] == "busy" and body["expires_in"] == 120
    path = body["url"].split("testserver", 1)[1]
    anon = TestClient(client.app, base_url="http://testserver")  # a browser that never signed in
    assert path.startswith("/console/")
    page = anon.get(path)
    assert page.status_code == 200, page.text
    assert 'id="link-console"' in page.text and "/console-link/busy/vnc?ticket=" in page.text
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
    again = anon.get(path)
    assert again.status_code == 403 and "already used" in again.text and 'id="link-refused"' in again.text
    # The page's ticket opens nothing of the API: the caller is still nobody.
    assert anon.get("/api/vms").status_code == 401


def test_a_link_for_a_vm_that_is_off_or_unknown_is_refused(client: TestClient) -> None:
    assert client.post("/api/vms/ghost/console/link").status_code == 404
    client.post("/api/vms", json={"name": "offlink", "template": "q35-virtio"}).raise_for_status()
    assert client.post("/api/vms/offlink/console/link").status_code == 409
    client.delete("/api/vms/offlink")


def test_link_tickets_are_bearer_tickets_of_their_own_kind() -> None:
    book = TicketBook(ttl=30)
    link = book.issue(1, "busy", "link", ttl=120, credential="token:7")
    assert link.expires - book.clock() > 100
    import pytest

    from vmdeck.api.errors import Forbidden
    with pytest.raises(Forbidden, match="another console"):
        book.redeem_bearer(book.issue(1, "busy", "vnc-link").value, "vnc-link", "other")
    with pytest.raises(Forbidden, match="not a bearer ticket"):
        book.redeem_bearer(link.value, "vnc")
    # A link is not a console ticket for the signed-in route either.
    with pytest.raises(Forbidden):
        book.redeem(book.issue(1, "busy", "vnc-link").value, 1, "busy", "vnc")
    assert book.redeem_bearer(link.value, "link").credential == "token:7"


def test_the_pages_ticket_is_admitted_by_the_screens_websocket_once(client: TestClient) -> None:
    """Admitted (the test driver's VM has no VNC server, so the proxy then closes with 1011 and why), and
    the same ticket a second time is refused before anything opens (1008)."""
    import re

    from starlette.websockets import WebSocketDisconnect

    url = client.post("/api/vms/busy/console/link").json()["url"]
    anon = TestClient(client.app, base_url="http://testserver")
    page = anon.get(url.split("testserver", 1)[1])
    path = re.search(r'data-path="([^"]+)"', page.text)
    assert path is not None
    screen = path.group(1).replace("&amp;", "&")
    with anon.websocket_connect(screen, headers={"origin": "http://testserver"}) as ws:
        try:
            ws.receive_bytes()
            raise AssertionError("the test driver's VM has no screen to send")
        except WebSocketDisconnect as closed:
            assert closed.code == 1011, (closed.code, closed.reason)
    try:
        with anon.websocket_connect(screen, headers={"origin": "http://testserver"}) as ws:
            ws.receive_bytes()
        raise AssertionError("a spent ticket opened the screen")
    except WebSocketDisconnect as refused:
        assert refused.code == 1008 and "already used" in refused.reason
