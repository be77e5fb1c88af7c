"""Seeds a demo Workspace a team lead can judge okrsnap by: six people in four roles, a quarter's
Session twelve weeks in (the current week included), company Objectives with team Objectives
below them, twenty Key Results of every kind, Initiatives with canvases, and the review's
interesting cases: a private Objective, a week nobody touched, a late amendment, stale and
unassigned work, items at risk and off track.

Everything goes through the check-in service's own handlers: the quarter is one history import
(every event keeps its moment in the past, so the Snapshots of past weeks fill as if the quarter
had happened here, and no relay can close a week halfway through it), every Check-in by its Key
Result's owner, as it would be; then the ended weeks are closed and the late amendment arrives.

Seeding twice changes nothing: an existing account is never touched (its password least of all),
and a Workspace that has a Session already is left as it is."""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from sqlalchemy.exc import IntegrityError

from services.checkin.bootstrap import Checkin
from services.checkin.domain import commands
from services.checkin.service_layer import handlers as checkin
from services.gateway.bootstrap import Gateway
from services.gateway.domain.model import Membership, User, Workspace, normalise_display_name, normalise_email
from services.gateway.service_layer import handlers as identity
from shared.clock import FixedClock
from shared.tokens import Principal

DEMO_EMAIL = "demo@okrsnap.local"
DEMO_PASSWORD = "okrsnap-demo-2026"
DEMO_WORKSPACE = "Demo Workspace"
DEMO_NAME = "Dana Reyes"
TIMEZONE = "Europe/Berlin"

WEEKS_OF_HISTORY = 11     # ended weeks before the current one: the current week has index 11
SESSION_WEEKS = 13        # a quarter
QUIET_WEEK = 6            # the company offsite: nobody checked in or changed anything
LATE_WEEK = 9             # a Check-in made that Friday was recorded after the week was closed


@dataclass(frozen=True)
class Person:
    key: str
    email: str
    name: str
    role: str


# Everyone signs in with the demo password: a lead can look through a viewer's eyes, too.
PEOPLE = (
    Person("dana", DEMO_EMAIL, DEMO_NAME, "owner"),                      # Head of Product, runs the review
    Person("priya", "priya@okrsnap.local", "Priya Natarajan", "admin"),  # Customer Success
    Person("marco", "marco@okrsnap.local", "Marco Bianchi", "member"),   # Engineering
    Person("lena", "lena@okrsnap.local", "Lena Fischer", "member"),      # Sales
    Person("tomas", "tomas@okrsnap.local", "Tomás Ortega", "member"),    # Support
    Person("sam", "sam@okrsnap.local", "Sam Carter", "viewer"),          # Finance, reads the exports
)


@dataclass(frozen=True)
class ObjectivePlan:
    ref: str
    title: str
    owner: str
    parent: str | None = None
    private: bool = False
    visible_to: tuple[str, ...] = ()


@dataclass(frozen=True)
class KeyResultPlan:
    ref: str
    objective: str
    title: str
    owner: str | None          # None: unassigned, a review signal; its Check-ins come from Dana
    start: float = 0
    target: float = 1
    unit: str = ""
    kind: str = "metric"       # metric (increasing or decreasing), or milestone (done / not done)
    week: int = 0              # the week it was added


@dataclass(frozen=True)
class InitiativePlan:
    ref: str
    title: str
    owner: str | None
    key_results: tuple[str, ...]
    canvas: tuple[str, str, tuple[str, ...]] | None = None   # title, URL, who may open it
    status: str = "in_progress"
    week: int = 0


OBJECTIVES = (
    ObjectivePlan("delight", "Delight our customers", "dana"),
    ObjectivePlan("support", "Answer support within a working morning", "tomas", parent="delight"),
    ObjectivePlan("onboarding", "Onboarding that needs no call", "marco", parent="delight"),
    ObjectivePlan("revenue", "Grow recurring revenue", "dana"),
    ObjectivePlan("enterprise", "Win our first enterprise customers", "lena", parent="revenue"),
    ObjectivePlan("retention", "Keep the customers we have", "priya", parent="revenue"),
    ObjectivePlan("habit", "Make the weekly review a habit", "dana"),
    ObjectivePlan("pipeline", "Make the Snapshot pipeline boringly reliable", "marco", parent="habit"),
    ObjectivePlan("series-b", "Prepare the Series B data room", "dana", private=True, visible_to=("priya",)),
)

