import math
import random

import pytest

from eyecore.geometry import (RotatedRect, eye_crop_rect, fraction_inside, letterbox_rect, rotation_from,
                              square_roi)


def apply(m, x, y):
    a, b, c, d, e, f = m
    return a * x + b * y + c, d * x + e * y + f


def test_affine_inverts_to_frame_for_random_rects():
    rng = random.Random(0)
    for _ in range(200):
        rect = RotatedRect(rng.uniform(-50, 700), rng.uniform(-50, 500), rng.uniform(5, 400),
                           rng.uniform(5, 400), rng.uniform(-math.pi, math.pi))
        out_w, out_h = rng.choice([(48, 48), (192, 192), (64, 32)])
        m = rect.affine_frame_to_crop(out_w, out_h)
        for _ in range(5):
            u, v = rng.uniform(0, out_w), rng.uniform(0, out_h)
            x, y = rect.to_frame(u, v, out_w, out_h)
            assert apply(m, x, y) == pytest.approx((u, v), abs=1e-6)


@pytest.mark.parametrize("flip", [False, True])
def test_landmark_projection_matches_to_frame(flip):
    from eyecore.landmarks import project

    rng = random.Random(1)
    roi = RotatedRect(300, 200, 150, 140, 0.4)
    raw = [rng.uniform(0, 192) for _ in range(30)]
    points = project(raw, roi, 192, 10, flip)
    for i, (x, y, z) in enumerate(points):
        u = 192 - raw[3 * i] if flip else raw[3 * i]
        assert (x, y) == pytest.approx(roi.to_frame(u, raw[3 * i + 1], 192, 192), abs=1e-9)
        assert z == pytest.approx(raw[3 * i + 2] * 150 / 192)


def test_corners_order_and_rotation():
    rect = RotatedRect(10, 20, 4, 2)
    assert rect.corners() == [(8, 19), (12, 19), (12, 21), (8, 21)]  # TL, TR, BR, BL
    turned = RotatedRect(10, 20, 4, 2, math.pi / 2)  # x axis now points down the image
    tl, tr, br, bl = turned.corners()
    assert tl == pytest.approx((11, 18))
    assert tr == pytest.approx((11, 22))
    assert turned.to_frame(4, 1, 4, 2) == pytest.approx((10, 22))  # right-edge middle -> below centre


def test_eye_crop_rect_is_square_centred_and_turns_with_the_head():
    a, b = (100.0, 50.0), (130.0, 60.0)
    rect = eye_crop_rect(a, b, 2.0)
    assert (rect.cx, rect.cy) == pytest.approx((115, 55))
    assert rect.width == rect.height == pytest.approx(2 * math.hypot(30, 10))
    assert rect.angle == pytest.approx(math.atan2(10, 30))
    # A head rolled past 90 degrees (lying down, 120 degrees here): the corners come in the face's order, and the
    # upper lid stays at the top of the crop (it used to flip upside down past 90 degrees).
    for roll in (30, 89, 91, 120, 180, -150):
        r = math.radians(roll)
        d = (math.cos(r), math.sin(r))  # corner a -> corner b, along the eye
        ca, cb = (200 - 15 * d[0], 200 - 15 * d[1]), (200 + 15 * d[0], 200 + 15 * d[1])
        upper_lid = (200 + 5 * d[1], 200 - 5 * d[0])  # the face's "up", a quarter turn from the eye line
        u, v = apply(eye_crop_rect(ca, cb, 2.0).affine_frame_to_crop(48, 48), *upper_lid)
        assert v < 24 and u == pytest.approx(24), roll
    # the corner line is horizontal in the crop
    m = rect.affine_frame_to_crop(48, 48)
    (ua, va), (ub, vb) = apply(m, *a), apply(m, *b)
    assert va == pytest.approx(24) and vb == pytest.approx(24)
    assert ua == pytest.approx(12) and ub == pytest.approx(36)


def test_rotation_from_is_normalised():
    assert rotation_from((0, 0), (1, 0)) == pytest.approx(0)
    assert rotation_from((0, 0), (0, 1)) == pytest.approx(math.pi / 2)  # y points down the image
    assert rotation_from((0, 0), (-1, 0)) == pytest.approx(-math.pi)
    for target in (-3, 0.5, 7):
        assert -math.pi <= rotation_from((1, 2), (3, -5), target) < math.pi


def test_square_roi_uses_long_side_and_box_centre():
    roi = square_roi((10, 20, 50, 100), (10, 30), (50, 30), 1.5)
    assert (roi.cx, roi.cy, roi.width, roi.height, roi.angle) == pytest.approx((30, 60, 120, 120, 0))


def test_letterbox_and_fraction_inside():
    box = letterbox_rect(640, 480)
    assert (box.cx, box.cy, box.width, box.height) == (320, 240, 640, 640)
    assert fraction_inside(RotatedRect(50, 50, 20, 20), 100, 100) == 1.0
    assert fraction_inside(RotatedRect(0, 50, 20, 20), 100, 100) == pytest.approx(0.5)
    assert fraction_inside(RotatedRect(-30, 50, 20, 20), 100, 100) == 0.0


cv2 = pytest.importorskip("cv2")
np = pytest.importorskip("numpy")


def test_cv_crop_puts_a_frame_point_where_the_affine_map_says():
    from pipeline.cv_runtime import warp_crop

    frame = np.zeros((150, 200, 3), np.uint8)
    frame[70, 120] = 255  # pixel centre (120.5, 70.5) in continuous coordinates
    roi = RotatedRect(100, 60, 80, 40, 0.3)
    crop = warp_crop(frame, roi, 80, 40)[..., 0]
    u, v = apply(roi.affine_frame_to_crop(80, 40), 120.5, 70.5)
    assert 0 < u < 80 and 0 < v < 40
    row, col = np.unravel_index(np.argmax(crop), crop.shape)
    assert abs(col + 0.5 - u) <= 0.75 and abs(row + 0.5 - v) <= 0.75


def test_cv_crop_strong_downscale_keeps_positions_and_averages():
    from pipeline.cv_runtime import warp_crop

    frame = np.zeros((600, 600, 3), np.uint8)
    frame[200:240, 300:340] = 255  # 40 x 40 block centred at (320, 220)
    roi = RotatedRect(300, 300, 400, 400, 0.2)
    crop = warp_crop(frame, roi, 40, 40)[..., 0].astype(float)  # 10x shrink
    ys, xs = np.mgrid[0:40, 0:40]
    centroid = ((xs + 0.5) * crop).sum() / crop.sum(), ((ys + 0.5) * crop).sum() / crop.sum()
    assert centroid == pytest.approx(apply(roi.affine_frame_to_crop(40, 40), 320, 220), abs=0.5)
    # area-averaged: the block's energy is preserved (16 output pixels' worth), not aliased away
    assert crop.sum() / 255 == pytest.approx(16, rel=0.2)
