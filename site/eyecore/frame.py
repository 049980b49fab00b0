"""Per-frame face -> eyes pipeline (MediaPipe-style tracking), shared by the page and the offline replay.

BlazeFace only when there is no track; FaceMesh on a rotated face ROI; the next ROI comes from the
landmarks; the face-presence score decides when the track is lost. Both eye crops go to the
classifier in one batched call; the optional iris model gives an eyelid opening per eye.
"""
from __future__ import annotations

import bisect
import math
import time
from collections import deque
from dataclasses import dataclass, field
from typing import NamedTuple

from . import blazeface, landmarks as lm
from .geometry import RotatedRect, distance, eye_crop_rect, fraction_inside, is_finite_point, letterbox_rect
from .preprocess import DEFAULT_SPEC, PreprocessSpec, p_open_from_logits
from .runtime import Runtime, TensorSpec

EYES = ("left", "right")  # the person's own eyes

DETECTION_SPEC = TensorSpec.from_range(-1.0, 1.0)
FACE_LANDMARK_SPEC = TensorSpec.from_range(0.0, 1.0)
IRIS_SPEC = TensorSpec.from_range(0.0, 1.0)


FUSIONS = ("logit", "mean")


@dataclass
class PipelineConfig:
    use_classifier: bool = True
    use_iris: bool = True
    # p_open = the weighted mean of p_cnn and p_iris in log-odds ("logit", default: independent evidence,
    # so a confident signal outweighs a lukewarm one) or in probability ("mean"), over the signals available;
    # p_iris = sigmoid((eyelid_opening / reference - iris_closed_ratio) / iris_ratio_width), where the
    # reference is this eye's usual opening (a high percentile over the last iris_baseline_s seconds,
    # at least iris_min_baseline) or 1 when iris_relative is off (then iris_closed_ratio is absolute).
    # Defaults from scripts/fusion_study.py on the focus videos: equal weights (no tuning), closed when
    # the lid gap is 20% below the eye's usual gap.
    cnn_weight: float = 1.0
    iris_weight: float = 1.0
    fusion: str = "logit"             # "logit" | "mean", see above (scripts/fusion_study.py compares them)
    iris_relative: bool = True
    iris_closed_ratio: float = 0.8
    iris_ratio_width: float = 0.05
    iris_baseline_s: float = 30.0
    iris_baseline_percentile: float = 0.75
    iris_min_baseline: float = 0.1   # only guards a degenerate baseline; narrow open eyes sit near 0.15
    # Frames closer together than this on average (faster than ~14 fps): the iris model reads one eye
    # per frame, alternating, and the other eye keeps its reading from the frame before. That halves the
    # costliest stage; with eye_rule "either" every frame still has one eye fully fresh. Below it (a blink
    # may span a single frame) both eyes are read. The average (EMA of the frame gaps) keeps one late
    # frame from flipping the mode. 0 = always both.
    iris_alternate_below_s: float = 0.07
    # ... but only while every visible eye looks plainly open: classifier p_open and the previous frame's fused
    # p_open at least this. A frame with any doubt (a blink starting or ending) reads both eyes fresh, so what
    # the tracker sees during a blink no longer depends on which eye's turn it happened to be. 0.8: on the focus
    # videos 2-7 % of frames are in doubt (0.9: up to 35 %, as webcam p_open of open eyes often sits near 0.85),
    # and 0.8 and 0.9 give the same replay results.
    iris_alternate_min_p: float = 0.8
    # While alternating and calm, an eye is read again only once its last reading is this old (seconds), so
    # the iris model skips calm frames altogether; 0 = one eye every frame (plain alternation). 0.2 s (each eye
    # 5 times a second) ran the iris model on a third of mahie_test_1's frames with the same replay results as
    # 0 and 0.1; 0.35 lost a blink (docs/BENCHMARKS.md section 4). Doubtful frames read both eyes regardless.
    iris_refresh_s: float = 0.2
    # FaceMesh (the largest stage) may skip a frame while the face holds still: its landmarks from at most
    # landmark_hold_s ago are kept when the eyes, at the speed measured between the last two FaceMesh runs, can
    # have moved at most landmark_hold_motion eye-corner distances since (a crop is 2.5 of them wide). Eye corners
    # hardly move in a blink, so head motion is what matters. 0 = FaceMesh on every frame (pipeline.video and the
    # page's clip mode); the live page uses 0.2 (page_app.LIVE_LANDMARK_HOLD_S, docs/BENCHMARKS.md "FaceMesh skips").
    landmark_hold_s: float = 0.0
    landmark_hold_motion: float = 0.1
    # ... and only while each eye looked plainly open on the previous frame (fused p_open, as iris_alternate_min_p);
    # a held frame on which the classifier, or the fused estimate after the eyelid reading, then doubts an eye runs
    # FaceMesh after all and is judged again (a head that moved since makes the crop miss the eye).
    landmark_hold_min_p: float = 0.8
    detection_min_score: float = 0.5
    # A face too small for the detector on the whole frame (a person three to five times as far from the camera as
    # in the focus videos) is looked for again, on the same frame, in one window this many times closer; the next
    # frame without a face tries the next window (search_windows: a half-overlapping grid, nearest the middle first;
    # six for 640x480). 0 or 1 = the whole frame only.
    detection_search_zoom: float = 2.0
    # ... with windows no larger than this (frame pixels): a bigger picture (1280x720, asked for by the page when the
    # eyes are small) gets more windows, so a face is found down to about the same size in pixels as in a 640x480
    # one; but no more than detection_search_max_zoom times closer than the whole frame (a 1280x720 picture: 18
    # windows of 366 px; a 4K video: 18 of 1097 px, not hundreds).
    detection_search_max_px: float = 320.0
    detection_search_max_zoom: float = 3.5
    # While a face is tracked, BlazeFace looks at the whole frame again this often (seconds of frame time); a face
    # there at least nearer_face_ratio times as wide as the tracked one, and not where it is, takes the track over.
    # Without it a bystander picked up while the person was out of view kept the track once they were back
    # (scripts/camera_study.py --conditions bystander_return: mahie_test_1's blink F1 0.12). 0 = never.
    nearer_face_check_s: float = 1.0
    nearer_face_ratio: float = 1.5
    presence_threshold: float = 0.5
    min_eye_inside: float = 0.6       # share of an eye crop that must lie inside the frame
    # Eyes whose classifier crops are black (crushed) on more than this share of their pixels inside the frame, on
    # average over the eyes, are too dark to judge well (FrameResult.eyes_dark; the page says so, the eyes are still
    # judged). scripts/light_study.py on the focus videos: merely darkened pictures have 0-0.12 black (even at 5 % of
    # their light), and crushed ones start to lose blinks around 0.4 (blink F1 0.82 at a median of 0.39, 0.65 at
    # 0.47); a camera that crushed them at 0.52 read every eye "open" (docs/BENCHMARKS.md, "Eyes crushed to black").
    dark_eye_share: float = 0.4
    # The same for white (blown out by too much light): the focus videos times 2.5 have 0.33 of their eye crops white
    # (median) and score as recorded; times 3, 0.52, where false closures start (frame F1 0.65); times 4, 0.73, and
    # 125 false blinks (scripts/light_study.py).
    bright_eye_share: float = 0.5
    # Eyes whose corners are on average closer than this (frame pixels) are too small to judge well (FrameResult.
    # eyes_small; the page says so and asks the person to come closer; the eyes are still judged). scripts/
    # camera_study.py with the person farther away: eyes ~10 px (far_x0.33) score about as recorded, ~7.5 px
    # (far_x0.25) lose frame F1 on two of the three videos, ~6 px (far_x0.2) make 7 false blinks against 2.
    small_eye_px: float = 8.0
    max_yaw_degrees: float = 50.0     # beyond it the far eye is unknown
    min_eye_width_px: float = 4.0     # corner distance below which an eye is unknown
    preprocess: PreprocessSpec = field(default_factory=lambda: DEFAULT_SPEC)

    def __post_init__(self):
        if self.fusion not in FUSIONS:
            raise ValueError(f"PipelineConfig.fusion must be one of {FUSIONS}, got {self.fusion!r}")


