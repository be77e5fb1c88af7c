"""A sealed week's content hash: the week's state, its Check-ins and the previous sealed week's
hash, in canonical JSON. Pure."""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import date, datetime
from uuid import UUID
from zoneinfo import ZoneInfo


def _plain(value):
    if isinstance(value, (UUID, date, datetime)):
        return str(value) if not isinstance(value, datetime) else value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


CHECK_IN_FIELDS = ("id", "key_result_id", "value", "status", "confidence", "comment", "author_id", "checked_in_at")


def content_hash(week: str, states: dict[str, list[dict]], check_ins: list[dict], previous_hash: str | None) -> str:
    document = {
        "week": week,
        "previous": previous_hash,
        "items": {kind: sorted(_plain(items), key=lambda i: i["id"]) for kind, items in sorted(states.items())},
        "check_ins": sorted(({f: _plain(c[f]) for f in CHECK_IN_FIELDS} for c in check_ins), key=lambda c: c["id"]),
    }
    canonical = json.dumps(document, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SealedWeek:
    """A sealed week as it was closed: its label and bounds stay what they were when it was
    sealed, whatever the Session's dates or week start say since (a sealed week exists because it
    is sealed). Answers like shared.weeks.Week where a week view needs one."""

    label: str
    starts_at: datetime
    ends_at: datetime

    def bounds(self, tz: str | None = None) -> tuple[datetime, datetime]:
        return self.starts_at, self.ends_at

    def first_day(self, tz: str) -> date:
        return self.starts_at.astimezone(ZoneInfo(tz)).date()