KEY_RESULTS = (
    KeyResultPlan("nps", "delight", "Net promoter score", "priya", 32, 45, "pts"),
    KeyResultPlan("reply", "support", "Median first reply time", "tomas", 12, 4, "h"),
    KeyResultPlan("backlog", "support", "Tickets older than 7 days", "tomas", 140, 20, "tickets"),
    KeyResultPlan("help-centre", "support", "Self-service help centre launched", "tomas", kind="milestone"),
    KeyResultPlan("activation", "onboarding", "New Workspaces active in their first week", "marco", 38, 60, "%"),
    KeyResultPlan("guided", "onboarding", "Guided setup shipped", "marco", kind="milestone"),
    KeyResultPlan("drop-off", "onboarding", "Sign-up drop-off at the invite step", "marco", 45, 20, "%", week=3),
    KeyResultPlan("arr", "revenue", "Annual recurring revenue", "dana", 1.2, 2.0, "M€"),
    KeyResultPlan("pilots", "enterprise", "Enterprise pilots signed", None, 0, 5, "pilots"),
    KeyResultPlan("pipeline", "enterprise", "Qualified enterprise pipeline", "lena", 0.8, 3.0, "M€"),
    KeyResultPlan("questionnaire", "enterprise", "Security questionnaire answered", "lena", kind="milestone"),
    KeyResultPlan("churn", "retention", "Monthly logo churn", "priya", 3.0, 1.5, "%"),
    KeyResultPlan("reviews", "retention", "Accounts with a quarterly business review", "priya", 10, 40, "accounts"),
    KeyResultPlan("teams", "habit", "Teams reviewing weekly", "dana", 0, 12, "teams"),
    KeyResultPlan("p95", "pipeline", "Snapshot page p95 load time", "marco", 1800, 400, "ms"),
    KeyResultPlan("sealed", "pipeline", "Weeks sealed without a manual fix", "marco", 0, 13, "weeks"),
    KeyResultPlan("formats", "pipeline", "Export formats shipped (CSV, XLSX, JSON)", "marco", 0, 3, "formats"),
    KeyResultPlan("docs", "pipeline", "Operator guide pages rewritten", "marco", 0, 20, "pages"),
    KeyResultPlan("data-room", "series-b", "Data-room documents ready", "dana", 0, 45, "documents"),
    KeyResultPlan("board", "series-b", "Board approves the fundraising plan", "dana", kind="milestone"),
)

CANVAS = "https://docs.example.com/okrsnap-demo/"
INITIATIVES = (
    InitiativePlan("help-centre", "Help-centre rewrite", "tomas", ("help-centre", "reply"),
                   ("Help-centre plan", CANVAS + "help-centre", ("tomas", "priya"))),
    InitiativePlan("playbook", "Enterprise pilot playbook", "lena", ("pilots", "pipeline"),
                   ("Pilot playbook", CANVAS + "pilot-playbook", ("lena",))),
    InitiativePlan("wizard", "Guided setup wizard", "marco", ("guided", "activation"),
                   ("Wizard spec", CANVAS + "guided-setup", ("marco", "tomas"))),
    InitiativePlan("qbr-kit", "Quarterly business review kit", None, ("reviews",)),
    InitiativePlan("ritual", "Weekly review ritual", "dana", ("teams", "nps"),
                   ("Review agenda", CANVAS + "weekly-review", ())),
    InitiativePlan("speed", "Snapshot page performance sprint", "marco", ("p95",),
                   ("Profiling notes", CANVAS + "performance", ("marco",)), week=7),
)