@dataclass
class EyeResult:
    p_open: float | None          # fused signal the temporal layer gets (None if nothing available)
    p_cnn: float | None           # classifier alone
    eyelid_opening: float | None  # iris model (or FaceMesh when use_iris is off) lid gap / eye width
    p_iris: float | None          # iris-model eyelid opening mapped to a probability of open (None without iris)
    opening_baseline: float | None  # this eye's usual opening (see PipelineConfig)
    corners: tuple                # ((x, y), (x, y)) image-left then image-right corner, frame pixels
    crop: list                    # classifier crop corners TL, TR, BR, BL in frame pixels (overlay)
    black: float | None = None    # share of the classifier crop's pixels in the frame that are black ...
    white: float | None = None    # ... and white

    def to_dict(self) -> dict:
        return {"p_open": self.p_open, "p_cnn": self.p_cnn, "eyelid_opening": self.eyelid_opening,
                "p_iris": self.p_iris, "opening_baseline": self.opening_baseline,
                "corners": [list(c) for c in self.corners], "crop": [list(c) for c in self.crop],
                "black": self.black, "white": self.white}


@dataclass
class FrameResult:
    t: float
    status: str                       # "face" or "no-face"
    left: EyeResult | None = None     # None = unknown (not visible / off-frame / turned away)
    right: EyeResult | None = None
    face_box: tuple | None = None     # (xmin, ymin, xmax, ymax) of the landmarks, frame pixels
    face_roi: list | None = None      # corners of the rotated FaceMesh ROI
    face_score: float | None = None   # FaceMesh face presence
    yaw_degrees: float | None = None
    detected: bool = False            # BlazeFace ran on this frame
    timings: dict = field(default_factory=dict)  # ms per stage
    landmarks: list | None = field(default=None, repr=False)
    eyes_dark: bool = False           # the eyes are too dark to judge well (PipelineConfig.dark_eye_share)
    eyes_bright: bool = False         # ... or too bright (PipelineConfig.bright_eye_share)
    eyes_small: bool = False          # ... or too small in the picture (PipelineConfig.small_eye_px)
    eye_px: float | None = None       # the seen eyes' mean corner distance, frame pixels (None: no eye seen)

    @property
    def eyes(self) -> dict:
        return {"left": self.left, "right": self.right}

    def to_dict(self) -> dict:
        return {"t": self.t, "status": self.status,
                "left": self.left.to_dict() if self.left else None,
                "right": self.right.to_dict() if self.right else None,
                "face_box": list(self.face_box) if self.face_box else None,
                "face_roi": [list(c) for c in self.face_roi] if self.face_roi else None,
                "face_score": self.face_score, "yaw_degrees": self.yaw_degrees,
                "detected": self.detected, "eyes_dark": self.eyes_dark, "eyes_bright": self.eyes_bright,
                "eyes_small": self.eyes_small, "eye_px": self.eye_px,
                "timings": dict(self.timings)}


