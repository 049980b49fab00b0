"""More camera pixels when the eyes are too small in the picture.

The page asks the camera for 640x480: plenty for a person at a laptop (eye corners about 30 px apart in the focus
videos) and cheap to copy every frame. A person sitting farther back shows eyes under
`PipelineConfig.small_eye_px` (8 px), where they are judged less well (docs/BENCHMARKS.md section 4, "Distance,
..."). Most webcams can send 1280x720, which gives the same face 1.5-2 times the pixels across. Some send fewer
frames a second at that size (USB 2 bandwidth, longer exposures), and a slow device processes fewer; fewer frames
lose blinks. So: eyes small for `small_for_s` of live frames -> ask for 1280x720; once the larger picture arrives,
judge the frame rate over `judge_s`, and go back to 640x480 if the page then processes clearly fewer frames a second
than before, or whenever light mode starts (the device cannot keep up). A camera whose picture stops changing after
being asked is put back too. Once the person has come closer (eyes at least twice the small size, as 640x480 would
show them) for `near_for_s`, the larger picture only costs time: back to 640x480, and asked again if they move away
(after `small_again_for_s` of small eyes).
A camera that slowed down or stopped is not asked again in this visit (page_app.py remembers it).
"""
from __future__ import annotations

from dataclasses import dataclass

STANDARD = (640, 480)
SHARP = (1280, 720)

RAISE = "raise"  # ask the camera for SHARP
LOWER = "lower"  # ... and back for STANDARD


def constraints(size: tuple) -> dict:
    """What getUserMedia / applyConstraints get for a picture size (ideal, so a camera without it sends its nearest)."""
    return {"width": {"ideal": size[0]}, "height": {"ideal": size[1]}}


@dataclass
class ResolutionConfig:
    small_for_s: float = 1.0      # eyes small this long, without a frame of normal eyes, before asking
    judge_s: float = 3.0          # the larger picture's frame rate is judged over this long (and a camera that sends
                                  # no larger picture this long after being asked has none)
    keep_fps_share: float = 0.75  # ... and kept while the page processes at least this share of the rate before
    # The picture still unchanged (camera-stalled) this long after asking (or after the larger picture came): the
    # switch stopped the camera. A camera still at its old size is blamed only up to twice this long after asking.
    stall_s: float = 5.0
    # Eye corners at least this far apart, as 640x480 would show them, count as near: twice PipelineConfig.
    # small_eye_px, so a person at the edge of "small" does not make the camera switch back and forth. "As 640x480
    # would show them" takes the smaller of the two sides' ratios, so it never overcounts: a 4:3 sensor's 1280x720
    # is the 640x480 view at twice the pixels (ratio 1/2), a 16:9 sensor's 640x480 a cut-out of its 1280x720 at 2/3.
    near_eye_px: float = 16.0
    near_for_s: float = 5.0       # eyes near this long, without a frame of smaller ones, before going back
    # After going back for near eyes, eyes small this long (not small_for_s) before asking again: a head turned far
    # to one side shrinks the eyes too, and must not make the camera switch every few seconds.
    small_again_for_s: float = 10.0


def as_standard_px(px: float, size: tuple) -> float:
    """A length in pixels of a picture of `size`, as the STANDARD picture would show it at most."""
    return px * min(min(STANDARD) / min(size), max(STANDARD) / max(size))