# Key Result -> its Check-ins: (week, value, status, confidence, comment). Week 6 is the
# offsite (nothing at all); week 11 is the current one, checked in on Monday morning.
CHECK_INS: dict[str, list[tuple[int, float, str, int, str]]] = {
    "nps": [
        (0, 32, "on_track", 7, "Baseline from the September survey (212 answers)."),
        (1, 33, "on_track", 7, "First in-app survey replies; too early to read much into it."),
        (2, 33, "on_track", 6, "Flat. Detractors mostly mention slow support replies."),
        (3, 35, "on_track", 7, "The help-centre preview moved a few passives up."),
        (4, 36, "on_track", 7, "Promoters up after the export release."),
        (5, 35, "at_risk", 5, "Dip: two large accounts were hit by Tuesday's sync outage."),
        (7, 37, "on_track", 6, "Recovered after the outage write-up went out to customers."),
        (8, 38, "on_track", 7, "Best month so far; the onboarding changes show in new accounts."),
        (9, 39, "on_track", 7, "Steady. 41 looks realistic, 45 only if the help centre lands."),
        (10, 40, "on_track", 8, "The enterprise pilots score us high (52 among them)."),
        (11, 41, "on_track", 8, "Monday read-out: 41. On track for 43 to 45."),
    ],
    "reply": [
        (0, 12, "on_track", 6, "Baseline: 12 h. Nights and weekends drag the median up."),
        (1, 11, "on_track", 6, "Morning rota started; 11 h in its first week."),
        (2, 10, "on_track", 7, "Macros for the ten most common questions are live."),
        (3, 10, "at_risk", 5, "Two people out sick; held at 10 h."),
        (4, 9, "at_risk", 5, "Better, but the weekend backlog still costs us every Monday morning."),
        (5, 8, "on_track", 6, "Weekend on-call pilot: the Monday queue halved."),
        (7, 7, "on_track", 6, "No slip during the offsite, thanks to the on-call pair."),
        (8, 7, "at_risk", 5, "Flat: the sync-outage tickets took the week."),
        (9, 6, "on_track", 6, "6 h. Help-centre deflection starts to show."),
        (10, 6, "on_track", 6, "Holding at 6 h; 4 h needs the second hire."),
        (11, 5, "on_track", 7, "Early read this week: 5 h."),
    ],
    "backlog": [
        (0, 140, "off_track", 3, "140 to start with, most of them billing questions."),
        (1, 150, "off_track", 3, "Grew: the pricing change brought a wave of billing tickets."),
        (2, 138, "off_track", 3, "Billing FAQ published; a first dent."),
        (3, 121, "off_track", 4, "Clean-up Friday with the whole team."),
        (4, 118, "off_track", 3, "Slow week: we only closed what came in."),
        (5, 104, "off_track", 4, "Second clean-up Friday."),
        (7, 96, "off_track", 4, "Under 100 for the first time."),
        (8, 99, "off_track", 3, "The outage tickets pushed it back up."),
        (9, 84, "off_track", 3, "Finance took over the refund tickets."),
        (10, 76, "off_track", 2, "Still far from 20. I propose 50 as this quarter's target."),
    ],
    "help-centre": [
        (0, 0, "on_track", 7, "Content plan agreed with Product: 45 articles."),
        (4, 0, "on_track", 7, "30 of 45 articles written and reviewed."),
        (8, 0, "at_risk", 5, "The search integration slipped a week."),
        (10, 1, "done", 10, "Live since Thursday. Links from the app go out next week."),
    ],
    "activation": [
        (1, 38, "on_track", 6, "Baseline confirmed: 38 %."),
        (3, 41, "on_track", 7, "Empty-state hints shipped."),
        (5, 44, "on_track", 7, "Sample data on sign-up helps."),
        (7, 44, "at_risk", 5, "No movement; the guided setup is blocked (see its Initiative)."),
        (8, 45, "at_risk", 5, "A small gain from the invite reminder email."),
        (9, 46, "at_risk", 4, "The big lever is still the guided setup, still waiting on the billing API."),
        (10, 47, "at_risk", 4, "47 %. 60 % is out of reach this quarter without the guided setup."),
    ],
    "guided": [
        (2, 0, "on_track", 7, "Designs reviewed with three customers."),
        (5, 0, "on_track", 6, "Behind a feature flag for staff."),
        (7, 0, "off_track", 3, "Blocked on the billing API; no date from Platform yet."),
        (9, 0, "off_track", 2, "Still blocked. Asked Dana to escalate."),
        (10, 0, "off_track", 2, "Billing API promised for next sprint: this will not ship this quarter."),
    ],
    "drop-off": [
        (3, 45, "on_track", 6, "Added after the funnel review: the invite step loses almost half."),
        (4, 43, "on_track", 6, "New copy on the invite screen."),
        (5, 39, "on_track", 7, "A 'Skip for now' button."),
        (7, 34, "on_track", 7, "A good drop since the skip button."),
        (8, 31, "on_track", 7, "The trend holds."),
        (9, 30, "on_track", 7, "30 %."),
        (10, 27, "on_track", 8, "The new invite screen won its A/B test."),
        (11, 26, "on_track", 8, "Monday: 26 %, with the new screen for everyone."),
    ],
    "arr": [
        (0, 1.2, "on_track", 6, "Start of the quarter: 1.20 M€."),
        (2, 1.22, "at_risk", 5, "Slow start; renewals flat."),
        (4, 1.25, "at_risk", 5, "The pipeline is there, the signatures are not."),
        (5, 1.27, "at_risk", 4, "One mid-size upgrade."),
        (7, 1.31, "off_track", 3, "Behind plan: two enterprise deals slipped to next month."),
        (8, 1.45, "at_risk", 5, "Hanse Logistics signed: +140 k€."),
        (9, 1.58, "at_risk", 5, "Two pilots turned into annual contracts."),
        (10, 1.71, "on_track", 6, "Nordlicht Media signed. Late, but the quarter can still land."),
        (11, 1.74, "on_track", 6, "An upgrade closed this morning."),
    ],
    "pilots": [
        (1, 0, "at_risk", 4, "Nobody owns this since Jonas left; Lena covers the calls for now."),
        (3, 1, "at_risk", 5, "First pilot signed: Hanse Logistics."),
        (5, 1, "off_track", 3, "No new pilot. This needs an owner."),
        (8, 2, "off_track", 3, "Nordlicht Media's pilot started."),
        (10, 3, "at_risk", 4, "Third pilot. Still no owner: raising it in the review."),
    ],
    "pipeline": [
        (0, 0.8, "on_track", 6, "Starting pipeline after the CRM clean-up."),
        (1, 1.0, "on_track", 6, "Two inbound leads from the logistics fair."),
        (2, 1.3, "on_track", 7, "Partner referrals are working."),
        (3, 1.5, "on_track", 7, "Three discovery calls booked."),
        (4, 1.6, "on_track", 7, "Quiet week, proposals out to two prospects."),
        (5, 1.9, "on_track", 7, "Added Stadtwerke Nord (0.3 M€)."),
        (7, 2.0, "on_track", 6, "Slow after the offsite; chasing follow-ups."),
        (8, 1.8, "at_risk", 5, "Hanse moved from pipeline to won, so the pipeline dipped."),
        (9, 2.1, "on_track", 6, "Two new opportunities from the webinar."),
        (10, 2.4, "on_track", 6, "Solid. 3.0 M€ needs one more large opportunity."),
    ],
    "questionnaire": [
        (1, 0, "on_track", 7, "Collected the questionnaires of the two largest prospects."),
        (4, 0, "on_track", 7, "180 of 240 answers drafted with Marco."),
        (7, 0, "at_risk", 5, "The last section needs the pen-test report."),
        # week 9: the late amendment (LATE_AMENDMENT below)
    ],
    "churn": [
        (0, 3.0, "on_track", 6, "September: 3.0 %."),
        (4, 2.6, "on_track", 7, "October: 2.6 %. The save desk caught four cancellations."),
        (8, 2.9, "at_risk", 4, "November so far: up again, two accounts lost after the sync outage."),
        (10, 2.7, "at_risk", 5, "Better than feared. Exit interviews point at missing SSO."),
    ],
    "reviews": [
        (0, 10, "on_track", 6, "Ten reviews last quarter; template refreshed."),
        (2, 15, "on_track", 7, "Five reviews booked in two weeks."),
        (4, 19, "on_track", 7, "Good response from the mid-size accounts."),
        (5, 21, "on_track", 6, "Two more held."),
        (7, 22, "at_risk", 5, "Only one review, the offsite week cost us."),
        (8, 24, "at_risk", 5, "Calendars fill up before year end."),
        (9, 25, "at_risk", 4, "One review. We need the kit to let account managers run them alone."),
        (10, 25, "at_risk", 4, "No review this week. 40 needs the QBR kit, which has no owner."),
    ],
    "teams": [
        (0, 0, "on_track", 7, "Kick-off with the team leads."),
        (1, 2, "on_track", 7, "Support and Sales started."),
        (2, 3, "on_track", 7, "Product joined."),
        (3, 5, "on_track", 7, "Engineering and Marketing joined."),
        (4, 6, "on_track", 7, "Customer Success joined."),
        (5, 7, "on_track", 7, "Seven teams; Design asked how."),
        (7, 7, "at_risk", 5, "The offsite week broke the habit for two teams."),
        (8, 8, "on_track", 6, "Both back, and Design started."),
        (9, 9, "on_track", 7, "People Ops joined."),
        (10, 10, "on_track", 7, "Finance asked to join."),
        (11, 10, "on_track", 7, "Ten teams in the Monday reviews."),
    ],
    "p95": [
        (0, 1800, "on_track", 6, "Baseline from last month's traces."),
        (2, 1650, "on_track", 6, "Cached the calendar."),
        (4, 1400, "on_track", 7, "Batched the week view's queries."),
        (5, 1350, "at_risk", 5, "Small gain; the next step is the big one."),
        (7, 900, "on_track", 7, "Performance sprint: one query per page instead of one per item."),
        (8, 620, "on_track", 8, "An index on the effective time."),
        (9, 560, "on_track", 8, "Smaller pages: Check-ins load with the Key Result."),
        (10, 480, "on_track", 8, "Almost there."),
    ],
    "sealed": [
        (2, 2, "on_track", 8, "Two weeks sealed, nothing to fix."),
        (4, 4, "on_track", 8, "Four of four."),
        (5, 5, "on_track", 8, "Five of five."),
        (7, 6, "on_track", 8, "The offsite week had no activity: nothing to seal there, nothing to fix."),
        (9, 8, "on_track", 9, "Eight sealed weeks, all verified."),
        (10, 9, "on_track", 9, "Nine, and the late amendment of week 9 landed where it should."),
    ],
    "formats": [
        (1, 1, "on_track", 8, "CSV shipped."),
        (3, 2, "on_track", 8, "XLSX shipped, with formulas switched off."),
        (5, 3, "done", 10, "JSON shipped. Done."),
    ],
    "docs": [  # nothing since week 4: stale work
        (1, 3, "on_track", 6, "Started with installation and upgrades."),
        (2, 5, "on_track", 6, "Backup and restore rewritten."),
        (4, 6, "at_risk", 4, "Paused while the pipeline work takes priority."),
    ],
    "data-room": [
        (2, 8, "on_track", 7, "Financial statements and the cap table are in."),
        (5, 19, "on_track", 7, "Contracts with the ten largest customers uploaded."),
        (8, 26, "at_risk", 5, "Customer contracts need redacting first."),
        (10, 31, "at_risk", 5, "Redaction done for half of them."),
    ],
    # "board": no Check-in yet (stale, not started)
}

