"""The study scripts behind docs/BENCHMARKS.md: recipe comparison over folds, webcam eye crops as a labelled folder."""
from __future__ import annotations

import importlib.util
import json

import pytest

from face_helpers import MAHIE_1, ROOT, face_models_dir, needs_shared


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(folder, val_f1s, finished="completed 12 epochs"):
    folder.mkdir(parents=True)
    history = [{"epoch": i + 1, "val_macro_f1": f} for i, f in enumerate(val_f1s)]
    (folder / "history.json").write_text(json.dumps({"history": history, "summary": {"finished": finished}}))


def test_recipe_folds_averages_the_last_three_epochs_and_compares_fold_by_fold(tmp_path, capsys):
    recipe_folds = load_script("recipe_folds")
    fake_run(tmp_path / "A" / "fold0", [0.5, 0.90, 0.92, 0.94])
    fake_run(tmp_path / "A" / "fold1", [0.5, 0.80, 0.80, 0.80])
    fake_run(tmp_path / "B" / "fold0", [0.9, 0.91, 0.93, 0.95])
    fake_run(tmp_path / "B" / "fold1", [0.5, 0.70, 0.70, 0.70])
    (tmp_path / "B" / "fold1.log").write_text("the training log, kept beside the run\n")  # not a fold run
    out = tmp_path / "summary.json"
    recipe_folds.main(["--recipe", f"A={tmp_path / 'A'}", "--recipe", f"B={tmp_path / 'B'}", "--no-replay",
                       "--json", str(out)])
    summary = json.loads(out.read_text())
    assert [r["held_out_macro_f1"] for r in summary["A"]] == pytest.approx([0.92, 0.80])
    assert [r["held_out_macro_f1"] for r in summary["B"]] == pytest.approx([0.93, 0.70])
    out = capsys.readouterr().out
    assert "B - A over folds [0, 1]:\n  held_out_macro_f1: mean -0.045, per fold +0.010 -0.100" in out


def test_recipe_folds_compares_only_finished_folds(tmp_path, capsys):
    recipe_folds = load_script("recipe_folds")
    fake_run(tmp_path / "A" / "fold0", [0.9, 0.9, 0.9])
    fake_run(tmp_path / "A" / "fold1", [0.9, 0.9, 0.9])
    fake_run(tmp_path / "B" / "fold0", [0.8, 0.8, 0.8])
    fake_run(tmp_path / "B" / "fold1", [0.5, 0.5], finished=None)  # still training, killed or --stop-after
    recipe_folds.main(["--recipe", f"A={tmp_path / 'A'}", "--recipe", f"B={tmp_path / 'B'}", "--no-replay"])
    out = capsys.readouterr()
    assert "B fold1: skipped, training has not finished" in out.err
    assert "B - A over folds [0]:\n  held_out_macro_f1: mean -0.100, per fold -0.100" in out.out
    fake_run(tmp_path / "C" / "fold0", [0.5], finished=None)
    with pytest.raises(SystemExit, match="no finished fold run for C"):
        recipe_folds.main(["--recipe", f"A={tmp_path / 'A'}", "--recipe", f"C={tmp_path / 'C'}", "--no-replay"])


def test_stable_labels_shift_later_and_drop_frames_beside_a_change():
    crops = load_script("webcam_eye_crops")
    labels = [0, 0, 0, 1, 1, 1, 1, 0, 0, 0]
    assert crops.stable_labels(labels, 0) == [0, 0, None, None, 1, 1, None, None, 0, 0]
    assert crops.stable_labels(labels, 1) == [0, 0, 0, None, None, 1, 1, None, None, 0]


