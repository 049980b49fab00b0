"""FaceMesh (468 points) and Iris (71 contour + 5 iris points) index tables and the measures built on them.

Left/right are the PERSON's own eyes. On a non-mirrored camera frame the person's right eye is on
the image's left: FaceMesh 33 (outer corner) / 133 (inner) = right eye, 362 (inner) / 263 (outer) = left.
"""
from __future__ import annotations

import math

from .geometry import RotatedRect, bounding_box, distance, square_roi

NUM_FACE_LANDMARKS = 468
FACE_INPUT_SIZE = 192
IRIS_INPUT_SIZE = 64
FACE_ROI_SCALE = 1.5
IRIS_ROI_SCALE = 2.3
# MediaPipe's face ROI rotation: from the right eye's outer corner to the left eye's outer corner.
ROI_ROTATION_POINTS = (33, 263)

# Eye corners in image-left -> image-right order on an upright face (what rotations are built from).
EYE_CORNERS = {"right": (33, 133), "left": (362, 263)}
# FaceMesh eyelid contours, upper[i] sits above lower[i] (both without the corners).
EYELID_UPPER = {"right": (246, 161, 160, 159, 158, 157, 173), "left": (466, 388, 387, 386, 385, 384, 398)}
EYELID_LOWER = {"right": (7, 163, 144, 145, 153, 154, 155), "left": (249, 390, 373, 374, 380, 381, 382)}
# The iris model sees the right eye as is and the left eye mirrored (it was trained on one eye).
IRIS_FLIP = {"right": False, "left": True}
# Iris model eye contour (71 points): 0..8 lower lid from corner to corner, 9..15 upper lid without corners.
IRIS_LOWER = tuple(range(1, 8))
IRIS_UPPER = tuple(range(9, 16))
IRIS_CORNERS = (0, 8)
# The three middle pairs carry the opening; the pairs near the corners are ~0 even for an open eye.
MIDDLE_PAIRS = (2, 3, 4)
EYE_CONTOUR_POINTS = 16
NUM_IRIS_CONTOUR = 71


def project(raw, roi: RotatedRect, size: int, count: int, flip: bool = False) -> list:
    """Model output (flat x, y, z in input pixels of a size × size crop of `roi`; a list or anything
    else that slices) -> frame (x, y, z).

    z is scaled like x (frame pixels); flip undoes a horizontally mirrored crop. Same map as
    RotatedRect.to_frame, folded into one affine map: this runs on 468 points every frame."""
    c, s = math.cos(roi.angle), math.sin(roi.angle)
    kx, ky = roi.width / size, roi.height / size
    ox, oy = roi.width / 2, roi.height / 2
    # x = a u + b v + e,  y = d u + f v + g  (u, v in crop input pixels)
    a, b, e = kx * c, -ky * s, roi.cx - ox * c + oy * s
    d, f, g = kx * s, ky * c, roi.cy - ox * s - oy * c
    if flip:  # u -> size - u
        a, e, d, g = -a, e + a * size, -d, g + d * size
    n = 3 * count
    return [(a * u + b * v + e, d * u + f * v + g, z * kx)
            for u, v, z in zip(raw[0:n:3], raw[1:n:3], raw[2:n:3])]


def face_roi_from_landmarks(points) -> RotatedRect:
    """MediaPipe face_landmark_landmarks_to_roi: landmark bounding box, rotated by 33 -> 263, ×1.5 square."""
    a, b = ROI_ROTATION_POINTS
    return square_roi(bounding_box(points), points[a], points[b], FACE_ROI_SCALE)


def face_roi_from_detection(det) -> RotatedRect:
    """MediaPipe face_detection_front_detection_to_roi: box centre, rotated by the two eye keypoints, ×1.5."""
    return square_roi(det.box, det.keypoints[0], det.keypoints[1], FACE_ROI_SCALE)


def eye_corners(points, eye: str):
    """(image-left corner, image-right corner) of the person's `eye` ("left" or "right"), (x, y)."""
    a, b = EYE_CORNERS[eye]
    return points[a][:2], points[b][:2]


def iris_roi(corner_a, corner_b) -> RotatedRect:
    """MediaPipe iris_landmark_landmarks_to_roi: box of the two corners, rotated along them, ×2.3 square."""
    box = bounding_box([corner_a, corner_b])
    return square_roi(box, corner_a, corner_b, IRIS_ROI_SCALE)


def lid_opening(upper, lower, corner_a, corner_b) -> float:
    """Mean distance between matching upper/lower eyelid points (middle pairs) / corner distance."""
    width = distance(corner_a, corner_b)
    if width <= 1e-6:
        return 0.0
    gaps = [distance(upper[i], lower[i]) for i in MIDDLE_PAIRS]
    return sum(gaps) / len(gaps) / width


def facemesh_lid_opening(points, eye: str) -> float:
    upper = [points[i] for i in EYELID_UPPER[eye]]
    lower = [points[i] for i in EYELID_LOWER[eye]]
    a, b = EYE_CORNERS[eye]
    return lid_opening(upper, lower, points[a], points[b])


def iris_lid_opening(contour) -> float:
    """Eyelid opening from the iris model's eye contour (frame or crop coordinates alike)."""
    upper = [contour[i] for i in IRIS_UPPER]
    lower = [contour[i] for i in IRIS_LOWER]
    return lid_opening(upper, lower, contour[IRIS_CORNERS[0]], contour[IRIS_CORNERS[1]])


def yaw_degrees(points) -> float:
    """Head yaw from the outer eye corners' depth difference; > 0 when the person's left eye is farther
    from the camera (turning towards their right). FaceMesh z is in the same units as x."""
    a, b = ROI_ROTATION_POINTS
    (xa, ya, za), (xb, yb, zb) = points[a], points[b]
    return math.degrees(math.atan2(zb - za, math.hypot(xb - xa, yb - ya)))