# (Key Result, week, value, status, confidence, comment): made on that week's Friday, recorded
# only after the week was closed, so it is listed on the sealed week and counts in a later one.
LATE_AMENDMENT = ("questionnaire", LATE_WEEK, 1, "done", 9,
                  "Sent to both prospects on Friday; I forgot to check in before the review.")

# Initiative -> its Check-ins: (week, status, comment).
INITIATIVE_CHECK_INS: dict[str, list[tuple[int, str, str]]] = {
    "wizard": [(7, "blocked", "Blocked on the billing API from the Platform team.")],
    "help-centre": [(10, "done", "Launched; the remaining articles move to the backlog.")],
    "speed": [(10, "done", "Sprint over: p95 under 500 ms.")],
}


class LocalDirectory:
    """The member directory read straight from the gateway's database: the demo runs before
    (and without) the gateway process."""

    def __init__(self, gateway: Gateway):
        self.gateway = gateway

    def non_members(self, principal, workspace_id, user_ids) -> set:
        known = identity.members_among(principal, workspace_id, user_ids, uow=self.gateway.uow())
        return set(user_ids) - known


def seed(gateway: Gateway, checkin_service: Checkin) -> dict:
    """The demo Workspace and its Session; {"session": None} when it was seeded before."""
    now = checkin_service.clock.now()
    existing = _existing_demo(gateway)
    if existing is not None:
        user, workspace = existing
        owner = Principal(str(user.id), {str(workspace.id): "owner"})
        if checkin.list_sessions(owner, workspace.id, uow=checkin_service.uow()):
            return {"user": user, "workspace": workspace, "session": None}  # seeded once, ever
    people, workspace = _accounts(gateway)
    principals = {key: Principal(str(user.id), {str(workspace.id): person.role})
                  for key, (user, person) in people.items()}
    ids = {key: user.id for key, (user, _) in people.items()}
    first_monday = _first_monday(now)
    session = checkin.import_history(
        commands.ImportHistory(principals["dana"], workspace.id, plan_document(first_monday, ids, now)),
        uow=checkin_service.uow(), clock=checkin_service.clock, members=LocalDirectory(gateway))
    _record_history(checkin_service, session.id, first_monday, principals, now)
    return {"user": people["dana"][0], "workspace": workspace, "session": session,
            "people": {key: user for key, (user, _) in people.items()}}


