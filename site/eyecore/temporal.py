"""Per-frame temporal logic: smoothing with hysteresis, blinks, PERCLOS and the microsleep alarm.

Everything is driven by frame timestamps (seconds), never by frame counts, so the same thresholds work
from ~6 to 60 fps with jittery frame spacing. Standard library only (runs in Pyodide on every frame);
`EyeStateTracker.update` is O(1) amortised.

Rules, in one place:

- Per eye: an exponential moving average of p_open with a time constant in seconds, then hysteresis:
  closed when the smoothed value drops below `closed_below`, open again only above `open_above`.
  An eye is "unknown" while it is not visible (p is None), and also when its first value after a
  reset falls between the two thresholds. A pause longer than `max_gap_s` resets both eyes.
- Both eyes together ("eyes" state), by `eye_rule`:
  "both"   closed when every visible eye is closed; if one eye is unknown the visible eye decides;
  "either" closed when any visible eye is closed;
  "mean"   hysteresis on the mean of the visible eyes' smoothed p_open.
  Unknown only when neither eye gives a state.
- Closure timing is sample-and-hold: a frame's state holds until the next frame. A closure's duration
  runs from its first closed frame to its first reopened frame. The eyes really closed somewhere in the
  frame gap before the first closed frame and reopened somewhere in the gap before the first reopened
  one, so a closure is a blink when it followed an open state and that range of possible durations meets
  [`min_blink_s`, `max_blink_s`]: duration + first gap >= min, duration - last gap <= max. A single
  closed frame is then a blink at 30 fps (up to 67 ms) and at 6 fps, not at 60 fps (under 34 ms: flicker).
  A closure starting less than `refractory_s` after the
  previous blink (or its last bounce) ended is a bounce of that blink and is not counted again.
- Unknown frames inside a closure (face lost for a moment) keep the closure alive for `unknown_hold_s`
  after its last closed frame; after that it is dropped without a blink, unless it had reached the alarm.
  Unknown frames do not count as closed time for `min_blink_s`.
- Microsleep alarm: on once a frame sees the eyes still closed `alarm_after_s` after the closure began; off when
  the eyes reopen (or a pause longer than `max_gap_s`). While the face is lost it stays on: a head that drops out
  of view is the typical microsleep. It never starts while nothing is seen.
- PERCLOS: closed time / visible time over the last `window_s` seconds, each frame weighted by the time
  until the next frame. Closed means the "eyes" state is closed, or, when per-eye closure scores
  (0 open .. 1 shut) are given, that the combined score is at least `perclos_closure` (P80).
- Blink rate: blinks that ended in the last `window_s` seconds per minute of time with the eyes in view in
  that window (at least `rate_min_span_s`, so a single early blink does not read as a huge rate).
"""
from __future__ import annotations

import math
import numbers
from collections import deque
from dataclasses import dataclass

OPEN, CLOSED, UNKNOWN = "open", "closed", "unknown"
EYE_RULES = ("both", "either", "mean")
# Frames with identical timestamps still move the smoothing a little instead of not at all.
_MIN_DT_S = 1e-3


@dataclass
class TemporalConfig:
    # Closed below even odds: p_open is a fused probability, so 0.5 is its natural decision point. It replaced
    # 0.35, which was not worse on any of the three focus videos (docs/BENCHMARKS.md, "operating point").
    closed_below: float = 0.5         # smoothed p_open below this -> closed
    open_above: float = 0.65          # smoothed p_open above this -> open again
    smoothing_tau_s: float = 0.015    # EMA time constant in seconds (0 = no smoothing)
    max_gap_s: float = 1.0            # a longer pause between frames resets eye states and closure
    eye_rule: str = "either"          # "both" | "either" | "mean", see module docstring; "either" won the fusion study (docs/BENCHMARKS.md)
    min_blink_s: float = 0.05         # shortest closure counted as a blink (its first frame gap allowed for)
    max_blink_s: float = 0.5          # longest closure counted as a blink (plus the last frame gap)
    refractory_s: float = 0.1         # closures starting this soon after a blink are not new blinks
    unknown_hold_s: float = 0.3       # unknown frames tolerated inside a closure
    alarm_after_s: float = 1.5        # continuous closure that raises the microsleep alarm
    window_s: float = 60.0            # sliding window for PERCLOS and blink rate
    perclos_closure: float = 0.8      # closure score counted as closed for PERCLOS (P80)
    rate_min_span_s: float = 10.0     # blink rate divides by at least this much covered time

    def __post_init__(self):
        if not 0.0 <= self.closed_below <= self.open_above <= 1.0:
            raise ValueError("expected 0 <= closed_below <= open_above <= 1, got "
                             f"closed_below={self.closed_below}, open_above={self.open_above}")
        if self.eye_rule not in EYE_RULES:
            raise ValueError(f"eye_rule must be one of {EYE_RULES}, got {self.eye_rule!r}")
        if not 0.0 <= self.min_blink_s <= self.max_blink_s:
            raise ValueError("expected 0 <= min_blink_s <= max_blink_s, got "
                             f"{self.min_blink_s} and {self.max_blink_s}")
        for name in ("smoothing_tau_s", "refractory_s", "unknown_hold_s", "rate_min_span_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0 seconds, got {getattr(self, name)}")
        for name in ("max_gap_s", "alarm_after_s", "window_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0 seconds, got {getattr(self, name)}")
        if not 0.0 < self.perclos_closure <= 1.0:
            raise ValueError(f"perclos_closure must be in (0, 1], got {self.perclos_closure}")


