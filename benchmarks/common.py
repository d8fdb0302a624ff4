"""Shared by the benchmark scripts: the machine's description and saving a table as JSON and markdown."""

from __future__ import annotations

import json
import os
import platform
import subprocess
from datetime import datetime, timezone
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
ROOT = Path(__file__).resolve().parent.parent
FACES = Path(os.environ.get("LEADMATCH_TEST_PHOTOS", ROOT.parent / "shared" / "data" / "faces"))


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        kib = int(next(l for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal")).split()[1])
        memory = f", {kib / 1024 / 1024:.0f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} cores ({cpu}){memory}, Python {platform.python_version()}, {platform.system()}"


def load_note() -> str:
    """What else was running: the 1-minute load average now, against the core count (the benchmark's own work
    counts too, so a value near the cores it used means an otherwise idle machine)."""
    return (f"1-minute load average {os.getloadavg()[0]:.1f} at the end on {os.cpu_count()} cores: compare runs only "
            "when this is no more than the cores the benchmark itself used")


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def save(name: str, title: str, rows: list[dict], notes: list[str] = ()) -> str:
    """Write results/<name>.json and results/<name>.md; return the markdown."""
    RESULTS.mkdir(exist_ok=True)
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    meta = {"title": title, "when": stamp, "machine": machine(), "commit": commit(), "notes": list(notes)}
    (RESULTS / f"{name}.json").write_text(json.dumps({**meta, "rows": rows}, indent=2) + "\n")
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [f"### {title}", "", f"{stamp}, commit {meta['commit']}, {meta['machine']}", "",
             "| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join("" if row.get(c) is None else str(row.get(c)) for c in columns) + " |" for row in rows]
    lines += [""] + [f"- {n}" for n in notes]
    text = "\n".join(lines) + "\n"
    (RESULTS / f"{name}.md").write_text(text)
    print(text, flush=True)
    return text
