"""Per-frame face -> eyes pipeline (MediaPipe-style tracking), shared by the page and the offline replay.

BlazeFace only when there is no track; FaceMesh on a rotated face ROI; the next ROI comes from the
landmarks; the face-presence score decides when the track is lost. Both eye crops go to the
classifier in one batched call; the optional iris model gives an eyelid opening per eye.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from . import blazeface, landmarks as lm
from .geometry import distance, eye_crop_rect, fraction_inside, is_finite_point, letterbox_rect
from .preprocess import DEFAULT_SPEC, PreprocessSpec, p_open_from_logits
from .runtime import Runtime, TensorSpec

EYES = ("left", "right")  # the person's own eyes

DETECTION_SPEC = TensorSpec.from_range(-1.0, 1.0)
FACE_LANDMARK_SPEC = TensorSpec.from_range(0.0, 1.0)
IRIS_SPEC = TensorSpec.from_range(0.0, 1.0)


@dataclass
class PipelineConfig:
    use_classifier: bool = True
    use_iris: bool = True
    # p_open = (cnn_weight * p_cnn + iris_weight * p_iris) / (sum of the weights that are available),
    # p_iris = sigmoid((eyelid_opening - iris_open_center) / iris_open_width).
    cnn_weight: float = 1.0
    iris_weight: float = 0.0
    iris_open_center: float = 0.25
    iris_open_width: float = 0.05
    detection_min_score: float = 0.5
    presence_threshold: float = 0.5
    min_eye_inside: float = 0.6       # share of an eye crop that must lie inside the frame
    max_yaw_degrees: float = 50.0     # beyond it the far eye is unknown
    min_eye_width_px: float = 4.0     # corner distance below which an eye is unknown
    preprocess: PreprocessSpec = field(default_factory=lambda: DEFAULT_SPEC)


@dataclass
class EyeResult:
    p_open: float | None          # fused signal the temporal layer gets (None if nothing available)
    p_cnn: float | None           # classifier alone
    eyelid_opening: float | None  # iris model (or FaceMesh when use_iris is off) lid gap / eye width
    corners: tuple                # ((x, y), (x, y)) image-left then image-right corner, frame pixels
    crop: list                    # classifier crop corners TL, TR, BR, BL in frame pixels (overlay)

    def to_dict(self) -> dict:
        return {"p_open": self.p_open, "p_cnn": self.p_cnn, "eyelid_opening": self.eyelid_opening,
                "corners": [list(c) for c in self.corners], "crop": [list(c) for c in self.crop]}


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
                "detected": self.detected, "timings": dict(self.timings)}


def _sigmoid(x: float) -> float:
    x = max(-60.0, min(60.0, x))
    return 1.0 / (1.0 + math.exp(-x))


class FramePipeline:
    def __init__(self, runtime: Runtime, config: PipelineConfig | None = None):
        self.runtime = runtime
        self.config = config or PipelineConfig()
        self.eye_spec = TensorSpec.from_preprocess(self.config.preprocess)
        self._clock = getattr(runtime, "now", None) or time.perf_counter
        self._roi = None  # face ROI carried to the next frame while tracking

    def reset(self) -> None:
        self._roi = None

    # -- stages -------------------------------------------------------------------------------

    def _detect(self, frame, width, height):
        box = letterbox_rect(width, height)
        size = blazeface.INPUT_SIZE
        tensor = self.runtime.crop(frame, box, size, size, DETECTION_SPEC)
        out = self.runtime.run("face_detection", {"input": tensor})
        found = blazeface.detect(out["regressors"], out["classificators"], self.config.detection_min_score)
        return found[0].to_frame(box) if found else None

    def _landmarks(self, frame, roi):
        size = lm.FACE_INPUT_SIZE
        tensor = self.runtime.crop(frame, roi, size, size, FACE_LANDMARK_SPEC)
        out = self.runtime.run("face_landmark", {"input": tensor})
        presence = _sigmoid(float(out["face_flag"][0]))
        return lm.project(out["landmarks"], roi, size, lm.NUM_FACE_LANDMARKS), presence

    def _iris_opening(self, frame, corners, eye):
        roi = lm.iris_roi(*corners)
        size = lm.IRIS_INPUT_SIZE
        flip = lm.IRIS_FLIP[eye]
        spec = IRIS_SPEC.flipped() if flip else IRIS_SPEC
        tensor = self.runtime.crop(frame, roi, size, size, spec)
        out = self.runtime.run("iris_landmark", {"input": tensor})
        contour = lm.project(out["eye_contour"], roi, size, lm.EYE_CONTOUR_POINTS, flip)
        return lm.iris_lid_opening(contour)

    def _classify(self, frame, rects: dict) -> dict:
        names = list(rects)
        size = self.config.preprocess.size
        crops = [self.runtime.crop(frame, rects[n], size, size, self.eye_spec) for n in names]
        out = self.runtime.run("eye_state", {"input": self.runtime.stack(crops)})
        logits = next(iter(out.values()))
        return {n: p_open_from_logits(logits[2 * i:2 * i + 2]) for i, n in enumerate(names)}

    def _fuse(self, p_cnn, opening):
        cfg = self.config
        parts = []
        if p_cnn is not None and cfg.cnn_weight > 0:
            parts.append((cfg.cnn_weight, p_cnn))
        if opening is not None and cfg.iris_weight > 0:
            parts.append((cfg.iris_weight, _sigmoid((opening - cfg.iris_open_center) / cfg.iris_open_width)))
        if not parts:
            return None
        return sum(w * p for w, p in parts) / sum(w for w, _ in parts)

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
        clock = self._clock
        start = clock()
        timings = {}
        width, height = self.runtime.frame_size(frame)
        result = FrameResult(t=t, status="no-face", timings=timings)

        points = presence = None
        for attempt in range(2):  # a lost track gets one fresh detection on the same frame
            if self._roi is None:
                t0 = clock()
                det = self._detect(frame, width, height)
                timings["detect"] = (clock() - t0) * 1000
                result.detected = True
                if det is None:
                    break
                self._roi = lm.face_roi_from_detection(det)
            t0 = clock()
            roi = self._roi
            points, presence = self._landmarks(frame, roi)
            timings["landmarks"] = timings.get("landmarks", 0.0) + (clock() - t0) * 1000
            result.face_score = presence
            if presence >= self.config.presence_threshold and all(is_finite_point(p) for p in points):
                result.face_roi = roi.corners()
                self._roi = lm.face_roi_from_landmarks(points)
                break
            self._roi = None
            points = None
            if result.detected:
                break

        if points is None:
            timings["total"] = (clock() - start) * 1000
            return result

        result.status = "face"
        result.landmarks = points
        xs = [p[0] for p in points]
        ys = [p[1] for p in points]
        result.face_box = (min(xs), min(ys), max(xs), max(ys))
        yaw = lm.yaw_degrees(points)
        result.yaw_degrees = yaw
        visible = self._visible_eyes(points, width, height, yaw)

        p_cnn = {}
        if self.config.use_classifier and visible:
            t0 = clock()
            p_cnn = self._classify(frame, {eye: rect for eye, (_, rect) in visible.items()})
            timings["classify"] = (clock() - t0) * 1000

        openings = {}
        t0 = clock()
        for eye, (corners, _) in visible.items():
            if self.config.use_iris:
                openings[eye] = self._iris_opening(frame, corners, eye)
            else:
                openings[eye] = lm.facemesh_lid_opening(points, eye)
        if self.config.use_iris and visible:
            timings["iris"] = (clock() - t0) * 1000

        for eye, (corners, rect) in visible.items():
            p = p_cnn.get(eye)
            opening = openings.get(eye)
            setattr(result, eye, EyeResult(self._fuse(p, opening), p, opening, corners, rect.corners()))
        timings["total"] = (clock() - start) * 1000
        return result
