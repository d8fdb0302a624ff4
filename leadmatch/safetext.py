"""Text that reaches a terminal, a log, a CSV cell or the record: one rule for what a name may hold, one way to
show any stored string safely.

A terminal obeys control characters: ESC starts a sequence that can clear the screen or recolour it, a newline
starts what looks like a new audit line, U+202E turns the rest of a name around. So names (user, subject,
gallery, case number, purpose, course, reference) may hold none of them; free text (notes, justifications,
evidence) may also hold tabs and line breaks; and every stored string is shown through `shown`, which writes
each such character as a visible escape (\\x1b, \\n, \\u202e), so old records and refused attempts cannot
style or forge anything either.

Zero-width characters (U+200B–U+200D, U+2060, U+FEFF) are refused in names, since they make two names that
look the same ("chief" and "chi\\u200bef"), but allowed in free text, where joiners shape some scripts.
"""

from __future__ import annotations

import re

from leadmatch.errors import InputError

#: Bidirectional controls: embeddings and overrides (U+202A–U+202E), isolates (U+2066–U+2069), the marks.
BIDI = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
ZERO_WIDTH = "\u200b\u200c\u200d\u2060\ufeff"
#: Line and paragraph separators: a line break to some terminals and log viewers.
SEPARATORS = "\u2028\u2029"
_CONTROLS = "".join(chr(c) for c in (*range(0x00, 0x20), 0x7f, *range(0x80, 0xa0)))
FREE_TEXT_ALLOWED = "\t\n\r"

_NOT_IN_NAMES = _SHOWN = re.compile(f"[{re.escape(_CONTROLS + BIDI + ZERO_WIDTH + SEPARATORS)}]")
_NOT_IN_TEXT = re.compile(f"[{re.escape(''.join(c for c in _CONTROLS if c not in FREE_TEXT_ALLOWED) + BIDI + SEPARATORS)}]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}
#: A CSV cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(…), +cmd|…).
_FORMULA_START = ("=", "+", "-", "@")


def _escape(char: str) -> str:
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def shown(value) -> str:
    """Any stored value as text safe for a terminal or a log line: control, direction, zero-width and
    line-separator characters become visible escapes (ESC → \\x1b, newline → \\n, U+202E → \\u202e);
    everything else, accents and other scripts included, is kept. None becomes ''."""
    if value is None:
        return ""
    return _SHOWN.sub(lambda m: _escape(m.group()), str(value))


def unsafe_char(value: str, *, free_text: bool = False) -> str | None:
    """The first character `value` may not hold (names: no control, direction or zero-width characters; free
    text: tabs and line breaks allowed besides), or None when it is clean."""
    found = (_NOT_IN_TEXT if free_text else _NOT_IN_NAMES).search(value or "")
    return found.group() if found else None


def is_safe_name(value: str) -> bool:
    """True when `value` holds no control, direction or zero-width character."""
    return unsafe_char(value) is None


def check_name(value: str, what: str, hint: str = "type it again without control characters") -> str:
    """`value` unchanged, or an InputError naming `what` and the character (escaped) it may not hold."""
    bad = unsafe_char(value)
    if bad is not None:
        raise InputError(f"{what} {shown(value)!r} holds a control or text-direction character ({_escape(bad)})",
                         hint)
    return value


def check_text(value: str, what: str) -> str:
    """Free text (a note, a justification): `value` unchanged, or an InputError naming `what`. Tabs and line
    breaks are allowed here (and escaped when shown); other control and direction characters are not."""
    bad = unsafe_char(value, free_text=True)
    if bad is not None:
        raise InputError(f"{what} holds a control or text-direction character ({_escape(bad)})",
                         "type it again without control characters")
    return value


def csv_cell(value) -> str:
    """A value for a CSV cell: shown safely, and with a leading ' when a spreadsheet would read it as a
    formula (it starts with = + - @)."""
    if isinstance(value, (bool, int, float)):
        return str(value)
    text = shown(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def json_text(dumped: str) -> str:
    """JSON text (as json.dumps wrote it with ensure_ascii=False) with direction, zero-width, separator, DEL
    and C1 characters written as \\u escapes (\\u202e): the same data to a program, nothing a terminal would
    obey. (C0 controls are escaped by json.dumps itself.)"""
    return re.sub(f"[{re.escape(BIDI + ZERO_WIDTH + SEPARATORS + _CONTROLS[0x20:])}]",
                  lambda m: f"\\u{ord(m.group()):04x}", dumped)


def shown_keeping_lines(value) -> str:
    """Like `shown`, but line breaks stay line breaks: for whole outputs laid out in several lines, whose
    stored values went through `shown` (or `shown_all`) already."""
    return "\n".join(shown(line) for line in str(value).split("\n"))


def shown_all(data):
    """`data` (dicts, lists, tuples, strings, numbers) with every string in it passed through `shown`: a
    record ready to print line by line, where a stored newline must not start a line of its own."""
    if isinstance(data, str):
        return shown(data)
    if isinstance(data, dict):
        return {key: shown_all(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return type(data)(shown_all(value) for value in data)
    return data


def plural(count: int, one: str, many: str | None = None) -> str:
    """'1 entry', '2 entries', '0 searches': a count and the word that goes with it (`many` defaults to one+s).
    Every front end and the library's own sentences count this way."""
    return f"{count} {one if count == 1 else (many or one + 's')}"
