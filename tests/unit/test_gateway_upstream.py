"""The gateway's connections to the services (issue 13): kept alive and reused, an idempotent
request sent once more when its pooled connection died under it, a POST never sent twice, a
half-read answer's connection never reused, the client's query string passed as it came."""
from __future__ import annotations

import socket
import threading
import uuid

import pytest

from services.gateway.adapters.upstream import Upstream, UpstreamUnavailable
from shared import tokens

SECRET = "test-internal-secret-0123456789abcdef"
PRINCIPAL = tokens.Principal(str(uuid.uuid4()), {})


class HttpService:
    """A minimal HTTP/1.1 service on a thread per connection: `answer(conn, request line)` answers
    one request (False: the connection ends)."""

    def __init__(self):
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        with conn, conn.makefile("rb") as reader:
            while True:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    try:
                        line = reader.readline()
                    except OSError:
                        return  # the client closed a connection it would not reuse
                    if not line:
                        return
                    head += line
                length = next((int(h.split(b":")[1]) for h in head.split(b"\r\n")
                               if h.lower().startswith(b"content-length:")), 0)
                reader.read(length)
                try:
                    if not self.answer(conn, head.split(b"\r\n", 1)[0].decode()):
                        return
                except OSError:
                    return  # the client went away mid-answer

    def answer(self, conn, request_line: str) -> bool:
        raise NotImplementedError

    def close(self):
        self.listener.close()


class ScriptedService(HttpService):
    """Keeps connections alive, records every request line, and, when `drop_next` is set, closes
    the connection on the next request without answering (a keep-alive connection that died just
    as a request crossed it)."""

    def __init__(self, body: bytes = b"{}"):
        self.body = body
        self.requests: list[str] = []
        self.drop_next = False
        super().__init__()

    def answer(self, conn, request_line: str) -> bool:
        self.requests.append(request_line)
        if self.drop_next:
            self.drop_next = False
            conn.shutdown(socket.SHUT_RDWR)
            return False
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                     + str(len(self.body)).encode() + b"\r\n\r\n" + self.body)
        return True


@pytest.fixture
def service():
    service = ScriptedService()
    yield service
    service.close()


def _send(upstream, method, *, params=b"", body=b""):
    response = upstream.forward("checkin", method, "/things", principal=PRINCIPAL, params=params, body=body,
                                headers={"Content-Type": "application/json"})
    return response.status_code, response.content


def test_connections_are_kept_alive_and_reused(service):
    upstream = Upstream({"checkin": service.url}, SECRET)
    assert [_send(upstream, "GET") for _ in range(5)] == [(200, b"{}")] * 5
    assert service.connections == 1


def test_a_get_whose_pooled_connection_died_is_sent_once_more(service):
    upstream = Upstream({"checkin": service.url}, SECRET)
    assert _send(upstream, "GET") == (200, b"{}")
    service.drop_next = True
    assert _send(upstream, "GET") == (200, b"{}")  # not a 503
    assert service.requests == ["GET /things HTTP/1.1"] * 3 and service.connections == 2


def test_a_post_that_may_have_arrived_is_never_sent_twice(service):
    upstream = Upstream({"checkin": service.url}, SECRET)
    assert _send(upstream, "POST", body=b'{"value": 1}') == (200, b"{}")
    service.drop_next = True
    with pytest.raises(UpstreamUnavailable):
        _send(upstream, "POST", body=b'{"value": 2}')
    assert service.requests == ["POST /things HTTP/1.1"] * 2  # the second one once, never again


def test_a_service_nobody_listens_on_is_unavailable():
    closed = socket.create_server(("127.0.0.1", 0))
    url = f"http://127.0.0.1:{closed.getsockname()[1]}"
    closed.close()  # nothing listens: the connection cannot be opened
    with pytest.raises(UpstreamUnavailable):
        _send(Upstream({"checkin": url}, SECRET), "POST", body=b"{}")


def test_a_half_read_answer_leaves_no_connection_to_reuse():
    service = ScriptedService(body=b"[" + b"1," * 400_000 + b"1]")
    try:
        upstream = Upstream({"checkin": service.url}, SECRET)
        response = upstream.forward("checkin", "GET", "/things", principal=PRINCIPAL, params=b"", body=b"",
                                    headers={})
        next(response.iter_content(64 * 1024))
        response.close()  # the client went away mid-download
        assert _send(upstream, "GET") == (200, service.body)  # whole, from its first byte
        assert service.connections == 2
    finally:
        service.close()


def test_the_clients_query_string_passes_as_it_came(service):
    upstream = Upstream({"checkin": service.url}, SECRET)
    _send(upstream, "GET", params=b"owner=all&id=a&id=b&q=%C3%A9t%C3%A9")
    assert service.requests[-1] == "GET /things?owner=all&id=a&id=b&q=%C3%A9t%C3%A9 HTTP/1.1"
    _send(upstream, "GET", params={"limit": 5, "q": "a b"})  # the pages' parameters, encoded
    assert service.requests[-1] == "GET /things?limit=5&q=a+b HTTP/1.1"
