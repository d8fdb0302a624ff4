"""Calendar dates as the record keeps them (YYYY-MM-DD), checked where a person types one."""

from __future__ import annotations

from datetime import date

from leadmatch.errors import InputError


def parse_date(text: str, what: str) -> str:
    """Validate YYYY-MM-DD; return it normalised."""
    try:
        return date.fromisoformat(text.strip()).isoformat()
    except (ValueError, AttributeError):
        raise InputError(f"{what} {text!r} is not a date", "write it as YYYY-MM-DD",
                         field=what.lstrip("-").replace("-", "_")) from None
