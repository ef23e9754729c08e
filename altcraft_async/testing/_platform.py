"""The fake platform's data: databases of profiles, resources, segments, relations, senders.

Counters are *computed* from this data, never canned, so a test can change a profile, refresh,
and watch the count move. Profiles live in columns (one list or ``bytearray`` per attribute,
indexed by the profile's position in its database) rather than one object per profile: a
100,000-profile platform builds in a fraction of a second, and counting a segment is a handful
of whole-array operations — each subscription status is a ``bytearray`` of codes per
(resource, channel), turned into a bit mask with ``bytes.translate`` and intersected with the
segment's member mask as Python big integers, so no Python loop runs per profile.

Sendable rule (documented assumption; the platform's exact rule is not public): a profile is
*sendable* on a channel when it is not suspended (the profile-level flag set by "suspend all
database profiles") and it has a valid address for the channel — a plausible email for
``email``, a 10-15 digit phone for ``sms``; other channels (``push``, custom ones) need no
address. ``subscribed_sendable`` counts subscribed and sendable profiles,
``unconfirmed_sendable`` unconfirmed and sendable ones. ``all`` counts every profile of the
segment (or database), whatever its subscription, as in the documented example where ``sms``
has ``all`` 1336 and every other counter 0.

Snapshots: ``segments/get_counters`` answers the last computed snapshot of a (segment,
resource) pair, ``databases/get_counters`` that of a (database, resource) pair. The first request
computes it lazily; afterwards only a completed refresh task of the same kind replaces it, exactly
like the platform, whose counters go stale until refreshed. A resource refresh counts the same
profiles as a database refresh but stores nothing (it has no reading endpoint).

Realistic seeded data comes from :func:`._seed.seeded_platform`, which builds on this module.
"""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, TypeVar

from attrs import define, field, frozen

__all__ = [
    "CHANNEL_ADDRESS",
    "COUNTER_NAMES",
    "STATUSES",
    "Database",
    "Platform",
    "PlatformError",
    "Profile",
    "QueueRow",
    "Relation",
    "Resource",
    "Rule",
    "Segment",
    "Sender",
    "Snapshot",
]

#: Subscription statuses a profile can have on a (resource, channel).
STATUSES = (
    "subscribed",
    "unsubscribed",
    "hardbounced",
    "complained",
    "suspended",
    "unconfirmed",
    "invalid",
)
#: Counter names of a full snapshot, in the documented (alphabetical) order.
COUNTER_NAMES = (
    "all",
    "complained",
    "hardbounced",
    "invalid",
    "subscribed",
    "subscribed_sendable",
    "suspended",
    "unconfirmed",
    "unconfirmed_sendable",
    "unsubscribed",
)
#: Which profile address a channel needs to be sendable; channels not listed need none.
CHANNEL_ADDRESS: Mapping[str, str] = {"email": "email", "sms": "phone"}

_NO_SUBSCRIPTION = 0
_CODES = {name: code for code, name in enumerate(STATUSES, start=1)}
# One translate table per status: the code's byte becomes 1, every other byte 0.
_MASK_TABLES = {
    name: bytes(1 if byte == code else 0 for byte in range(256)) for name, code in _CODES.items()
}
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
_PHONE = re.compile(r"\+?\d{10,15}")
T = TypeVar("T")
QueueGroup = Literal["account", "account_campaign", "isp", "total"]
GROUPS: tuple[QueueGroup, ...] = ("account", "account_campaign", "isp", "total")


class PlatformError(LookupError):
    """An unknown object or an inconsistent reference; the server answers it as error 400."""


def _mask_int(column: bytes | bytearray) -> int:
    """A 0/1 byte column as one big integer, so masks combine with ``&`` in C."""
    return int.from_bytes(column, "big")


def _valid_email(email: str) -> bool:
    return bool(_EMAIL.fullmatch(email))


def _valid_phone(phone: str) -> bool:
    return bool(_PHONE.fullmatch(phone))


def profile_xxh(profile_id: str) -> str:
    """A stable 16-hex-digit hash of a profile id (blake2b, standing in for the real xxhash)."""
    return hashlib.blake2b(profile_id.encode(), digest_size=8).hexdigest()


