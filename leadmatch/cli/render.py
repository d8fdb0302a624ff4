"""How the command line prints: the consoles, JSON, and the tables and summaries of each answer."""

from __future__ import annotations

import json
import os
import sys

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from leadmatch.cli.terminal import SafeConsole
from leadmatch.gallery import galleries as galleries
from leadmatch.safetext import json_text, plural, shown, shown_all
from leadmatch.search import leads

out = SafeConsole(soft_wrap=True)  # stored strings are printed, never obeyed: see cli/terminal.py
err = SafeConsole(stderr=True, soft_wrap=True)


def when(stamp: str | None) -> str:
    """A recorded UTC time as people read it: '2026-12-02 03:37 UTC' (no seconds' fractions, no T)."""
    return f"{stamp[:16].replace('T', ' ')} UTC" if stamp else "—"


def reasons(counts: dict | None) -> str:
    """' (no-face 2, blurry 1)': refusal counts by reason as words, or '' when there are none."""
    return f" ({', '.join(f'{reason} {n}' for reason, n in counts.items())})" if counts else ""


def print_enrollment(report: dict) -> None:
    out.print(f"gallery {shown(report['gallery'])!r}: {report['enrolled']} enrolled, {report['skipped_duplicates']} "
              f"skipped (already enrolled), {len(report['refused'])} refused, "
              f"{plural(report['subjects_added'], 'new subject')}")
    for refusal in report["refused"]:
        out.print(f"  refused  {shown(refusal['path'])}: {refusal['reason']} — {shown(refusal['detail'])}")
    for worker in report.get("workers_refused", []):  # Ray workers left out (their models differ)
        out.print(f"  refused worker  {worker}")
    if report.get("index_note"):
        out.print(f"  index: {report['index_note']}")


def print_build(result: dict) -> None:
    check = result["self_check"]
    out.print(f"built {result['factory']} over {result['faces']} faces in {result['build_seconds']} s; self-check: "
              f"recall {check['recall']} on {check['sample']} probes vs exact"
              + (f", nprobe {check['nprobe']}" if check.get("nprobe") else ""))


def print_probe(console: Console, result: dict) -> None:
    """The probe line: which photo, stills or video frames were searched, and their quality."""
    probe = result["probe"]
    if probe.get("kind", "photo") == "photo":
        console.print(f"probe {probe['name']} ({result['probe_source']}; face {probe['face_index']} of "
                      f"{probe['faces_in_photo']}, {probe['quality'].get('size_px')} px, eyes "
                      f"{probe['quality'].get('eye_distance_px')} px, sharpness {probe['quality'].get('sharpness')})")
        print_enhancement(console, result)
        return
    console.print(f"probe: {probe['description']} ({result['probe_source']}; "
                  f"{result['details'].get('fusion', 'min')} distance over {len(probe['frames'])} faces)")
    person = result["details"].get("person")
    if person:  # a case person: every appearance is provenance, not only the faces searched with
        console.print(f"  case person {person['label']} of case {person['case']}: "
                      + "; ".join(f"face {a['face_id']} {a['file']}" + (f" at {a['time_s']:.1f} s" if a["time_s"]
                                                                         is not None else "")
                                  for a in person["appearances"]))
    for f in probe["frames"]:
        where = f"{f['time_s']:.2f} s" if "time_s" in f else f["source"]
        where = f"{f['source']} at {where}" if person and "time_s" in f else where
        q = f["quality"]
        console.print(f"  {where}: box {f['box']}, {q.get('size_px')} px, eyes {q.get('eye_distance_px')} px, "
                      f"sharpness {q.get('sharpness')}, sha256 {f['sha256'][:16]}…")
    print_enhancement(console, result)


def print_enhancement(console: Console, result: dict) -> None:
    """An enhanced probe's line: what was done, and the original it was made from (name and sha256)."""
    enhancement = (result.get("details") or {}).get("enhancement")
    if enhancement:
        console.print(f"  enhanced: {enhancement['description']}; original {enhancement['original']['name']} "
                      f"sha256 {enhancement['original']['sha256']}")


def fitting_table(*headers: str, whole: tuple[int, ...] = (), **options) -> Table:
    """A table that fits the terminal: every column wraps, and a word too long for its column (a sha256) folds
    onto the next line rather than being cut; the columns numbered in `whole` (ids people copy) stay unbroken."""
    made = Table(**options)
    for number, header in enumerate(headers):
        made.add_column(header, overflow="fold", no_wrap=number in whole)
    return made


def fitted() -> SafeConsole:
    """The console for tables: the terminal's width (or $COLUMNS); a pipe or file gets whole lines (200 wide),
    one candidate a line for grep."""
    if out.is_terminal or os.environ.get("COLUMNS"):
        return out
    return SafeConsole(width=200, soft_wrap=True)


