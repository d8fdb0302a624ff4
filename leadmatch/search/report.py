"""The lead report: one self-contained HTML file (images embedded) that prints well and can be filed."""

from __future__ import annotations

import base64
import functools
from pathlib import Path

from leadmatch.lazy import lazy
from leadmatch.record import audit
from leadmatch.search import crops, leads
from leadmatch.governance.accounts import Actor
from leadmatch.search.run import show
from leadmatch.record.store import utc_now
from leadmatch.record.workspace import Workspace

jinja2 = lazy("jinja2")


@functools.cache
def environment():
    """The Jinja2 environment of the report and the web pages (made on first use: only rendering needs Jinja2)."""
    return jinja2.Environment(loader=jinja2.PackageLoader("leadmatch", "templates"),
                              autoescape=jinja2.select_autoescape(["html"]))


def __getattr__(name: str):  # `report.templates`, as the web pages read it
    if name == "templates":
        return environment()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def render(ws: Workspace, actor: Actor, search_id: str) -> str:
    """The report of one search as HTML, for whoever may read the search. Producing it is audited."""
    record = show(ws, actor, search_id)
    images = {"probe": _data_uri(crops.probe_crop(ws, actor, search_id))}
    for number in range(1, len(record["probe"].get("frames", [])) + 1):
        images[f"frame{number}"] = _data_uri(crops.probe_frame_crop(ws, actor, search_id, number, size=160))
    for c in record["candidates"]:
        images[c["rank"]] = _data_uri(crops.candidate_crop(ws, actor, search_id, c["rank"]))
    html = environment().get_template("report.html").render(s=record, images=images, notice=leads.NOTICE,
                                                        generated_at=utc_now(), generated_by=actor.name)
    audit.record(ws.conn, actor.name, "report", case=record["case"], search_id=search_id,
                 photos=[record["probe"]["sha256"]] + [c["photo_sha256"] for c in record["candidates"]])
    return html


def write(ws: Workspace, actor: Actor, search_id: str, out: Path) -> Path:
    """Render and write the report atomically."""
    html = render(ws, actor, search_id)
    out = Path(out)
    temp = out.with_name(f".{out.name}.tmp")
    temp.write_text(html, encoding="utf-8")
    temp.replace(out)
    return out
