"""The command line as a user meets it: the contract, one-line errors, exit codes, lead-only output."""

from __future__ import annotations

import io
import json

from PIL import Image, ImageFilter

from leadmatch.record import audit
from leadmatch.record.workspace import open_workspace

from .helpers import (
    AGENT,
    ANALYST,
    FACES,
    GALLERY,
    LABEL,
    PASSWORD,
    PROBES_DIR,
    assert_clean_error,
    cli_search,
    login,
    run_cli,
)


def test_missing_workspace_says_to_run_init(tmp_path):
    result = run_cli("gallery", "list", home=tmp_path / "nowhere")
    assert_clean_error(result, "no leadmatch workspace", "init")


def test_init_create_enroll_list_show_from_the_command_line(tmp_path):
    home = tmp_path / "ws"
    assert run_cli("init", "--admin", "boss", "--password-stdin", home=home, input=PASSWORD + "\n").returncode == 0
    login(home, "boss")
    added = run_cli("user", "add", "ana", "--role", "analyst", "--password-stdin", home=home, input=PASSWORD + "\n")
    assert added.returncode == 0, added.stderr
    login(home, "ana")
    created = run_cli("gallery", "create", "mugshots", "--authority", "State code 12-3", "--approved-by", "Chief A",
                      "--approved-on", "2026-02-01", "--source", "booking photos", home=home)
    assert created.returncode == 0, created.stderr
    enrolled = run_cli("gallery", "enroll", "mugshots", str(FACES / "gallery" / "joe_biden"), home=home)
    # photos directly in the given folder have no subject folder: refused and listed, never dropped
    assert "2 refused" in enrolled.stdout and "no-subject" in enrolled.stdout
    enrolled = run_cli("gallery", "enroll", "mugshots", str(FACES / "gallery"), "--workers", "2", "--json", home=home)
    summary = json.loads(enrolled.stdout)
    assert (summary["enrolled"], summary["skipped_duplicates"], summary["refused"]) == (11, 0, [])
    listing = run_cli("gallery", "list", home=home)
    assert "mugshots" in listing.stdout and "State code 12-3" in listing.stdout
    shown = json.loads(run_cli("gallery", "show", "mugshots", "--json", home=home).stdout)
    assert (shown["subjects"], shown["faces"], shown["refused_photos"]) == (6, 11, 2)
    assert shown["index"]["type"] == "Flat"


def test_gallery_create_without_authorization_is_refused(home):
    login(home, ANALYST)
    result = run_cli("gallery", "create", "g2", "--authority", " ", "--approved-by", "X", "--approved-on",
                     "2026-01-01", "--source", "s", home=home)
    assert_clean_error(result, "authorization", code=3)
    missing = run_cli("gallery", "create", "g3", "--approved-by", "X", "--approved-on", "2026-01-01",
                      "--source", "s", home=home)
    assert missing.returncode == 2 and "--authority" in missing.stderr and "Traceback" not in missing.stderr



def test_a_gallery_cannot_take_a_name_a_web_address_holds(home):
    """/galleries/new is the web's form for a new gallery, so a gallery named "new" could never be opened there."""
    login(home, ANALYST)
    for name in ("new", "NEW"):
        result = run_cli("gallery", "create", name, "--authority", "A §1", "--approved-by", "X", "--approved-on",
                         "2026-01-01", "--source", "s", home=home)
        assert_clean_error(result, f"gallery name '{name}' is reserved", "choose another name", code=1)
    ws = open_workspace(home)
    refused = [e for e in audit.entries(ws.conn) if e["action"] == "gallery.create" and e["outcome"] == "refused"]
    assert [e["objects"]["gallery"] for e in refused][-2:] == ["new", "NEW"]
    assert ws.conn.execute("SELECT COUNT(*) FROM galleries WHERE lower(name) = 'new'").fetchone()[0] == 0
    newer = run_cli("gallery", "create", "newer", "--authority", "A §1", "--approved-by", "X", "--approved-on",
                    "2026-01-01", "--source", "s", home=home)
    assert newer.returncode == 0, newer.stderr


def test_search_json_contract(home):
    login(home, AGENT)
    result = cli_search(home, PROBES_DIR / "obama-480p.jpg", "--json", "--top-k", "5")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert {"search_id", "case", "gallery", "notice", "probe", "candidates"} <= data.keys()
    assert data["notice"] == LABEL and data["case"] == "C-42" and data["gallery"] == GALLERY
    assert {"sha256", "face_index", "box", "quality"} <= data["probe"].keys()
    assert len(data["candidates"]) == 5
    first = data["candidates"][0]
    assert {"rank", "subject", "face_id", "image", "distance", "false_alarm_rate", "false_alarm_text",
            "within_threshold", "lead_only", "label"} <= first.keys()
    assert first["subject"] == "barack_obama" and first["rank"] == 1
    assert all(c["lead_only"] is True and c["label"] == LABEL for c in data["candidates"])
    shown = json.loads(run_cli("show", data["search_id"], "--json", home=home).stdout)
    assert shown["candidates"] == data["candidates"]


def test_search_terminal_output_labels_every_candidate(home):
    login(home, AGENT)
    result = cli_search(home, PROBES_DIR / "alex_lacamoire1.jpg", "--top-k", "4")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == LABEL and lines[-1] == LABEL
    rows = [line for line in lines if line.startswith("│")]
    assert len(rows) == 4 and all(LABEL in row for row in rows)
    assert "alex_lacamoire" in rows[0]


