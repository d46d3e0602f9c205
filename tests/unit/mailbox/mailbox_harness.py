"""Helpers shared by the mailbox store tests: message bytes, delivery requests, bulk fill."""

from __future__ import annotations

from datetime import UTC, datetime

from courriel.mailbox.model import DeliveryRequest, DeliveryResult
from courriel.mailbox.store import MailboxDatabase
from courriel.storage.blobs import BlobRef

GUID = "7f1c0c9e-mbx-0001"
OWNER = "alice@example.com"
WHEN = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def message(n: int, size: int = 200) -> bytes:
    head = f"Subject: message {n}\r\nMessage-ID: <{n}@example.com>\r\n\r\n".encode()
    return head + b"x" * max(0, size - len(head))


def request(blob: BlobRef, key: str, **overrides: object) -> DeliveryRequest:
    fields: dict[str, object] = {
        "guid": GUID,
        "owner": OWNER,
        "blob": blob,
        "delivery_key": key,
        "internaldate": WHEN,
    }
    fields.update(overrides)
    return DeliveryRequest(**fields)  # type: ignore[arg-type]


async def fill(
    store: MailboxDatabase, count: int, *, folder: str = "INBOX", prefix: str = "m", size: int = 200
) -> list[DeliveryResult]:
    """Deliver `count` distinct messages in one transaction."""
    reqs = []
    for n in range(count):
        blob = store.blobs.put_sync(message(n, size) + prefix.encode())
        reqs.append(request(blob, f"{prefix}{n}", folder=folder))
    results = await store.deliver_many(reqs)
    assert all(r.status == "delivered" for r in results)
    return results