@frozen
class Rule:
    """The predicate of a rule-based (dynamic) segment, over one custom profile field."""

    field: str
    op: Literal["equals", "between", "one_of"]
    value: Any

    @classmethod
    def equals(cls, name: str, value: Any) -> Rule:
        return cls(name, "equals", value)

    @classmethod
    def between(cls, name: str, low: float, high: float) -> Rule:
        """Inclusive range; profiles without a numeric value never match."""
        return cls(name, "between", (low, high))

    @classmethod
    def one_of(cls, name: str, values: Iterable[Any]) -> Rule:
        return cls(name, "one_of", frozenset(values))

    def matches(self, fields: Mapping[str, Any]) -> bool:
        value = fields.get(self.field)
        if value is None:
            return False
        if self.op == "equals":
            return bool(value == self.value)
        if self.op == "one_of":
            return value in self.value
        low, high = self.value
        return isinstance(value, int | float) and bool(low <= value <= high)


@frozen
class Profile:
    """A read-only view of one profile (built on demand; the platform stores columns)."""

    profile_id: str
    database_id: int
    email: str
    phone: str
    fields: Mapping[str, Any]
    suspended: bool
    subscriptions: Mapping[tuple[int, str], str]


class Database:
    """A database's profiles as columns, plus subscription codes per (resource, channel)."""

    def __init__(self, database_id: int, name: str = "") -> None:
        self.id = database_id
        self.name: str = name or f"database {database_id}"
        self.profile_ids: list[str] = []
        self.emails: list[str] = []
        self.phones: list[str] = []
        self.fields: list[dict[str, Any]] = []
        self.index: dict[str, int] = {}
        self.active: bytearray = bytearray()  # 1 = not suspended
        self.email_ok: bytearray = bytearray()
        self.phone_ok: bytearray = bytearray()
        self.subscriptions: dict[tuple[int, str], bytearray] = {}
        # bumped whenever profiles or their fields change: rule-segment members cache on it
        self.version: int = 0

    def __len__(self) -> int:
        return len(self.profile_ids)

    def __repr__(self) -> str:
        return f"Database(id={self.id}, profiles={len(self)})"

    def load(
        self,
        profile_ids: Sequence[str],
        emails: Sequence[str],
        phones: Sequence[str],
        fields: Sequence[dict[str, Any]],
        suspended: Sequence[bool],
    ) -> None:
        """Append many profiles at once (column-wise: the fast path of the seeded generator)."""
        count = len(profile_ids)
        if not count == len(emails) == len(phones) == len(fields) == len(suspended):
            raise ValueError("profile columns differ in length")
        start = len(self.profile_ids)
        self.version += 1
        for offset, profile_id in enumerate(profile_ids):
            if profile_id in self.index:
                raise PlatformError(f"profile {profile_id} already exists")
            self.index[profile_id] = start + offset
        self.profile_ids.extend(profile_ids)
        self.emails.extend(emails)
        self.phones.extend(phones)
        self.fields.extend(fields)
        self.active.extend(not flag for flag in suspended)
        self.email_ok.extend(map(_valid_email, emails))
        self.phone_ok.extend(map(_valid_phone, phones))
        for codes in self.subscriptions.values():
            codes.extend(bytes(count))

    def sendable_mask(self, channel: str) -> int:
        """Profiles that could receive a message on ``channel`` (see the module docstring)."""
        mask = _mask_int(self.active)
        address = CHANNEL_ADDRESS.get(channel)
        if address == "email":
            mask &= _mask_int(self.email_ok)
        elif address == "phone":
            mask &= _mask_int(self.phone_ok)
        return mask


@define
class Resource:
    """A resource (subscription source) with its channels, linked to one or more databases."""

    id: int
    channels: tuple[str, ...]
    database_ids: list[int]
    name: str = ""


@define
class Segment:
    """A static segment (explicit profile ids) or a rule-based one (a :class:`Rule`)."""

    id: int
    database_id: int
    static: set[str] | None = None
    rule: Rule | None = None
    name: str = ""

    @property
    def dynamic(self) -> bool:
        return self.rule is not None


@define
class Relation:
    """A profile relation: props per profile id (numeric props as ``{"top": {...}, "sum": n}``)."""

    id: int
    database_id: int
    props: dict[str, dict[str, Any]] = field(factory=dict)


@frozen
class QueueRow:
    """One row of a sender's queue."""

    account_id: int
    campaign_id: int
    isp: str = ""
    hold: int = 0
    new: int = 0
    proc: int = 0
    retry: int = 0

    @property
    def total(self) -> int:
        return self.hold + self.new + self.proc + self.retry


