"""Small 2-D geometry used by the frame pipeline: points, rotated rectangles, affine maps."""
from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class RotatedRect:
    """A rectangle in frame pixels: centre, size, rotation (radians, counter-clockwise positive
    in image coordinates means the rect's x axis points along (cos a, sin a))."""

    cx: float
    cy: float
    width: float
    height: float
    angle: float = 0.0

    def corners(self):
        """Top-left, top-right, bottom-right, bottom-left in frame pixels."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        hw, hh = self.width / 2, self.height / 2
        out = []
        for dx, dy in ((-hw, -hh), (hw, -hh), (hw, hh), (-hw, hh)):
            out.append((self.cx + dx * c - dy * s, self.cy + dx * s + dy * c))
        return out

    def to_frame(self, u: float, v: float, out_w: int, out_h: int):
        """Map a point in the crop's output pixels (u, v) back to frame pixels."""
        dx = (u / out_w - 0.5) * self.width
        dy = (v / out_h - 0.5) * self.height
        c, s = math.cos(self.angle), math.sin(self.angle)
        return (self.cx + dx * c - dy * s, self.cy + dx * s + dy * c)

    def affine_frame_to_crop(self, out_w: int, out_h: int):
        """2x3 matrix [a, b, c, d, e, f] mapping frame (x, y) to crop (u, v):
        u = a x + b y + c, v = d x + e y + f (what canvas setTransform / cv2.warpAffine need,
        up to their own conventions)."""
        c, s = math.cos(self.angle), math.sin(self.angle)
        sx, sy = out_w / self.width, out_h / self.height
        a, b = c * sx, s * sx
        d, e = -s * sy, c * sy
        cc = out_w / 2 - (a * self.cx + b * self.cy)
        f = out_h / 2 - (d * self.cx + e * self.cy)
        return [a, b, cc, d, e, f]


def eye_crop_rect(corner_a, corner_b, scale: float = 2.0) -> RotatedRect:
    """Square crop centred between two eye corners, rotated to the corner line, side = scale × distance.
    corner_a is the corner on the image's left when the head is upright (landmarks.eye_corners): the crop then turns
    with the head all the way round (a person lying down or upside down still gives an upright eye), as the iris
    model's crop does."""
    (ax, ay), (bx, by) = corner_a, corner_b
    dist = math.hypot(bx - ax, by - ay)
    side = max(dist * scale, 1.0)
    return RotatedRect((ax + bx) / 2, (ay + by) / 2, side, side, math.atan2(by - ay, bx - ax))


def rotation_from(start, end, target: float = 0.0) -> float:
    """MediaPipe's rect rotation: turn the start->end vector onto `target` radians, result in [-pi, pi)."""
    angle = target + math.atan2(end[1] - start[1], end[0] - start[0])
    return angle - 2 * math.pi * math.floor((angle + math.pi) / (2 * math.pi))


def bounding_box(points):
    """(xmin, ymin, xmax, ymax) of (x, y[, ...]) points."""
    xs = [p[0] for p in points]
    ys = [p[1] for p in points]
    return min(xs), min(ys), max(xs), max(ys)


def square_roi(box, start, end, scale: float) -> RotatedRect:
    """MediaPipe DetectionsToRects (box centre, rotation from two keypoints) followed by
    RectTransformation(square_long, scale): a rotated square of side scale × the box's longer side."""
    xmin, ymin, xmax, ymax = box
    side = max(xmax - xmin, ymax - ymin) * scale
    return RotatedRect((xmin + xmax) / 2, (ymin + ymax) / 2, side, side, rotation_from(start, end))


def letterbox_rect(width: float, height: float) -> RotatedRect:
    """The square that holds the whole frame centred (black padding outside), as detectors want it."""
    side = max(width, height)
    return RotatedRect(width / 2, height / 2, side, side, 0.0)


def fraction_inside(rect: RotatedRect, width: float, height: float, steps: int = 6) -> float:
    """Share of the rect's area inside the frame [0, width] x [0, height], sampled on a steps × steps grid."""
    inside = 0
    for i in range(steps):
        for j in range(steps):
            x, y = rect.to_frame((i + 0.5) / steps, (j + 0.5) / steps, 1, 1)
            if 0 <= x <= width and 0 <= y <= height:
                inside += 1
    return inside / (steps * steps)


def distance(a, b) -> float:
    return math.hypot(b[0] - a[0], b[1] - a[1])


def is_finite_point(p) -> bool:
    return all(math.isfinite(v) for v in p)
