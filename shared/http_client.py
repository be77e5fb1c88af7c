"""HTTP clients for calls between okrsnap services: one connection pool per process and thread,
created on first use, so nothing is shared across a gunicorn fork."""
from __future__ import annotations

import os
import threading
from typing import Callable, Generic, TypeVar

import requests

Client = TypeVar("Client")


class ProcessLocalSession(Generic[Client]):
    """`factory()`'s client (a requests.Session unless told otherwise) for this process and thread."""

    def __init__(self, factory: Callable[[], Client] = requests.Session):
        self._local = threading.local()
        self._factory = factory

    def get(self) -> Client:
        if getattr(self._local, "pid", None) != os.getpid():
            self._local.session, self._local.pid = self._factory(), os.getpid()
        return self._local.session
