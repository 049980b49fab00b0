"""pipeline.quantize: static QDQ / dynamic int8 on real MRL data, the accuracy gate, metadata, bad inputs;
every exported file runs end to end through `python -m pipeline.evaluate`. Bad models and output paths are refused
before any data is read (no ../shared needed)."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import onnx
import pytest

from pipeline import export, quantize
from pipeline.data import load_mrl
from trained_model import MRL_ZIP, REPO, SPLIT, trained_checkpoint

needs_mrl = pytest.mark.skipif(not MRL_ZIP.exists(), reason=f"needs the MRL zip at {MRL_ZIP} (../shared)")
SHIPPED = REPO / "models"


def _run(*args, timeout=900):
    return subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def fp32(tmp_path_factory):
    out = tmp_path_factory.mktemp("quant") / "eye_state.onnx"
    export.export_checkpoint(trained_checkpoint(), out)
    return out


@pytest.fixture(scope="module")
def split():
    return json.loads(SPLIT.read_text())


@pytest.fixture(scope="module")
def small_sets(split):
    """Real images: calibration from training subjects, evaluation from validation / test subjects."""
    train = load_mrl(MRL_ZIP, 48, subjects=split["train"], max_images=2000, seed=1)
    val = load_mrl(MRL_ZIP, 48, subjects=split["val"], max_images=1000, seed=2)
    test = load_mrl(MRL_ZIP, 48, subjects=split["test"], max_images=2500, seed=3)
    calib = train.subset(quantize.balanced_sample(train.labels, 400))
    return quantize.EvalSets(calib, val, test, "test sample")


@pytest.mark.shared
@needs_mrl
def test_static_int8_matches_fp32_on_real_images(fp32, small_sets, tmp_path):
    settings = quantize.quantize_static_model(fp32, tmp_path / "s.onnx", small_sets.calib.images, method="minmax")
    assert settings["format"] == "QDQ" and settings["per_channel"]
    ops = {n.op_type for n in onnx.load(str(tmp_path / "s.onnx")).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    a = quantize.score(fp32, small_sets.test)
    b = quantize.score(tmp_path / "s.onnx", small_sets.test)
    assert abs(a["accuracy"] - b["accuracy"]) <= 0.01, (a["accuracy"], b["accuracy"])
    assert (tmp_path / "s.onnx").stat().st_size < 0.6 * fp32.stat().st_size


@pytest.mark.shared
@needs_mrl
def test_calibration_uses_balanced_training_subjects_only(fp32, split):
    sets = quantize.load_eval_sets(MRL_ZIP, 48, SPLIT, n_calib=600, max_val=500, max_test=500)
    train_ids = {int(s.lstrip("s")) for s in split["train"]}
    assert set(np.unique(sets.calib.subjects)) <= train_ids
    assert np.bincount(sets.calib.labels).tolist() == [300, 300]
    assert set(np.unique(sets.val.subjects)) <= {int(s.lstrip("s")) for s in split["val"]}
    assert set(np.unique(sets.test.subjects)) <= {int(s.lstrip("s")) for s in split["test"]}
    assert len(sets.val) == len(sets.test) == 500


@pytest.mark.shared
@needs_mrl
def test_accuracy_gate_refuses_a_broken_calibration(fp32, small_sets, tmp_path):
    """Calibrating on white (overexposed) frames gives useless activation ranges: accuracy collapses, nothing
    is written unless forced."""
    white = small_sets.calib.subset(np.arange(100))
    white.images = np.full_like(white.images, 255)
    sets = quantize.EvalSets(white, small_sets.val, small_sets.test, "white calibration frames")
    out = tmp_path / "int8.onnx"
    with pytest.raises(quantize.QuantizeError, match="not written"):
        quantize.quantize(fp32, out, sets, mode="static", method="minmax", verbose=False)
    assert list(tmp_path.iterdir()) == []
    report = quantize.quantize(fp32, out, sets, mode="static", method="minmax", force=True, verbose=False)
    assert out.is_file() and report["accuracy_drop_points"] > quantize.MAX_DROP_POINTS


def _metrics_via_evaluate_cli(model, data, tmp_path):
    js = tmp_path / f"{model.stem}_eval.json"
    res = _run("pipeline.evaluate", "--weights", str(model), "--data", str(data), "--json", str(js))
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(js.read_text())


def _eye_folder(data, dst):
    """An open/closed folder of PNG eye crops, as a user brings: the evaluate CLI's other input."""
    import cv2

    for i, (image, label) in enumerate(zip(data.images, data.labels)):
        folder = dst / ("open" if label else "closed")
        folder.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / f"eye_{i:05d}.png"), image)
    return dst


