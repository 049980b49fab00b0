"""When the device cannot keep up with the camera, shed the eyelid (iris) model.

A blink lasts 100-300 ms. A device that processes only every fourth camera frame (7.5 of 30 fps) lost 4-5 of
the 20 blinks of the two mahie videos in replay, one that processes every second frame (15 fps) lost 1, with or
without the iris model (scripts/slow_device_study.py; docs/BENCHMARKS.md section 4, "Slow devices"). On a CPU
throttled 4x the page ran 7.7 fps with the iris model and 13.4 fps without it, so there the classifier alone catches
more blinks. A slow camera is another matter: its frames are all processed, and nothing is shed.

Live frames in either mode also let FaceMesh skip the frames of a still face (page_app.LIVE_LANDMARK_HOLD_S): on
the same throttled CPU light mode then ran 17.9 fps instead of 12.7, and in replay holding the landmarks did not
change how many blinks a given share of processed frames finds, even with a jumping head (docs/BENCHMARKS.md
section 4, "FaceMesh skips").

Light mode is not for the whole visit: a laptop busy with something else for a while (or still warming up its
JIT in the first seconds) gets the eyelid model back. Once light mode keeps up with the camera, the full
pipeline is tried again after `retry_after_s`; each relapse doubles that wait, so a device that really is too
slow spends at most one window in `max_retry_after_s` falling behind.
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
    retry_after_s: float = 10.0    # light mode that keeps up tries the full pipeline again after this long
    max_retry_after_s: float = 300.0  # ... doubling the wait after each relapse, up to this


class FrameBudget:
    """Counts camera frames and processed frames. `light` turns True once, over a full window, the page processed
    fewer than `light_below_fps` while the camera offered clearly more; it turns False again when, `retry_after`
    seconds later, a full window of light mode kept up with the camera."""

    def __init__(self, config: BudgetConfig | None = None):
        self.config = config or BudgetConfig()
        self.light = False
        self.retry_after = self.config.retry_after_s
        self._retry_at = None
        self._arrived = deque()
        self._processed = deque()
        self._since = self._last = None

    def reset(self) -> None:
        """A new stream: the windows start again; light mode and its retry schedule are kept (same device)."""
        self._arrived.clear()
        self._processed.clear()
        self._since = self._last = None

    def arrived(self, t: float, count: int = 1) -> bool:
        """`count` camera frames arrived by time t (seconds): a busy page hears of several at once. Returns `light`.
        After a silence the first camera frame must be reported here before the next processed one (only an arrival
        after a silence starts the count afresh, _add), or the count reset(): the page resets it whenever its clock
        reads a frame (another tab in front, a stalled camera)."""
        return self._add(self._arrived, t, max(1, count))

    def processed(self, t: float) -> bool:
        """A frame finished processing at time t. Returns `light`."""
        return self._add(self._processed, t)

    def _add(self, events: deque, t: float, count: int = 1) -> bool:
        # A silence (a hidden tab, a stalled camera) ends with a camera frame. A long wait that ends with a processed
        # frame is this device taking that long over one frame (under 1 fps): that is what the window must count.
        silence = events is self._arrived and self._last is not None and t - self._last > self.config.max_gap_s
        if self._last is None or silence:
            self._new_window(t)  # frames counted across the silence before it (a burst of presentedFrames) do not count
            count = 1
        self._last = t
        events.extend([t] * count)
        span = self.config.window_s
        for queue in (self._arrived, self._processed):
            while queue and t - queue[0] > span:
                queue.popleft()
        if t - self._since < span:
            return self.light
        done, offered = len(self._processed) / span, len(self._arrived) / span
        behind = offered >= self.config.dropped_ratio * done
        if not self.light and behind and done < self.config.light_below_fps:
            self.light = True
            self._retry_at = t + self.retry_after
            self.retry_after = min(2 * self.retry_after, self.config.max_retry_after_s)
            self._new_window(t)
        elif self.light and not behind and t >= self._retry_at:
            self.light = False
            self._new_window(t)
        return self.light

    def _new_window(self, t: float) -> None:
        """Count afresh: after a silence, or after a switch (the other mode's frames say nothing of this one)."""
        self._arrived.clear()
        self._processed.clear()
        self._since = t
