"""When a deferred recipient is tried again, when it expires, and when its sender hears of the delay.

Exchange's knobs (research §8, Set-TransportConfig), read from `TransportConfig`:
- the first `transient_failure_retry_count` retries come quickly, starting at
  `transient_failure_retry_interval` (5 min) and doubling, never beyond `message_retry_interval`
  (15 min); after that the interval keeps doubling from `message_retry_interval` up to
  `MAX_BACKOFF_FACTOR` times it (an hour by default), as Postfix's maximal_backoff_time does,
  so a long outage costs few connections while a short one clears fast;
- no attempt is scheduled past the message's expiry (`message_expiration_timeout`, 2 days):
  the last one falls on it, and the queue scan then fails the recipient with 4.4.7 and an NDR;
- one delay DSN per recipient once `delay_notification_timeout` (4 h) has passed since arrival
  (RFC 3461 NOTIFY=DELAY); the queue remembers that it went out.
Loops are caught at receipt by the hop count, not here.
"""

from __future__ import annotations

from courriel.org.model import TransportConfig

MAX_BACKOFF_FACTOR = 4
EXPIRED_STATUS = "4.4.7"  # RFC 3463 §3.5: delivery time expired


def retry_delay(attempts: int, config: TransportConfig) -> float:
    """Seconds to wait after the `attempts`-th failed attempt (1 for the first)."""
    attempts = max(attempts, 1)
    quick = config.transient_failure_retry_count
    if attempts <= quick:
        return float(
            min(config.transient_failure_retry_interval * 2 ** (attempts - 1), config.message_retry_interval)
        )
    factor = min(2 ** (attempts - quick - 1), MAX_BACKOFF_FACTOR)
    return float(config.message_retry_interval * factor)


def next_attempt(attempts: int, now: float, expires_at: float, config: TransportConfig) -> float:
    """When to try again: the backoff, but never after the expiry time."""
    return min(now + retry_delay(attempts, config), max(expires_at, now))


def is_expired(expires_at: float, now: float) -> bool:
    return now >= expires_at


def expiry_error(last_error: str | None) -> str:
    """The reply an expired recipient is failed with; Exchange says `550 4.4.7 QUEUE.Expired`."""
    reason = f" Last error: {last_error}" if last_error else ""
    return f"550 {EXPIRED_STATUS} Message expired: it could not be delivered in time.{reason}"


def delay_notice_due(received_at: float, already_sent: bool, now: float, config: TransportConfig) -> bool:
    """A recipient still waiting after DelayNotificationTimeout gets one delay DSN, never two."""
    return not already_sent and now - received_at >= config.delay_notification_timeout
