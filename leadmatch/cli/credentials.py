"""Where the command line keeps session tokens for the operating-system user (like `gh auth login`).

One token per workspace, in `$LEADMATCH_CONFIG_DIR` (default `~/.config/leadmatch`), file mode 0600. The
database keeps only each token's sha256.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def config_dir() -> Path:
    env = os.environ.get("LEADMATCH_CONFIG_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "leadmatch"


def _file() -> Path:
    return config_dir() / "sessions.json"


def _load() -> dict:
    """The kept tokens by workspace. A file that is unreadable or not leadmatch's shape (hand-edited, or
    another program's) holds no usable session: its entries are ignored, so the user is asked to sign in."""
    try:
        data = json.loads(_file().read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: token for key, token in data.items() if isinstance(key, str) and isinstance(token, str) and token}


def _save(data: dict) -> None:
    folder = config_dir()
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    temp = folder / f".sessions.{os.getpid()}.tmp"
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle)
    os.replace(temp, _file())


def _key(home: Path | str) -> str:
    """A workspace by its resolved path, or a service by its URL (client mode, `--server`)."""
    return home if isinstance(home, str) and "://" in home else str(Path(home).resolve())


def token_for(home: Path) -> str | None:
    return _load().get(_key(home))


def remember(home: Path, token: str) -> None:
    data = _load()
    data[_key(home)] = token
    _save(data)


def forget(home: Path) -> str | None:
    data = _load()
    token = data.pop(_key(home), None)
    _save(data)
    return token