def _existing_demo(gateway: Gateway) -> tuple[User, Workspace] | None:
    with gateway.uow() as uow:
        user = uow.repo.user_by_email(DEMO_EMAIL)
        workspace = uow.repo.workspace_by_name(DEMO_WORKSPACE)
        if user is None or workspace is None or uow.repo.membership(workspace.id, user.id) is None:
            return None
        return user, workspace


def _accounts(gateway: Gateway) -> tuple[dict[str, tuple[User, Person]], Workspace]:
    """The six people, members of the demo Workspace. Missing accounts are made; an existing
    account keeps its password, name and any role it already has there.

    One scrypt hash serves the new accounts (they share the published demo password): six
    hashes would cost seconds at every first start."""
    password_hash = identity.hash_password(DEMO_PASSWORD)  # slow: outside the transaction
    now = gateway.clock.now()
    people = {}
    with gateway.uow() as uow:
        workspace = uow.repo.workspace_by_name(DEMO_WORKSPACE)
        if workspace is None:
            workspace = Workspace(uuid.uuid4(), DEMO_WORKSPACE, now)
            uow.repo.add_workspace(workspace)
        for person in PEOPLE:
            email = normalise_email(person.email)
            user = uow.repo.user_by_email(email)
            if user is None:
                user = User(uuid.uuid4(), email, password_hash, now, normalise_display_name(person.name))
                uow.repo.add_user(user)
            if uow.repo.membership(workspace.id, user.id) is None:
                uow.repo.set_membership(Membership(workspace.id, user.id, person.role))
            people[person.key] = (user, person)
        uow.commit()
    return people, workspace


