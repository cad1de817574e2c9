"""Trying a message again after a temporary failure: exponential backoff, or the wait the server asked for.

Used by every outgoing channel (email, Slack), so that the same failure is waited out the same way everywhere.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

T = TypeVar("T")


class Failure(Exception):
    """One try failed. `retryable`: another try may succeed; `retry_after`: the seconds the server asked us to
    wait (a 429's Retry-After), which replaces the backoff."""

    def __init__(self, message: str, *, retryable: bool, retry_after: float | None = None):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after


class GaveUp(Exception):
    """The last `failure`, after `attempts` tries (1 when it was not retryable)."""

    def __init__(self, failure: Failure, attempts: int):
        super().__init__(str(failure))
        self.failure = failure
        self.attempts = attempts


@dataclass(frozen=True)
class Backoff:
    """`attempts` tries at most, waiting `base_seconds` × 2^(try - 1) between them; a server's own wait is
    honoured up to `max_retry_after_seconds`. `sleep` is injectable so that tests record the waits."""

    attempts: int
    base_seconds: float
    max_retry_after_seconds: float = 60.0
    sleep: Callable[[float], None] = field(default=time.sleep)

    def run(self, call: Callable[[], T], *,
            on_retry: Callable[[int, Failure, float], None] = lambda *_: None) -> tuple[T, int]:
        """`call()` and the number of tries it took. `call` raises Failure for what went wrong; anything else
        propagates at once. `on_retry(try, failure, delay)` is told before each wait (for logging).
        Raises GaveUp when the failure is final or the tries are used up."""
        attempts = max(self.attempts, 1)
        for attempt in range(1, attempts + 1):
            try:
                return call(), attempt
            except Failure as failure:
                if not failure.retryable or attempt == attempts:
                    raise GaveUp(failure, attempt) from None
                delay = self.delay(attempt, failure.retry_after)
                on_retry(attempt, failure, delay)
                self.sleep(delay)
        raise AssertionError("unreachable")  # the loop returns or raises

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return min(retry_after, self.max_retry_after_seconds)
        return self.base_seconds * 2 ** (attempt - 1)
