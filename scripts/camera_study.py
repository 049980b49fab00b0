"""Bad light and weak cameras: the focus videos replayed through the live pipeline as other cameras would see them.

    python scripts/camera_study.py [--conditions clean dark dim_gain ...] [--no-iris] [--landmark-hold S] [--json OUT]

Each condition maps every decoded frame to what a worse camera or room would deliver (underexposure, a dim room
where the camera's gain amplifies sensor noise, a 320x240 or 160x120 sensor, heavy JPEG, defocus, a warm lamp,
light from behind, a head that jumps to a new place every half second; a person two to seven times as far away
(also with the camera asked for 1280x720, as the page does then) or two to three times as close, a head tilted
15-45 degrees, a mirrored picture, a 1280x720 camera), then the frames go through
`pipeline.video.run`, the page's Python, unchanged. Reported per
condition, pooled over the three videos: frames with a face, blink F1, closed-frame F1 with labels shifted one
frame (../shared/README.md). The conditions are fixed, seeded simulations, not measurements of real cameras.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from pipeline import video as V  # noqa: E402

FOCUS = ROOT.parent / "shared" / "data" / "videos" / "focus"


def focus_videos() -> list:
    """The shared focus videos, sorted; [] (and a message saying where they were looked for) without ../shared."""
    videos = sorted(FOCUS.glob("*.avi"))
    if not videos:
        print(f"needs the shared focus videos in {FOCUS}", file=sys.stderr)
    return videos


def _gain(frame, gain: float) -> np.ndarray:
    return np.clip(frame.astype(np.float32) * gain, 0, 255)


def _noise(frame, sigma: float, rng) -> np.ndarray:
    return frame.astype(np.float32) + rng.normal(0, sigma, frame.shape).astype(np.float32)


def _u8(x) -> np.ndarray:
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _rescale(frame, factor: float) -> np.ndarray:
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, round(w * factor)), max(1, round(h * factor))), interpolation=cv2.INTER_AREA)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR)


def _jpeg(frame, quality: int) -> np.ndarray:
    ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return cv2.imdecode(data, cv2.IMREAD_COLOR)


def _backlight(frame) -> np.ndarray:
    """A bright window behind the person: the camera exposes for it, so the middle of the frame (the face) falls
    to a third of its brightness and the edges clip."""
    h, w = frame.shape[:2]
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    d = np.sqrt(((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2)
    gain = 0.33 + 1.2 * np.clip(d - 0.45, 0, None)
    return _u8(frame.astype(np.float32) * gain[..., None] + 40 * np.clip(d - 0.6, 0, None)[..., None])


def _jumps(rng, every: int = 15, reach: int = 40):
    """Sudden head movements: every `every` frames the whole image jumps to a new offset within ±reach px."""
    state = {"frame": 0, "matrix": None}

    def move(frame):
        if state["frame"] % every == 0:
            dx, dy = (int(v) for v in rng.integers(-reach, reach + 1, 2))
            state["matrix"] = np.float32([[1, 0, dx], [0, 1, dy]])
        state["frame"] += 1
        return cv2.warpAffine(frame, state["matrix"], frame.shape[1::-1], borderMode=cv2.BORDER_REPLICATE)
    return move


def _farther(frame, factor: float) -> np.ndarray:
    """The person `1/factor` times as far away: the picture shrunk about its centre, the room around it continued
    from its edges (the face, the eyes and their pixels all `factor` times as small)."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    top, left = (h - small.shape[0]) // 2, (w - small.shape[1]) // 2
    return cv2.copyMakeBorder(small, top, h - small.shape[0] - top, left, w - small.shape[1] - left,
                              cv2.BORDER_REPLICATE)


def _about_centre(frame, degrees: float = 0.0, scale: float = 1.0, flags: int = cv2.INTER_LINEAR) -> np.ndarray:
    """The picture rotated and scaled about its centre, the same size, its edge pixels repeated where it shrank."""
    h, w = frame.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), degrees, scale)
    return cv2.warpAffine(frame, matrix, (w, h), flags=flags, borderMode=cv2.BORDER_REPLICATE)


def _nearer(frame, factor: float) -> np.ndarray:
    """The person `factor` times closer (a phone held at arm's length): the middle of the picture enlarged."""
    return _about_centre(frame, scale=factor, flags=cv2.INTER_CUBIC)


def _tilt(frame, degrees: float) -> np.ndarray:
    """A head tilted sideways (or a camera mounted crooked): the picture rotated about its centre."""
    return _about_centre(frame, degrees)


