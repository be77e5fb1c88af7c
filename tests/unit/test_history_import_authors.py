"""A history import keeps who made each Check-in (`author_id`, a member of the Workspace; the
importer when not given): the demo's Check-ins are each by their Key Result's owner."""
from __future__ import annotations

import uuid
from datetime import date, datetime, timezone

import pytest

from services.checkin.domain import commands
from services.checkin.domain.model import DomainError
from services.checkin.entrypoints.schemas import HistoryImport
from services.checkin.service_layer import handlers
from shared.tokens import Principal
from tests.unit.test_checkin_handlers import CLOCK, USER, WS, FakeDirectory, FakeUnitOfWork

T0 = datetime(2026, 10, 5, 9, tzinfo=timezone.utc)
AUTHOR = uuid.uuid4()


def _document(*authors) -> dict:
    return {"session": {"name": "Past", "start_date": date(2026, 10, 5), "end_date": date(2026, 12, 27),
                        "timezone": "UTC", "created_at": T0},
            "objectives": [{"ref": "o", "title": "O", "parent_ref": None, "created_at": T0}],
            "key_results": [{"ref": "k", "objective_ref": "o", "title": "K", "start_value": 0, "target_value": 10,
                             "created_at": T0}],
            "check_ins": [dict({"key_result_ref": "k", "value": n, "status": "on_track",
                                "checked_in_at": datetime(2026, 10, 6 + n, tzinfo=timezone.utc)},
                               **({"author_id": author} if author is not ... else {}))
                          for n, author in enumerate(authors)]}


def _authors(uow) -> list:
    return [e.payload["check_in"]["author_id"] for e in uow.repo.events
            if e.event_type == "checkin.key_result.checked_in"]


def test_each_check_in_keeps_its_author_and_defaults_to_the_importer():
    directory = FakeDirectory()
    directory.members.add(AUTHOR)
    owner = Principal(str(USER), {str(WS): "owner"})
    uow = FakeUnitOfWork()
    handlers.import_history(commands.ImportHistory(owner, WS, _document(AUTHOR, ..., None)), uow=uow, clock=CLOCK,
                            members=directory)
    assert [str(a) for a in _authors(uow)] == [str(AUTHOR), str(USER), str(USER)]


def test_an_author_outside_the_workspace_is_refused():
    owner = Principal(str(USER), {str(WS): "owner"})
    stranger = uuid.uuid4()
    uow = FakeUnitOfWork()
    with pytest.raises(DomainError, match="Not a member") as refused:
        handlers.import_history(commands.ImportHistory(owner, WS, _document(stranger)), uow=uow,
                                clock=CLOCK, members=FakeDirectory())
    assert refused.value.field == "check_ins.0.author_id"
    assert uow.repo.events == [], "nothing of the document was kept"


def test_the_api_schema_takes_an_author():
    body = {"session": {"name": "Past", "start_date": "2026-10-05", "end_date": "2026-12-27", "timezone": "UTC",
                        "created_at": T0.isoformat()},
            "check_ins": [{"key_result_ref": "k", "value": 1, "status": "on_track",
                           "checked_in_at": T0.isoformat(), "author_id": str(AUTHOR)}]}
    loaded = HistoryImport().load(body)
    assert loaded["check_ins"][0]["author_id"] == AUTHOR
    assert HistoryImport().load({**body, "check_ins": [{**body["check_ins"][0], "author_id": None}]}
                                )["check_ins"][0]["author_id"] is None
