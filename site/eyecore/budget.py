"""When the device cannot keep up with the camera, shed the eyelid (iris) model.

A blink lasts 100-300 ms. A device that processes only every fourth camera frame (7.5 of 30 fps) lost 4-5 of
the 20 blinks of the two mahie videos in replay, one that processes every second frame (15 fps) lost 1, with or
without the iris model (scripts/slow_device_study.py; docs/BENCHMARKS.md section 4, "Slow devices"). On a CPU throttled 4x the page ran 7.7 fps
with the iris model and 13.4 fps without it, so there the classifier alone catches more blinks. A slow camera
is another matter: its frames are all processed, and nothing is shed.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass
class BudgetConfig:
    window_s: float = 3.0          # judge over this much time (a full window is needed before any decision)
    light_below_fps: float = 15.0  # processed frames per second under which blinks start to fall between frames
    dropped_ratio: float = 1.3     # ... and the camera delivered at least this many times more frames
    max_gap_s: float = 1.0         # a longer silence (hidden tab, stalled camera) starts a new window


class FrameBudget:
    """Counts camera frames and processed frames; `light` turns True (and stays, until reset) once, over a full
    window, the page processed fewer than `light_below_fps` while the camera offered clearly more."""

    def __init__(self, config: BudgetConfig | None = None):
        self.config = config or BudgetConfig()
        self.light = False
        self._arrived = deque()
        self._processed = deque()
        self._since = self._last = None

    def reset(self) -> None:
        self.light = False
        self._arrived.clear()
        self._processed.clear()
        self._since = self._last = None

    def arrived(self, t: float, count: int = 1) -> bool:
        """`count` camera frames arrived by time t (seconds): a busy page hears of several at once. Returns `light`."""
        return self._add(self._arrived, t, max(1, count))

    def processed(self, t: float) -> bool:
        """A frame finished processing at time t. Returns `light`."""
        return self._add(self._processed, t)

    def _add(self, events: deque, t: float, count: int = 1) -> bool:
        if self.light:
            return True
        if self._last is None or t - self._last > self.config.max_gap_s:
            # a new window; frames counted across the silence before it (a burst of presentedFrames) do not count
            self._arrived.clear()
            self._processed.clear()
            self._since, count = t, 1
        self._last = t
        events.extend([t] * count)
        span = self.config.window_s
        for queue in (self._arrived, self._processed):
            while queue and t - queue[0] > span:
                queue.popleft()
        if t - self._since >= span:
            done, offered = len(self._processed) / span, len(self._arrived) / span
            if done < self.config.light_below_fps and offered >= self.config.dropped_ratio * done:
                self.light = True
        return self.light