def _sigmoid(x: float) -> float:
    x = max(-60.0, min(60.0, x))
    return 1.0 / (1.0 + math.exp(-x))


class OpeningBaseline:
    """A high percentile of one eye's eyelid opening over a sliding time window: the person's usual
    open level (blinks are short, so they barely move it). Sorted list + time queue: O(n) memmove per frame."""

    def __init__(self, window_s: float, percentile: float):
        self.window_s = window_s
        self.percentile = percentile
        self.reset()

    def reset(self) -> None:
        self._queue = deque()
        self._sorted = []

    def update(self, t: float, value: float) -> float:
        if self._queue and t < self._queue[-1][0]:  # time went backwards: a new clip or stream
            self.reset()
        self._queue.append((t, value))
        bisect.insort(self._sorted, value)
        while self._queue and self._queue[0][0] < t - self.window_s:
            _, old = self._queue.popleft()
            del self._sorted[bisect.bisect_left(self._sorted, old)]
        return self.current()

    def current(self) -> float | None:
        if not self._sorted:
            return None
        return self._sorted[min(len(self._sorted) - 1, int(self.percentile * len(self._sorted)))]


def p_open_from_opening(opening: float, baseline: float | None, config: PipelineConfig) -> float:
    reference = max(baseline, config.iris_min_baseline) if config.iris_relative and baseline is not None else 1.0
    return _sigmoid((opening / reference - config.iris_closed_ratio) / config.iris_ratio_width)


