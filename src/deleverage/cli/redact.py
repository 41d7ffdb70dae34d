"""Secrets never reach a message: URL passwords are masked before anything is printed."""

from __future__ import annotations

import re

__all__ = ["redact"]


_SECRET_IN_URL = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^@\s]+@")


def redact(text: str) -> str:
    """``text`` with the password of every URL in it (``scheme://user:password@host``) masked.

    Examples
    --------
    >>> redact("`--db` must be reachable, was 'postgresql://risk:hunter2@db/risk'")
    "`--db` must be reachable, was 'postgresql://risk:***@db/risk'"
    """
    return _SECRET_IN_URL.sub(r"\g<head>***@", text)
