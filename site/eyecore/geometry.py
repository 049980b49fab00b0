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
    """Square crop centred between two eye corners, rotated to the corner line, side = scale × distance."""
    (ax, ay), (bx, by) = corner_a, corner_b
    if bx < ax:  # keep the rect upright whatever order the corners come in
        (ax, ay), (bx, by) = (bx, by), (ax, ay)
    dist = math.hypot(bx - ax, by - ay)
    side = max(dist * scale, 1.0)
    return RotatedRect((ax + bx) / 2, (ay + by) / 2, side, side, math.atan2(by - ay, bx - ax))
