"""Eyes crushed to black: where the eye classifier stops seeing, and what `FrameResult.eyes_dark` flags.

    python scripts/dark_study.py [--conditions clean gain0.05 crush64x0.2 ...] [--json OUT]

A dark room reaches the camera in two ways. A camera that raises its gain keeps the eyes' detail at a few grey
levels (`gainK`: every channel times K). One that crushes its shadows sends the dark half of the picture as pure
black (`crushOxK`: O of 255 and below -> 0, the rest times K), and with it the eye. The focus videos go through
`pipeline.video.run` (the page's Python) under each; reported pooled over the three videos: blink F1, closed-frame
F1 with labels shifted one frame, the share of black pixels in the classifier's eye crops (median and 95th
percentile over crops, `FrameResult.left/right.black`) and the share of frames flagged `eyes_dark`. Seeded, fixed
simulations, not measurements of real cameras.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

import camera_study as C  # noqa: E402
from pipeline import video as V  # noqa: E402


def conditions() -> dict:
    made = {"clean": None}
    for gain in (0.1, 0.05):
        made[f"gain{gain}"] = (lambda g: lambda f: C._u8(C._gain(f, g)))(gain)
    for offset, gain in ((64, 0.2), (64, 0.1), (80, 0.2), (96, 0.3)):
        made[f"crush{offset}x{gain}"] = (lambda o, g: lambda f: C._u8((f.astype(np.float32) - o) * g))(offset, gain)
    return made


def main(argv=None) -> int:
    made = conditions()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", nargs="+", default=list(made), choices=list(made))
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "eye_state.onnx")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    videos = sorted(C.FOCUS.glob("*.avi"))
    if not videos:
        print(f"needs the shared focus videos in {C.FOCUS}", file=sys.stderr)
        return 2
    results = {}
    print("| condition | blink F1 (found / labelled, false) | frame F1 +1 | black share of eye crops, median / p95 | "
          "frames flagged eyes_dark (the eyes' mean black share above 0.4) | flagged if it were above 0.3 / 0.35 / 0.4 / 0.45 / 0.5 |\n"
          "| --- | --- | ---: | --- | ---: | --- |")
    for name in args.conditions:
        report = V.run(videos, eye_model=args.model, progress=False, transform=made[name])
        rows = [r for per in report["per_frame"].values() for r in per]
        black = np.array([r[k] for r in rows for k in ("black_left", "black_right") if r.get(k) is not None])
        flagged = float(np.mean([bool(r["eyes_dark"]) for r in rows if r["face"]]))
        # per frame, the mean over its eyes: what other lines would flag (PipelineConfig.dark_eye_share)
        per_frame = [np.mean(v) for v in ([r[k] for k in ("black_left", "black_right") if r.get(k) is not None]
                                          for r in rows) if v]
        lines = {line: float(np.mean(np.array(per_frame) > line)) for line in (0.3, 0.35, 0.4, 0.45, 0.5)}
        blink, frame = report["pooled"]["blink"], report["pooled"]["frame_shifted"]
        results[name] = {"blink": blink, "frame_shifted": frame, "black_median": float(np.median(black)),
                         "black_p95": float(np.percentile(black, 95)), "flagged": flagged,
                         "flagged_at": lines}
        print(f"| {name} | {blink['f1']:.3f} ({blink['tp']} / {blink['labelled']}, {blink['fp']}) | {frame['f1']:.3f} | "
              f"{np.median(black):.2f} / {np.percentile(black, 95):.2f} | {flagged:.1%} | "
              + " ".join(f"{v:.0%}" for v in lines.values()) + " |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "conditions": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
