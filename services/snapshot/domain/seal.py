"""A sealed week's content hash: the week's state, its Check-ins and the previous sealed week's
hash, in canonical JSON. Pure."""
from __future__ import annotations

import hashlib
import json
from datetime import date, datetime
from uuid import UUID


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