_P_CLAMP = 1e-4  # log-odds of 0 or 1 are infinite; clamp to +-9.2


def _logit(p: float) -> float:
    p = min(1.0 - _P_CLAMP, max(_P_CLAMP, p))
    return math.log(p / (1.0 - p))


def fuse(p_cnn: float | None, p_iris: float | None, config: PipelineConfig) -> float | None:
    """Weighted mean (in log-odds or in probability, config.fusion) of the signals that are available
    and have a weight."""
    parts = [(w, p) for w, p in ((config.cnn_weight, p_cnn), (config.iris_weight, p_iris))
             if p is not None and w > 0]
    if not parts:
        return None
    if len(parts) == 1:
        return parts[0][1]
    total = sum(w for w, _ in parts)
    if config.fusion == "mean":
        return sum(w * p for w, p in parts) / total
    return _sigmoid(sum(w * _logit(p) for w, p in parts) / total)


def search_windows(width: float, height: float, zoom: float, max_side: float | None = None,
                   max_zoom: float | None = None) -> list:
    """Squares `zoom` times closer than the detector's letterbox of the frame, but no larger than `max_side` (so a
    bigger picture shows a face to the detector at as many pixels as a 640x480 one does) and no more than `max_zoom`
    times closer (so a very big picture needs few windows). They lie on a grid whose step is at most half their side,
    so every face up to half a window across lies wholly in one; the windows nearest the frame's middle come first."""
    longest = max(width, height)
    side = longest / zoom
    if max_side:
        side = min(side, max_side)
    if max_zoom:
        side = max(side, longest / max_zoom)

    def centres(length: float) -> list:
        if length <= side:
            return [length / 2]
        n = math.ceil((length - side) / (side / 2) - 1e-9) + 1
        return [side / 2 + i * (length - side) / (n - 1) for i in range(n)]

    grid = [(x, y) for y in centres(height) for x in centres(width)]
    grid.sort(key=lambda c: (c[0] - width / 2) ** 2 + (c[1] - height / 2) ** 2)  # stable: row by row among ties
    return [RotatedRect(x, y, side, side, 0.0) for x, y in grid]


class MeshReading(NamedTuple):
    """One FaceMesh run, kept so that its landmarks may stand for the next frames (landmark_hold_s)."""
    t: float
    points: list
    presence: float
    roi: list           # corners of the FaceMesh ROI it ran on
    eye_centre: tuple   # mean of the four eye corners
    eye_size: float     # mean eye-corner distance


