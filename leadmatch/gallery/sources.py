"""Where an enrollment may read: the files of the folder or manifest it was given, inside its root.

The root is the service's `--enroll-root` for paths named on the server; without one, a folder is its own root
(links inside it may point only inside it) and a manifest (direct mode, where the analyst's own OS account
reads the files) may name any file. Every path is resolved (links followed) and compared with the resolved root;
a file of the workspace itself (stored probes and gallery photos, the record, the key) is never read, whatever
the root. The file is then opened one path component at a time from the root with O_NOFOLLOW, so a link
swapped in between the check and the open is refused, not followed. A refusal never says whether a file outside
the root exists, nor where a link points.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from leadmatch.biometrics.photos import MAX_FILE_BYTES, display_name, read_open
from leadmatch.errors import PhotoError
from leadmatch.governance.retention import ENROLL_UPLOADS

OUTSIDE_ROOT = "outside-root"


def resolved(path) -> Path:
    """`path` made absolute with every link followed (as far as the path exists)."""
    return Path(os.path.realpath(path))


def inside(path: Path, folder: Path) -> bool:
    """Whether the resolved `path` is `folder` or lies under it (both resolved)."""
    return path == folder or folder in path.parents


@dataclass(frozen=True)
class Confinement:
    """What one enrollment may read: files under `root` (None: anywhere) and never under `workspace`."""

    root: Path | None
    workspace: Path | None = None

    @classmethod
    def of(cls, source: Path, root: Path | None, workspace: Path | None) -> "Confinement":
        """The confinement of enrolling `source`: under `root` when given, else under the folder `source` (a
        manifest without a root names files anywhere); never in `workspace`."""
        base = root if root is not None else (source if Path(source).is_dir() else None)
        base = resolved(base) if base is not None else None
        home = resolved(workspace) if workspace is not None else None
        if home is not None and base is not None and inside(base, home / ENROLL_UPLOADS):
            home = None  # photos the service itself wrote from an upload: read there, and only there
        return cls(base, home)

    def problem(self, path) -> str | None:
        """Why `path` may not be read (one line, naming neither whether it exists nor where it leads), or None."""
        real = resolved(path)
        if self.workspace is not None and inside(real, self.workspace):
            return f"{display_name(path)} lies inside the leadmatch workspace; enroll from the original photo"
        if self.root is not None and not inside(real, self.root):
            return f"{display_name(path)} lies outside the enrollment root {display_name(self.root)}"
        return None

    def read(self, path, limit: int = MAX_FILE_BYTES) -> bytes:
        """A photo file's bytes, if it lies where this enrollment may read (PhotoError `outside-root` if not),
        opened without following any link from the root (or /) down; other failures as `photos.read_bytes`."""
        name = display_name(path)
        why = self.problem(path)
        if why:
            raise PhotoError(why, "give a photo inside the enrollment root (links must stay inside it)",
                             reason=OUTSIDE_ROOT)
        real = resolved(path)
        base = self.root if self.root is not None else Path(real.anchor)
        try:
            fd = _open_below(base, real.relative_to(base).parts)
        except FileNotFoundError:
            if os.path.islink(path):
                raise PhotoError(f"{name} is a link to nothing", "fix or remove the link", reason="broken-link") from None
            raise PhotoError(f"photo not found: {name}", "check the path", reason="not-found") from None
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR):  # a link loops, or one was swapped in after the check
                raise PhotoError(f"{name} is a link that loops, or was replaced by a link while it was read",
                                 "fix or remove the link", reason="broken-link") from None
            raise PhotoError(f"cannot read {name}: {exc.strerror}", "check the file and its permissions") from None
        return read_open(fd, name, limit)


def _open_below(base: Path, parts: tuple[str, ...]) -> int:
    """Open base/parts[0]/…/parts[-1] read-only, each folder with O_NOFOLLOW|O_DIRECTORY and the file with
    O_NOFOLLOW|O_NONBLOCK (a FIFO swapped in must not block), relative to the one before. Returns the file's fd
    (of `base` itself when `parts` is empty: `read_open` then refuses it as a folder)."""
    if not parts:
        return os.open(base, os.O_RDONLY | os.O_CLOEXEC)
    folder = os.open(base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            below = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = below
        fd = os.open(parts[-1], os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=folder)
    finally:
        os.close(folder)
    return fd


def server_path(ws, actor, root: Path | None, path: str, action: str) -> Path:
    """A path named on the service's machine (a folder or manifest), resolved: it must lie under `root` (the
    service's --enroll-root) and outside the workspace; refused and audited otherwise, or when there is no root.
    What lies below it is confined by `Confinement` as it is read."""
    from leadmatch.governance.accounts import refuse

    if root is None:
        raise refuse(ws, actor, action, "no-enroll-root", "this service names no folder for server-side paths",
                     "upload the photos, or start the service with --enroll-root DIR")
    base = resolved(root)
    target = resolved(base / path)  # an absolute `path` stays itself
    if not inside(target, base) or inside(target, resolved(ws.home)):
        raise refuse(ws, actor, action, "outside-enroll-root", f"{display_name(path)} is outside the enroll root",
                     f"name a path under {display_name(base)}", objects={"path": display_name(path)})
    return target
