"""Repositories: translate rows to domain objects and back. One DB session, owned by the UoW.

Saves are optimistic: `UPDATE ... WHERE id = :id AND version = :previous`, so of two writers
that read the same version, exactly one wins even without row locks."""
from __future__ import annotations

import json
import uuid
from dataclasses import replace

from sqlalchemy import (
    JSON,
    Integer,
    Text,
    bindparam,
    cast,
    delete,
    func,
    insert,
    literal_column,
    select,
    true,
    update,
)
from sqlalchemy.orm import Session as DbSession

from services.checkin.adapters import orm
from services.checkin.domain.model import (
    Canvas,
    CheckIn,
    Conflict,
    Initiative,
    InitiativeCheckIn,
    KeyResult,
    Objective,
    Session,
)
from services.checkin.domain.wire import envelope
from shared import observability
from shared.events import Event
from shared.messaging import add_to_outbox

# What a Check-in changes on its Key Result (the rest of the row stays as it is).
CHECKED_IN_FIELDS = ("current_value", "status", "confidence", "version", "updated_at")


def _row(table, obj) -> dict:
    return {c.name: getattr(obj, c.name) for c in table.columns if hasattr(obj, c.name)}


def _uuids(values) -> list:
    return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in values or []]


def _members(session: Session) -> dict:
    return {"members": [str(m) for m in session.members]}


def _check_in_context():
    k, s, o = orm.key_results, orm.sessions, orm.objectives
    key_result_id = bindparam("key_result_id", type_=k.c.id.type)
    start = select(k.c.objective_id).where(k.c.id == key_result_id).scalar_subquery()
    lineage = select(o.c.id, o.c.parent_id).where(o.c.id == start, o.c.removed_at.is_(None)) \
        .cte("lineage", recursive=True)
    above = o.alias("above")
    lineage = lineage.union(select(above.c.id, above.c.parent_id)
                            .join(lineage, above.c.id == lineage.c.parent_id).where(above.c.removed_at.is_(None)))
    columns = [c.label(f"k_{c.name}") for c in k.c] + [c.label(f"s_{c.name}") for c in s.c] + \
        [c.label(f"o_{c.name}") for c in o.c]
    return select(*columns).select_from(
        k.join(s, s.c.id == k.c.session_id).outerjoin(o, o.c.id.in_(select(lineage.c.id)))
    ).where(k.c.id == key_result_id, k.c.removed_at.is_(None)).with_for_update(of=k)


def _save_check_in():
    """PostgreSQL's data-modifying CTEs: every write of a Check-in in one statement. The event
    goes to the outbox as the JSON text the JSON column would have stored, with the sequence the
    same statement takes put first; nothing else in it is touched on the way. Parameters are
    prefixed: one named like a column of an UPDATE's table would be SET as well."""
    k, s, c, out = orm.key_results, orm.sessions, orm.check_ins, orm.outbox
    sequence = update(s).where(s.c.id == bindparam("s_id", type_=s.c.id.type)) \
        .values(last_sequence=s.c.last_sequence + literal_column("1")).returning(s.c.last_sequence).cte("next_sequence")
    saved = update(k).where(k.c.id == bindparam("k_id", type_=k.c.id.type),
                            k.c.version == bindparam("k_previous_version", type_=Integer())) \
        .values({name: bindparam(f"k_{name}", type_=k.c[name].type) for name in CHECKED_IN_FIELDS}) \
        .returning(k.c.id).cte("saved")
    added = insert(c).from_select(
        [col.name for col in c.c], select(*[bindparam(f"c_{col.name}", type_=col.type) for col in c.c])
        .select_from(saved)).cte("added")
    # Constants as SQL text, so the statement's parameters are exactly those save_check_in passes.
    body = literal_column("""'{"sequence": '""", Text) + cast(sequence.c.last_sequence, Text) + \
        bindparam("o_body_rest", type_=Text())
    published = insert(out).from_select(
        ["event_id", "event_type", "body", "created_at", "attempts"],
        select(bindparam("o_event_id", type_=out.c.event_id.type), bindparam("o_event_type", type_=out.c.event_type.type),
               cast(body, JSON), bindparam("o_created_at", type_=out.c.created_at.type), literal_column("0"))
        .select_from(saved.join(sequence, true()))).cte("published")
    return select(sequence.c.last_sequence, select(func.count()).select_from(saved).scalar_subquery()) \
        .add_cte(added, published)


