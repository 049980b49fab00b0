"""More camera pixels when the eyes are too small in the picture.

The page asks the camera for 640x480: plenty for a person at a laptop (eye corners about 30 px apart in the focus
videos) and cheap to copy every frame. A person sitting farther back shows eyes under
`PipelineConfig.small_eye_px` (8 px), where they are judged less well (docs/BENCHMARKS.md section 4, "Distance,
..."). Most webcams can send 1280x720, which gives the same face 1.5-2 times the pixels across. Some send fewer
frames a second at that size (USB 2 bandwidth, longer exposures), and a slow device processes fewer; fewer frames
lose blinks. So, once per camera: eyes small for `small_for_s` of live frames -> ask for 1280x720; if over the
next `judge_s` the page then processes clearly fewer frames a second than before, go back to 640x480.
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
    judge_s: float = 3.0          # the frame rate after asking is judged over this long
    keep_fps_share: float = 0.75  # ... and the larger picture kept while it processes at least this share of before


class SharperPicture:
    """Decides, frame by frame, when to ask the camera for more pixels and when to go back. States: "standard"
    (not asked), "asked" (frame rate being judged), "kept", "lowered" (went back; not asked again for this camera)."""

    def __init__(self, config: ResolutionConfig | None = None):
        self.config = config or ResolutionConfig()
        self.reset()

    def reset(self) -> None:
        """A new camera stream."""
        self.state = "standard"
        self.fps_before = None
        self._small_since = self._asked_at = None

    def frame(self, t: float, eyes_small: bool, width: int, fps: float, light: bool = False) -> str | None:
        """One processed live frame at time t (s): were the eyes small, the picture's width, the processed frames a
        second of the last seconds, and whether light mode is on (the device already cannot keep up: more pixels
        would make it slower). Returns RAISE or LOWER when the camera should be asked, else None."""
        cfg = self.config
        if self.state == "standard":
            if not eyes_small or light or width >= SHARP[0]:
                self._small_since = None
                return None
            if self._small_since is None:
                self._small_since = t
            if t - self._small_since < cfg.small_for_s:
                return None
            self.state, self._asked_at, self.fps_before = "asked", t, fps
            return RAISE
        if self.state == "asked" and t - self._asked_at >= cfg.judge_s:
            if fps < cfg.keep_fps_share * self.fps_before:
                self.state = "lowered"
                return LOWER
            self.state = "kept"
        return None
