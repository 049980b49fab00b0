"""pipeline.split: subject-disjoint, deterministic, single-class subjects in train, k-fold never touches test."""
from __future__ import annotations

import json

import numpy as np
import pytest

from pipeline import split as S
from pipeline.data import MRL_FIELDS, scan_mrl

from conftest import SPLIT_FILE


def _synthetic(n_subjects=30, seed=0):
    rng = np.random.default_rng(seed)
    subjects, labels, glasses, sensor = [], [], [], []
    for s in range(1, n_subjects + 1):
        n = int(rng.integers(100, 600))
        p_open = 0.0 if s in (4, 8) else rng.uniform(0.1, 0.9)
        subjects += [s] * n
        labels += (rng.random(n) < p_open).astype(int).tolist()
        glasses += [int(s % 3 == 0)] * n
        sensor += [1 + s % 3] * n
    meta = {"glasses": np.array(glasses), "sensor": np.array(sensor), "gender": np.zeros(len(labels), int)}
    return np.array(subjects), np.array(labels), meta


def test_split_is_subject_disjoint_deterministic_and_complete():
    subjects, labels, meta = _synthetic()
    a = S.make_split(subjects, labels, seed=0, meta=meta, n_candidates=2000)
    b = S.make_split(subjects, labels, seed=0, meta=meta, n_candidates=2000)
    assert {p: a[p] for p in S.PARTS} == {p: b[p] for p in S.PARTS}
    S.check_disjoint(a)
    assert sorted(a["train"] + a["val"] + a["test"]) == [f"s{s:04d}" for s in range(1, 31)]
    assert (len(a["train"]), len(a["val"]), len(a["test"])) == (20, 4, 6)
    assert "s0004" in a["train"] and "s0008" in a["train"]
    assert any("s0004" in note and "train" in note for note in a["notes"])
    for part in ("val", "test"):
        assert a["counts"][part]["closed"] > 0 and a["counts"][part]["open"] > 0
    assert set(a["counts"]["test"]["sensors"]) == {"RealSense", "IDS", "Aptina"}
    other = S.make_split(subjects, labels, seed=1, meta=meta, n_candidates=2000)
    assert {p: other[p] for p in S.PARTS} != {p: a[p] for p in S.PARTS}


def test_overlapping_split_is_rejected(tmp_path):
    with pytest.raises(S.SplitError, match="s0002"):
        S.check_disjoint({"train": ["s0001", "s0002"], "val": ["s0002"], "test": ["s0003"]})
    bad = tmp_path / "split.json"
    bad.write_text(json.dumps({"train": ["s0001"], "val": ["s0001"], "test": []}))
    with pytest.raises(S.SplitError, match="not subject-disjoint"):
        S.load_split(bad)


def test_kfold_folds_train_and_val_subjects_only():
    subjects, labels, meta = _synthetic()
    split = S.make_split(subjects, labels, seed=0, meta=meta, n_candidates=500)
    folds = S.make_kfold(split, 4, seed=0)
    assert len(folds) == 4
    vals = [s for f in folds for s in f["val"]]
    assert len(vals) == len(set(vals))  # each subject validates once at most
    for f in folds:
        assert not set(f["val"]) & set(f["train"])
        assert not (set(f["val"]) | set(f["train"])) & set(split["test"])
        assert "s0004" in f["train"]
    with pytest.raises(S.SplitError, match="--kfold"):
        S.make_kfold(split, 1)
    split["folds"] = folds
    fold2 = S.with_fold(split, 2)  # what pipeline.train and pipeline.evaluate use for --fold 2
    assert (fold2["train"], fold2["val"], fold2["test"]) == (folds[2]["train"], folds[2]["val"], split["test"])
    assert S.with_fold(split, None) is split
    with pytest.raises(S.SplitError, match="--fold 4: the split has 4 folds"):
        S.with_fold(split, 4)


def test_image_split_for_folder_data_is_stratified():
    labels = np.array([0] * 100 + [1] * 60)
    split = S.make_image_split(labels, seed=0)
    idx = split["train"] + split["val"] + split["test"]
    assert sorted(idx) == list(range(160))
    assert (labels[split["test"]] == 0).sum() == 15 and (labels[split["test"]] == 1).sum() == 9


