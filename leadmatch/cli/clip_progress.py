"""A clip's analysis as the terminal shows it: the library reports (seconds analysed, clip duration) through a
callback; this shows it on stderr — a rich bar on a terminal (gone once done), plain lines when asked for
off a terminal (`search --progress`), so a script reading stderr otherwise gets only the one-line answer."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from leadmatch.cli.render import err

#: Off a terminal, a line at every this many percent of the clip.
LINE_STEP = 25


@contextmanager
def clip_progress(wanted: bool | None) -> Iterator[Callable[[float, float], None] | None]:
    """Yield the `progress(seconds_done, duration_s)` callback for a clip search, or None for no progress.
    `wanted`: None — a bar on a terminal only; True — a bar on a terminal, else plain lines; False — none."""
    if wanted is False or (wanted is None and not err.is_terminal):
        yield None
        return
    if err.is_terminal:
        with Progress(TextColumn("analysing the clip", markup=False), BarColumn(),
                      TextColumn("{task.completed:.1f} of {task.total:.1f} s", markup=False), TimeRemainingColumn(),
                      console=err, transient=True) as bar:
            task = bar.add_task("clip", total=None)
            yield lambda done, total: bar.update(task, completed=min(done, total or done), total=total or None)
        return
    yield PlainLines()


class PlainLines:
    """Progress as plain lines on stderr: one at each LINE_STEP % of the clip (or every 10 s of an unknown
    length), never two for the same step."""

    def __init__(self) -> None:
        self.shown = -1

    def __call__(self, done_s: float, duration_s: float) -> None:
        step = int(100 * min(done_s, duration_s) / duration_s) // LINE_STEP if duration_s > 0 else int(done_s // 10)
        if step <= self.shown:
            return
        self.shown = step
        if duration_s > 0:
            err.print(f"analysing the clip: {step * LINE_STEP} % ({done_s:.1f} of {duration_s:.1f} s)")
        else:
            err.print(f"analysing the clip: {done_s:.1f} s so far")