class FramePipeline:
    def __init__(self, runtime: Runtime, config: PipelineConfig | None = None):
        self.runtime = runtime
        self.config = config or PipelineConfig()
        self.eye_spec = TensorSpec.from_preprocess(self.config.preprocess)
        self._clock = getattr(runtime, "now", None) or time.perf_counter
        self._roi = None  # face ROI carried to the next frame while tracking
        cfg = self.config
        self._baselines = {eye: OpeningBaseline(cfg.iris_baseline_s, cfg.iris_baseline_percentile)
                           for eye in EYES}
        self._iris_held = {}  # eye -> (opening, baseline, p_iris, time) of its latest iris reading
        self._last_p = {}  # eye -> fused p_open of the previous frame
        self._last_t = None  # time of the previous frame with a face
        self._dt_avg = None  # running average of the gaps between such frames
        self._gap_t = None  # the frame _dt_avg last counted
        self._mesh = None  # MeshReading of the last FaceMesh run
        self._mesh_speed = None  # eye motion between the last two FaceMesh runs, corner distances per second
        self._search_next = 0  # which zoomed window the next failed detection tries (detection_search_zoom)
        self._checked_at = None  # frame time of the last whole-frame look for a nearer face (nearer_face_check_s)

    def reset(self) -> None:
        """A new video or camera: nothing of the last one is kept."""
        self.lose_track()
        self._last_t = self._dt_avg = self._gap_t = None
        for baseline in self._baselines.values():
            baseline.reset()

    def lose_track(self) -> None:
        """The same camera now sends another picture size: the face is looked for afresh (its place was in pixels of
        the old size), while each eye's usual opening, a ratio of the eye's own size, is kept."""
        self._roi = None
        self._search_next = 0
        self._checked_at = None
        self._mesh = self._mesh_speed = None
        self._iris_held, self._last_p = {}, {}

    def _iris_eyes(self, visible: list, t: float, p_cnn: dict) -> list:
        """Which visible eyes the iris model reads on this frame (see iris_alternate_below_s and
        iris_alternate_min_p)."""
        self._track_frame_gap(t)
        limit = self.config.iris_alternate_below_s
        if len(visible) < 2 or self._dt_avg is None or self._dt_avg >= limit:
            return visible
        missing = [eye for eye in visible if eye not in self._iris_held]
        if missing:
            return missing
        floor = self.config.iris_alternate_min_p
        signals = [p_cnn.get(eye) for eye in visible] + [self._last_p.get(eye) for eye in visible]
        if any(p is not None and p < floor for p in signals):
            return visible
        # the eye read longest ago (a tie, after both were read: the right eye), once its reading is old enough
        oldest = min(visible, key=lambda eye: (self._iris_held[eye][3], -EYES.index(eye)))
        return [oldest] if t - self._iris_held[oldest][3] >= self.config.iris_refresh_s else []

    def _track_frame_gap(self, t: float) -> None:
        """Running average of the gaps between frames with visible eyes (once per frame, however often asked)."""
        if t == self._gap_t:
            return
        self._gap_t = t
        dt = None if self._last_t is None else t - self._last_t
        if dt is None or dt < 0:  # first frame, or time went back (a new clip)
            self._dt_avg = None
        else:
            self._dt_avg = dt if self._dt_avg is None else 0.8 * self._dt_avg + 0.2 * dt

    def _doubts(self, p_cnn: dict, openings: dict) -> bool:
        """Whether an eye looks less than plainly open (landmark_hold_min_p), by the classifier or, where the iris
        model read the eye on this frame, by the fused estimate (against the baseline before this reading)."""
        floor = self.config.landmark_hold_min_p
        if any(p < floor for p in p_cnn.values()):
            return True
        for eye, opening in openings.items():
            p_iris = p_open_from_opening(opening, self._baselines[eye].current(), self.config)
            if fuse(p_cnn.get(eye), p_iris, self.config) < floor:
                return True
        return False

    def _held_landmarks(self, t: float):
        """The last FaceMesh result when it may stand for this frame (see landmark_hold_s), else None."""
        if self.config.landmark_hold_s <= 0 or self._mesh is None or self._mesh_speed is None:
            return None
        age = t - self._mesh.t
        if not 0 < age < self.config.landmark_hold_s or self._mesh_speed * age > self.config.landmark_hold_motion:
            return None
        floor = self.config.landmark_hold_min_p
        if floor > 0 and any(self._last_p.get(eye) is None or self._last_p[eye] < floor for eye in EYES):
            return None
        return self._mesh

    def _remember_landmarks(self, t: float, points, presence: float, roi_corners) -> None:
        corners = [c for eye in EYES for c in lm.eye_corners(points, eye)]
        centre = (sum(c[0] for c in corners) / 4, sum(c[1] for c in corners) / 4)
        size = (distance(*corners[:2]) + distance(*corners[2:])) / 2
        previous, self._mesh_speed = self._mesh, None
        if previous is not None and t > previous.t and size > 0:
            moved = distance(centre, previous.eye_centre) + abs(size - previous.eye_size)
            self._mesh_speed = moved / size / (t - previous.t)
        self._mesh = MeshReading(t, points, presence, roi_corners, centre, size)

    # -- stages -------------------------------------------------------------------------------

    def _detect(self, frame, width, height):
        """The best face BlazeFace finds on the whole frame or, failing that, in this frame's zoomed window."""
        whole = letterbox_rect(width, height)
        det = yield from self._detect_in(frame, whole)
        zoom = self.config.detection_search_zoom
        if det is None and zoom > 1:
            windows = search_windows(width, height, zoom, self.config.detection_search_max_px,
                                     self.config.detection_search_max_zoom)
            det = yield from self._detect_in(frame, windows[self._search_next % len(windows)])
            self._search_next += 1
        return det

    def _take_nearer_face(self, frame, t: float, width, height, timings: dict):
        """While tracking, now and then: a clearly bigger face elsewhere in the picture takes the track over
        (nearer_face_check_s). The tracked person's eye baselines and held readings go with the old track."""
        every = self.config.nearer_face_check_s
        if self._roi is None or every <= 0:
            return
        if self._checked_at is not None and 0 <= t - self._checked_at < every:
            return
        self._checked_at = t
        t0 = self._clock()
        det = yield from self._detect_in(frame, letterbox_rect(width, height), largest=True)
        timings["detect"] = (self._clock() - t0) * 1000
        if det is None:
            return
        found, tracked = lm.face_roi_from_detection(det), self._roi
        apart = distance((found.cx, found.cy), (tracked.cx, tracked.cy)) > tracked.width / 2
        if not apart or found.width < self.config.nearer_face_ratio * tracked.width:
            return
        self.lose_track()
        self._roi, self._checked_at = found, t
        for baseline in self._baselines.values():
            baseline.reset()

    def _detect_in(self, frame, box, largest: bool = False):
        """The face BlazeFace is surest of in `box` of the frame (the biggest one when `largest`), or None."""
        size = blazeface.INPUT_SIZE
        tensor = self.runtime.crop(frame, box, size, size, DETECTION_SPEC)
        out = yield "face_detection", {"input": tensor}
        found = blazeface.detect(out["regressors"], out["classificators"], self.config.detection_min_score)
        if not found:
            return None
        return (max(found, key=lambda d: d.area) if largest else found[0]).to_frame(box)

    def _landmarks(self, frame, roi):
        size = lm.FACE_INPUT_SIZE
        tensor = self.runtime.crop(frame, roi, size, size, FACE_LANDMARK_SPEC)
        out = yield "face_landmark", {"input": tensor}
        presence = _sigmoid(float(out["face_flag"][0]))
        return lm.project(out["landmarks"], roi, size, lm.NUM_FACE_LANDMARKS), presence

    def _iris_openings(self, frame, corners: dict) -> dict:
        """Both eyes in one batched iris-model call; the left eye is mirrored (the model knows one eye)."""
        names = list(corners)
        size = lm.IRIS_INPUT_SIZE
        rois = {eye: lm.iris_roi(*corners[eye]) for eye in names}
        crops = [self.runtime.crop(frame, rois[eye], size, size,
                                   IRIS_SPEC.flipped() if lm.IRIS_FLIP[eye] else IRIS_SPEC) for eye in names]
        out = yield "iris_landmark", {"input": self.runtime.stack(crops)}
        contours = out["eye_contour"]
        per_eye = 3 * lm.NUM_IRIS_CONTOUR
        openings = {}
        for i, eye in enumerate(names):
            raw = contours[i * per_eye:i * per_eye + 3 * lm.EYE_CONTOUR_POINTS]
            contour = lm.project(raw, rois[eye], size, lm.EYE_CONTOUR_POINTS, lm.IRIS_FLIP[eye])
            opening = lm.iris_lid_opening(contour)
            if math.isfinite(opening):  # a broken model output (NaN) is no reading, not "wide open"
                openings[eye] = opening
        return openings

    def _classify(self, frame, rects: dict, width: int, height: int):
        """({eye: p_open of the classifier}, {eye: (black, white) shares of its crop's pixels in the frame})."""
        names = list(rects)
        size = self.config.preprocess.size
        batch = self.runtime.stack([self.runtime.crop(frame, rects[n], size, size, self.eye_spec) for n in names])
        clipped = {}
        for name, (black, white) in zip(names, self.runtime.clipped_share(batch, self.eye_spec)):
            # the crop's part outside the frame is black fill; measured only when there is any (a lit face: none)
            inside = fraction_inside(rects[name], width, height) if black or white else 1.0
            clipped[name] = (max(0.0, black - (1.0 - inside)) / inside, white / inside)
        out = yield "eye_state", {"input": batch}
        logits = out["logits"] if "logits" in out else next(iter(out.values()))  # a CAM export adds "cam"
        probabilities = {n: p_open_from_logits(logits[2 * i:2 * i + 2]) for i, n in enumerate(names)}
        return {n: p for n, p in probabilities.items() if math.isfinite(p)}, clipped  # NaN: no reading, not "closed"

    def _face_landmarks(self, frame, t: float, width, height, held, result):
        """FaceMesh points of this frame (held ones when `held`), detecting the face first when the track is lost;
        None when there is no face."""
        timings, clock = result.timings, self._clock
        if held is not None:
            result.face_roi, result.face_score = held.roi, held.presence
            return held.points
        result.face_roi = None  # set again once FaceMesh finds the face
        for _ in range(2):  # a lost track gets one fresh detection on the same frame
            if self._roi is None:
                t0 = clock()
                det = yield from self._detect(frame, width, height)
                timings["detect"] = (clock() - t0) * 1000
                result.detected = True
                if det is None:
                    return None
                self._roi = lm.face_roi_from_detection(det)
                self._checked_at = t  # the whole frame was just looked at
            t0 = clock()
            roi = self._roi
            points, presence = yield from self._landmarks(frame, roi)
            timings["landmarks"] = timings.get("landmarks", 0.0) + (clock() - t0) * 1000
            result.face_score = presence
            if presence >= self.config.presence_threshold and math.isfinite(sum(p[0] + p[1] for p in points)):
                result.face_roi = roi.corners()
                self._roi = lm.face_roi_from_landmarks(points)
                self._remember_landmarks(t, points, presence, result.face_roi)
                return points
            self._roi = None
            if result.detected:
                return None
        return None

    # -- per frame ----------------------------------------------------------------------------

    def _visible_eyes(self, points, width, height, yaw):
        """{eye: (corners, crop rect)} for eyes the classifier can judge."""
        cfg = self.config
        visible = {}
        for eye in EYES:
            corners = lm.eye_corners(points, eye)
            if not all(is_finite_point(c) for c in corners) or distance(*corners) < cfg.min_eye_width_px:
                continue
            far_eye = "left" if yaw > 0 else "right"
            if abs(yaw) > cfg.max_yaw_degrees and eye == far_eye:
                continue
            rect = eye_crop_rect(corners[0], corners[1], cfg.preprocess.crop_scale)
            if fraction_inside(rect, width, height) < cfg.min_eye_inside:
                continue
            visible[eye] = (corners, rect)
        return visible

    def process(self, frame, t: float) -> FrameResult:
        """One frame, model calls through the synchronous `runtime.run` (CPython replay and tests)."""
        steps = self.steps(frame, t)
        try:
            request = next(steps)
            while True:
                request = steps.send(self.runtime.run(*request))
        except StopIteration as done:
            return done.value

    async def process_async(self, frame, t: float) -> FrameResult:
        """One frame, model calls awaited through `runtime.run_async` (the page: ort-web is asynchronous,
        and awaiting it needs no JSPI, so every browser with WebAssembly runs the page)."""
        steps = self.steps(frame, t)
        try:
            request = next(steps)
            while True:
                request = steps.send(await self.runtime.run_async(*request))
        except StopIteration as done:
            return done.value

    def steps(self, frame, t: float):
        """The per-frame logic as a generator: it yields (model name, feeds) for each model call and is sent
        the outputs back; its return value is the FrameResult. Written once, driven sync or async above."""
        clock = self._clock
        start = clock()
        timings = {}
        width, height = self.runtime.frame_size(frame)
        result = FrameResult(t=t, status="no-face", timings=timings)

        yield from self._take_nearer_face(frame, t, width, height, timings)  # a bystander must not keep the track
        held = self._held_landmarks(t)
        while True:
            points = yield from self._face_landmarks(frame, t, width, height, held, result)
            if points is None:
                self._iris_held, self._last_p = {}, {}
                self._mesh = self._mesh_speed = None
                timings["total"] = (clock() - start) * 1000
                return result
            yaw = lm.yaw_degrees(points)
            visible = self._visible_eyes(points, width, height, yaw)
            p_cnn, clipped = {}, {}
            if self.config.use_classifier and visible:
                t0 = clock()
                p_cnn, clipped = yield from self._classify(frame, {eye: rect for eye, (_, rect) in visible.items()},
                                                         width, height)
                timings["classify"] = timings.get("classify", 0.0) + (clock() - t0) * 1000
            # Held landmarks and an eye in doubt, by the classifier or after the eyelid reading: the head may have
            # moved since FaceMesh last ran (a crop beside the eye looks closed), so FaceMesh looks again.
            in_doubt = held is not None and self._doubts(p_cnn, {})
            openings = {}
            if not in_doubt and self.config.use_iris and visible:
                read = self._iris_eyes(list(visible), t, p_cnn)
                if read:
                    t0 = clock()
                    openings = yield from self._iris_openings(frame, {eye: visible[eye][0] for eye in read})
                    timings["iris"] = timings.get("iris", 0.0) + (clock() - t0) * 1000
                    for eye in read:
                        if eye not in openings:  # read but no usable output: its older reading is stale now
                            self._iris_held.pop(eye, None)
                    in_doubt = held is not None and self._doubts(p_cnn, openings)
            if not in_doubt:
                break
            held = None

        result.status = "face"
        result.landmarks = points
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        result.face_box = (min(xs), min(ys), max(xs), max(ys))
        result.yaw_degrees = yaw
        if self.config.use_iris and visible:
            for eye, opening in openings.items():
                baseline = self._baselines[eye].update(t, opening)
                p_iris = p_open_from_opening(opening, baseline, self.config)
                self._iris_held[eye] = (opening, baseline, p_iris, t)
            readings = {eye: self._iris_held[eye][:3] if eye in self._iris_held else (None, None, None)
                        for eye in visible}
        else:  # FaceMesh's lid points hardly move behind glasses: reported, never fused
            readings = {eye: (lm.facemesh_lid_opening(points, eye), None, None) for eye in visible}
            self._iris_held = {}  # when the iris model is back (light mode ends), both eyes are read afresh
        self._iris_held = {eye: v for eye, v in self._iris_held.items() if eye in visible}
        self._last_t = t

        self._last_p = {}
        for eye, (corners, rect) in visible.items():
            p = p_cnn.get(eye)
            opening, baseline, p_iris = readings[eye]
            fused = fuse(p, p_iris, self.config)
            self._last_p[eye] = fused
            setattr(result, eye, EyeResult(fused, p, opening, p_iris, baseline, corners, rect.corners(),
                                           *clipped.get(eye, (None, None))))
        if clipped:  # the mean over the eyes
            result.eyes_dark = sum(b for b, _ in clipped.values()) / len(clipped) > self.config.dark_eye_share
            result.eyes_bright = sum(w for _, w in clipped.values()) / len(clipped) > self.config.bright_eye_share
        if visible:
            result.eye_px = sum(distance(*corners) for corners, _ in visible.values()) / len(visible)
            result.eyes_small = result.eye_px < self.config.small_eye_px
        timings["total"] = (clock() - start) * 1000
        return result