def _hd(frame, width: int = 1280, height: int = 720) -> np.ndarray:
    """A 720p camera: the 4:3 picture cropped to 16:9 about its centre and scaled up (more pixels, no more detail)."""
    h, w = frame.shape[:2]
    keep = round(w * height / width)
    top = max(0, (h - keep) // 2)
    return cv2.resize(frame[top:top + keep], (width, height), interpolation=cv2.INTER_CUBIC)


def _sway(degrees: float = 40.0, period: int = 90):
    """A head that tilts to one side and back, again and again: the tilt follows degrees * cos over `period` frames."""
    state = {"frame": 0}

    def tilt(frame):
        angle = degrees * math.cos(2 * math.pi * state["frame"] / period)
        state["frame"] += 1
        return _tilt(frame, angle)
    return tilt


def _bystander(scale: float = 0.35, delay: int = 90):
    """Somebody else in the picture, farther away: the frame from `delay` frames earlier (other blinks), shrunk by
    `scale`, in the top-left corner."""
    state = {"past": []}

    def add(frame):
        state["past"].append(frame)
        other = state["past"].pop(0) if len(state["past"]) > delay else state["past"][0]
        h, w = frame.shape[:2]
        small = cv2.resize(other, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
        out = frame.copy()
        out[:small.shape[0], :small.shape[1]] = small
        return out
    return add


def _bystander_return(hidden=(45, 75)):
    """The bystander, and the person out of view for a while (frames `hidden`: the middle of the picture greyed
    out): the bystander is the only face then, and the person must get the track back when they return."""
    add, state = _bystander(), {"frame": 0}

    def cover(frame):
        out = add(frame)
        if hidden[0] <= state["frame"] < hidden[1]:
            out[120:440, 200:440] = 128  # every focus video's face lies within x 212-420, y 138-425
        state["frame"] += 1
        return out
    return cover


def conditions(seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {
        "clean": None,
        "dark": lambda f: _u8(_gain(f, 0.3)),                                   # underexposed, no gain
        "dim_gain": lambda f: _u8(_noise(_gain(f, 0.25), 2.0, rng) * 4.0),       # dim room, gain ×4: noise ×4
        "noise": lambda f: _u8(_noise(f, 12.0, rng)),                            # a noisy sensor in normal light
        "vga_half": lambda f: _rescale(f, 0.5),                                  # 320×240 sensor
        "qvga_quarter": lambda f: _rescale(f, 0.25),                             # 160×120 sensor
        "jpeg_q15": lambda f: _jpeg(f, 15),                                      # a starved video stream
        "defocus": lambda f: cv2.GaussianBlur(f, (0, 0), 2.0),
        "warm_lamp": lambda f: _u8(f.astype(np.float32) * np.array([0.45, 0.85, 1.15], np.float32)),  # BGR
        "backlight": _backlight,
        "jumps": _jumps(rng),                                                    # what landmark holds must survive
        # geometry: where the person sits and how the head is held
        "far_x0.5": lambda f: _farther(f, 0.5),                                  # twice as far from the camera
        "far_x0.33": lambda f: _farther(f, 1 / 3),                               # three times as far
        "far_x0.25": lambda f: _farther(f, 0.25),                                # four times as far
        "far_x0.2": lambda f: _farther(f, 0.2),
        "far_x0.15": lambda f: _farther(f, 0.15),                                # beyond the limit (BENCHMARKS)
        # ... as the page then sees them: eyes under 8 px make it ask the camera for 1280x720 (site/page_resolution.py),
        # 1.5 times the pixels across where the 640x480 picture is a 4:3 crop of that (Chromium's fake camera)
        "far_x0.2_720p": lambda f: _farther(_hd(f), 0.15),
        "far_x0.15_720p": lambda f: _farther(_hd(f), 0.1125),
        "near_x2": lambda f: _nearer(f, 2.0),
        "near_x3": lambda f: _nearer(f, 3.0),                                    # each eye ~90 px wide
        "tilt15": lambda f: _tilt(f, 15),
        "tilt30": lambda f: _tilt(f, 30),
        "tilt-30": lambda f: _tilt(f, -30),
        "tilt45": lambda f: _tilt(f, 45),
        "tilt_sway": _sway(),                                                    # tilting to and fro, +-40 degrees
        "bystander": _bystander(),                                               # a second, smaller face
        "bystander_return": _bystander_return(),                                 # ... and the person away a while
        "mirrored": lambda f: cv2.flip(f, 1),                                    # a selfie camera's mirror image
        "hd720": _hd,
    }


def main(argv=None) -> int:
    all_conditions = conditions()
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--conditions", nargs="+", default=list(all_conditions), choices=list(all_conditions))
    ap.add_argument("--model", type=Path, default=ROOT / "models" / "eye_state.onnx")
    ap.add_argument("--no-iris", action="store_true", help="the classifier alone (light mode)")
    ap.add_argument("--landmark-hold", type=float, default=0.0, metavar="S",
                    help="PipelineConfig.landmark_hold_s (the live page holds FaceMesh landmarks up to 0.2 s)")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    videos = focus_videos()
    if not videos:
        return 2
    results = {}
    print("| condition | frames with a face | blink F1 | blinks found / labelled, false | frame F1 +1 | "
          "per video blink F1 / frame F1 +1 |\n| --- | ---: | ---: | --- | ---: | --- |")
    for name in args.conditions:
        transform = conditions()[name]  # fresh generator per condition: the same noise on every run
        report = V.run(videos, eye_model=args.model, use_iris=not args.no_iris, progress=False, transform=transform,
                       landmark_hold_s=args.landmark_hold)
        pooled, per = report["pooled"], report["videos"]
        face = sum(v["face_frames"] for v in per.values()) / sum(v["frames"] for v in per.values())
        blink, frame = pooled["blink"], pooled["frame_shifted"]
        results[name] = {"face_share": face, "blink": blink, "frame_shifted": frame,
                         "videos": {n: {"blink_f1": v["blink"]["f1"], "frame_f1_shifted": v["frame_shifted"]["f1"],
                                        "face_frames": v["face_frames"], "frames": v["frames"]}
                                    for n, v in per.items()}}
        each = " ".join(f"{v['blink']['f1']:.2f}/{v['frame_shifted']['f1']:.2f}" for v in per.values())
        print(f"| {name} | {face:.1%} | {blink['f1']:.3f} | {blink['tp']} / {blink['labelled']}, {blink['fp']} | "
              f"{frame['f1']:.3f} | {each} |", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "iris": not args.no_iris,
                                         "landmark_hold_s": args.landmark_hold,
                                         "conditions": results}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
