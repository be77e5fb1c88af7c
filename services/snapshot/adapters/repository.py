"""Reads and writes of the snapshot store."""
from __future__ import annotations

from datetime import datetime

import orjson
from sqlalchemy import Text, cast, func, literal, select, update
from sqlalchemy.dialects.postgresql import aggregate_order_by
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session as DbSession

from services.snapshot.adapters import orm
from shared.messaging import already_processed, mark_processed

CONSUMER = "snapshot"


class SnapshotRepository:
    def __init__(self, db: DbSession):
        self.db = db

    def _insert(self, table):
        """INSERT with ON CONFLICT, in the dialect at hand."""
        return (pg_insert if self.db.get_bind().dialect.name == "postgresql" else sqlite_insert)(table)

    # consumer bookkeeping
    def already_processed(self, event_id) -> bool:
        return already_processed(self.db, orm.processed_events, CONSUMER, event_id)

    def mark_processed(self, event_id, now: datetime) -> None:
        mark_processed(self.db, orm.processed_events, CONSUMER, event_id, now)

    def processed_among(self, event_ids) -> set:
        p = orm.processed_events
        rows = self.db.execute(select(p.c.event_id).where(p.c.consumer == CONSUMER,
                                                          p.c.event_id.in_([str(i) for i in event_ids])))
        return {row.event_id for row in rows}

    def mark_processed_many(self, event_ids, now: datetime) -> None:
        self.db.execute(orm.processed_events.insert(),
                        [{"consumer": CONSUMER, "event_id": str(i), "processed_at": now} for i in event_ids])

    # sessions
    def get_session(self, session_id, *, lock: bool = False) -> dict | None:
        """lock: hold the Session's row until commit, so the events of one Session apply one at a
        time (a late event and the closing of its week must not pass each other)."""
        query = select(orm.sessions).where(orm.sessions.c.id == session_id)
        row = self.db.execute(query.with_for_update() if lock else query).mappings().first()
        return dict(row) if row else None

    def lock_sessions(self, session_ids) -> dict:
        """The known Sessions among `session_ids`, each row held until commit (see get_session),
        locked in one statement in id order, so two workers never wait on each other in a cycle."""
        s = orm.sessions
        rows = self.db.execute(select(s).where(s.c.id.in_(list(session_ids))).order_by(s.c.id)
                               .with_for_update()).mappings()
        return {row["id"]: dict(row) for row in rows}

    def put_session(self, state: dict) -> None:
        """Insert, or replace with a newer version (events may arrive out of order)."""
        values = {c.name: state[c.name] for c in orm.sessions.columns}
        values["members"] = [str(m) for m in values["members"]]
        current = self.get_session(state["id"])
        if current is None:
            self.db.execute(orm.sessions.insert().values(**values))
        elif current["version"] < values["version"]:
            self.db.execute(update(orm.sessions).where(orm.sessions.c.id == state["id"]).values(**values))

    def count_activity(self, session_id, week: str, events: int = 1) -> None:
        changed = self.db.execute(update(orm.session_weeks).where(
            orm.session_weeks.c.session_id == session_id, orm.session_weeks.c.week == week,
        ).values(events=orm.session_weeks.c.events + events)).rowcount
        if not changed:
            self.db.execute(orm.session_weeks.insert().values(session_id=session_id, week=week, events=events))

    def move_activity(self, session_id, moves: dict[tuple[str, str], int]) -> None:
        """Move counted events from one week to another ((from, to) -> how many): events that
        turned out late count in the week they became effective in. A week left with none is no
        longer saved."""
        w = orm.session_weeks
        for (source, target), events in sorted(moves.items()):
            if source == target:
                continue
            self.db.execute(update(w).where(w.c.session_id == session_id, w.c.week == source)
                            .values(events=w.c.events - events))
            self.db.execute(w.delete().where(w.c.session_id == session_id, w.c.week == source, w.c.events <= 0))
            self.count_activity(session_id, target, events)

    def activity(self, session_id) -> list[tuple[str, int]]:
        """(week, events applied in it) for every week that had any."""
        return list(self.db.execute(select(orm.session_weeks.c.week, orm.session_weeks.c.events).where(
            orm.session_weeks.c.session_id == session_id)).all())

    def saved_weeks(self, session_id) -> list[str]:
        return list(self.db.execute(select(orm.session_weeks.c.week).where(
            orm.session_weeks.c.session_id == session_id).order_by(orm.session_weeks.c.week)).scalars())

    # events waiting for their Session
    def park(self, event_id, session_id, body: dict, now: datetime) -> None:
        exists = self.db.execute(select(orm.parked_events.c.event_id).where(
            orm.parked_events.c.event_id == event_id)).first()
        if not exists:
            self.db.execute(orm.parked_events.insert().values(event_id=event_id, session_id=session_id,
                                                              body=body, parked_at=now))

    def unpark(self, event_id) -> None:
        self.db.execute(orm.parked_events.delete().where(orm.parked_events.c.event_id == event_id))

    def parked_unknown_since(self, cutoff: datetime, limit: int = 200) -> list[tuple]:
        """(event id, Session id, body, parked at) of events parked before `cutoff` whose
        Session is still unknown, oldest first."""
        p = orm.parked_events
        known = select(orm.sessions.c.id).where(orm.sessions.c.id == p.c.session_id).exists()
        return [tuple(row) for row in self.db.execute(
            select(p.c.event_id, p.c.session_id, p.c.body, p.c.parked_at)
            .where(p.c.parked_at < cutoff, ~known).order_by(p.c.parked_at).limit(limit))]

    def oldest_parked(self) -> datetime | None:
        return self.db.execute(select(func.min(orm.parked_events.c.parked_at))).scalar_one()

    def parked_for_known_sessions(self, session_id=None, *, among=None) -> list[dict]:
        """Bodies of parked events whose Session is now known: of one Session, of those `among`
        (an iterable of ids), or of all."""
        p = orm.parked_events
        query = select(p.c.body).where(select(orm.sessions.c.id).where(orm.sessions.c.id == p.c.session_id).exists())
        if session_id is not None:
            query = query.where(p.c.session_id == session_id)
        if among is not None:
            query = query.where(p.c.session_id.in_(list(among)))
        return list(self.db.execute(query.order_by(p.c.parked_at)).scalars())

    # weeks closing and sealing
    def record_sequences(self, pairs: list[tuple]) -> None:
        self.db.execute(orm.applied_sequences.insert(), [{"session_id": s, "sequence": q} for s, q in pairs])

    def applied_sequences_among(self, pairs: list[tuple]) -> set[tuple]:
        """Which of these (session_id, sequence) pairs are applied already."""
        a = orm.applied_sequences
        rows = self.db.execute(select(a.c.session_id, a.c.sequence).where(
            a.c.session_id.in_({s for s, _ in pairs}), a.c.sequence.in_({q for _, q in pairs}))).all()
        wanted = set(pairs)
        return {(s, q) for s, q in rows if (s, q) in wanted}

    def applied_count(self, session_id) -> tuple[int, int]:
        """(how many, highest) of the Session's events applied: changes whenever one is."""
        a = orm.applied_sequences
        count, highest = self.db.execute(select(func.count(), func.max(a.c.sequence)).where(
            a.c.session_id == session_id)).one()
        return count, highest or 0

    def applied_below(self, session_id, sequence: int) -> int:
        a = orm.applied_sequences
        return self.db.execute(select(func.count()).select_from(a).where(
            a.c.session_id == session_id, a.c.sequence < sequence)).scalar_one()

    def closure_bounds(self, session_id) -> list[tuple[int, datetime]]:
        """(close sequence, week end) of every closed week, for effective times."""
        w = orm.week_closes
        return [tuple(r) for r in self.db.execute(select(w.c.close_sequence, w.c.ends_at).where(
            w.c.session_id == session_id))]

    def add_closure(self, session_id, week: str, starts_at: datetime, ends_at: datetime,
                    sequence: int) -> list[datetime]:
        """Record a closed week; events applied before the marker but after it in the stream
        are late for it: they move to its end. Returns when each moved item version counted
        before (its event's activity moves with it)."""
        self.db.execute(orm.week_closes.insert().values(
            session_id=session_id, week=week, starts_at=starts_at, ends_at=ends_at, close_sequence=sequence))
        v = orm.item_versions
        moved = list(self.db.execute(select(v.c.effective_at).where(
            v.c.session_id == session_id, v.c.sequence > sequence, v.c.effective_at < ends_at)).scalars())
        for table in (orm.item_versions, orm.check_ins, orm.item_latest):
            self.db.execute(update(table).where(
                table.c.session_id == session_id, table.c.sequence > sequence, table.c.effective_at < ends_at,
            ).values(effective_at=ends_at))
        return moved

    def unsealed_closures_ended_before(self, cutoff: datetime) -> list[dict]:
        """Closed weeks of any Session, ended before `cutoff`, not sealed yet."""
        w, s = orm.week_closes, orm.sealed_weeks
        sealed = select(s.c.week).where(s.c.session_id == w.c.session_id, s.c.week == w.c.week).exists()
        return [dict(r) for r in self.db.execute(select(w).where(w.c.ends_at < cutoff, ~sealed)
                                                 .order_by(w.c.ends_at)).mappings()]

    def parked_count(self) -> int:
        return self.db.execute(select(func.count()).select_from(orm.parked_events)).scalar_one()

    def closures(self, session_id) -> list[dict]:
        w = orm.week_closes
        return [dict(r) for r in self.db.execute(select(w).where(w.c.session_id == session_id)
                                                 .order_by(w.c.ends_at)).mappings()]

    def has_pending_closures(self, session_id) -> bool:
        w, s = orm.week_closes, orm.sealed_weeks
        return self.db.execute(select(w.c.week).where(w.c.session_id == session_id, ~select(s.c.week).where(
            s.c.session_id == w.c.session_id, s.c.week == w.c.week).exists()).limit(1)).first() is not None

    def pending_closures_among(self, session_ids) -> list[dict]:
        """Closed, unsealed weeks of these Sessions, in order of their end."""
        w, s = orm.week_closes, orm.sealed_weeks
        rows = self.db.execute(select(w).where(w.c.session_id.in_(list(session_ids)), ~select(s.c.week).where(
            s.c.session_id == w.c.session_id, s.c.week == w.c.week).exists()).order_by(w.c.ends_at)).mappings()
        return [dict(r) for r in rows]

    def pending_closures(self, session_id) -> list[dict]:
        w, s = orm.week_closes, orm.sealed_weeks
        rows = self.db.execute(select(w).where(w.c.session_id == session_id, ~select(s.c.week).where(
            s.c.session_id == w.c.session_id, s.c.week == w.c.week).exists()).order_by(w.c.ends_at)).mappings()
        return [dict(r) for r in rows]

    def seals(self, session_id) -> list[dict]:
        s = orm.sealed_weeks
        return [dict(r) for r in self.db.execute(select(s).where(s.c.session_id == session_id)
                                                 .order_by(s.c.ends_at)).mappings()]

    def add_seal(self, **values) -> None:
        self.db.execute(orm.sealed_weeks.insert().values(**values))

    def session_ids(self) -> list:
        return list(self.db.execute(select(orm.sessions.c.id)).scalars())

    # items (many rows per statement: a batch of events costs a handful of round trips)
    def add_versions(self, rows: list[dict]) -> None:
        if rows:
            self.db.execute(orm.item_versions.insert(), rows)

    def keep_latest(self, versions: list[dict]) -> None:
        """Keep item_latest at each item's newest version (by sequence) among those stored and
        these: one upsert for the batch, a row replaced only by a higher sequence."""
        newest: dict = {}
        for version in versions:
            kept = newest.get(version["entity_id"])
            if kept is None or kept["sequence"] < version["sequence"]:
                newest[version["entity_id"]] = version
        if not newest:
            return
        rows = [{"session_id": v["session_id"], "entity_id": v["entity_id"], "entity_type": v["entity_type"],
                 "sequence": v["sequence"], "effective_at": v["effective_at"],
                 "state": orjson.dumps(v["state"]).decode(),
                 "private": v["entity_type"] == "objective" and bool(v["state"].get("private"))}
                for v in newest.values()]
        latest = orm.item_latest
        insert = self._insert(latest)
        self.db.execute(insert.on_conflict_do_update(
            index_elements=[latest.c.session_id, latest.c.entity_id],
            set_={c: insert.excluded[c] for c in ("entity_type", "sequence", "effective_at", "state", "private")},
            where=latest.c.sequence < insert.excluded.sequence), rows)

    def live_states(self, session_id, moment: datetime) -> dict[str, list[dict]] | None:
        """states_as_of(moment) read from item_latest, when every item's newest version counts
        before `moment` (the live week: then the newest is the answer); None otherwise."""
        latest = orm.item_latest
        later = self.db.execute(select(latest.c.entity_id).where(
            latest.c.session_id == session_id, latest.c.effective_at >= moment).limit(1)).first()
        if later is not None:
            return None
        if self.db.get_bind().dialect.name == "postgresql":
            # One row per item type, its states joined into one JSON array by the server: 10,000
            # rows through the driver and a join in Python cost more than the decode itself.
            joined = self.db.execute(select(latest.c.entity_type, func.string_agg(
                latest.c.state, aggregate_order_by(literal(","), latest.c.entity_id))).where(
                latest.c.session_id == session_id).group_by(latest.c.entity_type)).all()
            out: dict[str, list[dict]] = {"objective": [], "key_result": [], "initiative": []}
            for kind, text in joined:
                out[kind] = [state for state in orjson.loads("[" + text + "]") if not state.get("removed")]
            return out
        rows = self.db.execute(select(latest.c.entity_type, latest.c.state).where(
            latest.c.session_id == session_id).order_by(latest.c.entity_id)).all()
        return _grouped(rows, keep_removed=False)

    def add_projection(self, session_id, week: str, states: dict[str, list[dict]]) -> None:
        self.db.execute(orm.sealed_projections.insert().values(
            session_id=session_id, week=week, states=orjson.dumps(states).decode()))

    def projection(self, session_id, week: str) -> dict[str, list[dict]] | None:
        """A sealed week's item states as stored when it was sealed (None: not stored)."""
        p = orm.sealed_projections
        text = self.db.execute(select(p.c.states).where(p.c.session_id == session_id, p.c.week == week)).scalar()
        return orjson.loads(text) if text is not None else None

    def rendered(self, key: str) -> str | None:
        r = orm.rendered_views
        return self.db.execute(select(r.c.body).where(r.c.key == key)).scalar()

    def keep_rendered(self, key: str, session_id, week: str, body: str, now: datetime, keep: int) -> None:
        """Store a rendered view (another worker may have stored it already: same key, same body)
        and drop all but the `keep` newest of its week."""
        r = orm.rendered_views
        insert = self._insert(r)
        self.db.execute(insert.values(key=key, session_id=session_id, week=week, body=body, rendered_at=now)
                        .on_conflict_do_nothing(index_elements=[r.c.key]))
        newest = select(r.c.key).where(r.c.session_id == session_id, r.c.week == week) \
            .order_by(r.c.rendered_at.desc(), r.c.key).limit(keep)
        self.db.execute(r.delete().where(r.c.session_id == session_id, r.c.week == week, r.c.key.not_in(newest)))

    def add_check_ins(self, rows: list[dict]) -> None:
        if rows:
            self.db.execute(orm.check_ins.insert(), rows)

    def states_as_of(self, session_id, moment: datetime) -> dict[str, list[dict]]:
        """The newest version (by sequence) of every item that counts before `moment`."""
        v = orm.item_versions
        ranked = select(
            v.c.entity_type, cast(v.c.state, Text).label("state"),
            func.row_number().over(partition_by=v.c.entity_id, order_by=v.c.sequence.desc()).label("rank"),
        ).where(v.c.session_id == session_id, v.c.effective_at < moment).subquery()
        rows = self.db.execute(select(ranked.c.entity_type, ranked.c.state).where(ranked.c.rank == 1)).all()
        return _grouped(rows, keep_removed=False)

    def last_check_ins(self, session_id, before: datetime) -> dict:
        """When each Key Result last had a Check-in, before a moment."""
        c = orm.check_ins
        postgresql = self.db.get_bind().dialect.name == "postgresql"
        # PostgreSQL writes a uuid as text the way str(UUID) does: 10,000 ids need no UUID objects.
        key_result = cast(c.c.key_result_id, Text) if postgresql else c.c.key_result_id
        rows = self.db.execute(select(key_result, func.max(c.c.checked_in_at)).where(
            c.c.session_id == session_id, c.c.effective_at < before).group_by(c.c.key_result_id)).all()
        return dict(rows) if postgresql else {str(kr): at for kr, at in rows}

    def check_in_times(self, session_id) -> list[datetime]:
        """When each Check-in counts."""
        return list(self.db.execute(select(orm.check_ins.c.effective_at).where(
            orm.check_ins.c.session_id == session_id)).scalars())

    def check_ins_between(self, session_id, start: datetime, end: datetime) -> list[dict]:
        """The Check-ins that count in [start, end): made then, or arrived late from earlier."""
        c = orm.check_ins
        rows = self.db.execute(select(c).where(
            c.c.session_id == session_id, c.c.effective_at >= start, c.c.effective_at < end,
        ).order_by(c.c.checked_in_at.desc(), c.c.id))
        return [r | {"late": r["effective_at"] > r["checked_in_at"]} for r in _dicts(rows)]

    def late_amendments(self, session_id, start: datetime, end: datetime) -> list[dict]:
        """Check-ins made in [start, end) that arrived after that week was closed."""
        c = orm.check_ins
        rows = self.db.execute(select(c).where(
            c.c.session_id == session_id, c.c.checked_in_at >= start, c.c.checked_in_at < end,
            c.c.effective_at >= end).order_by(c.c.checked_in_at.desc(), c.c.id))
        return [r | {"late": True} for r in _dicts(rows)]

    # who may see what (the newest privacy of every item, whatever week is read)
    def latest_states(self, session_id, entity_type: str | None = None) -> dict[str, list[dict]]:
        """The newest version of every item of the Session (or of one type), removed ones included."""
        latest = orm.item_latest
        rows = self.db.execute(select(latest.c.entity_type, latest.c.state).where(
            latest.c.session_id == session_id, *([latest.c.entity_type == entity_type] if entity_type else []))
            .order_by(latest.c.entity_id)).all()
        return _grouped(rows, keep_removed=True)

    def applied_through(self, session_id):
        """When the newest change this database has applied to the Session counts from (None before
        any): on a replica, how far its replay has come."""
        latest = orm.item_latest
        return self.db.execute(select(func.max(latest.c.effective_at)).where(
            latest.c.session_id == session_id)).scalar_one()

    def has_private_objective(self, session_id) -> bool:
        """Whether the newest version of any Objective of the Session (removed ones too) is private."""
        latest = orm.item_latest
        return self.db.execute(select(latest.c.entity_id).where(
            latest.c.session_id == session_id, latest.c.private).limit(1)).first() is not None

    def privacy_version(self, session_id) -> int:
        """Grows whenever an Objective or Initiative changes (privacy, owners, canvases live there)."""
        v = orm.item_versions
        return self.db.execute(select(func.count()).where(
            v.c.session_id == session_id, v.c.entity_type.in_(("objective", "initiative")))).scalar_one()

    def version_marks(self, session_id) -> list[tuple[str, datetime]]:
        """(item id, when it counts) of every item version: activity, for per-principal counts."""
        v = orm.item_versions
        return [(str(e), at) for e, at in self.db.execute(select(v.c.entity_id, v.c.effective_at).where(
            v.c.session_id == session_id))]

    def check_in_marks(self, session_id) -> list[tuple[str, datetime]]:
        c = orm.check_ins
        return [(str(k), at) for k, at in self.db.execute(select(c.c.key_result_id, c.c.effective_at).where(
            c.c.session_id == session_id))]


def _dicts(result) -> list[dict]:
    """A result's rows as dicts: zipped with its column names, several times cheaper per row than
    going through RowMapping (a 10,000 Key Result week has thousands of Check-ins)."""
    keys = tuple(result.keys())
    return [dict(zip(keys, row)) for row in result]


def _grouped(rows, *, keep_removed: bool) -> dict[str, list[dict]]:
    """(entity type, state as JSON text) rows as states by type. One decode for all rows: far
    cheaper than decoding each row's JSON on its own."""
    kinds, texts = zip(*rows) if rows else ((), ())
    states = orjson.loads("[" + ",".join(texts) + "]")
    out: dict[str, list[dict]] = {"objective": [], "key_result": [], "initiative": []}
    add = {kind: out.setdefault(kind, []).append for kind in set(kinds)}
    for kind, state in zip(kinds, states):
        if keep_removed or not state.get("removed"):
            add[kind](state)
    return out
