"""The message tracking log, read with `courriel tracking search … --json` (Get-MessageTrackingLog).

A message to a group and one of its members leaves RECEIVE (envelope sender and recipients,
connector, client IP), EXPAND (the group and its members) and DELIVER (each member once) events
that share the queue id; a submission to an external domain leaves RECEIVE and DEFER (no send
connector). The filters --message-id, --sender, --recipient and --event-id select what they say,
case-insensitively.
"""

from __future__ import annotations

import json
from typing import Any

from courriel.transport.receive import replies as R
from tests.integration.mailserver import PASSWORD, MailServer
from tests.integration.server_state import delivered_once, token, tracked, tracking
from tests.integration.smtp_wire import RawSmtp, client_tls, message, same

ALICE, BOB, TEAM = "alice@example.test", "bob@example.test", "team@example.test"
FRONTEND, CLIENT = "Default Frontend mx1", "Client Frontend mx1"


def send_to_team(server: MailServer, mark: str, sender: str) -> None:
    with RawSmtp(server.port("frontend"), source="127.0.0.9") as c:
        c.ehlo("tracked.sender.test")
        assert c.transaction(sender, [TEAM, ALICE], message(mark, sender=sender))[-1].code == 250
    delivered_once(server, [ALICE, BOB], mark)


def only(events: list[dict[str, Any]], event_id: str) -> dict[str, Any]:
    matching = [e for e in events if e["event_id"] == event_id]
    assert len(matching) == 1, f"{len(matching)} {event_id} events in {events}"
    return matching[0]


def test_receive_expand_and_deliver_events(mailserver: MailServer) -> None:
    mark = token("tracked")
    sender = f"{mark}@sender.test"
    send_to_team(mailserver, mark, sender)
    events = tracked(mailserver, f"<{mark}@sender.test>", {"RECEIVE", "EXPAND", "DELIVER"})
    assert {e["internal_message_id"] for e in events} == {events[0]["internal_message_id"]}
    assert all(e["sender"] == sender and e["message_id"] == f"<{mark}@sender.test>" for e in events)
    assert not {"FAIL", "DEFER"} & {e["event_id"] for e in events}
    receive = only(events, "RECEIVE")
    assert receive["recipients"] == [TEAM, ALICE]
    assert (receive["connector"], receive["client_ip"], receive["source"]) == (FRONTEND, "127.0.0.9", "SMTP")
    assert receive["subject"] == mark and receive["size"] > len(message(mark))  # the Received header counts
    expand = only(events, "EXPAND")
    assert expand["related"] == TEAM and sorted(expand["recipients"]) == [ALICE, BOB]
    delivered = [r for e in events if e["event_id"] == "DELIVER" for r in e["recipients"]]
    assert sorted(delivered) == [ALICE, BOB]  # each once, alice named twice in the envelope
    for deliver in (e for e in events if e["event_id"] == "DELIVER"):
        assert (deliver["connector"], deliver["client_ip"]) == (FRONTEND, "127.0.0.9")
        assert deliver["recipient_status"].startswith("250 ")


def test_submission_to_an_external_domain_is_deferred(mailserver: MailServer) -> None:
    mark = token("deferred")
    external = f"{mark}@external.test"
    with RawSmtp(mailserver.port("client")) as c:
        c.ehlo()
        c.starttls(client_tls(str(mailserver.config.tls_certificate)))
        c.ehlo()
        same(c.auth_plain(ALICE, PASSWORD), R.AUTH_OK)
        assert c.transaction(ALICE, [external], message(mark, sender=ALICE))[-1].code == 250
    events = tracked(mailserver, f"<{mark}@sender.test>", {"RECEIVE", "DEFER"})
    receive = only(events, "RECEIVE")
    assert (receive["sender"], receive["recipients"], receive["connector"]) == (ALICE, [external], CLIENT)
    defer = only(events, "DEFER")
    assert defer["recipients"] == [external]
    assert defer["recipient_status"] == "451 4.4.0 No send connector routes mail to external.test"


def test_filters(mailserver: MailServer) -> None:
    mark = token("filters")
    sender = f"{mark}@sender.test"
    send_to_team(mailserver, mark, sender)
    other = token("other")  # same recipients, another sender: must not show up under ours
    send_to_team(mailserver, other, f"{other}@sender.test")
    by_sender = tracked(mailserver, f"<{mark}@sender.test>", {"RECEIVE", "EXPAND", "DELIVER"})
    assert tracking(mailserver, "--sender", sender.upper()) == by_sender
    for_bob = tracking(mailserver, "--sender", sender, "--recipient", "BOB@example.test")
    assert {e["event_id"] for e in for_bob} == {"EXPAND", "DELIVER"}  # RECEIVE names team and alice
    assert all(BOB in e["recipients"] for e in for_bob)
    for_team = tracking(mailserver, "--recipient", TEAM, "--event-id", "RECEIVE")
    subjects = {e["subject"] for e in for_team}
    assert {mark, other} <= subjects and all(TEAM in e["recipients"] for e in for_team)
    delivers = tracking(mailserver, "--message-id", f"{mark}@sender.test", "--event-id", "deliver")
    assert delivers and {e["event_id"] for e in delivers} == {"DELIVER"}
    assert tracking(mailserver, "--sender", f"nobody-{mark}@sender.test") == []


def test_the_command_prints_the_same_as_a_process(mailserver: MailServer) -> None:
    """The queries above call the command's entry point in-process; the console command agrees."""
    mark = token("process")
    send_to_team(mailserver, mark, f"{mark}@sender.test")
    events = tracked(mailserver, f"<{mark}@sender.test>", {"RECEIVE", "EXPAND", "DELIVER"})
    result = mailserver.courriel("tracking", "search", "--message-id", f"<{mark}@sender.test>", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == events
