"""The seeded generator: realistic platform data, identical for one seed.

This module builds on :mod:`._platform` (which never imports it back): :func:`seeded_platform`
is the constructor behind ``FakeAltcraft.seeded``, :func:`populate` fills a platform in place.

Everything is drawn from one ``random.Random(seed)`` in a fixed order (never iterating a set,
whose order varies between processes), so the same arguments always build the same platform.
Profiles are generated column-wise and loaded in bulk; subscription codes are drawn with
``Random.choices`` per (resource, channel) column. 100,000 profiles take well under a second.
"""

from __future__ import annotations

import random
from typing import Any

from ._platform import STATUSES, Platform, QueueRow, Rule

__all__ = ["populate", "seeded_platform"]

_CITIES = ("Moscow", "Kazan", "Omsk", "Perm", "Samara", "Tver", "Sochi", "Tula")
_TIERS = ("none", "bronze", "silver", "gold")
_DOMAINS = ("example.com", "mail.test", "inbox.test", "post.test")
_ISPS = ("gmail.com", "yandex.ru", "mail.ru", "outlook.com")
_CHANNEL_SETS = (("email", "sms", "push"), ("email",), ("email", "sms"))
# Code 0 (no subscription) first, then STATUSES in order; weights per channel.
_WEIGHTS = {
    "email": (18, 55, 8, 6, 1, 2, 7, 3),
    "sms": (50, 35, 6, 2, 1, 1, 3, 2),
    "push": (60, 30, 6, 0, 0, 1, 2, 1),
}
_CODES = tuple(range(len(STATUSES) + 1))


def seeded_platform(
    *,
    profiles: int = 10_000,
    segments: int = 50,
    resources: int = 3,
    databases: int = 1,
    relations: int = 2,
    senders: int = 3,
    seed: int = 1,
) -> Platform:
    """A deterministic realistic platform: the same arguments always build the same data."""
    platform = Platform()
    populate(
        platform,
        profiles=profiles,
        segments=segments,
        resources=resources,
        databases=databases,
        relations=relations,
        senders=senders,
        seed=seed,
    )
    return platform


def populate(
    platform: Platform,
    *,
    profiles: int,
    segments: int,
    resources: int,
    databases: int,
    relations: int,
    senders: int,
    seed: int,
) -> None:
    """Fill an empty platform; see :func:`seeded_platform`."""
    if min(profiles, segments, resources, relations, senders) < 0 or databases < 1:
        raise ValueError("counts must be >= 0 (and databases >= 1)")
    rng = random.Random(seed)
    for _ in range(databases):
        platform.add_database()
    database_ids = list(platform.databases)
    for number in range(resources):
        platform.add_resource(
            database_ids=database_ids[number % databases],
            channels=_CHANNEL_SETS[number % len(_CHANNEL_SETS)],
        )
    shares = [profiles // databases + (i < profiles % databases) for i in range(databases)]
    serial = 0
    for database_id, count in zip(database_ids, shares, strict=True):
        _load_profiles(platform, rng, database_id, count, serial)
        serial += count
    for number in range(segments):
        _add_segment(platform, rng, database_ids[number % databases], number)
    for number in range(relations):
        _add_relation(platform, rng, database_ids[number % databases])
    for _ in range(senders):
        _add_sender(platform, rng)


def _load_profiles(
    platform: Platform, rng: random.Random, database_id: int, count: int, serial: int
) -> None:
    database = platform.database(database_id)
    ids = [f"{rng.getrandbits(96):024x}" for _ in range(count)]
    emails = [
        f"user{serial + n}@{_DOMAINS[n % len(_DOMAINS)]}"
        if rng.random() > 0.01
        else f"user{serial + n}.invalid"
        for n in range(count)
    ]
    phones = [f"+79{rng.randrange(10**9):09d}" if rng.random() < 0.7 else "" for _ in range(count)]
    fields: list[dict[str, Any]] = [
        {
            "age": rng.randint(18, 80),
            "city": rng.choice(_CITIES),
            "loyalty": rng.choice(_TIERS),
            "crm_id": str(100_000 + serial + n),
        }
        for n in range(count)
    ]
    suspended = [rng.random() < 0.01 for _ in range(count)]
    database.load(ids, emails, phones, fields, suspended)
    platform.register_loaded(database, ids)
    if not count:
        return
    for (_, channel), codes in database.subscriptions.items():
        weights = _WEIGHTS.get(channel, _WEIGHTS["push"])
        codes[-count:] = bytes(rng.choices(_CODES, weights, k=count))


def _add_segment(platform: Platform, rng: random.Random, database_id: int, number: int) -> None:
    if number % 2 == 0:
        ids = platform.databases[database_id].profile_ids
        size = int(len(ids) * rng.uniform(0.01, 0.2))
        platform.add_static_segment(database_id, rng.sample(ids, size))
        return
    kind = number % 3
    if kind == 0:
        low = rng.randint(18, 60)
        rule = Rule.between("age", low, low + rng.randint(5, 20))
    elif kind == 1:
        rule = Rule.equals("city", rng.choice(_CITIES))
    else:
        rule = Rule.one_of("loyalty", rng.sample(_TIERS, 2))
    platform.add_rule_segment(database_id, rule)


def _add_relation(platform: Platform, rng: random.Random, database_id: int) -> None:
    relation = platform.add_relation(database_id)
    ids = platform.databases[database_id].profile_ids
    for profile_id in rng.sample(ids, len(ids) // 20):
        top = {
            f"sku_{rng.randrange(10**6):06d}": rng.randint(1, 500) for _ in range(rng.randint(1, 3))
        }
        platform.set_relation_props(
            relation.id,
            profile_id,
            {"purchases": {"top": top, "sum": sum(top.values())}, "store": rng.choice(_CITIES)},
        )


def _add_sender(platform: Platform, rng: random.Random) -> None:
    sender = platform.add_sender()
    for _ in range(rng.randint(4, 12)):
        sender.rows.append(
            QueueRow(
                account_id=rng.choice((306, 307, 412)),
                campaign_id=rng.randint(4000, 5000),
                isp=rng.choice(_ISPS),
                hold=rng.choice((0, 0, rng.randint(1, 100))),
                new=rng.randint(0, 500),
                proc=rng.randint(0, 200),
                retry=rng.choice((0, rng.randint(1, 50))),
            )
        )