@dataclass(frozen=True)
class BlinkEvent:
    id: int          # 1, 2, 3, ... in order of detection
    start: float     # time of the first closed frame (s)
    end: float       # time of the first reopened frame (s)
    duration: float  # end - start (s)

    def to_dict(self) -> dict:
        return {"id": self.id, "start": self.start, "end": self.end, "duration": self.duration}


@dataclass(frozen=True)
class TemporalState:
    t: float
    left: str                 # "open" | "closed" | "unknown" (the person's own left eye)
    right: str
    p_left: float | None      # smoothed p_open; None when unknown
    p_right: float | None
    eyes: str                 # both eyes together, by config.eye_rule
    both_closed: bool         # eyes == "closed"
    blink: BlinkEvent | None  # the blink that ended on this frame
    blink_count: int
    blink_rate_per_min: float
    perclos: float            # 0..1
    alarm: bool
    closed_duration: float    # seconds the current closure has lasted (0 when not closed)

    def to_dict(self) -> dict:
        """Flat dict (JSON and CSV friendly); blink_* are None on frames where no blink ended."""
        blink = self.blink
        return {
            "t": self.t, "left": self.left, "right": self.right,
            "p_left": self.p_left, "p_right": self.p_right,
            "eyes": self.eyes, "both_closed": self.both_closed,
            "blink_id": blink.id if blink else None,
            "blink_start": blink.start if blink else None,
            "blink_end": blink.end if blink else None,
            "blink_duration": blink.duration if blink else None,
            "blink_count": self.blink_count, "blink_rate_per_min": self.blink_rate_per_min,
            "perclos": self.perclos, "alarm": self.alarm, "closed_duration": self.closed_duration,
        }


class _Hysteresis:
    """EMA (time constant in seconds) followed by a two-threshold open/closed decision."""

    def __init__(self, config: TemporalConfig):
        self._config = config
        self.reset()

    def reset(self):
        self.smoothed: float | None = None
        self.state = UNKNOWN

    def update(self, p: float | None, dt: float | None) -> None:
        """dt is None on the first frame after a reset (no smoothing history)."""
        if p is None:
            self.reset()
            return
        config = self._config
        if self.smoothed is None or dt is None or config.smoothing_tau_s == 0:
            self.smoothed = p
        else:
            alpha = 1.0 - math.exp(-max(dt, _MIN_DT_S) / config.smoothing_tau_s)
            self.smoothed += alpha * (p - self.smoothed)
        if self.smoothed < config.closed_below:
            self.state = CLOSED
        elif self.smoothed > config.open_above:
            self.state = OPEN


class _TimeShare:
    """Share of time flagged True within a sliding window; merged segments, O(1) amortised."""

    def __init__(self, window_s: float):
        self._window_s = window_s
        self._segments: deque = deque()  # [start, end, flag]
        self._known_s = 0.0
        self._flagged_s = 0.0

    def add(self, start: float, end: float, flag: bool) -> None:
        length = end - start
        if length <= 0:
            return
        last = self._segments[-1] if self._segments else None
        if last is not None and last[2] == flag and last[1] == start:
            last[1] = end
        else:
            self._segments.append([start, end, flag])
        self._known_s += length
        if flag:
            self._flagged_s += length

    def known(self, now: float) -> float:
        """Seconds inside the window that were added (flagged or not)."""
        self.share(now)
        if not self._segments:
            return 0.0
        return max(0.0, self._known_s - max(0.0, now - self._window_s - self._segments[0][0]))

    def share(self, now: float) -> float:
        cutoff = now - self._window_s
        segments = self._segments
        while segments and segments[0][1] <= cutoff:
            start, end, flag = segments.popleft()
            self._known_s -= end - start
            if flag:
                self._flagged_s -= end - start
        if not segments:
            self._known_s = self._flagged_s = 0.0  # drop accumulated rounding
            return 0.0
        head_start, _, head_flag = segments[0]
        outside = max(0.0, cutoff - head_start)
        known = self._known_s - outside
        flagged = self._flagged_s - (outside if head_flag else 0.0)
        if known <= 1e-9:
            return 0.0
        return min(1.0, max(0.0, flagged / known))


