"""The fault proxy itself: forwards, resets when cut, holds bytes in a black hole."""
from __future__ import annotations

import socket
import threading

import pytest

from tests.chaos.proxy import FaultProxy
from tests.conftest import wait_until

ENDED: list = []  # one entry per server-side connection that learnt its peer was gone


@pytest.fixture
def echo_server():
    listener = socket.create_server(("127.0.0.1", 0))
    ENDED.clear()

    def serve(conn):
        with conn:
            try:
                while data := conn.recv(1024):
                    conn.sendall(data)
            except OSError:  # reset by the proxy's cut
                pass
        ENDED.append(conn)

    def accept():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield listener.getsockname()[1]
    listener.close()


def _echo(port: int, payload: bytes, timeout: float = 2) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(payload)
        return sock.recv(1024)


def test_the_proxy_forwards_cuts_and_black_holes(echo_server):
    proxy = FaultProxy(echo_server)
    try:
        assert _echo(proxy.port, b"hello") == b"hello"
        held = socket.create_connection(("127.0.0.1", proxy.port), timeout=2)
        held.sendall(b"a")
        assert held.recv(10) == b"a"
        ended_before = len(ENDED)
        proxy.cut()
        # The server side learns at once, though nothing was in flight (a backend waiting for
        # its client must not be left holding its transaction).
        wait_until(lambda: len(ENDED) > ended_before, timeout=5, message="the server seeing the cut")
        with pytest.raises(OSError):  # reset, or closed without an answer
            held.sendall(b"b")
            if held.recv(10) == b"":
                raise ConnectionResetError("closed")
        with pytest.raises(OSError):
            if _echo(proxy.port, b"x") == b"":
                raise ConnectionResetError("closed")
        proxy.restore()
        assert _echo(proxy.port, b"back") == b"back"
        proxy.blackhole()
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=0.5) as sock:
            sock.sendall(b"lost?")
            with pytest.raises(socket.timeout):
                sock.recv(10)
            proxy.restore()  # the bytes held come through once the network heals
            sock.settimeout(5)
            assert sock.recv(10) == b"lost?"
    finally:
        proxy.close()