class SharperPicture:
    """Decides, frame by frame, when to ask the camera for more pixels and when to go back. States:
    "standard" (not asked, or back after the person came closer), "asked" (waiting for the larger picture),
    "judging" (it came: its frame rate is being judged), "kept", "lowered" (went back: fewer frames or light mode),
    "frozen" (went back: the picture stopped changing after asking), "unavailable" (no larger picture within judge_s:
    judged if one comes later), "slow" (not asked: this camera slowed down or stopped with more pixels earlier in the
    visit)."""

    def __init__(self, config: ResolutionConfig | None = None):
        self.config = config or ResolutionConfig()
        self.reset()

    def reset(self, slow_camera: bool = False) -> None:
        """A new camera stream; `slow_camera`: this camera was lowered before, do not ask it again."""
        self.state = "slow" if slow_camera else "standard"
        self.before = self.fps_before = None  # picture size and processed frames a second when asking
        self.lowered_for_rate = False  # went back because the frame rate fell or the picture froze: not this camera
        self.near_lowerings = 0  # went back this many times because the person came closer (this stream)
        self._small_since = self._since = self._near_since = None

    def interrupt(self) -> None:
        """Frames were missed (read behind another tab): small eyes must be seen for small_for_s again, near ones for
        near_for_s."""
        self._small_since = self._near_since = None

    def frame(self, t: float, eyes_small: bool, size: tuple, fps: float, light: bool = False,
              eye_px: float | None = None) -> str | None:
        """One processed live frame at time t (s): were the eyes small, the picture's (width, height), the processed
        frames a second of the last seconds, whether light mode is on (the device already cannot keep up: more
        pixels would make it slower), and the eyes' mean corner distance in frame pixels (None: no eye seen).
        Returns RAISE or LOWER when the camera should be asked, else None."""
        cfg = self.config
        if self.state == "standard":
            if not eyes_small or light or max(size) >= max(SHARP):  # a phone held upright: 720x1280 is as large
                self._small_since = None
                return None
            if self._small_since is None:
                self._small_since = t
            if t - self._small_since < (cfg.small_again_for_s if self.near_lowerings else cfg.small_for_s):
                return None
            self.state, self._since, self.before, self.fps_before = "asked", t, tuple(size), fps
            return RAISE
        grew = self.before is not None and size[0] * size[1] > self.before[0] * self.before[1]
        if self.state == "unavailable" and grew:  # a camera slower to switch than judge_s: judged all the same
            self.state, self._since = "judging", t
            return None
        if self.state == "asked":
            if tuple(size) != self.before:
                if grew:
                    self.state, self._since = "judging", t
                    return None
                self.state = "unavailable"  # another size, but not more pixels (e.g. a 16:9 crop): back
                return LOWER
            if t - self._since >= cfg.judge_s:
                self.state = "unavailable"
            return None
        if self.state in ("judging", "kept") and light:
            self.state = "lowered"
            return LOWER
        if self.state == "judging" and t - self._since >= cfg.judge_s:
            if self.fps_before and fps < cfg.keep_fps_share * self.fps_before:
                self.state, self.lowered_for_rate = "lowered", True
                return LOWER
            self.state = "kept"
        if self.state == "kept":
            return self._near(t, eye_px, size)
        return None

    def _near(self, t: float, eye_px: float | None, size: tuple) -> str | None:
        cfg = self.config
        if eye_px is None or as_standard_px(eye_px, size) < cfg.near_eye_px:
            self._near_since = None
            return None
        if self._near_since is None:
            self._near_since = t
        if t - self._near_since < cfg.near_for_s:
            return None
        # the person came closer: 640x480 shows their eyes well, at less cost; asked again if they sit back
        self.state, self.before, self.fps_before = "standard", None, None
        self._small_since = self._since = self._near_since = None
        self.near_lowerings += 1
        return LOWER

    def camera_stalled(self, t: float) -> str | None:
        """The camera's picture has not changed for a while (camera-stalled) at time t (s). Soon after asking for more
        pixels the switch is the likely cause (some cameras stop when their format changes): back, and this camera is
        not asked again in this visit. Returns LOWER then, else None."""
        cfg = self.config
        recent = self.state in ("asked", "judging") \
            or (self.state == "unavailable" and t - self._since <= 2 * cfg.stall_s)
        if recent and t - self._since >= cfg.stall_s:
            self.state, self.lowered_for_rate = "frozen", True
            return LOWER
        return None
