"""The command line's polish, as a user meets it in the real `leadmatch` command: commands that do no biometrics
never load the heavy libraries, tables fit an 80-column terminal, `show` tells the whole story, `--version`,
`report --out` never replaces a file without `--force`, the audit log filtered and paged like the web page, and
no Python reprs, microseconds or wrong plurals in what is printed. (Speed itself: benchmarks/startup.py.)"""

from __future__ import annotations

import json
import re
import subprocess
import sys

from leadmatch import __version__
from leadmatch.lazy import HEAVY
from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace

from .helpers import (
    AGENT,
    AGENT2,
    ANALYST,
    AUDITOR,
    GALLERY,
    GALLERY_DIR,
    LABEL,
    MEANS,
    assert_clean_error,
    login,
    run_cli,
)

NARROW = {"COLUMNS": "80"}
MICROSECONDS = re.compile(r"\d\d:\d\d:\d\d\.\d{3,}")
REPRS = re.compile(r"\{'|\['|\bNone\b|<[a-z_.]+ object at")

#: Runs the real entry point, then prints which heavy libraries it had imported (after the command's output).
WATCHED = ("import json, sys\nfrom leadmatch.cli.app import main\ntry:\n    main()\nfinally:\n"
           f"    print('HEAVY', json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n")


def watched(home, *args):
    """`leadmatch --home HOME ARGS` in a fresh interpreter; (its result, the heavy libraries it imported)."""
    done = subprocess.run([sys.executable, "-c", WATCHED, "--home", str(home), *args], capture_output=True,
                          text=True, timeout=120)
    line = next(line for line in done.stdout.splitlines() if line.startswith("HEAVY "))
    return done, json.loads(line[len("HEAVY "):])


def test_importing_the_cli_loads_none_of_the_heavy_libraries():
    loaded = subprocess.run([sys.executable, "-c", "import json, sys\nimport leadmatch.cli.app\nfrom leadmatch.lazy "
                             "import HEAVY\nprint(json.dumps([m for m in HEAVY if m in sys.modules]))"],
                            capture_output=True, text=True, timeout=120, check=True)
    assert json.loads(loaded.stdout) == []


def test_a_lazy_module_loads_at_first_use_and_is_the_module_for_every_name():
    script = ("import sys\nfrom leadmatch.lazy import lazy\ntoml = lazy('tomllib')\nbefore = 'tomllib' in sys.modules\n"
              "import tomllib\nprint(before, toml.load is tomllib.load, toml.loads('a = 1') == {'a': 1})")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == ["False", "True", "True"]  # `load` is the module's, not the stand-in's


def test_commands_without_biometrics_never_load_numpy_opencv_faiss_or_pillow(home, searched):
    login(home, AGENT)
    for args in (("whoami",), ("searches",), ("show", searched),
                 ("disposition", searched, "--rank", "1", "--decision", "excluded", "--note", "Different ears.")):
        done, heavy = watched(home, *args)
        assert done.returncode == 0, done.stderr
        assert heavy == [], (args, heavy)
    login(home, AUDITOR)
    done, heavy = watched(home, "audit", "log", "--page", "1")
    assert done.returncode == 0 and heavy == [], (done.stderr, heavy)


def test_help_is_plain_text_without_rich_help_layout_or_escapes(tmp_path):
    """--help skips rich's help layout (a tenth of a second at every start) and prints option notes as written."""
    script = ("import sys\nfrom leadmatch.cli.app import main\ntry:\n    main()\nexcept SystemExit:\n    pass\n"
              "print('LOADED', [m for m in ('typer.rich_utils', 'rich.markdown') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", script, "--home", str(tmp_path), "--help"], capture_output=True,
                          text=True, timeout=120)
    assert "LOADED []" in done.stdout, done.stdout[-300:]
    assert "[env var:" in done.stdout and "\\[" not in done.stdout
    assert "gallery" in done.stdout and "search" in done.stdout  # every command group listed


def test_version_prints_the_installed_version():
    done = run_cli("--version")
    assert done.returncode == 0 and done.stdout.strip() == f"leadmatch {__version__}"


def test_report_never_replaces_a_file_without_force(home, searched, tmp_path):
    login(home, AGENT)
    target = tmp_path / "lead.html"
    target.write_text("the agent's own notes")
    refused = run_cli("report", searched, "--out", str(target), home=home)
    assert_clean_error(refused, "already exists", "--force")
    assert refused.stderr.count("\n") == 1 and target.read_text() == "the agent's own notes"
    replaced = run_cli("report", searched, "--out", str(target), "--force", home=home)
    assert replaced.returncode == 0, replaced.stderr
    assert LABEL in target.read_text()
    missing = run_cli("report", searched, "--out", str(tmp_path / "no-such-folder" / "r.html"), home=home)
    assert_clean_error(missing, "no folder")


def test_show_prints_why_the_decisions_their_notes_and_the_history(home, searched):
    login(home, AGENT)
    decided = run_cli("disposition", searched, "--rank", "1", "--decision", "possible-lead", "--note",
                      "Same scar above the left eye", home=home)
    assert decided.returncode == 0, decided.stderr
    assert decided.stdout.strip().endswith("(2 candidates left)")
    run_cli("disposition", searched, "--rank", "2", "--decision", "excluded", "--note", "Different ear shape",
            home=home)
    last_but_one = run_cli("show", searched, home=home).stdout
    assert "(1 candidate left)" not in last_but_one and "1 candidate still to disposition" in last_but_one
    shown = run_cli("show", searched, home=home, env=NARROW)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert "justification: Armed robbery suspect caught on the store camera." in text
    assert f"traditional means tried first: {MEANS}" in text
    assert re.search(r"rank 1 \S+: possible-lead by avery, \d{4}-\d\d-\d\d \d\d:\d\d UTC — note: Same scar above "
                     r"the left eye", text)
    assert "note: Different ear shape" in text
    history = text[text.index("history ("):]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC  avery  search\n", history)
    assert history.count("  avery  disposition") == 2
    assert not MICROSECONDS.search(text) and not REPRS.search(text)


