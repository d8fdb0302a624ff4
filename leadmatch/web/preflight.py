"""The leadmatch service: the one process that owns the workspace. CLI and browser are its clients.

The rules hold against the people they bind only if those people cannot write the record themselves, so
the service runs as its own OS account and refuses to start on a workspace anyone else could open.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from leadmatch.errors import InputError, WorkspaceError
from leadmatch.governance import oversight, signin
from leadmatch.record.workspace import DB_NAME

LOOPBACK_NAMES = ("localhost",)


@dataclass(frozen=True)
class ServeOptions:
    """How `leadmatch serve` listens: address, port, TLS files, and an explicit opt-out of TLS."""

    host: str = "127.0.0.1"
    port: int = 8765
    certfile: Path | None = None
    keyfile: Path | None = None
    insecure_http: bool = False
    enroll_root: Path | None = None
    ray: str | None = None  # the Ray cluster enrollments may run on (auto or HOST:PORT); None: none
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For is believed (addresses or networks)
    checkpoint_every: str | None = None    # file an audit checkpoint this often (e.g. 1h) …
    checkpoint_dir: Path | None = None     # … in this folder, outside the workspace

    @property
    def tls(self) -> bool:
        return self.certfile is not None


def is_loopback(host: str) -> bool:
    """Whether `host` names only this machine (127.0.0.0/8, ::1, localhost)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_options(options: ServeOptions) -> None:
    """Refuse a listening set-up that would send passwords and tokens in clear over a network."""
    if (options.certfile is None) != (options.keyfile is None):
        raise InputError("TLS needs both --certfile and --keyfile", "give both, or neither for loopback only")
    for label, path in (("--certfile", options.certfile), ("--keyfile", options.keyfile)):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{label} {path} is not a readable file", "give the PEM file's path")
    if not options.tls and not is_loopback(options.host) and not options.insecure_http:
        raise InputError(f"binding {options.host} without TLS would send passwords and tokens in clear",
                         "give --certfile and --keyfile, bind 127.0.0.1, or pass --insecure-http behind a TLS proxy")
    if options.enroll_root is not None and not Path(options.enroll_root).is_dir():
        raise InputError(f"--enroll-root {options.enroll_root} is not a folder", "give the folder analysts may name")
    signin.trusted_networks(options.trusted_proxies)
    if (options.checkpoint_every is None) != (options.checkpoint_dir is None):
        raise InputError("--checkpoint-every and --checkpoint-dir go together", "give both, or neither")
    if options.checkpoint_every is not None:
        oversight.parse_duration(options.checkpoint_every)
    if options.ray is not None:
        import importlib.util

        from leadmatch.gallery.ray_cluster import check_address  # imports nothing of Ray

        check_address(options.ray)
        if importlib.util.find_spec("ray") is None:  # found, not imported: the service starts as fast
            raise InputError("--ray needs Ray, which is not installed here", "install leadmatch's cluster extra "
                             "(pip install 'leadmatch[cluster]'), or start the service without --ray")


def check_workspace(home: Path) -> None:
    """Refuse a workspace not owned by this account or open to group or others (the fix is named).

    The home folder must be 0700 and owned by the running account; the database and every other entry
    directly in it must be owned by it with no group/other bits (folders below an 0700 home are unreachable
    to others whatever their own mode, so they are not walked)."""
    home = Path(home).resolve()
    uid = os.geteuid()
    if not (home / DB_NAME).is_file():
        raise WorkspaceError(f"no leadmatch workspace at {home}", f"run `leadmatch --home {home} init` first")
    for path in [home, *sorted(home.iterdir())]:
        info = path.lstat()
        if info.st_uid != uid:
            raise WorkspaceError(
                f"{path} is owned by uid {info.st_uid}, not by the account running the service (uid {uid})",
                f"run the service as that account, or `chown -R {uid} {home}`")
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise WorkspaceError(
                f"{path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o})",
                f"run `chmod -R go-rwx {home}`")


def secure_new_files() -> None:
    """Files the service creates (WAL, photos, indexes, uploads) get no group or other access."""
    os.umask(0o077)
