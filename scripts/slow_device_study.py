"""Blinks found when a device processes only every k-th camera frame (what light mode is based on).

    python scripts/slow_device_study.py --every 1 2 4 [--no-iris] [--model models/eye_state.onnx]

Replays the two mahie focus videos through the live pipeline, keeping every k-th frame (real timestamps), and
matches predicted closures to labelled blinks by time: labels shifted one frame later (../shared/README.md), a
labelled blink is found when a predicted closure overlaps it within 0.15 s, one-to-one. Time-based because the
frame-index matching of pipeline.video does not carry over between frame rates.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from eyecore.temporal import EyeStateTracker, TemporalConfig  # noqa: E402
from pipeline import video as V, video_metrics as VM  # noqa: E402

FOCUS = ROOT.parent / "shared" / "data" / "videos" / "focus"
VIDEOS = ("mahie_test_1", "mahie_test_4_low_fps")
TOLERANCE_S = 0.15


def runs(flags: list, times: list) -> list:
    """(start time, end time) of each run of 1s."""
    out, start = [], None
    for i, flag in enumerate(flags + [0]):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((times[start], times[i - 1]))
            start = None
    return out


def study(every: int, use_iris: bool, model: Path, hold_s: float = 0.0) -> dict:
    pipeline = V.make_pipeline(ROOT / ".cache" / "face_models", model, use_iris, landmark_hold_s=hold_s)
    totals = {"found": 0, "labelled": 0, "false": 0}
    for name in VIDEOS:
        path = FOCUS / f"{name}.avi"
        labels = VM.load_labels(V.companion(path, "_ideal.csv"))
        times = VM.load_timestamps(V.companion(path, "_timestamps.txt"))
        truth = runs([0] + list(labels[:-1]), times)
        pipeline.reset()
        tracker = EyeStateTracker(TemporalConfig())
        closed, kept = [], []
        for i, frame in enumerate(V.read_frames(path)):
            if i % every:
                continue
            r = pipeline.process(frame, times[i])
            state = tracker.update(times[i], r.left.p_open if r.left else None, r.right.p_open if r.right else None)
            closed.append(int(state.both_closed))
            kept.append(times[i])
        predicted, used = runs(closed, kept), set()
        for a, b in truth:
            for j, (c, d) in enumerate(predicted):
                if j not in used and c <= b + TOLERANCE_S and d >= a - TOLERANCE_S:
                    used.add(j)
                    break
        totals["found"] += len(used)
        totals["labelled"] += len(truth)
        totals["false"] += len(predicted) - len(used)
    return totals


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--every", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--no-iris", action="store_true", help="the classifier alone (light mode)")
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "eye_state.onnx")
    ap.add_argument("--hold", type=float, default=0.0, help="PipelineConfig.landmark_hold_s (FaceMesh skips)")
    args = ap.parse_args(argv)
    if not FOCUS.is_dir():
        print(f"needs the shared focus videos in {FOCUS}", file=sys.stderr)
        return 2
    for k in args.every:
        t = study(k, not args.no_iris, args.model, args.hold)
        print(f"every {k}: {t['found']} / {t['labelled']} blinks found, {t['false']} false "
              f"({'classifier alone' if args.no_iris else 'fused with the iris model'}"
              f"{f', landmarks held up to {args.hold:g} s' if args.hold else ''})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
