"""Which per-frame closed signal? Compares classifier alone, iris eyelid opening alone and their fusion
on replayed videos, through the same eyecore fusion code and temporal tracker the page uses.

    python -m pipeline.video ../shared/data/videos/focus/*.avi --csv replay.csv
    python scripts/fusion_study.py replay.csv [--focus ../shared/data/videos/focus]

The replay CSV carries the raw per-eye signals (p_cnn_*, eyelid_*); this script re-runs only the
cheap part (opening baseline, fusion, tracker), so variants cost seconds, not a replay each.
"""
from __future__ import annotations

import argparse
import csv
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

from eyecore.frame import EYES, OpeningBaseline, PipelineConfig, fuse, p_open_from_opening
from eyecore.temporal import EyeStateTracker, TemporalConfig
from pipeline import video_metrics


def load_replay(path: Path) -> dict:
    videos = defaultdict(list)
    for row in csv.DictReader(open(path)):
        videos[row["video"]].append(row)
    return dict(videos)


def _float(text):
    return float(text) if text not in ("", None) else None


def predict(rows, config: PipelineConfig, temporal: TemporalConfig) -> list:
    """both_closed per frame for one video under `config`'s fusion."""
    baselines = {eye: OpeningBaseline(config.iris_baseline_s, config.iris_baseline_percentile) for eye in EYES}
    tracker = EyeStateTracker(temporal)
    closed = []
    for row in rows:
        t = float(row["time"])
        p = {}
        for eye in EYES:
            opening, p_cnn = _float(row[f"eyelid_{eye}"]), _float(row[f"p_cnn_{eye}"])
            if opening is None:
                p[eye] = None
                continue
            p_iris = p_open_from_opening(opening, baselines[eye].update(t, opening), config)
            p[eye] = fuse(p_cnn, p_iris, config)
        closed.append(int(tracker.update(t, p["left"], p["right"]).both_closed))
    return closed


def evaluate(replay: dict, labels: dict, config: PipelineConfig, temporal: TemporalConfig) -> dict:
    scored = {name: (predict(rows, config, temporal), labels[name]) for name, rows in replay.items()}
    return video_metrics.summarize(scored)


def line(name: str, summary: dict) -> str:
    pooled = summary["pooled"]
    per_video = " ".join(f"{v['blink']['f1']:.2f}/{v['frame_shifted']['f1']:.2f}"
                         for v in summary["videos"].values())
    return (f"{name:38s} blink F1 {pooled['blink']['f1']:.3f} (P {pooled['blink']['precision']:.2f} "
            f"R {pooled['blink']['recall']:.2f})  frame F1 {pooled['frame']['f1']:.3f} "
            f"shifted {pooled['frame_shifted']['f1']:.3f} | per video blink/shifted-frame {per_video}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("replay_csv", type=Path)
    parser.add_argument("--focus", type=Path, default=Path("../shared/data/videos/focus"))
    parser.add_argument("--json", type=Path, help="write all results here")
    parser.add_argument("--eye-rules", nargs="+", default=["either", "mean", "both"],
                        help="EyeStateTracker eye_rule values to compare")
    args = parser.parse_args(argv)

    replay = load_replay(args.replay_csv)
    labels = {name: video_metrics.load_labels(args.focus / f"{name}_ideal.csv")[:len(rows)]
              for name, rows in replay.items()}
    has_cnn = any(r["p_cnn_left"] for rows in replay.values() for r in rows)
    base = PipelineConfig()
    variants = {}
    if has_cnn:
        variants["cnn alone"] = replace(base, cnn_weight=1.0, iris_weight=0.0)
    variants["iris alone (relative 0.8)"] = replace(base, cnn_weight=0.0, iris_weight=1.0)
    variants["iris alone (absolute 0.25)"] = replace(base, cnn_weight=0.0, iris_weight=1.0, iris_relative=False,
                                                     iris_closed_ratio=0.25, iris_ratio_width=0.0125)
    if has_cnn:
        variants["fusion 1:1 log-odds (cnn + iris relative 0.8)"] = replace(base, cnn_weight=1.0, iris_weight=1.0)
        variants["fusion 1:1 mean of p (cnn + iris relative 0.8)"] = replace(base, cnn_weight=1.0, iris_weight=1.0,
                                                                            fusion="mean")
    for ratio in (0.7, 0.75, 0.85):  # sensitivity of the one iris threshold, not a search
        variants[f"  iris alone, ratio {ratio}"] = replace(base, cnn_weight=0.0, iris_weight=1.0,
                                                           iris_closed_ratio=ratio)
        if has_cnn:
            variants[f"  fusion, iris ratio {ratio}"] = replace(base, iris_weight=1.0, iris_closed_ratio=ratio)
    results = {}
    for eye_rule in args.eye_rules:
        temporal = TemporalConfig(eye_rule=eye_rule)
        print(f"--- tracker eye_rule={eye_rule} (temporal defaults otherwise)")
        for name, config in variants.items():
            summary = evaluate(replay, labels, config, temporal)
            results[f"{eye_rule}: {name.strip()}"] = summary
            print(line(name, summary))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
