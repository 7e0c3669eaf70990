"""Keeping credentials out of messages: URLs shown without their secrets, and known secrets scrubbed from text.

A connection URL carries its secrets in three places: a password (`user:password@`), the
query string (`?token=...`, `?password=...`) and, for a webhook, the path itself (Slack's
`/services/<team>/<bot>/<token>` holds the token). `url` shows a URL with all three hidden; `text`
hides every URL found in a message the same way, and also every secret `register`ed
(the password alone turns up in driver errors, without its URL).

The DAG file hands the same secrets to Airflow's secrets masker, which scrubs the task
logs; this module covers batchpred's own messages, tables and reports, Airflow or not.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import parse_qsl, unquote, urlsplit

HIDDEN = "***"
# Shorter strings are too likely to be ordinary words or numbers to scrub everywhere
# (Airflow's masker draws the same line).
MIN_SECRET_LENGTH = 5
# A URL with an authority (scheme://...), up to whitespace or a quote, less trailing punctuation
# of the sentence around it ("(see https://h/x)." keeps its ").").
_URL = re.compile(r"""\b[a-zA-Z][a-zA-Z0-9+.\-]*://[^\s'"<>`]*[^\s'"<>`).,;:]""")

# Query parameters whose values are secrets wherever they appear (others, like sslmode, are words).
_SENSITIVE_KEY = re.compile(r"pass|pwd|token|secret|key|sig|auth|cred|session", re.IGNORECASE)

_secrets: set[str] = set()
_pattern: re.Pattern[str] | None = None
_lock = threading.Lock()


def url(value: str) -> str:
    """`value` as it may be shown: user and host kept; password, query and fragment hidden; for
    http(s), the path hidden too (a webhook's path is its token). Not a URL: returned as is."""
    if "://" not in value:
        return value
    try:
        parts = urlsplit(value)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return value.split("://", 1)[0] + "://" + HIDDEN
    netloc = f"[{host}]" if ":" in host else host
    netloc += f":{port}" if port else ""
    if parts.username is not None:
        netloc = unquote(parts.username) + (f":{HIDDEN}" if parts.password is not None else "") + "@" + netloc
    path = parts.path
    if parts.scheme.lower() in ("http", "https") and path not in ("", "/"):
        path = "/" + HIDDEN
    return (
        f"{parts.scheme}://{netloc}{path}"
        + (f"?{HIDDEN}" if parts.query else "")
        + (f"#{HIDDEN}" if parts.fragment else "")
    )


def secrets_of(value: str) -> list[str]:
    """The secret parts of a URL, for a masker: its password, the values of query parameters named
    like secrets (token, password, key, ...), an http(s) path, and the URL itself if it holds any."""
    if "://" not in value:
        return []
    try:
        parts = urlsplit(value)
        found = [parts.password or "", *(v for k, v in parse_qsl(parts.query) if _SENSITIVE_KEY.search(k))]
    except ValueError:
        return [value]
    if parts.scheme.lower() in ("http", "https") and parts.path not in ("", "/"):
        # The whole path, and each segment that looks like a token; not a plain word such as
        # "batchpred" in /hooks/batchpred, which would blank that word in every message.
        found += [parts.path, *(seg for seg in parts.path.split("/") if _looks_like_token(seg))]
    found = [s for s in {*found, *map(unquote, found)} if len(s) >= MIN_SECRET_LENGTH]
    return sorted({value, *found}) if found else []


def _looks_like_token(segment: str) -> bool:
    """A path segment long enough and mixed enough to be a credential rather than a word."""
    return len(segment) >= 16 or (len(segment) >= 8 and any(c.isdigit() for c in segment))


def register(*urls: str | None) -> list[str]:
    """Remember the secrets of these URLs for `text` (for the whole process). Returns them."""
    global _pattern
    found = [s for u in urls if u for s in secrets_of(u)]
    with _lock:
        if not set(found) <= _secrets:
            _secrets.update(found)
            ordered = sorted(_secrets, key=len, reverse=True)  # a URL before the path inside it
            _pattern = re.compile("|".join(re.escape(s) for s in ordered))
    return found


def text(message: object) -> str:
    """`message` as a string with every URL shown by `url` and every registered secret hidden."""
    out = _URL.sub(lambda m: url(m.group(0)), str(message))
    pattern = _pattern
    return pattern.sub(HIDDEN, out) if pattern is not None else out


class RedactingFilter(logging.Filter):
    """Rewrites a log record's message through `text` (httpx logs every request's full URL)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = text(message)
        if clean != message:
            record.msg, record.args = clean, None
        return True


_FILTER = RedactingFilter()


def guard_logger(name: str) -> None:
    """Pass the records of logger `name` through `text` (idempotent)."""
    logger = logging.getLogger(name)
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
