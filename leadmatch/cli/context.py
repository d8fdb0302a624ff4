"""What every command shares: the workspace or service it talks to, and the prompts."""

from __future__ import annotations

import getpass
import sys
from pathlib import Path
from typing import Optional

from leadmatch.cli import backends as client
from leadmatch.errors import InputError
from leadmatch.gallery import galleries as galleries
from leadmatch.record.workspace import Workspace, default_home, open_workspace
from leadmatch.search import probes


class State:
    home: Path = default_home()
    server: str | None = None


def workspace() -> Workspace:
    return open_workspace(State.home)


def backend():
    """Where commands go: the leadmatch service (--server) or, in direct mode, the workspace itself."""
    return client.backend(State.home, State.server)


def local_only(command: str, why: str, hint: str = "run it without --server") -> None:
    """Refuse --server for a command that works on this machine by nature, saying why."""
    if State.server:
        raise InputError(f"{command} does not go through --server: {why}", hint)


def new_file(target: Path, force: bool) -> None:
    """Refuse, before any work, to write over an existing file without --force, or into a missing folder."""
    target = Path(target)
    if target.is_dir():
        raise InputError(f"{target} is a folder", "give a file name with --out")
    if target.exists() and not force:
        raise InputError(f"{target} already exists", "pass --force to replace it, or choose another --out")
    if not target.parent.is_dir():
        raise InputError(f"no folder {target.parent} to write {target.name} in", "create it or choose another --out")


def read_password(from_stdin: bool, confirm: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    if not sys.stdin.isatty():
        raise InputError("no terminal to ask for the password on", "pass --password-stdin and pipe it in")
    first = getpass.getpass("password: ")
    if confirm and getpass.getpass("again: ") != first:
        raise InputError("the two passwords differ", "try again")
    return first


def parse_face(value: Optional[str], option: str = "--face"):
    """--face: a number from 1, 'largest' or 'central' (the pick a search and an evaluation make alike); --track:
    a number from 1 or 'largest'."""
    words = probes.FACE_CHOICES if option == "--face" else ("largest",)
    if value is None or value in words:
        return value
    try:
        return int(value)
    except ValueError:
        raise InputError(f"{option} {value!r} is not a number", f"give a number from 1, or {' or '.join(words)}") from None