@needs_shared
@pytest.mark.shared
def test_webcam_eye_crops_make_a_folder_that_evaluate_scores(tmp_path, capsys):
    """Colour webcam eye crops, both classes, scored by pipeline.evaluate like any visible-light eye dataset."""
    from pipeline.evaluate import main as evaluate_main

    crops = load_script("webcam_eye_crops")
    out = tmp_path / "eyes"
    # mahie_test_1's first blink is at frames 94-97 (labels shifted one frame)
    crops.main([str(MAHIE_1), "--out", str(out), "--scales", "2.5", "--max-frames", "130",
                "--models-dir", str(face_models_dir())])
    crops.main([str(MAHIE_1), "--out", str(out), "--scales", "2.5", "--max-frames", "2", "--height-share", "0.6",
                "--models-dir", str(face_models_dir())])
    import cv2

    band = cv2.imread(str(next((out / "scale_2.5_h0.6" / "open").glob("*.png"))))
    assert band.shape[:2] == (38, 64)  # a wide patch: the middle 60 % of a 64 px crop's height
    closed = sorted((out / "scale_2.5" / "closed").glob("*.png"))
    opened = sorted((out / "scale_2.5" / "open").glob("*.png"))
    assert closed and len(opened) > 200
    assert all(p.name.startswith("mahie_test_1_") for p in closed + opened)
    report = tmp_path / "eval.json"
    evaluate_main(["--weights", str(ROOT / "models" / "eye_state.pth"), "--data", str(out / "scale_2.5"),
                   "--json", str(report)])
    metrics = json.loads(report.read_text())
    assert metrics["n"] == len(closed) + len(opened)
    assert metrics["accuracy"] > 0.95  # 0.998 on all four videos at this framing (docs/BENCHMARKS.md)


def test_camera_conditions_keep_the_frame_format_and_are_repeatable():
    import numpy as np

    study = load_script("camera_study")
    frame = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    first, again = study.conditions(), study.conditions()
    assert first["clean"] is None
    for name, transform in first.items():
        if transform is None:
            continue
        out = transform(frame)
        shape = (720, 1280, 3) if "720" in name else frame.shape  # a bigger camera's frames are bigger
        assert out.shape == shape and out.dtype == np.uint8, name
        assert not np.array_equal(out, frame), f"{name} left the frame unchanged"
        assert np.array_equal(out, again[name](frame)), f"{name} is not repeatable"
    assert study.conditions()["dark"](frame).mean() < 0.35 * frame.mean() + 1
    bright = np.zeros_like(frame)
    bright[20:28, 28:36] = 255  # a "face" in the middle: at a third of the distance it covers a ninth of the area
    assert abs(study.conditions()["far_x0.33"](bright).astype(float).sum() / bright.sum() - 1 / 9) < 0.03
    assert np.array_equal(study.conditions()["mirrored"](bright)[:, ::-1], bright)
    # the page's camera asked for 1280x720 at the same distance: the face 1.5 times as wide as at 640x480
    vga = np.zeros((480, 640, 3), np.uint8)
    vga[200:280, 280:360] = 255
    far, sharp = (study.conditions()[n](vga).astype(float).sum() for n in ("far_x0.2", "far_x0.2_720p"))
    assert abs(sharp / far - 1.5 ** 2) < 0.25


@needs_shared
@pytest.mark.shared
def test_replay_applies_the_frame_transform_before_the_pipeline():
    """A camera that delivers black frames finds no face: the transform reaches what the pipeline sees."""
    import numpy as np

    from pipeline import video as V

    kwargs = dict(max_frames=5, models_dir=face_models_dir(), eye_model=ROOT / "models" / "eye_state.onnx",
                  progress=False)
    seen = V.run([MAHIE_1], **kwargs)["videos"]["mahie_test_1"]
    black = V.run([MAHIE_1], transform=np.zeros_like, **kwargs)["videos"]["mahie_test_1"]
    assert seen["face_frames"] == 5 and black["face_frames"] == 0


def test_fold_ensembles_scores_split_by_glasses_and_count_errors():
    import numpy as np

    scores = load_script("fold_ensembles").scores
    labels = np.array([0, 0, 1, 1, 1, 0])
    glasses = np.array([1, 1, 1, 0, 0, 0])
    p_open = np.array([0.1, 0.7, 0.9, 0.8, 0.2, 0.3])  # wrong: the 2nd (glasses) and the 5th (no glasses)
    s = scores(labels, glasses, p_open)
    assert s["errors"] == 2 and s["accuracy"] == 4 / 6
    assert s["glasses"] == 2 / 3 and s["no_glasses"] == 2 / 3
    assert abs(s["macro_f1"] - 2 / 3) < 1e-9  # closed: precision 2/3, recall 2/3; open: the same
    assert scores(labels, np.zeros(6), p_open)["glasses"] is None
