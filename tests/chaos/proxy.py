"""A small TCP fault proxy (no tc, no toxiproxy): put it in front of PostgreSQL or RabbitMQ and
make the server go away for the processes that connect through it.

Modes: `pass` forwards both ways; `down` resets every open connection and every new one (the
server crashed or the network refuses); `blackhole` accepts and keeps connections but carries no
byte either way until restored (packets dropped: TCP retransmits what was held once it heals)."""
from __future__ import annotations

import socket
import struct
import threading
import time

PASS, DOWN, BLACKHOLE = "pass", "down", "blackhole"


def _reset(sock: socket.socket) -> None:
    """Close with RST, as a crashed peer or a middlebox dropping the flow does. The shutdown
    first: a pump thread blocked in recv() on this socket holds the file open, and a plain
    close() would only happen (and the peer learn of it) once that recv returned - never, if the
    peer waits for us (a database backend left idle in its transaction, holding its locks)."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class FaultProxy:
    def __init__(self, upstream_port: int, upstream_host: str = "127.0.0.1", name: str = "proxy"):
        self.upstream = (upstream_host, upstream_port)
        self.name = name
        self.mode = PASS
        self.listener = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.listener.getsockname()[1]
        self._pairs: set[tuple[socket.socket, socket.socket]] = set()
        self._held: list[socket.socket] = []
        self._lock = threading.Lock()
        self._closed = False
        self.connections = 0
        threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True).start()

    # -- control --------------------------------------------------------------------------
    def cut(self) -> None:
        """The server goes away: open connections are reset, new ones too, until restore()."""
        self.mode = DOWN
        with self._lock:
            pairs, self._pairs = self._pairs, set()
            held, self._held = self._held, []
        for client, upstream in pairs:
            _reset(client)
            _reset(upstream)
        for client in held:
            _reset(client)

    def blackhole(self) -> None:
        self.mode = BLACKHOLE

    def restore(self) -> None:
        self.mode = PASS
        with self._lock:
            held, self._held = self._held, []
        for client in held:  # accepted during the black hole: now they reach the server
            self._connect(client)

    def close(self) -> None:
        self._closed = True
        self.cut()
        try:
            self.listener.close()
        except OSError:
            pass

    # -- forwarding -----------------------------------------------------------------------
    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            if self.mode == DOWN:
                _reset(client)
            elif self.mode == BLACKHOLE:
                with self._lock:
                    self._held.append(client)
            else:
                self._connect(client)

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.upstream, timeout=5)
            upstream.settimeout(None)
        except OSError:
            _reset(client)
            return
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        pair = (client, upstream)
        with self._lock:
            self._pairs.add(pair)
        threading.Thread(target=self._pump, args=(client, upstream, pair), daemon=True).start()
        threading.Thread(target=self._pump, args=(upstream, client, pair), daemon=True).start()

    def _pump(self, source: socket.socket, target: socket.socket, pair) -> None:
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                while self.mode == BLACKHOLE:  # held, not forwarded, until the network heals
                    time.sleep(0.05)
                if self.mode == DOWN:
                    break
                target.sendall(data)
        except OSError:
            pass
        with self._lock:
            known = pair in self._pairs
            self._pairs.discard(pair)
        if known:
            for sock in pair:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                try:
                    sock.close()
                except OSError:
                    pass
