"""Regenerate models/model_card.json from the files and results it describes (no number typed by hand).

    python scripts/model_card.py --run runs/eyecnn_final \
        [--eval docs/results/eval_test_fp32.json] [--video docs/results/video_focus.json]

Reads: the shipped files in models/ (sizes, SHA-256), the checkpoint (architecture, parameters, split, training
arguments), the training run's history.json (epochs, wall time), the test evaluation JSON of pipeline.evaluate and
the webcam replay JSON of pipeline.video. models/MODEL_CARD.md is the prose twin; keep its numbers in step.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import shlex
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FILES = ("eye_state.pth", "eye_state.onnx", "eye_state.int8.onnx", "eye_state.json")


def file_table(models: Path) -> dict:
    out = {}
    for name in FILES:
        data = (models / name).read_bytes()
        out[name] = {"bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    return out


def training_record(run: Path, checkpoint: dict) -> dict:
    info = json.loads((run / "history.json").read_text())
    args = info.get("args", {})
    from pipeline.train import build_parser  # the recipe = every argument that differs from the trainer's default

    defaults = vars(build_parser().parse_args([]))
    skip = {"out_dir", "resume", "stop_after", "data", "split", "device", "workers", "overwrite"}
    command = ["python", "-m", "pipeline.train"]
    for key, value in args.items():
        if key in skip or key not in defaults or value == defaults[key]:
            continue
        flag = "--" + key.replace("_", "-")
        command += [flag] if value is True else [flag, str(value)]
    command += ["--out-dir", str(run)]
    history = info["history"]
    return {
        "command": shlex.join(command),
        "final_fit": bool(args.get("final_fit")),
        "subjects": sorted(checkpoint["split"]["train"]),
        "epochs": len(history),
        "kept_epoch": checkpoint["epoch"] + 1,
        "val_macro_f1_of_kept_epoch": round((checkpoint.get("val_metrics") or {}).get(
            "val_macro_f1", checkpoint.get("best_val_macro_f1", float("nan"))), 4),
        "val_note": ("in-sample: the validation subjects are in training (final fit)" if args.get("final_fit")
                     else "held-out validation subjects"),
        "train_seconds": round(sum(r["epoch_seconds"] for r in history)),
        "device": "2-core CPU" if args.get("device") in ("auto", "cpu") else args.get("device"),
    }


def test_metrics(path: Path) -> dict:
    ev = json.loads(path.read_text())
    keep = ("n", "accuracy", "precision", "recall", "macro_f1", "roc_auc", "ece", "positive_class",
            "per_subject_summary", "subgroups")
    out = {k: ev[k] for k in keep if k in ev}
    out["per_subject"] = {s: round(v["accuracy"], 4) for s, v in ev.get("per_subject", {}).items()}
    out["command"] = f"python -m pipeline.evaluate --weights models/eye_state.pth --batch-size 64 --json {path.relative_to(ROOT)}"
    return out


def webcam_metrics(path: Path) -> dict:
    report = json.loads(path.read_text())
    pooled = report["pooled"]
    return {
        "command": f"python -m pipeline.video ../shared/data/videos/focus/*.avi --json {path.relative_to(ROOT)}",
        "blink_f1": round(pooled["blink"]["f1"], 3),
        "frame_f1": round(pooled["frame"]["f1"], 3),
        "frame_f1_labels_shifted_1": round(pooled["frame_shifted"]["f1"], 3),
        "per_video": {name: {"blink_f1": round(v["blink"]["f1"], 3), "frame_f1_shifted": round(v["frame_shifted"]["f1"], 3)}
                      for name, v in report["videos"].items() if "blink" in v},
        "tracker_closed_below": report["config"]["temporal"]["closed_below"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True, help="training run folder of the shipped weights")
    parser.add_argument("--models", type=Path, default=ROOT / "models")
    parser.add_argument("--eval", type=Path, default=ROOT / "docs/results/eval_test_fp32.json")
    parser.add_argument("--video", type=Path, default=ROOT / "docs/results/video_focus.json")
    parser.add_argument("--out", type=Path, default=None, help="default: MODELS/model_card.json")
    args = parser.parse_args(argv)

    from pipeline.models import read_torch_file  # only here (torch): the card's other inputs are plain files

    checkpoint = read_torch_file(args.models / "eye_state.pth", map_location="cpu")
    meta = json.loads((args.models / "eye_state.json").read_text())
    split = json.loads((ROOT / "splits/mrl_split.json").read_text())
    card = {
        "name": "eye_state",
        "architecture": checkpoint["model"],
        "params": sum(v.numel() for k, v in checkpoint["state_dict"].items() if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))),
        "classes": meta["classes"],
        "preprocess": meta["preprocess"],
        "files": file_table(args.models),
        "data": {"name": "MRL Eye Dataset (dev part, 30 of 37 subjects)",
                 "licence": "free for research; cite R. Fusek, ISVC 2018",
                 "split_file": "splits/mrl_split.json",
                 "train": split["train"], "val": split["val"], "test": split["test"]},
        "training": training_record(args.run, checkpoint),
        "metrics_test": test_metrics(args.eval),
        "webcam_focus_videos": webcam_metrics(args.video),
    }
    out = args.out or args.models / "model_card.json"
    out.write_text(json.dumps(card, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
