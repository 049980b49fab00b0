"""Eyes crushed to black or blown out to white: where the eye classifier stops seeing, and what the pipeline flags.

    python scripts/light_study.py [--conditions clean gain0.05 crush64x0.2 blown3 ...] [--json OUT]

A dark room reaches the camera in two ways. A camera that raises its gain keeps the eyes' detail at a few grey
levels (`gainK`: every channel times K). One that crushes its shadows sends the dark half of the picture as pure
black (`crushOxK`: O of 255 and below -> 0, the rest times K), and with it the eye. Too much light blows the skin
around the eye out to white (`blownK`: times K, clipped at 255). The focus videos go through `pipeline.video.run`
(the page's Python) under each; reported pooled over the three videos: blink F1, closed-frame F1 with labels shifted
one frame, microsleep alarms (all false: no labelled closure of these videos lasts 0.5 s), the black and white
shares of the classifier's eye crops (median / 95th percentile over crops, `EyeResult.black` / `.white`) and the
share of frames with a face flagged `eyes_dark` / `eyes_bright`. Seeded, fixed simulations, not measurements of real
cameras.
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
    for gain in (2, 2.5, 3, 4):
        made[f"blown{gain}"] = (lambda g: lambda f: C._u8(C._gain(f, g)))(gain)
    return made


def _shares(rows: list, kind: str) -> np.ndarray:
    keys = (f"{kind}_left", f"{kind}_right")
    return np.array([r[k] for r in rows for k in keys if r.get(k) is not None])


def main(argv=None) -> int:
    made = conditions()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", nargs="+", default=list(made), choices=list(made))
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "eye_state.onnx")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    videos = C.focus_videos()
    if not videos:
        return 2
    results = {}
    print("| condition | blink F1 (found / labelled, false) | frame F1 +1 | false alarms | eye crops black, median / p95 | "
          "white, median / p95 | frames flagged dark / bright |\n| --- | --- | ---: | ---: | --- | --- | --- |")
    for name in args.conditions:
        report = V.run(videos, eye_model=args.model, progress=False, transform=made[name])
        rows = [r for per in report["per_frame"].values() for r in per]
        faces = [r for r in rows if r["face"]]
        result = {"blink": report["pooled"]["blink"], "frame_shifted": report["pooled"]["frame_shifted"],
                  "alarms": sum(v["alarms"] for v in report["videos"].values())}
        for kind, flag in (("black", "eyes_dark"), ("white", "eyes_bright")):
            shares = _shares(rows, kind)
            result[kind] = [float(np.median(shares)), float(np.percentile(shares, 95))]
            result[flag] = float(np.mean([bool(r[flag]) for r in faces]))
        results[name] = result
        blink, frame = result["blink"], result["frame_shifted"]
        print(f"| {name} | {blink['f1']:.3f} ({blink['tp']} / {blink['labelled']}, {blink['fp']}) | "
              f"{frame['f1']:.3f} | {result['alarms']} | "
              f"{result['black'][0]:.2f} / {result['black'][1]:.2f} | {result['white'][0]:.2f} / "
              f"{result['white'][1]:.2f} | {result['eyes_dark']:.1%} / {result['eyes_bright']:.1%} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "conditions": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
