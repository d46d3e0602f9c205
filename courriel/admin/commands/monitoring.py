"""Message tracking (Get-MessageTrackingLog) and queues (Get-Queue, Get-Message, Retry-Queue,
Suspend-Message, Resume-Message, Remove-Message) for the admin faces.

Both read what the transport writes on this server; the transport modules are imported when a
command runs, so the directory commands work on a server where the transport is not installed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from courriel.config import ServerConfig

DEFAULT_RESULT_SIZE = 1000  # Get-MessageTrackingLog -ResultSize default (research §8)


def tracking_dir(config: ServerConfig) -> Path:
    """Where the transport writes this server's message tracking log (transport/tracking.py's
    `search_tracking` reads it)."""
    return config.data_dir / "logs" / "tracking"


async def list_queues(config: ServerConfig) -> list[dict[str, Any]]:
    from courriel.transport.queue.inspect import list_queues as inspect_queues

    return await inspect_queues(config)


async def list_messages(config: ServerConfig, queue: str | None = None) -> list[dict[str, Any]]:
    from courriel.transport.queue.inspect import list_messages as inspect_messages

    return await inspect_messages(config, queue=queue)


async def retry_queue(config: ServerConfig, queue: str | None, all: bool = False) -> list[dict[str, Any]]:
    from courriel.transport.queue import manage

    return await manage.retry(config, queue, all)


async def suspend_message(
    config: ServerConfig, message: str, queue: str | None = None
) -> list[dict[str, Any]]:
    from courriel.transport.queue import manage

    return await manage.suspend(config, message, queue)


async def resume_message(
    config: ServerConfig, message: str, queue: str | None = None
) -> list[dict[str, Any]]:
    from courriel.transport.queue import manage

    return await manage.resume(config, message, queue)


async def remove_message(config: ServerConfig, message: str, with_ndr: bool = False) -> list[dict[str, Any]]:
    from courriel.transport.queue import manage

    return await manage.remove(config, message, with_ndr)


async def show_message(config: ServerConfig, message: str) -> dict[str, Any]:
    from courriel.transport.queue import manage

    return await manage.show(config, message)
