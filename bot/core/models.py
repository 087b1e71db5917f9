"""The database tables. Every piece of state lives here: no conversation or schedule in memory.

Times are aware UTC datetimes (`utcnow()`): SQLModel stores them as UTC on SQLite and as
timestamptz on PostgreSQL, and gives them back aware. They are converted to Asia/Ho_Chi_Minh only
when shown to a person. The one exception is a photo's EXIF time, which has no zone.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from enum import IntEnum, StrEnum
from typing import Any

from pydantic import NaiveDatetime
from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Level(StrEnum):
    province = "province"
    district = "district"
    commune = "commune"
    village = "village"
    agency = "agency"


class Channel(StrEnum):
    telegram = "telegram"
    zalo_bot = "zalo_bot"
    zalo_oa = "zalo_oa"
    web = "web"


class OccurrenceStatus(StrEnum):
    open = "open"
    done = "done"
    excused = "excused"
    overdue = "overdue"
    escalated = "escalated"


CLOSED_STATUSES = (OccurrenceStatus.done, OccurrenceStatus.excused)


class OutboxStatus(StrEnum):
    """queued (`pending`) → `sending` → `sent` (the platform accepted it: its message id is
    kept) → `delivered` / `seen` where the platform says so; or failed for good (`dead`, with
    a `failure` reason, one of FAILURE_REASONS)."""

    pending = "pending"
    sending = "sending"
    sent = "sent"
    delivered = "delivered"
    seen = "seen"
    dead = "dead"


class OutboxLane(IntEnum):
    """The sender's lanes, most urgent first: the reply to the person who is talking, then news
    for other people (approvals, escalations, the commune told), then reminders, then digests."""

    reply = 0
    notify = 1
    reminder = 2
    digest = 3


# The platform took the message: nothing after this is a failure to send.
ACCEPTED_STATUSES = (OutboxStatus.sent, OutboxStatus.delivered, OutboxStatus.seen)
FAILURE_REASONS = (
    "outside_window",
    "blocked",
    "no_channel",
    "quota",
    "invalid_phone",
    "platform_error",
)


class Unit(SQLModel, table=True):
    __tablename__ = "units"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=64)
    name: str = Field(max_length=200)
    level: str = Field(index=True, max_length=16)
    parent_id: int | None = Field(default=None, foreign_key="units.id", index=True)
    is_sample: bool = False


class User(SQLModel, table=True):
    __tablename__ = "users"
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(default="", max_length=200)
    phone: str | None = Field(default=None, max_length=16)  # normalised mobile: 84xxxxxxxxx
    role: str = Field(index=True, max_length=120)
    unit_id: int = Field(foreign_key="units.id", index=True)
    locale: str = Field(default="vi", max_length=8)
    active: bool = True
    created_at: datetime = Field(default_factory=utcnow)


class ChannelIdentity(SQLModel, table=True):
    """One user's address on one channel (Telegram chat id, Zalo user id, …)."""

    __tablename__ = "channel_identities"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="users.id", index=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    display_name: str = Field(default="", max_length=200)
    blocked: bool = False  # the platform said the user blocked us: do not retry
    last_interaction_at: datetime | None = None  # last message *from* the user
    created_at: datetime = Field(default_factory=utcnow)


class Invite(SQLModel, table=True):
    __tablename__ = "invites"
    id: int | None = Field(default=None, primary_key=True)
    code: str = Field(unique=True, index=True, max_length=32)
    unit_id: int = Field(foreign_key="units.id")
    role: str = Field(max_length=120)
    user_id: int | None = Field(default=None, foreign_key="users.id")  # set: link another channel
    created_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None
    used_by_user_id: int | None = Field(default=None, foreign_key="users.id")


class TaskDefinition(SQLModel, table=True):
    """One row of the decision's appendix, synchronised from framework_data/ by key."""

    __tablename__ = "task_definitions"
    key: str = Field(primary_key=True, max_length=120)
    dimension: str = Field(max_length=64)
    sub_dimension: str = Field(default="", max_length=300)
    title: str = Field(max_length=120)
    schedule: str = Field(max_length=64)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    evidence: str = Field(default="", max_length=300)
    supervisor: str = Field(default="", max_length=300)
    record: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    active: bool = True
    content_hash: str = Field(default="", max_length=64)