@pytest.mark.shared
@needs_mrl
@pytest.mark.slow
def test_cli_static_and_dynamic_then_evaluate_every_file(fp32, small_sets, tmp_path):
    static, dynamic = tmp_path / "eye_state.int8.onnx", tmp_path / "eye_state.dyn.onnx"
    res = _run("pipeline.quantize", "--model", str(fp32), "--calib", str(MRL_ZIP), "--out", str(static),
               "--calib-images", "500", "--max-val", "1000", "--max-test", "2000", "--force")  # the gate has its own test
    assert res.returncode == 0, res.stderr[-3000:]
    assert "validation |p_open - fp32|" in res.stdout and "drop" in res.stdout
    res = _run("pipeline.quantize", "--model", str(fp32), "--calib", str(MRL_ZIP), "--out", str(dynamic),
               "--mode", "dynamic", "--max-val", "1000", "--max-test", "2000", "--force")
    assert res.returncode == 0, res.stderr[-3000:]

    fp32_props = export.read_metadata(fp32)
    for path, mode in ((static, "static"), (dynamic, "dynamic")):
        props = export.read_metadata(path)
        for key in ("eyestate.preprocess", "eyestate.classes", "eyestate.model", "eyestate.source_sha256"):
            assert props[key] == fp32_props[key]
        settings = json.loads(props["eyestate.quantization"])
        assert settings["mode"] == mode
        if mode == "static":
            assert settings["calibration"] in quantize.CALIB_METHODS and settings["activations"] == "uint8"
        assert path.stat().st_size < 0.6 * fp32.stat().st_size

    # 2500 test-subject crops as a folder (an MRL zip through the CLI: tests/test_evaluate.py); on the whole test split
    # the dynamic int8 file alone took 24 s of this test's 68
    folder = _eye_folder(small_sets.test, tmp_path / "test_eyes")
    results = {p.name: _metrics_via_evaluate_cli(p, folder, tmp_path) for p in (fp32, static, dynamic)}
    assert {r["n"] for r in results.values()} == {len(small_sets.test)}  # every file the same images
    for name, m in results.items():
        assert 0.75 < m["accuracy"] <= 1.0 and 0.7 < m["macro_f1"] <= 1.0, (name, m["accuracy"], m["macro_f1"])
        assert sum(map(sum, m["confusion"])) == m["n"]
    base = results[fp32.name]["accuracy"]
    assert abs(results[static.name]["accuracy"] - base) < 0.01
    assert abs(results[dynamic.name]["accuracy"] - base) < 0.01


@pytest.mark.shared
@needs_mrl
@pytest.mark.parametrize("layout", ["missing", "empty", "wrong"])
def test_cli_refuses_a_bad_calibration_folder(fp32, tmp_path, layout):
    calib = tmp_path / "calib"
    if layout != "missing":
        calib.mkdir()
    if layout == "wrong":
        (calib / "eyes").mkdir()
        (calib / "eyes" / "img_001.png").write_bytes(b"\x89PNG not really")
        (calib / "notes.txt").write_text("labels are elsewhere")
    out = tmp_path / "int8.onnx"
    res = _run("pipeline.quantize", "--model", str(fp32), "--calib", str(calib), "--out", str(out), timeout=120)
    assert res.returncode != 0
    assert "calibration data" in res.stderr and "expected" in res.stderr and "open/" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not out.exists()


def test_quantized_models_and_the_pages_rgba_build_are_refused_up_front(rgba_eye_model, tmp_path, capsys):
    """Quantizing an int8 model again failed inside onnxruntime after the whole calibration; the RGBA build takes
    canvas bytes. Both are refused before the calibration data is read (here: an empty folder)."""
    dynamic = tmp_path / "dynamic.onnx"
    quantize.quantize_dynamic_model(SHIPPED / "eye_state.onnx", dynamic)
    out = tmp_path / "out.onnx"
    for model, message in ((SHIPPED / "eye_state.int8.onnx", r"already quantized \(it has DequantizeLinear, Quantize"),
                           (dynamic, r"already quantized \(it has ConvInteger.*give the fp32 \.onnx"),
                           (rgba_eye_model, r"RGBA build .*quantize models/eye_state\.onnx instead")):
        assert quantize.main(["--model", str(model), "--calib", str(tmp_path / "empty"), "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert re.search(message, err) and "calibration" not in err, err
    assert not out.exists()


@pytest.mark.parametrize("option", ["--out", "--report"])
def test_an_output_path_that_is_a_folder_is_refused_before_any_work(tmp_path, capsys, option):
    args = {"--model": str(SHIPPED / "eye_state.onnx"), "--calib": str(tmp_path / "nothing"),
            "--out": str(tmp_path / "out.onnx"), option: str(tmp_path)}
    with pytest.raises(SystemExit):
        quantize.main([x for pair in args.items() for x in pair])
    assert f"argument {option}: {tmp_path} is an existing folder" in capsys.readouterr().err


def test_an_output_that_would_replace_the_model_or_the_other_output_is_refused(tmp_path, capsys):
    model = tmp_path / "eye_state.onnx"
    model.write_bytes((SHIPPED / "eye_state.onnx").read_bytes())
    for args, message in ((["--out", str(model)], f"--out {model} is one of the input files"),
                          (["--out", str(tmp_path / "q.onnx"), "--report", str(tmp_path / "q.onnx")],
                           "--out and --report both name"),
                          (["--out", str(tmp_path / "q.json")], "expected a file name ending in .onnx")):
        with pytest.raises(SystemExit):
            quantize.main(["--model", str(model), "--calib", str(tmp_path / "nothing"), *args])
        assert message in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eye_state.onnx"]
    assert model.read_bytes() == (SHIPPED / "eye_state.onnx").read_bytes()
