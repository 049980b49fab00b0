"""Per-frame results of one session (a video file, or a live camera run) as the CSV the page offers for download.

Pure Python (tested in CPython): one row per processed frame with the columns below; blink ids are filled in when
the CSV is written, from the blinks the tracker reported (a frame belongs to a blink when start <= t < end).
"""
from __future__ import annotations

import csv
import io
import math
from collections import deque

from eyecore.temporal import CLOSED, OPEN, label_blink_frames

MAX_HOLD_S = 1.0  # a longer pause between frames (a stalled camera) counts as not seen, as in the tracker
RATE_MIN_SPAN_S = 10.0  # the blink rate divides by at least this much seen time (TemporalConfig.rate_min_span_s)
CSV_COLUMNS = ["frame", "time", "p_open_left", "p_open_right", "state_left", "state_right", "state", "blink_id",
               "alarm"]


def _round(value, digits=4):
    return "" if value is None else round(value, digits)


def clock_text(seconds: float) -> str:
    """m:ss (h:mm:ss past an hour); "?" for an unknown length (a browser-recorded file may report Infinity)."""
    if not math.isfinite(seconds):
        return "?"
    seconds = int(max(0.0, seconds))
    hours, rest = divmod(seconds, 3600)
    return (f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}")


def count_text(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


class Recording:
    """`limit` keeps only the newest rows (a live run can last hours); frame numbers keep counting from the
    session's first frame, and time is seconds since that frame (`relative_time`) or the clip's own media time."""

    def __init__(self, limit: int | None = None, relative_time: bool = False):
        self.rows: deque = deque(maxlen=limit)
        self.blinks: deque = deque()
        self.frames = 0
        self.alarms = 0  # times the microsleep alarm went on (a closure held past the delay counts once)
        self.total_blinks = 0  # also those whose rows were dropped by `limit`
        self.dark_frames = 0  # frames whose eyes were too dark to judge well (FrameResult.eyes_dark) ...
        self.bright_frames = 0  # ... or too bright (FrameResult.eyes_bright)
        self.small_frames = 0  # ... or too small in the picture (FrameResult.eyes_small)
        self.faceless_frames = 0  # frames where no face was found
        self.seen_s = 0.0  # time with the eyes' state known (open or closed) ...
        self.closed_s = 0.0  # ... and closed, each frame holding until the next (at most MAX_HOLD_S)
        self._alarm_on = False
        self.relative_time = relative_time
        self._t0: float | None = None
        self._last: tuple | None = None  # (t, eyes) of the previous frame

    def __len__(self) -> int:
        return len(self.rows)

    def add(self, t: float, result, state) -> None:
        """`result`: the FramePipeline's FrameResult; `state`: the tracker's TemporalState for that frame."""
        if self._t0 is None:
            self._t0 = t
        left, right = result.left, result.right
        # a tuple, not a dict: an hour of live frames is 108,000 rows in the browser's memory
        self.rows.append((self.frames, t, _round(left and left.p_open), _round(right and right.p_open),
                          state.left, state.right, state.eyes, int(state.alarm)))
        if state.alarm and not self._alarm_on:
            self.alarms += 1
        self._alarm_on = state.alarm
        self.frames += 1
        self.dark_frames += bool(getattr(result, "eyes_dark", False))
        self.bright_frames += bool(getattr(result, "eyes_bright", False))
        self.small_frames += bool(getattr(result, "eyes_small", False))
        self.faceless_frames += getattr(result, "status", "face") != "face"
        if self._last is not None and self._last[1] in (OPEN, CLOSED):
            gap = max(0.0, t - self._last[0])
            held = gap if gap <= MAX_HOLD_S else 0.0  # the whole pause unseen: the tracker resets after it
            self.seen_s += held
            self.closed_s += held if self._last[1] == CLOSED else 0.0
        self._last = (t, state.eyes)
        if state.blink is not None:
            self.blinks.append(state.blink)
            self.total_blinks += 1
        while self.blinks and self.blinks[0].end <= self.rows[0][1]:
            self.blinks.popleft()  # ended before the oldest kept row

    @property
    def blink_count(self) -> int:
        """Blinks within the kept rows."""
        return len(self.blinks)

    @property
    def duration_s(self) -> float:
        return 0.0 if self._last is None else self._last[0] - self._t0

    def summary(self) -> dict:
        """The whole session at a glance (also what `limit` dropped from the rows)."""
        # per minute with the eyes in view, as the live blink rate counts it (time without a face has no blinks)
        minutes = max(self.seen_s, RATE_MIN_SPAN_S) / 60
        return {"seconds": round(self.duration_s, 1), "frames": self.frames, "blinks": self.total_blinks,
                "blinks_per_min": round(self.total_blinks / minutes, 1) if self.frames else 0.0,
                "alarms": self.alarms, "closed_share": round(self.closed_s / self.seen_s, 4) if self.seen_s else 0.0,
                "seen_share": round(self.seen_s / self.duration_s, 4) if self.duration_s > 0 else 0.0,
                "dark_share": round(self.dark_frames / self.frames, 4) if self.frames else 0.0,
                "bright_share": round(self.bright_frames / self.frames, 4) if self.frames else 0.0,
                "small_share": round(self.small_frames / self.frames, 4) if self.frames else 0.0}

    def light_text(self) -> str:
        """A sentence's end when some frames' eyes were too dark, too bright or too small to judge well, else ""."""
        text = ""
        if self.dark_frames:
            text += (f"; too dark to see the eyes well on {self.dark_frames / self.frames * 100:.0f} % of the frames "
                     "(closed eyes may have been missed there)")
        if self.bright_frames:
            text += (f"; eyes washed out by light on {self.bright_frames / self.frames * 100:.0f} % of the frames "
                     "(blinks may have been miscounted there)")
        if self.small_frames:
            text += (f"; eyes too small in the picture (too far from the camera) on "
                     f"{self.small_frames / self.frames * 100:.0f} % of the frames (blinks may have been miscounted "
                     "there)")
        return text

    def csv_text(self) -> str:
        rows = list(self.rows)
        ids = label_blink_frames([row[1] for row in rows], self.blinks)
        offset = self._t0 if self.relative_time and self._t0 is not None else 0.0
        text = io.StringIO()
        writer = csv.writer(text, lineterminator="\n")
        writer.writerow(CSV_COLUMNS)
        for (frame, t, p_left, p_right, s_left, s_right, eyes, alarm), blink_id in zip(rows, ids):
            writer.writerow((frame, round(t - offset, 4), p_left, p_right, s_left, s_right, eyes, blink_id, alarm))
        return text.getvalue()
