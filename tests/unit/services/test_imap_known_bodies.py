"""FETCH of bodies a client listed before (store.py `bodies_now`): answered from the rows the
store has seen, with no query and no thread hop, and never for a message another session
expunged (RFC 2180 §4.1.2). Over a socket, on the harness of the IMAP service's tests."""

from __future__ import annotations

from collections.abc import Sequence

from tests.integration.protocol_env import deliver
from tests.integration.test_imap_service import Env, email
from tests.integration.test_imap_service import env as env  # the fixture


async def test_bodies_of_listed_messages_and_an_expunge_by_another_session(env: Env) -> None:
    """Bodies fetched after a listing come from the rows the store has seen (no query); a
    message another session expunged is still refused (RFC 2180 §4.1.2), not served."""
    for n in (1, 2, 3):
        await deliver(env.store, env.alice, email(n, f"body of {n}"), f"b{n}")
    answered_now: list[object] = []
    bodies_now = env.store.bodies_now

    def spy(folder_id: int, uids: Sequence[int]) -> object:
        found = bodies_now(folder_id, uids)
        answered_now.append(found is not None)
        return found

    env.store.bodies_now = spy  # type: ignore[method-assign,assignment]
    a, b = await env.line_client(), await env.line_client()
    await a.run("SELECT INBOX")
    await b.run("SELECT INBOX")
    listing = await a.run("FETCH 1:3 (UID RFC822.SIZE)")
    assert len(listing) == 4 and listing[-1] == "OK FETCH completed"
    for n in (1, 2, 3):
        body = await a.run(f"UID FETCH {n} (BODY.PEEK[])")
        assert any(f"body of {n}" in line for line in body) and body[-1] == "OK FETCH completed"
    seen = await a.run("FETCH 2 (BODY[])")  # not PEEK: \Seen is set and FLAGS told
    assert any("body of 2" in line for line in seen) and any("FLAGS (\\Seen)" in line for line in seen)
    # No query for the PEEKs: the listing read the rows. The STORE of \\Seen is a change to
    # look at first, and so is the expunge below: those went to the store.
    assert answered_now == [True] * 3
    await b.run("STORE 1 +FLAGS.SILENT (\\Deleted)")
    await b.run("EXPUNGE")
    gone = await a.run("FETCH 1 (BODY.PEEK[])")
    assert gone[-1].startswith("NO [EXPUNGEISSUED]") and not any("body of 1" in line for line in gone)
    assert answered_now == [True] * 3
    await a.close()
    await b.close()
