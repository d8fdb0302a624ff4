"""Shared fixtures: the real sample photos, and workspaces enrolled once and copied per test."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from leadmatch.biometrics import cnn_detector
from leadmatch.biometrics.models import registry as models
from leadmatch.record.workspace import init, open_workspace
from leadmatch.search.run import run

from .helpers import AGENT, CHROMIUM, FACES, GALLERY_DIR, add_people, enrolled_sample, free_port, search_request

#: Which test modules are slow (the real CLI, service or Ray in subprocesses, clips, kill trials), need root (OS
#: accounts for the service); every test_browser* module drives Chromium. `make test` runs everything; `make test-fast` leaves these out.
MARKED = {
    "root": {"test_service", "test_service_hardening"},
    "slow": {"test_cluster", "test_cli_polish", "test_robustness", "test_races", "test_signin_throttle", "test_checkpoint_schedule",
             "test_private_files", "test_index_scale", "test_casemedia_service", "test_casemedia", "test_probes",
             "test_video", "test_parity", "test_evaluation", "test_onnx_descriptor", "test_cnn_detector",
             "test_accuracy_on_samples", "test_enroll_root", "test_cli", "test_governance", "test_faceres",
             "test_probe_flow"},
}


#: Single tests of the other modules that take a second or more (measured: `pytest --durations=0`).
SLOW_TESTS = {
    "test_admin_commands::test_gallery_subjects_and_purge_dry_run_on_the_command_line",
    "test_admin_commands::test_purge_dry_run_lists_each_search_it_would_purge",
    "test_admin_commands::test_the_preview_counts_what_the_purge_then_removes_and_deletes_nothing",
    "test_admin_pages::test_a_plain_form_post_enrolls_and_only_its_analyst_sees_the_summary",
    "test_admin_pages::test_enrollment_problems_keep_the_page_and_a_wrong_role_is_refused_and_audited",
    "test_admin_pages::test_a_refused_new_gallery_and_new_user_come_back_filled_in",
    "test_api::test_accounts_purposes_subjects_and_index_through_the_api",
    "test_api::test_admin_routes_refuse_the_wrong_role_change_nothing_and_are_audited",
    "test_api::test_bad_video_options_get_one_clear_message",
    "test_api::test_clip_with_two_people_answers_409_listing_the_tracks",
    "test_api::test_decoding_workers_end_with_the_service_even_when_it_is_killed",
    "test_api::test_decompression_bomb_errors_while_other_requests_are_answered",
    "test_api::test_every_route_refuses_without_a_token",
    "test_api::test_several_stills_through_the_api",
    "test_api::test_sign_in_throttling_engages_after_five_failures_and_is_audited",
    "test_api::test_the_whole_story_through_the_api",
    "test_api::test_video_search_through_the_api",
    "test_api::test_wrong_role_is_refused_and_audited",
    "test_audit_integrity::test_checkpoint_from_another_workspace_is_refused",
    "test_audit_integrity::test_checkpoint_roundtrip",
    "test_audit_integrity::test_expect_head_failure_says_expected_and_found",
    "test_audit_integrity::test_key_is_private_and_never_in_any_output_or_the_database",
    "test_audit_integrity::test_recomputed_chain_is_detected",
    "test_audit_integrity::test_truncation_behind_checkpoint",
    "test_calibration::test_build_stores_the_leave_one_out_impostor_distances",
    "test_calibration::test_estimate_matches_searches_for_people_not_enrolled",
    "test_calibration::test_one_person_under_two_subjects_is_counted_and_pulls_the_threshold_down",
    "test_calibration::test_removing_a_subject_recalibrates",
    "test_calibration::test_small_gallery_is_capped_at_the_one_to_one_threshold",
    "test_calibration::test_target_fpir_is_admin_only_range_checked_and_audited",
    "test_calibration::test_threshold_leaves_the_target_share_of_impostors_below_it",
    "test_casemedia_web::test_an_agent_adds_the_case_media_from_the_page",
    "test_casemedia_web::test_an_agent_not_on_the_case_gets_403",
    "test_casemedia_web::test_an_enhanced_probe_is_searched_from_the_page_with_its_original_and_refused_without",
    "test_casemedia_web::test_persons_page_shows_best_faces_and_its_forms_change_the_grouping",
    "test_detection::test_striped_detection_embeds_the_sample_probes_as_one_pass_does",
    "test_detection::test_strips_give_the_same_faces_whatever_the_core_count",
    "test_gallery_and_index::test_enroll_from_csv_manifest_keeps_metadata",
    "test_gallery_and_index::test_enrollment_writes_match_face_recognition_reference",
    "test_gallery_and_index::test_manifest_without_subject_column_is_refused",
    "test_index_integrity::test_swapped_index_vectors_are_rebuilt",
    "test_injection::test_case_number_with_escape_codes_is_refused_audited_and_never_printed_raw",
    "test_injection::test_forged_audit_line_and_escape_codes_come_out_escaped_in_audit_log",
    "test_injection::test_json_output_writes_invisible_characters_as_escapes_and_keeps_the_data",
    "test_injection::test_rich_markup_in_a_stored_name_does_not_style_the_terminal",
    "test_policy_and_export::test_a_tampered_export_does_not_verify",
    "test_policy_and_export::test_case_export_and_verify_on_the_command_line",
    "test_policy_and_export::test_case_export_lists_every_search_file_and_audit_entry_and_verifies",
    "test_policy_and_export::test_only_auditors_reviewers_and_admins_export_and_never_over_a_folder",
    "test_policy_and_export::test_video_off_searches_a_person_with_its_photos_only_and_refuses_one_seen_only_in_clips",
    "test_policy_and_export::test_whoami_shows_the_policy",
    "test_web::test_abandoned_and_failed_uploads_are_swept",
    "test_web::test_bad_upload_is_refused_with_its_reason_and_audited",
    "test_web::test_clip_with_two_people_shows_a_track_picker",
    "test_web::test_error_pages_show_no_server_paths",
    "test_web::test_report_is_self_contained_and_labelled_everywhere",
    "test_web::test_several_stills_in_one_form",
    "test_web::test_video_search_in_the_form_shows_its_frames",
}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        module = item.module.__name__.rsplit(".", 1)[-1]
        for marker, modules in MARKED.items():
            if module in modules:
                item.add_marker(marker)
        if module.startswith("test_browser"):  # every browser module: test_browser, test_browser_<role>…
            item.add_marker("browser")
        if f"{module}::{item.originalname}" in SLOW_TESTS:
            item.add_marker("slow")


if not (GALLERY_DIR.is_dir() and (FACES / "probes.csv").is_file()):
    pytest.exit(f"sample photos not found at {FACES}: put shared/ beside the project or set LEADMATCH_TEST_PHOTOS",
                returncode=2)


@pytest.fixture(scope="session")
def enrolled_template(tmp_path_factory) -> Path:
    """A workspace with the 6-person sample gallery enrolled, built once per test session."""
    return enrolled_sample(tmp_path_factory.mktemp("template") / "home")


@pytest.fixture
def home(enrolled_template, tmp_path) -> Path:
    """A private copy of the enrolled workspace."""
    target = tmp_path / "home"
    shutil.copytree(enrolled_template, target)
    return target


@pytest.fixture
def searched(home) -> str:
    """The id of one search of the agent's, on a copy of the enrolled workspace."""
    ws = open_workspace(home)
    result = run(ws, AGENT, search_request("obama-720p.jpg", top_k=3))
    ws.close()
    return result["search_id"]