def _check_probability(name: str, value) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a number in [0, 1] or None, got {value!r}")
    return float(value)


class EyeStateTracker:
    """Feed one frame at a time with `update`; see the module docstring for the rules."""

    def __init__(self, config: TemporalConfig | None = None):
        self.config = config or TemporalConfig()
        self._left = _Hysteresis(self.config)
        self._right = _Hysteresis(self.config)
        self._mean = _Hysteresis(self.config)
        self._perclos = _TimeShare(self.config.window_s)
        self._blink_ends: deque = deque()
        self.blink_count = 0
        self._t: float | None = None
        self._last_blink_end: float | None = None
        self._reset_tracking()

    @property
    def alarm_on(self) -> bool:
        """Whether the microsleep alarm is on now (as the last state said)."""
        return self._closure_start is not None and self._closure_alarmed

    def _reset_tracking(self):
        for eye in (self._left, self._right, self._mean):
            eye.reset()
        self._closure_start: float | None = None
        self._closure_first_gap = 0.0  # frame gap before the closure's first closed frame
        self._closure_seen_until: float | None = None  # first unknown frame after the last closed one
        self._closure_alarmed = False  # the closure reached alarm_after_s on a frame with the eyes seen closed
        self._closure_last_closed: float | None = None
        self._closure_after_open = False
        self._open_before = False
        self._last_open_t: float | None = None
        self._perclos_flag: bool | None = None  # the previous frame's flag, held until this frame

    def update(self, t_seconds: float, p_open_left: float | None, p_open_right: float | None,
               closed_score_left: float | None = None,
               closed_score_right: float | None = None) -> TemporalState:
        """One frame. p_open_* is None for an eye that is not visible; closed_score_* is an optional
        degree of eyelid closure (0 fully open, 1 fully shut) used only for PERCLOS."""
        if isinstance(t_seconds, bool) or not isinstance(t_seconds, numbers.Real) \
                or not math.isfinite(t_seconds):
            raise ValueError(f"t_seconds must be a finite number of seconds, got {t_seconds!r}")
        t = float(t_seconds)
        p_left = _check_probability("p_open_left", p_open_left)
        p_right = _check_probability("p_open_right", p_open_right)
        score_left = _check_probability("closed_score_left", closed_score_left)
        score_right = _check_probability("closed_score_right", closed_score_right)
        config = self.config

        dt = None if self._t is None else t - self._t
        if dt is not None and dt < 0:
            raise ValueError(f"frame times must not decrease: got t={t} after t={self._t}")
        if dt is not None and dt > config.max_gap_s:
            self._reset_tracking()
            dt = None
        if dt is not None and self._perclos_flag is not None:
            self._perclos.add(self._t, t, self._perclos_flag)
        self._t = t

        self._left.update(p_left, dt)
        self._right.update(p_right, dt)
        eyes = self._combine()
        blink = self._advance_closure(t, eyes, dt)
        self._perclos_flag = self._perclos_closed(eyes, score_left, score_right)
        return self._state(t, eyes, blink)

    def _combine(self) -> str:
        states = [eye.state for eye in (self._left, self._right) if eye.state != UNKNOWN]
        rule = self.config.eye_rule
        if rule == "mean":
            values = [eye.smoothed for eye in (self._left, self._right) if eye.smoothed is not None]
            if not values:
                self._mean.reset()
                return UNKNOWN
            # Already smoothed per eye, so the mean only needs the hysteresis step.
            self._mean.smoothed = None
            self._mean.update(sum(values) / len(values), None)
            return self._mean.state
        if not states:
            return UNKNOWN
        if rule == "both":
            return CLOSED if all(s == CLOSED for s in states) else OPEN
        return CLOSED if any(s == CLOSED for s in states) else OPEN

    def _advance_closure(self, t: float, eyes: str, dt: float | None) -> BlinkEvent | None:
        """Updates the pending closure; returns the blink that ended on this frame, if any."""
        config = self.config
        if eyes == CLOSED:
            if self._closure_start is None:
                self._closure_start = t
                self._closure_first_gap = dt or 0.0
                self._closure_after_open = self._open_before
                self._closure_alarmed = False
            self._closure_last_closed = t
            self._closure_seen_until = None
            # reached on a frame with the eyes seen closed; a delay raised meanwhile (a setting) stops it again
            self._closure_alarmed = t - self._closure_start >= config.alarm_after_s
            return None
        if eyes == UNKNOWN:
            if self._last_open_t is not None and t - self._last_open_t > config.unknown_hold_s:
                self._open_before = False
            if self._closure_start is not None:
                if self._closure_seen_until is None:
                    self._closure_seen_until = t
                # a closure that reached the alarm stays on while the face is lost (a head that drops out of view)
                if t > self._closure_last_closed + config.unknown_hold_s and not self._closure_alarmed:
                    self._closure_start = None
            return None
        self._open_before = True
        self._last_open_t = t
        if self._closure_start is None:
            return None
        start, last_closed = self._closure_start, self._closure_last_closed
        seen_until = t if self._closure_seen_until is None else self._closure_seen_until
        seen_closed = seen_until - start  # unknown frames are not closed time
        self._closure_start = None
        duration = t - start
        last_gap = t - last_closed
        # rounded: a reopening of exactly one 10 fps frame must not be a bounce or not depending on the clock's value
        if self._last_blink_end is not None and round(start - self._last_blink_end, 6) < config.refractory_s:
            self._last_blink_end = t  # a bounce belongs to the blink before it
            return None
        is_blink = (self._closure_after_open
                    and seen_closed + self._closure_first_gap >= config.min_blink_s
                    and duration - last_gap <= config.max_blink_s)
        if not is_blink:
            return None
        self.blink_count += 1
        self._last_blink_end = t
        self._blink_ends.append(t)
        return BlinkEvent(self.blink_count, start, t, duration)

    def _perclos_closed(self, eyes: str, score_left: float | None,
                        score_right: float | None) -> bool | None:
        if eyes == UNKNOWN:
            return None
        if score_left is None and score_right is None:
            return eyes == CLOSED
        values = []
        for eye, score in ((self._left, score_left), (self._right, score_right)):
            if score is not None and eye.state != UNKNOWN:
                values.append(score)
            elif eye.state != UNKNOWN:
                values.append(1.0 if eye.state == CLOSED else 0.0)
        if not values:
            return eyes == CLOSED
        rule = self.config.eye_rule
        combined = min(values) if rule == "both" else max(values) if rule == "either" \
            else sum(values) / len(values)
        return combined >= self.config.perclos_closure

    def _state(self, t: float, eyes: str, blink: BlinkEvent | None) -> TemporalState:
        config = self.config
        cutoff = t - config.window_s
        while self._blink_ends and self._blink_ends[0] <= cutoff:
            self._blink_ends.popleft()
        span = max(self._perclos.known(t), config.rate_min_span_s)
        closed_duration = t - self._closure_start if self._closure_start is not None else 0.0
        # the alarm starts only on a frame that sees the eyes closed, never while nothing is seen
        alarm = self.alarm_on
        return TemporalState(
            t=t, left=self._left.state, right=self._right.state,
            p_left=self._left.smoothed, p_right=self._right.smoothed,
            eyes=eyes, both_closed=eyes == CLOSED, blink=blink,
            blink_count=self.blink_count,
            blink_rate_per_min=len(self._blink_ends) * 60.0 / span if span > 0 else 0.0,
            perclos=self._perclos.share(t),
            alarm=alarm,
            closed_duration=closed_duration,
        )


def label_blink_frames(times, blinks) -> list:
    """Blink id for every frame time (0 outside blinks): a frame belongs to a blink when
    start <= t < end, matching the sample-and-hold timing. `blinks` must be in time order."""
    ids = []
    index = 0
    blinks = list(blinks)
    for t in times:
        while index < len(blinks) and blinks[index].end <= t:
            index += 1
        inside = index < len(blinks) and blinks[index].start <= t < blinks[index].end
        ids.append(blinks[index].id if inside else 0)
    return ids


def alarm_onsets(states) -> int:
    """How many times the microsleep alarm went on over a sequence of tracker states (a closure held past
    `alarm_after_s` counts once, however long it lasts)."""
    onsets, was_on = 0, False
    for state in states:
        if state.alarm and not was_on:
            onsets += 1
        was_on = state.alarm
    return onsets