class Event(SQLModel, table=True):
    """Something that starts event-driven tasks: an election, a poverty review, public works."""

    __tablename__ = "events"
    id: int | None = Field(default=None, primary_key=True)
    unit_id: int = Field(foreign_key="units.id", index=True)
    kind: str = Field(max_length=32)
    starts_on: date
    ends_on: date | None = None
    name: str = Field(default="", max_length=200)
    created_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    created_at: datetime = Field(default_factory=utcnow)
    planned: bool = Field(default=False, index=True)


class Occurrence(SQLModel, table=True):
    """One task due at one unit for one period."""

    __tablename__ = "occurrences"
    __table_args__ = (
        # Period first: a plan's new rows go together at the end of their (period, task), not
        # into the middle of every unit's history; the (period, task_key) prefix serves the
        # planner's count. An index, not a table constraint, so SQLite can change it in place.
        Index("uq_occurrences_period_task_unit", "period", "task_key", "unit_id", unique=True),
        Index("ix_occurrences_status_due", "status", "due_at"),
        # The dashboard's counts of a period read this index alone, never the table.
        Index("ix_occurrences_due_cover", "due_at", "unit_id", "task_key", "status"),
    )
    id: int | None = Field(default=None, primary_key=True)
    task_key: str = Field(foreign_key="task_definitions.key", max_length=120)
    # Scattered inserts (one leaf per unit), but every per-unit screen and digest needs it.
    unit_id: int = Field(foreign_key="units.id", index=True)
    period: str = Field(max_length=64)
    window_start: datetime
    due_at: datetime
    status: str = Field(default=OccurrenceStatus.open, max_length=16)
    event_id: int | None = Field(default=None, foreign_key="events.id")
    done_at: datetime | None = None
    done_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class Report(SQLModel, table=True):
    """What a person said about an occurrence: done (with evidence), cannot do, or more time."""

    __tablename__ = "reports"
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrences.id", index=True)
    user_id: int = Field(foreign_key="users.id")
    kind: str = Field(max_length=16)  # done | cannot | extension
    # draft | submitted | cancelled; extension and cannot requests: approved | declined
    status: str = Field(default="draft", max_length=16)
    note: str = Field(default="", max_length=2000)
    requested_until: date | None = None
    decided_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    decided_at: datetime | None = None
    decision_note: str = Field(default="", max_length=2000)  # why declined / rejected
    # Set when an officer reported for a village: the village head it was done for (if any).
    on_behalf_of_user_id: int | None = Field(default=None, foreign_key="users.id")
    # A done report's review by the commune: "" (not yet) | accepted | returned.
    review_status: str = Field(default="", max_length=16)
    reviewed_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    reviewed_at: datetime | None = None
    review_note: str = Field(default="", max_length=2000)
    created_at: datetime = Field(default_factory=utcnow)
    submitted_at: datetime | None = None


class Evidence(SQLModel, table=True):
    __tablename__ = "evidence"
    id: int | None = Field(default=None, primary_key=True)
    report_id: int = Field(foreign_key="reports.id", index=True)
    sha256: str = Field(max_length=64, index=True)
    path: str = Field(max_length=300)
    size: int
    mime: str = Field(default="", max_length=64)
    width: int | None = None
    height: int | None = None
    taken_at: NaiveDatetime | None = None  # the camera's clock, zone unknown
    gps_lat: float | None = None
    gps_lon: float | None = None
    created_at: datetime = Field(default_factory=utcnow)


class Escalation(SQLModel, table=True):
    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("occurrence_id", "step"),)  # also the occurrence_id index
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrences.id")
    step: str = Field(max_length=32)  # commune | supervisor | unreachable
    target_unit_id: int = Field(foreign_key="units.id", index=True)
    reason: str = Field(default="overdue", max_length=32)
    notified_user_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow, index=True)


