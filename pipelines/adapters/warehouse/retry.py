"""Wait for something that is busy now but should not stay busy: one helper for every wait.

A DuckDB file held by another process, a PostgreSQL server that is restarting: each
is retried with exponential backoff until a deadline, then given up on with an
error that says what was waited for and for how long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")
log = logging.getLogger(__name__)


class Busy(Exception):
    """Raised by an attempt that may succeed later; `reason` says what is in the way."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def retry(
    attempt: Callable[[], T],
    *,
    seconds: float,
    gave_up: Callable[[str, float], Exception],
    waiting: str,
    first_delay: float = 0.1,
    max_delay: float = 2.0,
) -> T:
    """Call `attempt` until it returns, retrying while it raises `Busy`.

    Waits `first_delay`, doubling up to `max_delay`, for at most `seconds` in all, and
    logs one line (`waiting`, formatted with the first reason) when it starts to wait.
    After the deadline raises `gave_up(reason, seconds)`. Any other exception passes
    through at once.
    """
    deadline = time.monotonic() + seconds
    delay = first_delay
    announced = False
    while True:
        try:
            return attempt()
        except Busy as busy:
            if time.monotonic() + delay > deadline:
                raise gave_up(busy.reason, seconds) from None
            if not announced:
                log.warning(waiting.format(reason=busy.reason, seconds=seconds))
                announced = True
            time.sleep(delay)
            delay = min(delay * 2, max_delay)