@define
class Sender:
    id: int
    rows: list[QueueRow] = field(factory=list)


@frozen
class Snapshot:
    """Counters of a segment (or a whole database) on one resource, as computed at ``updated``."""

    list_id: int
    resource_id: int
    counters: Mapping[str, Mapping[str, int]]
    updated: datetime
    elapsed_ms: float

    def sendable_wire(self) -> list[dict[str, Any]]:
        """The ``data`` of ``segments/get_counters``: the two sendable counters per channel."""
        return [
            {
                "channel": channel,
                "status": {
                    "subscribed_sendable": counts["subscribed_sendable"],
                    "unconfirmed_sendable": counts["unconfirmed_sendable"],
                },
            }
            for channel, counts in self.counters.items()
        ]

    def task_wire(self) -> dict[str, Any]:
        """One item of a refresh task's ``result``, with every counter."""
        stamp = self.updated.strftime("%Y-%m-%dT%H:%M:%S")
        return {
            "channels": [
                {"channel": channel, "status": dict(counts)}
                for channel, counts in self.counters.items()
            ],
            "in_progress": False,
            "last_count_time": f"counted at {stamp}Z in {self.elapsed_ms:.6f}ms",
            "list_id": self.list_id,
            "refresh_task_id": "",
            "resource_id": self.resource_id,
            "updated": f"{stamp}.{self.updated.microsecond // 1000:03d}Z",
        }


