"""SEARCH pushdown: the SQL for each criterion agrees with the same tree evaluated in Python."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from types import SimpleNamespace

from courriel.mailbox import criteria as c
from courriel.mailbox.flags import ALL_SYSTEM, ANSWERED, DELETED, FLAGGED, SEEN
from courriel.mailbox.store import MailboxDatabase
from tests.unit.mailbox.mailbox_harness import message, request

KEYWORDS = ["$Junk", "$Forwarded", "Work", "a_b", "aXb"]  # "_" must not act as a LIKE wildcard
DAYS = [date(2026, 11, d) for d in range(1, 8)]


def random_criterion(rng: random.Random, depth: int = 0) -> c.Criterion:
    kind = rng.randrange(10 if depth < 3 else 7)
    if kind == 0:
        return c.Uids(frozenset(rng.sample(range(1, 70), rng.randrange(0, 12))))
    if kind == 1:
        return c.Flags(rng.choice([0, SEEN, FLAGGED, SEEN | DELETED]), rng.choice([0, ANSWERED, DELETED]))
    if kind == 2:
        return c.Keyword(rng.choice([*KEYWORDS, "work", "absent", "a%b", "A_B"]), rng.random() < 0.7)
    if kind == 3:
        return c.Size(rng.choice([None, 250, 400]), rng.choice([None, 300, 600]))
    if kind == 4:
        return c.Date(rng.choice(["before", "on", "since"]), rng.choice(DAYS), saved=rng.random() < 0.3)
    if kind == 5:
        return c.ModSeq(rng.randrange(1, 80))
    if kind == 6:
        return c.And(())
    if kind == 7:
        return c.And(tuple(random_criterion(rng, depth + 1) for _ in range(rng.randrange(1, 4))))
    if kind == 8:
        return c.Or(random_criterion(rng, depth + 1), random_criterion(rng, depth + 1))
    return c.Not(random_criterion(rng, depth + 1))


async def populate(store: MailboxDatabase, rng: random.Random) -> int:
    reqs = []
    for n in range(60):
        when = datetime.combine(rng.choice(DAYS), datetime.min.time(), UTC) + timedelta(
            seconds=rng.randrange(86400)
        )
        blob = await store.blobs.put(message(n, size=rng.randrange(200, 700)))
        keywords = tuple(rng.sample(KEYWORDS, rng.randrange(0, 3)))
        reqs.append(
            request(blob, f"s{n}", internaldate=when, flags=rng.randrange(ALL_SYSTEM + 1), keywords=keywords)
        )
    results = await store.deliver_many(reqs)
    folder_id = results[0].folder_id
    assert folder_id is not None
    for uid in rng.sample(range(1, 61), 20):
        await store.store_flags(folder_id, [uid], "add", FLAGGED)  # spread the MODSEQs
    return folder_id


async def test_sql_search_matches_python_evaluation(store: MailboxDatabase) -> None:
    rng = random.Random(20261128)
    folder_id = await populate(store, rng)
    metas = await store.message_meta(folder_id, list(range(1, 61)))
    rows = [
        SimpleNamespace(
            uid=m.uid,
            flags=m.flags,
            keywords=" ".join(m.keywords),
            size=m.size,
            internaldate=int(m.internaldate.timestamp()),
            saved=int(m.saved.timestamp()),
            modseq=m.modseq,
        )
        for m in metas
    ]
    nonempty = 0
    for _ in range(150):
        where = random_criterion(rng)
        expected = [row.uid for row in rows if c.matches(where, row)]
        assert await store.search(folder_id, where) == expected, where
        nonempty += bool(expected) and len(expected) < len(rows)
    assert nonempty > 30  # the random trees really discriminate


async def test_search_basics(store: MailboxDatabase) -> None:
    day = date(2026, 11, 3)
    noon = datetime(2026, 11, 3, 12, tzinfo=UTC)
    reqs = [
        request(
            await store.blobs.put(message(1, 300)), "a", internaldate=noon, flags=SEEN, keywords=("Work",)
        ),
        request(await store.blobs.put(message(2, 500)), "b", internaldate=noon - timedelta(days=1)),
        request(
            await store.blobs.put(message(3, 700)), "c", internaldate=noon + timedelta(days=1), flags=DELETED
        ),
    ]
    folder_id = (await store.deliver_many(reqs))[0].folder_id
    assert folder_id is not None
    assert await store.search(folder_id, c.And()) == [1, 2, 3]  # ALL
    assert await store.search(folder_id, c.Flags(absent=SEEN)) == [2, 3]  # UNSEEN
    assert await store.search(folder_id, c.Keyword("WORK")) == [1]
    assert await store.search(folder_id, c.Keyword("W_rk")) == []  # no LIKE wildcards leak through
    assert await store.search(folder_id, c.Keyword("Work", present=False)) == [2, 3]
    assert await store.search(folder_id, c.Size(larger=300)) == [2, 3]  # LARGER is strict
    assert await store.search(folder_id, c.Size(smaller=500)) == [1]
    assert await store.search(folder_id, c.Date("on", day)) == [1]
    assert await store.search(folder_id, c.Date("before", day)) == [2]
    assert await store.search(folder_id, c.Date("since", day)) == [1, 3]
    assert await store.search(folder_id, c.Or(c.Uids(frozenset({1})), c.Flags(present=DELETED))) == [1, 3]
    assert await store.search(folder_id, c.Not(c.Uids(frozenset(range(2, 100, 2))))) == [1, 3]
    scattered = frozenset(range(1, 400, 3))  # too many ranges for SQL: evaluated in Python
    assert not c.sql_friendly(c.Uids(scattered))
    assert await store.search(folder_id, c.Not(c.Uids(scattered))) == [2, 3]
    first = (await store.snapshot(folder_id)).modseqs[0]
    assert await store.search(folder_id, c.ModSeq(first + 1)) == [2, 3]