def _first_monday(now: datetime) -> date:
    """The Monday WEEKS_OF_HISTORY weeks before the current week's (in the Session's timezone)."""
    today = now.astimezone(ZoneInfo(TIMEZONE)).date()
    return today - timedelta(days=today.weekday(), weeks=WEEKS_OF_HISTORY)


def session_name(first_monday: date) -> str:
    """Named after the quarter most of its days fall in, e.g. "Q4 2026"."""
    middle = first_monday + timedelta(days=SESSION_WEEKS * 7 // 2)
    return f"Q{(middle.month - 1) // 3 + 1} {middle.year}"


def _moment(first_monday: date, week: int, day: int, hour: int, minute: int = 0) -> datetime:
    """A moment of the Session's week `week` (0 is the first), in UTC. Hours 7-16 UTC are
    08:00-18:00 in Berlin all year, so a moment never slips into a neighbouring day."""
    return datetime.combine(first_monday + timedelta(weeks=week, days=day), time(hour, minute), tzinfo=timezone.utc)


def _whole(value: float) -> float | int:
    """Counts stay counts: 41, not 41.0 or 40.97."""
    return int(value) if float(value).is_integer() else value


def plan_document(first_monday: date, ids: dict[str, uuid.UUID], now: datetime) -> dict:
    """The history import document: the Session, its items and the Key Results' Check-ins up to
    `now`, each at its moment and each Check-in by its Key Result's owner (Dana for unassigned)."""
    created = _moment(first_monday, 0, 0, 7)
    doc: dict = {"session": {"name": session_name(first_monday), "start_date": first_monday,
                             "end_date": first_monday + timedelta(weeks=SESSION_WEEKS, days=-1),
                             "timezone": TIMEZONE, "week_start_day": "monday", "checkin_cadence": "weekly",
                             "checkin_weekday": "friday", "created_at": created},
                 "objectives": [], "key_results": [], "initiatives": [], "check_ins": []}
    for n, objective in enumerate(OBJECTIVES):
        doc["objectives"].append({
            "ref": objective.ref, "title": objective.title, "description": "", "owner_id": ids[objective.owner],
            "parent_ref": objective.parent, "private": objective.private,
            "visible_to": [ids[key] for key in objective.visible_to], "created_at": created + timedelta(minutes=5 + n)})
    for n, kr in enumerate(KEY_RESULTS):
        at = created + timedelta(minutes=20 + n) if kr.week == 0 else _moment(first_monday, kr.week, 1, 9)
        doc["key_results"].append({
            "ref": kr.ref, "objective_ref": kr.objective, "title": kr.title, "kind": kr.kind,
            "owner_id": ids[kr.owner] if kr.owner else None, "start_value": _whole(kr.start),
            "target_value": _whole(kr.target), "unit": kr.unit, "weight": 1.0, "created_at": at})
    for n, initiative in enumerate(INITIATIVES):
        at = created + timedelta(minutes=45 + n) if initiative.week == 0 else _moment(first_monday, initiative.week, 0, 10)
        canvas = None
        if initiative.canvas:
            title, url, access = initiative.canvas
            canvas = {"title": title, "url": url, "access": [ids[key] for key in access]}
        doc["initiatives"].append({
            "ref": initiative.ref, "title": initiative.title, "status": initiative.status,
            "owner_id": ids[initiative.owner] if initiative.owner else None, "canvas": canvas,
            "key_result_refs": list(initiative.key_results), "created_at": at})
    for position, kr in enumerate(KEY_RESULTS):
        for week, value, status, confidence, comment in CHECK_INS.get(kr.ref, []):
            # the current week's on Monday morning, earlier weeks' on Thursday or Friday
            at = _moment(first_monday, week, 0, 7, 30 + position) if week == WEEKS_OF_HISTORY else \
                _moment(first_monday, week, 3 + position % 2, 7 + position % 9, (position * 7) % 60)
            if at <= now:  # the current week has only begun
                doc["check_ins"].append({
                    "key_result_ref": kr.ref, "value": _whole(value), "status": status, "confidence": confidence,
                    "comment": comment, "checked_in_at": at, "author_id": ids[kr.owner or "dana"]})
    return doc


def _record_history(checkin_service: Checkin, session_id, first_monday: date, principals: dict, now: datetime) -> None:
    """After the import: the Initiatives' Check-ins (by their owners, at their moments), the ended
    weeks closed (as the check-in relay would), then the late amendment arrives."""
    items = _item_ids(checkin_service, session_id, principals["dana"])
    owners = {i.ref: i.owner or "dana" for i in INITIATIVES}
    for ref, entries in INITIATIVE_CHECK_INS.items():
        for week, status, comment in entries:
            at = _moment(first_monday, week, 4, 16)
            if at <= now:
                checkin.record_initiative_check_in(commands.RecordInitiativeCheckIn(
                    principals[owners[ref]], items[f"initiative:{ref}"], status, comment),
                    uow=checkin_service.uow(), clock=FixedClock(at))
    _close_ended_weeks(checkin_service)
    ref, week, value, status, confidence, comment = LATE_AMENDMENT
    owner = next(kr.owner for kr in KEY_RESULTS if kr.ref == ref)
    checkin.record_check_in(commands.RecordCheckIn(principals[owner], items[ref], value, status, comment, confidence),
                            uow=checkin_service.uow(), clock=FixedClock(_moment(first_monday, week, 4, 15)))


def _item_ids(checkin_service: Checkin, session_id, principal: Principal) -> dict:
    tree = checkin.session_tree(principal, session_id, uow=checkin_service.uow())
    by_title = {}

    def walk(nodes):
        for node in nodes:
            for entry in node["key_results"]:
                by_title[entry["key_result"].title] = entry["key_result"].id
                for initiative in entry["initiatives"]:
                    by_title["initiative:" + initiative.title] = initiative.id
            walk(node.get("children", []))

    walk(tree["objectives"])
    ids = {kr.ref: by_title[kr.title] for kr in KEY_RESULTS}
    ids |= {f"initiative:{i.ref}": by_title["initiative:" + i.title] for i in INITIATIVES}
    return ids


def _close_ended_weeks(checkin_service: Checkin) -> None:
    """What the check-in relay does every few seconds; done here so the late amendment that
    follows is late. A relay already running may close the same week at the same moment: its
    marker wins, and ours is simply not needed."""
    for _attempt in range(3):
        try:
            checkin.close_ended_weeks(uow=checkin_service.uow(), clock=checkin_service.clock,
                                      grace_seconds=checkin_service.settings.seal_grace_seconds)
            return
        except IntegrityError:
            continue