class Platform:
    """Everything the fake knows; mutate it freely between requests (single-threaded use)."""

    def __init__(self) -> None:
        self.databases: dict[int, Database] = {}
        self.resources: dict[int, Resource] = {}
        self.segments: dict[int, Segment] = {}
        self.relations: dict[int, Relation] = {}
        self.senders: dict[int, Sender] = {}
        self._profile_db: dict[str, Database] = {}
        # (segment id, resource id) and (database id, resource id) -> the last snapshot
        self._snapshots: dict[tuple[int, int], Snapshot] = {}
        self._database_snapshots: dict[tuple[int, int], Snapshot] = {}
        # rule segment id -> (rule, database version, members): a rule is evaluated over every
        # profile in Python, so recomputing it for each refresh would dominate the fake's CPU
        self._rule_members: dict[int, tuple[Rule, int, int]] = {}

    def __repr__(self) -> str:
        return (
            f"Platform(databases={len(self.databases)}, profiles={len(self._profile_db)}, "
            f"resources={len(self.resources)}, segments={len(self.segments)}, "
            f"relations={len(self.relations)}, senders={len(self.senders)})"
        )

    # --- building ---------------------------------------------------------------------------

    def add_database(self, database_id: int | None = None, *, name: str = "") -> Database:
        database_id = _new_id(self.databases, database_id, "database")
        database = self.databases[database_id] = Database(database_id, name)
        return database

    def add_resource(
        self,
        resource_id: int | None = None,
        *,
        database_ids: int | Iterable[int],
        channels: Iterable[str] = ("email", "sms", "push"),
        name: str = "",
    ) -> Resource:
        """A resource linked to the given databases; their profiles start with no subscription."""
        ids = [database_ids] if isinstance(database_ids, int) else list(database_ids)
        databases = [self.database(database_id) for database_id in ids]
        resource_id = _new_id(self.resources, resource_id, "resource")
        resource = Resource(resource_id, tuple(channels), ids, name or f"resource {resource_id}")
        self.resources[resource_id] = resource
        for database in databases:
            for channel in resource.channels:
                database.subscriptions[(resource_id, channel)] = bytearray(len(database))
        return resource

    def add_profile(
        self,
        database_id: int,
        *,
        email: str = "",
        phone: str = "",
        fields: Mapping[str, Any] | None = None,
        suspended: bool = False,
        profile_id: str | None = None,
        subscriptions: Mapping[tuple[int, str], str] | None = None,
    ) -> str:
        """Add a profile and return its id (a fresh 24-hex-digit id unless one is given).

        ``subscriptions`` maps (resource id, channel) to a status from :data:`STATUSES`.
        """
        database = self.database(database_id)
        if profile_id is None:
            profile_id = hashlib.blake2b(
                f"{database_id}:{len(self._profile_db)}".encode(), digest_size=12
            ).hexdigest()
        if profile_id in self._profile_db:
            raise PlatformError(f"profile {profile_id} already exists")
        database.load([profile_id], [email], [phone], [dict(fields or {})], [suspended])
        self._profile_db[profile_id] = database
        for (resource_id, channel), status in (subscriptions or {}).items():
            self.set_subscription(profile_id, resource_id, channel, status)
        return profile_id

    def register_loaded(self, database: Database, profile_ids: Iterable[str]) -> None:
        """Index profiles that :meth:`Database.load` appended directly (bulk generators)."""
        for profile_id in profile_ids:
            self._profile_db[profile_id] = database

    def update_profile(
        self,
        profile_id: str,
        *,
        email: str | None = None,
        phone: str | None = None,
        fields: Mapping[str, Any] | None = None,
        suspended: bool | None = None,
    ) -> None:
        """Change a profile; ``fields`` are merged into its custom fields."""
        database, index = self._locate(profile_id)
        if email is not None:
            database.emails[index] = email
            database.email_ok[index] = _valid_email(email)
        if phone is not None:
            database.phones[index] = phone
            database.phone_ok[index] = _valid_phone(phone)
        if fields is not None:
            database.fields[index].update(fields)
            database.version += 1
        if suspended is not None:
            database.active[index] = not suspended

    def set_subscription(
        self, profile_id: str, resource_id: int, channel: str, status: str | None
    ) -> None:
        """Set a profile's status on a resource channel (None removes the subscription)."""
        if status is not None and status not in _CODES:
            raise ValueError(f"unknown subscription status {status!r}; expected one of {STATUSES}")
        database, index = self._locate(profile_id)
        codes = database.subscriptions.get((resource_id, channel))
        if codes is None:
            raise PlatformError(
                f"resource {resource_id} has no channel {channel!r} in database {database.id}"
            )
        codes[index] = _NO_SUBSCRIPTION if status is None else _CODES[status]

    def add_static_segment(
        self,
        database_id: int,
        profile_ids: Iterable[str] = (),
        *,
        segment_id: int | None = None,
        name: str = "",
    ) -> Segment:
        self.database(database_id)
        segment_id = _new_id(self.segments, segment_id, "segment")
        segment = Segment(segment_id, database_id, static=set(profile_ids), name=name)
        self.segments[segment_id] = segment
        return segment

    def add_rule_segment(
        self, database_id: int, rule: Rule, *, segment_id: int | None = None, name: str = ""
    ) -> Segment:
        self.database(database_id)
        segment_id = _new_id(self.segments, segment_id, "segment")
        segment = Segment(segment_id, database_id, rule=rule, name=name)
        self.segments[segment_id] = segment
        return segment

    def add_relation(self, database_id: int, *, relation_id: int | None = None) -> Relation:
        self.database(database_id)
        relation_id = _new_id(self.relations, relation_id, "relation")
        relation = self.relations[relation_id] = Relation(relation_id, database_id)
        return relation

    def set_relation_props(
        self, relation_id: int, profile_id: str, props: Mapping[str, Any]
    ) -> None:
        """Replace a profile's relation props; numeric ones as ``{"top": {...}, "sum": n}``."""
        self.relation(relation_id).props[profile_id] = dict(props)

    def add_sender(self, sender_id: int | None = None) -> Sender:
        sender_id = _new_id(self.senders, sender_id, "sender")
        sender = self.senders[sender_id] = Sender(sender_id)
        return sender

    # --- lookups ----------------------------------------------------------------------------

    def database(self, database_id: int) -> Database:
        return _get(self.databases, database_id, "database")

    def resource(self, resource_id: int) -> Resource:
        return _get(self.resources, resource_id, "resource")

    def segment(self, segment_id: int) -> Segment:
        return _get(self.segments, segment_id, "segment")

    def relation(self, relation_id: int) -> Relation:
        return _get(self.relations, relation_id, "relation")

    def sender(self, sender_id: int) -> Sender:
        return _get(self.senders, sender_id, "sender")

    def profile(self, profile_id: str) -> Profile:
        database, index = self._locate(profile_id)
        inverse = {code: name for name, code in _CODES.items()}
        return Profile(
            profile_id=profile_id,
            database_id=database.id,
            email=database.emails[index],
            phone=database.phones[index],
            fields=dict(database.fields[index]),
            suspended=not database.active[index],
            subscriptions={
                key: inverse[codes[index]]
                for key, codes in database.subscriptions.items()
                if codes[index] != _NO_SUBSCRIPTION
            },
        )

    def profile_ids(self, database_id: int) -> list[str]:
        return list(self.database(database_id).profile_ids)

    def find_profile(
        self, database_id: int, *, by: Literal["email", "phone", "profile_id"], value: str
    ) -> str | None:
        """The id of the first profile of the database whose ``by`` equals ``value``."""
        database = self.database(database_id)
        if by == "profile_id":
            return value if value in database.index else None
        column = database.emails if by == "email" else database.phones
        try:
            return database.profile_ids[column.index(value)]
        except ValueError:
            return None

    def find_by_field(self, database_id: int, name: str, value: str | int) -> str | None:
        """The first profile whose custom field ``name`` equals ``value`` (compared as text)."""
        database = self.database(database_id)
        wanted = str(value)
        for index, fields in enumerate(database.fields):
            if name in fields and str(fields[name]) == wanted:
                return database.profile_ids[index]
        return None

    def segment_refs(self) -> list[tuple[int, int, int]]:
        """Every valid (segment id, resource id, database id) triple, in id order."""
        return [
            (segment.id, resource.id, segment.database_id)
            for segment in self.segments.values()
            for resource in self.resources.values()
            if segment.database_id in resource.database_ids
        ]

    def resource_refs(self) -> list[tuple[int, int]]:
        """Every valid (resource id, database id) pair."""
        return [
            (resource.id, database_id)
            for resource in self.resources.values()
            for database_id in resource.database_ids
        ]

    def check_link(self, resource_id: int, database_id: int) -> Resource:
        """The resource, if it is linked to the database; else PlatformError."""
        resource = self.resource(resource_id)
        self.database(database_id)
        if database_id not in resource.database_ids:
            raise PlatformError(f"resource {resource_id} is not linked to database {database_id}")
        return resource

    # --- counters ---------------------------------------------------------------------------

    def segment_counters(self, segment_id: int, resource_id: int) -> dict[str, dict[str, int]]:
        """What a refresh would compute now: channel -> every counter of :data:`COUNTER_NAMES`."""
        segment = self.segment(segment_id)
        resource = self.check_link(resource_id, segment.database_id)
        database = self.databases[segment.database_id]
        return _count(database, resource, self._members(segment, database))

    def resource_counters(self, resource_id: int, database_id: int) -> dict[str, dict[str, int]]:
        """A resource's counters over a whole database."""
        resource = self.check_link(resource_id, database_id)
        database = self.databases[database_id]
        return _count(database, resource, _mask_int(b"\x01" * len(database)))

    def refresh_segment(self, segment_id: int, resource_id: int, at: datetime) -> Snapshot:
        """Recompute and store the segment's snapshot (what a completed refresh task does)."""
        started = time.perf_counter()
        counters = self.segment_counters(segment_id, resource_id)
        snapshot = Snapshot(
            list_id=self.segments[segment_id].database_id,
            resource_id=resource_id,
            counters=counters,
            updated=at,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )
        self._snapshots[(segment_id, resource_id)] = snapshot
        return snapshot

    def refresh_resource(self, resource_id: int, database_id: int, at: datetime) -> Snapshot:
        """Compute a resource's counters over a whole database (a resource refresh task)."""
        started = time.perf_counter()
        counters = self.resource_counters(resource_id, database_id)
        return Snapshot(
            list_id=database_id,
            resource_id=resource_id,
            counters=counters,
            updated=at,
            elapsed_ms=(time.perf_counter() - started) * 1000,
        )

    def refresh_database(self, database_id: int, resource_id: int, at: datetime) -> Snapshot:
        """Recompute and store the counters of every profile of the database on the resource
        (what a completed ``databases/refresh_counters`` task does)."""
        snapshot = self.refresh_resource(resource_id, database_id, at)
        self._database_snapshots[(database_id, resource_id)] = snapshot
        return snapshot

    def last_snapshot(self, segment_id: int, resource_id: int, at: datetime) -> Snapshot:
        """The segment's stored snapshot, computed (at ``at``) on first use."""
        snapshot = self._snapshots.get((segment_id, resource_id))
        if snapshot is None:
            snapshot = self.refresh_segment(segment_id, resource_id, at)
        return snapshot

    def last_database_snapshot(self, database_id: int, resource_id: int, at: datetime) -> Snapshot:
        """The database's stored snapshot on the resource, computed (at ``at``) on first use."""
        snapshot = self._database_snapshots.get((database_id, resource_id))
        if snapshot is None:
            snapshot = self.refresh_database(database_id, resource_id, at)
        return snapshot

    # --- relations and senders --------------------------------------------------------------

    def relation_info(self, relation_id: int, profile_id: str) -> dict[str, Any]:
        """The ``data`` of ``relations/get_counter`` for a profile."""
        relation = self.relation(relation_id)
        return {
            "profile_id": profile_id,
            "profile_xxh": profile_xxh(profile_id),
            "props": dict(relation.props.get(profile_id, {})),
        }

    def queue_stats(
        self,
        sender_id: int,
        *,
        account_id: int | None = None,
        campaign_id: int | None = None,
        isp: str | None = None,
        group: QueueGroup = "total",
    ) -> list[dict[str, Any]]:
        """Queue rows filtered then grouped.

        ``total`` sums everything into one row (account and campaign 0), ``account`` and
        ``account_campaign`` group by those ids (``isp`` empty), ``isp`` by ISP.
        """
        if group not in GROUPS:
            raise ValueError(f"group must be one of {GROUPS}, got {group!r}")
        rows = [
            row
            for row in self.sender(sender_id).rows
            if (account_id is None or row.account_id == account_id)
            and (campaign_id is None or row.campaign_id == campaign_id)
            and (isp is None or row.isp.lower() == isp.lower())
        ]
        grouped: dict[tuple[int, int, str], list[int]] = {}
        for row in rows:
            if group == "account":
                key = (row.account_id, 0, "")
            elif group == "account_campaign":
                key = (row.account_id, row.campaign_id, "")
            elif group == "isp":
                key = (0, 0, row.isp)
            else:
                key = (0, 0, "")
            sums = grouped.setdefault(key, [0, 0, 0, 0])
            for position, value in enumerate((row.hold, row.new, row.proc, row.retry)):
                sums[position] += value
        return [
            {
                "account_id": key[0],
                "campaign_id": key[1],
                "hold": hold,
                "isp": key[2],
                "new": new,
                "proc": proc,
                "retry": retry,
                "total": hold + new + proc + retry,
            }
            for key, (hold, new, proc, retry) in sorted(grouped.items())
        ]

    # --- internals --------------------------------------------------------------------------

    def _locate(self, profile_id: str) -> tuple[Database, int]:
        database = self._profile_db.get(profile_id)
        if database is None:
            raise PlatformError(f"profile {profile_id} not found")
        return database, database.index[profile_id]

    def _members(self, segment: Segment, database: Database) -> int:
        if segment.rule is not None:
            cached = self._rule_members.get(segment.id)
            if cached and cached[0] is segment.rule and cached[1] == database.version:
                return cached[2]
            members = _mask_int(bytes(map(segment.rule.matches, database.fields)))
            self._rule_members[segment.id] = (segment.rule, database.version, members)
            return members
        mask = bytearray(len(database))
        for profile_id in segment.static or ():
            index = database.index.get(profile_id)
            if index is not None:
                mask[index] = 1
        return _mask_int(mask)


def _count(database: Database, resource: Resource, members: int) -> dict[str, dict[str, int]]:
    total = members.bit_count()
    result: dict[str, dict[str, int]] = {}
    for channel in resource.channels:
        codes = database.subscriptions[(resource.id, channel)]
        sendable = members & database.sendable_mask(channel)
        counts = {"all": total}
        for status in STATUSES:
            hits = _mask_int(codes.translate(_MASK_TABLES[status]))
            counts[status] = (hits & members).bit_count()
            if status in ("subscribed", "unconfirmed"):
                counts[f"{status}_sendable"] = (hits & sendable).bit_count()
        result[channel] = {name: counts[name] for name in COUNTER_NAMES}
    return result


def _new_id(existing: Mapping[int, object], wanted: int | None, kind: str) -> int:
    if wanted is None:
        return max(existing, default=0) + 1
    if wanted in existing:
        raise PlatformError(f"{kind} {wanted} already exists")
    if wanted <= 0:
        raise ValueError(f"{kind} id must be positive, got {wanted}")
    return wanted


def _get(table: Mapping[int, T], key: int, kind: str) -> T:
    try:
        return table[key]
    except KeyError:
        raise PlatformError(f"{kind} {key} not found") from None
