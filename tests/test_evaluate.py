"""pipeline.evaluate / metrics / gradcam: metric definitions, .pth and .onnx agree, JSON keys, Grad-CAM grid."""
from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from pipeline.evaluate import main as evaluate_main
from pipeline.metrics import classification_metrics, expected_calibration_error
from pipeline.models import create_model, make_checkpoint

REQUIRED_KEYS = {"accuracy", "precision", "recall", "macro_f1", "roc_auc", "ece", "n", "confusion", "per_subject",
                 "subgroups", "per_subject_summary", "balanced_subject_accuracy"}


def test_metrics_treat_closed_as_positive_and_summarise_subjects():
    y = np.array([0, 0, 0, 1, 1, 1, 0, 1])
    p_open = np.array([0.1, 0.2, 0.7, 0.9, 0.8, 0.4, 0.3, 0.6])  # one closed->open and one open->closed mistake
    meta = {"subject": np.array([1, 1, 1, 1, 2, 2, 2, 2]), "glasses": np.array([0, 0, 0, 0, 1, 1, 1, 1])}
    m = classification_metrics(y, p_open, meta)
    assert m["n"] == 8 and m["accuracy"] == 0.75
    assert m["confusion"] == [[3, 1], [1, 3]]
    assert m["precision"] == 0.75 and m["recall"] == 0.75 and m["positive_class"] == "closed"
    assert m["per_subject"]["s0001"]["accuracy"] == 0.75 and m["per_subject"]["s0002"]["accuracy"] == 0.75
    assert m["balanced_subject_accuracy"] == 0.75 and m["per_subject_summary"]["worst_subject"] in ("s0001", "s0002")
    assert set(m["subgroups"]["glasses"]) == {"no", "yes"}
    assert 0.5 < m["roc_auc"] <= 1
    assert REQUIRED_KEYS <= set(m)


def test_ece_is_zero_when_confidence_matches_accuracy():
    y = np.array([1] * 8 + [0] * 2)
    assert expected_calibration_error(y, np.full(10, 0.8)) == pytest.approx(0.0)
    assert expected_calibration_error(np.array([0, 1]), np.array([1.0, 1.0])) == pytest.approx(0.5)


@pytest.mark.shared
def test_pth_and_onnx_give_identical_numbers(smoke_run, small_mrl_zip, tmp_path):
    from pipeline.data import load_any
    from pipeline.export import export_checkpoint

    onnx_path = tmp_path / "model.onnx"
    parity = load_any(small_mrl_zip, 32, cache=False).images[:64]
    export_checkpoint(smoke_run / "best.pth", onnx_path, images=parity, verbose=False)
    results = {}
    for kind, weights in (("pth", smoke_run / "best.pth"), ("onnx", onnx_path)):
        out = tmp_path / f"eval_{kind}.json"
        evaluate_main(["--weights", str(weights), "--data", str(small_mrl_zip), "--batch-size", "64",
                       "--json", str(out), "--no-cache"])
        results[kind] = json.loads(out.read_text())
        assert (tmp_path / f"eval_{kind}_confusion.png").is_file()
    a, b = results["pth"], results["onnx"]
    assert REQUIRED_KEYS <= set(a) and a["part"] == "test" and a["n"] == 180
    assert set(a["subgroups"]) == {"glasses", "lighting", "reflections", "sensor"}
    assert set(a["per_subject"]) == set(a["subjects"])
    for key in ("accuracy", "precision", "recall", "macro_f1", "roc_auc", "ece", "balanced_subject_accuracy"):
        assert a[key] == pytest.approx(b[key], abs=1e-6), key
    assert a["confusion"] == b["confusion"] and a["per_subject"] == b["per_subject"]
    assert a["preprocess"] == b["preprocess"]


def test_onnx_without_preprocess_metadata_is_refused(tmp_path):
    model = create_model("baseline_cnn").eval()
    path = tmp_path / "bare.onnx"
    with pytest.warns(DeprecationWarning):  # the legacy exporter: quick, and enough for a model without metadata
        torch.onnx.export(model, torch.zeros(1, 1, 48, 48), str(path), dynamo=False)
    with pytest.raises(SystemExit, match="error: .*eyestate.preprocess"):
        evaluate_main(["--weights", str(path), "--data", str(tmp_path)])


def test_model_files_that_are_not_models_get_a_clear_error(tmp_path):
    """A text file renamed .pth or .onnx: one line saying what the file is not, no traceback."""
    for name in ("notes.pth", "notes.onnx"):
        path = tmp_path / name
        path.write_text("not a model at all\n" * 20)
        with pytest.raises(SystemExit, match=r"error: .*notes\.(pth|onnx) is not a readable (torch checkpoint|ONNX model)"):
            evaluate_main(["--weights", str(path), "--data", str(tmp_path)])