class Reminder(SQLModel, table=True):
    """A reminder stage that was handled for one occurrence, so a sweep never repeats it."""

    __tablename__ = "reminders"
    __table_args__ = (UniqueConstraint("occurrence_id", "stage"),)  # also the occurrence_id index
    id: int | None = Field(default=None, primary_key=True)
    occurrence_id: int = Field(foreign_key="occurrences.id")
    stage: str = Field(max_length=32)  # before-7, before-1, due, overdue-1, …
    user_ids: list[int] = Field(default_factory=list, sa_column=Column(JSON))
    # queued (its message waits) | sent (a message holding it was accepted) | unreachable |
    # folded. Queued becomes sent or unreachable as its messages' chains go (reach_chains).
    outcome: str = Field(default="queued", max_length=16)
    chain_keys: list[str] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)


class Outbox(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_platform_message", "platform_message_id"),  # receipts find their row
        Index("ix_outbox_status_lane", "status", "lane", "id"),  # the sender claims by lane
    )
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(unique=True, max_length=120)
    user_id: int | None = Field(default=None, foreign_key="users.id")
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    status: str = Field(default=OutboxStatus.pending, max_length=16)
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow)
    last_error: str = Field(default="", max_length=1000)
    platform_message_id: str = Field(default="", max_length=64)
    failure: str = Field(default="", max_length=16)  # one of FAILURE_REASONS when dead
    chain_key: str | None = Field(default=None, max_length=120)  # its reach chain, if any
    # Which lane the sender drains it from (OutboxLane): replies before reminders.
    lane: int = Field(default=1, sa_column_kwargs={"server_default": "1"})
    # A card replaced in place: the platform message it edits (empty: a new message), and what
    # happened once sent: edited | unchanged (it already read so) | resent (the card was gone,
    # a new message went instead).
    edit_of: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    edit_result: str = Field(default="", max_length=16, sa_column_kwargs={"server_default": ""})
    created_at: datetime = Field(default_factory=utcnow)
    sent_at: datetime | None = None
    delivered_at: datetime | None = None
    seen_at: datetime | None = None


class ChainStatus(StrEnum):
    queued = "queued"  # the current step's message waits to be sent
    sent = "sent"  # accepted; on a channel with receipts, waiting for one
    delivered = "delivered"
    seen = "seen"
    failed = "failed"  # the current step failed: the sweep starts the next one
    flagged = "flagged"  # every step failed: the commune was told, by name


class ReachChain(SQLModel, table=True):
    """One message to one person and the steps taken to reach them (bot/core/services/reach.py):
    their last channel, their other channels, a ZNS template to their phone, then the commune.
    `steps` records each step with its outcome; `reminders` the (occurrence, stage) it holds."""

    __tablename__ = "reach_chains"
    __table_args__ = (Index("ix_reach_chains_status_since", "status", "awaiting_since"),)
    key: str = Field(primary_key=True, max_length=120)
    user_id: int = Field(foreign_key="users.id", index=True)
    kind: str = Field(default="reminder", max_length=16)  # reminder | overdue
    status: str = Field(default=ChainStatus.queued, max_length=16)
    step: int = 0
    channel: str = Field(default="", max_length=16)  # the current step's channel
    outbox_key: str = Field(default="", max_length=120)  # the current step's message
    reason: str = Field(default="", max_length=16)  # why the last step failed
    # Sent on a channel with receipts (or failed): since when. No receipt within the policy's
    # time and the next step starts.
    awaiting_since: datetime | None = None
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    template: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    reminders: list[list[Any]] = Field(default_factory=list, sa_column=Column(JSON))
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_column=Column(JSON))
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)


class InboundUpdate(SQLModel, table=True):
    """An update from a platform, recorded before it is handled (bot/core/inbox.py): the unique key
    makes a redelivery change nothing; `payload` holds it until it is handled, then is cleared."""

    __tablename__ = "inbound_updates"
    __table_args__ = (
        UniqueConstraint("channel", "update_id"),
        # The worker's queue: only the rows not handled yet, so it stays small.
        Index(
            "ix_inbound_updates_pending",
            "id",
            sqlite_where=text("handled_at IS NULL"),
            postgresql_where=text("handled_at IS NULL"),
        ),
        # A chat's pending updates in order: a worker handles one only when none before it waits
        # (several workers on PostgreSQL keep each chat's order).
        Index(
            "ix_inbound_updates_chat_pending",
            "chat_key",
            "id",
            sqlite_where=text("handled_at IS NULL"),
            postgresql_where=text("handled_at IS NULL"),
        ),
    )
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    update_id: str = Field(max_length=64)
    chat_key: str | None = Field(default=None, max_length=96)  # "channel:external_id"
    received_at: datetime = Field(default_factory=utcnow)
    handled_at: datetime | None = None
    payload: str | None = Field(default=None, sa_column=Column(Text))  # Incoming, as JSON


