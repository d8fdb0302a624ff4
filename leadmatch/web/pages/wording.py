"""A refused form comes back filled in, its message in the page's words: the library speaks to every front end
(`--approved-on 2099-01-01 is in the future`, `user.add needs the admin role`), so here each option a message
names becomes the label of the field it came from, internal action names and command hints are left out, and
the fields the message names are marked. Nothing is decided here: the library refused and audited already."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import Request
from fastapi.responses import HTMLResponse

from leadmatch.errors import LeadmatchError
from leadmatch.web.responses import page, status_of

#: Refusals about the user rather than the form: answered by the error page, not the form again.
WHOLE_PAGE = ("wrong-role", "disabled")
#: Internal action names (`gallery.create`, `user.grant-role`) as the library's role refusals name them.
ACTION = re.compile(r"\b(?:user|gallery|purposes|purge|index|search|media|audit|case|policy|models)\.[a-z-]+\b")


@dataclass(frozen=True)
class Field:
    """A form field: its `label` on the page, and the words (regular expressions, any case) by which the
    library's messages name it — an option such as `--approved-on`, or a phrase."""

    label: str
    names: tuple[str, ...] = ()


def in_words(exc: LeadmatchError, fields: dict[str, Field]) -> tuple[str, set[str]]:
    """(the message in the page's words, the names of the fields it is about) for a refused form. A hint that
    points at a command (backquotes) is left out: the page itself is where to act."""
    message, hint = exc.message, exc.hint if "`" not in (exc.hint or "") else ""
    marked = {getattr(exc, "field", None)} & set(fields)  # the library may name the field itself
    for name, field in fields.items():
        for words in field.names:
            if re.search(words, message, re.IGNORECASE):
                marked.add(name)
            message = re.sub(words, f"“{field.label}”", message, flags=re.IGNORECASE) if words.startswith("--") \
                else message
            hint = re.sub(words, f"“{field.label}”", hint, flags=re.IGNORECASE) if words.startswith("--") else hint
    message = ACTION.sub("this", message)
    message = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", " "), message)  # any other option
    hint = re.sub(r"--([a-z][a-z-]*)", lambda m: m.group(1).replace("-", " "), hint)
    return (f"{message} — {hint}" if hint else message), marked


def refilled(request: Request, template: str, exc: LeadmatchError, fields: dict[str, Field], form: dict,
             context: Callable[[], dict] = dict) -> HTMLResponse:
    """The form's page again, with what was typed (`form`), the message in its words, the fields marked, and
    `context()` for the rest of the page (read after the refusal, so it shows the record as it is now); a lost
    session still goes to sign in (the error handlers' answer), and a user without the role gets the
    refusal page, in words too (the page around the form is not theirs to see either)."""
    if status_of(exc) == 401:
        raise exc
    message, marked = in_words(exc, fields)
    if getattr(exc, "reason", None) in WHOLE_PAGE:
        return page(request, "error", status_of(exc), title="Refused", message=message)
    return page(request, template, status_of(exc), form=form, problem=message, marked=marked, **context())


def attempt(request: Request, template: str, fields: dict[str, Field], form: dict, act: Callable[[], object],
            context: Callable[[], dict] = dict):
    """`act()`'s answer, or on a leadmatch error the form's page refilled (`refilled`)."""
    try:
        return act()
    except LeadmatchError as exc:
        return refilled(request, template, exc, fields, form, context)