def test_several_faces_without_choice_lists_them_and_asks(home):
    login(home, AGENT)
    result = cli_search(home, PROBES_DIR / "obama_and_biden.jpg")
    assert_clean_error(result, "holds 3 faces", "--face", code=4)
    assert result.stderr.count("  face ") == 3
    chosen = cli_search(home, PROBES_DIR / "obama_and_biden.jpg", "--face", "2", "--json")
    assert json.loads(chosen.stdout)["candidates"][0]["subject"] == "barack_obama"
    assert_clean_error(cli_search(home, PROBES_DIR / "obama_and_biden.jpg", "--face", "7"), "does not exist")


def test_out_of_range_top_k_is_refused(home):
    login(home, AGENT)
    assert_clean_error(cli_search(home, PROBES_DIR / "obama1.jpg", "--top-k", "51"), "--top-k 51", "2 to 50")
    assert_clean_error(cli_search(home, PROBES_DIR / "obama1.jpg", "--top-k", "1"), "--top-k 1")


def test_bad_probe_files_get_one_line_errors_and_are_audited(home, tmp_path):
    login(home, AGENT)
    jpeg = (PROBES_DIR / "obama1.jpg").read_bytes()
    bomb = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(bomb, "PNG")
    cases = {
        "empty.jpg": (b"", "empty"),
        "truncated.jpg": (jpeg[: len(jpeg) // 4], "corrupt or truncated"),
        "notes.jpg": (b"plain text, not a picture\n" * 40, "not an image"),
        "huge.png": (bomb.getvalue(), "too large"),
    }
    for name, (data, message) in cases.items():
        (tmp_path / name).write_bytes(data)
        assert_clean_error(cli_search(home, tmp_path / name), message, code=1)
    assert_clean_error(cli_search(home, tmp_path / "absent.jpg"), "not found")
    blank = tmp_path / "wall.png"
    Image.new("RGB", (640, 480), (90, 90, 90)).save(blank)
    assert_clean_error(cli_search(home, blank), "no face found")
    ws = open_workspace(home)
    refused = [e for e in audit.entries(ws.conn) if e["action"] == "search" and e["outcome"] == "refused"]
    assert len(refused) == 6 and all(e["case_number"] == "C-42" for e in refused)
    assert all(e["photo_sha256"] for e in refused if "absent" not in e["objects"]["probe"])


def test_low_quality_probes_are_refused_with_measured_values(home, tmp_path):
    login(home, AGENT)
    blurred = tmp_path / "blurred.png"
    # blurred until the chip's sharpness (about 2.7 here) is under the floor (3) while the face is still found;
    # PNG, since JPEG's block edges would add sharpness back
    Image.open(PROBES_DIR / "obama-1080p.jpg").filter(ImageFilter.GaussianBlur(28)).save(blurred)
    assert_clean_error(cli_search(home, blurred), "sharpness", "minimum", code=3)
    tiny = tmp_path / "tiny.png"  # a 36 px face, 12 px between the eyes: found, but below the floor
    Image.open(PROBES_DIR / "obama-240p.jpg").resize((213, 120)).save(tiny)
    assert_clean_error(cli_search(home, tiny), "between the eyes", "minimum", code=3)
    tinier = tmp_path / "tinier.png"  # a 20 px face: below what probes are searched for at all
    Image.open(PROBES_DIR / "obama-240p.jpg").resize((150, 84)).save(tinier)
    assert_clean_error(cli_search(home, tinier), "no face found", "at least 40 px wide", code=1)


def test_small_probe_is_searched_but_flagged_low_quality(home):
    login(home, AGENT)
    data = json.loads(cli_search(home, PROBES_DIR / "obama-240p.jpg", "--json").stdout)
    assert any(flag.startswith("low-quality") for flag in data["flags"])
    assert data["candidates"][0]["subject"] == "barack_obama"


def test_models_match_the_model_card(home):
    result = run_cli("models", home=home)
    # three weight files, the three converted ONNX models (FaceRes's too), FaceRes against TensorFlow, and the
    # ONNX-vs-dlib agreements (descriptor, detector)
    assert result.returncode == 0 and result.stdout.count("ok  ") == 9


def test_remove_subject_from_the_command_line(home):
    login(home, ANALYST)
    assert run_cli("gallery", "remove", GALLERY, "--subject", "joe_biden", home=home).returncode == 0
    login(home, AGENT)
    data = json.loads(cli_search(home, PROBES_DIR / "two_people.jpg", "--face", "2", "--json").stdout)
    assert "joe_biden" not in {c["subject"] for c in data["candidates"]}
    # the agent may not remove subjects; the analyst gets a clear error for a subject already gone
    assert_clean_error(run_cli("gallery", "remove", GALLERY, "--subject", "rose_leslie", home=home), "analyst role",
                       code=3)
    login(home, ANALYST)
    assert_clean_error(run_cli("gallery", "remove", GALLERY, "--subject", "joe_biden", home=home), "no subject")


def test_demo_runs_on_another_folder_and_explains_an_empty_one(tmp_path):
    result = run_cli("demo", "--photos", str(tmp_path))
    assert_clean_error(result, "no sample photos", "--photos")
    ok = run_cli("demo", "--photos", str(FACES))
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.count(LABEL) >= 8 and "enrolled 11 photos" in ok.stdout
    assert "closed-identified" in ok.stdout and "closed-no-identification" in ok.stdout
    assert "audit chain intact" in ok.stdout
