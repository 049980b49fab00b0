"""Shared fixtures: the ../shared data folder (skip with a reason when absent), small data sets built in tmp."""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DIR = REPO_ROOT.parent / "shared"
MRL_ZIP = SHARED_DIR / "data" / "mrl" / "mrlEyes_2018_01_dev.zip"
SPLIT_FILE = REPO_ROOT / "splits" / "mrl_split.json"
NO_SHARED = (f"needs the shared data folder {SHARED_DIR} (MRL zip at {MRL_ZIP}); "
             "a fresh clone has none, CI has it beside the clone")


@pytest.fixture(scope="session")
def mrl_zip() -> Path:
    if not MRL_ZIP.is_file():
        pytest.skip(NO_SHARED)
    return MRL_ZIP


@pytest.fixture(autouse=True)
def _tmp_data_cache(tmp_path_factory, monkeypatch):
    """Tests never write decoded-data caches into the repository's .cache/."""
    import pipeline.data

    monkeypatch.setattr(pipeline.data, "CACHE_DIR", tmp_path_factory.getbasetemp() / "eyedata_cache")


@pytest.fixture(scope="session")
def small_mrl_zip(mrl_zip, tmp_path_factory) -> Path:
    """A few hundred real MRL images in the official layout: per subject of the committed split, a handful per class
    (train 10, val 12, test 15 per class and subject). Written to tmp, never into the repository."""
    import numpy as np

    from pipeline.data import MRL_FIELDS, scan_mrl, subject_name

    split = json.loads(SPLIT_FILE.read_text())
    per_class = {**{s: 10 for s in split["train"]}, **{s: 12 for s in split["val"]}, **{s: 15 for s in split["test"]}}
    names, table = scan_mrl(mrl_zip)
    rng = np.random.default_rng(0)
    chosen = []
    subj, state = table[:, MRL_FIELDS.index("subject")], table[:, MRL_FIELDS.index("eye_state")]
    for s in np.unique(subj):
        for c in (0, 1):
            idx = np.flatnonzero((subj == s) & (state == c))
            chosen += rng.choice(idx, min(len(idx), per_class[subject_name(s)]), replace=False).tolist()
    out = tmp_path_factory.mktemp("mrl_small") / "mrl_small.zip"
    with zipfile.ZipFile(mrl_zip) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as dst:
        for i in sorted(chosen):
            dst.writestr(names[i], src.read(names[i]))
    return out


@pytest.fixture(scope="session")
def smoke_run(small_mrl_zip, tmp_path_factory) -> Path:
    """One real smoke training on the small MRL zip (shared by train / evaluate / gradcam tests); returns its out dir."""
    from pipeline.train import main

    out = tmp_path_factory.mktemp("smoke_run")
    main(["--data", str(small_mrl_zip), "--model", "baseline_cnn", "--epochs", "4", "--epoch-size", "1024",
          "--batch-size", "32", "--lr", "3e-3", "--weight-decay", "1e-4", "--img-size", "32", "--patience", "0",
          "--threads", "1", "--out-dir", str(out), "--no-cache"])
    return out


def pretrained_stand_in(name: str, num_classes: int = 1000):
    """A timm model whose every float tensor is moved off its random start: stands in for downloaded ImageNet weights,
    which never equal a fresh initialisation (pipeline.models checks that a weights file really loaded)."""
    import timm
    import torch

    model = timm.create_model(name, num_classes=num_classes)
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.add_(0.01 * torch.randn_like(tensor))
    return model


@pytest.fixture(scope="session")
def rgba_eye_model(tmp_path_factory) -> Path:
    """The page's RGBA build of the shipped eye model (build.py's fuse_rgba_input, as in dist/models/), in tmp."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("build_for_tests", REPO_ROOT / "build.py")
    build = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(build)
    pre = json.loads((REPO_ROOT / "models" / "eye_state.json").read_text())["preprocess"]
    out = tmp_path_factory.mktemp("rgba") / "eye_state.rgba.onnx"
    build.fuse_rgba_input(REPO_ROOT / "models" / "eye_state.onnx", out,
                          build.input_spec("gray", "NCHW", 1 / (255 * pre["std"]), -pre["mean"] / pre["std"]))
    return out
