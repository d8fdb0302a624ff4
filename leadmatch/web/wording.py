"""The library's messages in a page's words. The library speaks to every front end: its errors name CLI options
(`--note`, `--approved-on`), commands (`leadmatch corroborate`) and internal action names (`gallery.show`),
which mean nothing in a browser. Here whole CLI phrases become the page's, each option the label of the field it
stands for, a hint still sending the user to a command is left out, action names go, and the field concerned is
found (the error's own `field`, a `missing-…` refusal, or the last option named) so the page can mark it.
Presentation only: the library decided and audited already. One module for every page."""

from __future__ import annotations

import re
from dataclasses import dataclass

from leadmatch.errors import LeadmatchError

#: What the library says for the command line, as a page says it (whole phrases, before single options).
PAGE_PHRASES = (
    ("pass --case with the case this search serves", "enter the case number this search serves"),
    ("pass --purpose with an authorized purpose (see `leadmatch purposes`)", "choose an authorized purpose"),
    ("pick one from `leadmatch purposes`; an admin may add one", "choose one from the list; an admin may add one"),
    ("pick one from `leadmatch purposes`", "choose one from the list"),
    ('pass --original FILE (the photo before editing) and --enhancement "what was done"',
     "choose the original photo (before editing) and say what was done to it"),
    ("--original and --enhancement are only for --probe-source enhanced",
     "an original photo and a description of the enhancement are only for an enhanced probe"),
    ("add --probe-source enhanced, or leave them out", "set the probe source to enhanced, or leave them empty"),
    ("pick one with --face N (numbered left to right), --face largest or --face central", "pick one below"),
    ("pick one with --track N or --track largest", "pick one below"),
    ("ask an admin; `leadmatch policy show` lists the policy", "ask an admin about the deployment's policy"),
    ("run `leadmatch accept-rules`", "accept the rules of behavior first (an agent does so once)"),
    ("; an admin records it with `leadmatch user certify`", "; an admin then records it"),
    ("(a larger --every)", "(a longer step between frames)"),
    ("or use --detector hog", "or ask for the faster detector"),
    ("see `leadmatch gallery list`, or create it with `gallery create`",
     "choose one from the list; an analyst creates galleries"),
    ("record it with `leadmatch corroborate`, or close as no-identification",
     "record it on the candidate first, or close as no-identification"),
    ("search.form needs", "a new search needs"),
)
#: CLI option → (the request field it sets, its words on a page).
OPTIONS = {
    "--case": ("case", "the case number"), "--purpose": ("purpose", "the purpose"),
    "--justification": ("justification", "the justification"),
    "--traditional-means": ("traditional_means", "the traditional means"),
    "--probe-source": ("probe_source", "the probe source"), "--top-k": ("top_k", "candidates"),
    "--face": ("face", "face"), "--track": ("track", "track"), "--every": ("every", "sample a frame every"),
    "--best-frames": ("best_frames", "best frames"), "--fusion": ("fusion", "fusion"),
    "--original": ("original", "the original photo"),
    "--enhancement": ("enhancement", "the description of the enhancement"), "--detector": ("detector", "the detector"),
    "--gallery": ("gallery", "the gallery"),
    "--evidence-type": ("evidence_type", "the evidence type"), "--evidence": ("evidence", "the evidence"),
    "--reference": ("reference", "the reference"), "--outcome": ("outcome", "the outcome"),
    "--decision": ("decision", "the decision"), "--note": ("note", "the note"), "--rank": ("rank", "the candidate"),
    "--reason": ("reason", "the reason"), "--since": ("since", "the from date"), "--until": ("until", "the to date"),
    "--from": ("start", "the from date"), "--to": ("end", "the to date"), "--user": ("user", "the user"),
}
OPTION = re.compile(r"--[a-z][a-z-]*")
#: Internal action names (`gallery.create`, `user.grant-role`, `web.review-queue`) as role refusals name them.
ACTION = re.compile(r"\b(?:user|gallery|purposes|purge|index|search|media|audit|case|person|policy|models|web)"
                    r"\.[a-z][a-z-]*\b")


@dataclass(frozen=True)
class Field:
    """A form field: its `label` on the page, and the words (regular expressions, any case) by which the
    library's messages name it — an option such as `--approved-on`, or a phrase."""

    label: str
    names: tuple[str, ...] = ()


def words(text: str | None) -> str:
    """Any library sentence (a message, a hint, an audit entry's reason) in a page's words: CLI phrases and options
    replaced, action names gone, a command left over named without its code quotes."""
    text = text or ""
    for cli, page in PAGE_PHRASES:
        text = text.replace(cli, page)
    text = OPTION.sub(lambda m: OPTIONS.get(m.group(0), (None, m.group(0)[2:].replace("-", " ")))[1], text)
    text = ACTION.sub("this", text)
    return re.sub(r"`(?:leadmatch )?([^`]*)`", r"“\1”", text)


def sentence(exc: LeadmatchError) -> str:
    """The error's message and hint in a page's words; a hint that still points at a command is left out (the page
    itself is where to act)."""
    hint = exc.hint or ""
    for cli, page in PAGE_PHRASES:
        hint = hint.replace(cli, page)
    hint = "" if "`" in hint else words(hint)
    message = words(exc.message)
    return f"{message} — {hint}" if hint else message


def field_of(exc: LeadmatchError) -> str | None:
    """The request field an error concerns: its own `field`, a `missing-<field>` refusal's, or the last option its
    message names ("--outcome identified needs --rank" is about the rank)."""
    if getattr(exc, "field", None):
        return exc.field
    reason = getattr(exc, "reason", "") or ""
    if reason.startswith("missing-"):
        return reason.removeprefix("missing-").replace("-", "_")
    named = [o for o in OPTION.findall(exc.message) if o in OPTIONS]
    return OPTIONS[named[-1]][0] if named else None


def in_page_words(exc: LeadmatchError) -> tuple[str, str | None]:
    """(the message as a page shows it, the form field it concerns or None)."""
    return sentence(exc), field_of(exc)


def page_error(exc: LeadmatchError, labels: dict[str, str]) -> dict:
    """An error as a form shows it: the field it concerns (None when none of the form's `labels`), that field's
    label, and the message in the page's words."""
    field = field_of(exc)
    field = field if field in labels else None
    return {"field": field, "label": labels.get(field or "", ""), "message": words(str(exc))}


def in_words(exc: LeadmatchError, fields: dict[str, Field]) -> tuple[str, set[str]]:
    """(the message in the page's words, the names of the fields it is about) for a refused form whose `fields`
    say how messages name them; each option they list becomes the field's label."""
    message, hint = exc.message, exc.hint if "`" not in (exc.hint or "") else ""
    marked = {field_of(exc)} & set(fields)
    for name, field in fields.items():
        for named in field.names:
            if re.search(named, message, re.IGNORECASE):
                marked.add(name)
            if named.startswith("--"):
                message = re.sub(named, f"“{field.label}”", message, flags=re.IGNORECASE)
                hint = re.sub(named, f"“{field.label}”", hint, flags=re.IGNORECASE)
    message, hint = words(message), words(hint)
    return (f"{message} — {hint}" if hint else message), marked