def print_search(result: dict, full: bool = False) -> None:
    """The candidate table, with the lead-only notice above, on every row, and below; with `full` (`show`),
    also why the search was made, every decision with its note, the corroboration, the closure and the history."""
    wide = fitted()
    result = shown_all(result)
    wide.print(leads.NOTICE, style="bold")
    wide.print(f"search {result['search_id']}  status {result['status']}  case {result['case']}  purpose "
               f"{result['purpose']}  gallery {result['gallery']}  model {result.get('model', 'dlib')}  "
               f"agent {result['agent']}" + (f"  created {when(result['created_at'])}" if full and
                                              result.get("created_at") else ""))
    if full:
        wide.print(f"justification: {result.get('justification') or '—'}")
        wide.print(f"traditional means tried first: {result.get('traditional_means') or '—'}")
    if result.get("purged_at"):
        wide.print(f"details purged under the retention rules on {result['purged_at'][:10]}")
    else:
        print_probe(wide, result)
    for flag in result["flags"]:
        wide.print(f"flag: {flag}", style="yellow")
    if result.get("details", {}).get("index_repaired"):
        wide.print(f"note: {result['details']['index_repaired']}")
    if result.get("calibration"):
        wide.print(result["calibration"]["text"])
    subjects = result.get("candidate_list") == "subject"
    headers = ("rank", "subject", "distance", "est. false alarms", f"< {result['threshold']:.2f}",
               *(["other photos: distances"] if subjects else []), "disposition", "label")
    rows = fitting_table(*headers, title="one candidate per subject" if subjects else "one candidate per gallery photo")
    cells = []
    for c in result["candidates"]:
        decided = c["disposition"]["decision"] if c.get("disposition") else "—"
        if c.get("corroboration"):
            decided += " / " + ", ".join(e["outcome"] for e in c["corroboration"])
        also = [] if not subjects else [
            (f"{c['also_matched']}: " + ", ".join(f"{f['distance']:.3f}" for f in c["faces"][1:3])
             + (" …" if c["also_matched"] > 2 else "")) if c.get("also_matched") else "—"]
        subject = c["subject"] + ("" if not c.get("gallery_flags") else " (gallery photo flagged)")
        rate = (c.get("false_alarm_text") or "—").removeprefix("estimated false-alarm rate at this distance: ")
        rate = rate.split(" — ")[0]  # the words after the dash are the footnote's
        cells.append((str(c["rank"]), subject, f"{c['distance']:.4f}", rate,
                      "yes" if c["within_threshold"] else "no", *also, decided, c["label"]))
        rows.add_row(*cells[-1])
    if Measurement.get(wide, wide.options.update_width(10_000), rows).maximum <= wide.width:
        wide.print(rows)
    else:  # a narrow terminal: one candidate a block, its label whole on the line under it
        wide.print(rows.title)
        for row in cells:
            wide.print(f"{row[0]:>3}  {row[1]} — " + ", ".join(f"{h}: {v}" for h, v in zip(headers[2:-1], row[2:-1])),
                       soft_wrap=False)
            wide.print(f"     {row[-1]}")
    if result["candidates"]:
        wide.print("est. false alarms: estimated false-alarm rate at this distance — the share of searches for "
                   "someone not in this gallery whose rank-1 is this close; from 50 % on, strangers commonly come "
                   "this close (no sign of a match)")
    for c in result["candidates"]:
        for flag in c.get("gallery_flags") or []:
            wide.print(f"rank {c['rank']} gallery photo flag: {flag}", style="yellow")
        for seen in c.get("seen_before") or []:  # shown, never suppressed: this candidate still needs a decision
            wide.print(f"rank {c['rank']} seen before in this case: {seen['decision']} by {seen['decided_by']} "
                       f"in {seen['search_id']} ({seen['decided_at'][:10]}): {seen['note']}")
    if full:
        print_decisions(wide, result)
    wide.print(leads.NOTICE, style="bold")


