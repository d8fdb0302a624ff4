"""The terminal the CLI prints on: a rich Console that never obeys a stored string.

Rich reads `[red]` in a string as markup and `:smile:` as an emoji code, and a terminal obeys ESC sequences and
U+202E; a user, subject or case name holding them must be printed, not obeyed. So markup and emoji codes are
off (the CLI styles with `style=`), and every string rendered, table cells included, goes through
`safetext.shown_keeping_lines`; values printed one record a line go through `safetext.shown` before, so their
own newlines are escaped too.
"""

from __future__ import annotations

from rich.console import Console

from leadmatch.safetext import shown_keeping_lines


class SafeConsole(Console):
    """A rich Console without markup or emoji codes, escaping control and direction characters of every string."""

    def __init__(self, **options) -> None:
        options.setdefault("highlight", False)
        super().__init__(markup=False, emoji=False, **options)

    def render_str(self, text: str, **options):
        return super().render_str(shown_keeping_lines(text), **options)
