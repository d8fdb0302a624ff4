"""The service owns the workspace: started as its own OS account, the CLI as a client under another
account. Each insider attack from issue 9 is replayed and must fail."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from .conftest import ROOT


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(home: Path, port: int, *extra: str, user: str | None = None, env: dict | None = None):
    """`leadmatch serve` on `port` (as `user` if given); returns (process, url) once it answers."""
    if user is None:
        subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)
    process = subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(port),
                                *extra], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, user=user,
                               env={**os.environ, **(env or {})}, cwd="/")
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            return process, url
        except OSError:
            if process.poll() is not None:
                break
            time.sleep(0.2)
    process.kill()
    pytest.fail("the service did not start: " + process.stdout.read().decode(errors="replace"))