def print_decisions(console: Console, result: dict) -> None:
    """`show`'s account of a search after its table: each disposition with its note, each piece of
    corroborating evidence, the closure, and the history (who did what, when), one line each."""
    for c in result["candidates"]:
        d = c.get("disposition")
        if d:
            console.print(f"rank {c['rank']} {c['subject']}: {d['decision']} by {d['decided_by']}, "
                          f"{when(d['decided_at'])} — note: {d['note']}")
        for e in c.get("corroboration") or []:
            console.print(f"rank {c['rank']} {c['subject']}: {e['outcome']} by {e['recorded_by']}, "
                          f"{when(e['recorded_at'])} — {e['evidence_type']} evidence, reference {e['reference']}: "
                          f"{e['evidence']}")
    left = sum(1 for c in result["candidates"] if not c.get("disposition"))
    if left:
        console.print(f"{plural(left, 'candidate')} still to disposition")
    cl = result.get("closure")
    if cl:
        console.print(f"closed {cl['status']} by {cl['closed_by']}, {when(cl['closed_at'])}"
                      + (f", rank {cl['rank']}" if cl["rank"] else "") + f" — note: {cl['note']}")
    history = result.get("history") or []
    if history:
        console.print(f"history ({plural(len(history), 'entry', 'entries')}):")
    for h in history:
        console.print(f"  {when(h['at'])}  {h['actor']}  {h['action']}"
                      + ("" if h["outcome"] == "ok" else f"  {h['outcome']}")
                      + (f"  ({h['reason']})" if h.get("reason") else ""))


def print_evaluation(r: dict) -> None:
    def pct(value):
        return "n/a" if value is None else f"{100 * value:.1f}%"

    g = r["gallery"]
    if "subjects" in g:
        out.print(f"model: {r.get('model', 'dlib')}; gallery size: {g['subjects']} subjects"
                  + (f" ({g['distractor_photos']} distractor photos offered)" if g.get("distractor_photos") else ""))
    out.print(f"gallery: {g['enrolled']} of {g['photos_offered']} photos enrolled ({r['enroll_first']} per subject), "
              f"{g['refused']} refused ({pct(g['refusal_rate'])}), {g['flagged']} flagged low quality; "
              f"held-out subjects: {len(r['holdout_subjects'])}"
              + (f" ({', '.join(r['holdout_subjects'])})" if len(r["holdout_subjects"]) <= 5 else ""))
    out.print(f"probes: {r['mated_probes']} mated ({r['mated_refused']} refused or without a gallery photo), "
              f"{r['nonmated_probes']} non-mated searched ({r['nonmated_refused']} refused), "
              f"{r['probes_flagged_low_quality']} flagged low quality")
    for stage, reasons in r["refusals_by_reason"].items():
        out.print(f"  refused at {stage}: " + ", ".join(f"{reason} {n}" for reason, n in reasons.items()))
    if len(r["refused"]) <= 20:
        for x in r["refused"]:
            out.print(f"  refused  {shown(x['path'])}: {x['reason']} — {shown(x['detail'])}")
    accepted = r["mated_accepted"]
    for k in (1, 5, 20):
        out.print(f"rank-{k} hit rate, by subject: {pct(r[f'rank{k}'])} ({r[f'rank{k}_hits']} of {r['mated_probes']}, "
                  f"refusals counted as misses); accepted only {pct(r[f'rank{k}_accepted'])} of {accepted}; by "
                  f"photo {pct(r[f'rank{k}_by_photo'])}")
    c = r.get("calibrated_threshold")
    if c:
        out.print(f"calibrated: {c['text']}")
        out.print(f"  at {c['threshold']}: FPIR measured {pct(c['measured_fpir'])} ({c['measured_alarms']} of "
                  f"{c['nonmated_probes']} non-mated), estimated {pct(c['estimated_fpir'])}; FNIR {pct(c['fnir'])} "
                  f"({c['fnir_misses']} of {r['mated_probes']})")
    for target, v in r["fnir_at_fpir"].items():
        if v["fnir"] is None:
            out.print(f"FNIR at FPIR {target}: not measurable — {v['note']}")
        else:
            out.print(f"FNIR at FPIR {target}: {pct(v['fnir'])} ({v['misses']} of {r['mated_probes']} missed) "
                      f"at threshold {v['threshold']}")
    d = r["default_threshold"]
    out.print(f"dlib's 1:1 threshold {d['threshold']}: FNIR {pct(d['fnir'])} ({d['fnir_misses']} of "
              f"{r['mated_probes']}), FPIR {pct(d['fpir'])} ({d['fpir_alarms']} of {r['nonmated_probes']})")
    for attribute, groups in r.get("groups", {}).items():
        for value, grp in groups.items():
            out.print(f"  {attribute}={value}: rank-1 {pct(grp['rank1'])} of {grp['mated_probes']} mated; "
                      f"FNIR {pct(grp['default_threshold']['fnir'])}, FPIR {pct(grp['default_threshold']['fpir'])} "
                      f"of {grp['nonmated_probes']} non-mated at {d['threshold']}")
    out.print("These rates describe these photos only. Every search result remains an investigative lead.")


def emit_json(data) -> None:
    sys.stdout.write(json_text(json.dumps(data, ensure_ascii=False, indent=2, default=str)) + "\n")
