"""Frame-level and blink-level scores of per-frame closed-eye predictions against labels.

Frame level: closed is the positive class; precision / recall / F1 with tp/fp/fn/tn.

Blink level: an event is a maximal run of closed frames (first, last frame index, inclusive).
A predicted event matches a labelled one when it overlaps the labelled event widened by `tolerance`
frames on each side, i.e. when at most `tolerance` frames lie between their nearest frames' indices
(label frames 10-12: a prediction starting at frame 16 matches with tolerance 4, one at 17 does not).
Matching is one-to-one and maximal: a prediction covering a whole video matches at most one label.
Pooled scores sum the counts over videos, then compute precision / recall / F1 once.

Zero-division convention: with nothing to find and nothing predicted (tp = fp = fn = 0) precision,
recall and F1 are 1.0; otherwise an empty denominator gives 0.0.
"""
from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path

DEFAULT_TOLERANCE = 4


def as_flags(values, what: str = "flags") -> list:
    """0/1 (or bool) sequence -> list of int; anything else is an error naming `what`."""
    flags = []
    for index, value in enumerate(values):
        if value is True or value is False or value in (0, 1):
            flags.append(int(value))
        else:
            raise ValueError(f"{what}[{index}] = {value!r}: expected 0/1 or a bool per frame "
                             "(map unknown frames to 0 or 1 before scoring)")
    return flags


def _check_pair(pred_closed, labels) -> tuple:
    pred = as_flags(pred_closed, "pred_closed")
    truth = as_flags(labels, "labels")
    if len(pred) != len(truth):
        raise ValueError(f"{len(pred)} predicted frames but {len(truth)} labels: lengths must match")
    return pred, truth


def shift_labels(labels, k: int) -> list:
    """Labels moved k frames later (k < 0: earlier); same length, the vacated end repeats its edge value."""
    flags = as_flags(labels, "labels")
    if not flags or k == 0:
        return flags
    if k > 0:
        return [flags[0]] * min(k, len(flags)) + flags[:max(len(flags) - k, 0)]
    k = -k
    return flags[k:] + [flags[-1]] * min(k, len(flags))


def prf(tp: int, fp: int, fn: int) -> dict:
    """Precision, recall and F1 from counts (see the module docstring for empty denominators)."""
    if tp == fp == fn == 0:
        return {"precision": 1.0, "recall": 1.0, "f1": 1.0}
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * tp / (2 * tp + fp + fn)
    return {"precision": precision, "recall": recall, "f1": f1}


def frame_counts(pred_closed, labels) -> dict:
    pred, truth = _check_pair(pred_closed, labels)
    tp = sum(1 for p, y in zip(pred, truth) if p and y)
    fp = sum(1 for p, y in zip(pred, truth) if p and not y)
    fn = sum(1 for p, y in zip(pred, truth) if not p and y)
    return {"tp": tp, "fp": fp, "fn": fn, "tn": len(pred) - tp - fp - fn, "frames": len(pred)}


def frame_metrics(pred_closed, labels) -> dict:
    """{"precision", "recall", "f1", "tp", "fp", "fn", "tn", "frames"} with closed as positive."""
    counts = frame_counts(pred_closed, labels)
    return {**prf(counts["tp"], counts["fp"], counts["fn"]), **counts}


def events(flags) -> list:
    """Maximal runs of 1s as (first, last) frame indices, inclusive."""
    runs = []
    start = None
    values = as_flags(flags)
    for index, value in enumerate(values):
        if value and start is None:
            start = index
        elif not value and start is not None:
            runs.append((start, index - 1))
            start = None
    if start is not None:
        runs.append((start, len(values) - 1))
    return runs


def _check_events(runs, what: str) -> list:
    runs = [(int(a), int(b)) for a, b in runs]
    for index, (a, b) in enumerate(runs):
        if b < a or (index and a <= runs[index - 1][1]):
            raise ValueError(f"{what} must be (first, last) frame pairs in time order without overlap; "
                             f"problem at {index}: {runs[max(index - 1, 0):index + 1]}")
    return runs


def match_events(pred_events, label_events, tolerance: int = DEFAULT_TOLERANCE) -> list:
    """Maximum one-to-one matching; returns (pred index, label index) pairs.

    Both lists are in time order without overlap, so each label's compatible predictions form a
    contiguous range whose ends never move backwards from one label to the next. Giving each label,
    in order, the earliest compatible prediction still free is then a maximum matching (the
    earliest-deadline-first exchange argument); tests check it against exhaustive search.
    """
    if tolerance < 0:
        raise ValueError(f"tolerance must be >= 0 frames, got {tolerance}")
    preds = _check_events(pred_events, "pred_events")
    labels = _check_events(label_events, "label_events")
    pairs = []
    j = 0
    for i, (first, last) in enumerate(labels):
        while j < len(preds) and preds[j][1] < first - tolerance:
            j += 1
        if j < len(preds) and preds[j][0] <= last + tolerance:
            pairs.append((j, i))
            j += 1
    return pairs