def test_an_image_split_is_refused_where_it_would_mix_people_or_point_at_other_images():
    from pipeline.data import EyeData

    labels = np.array([0] * 10 + [1] * 10)
    image_split = S.make_image_split(labels, seed=0)
    assert image_split["n_images"] == 20

    def data(n, subjects=None):
        meta = {"subject": subjects} if subjects is not None else {}
        return EyeData(np.zeros((n, 8, 8), np.uint8), np.arange(n) % 2, meta, ["x.png"] * n, "mine",
                       "mrl" if subjects is not None else "folder")

    assert S.part_mask(data(20), image_split, "test").sum() == len(image_split["test"])
    with pytest.raises(S.SplitError, match="one person's images in several parts"):
        S.part_mask(data(20, subjects=np.repeat(np.arange(4), 5)), image_split, "test")
    with pytest.raises(S.SplitError, match="made for 20 images but mine has 21"):
        S.part_mask(data(21), image_split, "train")


def test_committed_split_file_is_valid():
    split = S.load_split(SPLIT_FILE)
    assert len(split["train"] + split["val"] + split["test"]) == 30
    assert {"s0004", "s0008"} <= set(split["train"])
    assert split["seed"] == 0 and split["notes"]
    for f in split["folds"]:
        assert not set(f["val"]) & set(split["test"]) and not set(f["train"]) & set(split["test"])


@pytest.mark.shared
def test_committed_split_is_reproduced_from_the_shared_zip(mrl_zip):
    """The committed file is what `python -m pipeline.split --seed 0 --kfold 5` gives on the shared zip."""
    _, table = scan_mrl(mrl_zip)
    meta = {k: table[:, MRL_FIELDS.index(k)] for k in ("glasses", "gender", "sensor")}
    fresh = S.make_split(table[:, 0], table[:, MRL_FIELDS.index("eye_state")], seed=0, meta=meta)
    committed = json.loads(SPLIT_FILE.read_text())
    for key in ("train", "val", "test", "counts", "per_subject"):
        assert fresh[key] == committed[key], key
    assert S.make_kfold(fresh, 5, seed=0) == committed["folds"]


def test_a_folder_split_is_written_beside_the_mrl_split_under_the_folder_name(tmp_path, monkeypatch):
    """`python -m pipeline.split --data my_folder` must never replace the MRL split; a folder name with a dot
    (scale_1.5) is kept whole, so two such folders do not share a file."""
    import cv2

    for name in ("scale_1.5", "scale_1.25"):
        for label in ("open", "closed"):
            (tmp_path / name / label).mkdir(parents=True)
            for i in range(4):
                cv2.imwrite(str(tmp_path / name / label / f"{i}.png"), np.full((12, 12), 40 * i + 9 + (label == "open"), np.uint8))
    monkeypatch.setattr(S, "DEFAULT_SPLIT", tmp_path / "splits" / "mrl_split.json")
    for name in ("scale_1.5", "scale_1.25"):
        S.main(["--data", str(tmp_path / name)])
    written = sorted(p.name for p in (tmp_path / "splits").iterdir())
    assert written == ["scale_1.25_images.json", "scale_1.5_images.json"]


def test_the_command_says_what_is_missing_instead_of_a_traceback(tmp_path, capsys):
    import cv2

    folder = tmp_path / "mrlEyes_2018_01" / "s0001"  # one person: far too few for validation and test people
    folder.mkdir(parents=True)
    for i, state in enumerate((0, 1, 0, 1)):
        cv2.imwrite(str(folder / f"s0001_{i:05d}_0_0_{state}_0_1_01.png"), np.full((24, 24), 60 + 40 * state, np.uint8))
    with pytest.raises(SystemExit, match=r"^error: need at least 11 subjects with both classes"):
        S.main(["--data", str(tmp_path / "mrlEyes_2018_01"), "--out", str(tmp_path / "split.json")])
    assert not (tmp_path / "split.json").exists()
    with pytest.raises(SystemExit):
        S.main(["--val-subjects", "-1", "--out", str(tmp_path / "split.json")])
    assert "argument --val-subjects: -1: expected a whole number of at least 0" in capsys.readouterr().err