# Built once: a Check-in's two statements cost no SQL construction per request.
CHECK_IN_CONTEXT = _check_in_context()
SAVE_CHECK_IN = _save_check_in()


class SqlRepository:
    def __init__(self, db: DbSession):
        self.db = db

    def _insert(self, table, obj) -> None:
        self.db.execute(table.insert().values(**_row(table, obj)))

    def _save(self, table, obj, extra: dict | None = None) -> None:
        values = _row(table, obj) | (extra or {})
        values.pop("id")
        changed = self.db.execute(update(table).where(
            table.c.id == obj.id, table.c.version == obj.version - 1).values(**values)).rowcount
        if changed != 1:
            raise Conflict("This item was changed by someone else at the same time; reload it.", "If-Match")

    # Sessions ----------------------------------------------------------------------------
    def add_session(self, session: Session) -> None:
        self.db.execute(orm.sessions.insert().values(**_row(orm.sessions, session) | _members(session),
                                                     last_sequence=0))

    def get_session(self, session_id, *, for_update: bool = False) -> Session | None:
        query = select(orm.sessions).where(orm.sessions.c.id == session_id)
        row = self.db.execute(query.with_for_update() if for_update else query).mappings().first()
        if row is None:
            return None
        values = dict(row)
        values.pop("last_sequence")
        values["members"] = _uuids(values["members"])
        return Session(**values)

    def save_session(self, session: Session) -> None:
        self._save(orm.sessions, session, _members(session))

    def list_sessions(self, workspace_id) -> list[Session]:
        ids = self.db.execute(select(orm.sessions.c.id).where(orm.sessions.c.workspace_id == workspace_id)
                              .order_by(orm.sessions.c.start_date, orm.sessions.c.name)).scalars()
        return [self.get_session(i) for i in ids]

    def next_sequence(self, session_id) -> int:
        """Per-Session event sequence; the UPDATE takes the row lock, so concurrent writers of one
        Session get distinct, gap-free numbers in commit order."""
        return self.db.execute(
            update(orm.sessions).where(orm.sessions.c.id == session_id)
            .values(last_sequence=orm.sessions.c.last_sequence + 1)
            .returning(orm.sessions.c.last_sequence)
        ).scalar_one()

    # Objectives --------------------------------------------------------------------------
    def add_objective(self, objective: Objective) -> None:
        self.db.execute(orm.objectives.insert().values(
            **_row(orm.objectives, objective) | {"visible_to": [str(v) for v in objective.visible_to]}))

    def _objective(self, row) -> Objective:
        values = dict(row)
        values["visible_to"] = _uuids(values["visible_to"])
        return Objective(**values)

    def get_objective(self, objective_id, *, for_update: bool = False) -> Objective | None:
        query = select(orm.objectives).where(orm.objectives.c.id == objective_id,
                                             orm.objectives.c.removed_at.is_(None))
        row = self.db.execute(query.with_for_update() if for_update else query).mappings().first()
        return self._objective(row) if row else None

    def save_objective(self, objective: Objective) -> None:
        self._save(orm.objectives, objective, {"visible_to": [str(v) for v in objective.visible_to]})

    def list_objectives(self, session_id) -> list[Objective]:
        rows = self.db.execute(select(orm.objectives).where(
            orm.objectives.c.session_id == session_id, orm.objectives.c.removed_at.is_(None))
            .order_by(orm.objectives.c.created_at, orm.objectives.c.id)).mappings()
        return [self._objective(r) for r in rows]

    def objective_lineage(self, objective_id) -> list[Objective]:
        """The Objective and every Objective above it: all that decides whether a private one
        hides it, read in one statement whatever the size of the Session (a recursive CTE; UNION
        ends a cycle in stored data)."""
        o = orm.objectives
        lineage = select(o.c.id, o.c.parent_id).where(o.c.id == objective_id, o.c.removed_at.is_(None)) \
            .cte("lineage", recursive=True)
        above = o.alias("above")
        lineage = lineage.union(select(above.c.id, above.c.parent_id)
                                .join(lineage, above.c.id == lineage.c.parent_id).where(above.c.removed_at.is_(None)))
        rows = self.db.execute(select(o).where(o.c.id.in_(select(lineage.c.id)))).mappings()
        return [self._objective(r) for r in rows]

    def parents(self, session_id) -> dict:
        rows = self.db.execute(select(orm.objectives.c.id, orm.objectives.c.parent_id).where(
            orm.objectives.c.session_id == session_id, orm.objectives.c.removed_at.is_(None)))
        return {r.id: r.parent_id for r in rows}

    def has_children(self, objective_id) -> bool:
        child = self.db.execute(select(orm.objectives.c.id).where(
            orm.objectives.c.parent_id == objective_id, orm.objectives.c.removed_at.is_(None)).limit(1)).first()
        kr = self.db.execute(select(orm.key_results.c.id).where(
            orm.key_results.c.objective_id == objective_id, orm.key_results.c.removed_at.is_(None)).limit(1)).first()
        return child is not None or kr is not None

    # Key Results -------------------------------------------------------------------------
    def add_key_result(self, key_result: KeyResult) -> None:
        self._insert(orm.key_results, key_result)

    def get_key_result(self, key_result_id, *, for_update: bool = False) -> KeyResult | None:
        query = select(orm.key_results).where(orm.key_results.c.id == key_result_id,
                                              orm.key_results.c.removed_at.is_(None))
        row = self.db.execute(query.with_for_update() if for_update else query).mappings().first()
        return KeyResult(**row) if row else None

    def list_key_results(self, session_id) -> list[KeyResult]:
        rows = self.db.execute(select(orm.key_results).where(
            orm.key_results.c.session_id == session_id, orm.key_results.c.removed_at.is_(None))
            .order_by(orm.key_results.c.created_at, orm.key_results.c.id)).mappings()
        return [KeyResult(**r) for r in rows]

    def save_key_result(self, key_result: KeyResult) -> None:
        self._save(orm.key_results, key_result)
        for entry in key_result.check_ins:
            self._insert(orm.check_ins, entry)
        key_result.check_ins.clear()

    def check_in_context(self, key_result_id) -> tuple[KeyResult | None, Session | None, list[Objective]]:
        """Everything a Check-in decides on, in one statement whatever the size of the Session:
        the Key Result (locked), its Session and its Objective's lineage (whether a private
        Objective hides it). One row per Objective of the lineage."""
        rows = self.db.execute(CHECK_IN_CONTEXT, {"key_result_id": key_result_id}).mappings().all()
        if not rows:
            return None, None, []

        def part(row, prefix: str) -> dict:
            return {name[len(prefix):]: value for name, value in row.items() if name.startswith(prefix)}

        key_result = KeyResult(**part(rows[0], "k_"))
        session = part(rows[0], "s_")
        session.pop("last_sequence")
        session["members"] = _uuids(session["members"])
        lineage = [self._objective(part(row, "o_")) for row in rows if row["o_id"] is not None]
        return key_result, Session(**session), lineage

    def save_check_in(self, key_result: KeyResult, event: Event) -> Event:
        """A Check-in's writes - the Key Result (optimistic on its version), the Check-in, the
        next sequence of its Session and the event to the outbox - as one statement on
        PostgreSQL, one round trip; statement by statement elsewhere. The event's sequence is
        taken here, so the Session row stays locked only from this write to the commit. Returns
        the event with its sequence."""
        [entry] = key_result.check_ins
        if self.db.get_bind().dialect.name != "postgresql":
            self.save_key_result(key_result)
            event = replace(event, sequence=self.next_sequence(event.session_id))
            self.add_event(event)
            return event
        body = observability.with_correlation(envelope(event))  # the relay moves the id to a header
        body.pop("sequence")
        values = {f"k_{name}": getattr(key_result, name) for name in CHECKED_IN_FIELDS} | \
            {f"c_{name}": value for name, value in entry.state().items()} | \
            {"k_id": key_result.id, "k_previous_version": key_result.version - 1, "s_id": event.session_id,
             "o_event_id": str(event.event_id), "o_event_type": event.event_type, "o_created_at": event.occurred_at,
             "o_body_rest": ", " + json.dumps(body)[1:]}
        number, changed = self.db.execute(SAVE_CHECK_IN, values).one()
        if changed != 1:
            raise Conflict("This item was changed by someone else at the same time; reload it.", "If-Match")
        key_result.check_ins.clear()
        return replace(event, sequence=number)

    def list_check_ins(self, key_result_id, *, limit: int, offset: int) -> tuple[list[CheckIn], int]:
        c = orm.check_ins
        rows = self.db.execute(select(c).where(c.c.key_result_id == key_result_id)
                               .order_by(c.c.checked_in_at.desc(), c.c.id).limit(limit).offset(offset)).mappings()
        total = self.db.execute(select(func.count()).select_from(c).where(c.c.key_result_id == key_result_id)).scalar_one()
        return [CheckIn(**r) for r in rows], total

    def last_check_in_times(self, session_id) -> dict:
        c, k = orm.check_ins, orm.key_results
        rows = self.db.execute(select(c.c.key_result_id, func.max(c.c.checked_in_at))
                               .join(k, k.c.id == c.c.key_result_id).where(k.c.session_id == session_id)
                               .group_by(c.c.key_result_id))
        return dict(rows.all())

    # Initiatives -------------------------------------------------------------------------
    def _initiative(self, row) -> Initiative:
        values = dict(row)
        canvas = values.pop("canvas")
        links = self.db.execute(select(orm.initiative_key_results.c.key_result_id).where(
            orm.initiative_key_results.c.initiative_id == values["id"])
            .order_by(orm.initiative_key_results.c.position)).scalars()
        return Initiative(**values, key_result_ids=list(links),
                          canvas=Canvas(canvas["title"], canvas["url"], _uuids(canvas["access"])) if canvas else None)

    def _initiative_extra(self, initiative: Initiative) -> dict:
        canvas = initiative.canvas
        return {"canvas": {"title": canvas.title, "url": canvas.url, "access": [str(a) for a in canvas.access]}
                if canvas else None}

    def add_initiative(self, initiative: Initiative) -> None:
        self.db.execute(orm.initiatives.insert().values(
            **_row(orm.initiatives, initiative) | self._initiative_extra(initiative)))
        self._write_links(initiative)

    def get_initiative(self, initiative_id, *, for_update: bool = False) -> Initiative | None:
        query = select(orm.initiatives).where(orm.initiatives.c.id == initiative_id,
                                              orm.initiatives.c.removed_at.is_(None))
        row = self.db.execute(query.with_for_update() if for_update else query).mappings().first()
        return self._initiative(row) if row else None

    def list_initiatives(self, session_id) -> list[Initiative]:
        rows = self.db.execute(select(orm.initiatives).where(
            orm.initiatives.c.session_id == session_id, orm.initiatives.c.removed_at.is_(None))
            .order_by(orm.initiatives.c.created_at, orm.initiatives.c.id)).mappings()
        return [self._initiative(r) for r in rows]

    def save_initiative(self, initiative: Initiative) -> None:
        self._save(orm.initiatives, initiative, self._initiative_extra(initiative))
        self._write_links(initiative)
        for entry in initiative.check_ins:
            self._insert(orm.initiative_check_ins, entry)
        initiative.check_ins.clear()

    def _write_links(self, initiative: Initiative) -> None:
        links = orm.initiative_key_results
        self.db.execute(delete(links).where(links.c.initiative_id == initiative.id))
        for position, key_result_id in enumerate(initiative.key_result_ids):
            self.db.execute(links.insert().values(initiative_id=initiative.id, key_result_id=key_result_id,
                                                  position=position))

    def initiatives_of(self, key_result_id) -> list[Initiative]:
        ids = self.db.execute(select(orm.initiative_key_results.c.initiative_id).where(
            orm.initiative_key_results.c.key_result_id == key_result_id)).scalars()
        return [i for i in (self.get_initiative(x) for x in ids) if i is not None]

    def list_initiative_check_ins(self, initiative_id, *, limit: int, offset: int):
        c = orm.initiative_check_ins
        rows = self.db.execute(select(c).where(c.c.initiative_id == initiative_id)
                               .order_by(c.c.checked_in_at.desc(), c.c.id).limit(limit).offset(offset)).mappings()
        total = self.db.execute(select(func.count()).select_from(c).where(c.c.initiative_id == initiative_id)).scalar_one()
        return [InitiativeCheckIn(**r) for r in rows], total

    # Week markers -----------------------------------------------------------------------
    def all_sessions(self) -> list[Session]:
        ids = self.db.execute(select(orm.sessions.c.id).order_by(orm.sessions.c.start_date)).scalars()
        return [self.get_session(i) for i in ids]

    def marked_weeks(self, session_id) -> set[str]:
        return set(self.db.execute(select(orm.week_markers.c.week).where(
            orm.week_markers.c.session_id == session_id)).scalars())

    def add_week_marker(self, session_id, week: str, at) -> None:
        self.db.execute(orm.week_markers.insert().values(session_id=session_id, week=week, closed_at=at))

    # History import ----------------------------------------------------------------------
    def add_history(self, *, objectives, key_results, initiatives, check_ins, events) -> None:
        """A batch of a history import, parents before what names them: one bulk write per
        table (COPY on PostgreSQL, executemany elsewhere), whatever the batch's size."""
        self._bulk(orm.objectives, [_row(orm.objectives, o) | {"visible_to": [str(v) for v in o.visible_to]}
                                    for o in objectives])
        self._bulk(orm.key_results, [_row(orm.key_results, k) for k in key_results])
        self._bulk(orm.initiatives, [_row(orm.initiatives, i) | self._initiative_extra(i) for i in initiatives])
        self._bulk(orm.initiative_key_results, [
            {"initiative_id": i.id, "key_result_id": k, "position": n}
            for i in initiatives for n, k in enumerate(i.key_result_ids)])
        self._bulk(orm.check_ins, [c.state() for c in check_ins])  # a Check-in's state is its row
        self._bulk(orm.outbox, [{"event_id": str(e.event_id), "event_type": e.event_type, "body": observability.with_correlation(envelope(e)),
                                 "created_at": e.occurred_at, "attempts": 0} for e in events])

    def save_checked_in(self, key_results) -> None:
        """The state Check-ins left on Key Results of this transaction's own (a history import)."""
        k = orm.key_results
        if key_results:
            self.db.execute(update(k).where(k.c.id == bindparam("k_id")).values(
                {name: bindparam(f"k_{name}") for name in CHECKED_IN_FIELDS}),
                [{"k_id": kr.id} | {f"k_{name}": getattr(kr, name) for name in CHECKED_IN_FIELDS}
                 for kr in key_results])

    def set_last_sequence(self, session_id, sequence: int) -> None:
        s = orm.sessions
        self.db.execute(update(s).where(s.c.id == session_id).values(last_sequence=sequence))

    def _bulk(self, table, rows: list[dict]) -> None:
        if not rows:
            return
        if self.db.get_bind().dialect.name != "postgresql":
            self.db.execute(table.insert(), rows)
            return
        names = list(rows[0])
        json_columns = {name for name in names if isinstance(table.c[name].type, JSON)}
        raw = self.db.connection().connection.driver_connection
        quoted = ", ".join(f'"{name}"' for name in names)
        with raw.cursor() as cursor, cursor.copy(f'COPY "{table.name}" ({quoted}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row([json.dumps(row[n]) if n in json_columns and row[n] is not None else row[n]
                                for n in names])

    # Outbox ------------------------------------------------------------------------------
    def add_event(self, event: Event) -> None:
        add_to_outbox(self.db, orm.outbox, event, event.occurred_at)
