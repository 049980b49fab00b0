"""A small eye-state checkpoint trained with `pipeline.train` for export / quantize tests.

Trained once (a few thousand MRL images, ~1-2 min on 2 cores) and kept under `.cache/test_models/`, keyed
by the training arguments and the source of the training code, so later sessions reuse it.
"""
from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MRL_ZIP = REPO.parent / "shared" / "data" / "mrl" / "mrlEyes_2018_01_dev.zip"
SPLIT = REPO / "splits" / "mrl_split.json"
TRAIN_ARGS = ["--model", "test_efficientnet", "--epochs", "2", "--max-train-images", "3000",
              "--max-val-images", "1000", "--warmup-epochs", "0", "--lr", "5e-3", "--augmentations", "none",
              "--patience", "0", "--threads", "2", "--device", "cpu", "--seed", "0"]
SOURCES = ("train.py", "models.py", "data.py", "augment.py", "split.py", "preprocess.py")


def _key() -> str:
    h = hashlib.sha256(" ".join(TRAIN_ARGS).encode())
    for name in SOURCES:
        path = REPO / "pipeline" / name
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()[:16]


def trained_checkpoint() -> Path:
    out_dir = REPO / ".cache" / "test_models" / f"tiny_{_key()}"
    best = out_dir / "best.pth"
    if best.is_file():
        return best
    cmd = [sys.executable, "-m", "pipeline.train", *TRAIN_ARGS, "--data", str(MRL_ZIP), "--split", str(SPLIT),
           "--out-dir", str(out_dir)]
    res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    if res.returncode != 0 or not best.is_file():
        raise RuntimeError(f"training the test model failed ({res.returncode}):\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}")
    return best