def test_evaluate_open_closed_folder_uses_all_images(tmp_path):
    for label in ("open", "closed"):
        (tmp_path / "d" / label).mkdir(parents=True)
        for i in range(5):
            img = np.random.default_rng(i + 10 * (label == "open")).integers(0, 255, (30, 30, 3), np.uint8)
            cv2.imwrite(str(tmp_path / "d" / label / f"{i}.jpg"), img)
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pth"
    torch.save(make_checkpoint(create_model("baseline_cnn"), "baseline_cnn"), ckpt)
    (tmp_path / "d" / "open" / "broken.jpg").write_bytes(b"not an image")
    with pytest.warns(UserWarning, match="corrupt"):
        res = evaluate_main(["--weights", str(ckpt), "--data", str(tmp_path / "d"), "--json", str(tmp_path / "e.json"),
                             "--no-cache"])
    assert res["n"] == 10 and res["part"] == "all" and res["per_subject"] == {} and res["subgroups"] == {}
    assert sum(map(sum, res["confusion"])) == 10
    assert res["skipped"]["corrupt"] == ["open/broken.jpg"]  # the JSON says which files are not in n, and why
    # --part on folder data needs the image split that training used; this checkpoint records none
    with pytest.raises(SystemExit, match="--part test on folder data needs the image split"):
        evaluate_main(["--weights", str(ckpt), "--data", str(tmp_path / "d"), "--part", "test", "--no-cache"])


@pytest.mark.shared
def test_gradcam_grid_on_a_trained_checkpoint(smoke_run, small_mrl_zip, tmp_path):
    from pipeline.gradcam import find_target_layer, main as gradcam_main

    out = gradcam_main(["--weights", str(smoke_run / "best.pth"), "--data", str(small_mrl_zip),
                        "--out", str(tmp_path / "cam.png"), "--n", "8"])
    img = cv2.imread(str(out))
    assert img is not None and img.shape[0] > 300
    for name, size in (("baseline_cnn", 32), ("mobilenetv3_small_050", 48)):
        layer_name, layer = find_target_layer(create_model(name), size)
        assert isinstance(layer, torch.nn.Conv2d), layer_name


@pytest.mark.shared
def test_subjects_the_split_does_not_name_are_evaluated_as_test_subjects(smoke_run, small_mrl_zip, tmp_path, capsys):
    """MRL's hidden subjects (or the full 37-subject zip) evaluated with the committed split: people it never names
    were never trained on, so the default part takes them, beside the split's own test subjects."""
    import zipfile

    unseen_only, mixed = tmp_path / "unseen.zip", tmp_path / "mixed.zip"
    with zipfile.ZipFile(small_mrl_zip) as src, zipfile.ZipFile(unseen_only, "w") as a, zipfile.ZipFile(mixed, "w") as b:
        for name in src.namelist():
            data = src.read(name)
            b.writestr(name, data)
            if "/s0009/" in name:  # a test subject's images under a subject id the split does not list
                renamed = name.replace("s0009", "s0001")
                a.writestr(renamed, data)
                b.writestr(renamed, data)
    base = evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(small_mrl_zip), "--no-cache"])
    alone = evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(unseen_only), "--no-cache"])
    assert "s0001" in capsys.readouterr().out
    assert alone["subjects"] == ["s0001"] and alone["n"] == base["per_subject"]["s0009"]["n"]
    assert alone["accuracy"] == pytest.approx(base["per_subject"]["s0009"]["accuracy"])
    both = evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(mixed), "--no-cache"])
    assert both["subjects"] == sorted(base["subjects"] + ["s0001"]) and both["n"] == base["n"] + alone["n"]
    val = evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(mixed), "--no-cache", "--part", "val"])
    assert "s0001" not in val["subjects"]


def test_fold_part_scores_the_people_a_fold_run_held_out(smoke_run, small_mrl_zip):
    """`--fold i --part val` scores exactly the subjects that `pipeline.train --fold i` held out."""
    from pipeline.split import load_split

    fold = load_split()["folds"][1]
    held_out = evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(small_mrl_zip), "--no-cache",
                              "--fold", "1", "--part", "val"])
    assert held_out["subjects"] == sorted(fold["val"])
    with pytest.raises(SystemExit, match="--fold 9: the split has 5 folds"):
        evaluate_main(["--weights", str(smoke_run / "best.pth"), "--data", str(small_mrl_zip), "--no-cache",
                       "--fold", "9", "--part", "val"])


def test_a_folder_of_one_class_says_which_scores_mean_nothing(tmp_path, capsys):
    (tmp_path / "d" / "open").mkdir(parents=True)
    for i in range(4):
        cv2.imwrite(str(tmp_path / "d" / "open" / f"{i}.png"), np.full((30, 30), 50 + 40 * i, np.uint8))
    torch.manual_seed(0)
    ckpt = tmp_path / "m.pth"
    torch.save(make_checkpoint(create_model("baseline_cnn"), "baseline_cnn"), ckpt)
    res = evaluate_main(["--weights", str(ckpt), "--data", str(tmp_path / "d"), "--no-cache"])
    assert res["n"] == 4
    assert "all 4 images are open: the scores of 'closed'" in capsys.readouterr().out


SHIPPED_ONNX = Path(__file__).resolve().parents[1] / "models" / "eye_state.onnx"


