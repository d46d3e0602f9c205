"""`courriel tracking search` (Get-MessageTrackingLog) and `courriel queue …`: list, messages (Get-Queue,
Get-Message), retry (Retry-Queue), suspend, resume, remove (Suspend-, Resume-, Remove-Message), show."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from typing import Any

from courriel.admin.cli.arguments import UsageError, leaf, noun
from courriel.admin.cli.render import emit, print_json, print_list, print_table
from courriel.admin.commands import monitoring
from courriel.config import load_config

TRACKING_COLUMNS = (
    ("timestamp", "Timestamp"),
    ("event_id", "EventId"),
    ("source", "Source"),
    ("message_id", "MessageId"),
    ("internal_message_id", "InternalMessageId"),
    ("sender", "Sender"),
    ("recipients", "Recipients"),
    ("connector", "ConnectorId"),
    ("client_ip", "ClientIp"),
    ("server", "ServerHostname"),
    ("detail", "Detail"),
)
QUEUE_COLUMNS = (
    ("identity", "Identity"),
    ("delivery_type", "DeliveryType"),
    ("status", "Status"),
    ("message_count", "MessageCount"),
    ("next_hop", "NextHopDomain"),
    ("next_retry", "NextRetryTime"),
    ("last_error", "LastError"),
)
CHANGE_COLUMNS = (
    ("identity", "Identity"),
    ("from", "FromAddress"),
    ("queues", "Queue"),
    ("status", "Status"),
    ("recipients", "Recipients"),
    ("subject", "Subject"),
)
RECIPIENT_COLUMNS = (
    ("address", "Address"),
    ("status", "Status"),
    ("queue", "Queue"),
    ("attempts", "Attempts"),
    ("next_attempt", "NextRetryTime"),
    ("last_error", "LastError"),
)


def _when(text: str) -> datetime:
    """An ISO 8601 date or time; without a zone it is UTC, as the tracking log is."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 date or time") from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    tracking = noun(sub, "tracking", "the message tracking log")
    search = leaf(tracking, "search", "search this server's message tracking log", run_tracking, listing=True)
    search.add_argument("--sender", metavar="ADDRESS")
    search.add_argument("--recipient", metavar="ADDRESS")
    search.add_argument("--message-id", metavar="ID")
    search.add_argument("--event-id", metavar="EVENT", help="RECEIVE, DELIVER, SEND, FAIL, DEFER, DSN …")
    search.add_argument("--start", type=_when, metavar="WHEN", help="ISO 8601, UTC unless a zone is given")
    search.add_argument("--end", type=_when, metavar="WHEN")
    search.add_argument(
        "--limit",
        type=_positive,
        default=monitoring.DEFAULT_RESULT_SIZE,
        metavar="N",
        help=f"at most N events (default {monitoring.DEFAULT_RESULT_SIZE})",
    )

    queue = noun(sub, "queue", "this server's transport queues")
    leaf(queue, "list", "list the queues (Get-Queue)", run_queue_list, listing=True)
    messages = leaf(queue, "messages", "list queued messages (Get-Message)", run_queue_messages, listing=True)
    messages.add_argument("queue", nargs="?", metavar="QUEUE", help="only this queue")
    retry = leaf(
        queue, "retry", "attempt a queue's waiting messages now (Retry-Queue)", run_queue_retry, listing=True
    )
    retry.add_argument(
        "queue", nargs="?", metavar="QUEUE", help="server\\Name or Name (Unreachable, example.com …)"
    )
    retry.add_argument("--all", action="store_true", help="every queue")
    for verb, text, handler in (
        ("suspend", "hold a message in its queues (Suspend-Message)", run_queue_suspend),
        ("resume", "release a suspended message (Resume-Message)", run_queue_resume),
    ):
        parser = leaf(queue, verb, text, handler, listing=True)
        parser.add_argument("message", metavar="MESSAGE", help="queue id (or server\\queue\\id)")
        parser.add_argument("--queue", metavar="QUEUE", help="only its recipients in this queue")
    remove = leaf(
        queue, "remove", "delete a message from the queues (Remove-Message)", run_queue_remove, listing=True
    )
    remove.add_argument("message", metavar="MESSAGE", help="queue id (or server\\queue\\id)")
    remove.add_argument("--with-ndr", action="store_true", help="send the sender a non-delivery report")
    show = leaf(
        queue, "show", "a queued message: envelope, recipients, headers", run_queue_show, listing=True
    )
    show.add_argument("message", metavar="MESSAGE", help="queue id (or server\\queue\\id)")


def run_tracking(args: argparse.Namespace) -> int:
    from courriel.transport.tracking import search_tracking  # the transport, only when it runs

    events = search_tracking(
        monitoring.tracking_dir(load_config(args.config)),
        sender=args.sender,
        recipient=args.recipient,
        message_id=args.message_id,
        event_id=args.event_id,
        start=args.start,
        end=args.end,
        limit=args.limit,
    )
    emit(events, TRACKING_COLUMNS, args.json)
    return 0


async def run_queue_list(args: argparse.Namespace) -> int:
    emit(await monitoring.list_queues(load_config(args.config)), QUEUE_COLUMNS, args.json)
    return 0


async def run_queue_messages(args: argparse.Namespace) -> int:
    rows = await monitoring.list_messages(load_config(args.config), args.queue)
    emit(rows, _columns(rows), args.json)
    return 0


async def run_queue_retry(args: argparse.Namespace) -> int:
    if args.queue is None and not args.all:
        raise UsageError("name a queue or give --all")
    if args.queue is not None and args.all:
        raise UsageError("give a queue or --all, not both")
    changed = await monitoring.retry_queue(load_config(args.config), args.queue, args.all)
    emit(changed, CHANGE_COLUMNS, args.json)
    return 0


async def run_queue_suspend(args: argparse.Namespace) -> int:
    emit(
        await monitoring.suspend_message(load_config(args.config), args.message, args.queue),
        CHANGE_COLUMNS,
        args.json,
    )
    return 0


async def run_queue_resume(args: argparse.Namespace) -> int:
    emit(
        await monitoring.resume_message(load_config(args.config), args.message, args.queue),
        CHANGE_COLUMNS,
        args.json,
    )
    return 0


async def run_queue_remove(args: argparse.Namespace) -> int:
    changed = await monitoring.remove_message(load_config(args.config), args.message, args.with_ndr)
    emit(changed, CHANGE_COLUMNS, args.json)
    return 0


async def run_queue_show(args: argparse.Namespace) -> int:
    shown = await monitoring.show_message(load_config(args.config), args.message)
    if args.json:
        print_json(shown)
        return 0
    envelope = {k: v for k, v in shown.items() if k not in ("recipients", "headers", "envelope")}
    print_list(
        [
            ("".join(p.capitalize() for p in k.split("_")), "" if v is None else str(v))
            for k, v in envelope.items()
        ]
    )
    print()
    print_table(shown["recipients"], RECIPIENT_COLUMNS)
    print()
    print(shown["headers"].rstrip("\r\n").replace("\r\n", "\n"))
    return 0


def _columns(rows: list[dict[str, Any]]) -> tuple[tuple[str, str], ...]:
    """Get-Message's fields are the queue's to choose: show the keys the rows have, in their order."""
    keys: dict[str, None] = {}
    for row in rows:
        keys.update(dict.fromkeys(row))
    return tuple((k, "".join(p.capitalize() for p in k.split("_"))) for k in keys)