def blink_metrics(pred_closed, labels, tolerance: int = DEFAULT_TOLERANCE) -> dict:
    """{"precision", "recall", "f1", "tp", "fp", "fn", "predicted", "labelled", "tolerance_frames"}."""
    pred, truth = _check_pair(pred_closed, labels)
    pred_runs, label_runs = events(pred), events(truth)
    return _blink_result(len(match_events(pred_runs, label_runs, tolerance)),
                         len(pred_runs), len(label_runs), tolerance)


def _blink_result(tp: int, predicted: int, labelled: int, tolerance: int) -> dict:
    fp, fn = predicted - tp, labelled - tp
    return {**prf(tp, fp, fn), "tp": tp, "fp": fp, "fn": fn,
            "predicted": predicted, "labelled": labelled, "tolerance_frames": tolerance}


def counter_metrics(blink_ids, labels, times, max_blink_s: float, tolerance: int = DEFAULT_TOLERANCE) -> dict:
    """The blink counter (the tracker's blinks: one id per frame, 0 outside) against the labelled closures that can be
    blinks. A labelled run whose first and last frames lie more than `max_blink_s` apart is a long closure, which
    the counter rightly leaves out: it is not a labelled blink here. Same matching as blink_metrics."""
    if not len(blink_ids) == len(labels) == len(times):
        raise ValueError(f"{len(blink_ids)} blink ids, {len(labels)} labels and {len(times)} times: lengths must match")
    counted = events([int(b) > 0 for b in blink_ids])
    labelled = events(labels)
    blinks = [(a, b) for a, b in labelled if times[b] - times[a] <= max_blink_s]
    result = _blink_result(len(match_events(counted, blinks, tolerance)), len(counted), len(blinks), tolerance)
    return {**result, "long_closures": len(labelled) - len(blinks)}


def pool_counters(results: list) -> dict:
    """Counts of several counter_metrics results summed, then precision / recall / F1 once."""
    totals = {key: sum(r[key] for r in results) for key in ("tp", "predicted", "labelled", "long_closures")}
    tolerance = results[0]["tolerance_frames"] if results else DEFAULT_TOLERANCE
    return {**_blink_result(totals["tp"], totals["predicted"], totals["labelled"], tolerance),
            "long_closures": totals["long_closures"]}


def _pool_frames(results: list) -> dict:
    totals = {key: sum(r[key] for r in results) for key in ("tp", "fp", "fn", "tn", "frames")}
    return {**prf(totals["tp"], totals["fp"], totals["fn"]), **totals}


def summarize(videos: dict, tolerance: int = DEFAULT_TOLERANCE, label_shift: int = 1) -> dict:
    """videos: name -> (pred_closed, labels), one value per frame.

    Returns {"videos": {name: {"frames", "frame", "blink"[, "frame_shifted"]}},
             "pooled": {"n_videos", "frames", "frame", "blink"[, "frame_shifted"]}}.
    "frame_shifted" scores frames against labels moved `label_shift` frames later (the focus labels
    run about one frame early); it is left out when label_shift is 0.
    """
    if not videos:
        raise ValueError("summarize needs at least one video")
    per_video = {}
    for name, pair in videos.items():
        if len(pair) != 2:
            raise ValueError(f"video {name!r}: expected (pred_closed, labels), got {len(pair)} items")
        try:
            pred, truth = _check_pair(*pair)
        except ValueError as error:
            raise ValueError(f"video {name!r}: {error}") from None
        entry = {"frames": len(pred), "frame": frame_metrics(pred, truth),
                 "blink": blink_metrics(pred, truth, tolerance)}
        if label_shift:
            entry["frame_shifted"] = {**frame_metrics(pred, shift_labels(truth, label_shift)),
                                      "label_shift": label_shift}
        per_video[name] = entry
    entries = list(per_video.values())
    blink_totals = {key: sum(e["blink"][key] for e in entries) for key in ("tp", "predicted", "labelled")}
    pooled = {"n_videos": len(entries), "frames": sum(e["frames"] for e in entries),
              "frame": _pool_frames([e["frame"] for e in entries]),
              "blink": _blink_result(blink_totals["tp"], blink_totals["predicted"],
                                     blink_totals["labelled"], tolerance)}
    if label_shift:
        pooled["frame_shifted"] = {**_pool_frames([e["frame_shifted"] for e in entries]),
                                   "label_shift": label_shift}
    return {"videos": per_video, "pooled": pooled}


LABEL_VALUES = {"0": 0, "1": 1, "0.0": 0, "1.0": 1, "false": 0, "true": 1}


def load_labels(path) -> list:
    """A `<name>_ideal.csv` file: one 0/1 per line (1 = eyes closed); 0.0/1.0 and false/true are read the same. A BOM,
    blank lines and one header line (e.g. `closed`) are allowed."""
    path = Path(path)
    flags, first = [], True
    for number, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), start=1):
        text = line.strip()
        if not text:
            continue
        value = LABEL_VALUES.get(text.lower())
        if value is None and (not first or _is_number(text)):  # a stray number is no header: it would shift every label
            raise ValueError(f"{path}:{number}: expected 0 or 1 per line (1 = eyes closed), got {text!r}")
        if value is not None:  # else the first line is a header
            flags.append(value)
        first = False
    if not flags:
        raise ValueError(f"{path}: no labels found (expected one 0/1 per line)")
    return flags


