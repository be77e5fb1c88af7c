"""Small helpers shared by tests: a signed internal header, a consumer driven in a thread."""
from __future__ import annotations

import socket
import threading
import uuid

from shared import tokens


def internal_headers(settings, service: str, user_id=None, workspaces: dict | None = None) -> dict:
    principal = tokens.Principal(str(user_id or uuid.uuid4()), {str(k): v for k, v in (workspaces or {}).items()})
    return {tokens.INTERNAL_HEADER: tokens.internal_token(settings.internal_secret, service, principal)}


class ConsumerThread:
    """Runs a kombu ConsumerMixin in a background thread for the length of a `with` block."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.thread = threading.Thread(target=consumer.run, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self.consumer

    def __exit__(self, *exc):
        self.consumer.should_stop = True
        self.thread.join(timeout=10)


class EveryoneIsAMember:
    """Member directory for tests whose subject is not membership (the gateway is not running)."""

    def non_members(self, principal, workspace_id, user_ids) -> set:
        return set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
