"""The library's messages in a page's words: its errors name CLI options (`--note`) and commands
(`leadmatch corroborate`), which mean nothing in a browser. Here each option becomes the label of the form field it
stands for, a hint that sends the user to a command is left out, and the field concerned is named so the page can
mark it. Presentation only: the library decided and audited already."""

from __future__ import annotations

import re

from leadmatch.errors import LeadmatchError

#: CLI option → (the form field's name, its label on the page). Longest first so `--evidence-type` wins over
#: `--evidence`.
FIELDS = {
    "--evidence-type": ("evidence_type", "the evidence type"),
    "--evidence": ("evidence", "the evidence"),
    "--reference": ("reference", "the reference"),
    "--outcome": ("outcome", "the outcome"),
    "--decision": ("decision", "the decision"),
    "--note": ("note", "the note"),
    "--rank": ("rank", "the candidate"),
    "--justification": ("justification", "the justification"),
    "--traditional-means": ("traditional_means", "what traditional means were tried"),
    "--purpose": ("purpose", "the purpose"),
    "--case": ("case", "the case number"),
    "--gallery": ("gallery", "the gallery"),
    "--top-k": ("top_k", "the number of candidates"),
    "--reason": ("reason", "the reason"),
}
OPTION = re.compile("|".join(re.escape(o) for o in sorted(FIELDS, key=len, reverse=True)) + r"(?![\w-])")
INTERNAL = re.compile(r"`[^`]*`|\b(?:web|search|audit|gallery|user|case|person|media)\.[a-z][a-z-]+\b")


def in_page_words(exc: LeadmatchError) -> tuple[str, str | None]:
    """(the message as a page shows it, the form field it concerns or None)."""
    message, hint = exc.message, exc.hint or ""
    named = OPTION.findall(message) or OPTION.findall(hint)  # "--outcome identified needs --rank": the last
    reason = getattr(exc, "reason", "") or ""
    field = (getattr(exc, "field", None) or (reason.removeprefix("missing-").replace("-", "_")
             if reason.startswith("missing-") else None) or (FIELDS[named[-1]][0] if named else None))
    message = OPTION.sub(lambda m: FIELDS[m.group(0)][1], message)
    hint = "" if "`" in hint or INTERNAL.search(hint) else OPTION.sub(lambda m: FIELDS[m.group(0)][1], hint)
    return (f"{message} — {hint}" if hint else message), field


def words(text: str | None) -> str:
    """Any stored sentence (an audit entry's reason) with CLI options named by their field labels."""
    return OPTION.sub(lambda m: FIELDS[m.group(0)][1], text or "")