@pytest.fixture
def ws(home):
    workspace = open_workspace(home)
    yield workspace
    workspace.close()


@pytest.fixture
def empty_ws(tmp_path):
    """A workspace with accounts but no gallery."""
    workspace, _ = init(tmp_path / "empty")
    add_people(workspace)
    yield workspace
    workspace.close()


@pytest.fixture(autouse=True)
def private_credentials(tmp_path, monkeypatch):
    """Session tokens go to a per-test folder, never the real ~/.config."""
    monkeypatch.setenv("LEADMATCH_CONFIG_DIR", str(tmp_path / "config"))


@pytest.fixture
def own_models(tmp_path, monkeypatch):
    """Converted models go to a private folder for the test; cached paths and sessions are forgotten around it."""
    folder = tmp_path / "models"
    monkeypatch.setenv("LEADMATCH_MODELS_DIR", str(folder))

    def forget():
        models.onnx_path.cache_clear()
        models.mmod_onnx_path.cache_clear()
        models.faceres_onnx_path.cache_clear()
        models.faceres_source.cache_clear()
        models._SESSIONS.clear()
        models._MMOD_SESSIONS.clear()
        models._FACERES_SESSIONS.clear()
        cnn_detector.settings.cache_clear()

    forget()
    yield folder
    forget()




@pytest.fixture
def server(home):
    """`leadmatch serve` on the enrolled sample workspace, on a free localhost port; its URL."""
    port = free_port()
    subprocess.run(["chmod", "-R", "go-rwx", str(home)], check=True)  # the service refuses a looser workspace
    process = subprocess.Popen([sys.executable, "-m", "leadmatch", "--home", str(home), "serve", "--port", str(port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urllib.request.urlopen(url + "/login", timeout=1)
            break
        except OSError:
            time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("the server did not start: " + process.stdout.read().decode(errors="replace"))
    yield url
    process.terminate()
    process.wait(10)


@pytest.fixture
def browser():
    """Debian's Chromium, headless, driven by Playwright (never `playwright install`)."""
    if not Path(CHROMIUM).exists():  # a failure, not a skip: CI installs it (.ci/run), and so must a developer
        pytest.fail(f"{CHROMIUM} not found: install Debian's chromium (apt-get install -y chromium)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()