def test_tables_fit_an_80_column_terminal_and_keep_ids_and_labels_whole(home, searched):
    login(home, AGENT)
    for args in (("searches",), ("show", searched)):
        done = run_cli(*args, home=home, env=NARROW)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        table = [line for line in lines if line[:1] in "┏┃┡│└"]
        assert all(len(line) <= 80 for line in table), [line for line in table if len(line) > 80]
        if args == ("searches",):
            assert any(searched in line for line in table)  # the id people copy is never folded
        else:
            assert sum(line.strip() == LABEL for line in lines) == 3 + 2  # each candidate, and above and below
    wide = run_cli("searches", home=home, env={"COLUMNS": "200"})
    assert any(searched in line and "awaiting-disposition" in line for line in wide.stdout.splitlines())


def test_audit_log_filters_by_outcome_action_and_dates_and_pages_newest_first(home, searched):
    login(home, AGENT2)  # not the searching agent: refused, and audited
    refused = run_cli("disposition", searched, "--rank", "1", "--decision", "excluded", "--note", "Not mine",
                      home=home)
    assert refused.returncode == 3, refused.stderr
    login(home, AUDITOR)
    only_refused = run_cli("audit", "log", "--outcome", "refused", home=home, env={"COLUMNS": "250"})
    assert only_refused.returncode == 0, only_refused.stderr
    lines = only_refused.stdout.splitlines()
    assert lines and all(" refused " in line for line in lines) and any(" disposition " in line for line in lines)
    page = run_cli("audit", "log", "--page", "1", "--per-page", "3", home=home, env={"COLUMNS": "250"})
    rows = page.stdout.splitlines()
    ids = [int(line.split()[0]) for line in rows[:-1]]
    assert len(ids) == 3 and ids == sorted(ids, reverse=True)
    ws = open_workspace(home)
    total, last = len(audit.entries(ws.conn)), audit.entries(ws.conn, limit=1)[0]
    ws.close()
    assert re.fullmatch(rf"page 1 of {-(-(total - 1) // 3)}, {total - 1} entries, newest first", rows[-1])
    grouped = run_cli("audit", "log", "--action", "audit", "--json", home=home)
    assert {e["action"] for e in json.loads(grouped.stdout)} <= {"audit.log", "audit.verify", "audit.checkpoint"}
    today = last["at"][:10]
    dated = json.loads(run_cli("audit", "log", "--since", today, "--until", today, "--json", home=home).stdout)
    assert dated and all(e["at"].startswith(today) for e in dated)
    assert_clean_error(run_cli("audit", "log", "--since", today, "--until", "2000-01-01", home=home), "before")
    assert_clean_error(run_cli("audit", "log", "--until", "yesterday", home=home), "not a date", "YYYY-MM-DD")
    assert_clean_error(run_cli("audit", "log", "--page", "1", "--limit", "3", home=home), "--limit", "--page")


def test_no_reprs_microseconds_or_wrong_plurals_in_everyday_output(home, tmp_path):
    signed_in = login(home, ANALYST).stdout
    assert not MICROSECONDS.search(signed_in) and re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC", signed_in)
    folder = tmp_path / "more"
    (folder / "nobody").mkdir(parents=True)  # an empty subject folder: refused as empty-folder
    (folder / "barack_obama").mkdir()
    (folder / "barack_obama" / "a.jpg").write_bytes(next(GALLERY_DIR.glob("barack_obama/*")).read_bytes())
    enrolled = run_cli("gallery", "enroll", GALLERY, str(folder), home=home)
    assert enrolled.returncode == 0, enrolled.stderr
    assert "0 new subjects" in enrolled.stdout
    shown = run_cli("gallery", "show", GALLERY, home=home)
    assert shown.returncode == 0, shown.stderr
    assert "refused photos 1 (empty-folder 1)" in shown.stdout and not REPRS.search(shown.stdout)
    status = run_cli("index", "status", GALLERY, home=home)
    assert status.returncode == 0, status.stderr
    assert not REPRS.search(status.stdout) and not MICROSECONDS.search(status.stdout)
    login(home, AGENT)
    for args in (("whoami",), ("searches",)):
        done = run_cli(*args, home=home)
        assert done.returncode == 0 and not MICROSECONDS.search(done.stdout) and not REPRS.search(done.stdout)


def test_usage_errors_are_one_line_naming_the_option_and_where_help_is(home):
    """click's own usage errors are three lines (usage, a hint, the error); leadmatch's are one, exit code 2."""
    login(home, AUDITOR)
    cases = {("audit", "log", "--page", "0"): ("'--page'", "0 is not in the range", "see leadmatch audit log --help"),
             ("nosuch",): ("no such command 'nosuch'", "see leadmatch --help"),
             ("gallery", "create", "g3", "--approved-by", "X"): ("missing option '--authority'",
                                                                "see leadmatch gallery create --help"),
             ("search", "--bogus"): ("no such option", "--bogus", "see leadmatch search --help")}
    for args, fragments in cases.items():
        result = run_cli(*args, home=home)
        assert_clean_error(result, *fragments, code=2)
        assert result.stderr.count("\n") == 1 and "Usage:" not in result.stderr, result.stderr
    help_text = run_cli("audit", "log", "--help", home=home)
    assert help_text.returncode == 0 and "Usage:" in help_text.stdout and not help_text.stderr

