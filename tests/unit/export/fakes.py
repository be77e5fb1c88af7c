"""In-memory stand-ins for the export service's unit of work and snapshot client."""
from __future__ import annotations

import copy
import io
import threading
import uuid
from datetime import datetime, timezone

from services.export.adapters.identity import IdentityUnavailable
from services.export.adapters.snapshot_client import (
    SnapshotNotFound,
    SnapshotUnavailable,
)
from services.export.domain.model import ACTIVE, DONE, QUEUED, RUNNING

START = datetime(2026, 11, 25, 9, 0, tzinfo=timezone.utc)  # "now" of the handler tests


class FakeRepository:
    def __init__(self):
        self.jobs: dict = {}
        self.events: list = []
        self.processed: set = set()
        self.lock = threading.Lock()  # one transaction at a time, as if serialisable

    def state(self):
        return copy.deepcopy((self.jobs, self.events, self.processed))

    def restore(self, state):
        self.jobs, self.events, self.processed = state

    def add(self, job):
        self.jobs[job.id] = copy.deepcopy(job)

    def get(self, job_id, *, for_update=False):
        return copy.deepcopy(self.jobs.get(job_id))

    def save(self, job):
        self.jobs[job.id] = copy.deepcopy(job)

    def lock_requester(self, requester):
        pass

    def count_active(self, requester):
        return sum(1 for j in self.jobs.values() if j.requested_by == requester and j.status in ACTIVE)

    def stranded(self, *, running_before, queued_before, limit):
        found = [j for j in self.jobs.values()
                 if (j.status == RUNNING and (j.heartbeat_at or j.started_at) < running_before)
                 or (j.status == QUEUED and j.created_at < queued_before)]
        return [copy.deepcopy(j) for j in sorted(found, key=lambda j: j.created_at)[:limit]]

    def past_retention(self, now, *, limit):
        due = [j for j in self.jobs.values() if j.status == DONE and j.file_expires_at <= now]
        return [copy.deepcopy(j) for j in sorted(due, key=lambda j: j.file_expires_at)[:limit]]

    def requested_by(self, requester, *, workspace_ids, session_id, limit, offset):
        mine = [j for j in self.jobs.values() if j.requested_by == requester and j.workspace_id in workspace_ids
                and (session_id is None or j.session_id == session_id)]
        mine.sort(key=lambda j: (j.created_at, j.id), reverse=True)
        return [copy.deepcopy(j) for j in mine[offset:offset + limit]], len(mine)

    def add_event(self, event):
        self.events.append(event)

    def already_processed(self, event_id):
        return event_id in self.processed

    def mark_processed(self, event_id, now):
        self.processed.add(event_id)


class FakeUnitOfWork:
    """Keeps the repository's changes only when committed, like a real transaction."""

    def __init__(self, repo: FakeRepository | None = None):
        self.repo = repo or FakeRepository()
        self.commits = 0

    def __enter__(self):
        self.repo.lock.acquire()
        self._before = self.repo.state()
        self._committed = False
        return self

    def __exit__(self, *exc_info):
        if not self._committed:
            self.repo.restore(self._before)
        self.repo.lock.release()

    def commit(self):
        self._committed = True
        self.commits += 1


class FakeSnapshots:
    """Answers like the snapshot service for the Sessions it was given; records who asked."""

    def __init__(self):
        self.sessions: dict = {}
        self.views: dict = {}
        self.down = False
        self.asked_by: list = []

    def add_session(self, workspace_id, name="Q4", session_id=None) -> uuid.UUID:
        session_id = session_id or uuid.uuid4()
        self.sessions[session_id] = {"id": session_id, "workspace_id": workspace_id, "name": name}
        return session_id

    def session(self, session_id, principal):
        self.asked_by.append(principal)
        if self.down:
            raise SnapshotUnavailable("The snapshot service did not answer.")
        session = self.sessions.get(session_id)
        if session is None or not principal.member_of(session["workspace_id"]):
            raise SnapshotNotFound(str(session_id))
        return session

    def week_view(self, session_id, week, owner, principal):
        self.session(session_id, principal)
        return self.views[(session_id, week)]


class FakeFiles:
    def __init__(self):
        self.written: dict[str, bytes] = {}

    def name_for(self, job_id, extension, *, attempt=1):
        return f"{job_id}-{attempt}.{extension}"

    def delete(self, name):
        self.written.pop(name, None)

    def remove_abandoned(self, older_than):
        return 0

    def write(self, name, content):
        self.written[name] = content

    def write_with(self, name, produce):
        out = io.BytesIO()
        produce(out)
        self.written[name] = out.getvalue()


class FakeIdentities:
    """The gateway's directory: current roles, names and emails of the people it was given."""

    def __init__(self, workspace_name="Acme"):
        self.workspace_name = workspace_name
        self.directory: dict = {}  # user id -> (name, email)
        self.principals: dict = {}
        self.down = False
        self.asked: list = []

    def add(self, name, email, user_id=None) -> uuid.UUID:
        user_id = user_id or uuid.uuid4()
        self.directory[str(user_id)] = (name, email)
        return user_id

    def current(self, user_id):
        if self.down:
            raise IdentityUnavailable("the gateway answered 503")
        return self.principals[str(user_id)]

    def people(self, workspace_id, user_ids, principal):
        self.asked.append((workspace_id, set(map(str, user_ids)), principal))
        if self.down:
            raise IdentityUnavailable("the gateway answered 503")
        return {"workspace": {"id": workspace_id, "name": self.workspace_name},
                "people": {str(i): self.directory[str(i)] for i in user_ids if str(i) in self.directory}}


def week_view(session_name="Q4", week="2026-W48", status="past", objectives=None,
              before=None, after=None) -> dict:
    """A week view as the snapshot client returns it (already validated)."""
    return {"session": {"id": uuid.uuid4(), "workspace_id": uuid.uuid4(), "name": session_name},
            "week": week, "status": status, "nearest_saved": {"before": before, "after": after},
            "owner": "all", "objectives": objectives if objectives is not None else []}


def objective(title="Grow revenue", owner_id=None, key_results=(), context=False) -> dict:
    return {"title": title, "owner_id": owner_id, "context": context, "key_results": list(key_results)}


def key_result(title="ARR", owner_id=None, start=10.0, target=20.0, current=15.0, unit="k€",
               status="on_track", progress=0.5, context=False) -> dict:
    return {"title": title, "owner_id": owner_id, "start_value": start, "target_value": target,
            "current_value": current, "unit": unit, "status": status, "progress": progress,
            "context": context}
