"""Retry with exponential backoff for transient failures (HTTP 5xx, resets, timeouts)."""

from __future__ import annotations

import logging
import random
import time
from dataclasses import dataclass
from typing import Callable, TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class TransientError(Exception):
    """Raised by an adapter for a failure worth retrying (the cause is chained)."""


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    Attributes:
        attempts: Total tries, the first one included.
        base_delay_s: Delay before the second try; doubles each time.
        max_delay_s: Upper bound for one delay.
    """

    attempts: int = 5
    base_delay_s: float = 0.5
    max_delay_s: float = 20.0

    def delay(self, attempt: int) -> float:
        """Seconds to sleep after failed try number ``attempt`` (1-based), with jitter."""
        bound = min(self.max_delay_s, self.base_delay_s * 2 ** (attempt - 1))
        return bound * (0.5 + random.random() / 2)


DEFAULT_POLICY = RetryPolicy()


def call_with_retry(
    fn: Callable[[], T],
    *,
    what: str,
    policy: RetryPolicy = DEFAULT_POLICY,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``fn``; on ``TransientError`` retry with backoff, then re-raise the last cause."""
    for attempt in range(1, policy.attempts + 1):
        try:
            return fn()
        except TransientError as exc:
            if attempt == policy.attempts:
                cause = exc.__cause__ or exc
                raise cause from exc
            pause = policy.delay(attempt)
            log.warning("%s failed (%s); retry %d/%d in %.1fs", what, exc, attempt, policy.attempts - 1, pause)
            sleep(pause)
    raise AssertionError("unreachable")