class DialogState(SQLModel, table=True):
    """Where one chat is in a conversation (waiting for photos, a reason, a date …)."""

    __tablename__ = "dialog_states"
    __table_args__ = (UniqueConstraint("channel", "external_id"),)
    id: int | None = Field(default=None, primary_key=True)
    channel: str = Field(max_length=16)
    external_id: str = Field(max_length=64)
    state: str = Field(default="idle", max_length=32)
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    updated_at: datetime = Field(default_factory=utcnow)


class AuditLog(SQLModel, table=True):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_action_subject_at", "action", "subject", "at"),)
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow)
    actor_user_id: int | None = Field(default=None, foreign_key="users.id")
    action: str = Field(max_length=64)
    subject: str = Field(default="", max_length=120)  # e.g. "telegram:12345", "unit:4567"
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class PlatformToken(SQLModel, table=True):
    """Rotating credentials (Zalo OA access/refresh tokens), replaced in one transaction."""

    __tablename__ = "platform_tokens"
    name: str = Field(primary_key=True, max_length=32)
    access_token: str = Field(max_length=2000)
    refresh_token: str = Field(max_length=2000)
    expires_at: datetime
    version: int = 1
    updated_at: datetime = Field(default_factory=utcnow)


class ImageFingerprint(SQLModel, table=True):
    """An evidence photo's perceptual hash, cut into four indexed 16-bit bands so that near
    duplicates are found by index probes (bot/core/services/fingerprints.py)."""

    __tablename__ = "image_fingerprints"
    # Covering: a probe reads the band's index and never the table.
    __table_args__ = tuple(
        Index(f"ix_image_fingerprints_band{i}", f"band{i}", "phash", "evidence_id")
        for i in range(4)
    )
    evidence_id: int = Field(foreign_key="evidence.id", primary_key=True)
    phash: int = Field(sa_column=Column(BigInteger, nullable=False))  # signed 64-bit
    band0: int
    band1: int
    band2: int
    band3: int


class EvidenceFlag(SQLModel, table=True):
    """Something about a submitted photo a supervisor should look at: `reused`, `stale`,
    `future`, `far` or `screenshot`, with what it was compared with. Never blocks a report."""

    __tablename__ = "evidence_flags"
    __table_args__ = (UniqueConstraint("evidence_id", "kind"),)
    id: int | None = Field(default=None, primary_key=True)
    evidence_id: int = Field(foreign_key="evidence.id")
    report_id: int = Field(foreign_key="reports.id", index=True)
    kind: str = Field(max_length=16)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    # Who looked at the flagged report and accepted it anyway, and when.
    accepted_by_user_id: int | None = Field(default=None, foreign_key="users.id")
    accepted_at: datetime | None = None


class WebLoginLink(SQLModel, table=True):
    """A one-time dashboard link sent in chat (`/web`): only the token's SHA-256 is kept."""

    __tablename__ = "web_login_links"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    used_at: datetime | None = None


class WebSession(SQLModel, table=True):
    """A browser signed in to the dashboard; the cookie holds the token, the row its hash."""

    __tablename__ = "web_sessions"
    id: int | None = Field(default=None, primary_key=True)
    token_hash: str = Field(unique=True, max_length=64)
    user_id: int = Field(foreign_key="users.id", index=True)
    csrf_token: str = Field(max_length=64)
    user_agent: str = Field(default="", max_length=200)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime  # absolute: a session never outlives this, however active
    ended_at: datetime | None = None
    ended_reason: str = Field(default="", max_length=16)  # logout | revoked