def load_tag(path) -> list:
    """A `.tag` blink annotation (Eyeblink8, Talking Face, Researcher's Night; blinkingmatters.com) -> one 0/1 per
    frame, 1 = the frame belongs to a labelled blink, the meaning of the focus videos' `_ideal.csv` lines.

    Records lie between the lines `#start` and `#end`, one per frame: `frame ID : blink ID : NF : LE_FC : LE_NV :
    RE_FC : RE_NV : face box (4) : eye corners (8)`, blink ID -1 outside blinks. Only the first two fields are read:
    the dataset's authors say the eye flags are not annotated consistently. Frame IDs are video frame indices from 0;
    a frame without a record (a gap, or past the last record) counts as open. Two blinks whose records touch (no
    frame outside a blink between them) become one labelled event, as every event here is a run of flagged frames."""
    path = Path(path)
    lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    marks = [line.strip().lower() for line in lines]
    if "#start" not in marks:
        raise ValueError(f"{path}: no '#start' line (expected a .tag blink annotation: a header, '#start', "
                         "one 'frame ID:blink ID:...' record per frame, '#end')")
    first = marks.index("#start") + 1
    last = marks.index("#end", first) if "#end" in marks[first:] else len(lines)
    blink_of = {}
    for number, line in enumerate(lines[first:last], start=first + 1):
        if not line.strip():
            continue
        fields = [field.strip() for field in line.split(":")]
        try:
            frame, blink = int(fields[0]), int(fields[1])
        except (ValueError, IndexError):
            raise ValueError(f"{path}:{number}: expected 'frame ID:blink ID:...' with two integers, "
                             f"got {line.strip()[:60]!r}") from None
        if frame < 0 or blink < -1:
            raise ValueError(f"{path}:{number}: frame ID {frame} / blink ID {blink} out of range "
                             "(frame IDs from 0, blink ID -1 outside blinks)")
        if frame in blink_of:
            raise ValueError(f"{path}:{number}: frame {frame} has a second record")
        blink_of[frame] = blink
    if not blink_of:
        raise ValueError(f"{path}: no records between '#start' and '#end'")
    return [int(blink_of.get(frame, -1) >= 0) for frame in range(max(blink_of) + 1)]


MAX_MEDIAN_STEP_S = 1.0  # frame times further apart are not seconds (milliseconds, most likely): no blink is seen


def load_timestamps(path) -> list:
    """A `<name>_timestamps.txt` file (a JSON list, or one value per line, of wall-clock strings or numbers of
    seconds) -> seconds since the first frame. Lines of two numbers, `frame time` (the `.txt` beside an Eyeblink8
    video), are read as frame times in frame order."""
    path = Path(path)
    text = path.read_text(encoding="utf-8-sig")
    if text.lstrip().startswith("["):
        try:
            raw = json.loads(text)
        except json.JSONDecodeError as error:
            raise ValueError(f"{path}: expected a JSON list of frame times ({error})") from None
        where = [f"{path}[{index}]" for index in range(len(raw) if isinstance(raw, list) else 0)]
    else:  # one time per line, or `frame time` pairs
        lines = [(number, line.strip()) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
        if lines and all(len(v.split()) == 2 and all(map(_is_number, v.split())) for _, v in lines):
            lines.sort(key=lambda line: float(line[1].split()[0]))
            raw = [float(v.split()[1]) for _, v in lines]
        else:
            raw = [float(v) if _is_number(v) else v for _, v in lines]
        where = [f"{path}:{number}" for number, _ in lines]  # the line, for a time that is not finite
    if not isinstance(raw, list) or not raw:
        raise ValueError(f"{path}: expected frame times (a JSON list, or one per line)")
    seconds = []
    for index, value in enumerate(raw):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            if not math.isfinite(value):
                raise ValueError(f"{where[index]}: frame time {value!r} is not a finite number of seconds")
            seconds.append(float(value))
            continue
        try:
            seconds.append(datetime.fromisoformat(str(value)).timestamp())
        except ValueError:
            raise ValueError(f"{path}[{index}]: {value!r} is neither seconds nor an ISO date-time") from None
    for index in range(1, len(seconds)):
        if seconds[index] < seconds[index - 1]:
            raise ValueError(f"{path}[{index}]: frame time {raw[index]!r} is earlier than the one before it "
                             f"({raw[index - 1]!r}); frame times must not go backwards")
    steps = sorted(b - a for a, b in zip(seconds, seconds[1:]))
    median = steps[len(steps) // 2] if steps else None
    if median is not None and median <= 0:
        raise ValueError(f"{path}: the frame times do not advance (most frames have the time of the one before)")
    if median is not None and median > MAX_MEDIAN_STEP_S:
        raise ValueError(f"{path}: frames a median {median:g} apart, under one frame a second: are these times in "
                         "milliseconds? Expected seconds")
    return [s - seconds[0] for s in seconds]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True