def _write_images(folder, names, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for name in names:
        cv2.imwrite(str(folder / name), rng.integers(0, 255, (30, 30), np.uint8))


def test_images_left_out_by_the_layout_are_named_on_the_console(tmp_path, capsys):
    """open/ closed/ holding MRL-named files and others is read as MRL data: the others are skipped, and said so;
    in an open/closed layout, a folder named neither (a Kaggle set's yawn/) is said to carry no label."""
    mixed = tmp_path / "mixed"
    _write_images(mixed / "open", ["s0001_00001_0_0_1_0_0_01.png", "s0001_00002_0_0_1_0_0_01.png", "a.png", "b.png"])
    _write_images(mixed / "closed", ["s0001_00003_0_0_0_0_0_01.png", "c.jpg"], seed=1)
    res = evaluate_main(["--weights", str(SHIPPED_ONNX), "--data", str(mixed), "--part", "all", "--no-cache"])
    err = capsys.readouterr().err
    assert res["n"] == 3 and sorted(res["skipped"]["not_mrl_names"]) == ["closed/c.jpg", "open/a.png", "open/b.png"]
    assert "3 images skipped" in err and "not MRL names" in err and "open/a.png" in err

    kaggle = tmp_path / "kaggle"
    _write_images(kaggle / "train" / "Open", ["1.png", "2.png"])
    _write_images(kaggle / "train" / "Closed", ["1.png", "2.png"], seed=1)
    _write_images(kaggle / "train" / "yawn", ["1.png", "2.png", "3.png"], seed=2)
    res = evaluate_main(["--weights", str(SHIPPED_ONNX), "--data", str(kaggle), "--no-cache"])
    err = capsys.readouterr().err
    assert res["n"] == 4 and len(res["skipped"]["no_label_folder"]) == 3
    assert len([line for line in err.splitlines() if "train/yawn/ (3)" in line]) == 1


def test_gradcam_refuses_an_output_it_cannot_write_before_any_work(tmp_path, capsys):
    from pipeline.gradcam import main as gradcam_main

    with pytest.raises(SystemExit):
        gradcam_main(["--weights", str(tmp_path / "never_read.pth"), "--out", str(tmp_path / "grid.txt")])
    assert "grid.txt: expected a file name ending in .png or .jpg" in capsys.readouterr().err


def test_the_pages_rgba_build_is_refused_with_the_model_to_use(rgba_eye_model, tmp_path):
    with pytest.raises(SystemExit, match=r"RGBA build.*evaluate models/eye_state\.onnx \(or the \.int8\.onnx\)"):
        evaluate_main(["--weights", str(rgba_eye_model), "--data", str(tmp_path)])


@pytest.mark.parametrize("args, message", [
    (["--json", "{tmp}"], "--json: .* is an existing folder"),
    (["--batch-size", "0"], "--batch-size: 0: expected a whole number of at least 1"),
    (["--batch-size", "-5"], "--batch-size: -5: expected a whole number of at least 1"),
    pytest.param(["--json", "/proc/eval.json"], "--json: cannot write /proc/eval.json: /proc does not take new files",
                 marks=pytest.mark.skipif(not Path("/proc/self").exists(), reason="needs Linux's /proc"))])
def test_bad_arguments_are_refused_before_any_work(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit):
        evaluate_main(["--weights", str(tmp_path / "never_read.pth"), *(a.format(tmp=tmp_path) for a in args)])
    assert re.search(message, capsys.readouterr().err)


def test_wrong_files_given_as_weights_or_split_get_our_own_message(tmp_path):
    _write_images(tmp_path / "d" / "open", ["1.png"])
    _write_images(tmp_path / "d" / "closed", ["1.png"], seed=1)
    renamed = tmp_path / "model.pth"
    shutil.copy(SHIPPED_ONNX, renamed)
    with pytest.raises(SystemExit, match="model.pth is an ONNX model, not a torch checkpoint") as raised:
        evaluate_main(["--weights", str(renamed), "--data", str(tmp_path / "d")])
    assert "weights_only" not in str(raised.value)
    for block, bad in (({"size": "48"}, "size '48'"), ({"size": 48, "std": 0.0}, "std 0.0")):
        ckpt = tmp_path / "bad_preprocess.pth"
        torch.save(make_checkpoint(create_model("baseline_cnn"), "baseline_cnn", preprocess=block), ckpt)
        with pytest.raises(SystemExit, match=f"checkpoint .*bad_preprocess.pth: malformed preprocess block: {bad}"):
            evaluate_main(["--weights", str(ckpt), "--data", str(tmp_path / "d")])
    with pytest.raises(SystemExit, match="is a folder; expected a .pth checkpoint or an .onnx model file"):
        evaluate_main(["--weights", str(tmp_path), "--data", str(tmp_path / "d")])
    notes = tmp_path / "notes.txt"
    notes.write_text("train: s0001\n")
    with pytest.raises(SystemExit, match="notes.txt is not JSON .*expected the split JSON written by pipeline.split"):
        evaluate_main(["--weights", str(SHIPPED_ONNX), "--data", str(tmp_path / "d"), "--split", str(notes),
                       "--part", "test", "--no-cache"])
