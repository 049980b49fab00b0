"""BlazeFace short-range decoding (MediaPipe's SSD anchors, box decoding, weighted NMS) in pure Python.

Coordinates: detector input pixels are normalised to [0, 1] of the 128 × 128 letterboxed square;
`to_frame` maps a detection back through the letterbox rect into frame pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from .geometry import RotatedRect

INPUT_SIZE = 128
NUM_ANCHORS = 896
NUM_KEYPOINTS = 6
VALUES_PER_ANCHOR = 4 + 2 * NUM_KEYPOINTS
# Keypoint indices (image-left eye first on an upright, non-mirrored face: the person's right eye).
KP_EYE_IMAGE_LEFT, KP_EYE_IMAGE_RIGHT, KP_NOSE, KP_MOUTH = 0, 1, 2, 3
MIN_SCORE = 0.5
NMS_IOU = 0.3
# MediaPipe clips raw scores to ±100; ±80 keeps exp() inside float range everywhere.
RAW_SCORE_LIMIT = 80.0


def generate_anchors(input_size: int = INPUT_SIZE, strides=(8, 16, 16, 16)) -> list:
    """MediaPipe SsdAnchorsCalculator for the short-range model: anchor centres (x, y) in [0, 1];
    two anchors per cell for each layer sharing a stride (fixed anchor size 1)."""
    anchors = []
    layer = 0
    while layer < len(strides):
        same = layer
        while same < len(strides) and strides[same] == strides[layer]:
            same += 1
        per_cell = 2 * (same - layer)
        cells = input_size // strides[layer]
        for y in range(cells):
            for x in range(cells):
                centre = ((x + 0.5) / cells, (y + 0.5) / cells)
                anchors.extend([centre] * per_cell)
        layer = same
    return anchors


ANCHORS = generate_anchors()


@dataclass
class Detection:
    score: float
    xmin: float
    ymin: float
    xmax: float
    ymax: float
    keypoints: list  # [(x, y)] * 6

    @property
    def area(self) -> float:
        return max(0.0, self.xmax - self.xmin) * max(0.0, self.ymax - self.ymin)

    @property
    def box(self):
        return self.xmin, self.ymin, self.xmax, self.ymax

    def to_frame(self, letterbox: RotatedRect) -> "Detection":
        """Map from the detector's normalised input square to frame pixels (letterbox is unrotated)."""
        x0, y0 = letterbox.to_frame(self.xmin, self.ymin, 1, 1)
        x1, y1 = letterbox.to_frame(self.xmax, self.ymax, 1, 1)
        kps = [letterbox.to_frame(x, y, 1, 1) for x, y in self.keypoints]
        return Detection(self.score, x0, y0, x1, y1, kps)


def _sigmoid(x: float) -> float:
    x = max(-RAW_SCORE_LIMIT, min(RAW_SCORE_LIMIT, x))
    return 1.0 / (1.0 + math.exp(-x))


def decode(regressors, classificators, min_score: float = MIN_SCORE) -> list:
    """Raw model outputs (flat sequences, 896 × 16 and 896) -> detections above min_score.

    Only anchors whose raw logit passes the threshold are decoded (the rest is never touched)."""
    if len(classificators) != NUM_ANCHORS or len(regressors) != NUM_ANCHORS * VALUES_PER_ANCHOR:
        raise ValueError(f"expected {NUM_ANCHORS} scores and {NUM_ANCHORS * VALUES_PER_ANCHOR} box values, "
                         f"got {len(classificators)} and {len(regressors)}")
    min_logit = math.log(min_score / (1.0 - min_score))
    scale = 1.0 / INPUT_SIZE
    out = []
    for i, raw in enumerate(classificators):
        if raw < min_logit:
            continue
        ax, ay = ANCHORS[i]
        r = regressors[i * VALUES_PER_ANCHOR:(i + 1) * VALUES_PER_ANCHOR]
        cx, cy = r[0] * scale + ax, r[1] * scale + ay
        w, h = r[2] * scale, r[3] * scale
        if w <= 0 or h <= 0:
            continue
        kps = [(r[4 + 2 * k] * scale + ax, r[5 + 2 * k] * scale + ay) for k in range(NUM_KEYPOINTS)]
        out.append(Detection(_sigmoid(float(raw)), cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2, kps))
    return out


def iou(a: Detection, b: Detection) -> float:
    ix = min(a.xmax, b.xmax) - max(a.xmin, b.xmin)
    iy = min(a.ymax, b.ymax) - max(a.ymin, b.ymin)
    if ix <= 0 or iy <= 0:
        return 0.0
    inter = ix * iy
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def weighted_nms(detections: list, iou_threshold: float = NMS_IOU) -> list:
    """MediaPipe's weighted NMS: each kept detection is the score-weighted mean of the boxes and
    keypoints it suppresses; it keeps the best score. Result sorted by score, best first."""
    remaining = sorted(detections, key=lambda d: d.score, reverse=True)
    out = []
    while remaining:
        best = remaining[0]
        group = [d for d in remaining if iou(d, best) > iou_threshold]
        remaining = [d for d in remaining if iou(d, best) <= iou_threshold and d is not best]
        total = sum(d.score for d in group) or 1.0

        def mean(values):
            return sum(v * d.score for v, d in zip(values, group)) / total

        kps = [(mean([d.keypoints[k][0] for d in group]), mean([d.keypoints[k][1] for d in group]))
               for k in range(NUM_KEYPOINTS)]
        out.append(Detection(best.score, mean([d.xmin for d in group]), mean([d.ymin for d in group]),
                             mean([d.xmax for d in group]), mean([d.ymax for d in group]), kps))
    return out


def detect(regressors, classificators, min_score: float = MIN_SCORE) -> list:
    """Decoded, NMS-merged detections in normalised detector-input coordinates, best first."""
    return weighted_nms(decode(regressors, classificators, min_score))
