import math
from dataclasses import replace

import pytest

from eyecore.frame import (EYES, FUSIONS, FramePipeline, FrameResult, OpeningBaseline, PipelineConfig, fuse,
                           p_open_from_opening)
from eyecore import landmarks as lm
from eyecore.temporal import TemporalConfig

from face_helpers import face_models_dir, needs_shared, video_frame

np = pytest.importorskip("numpy")
pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")


class GeometryOnly:
    """frame_size is the only runtime call `_visible_eyes` makes."""

    def __init__(self, width=640, height=480):
        self.size = (width, height)

    def frame_size(self, frame):
        return self.size


def face_points(dx=0.0, z_left_outer=0.0):
    """468 points with both eyes of a frontal face near the frame centre, shifted by dx."""
    points = [(320.0 + dx, 240.0, 0.0)] * lm.NUM_FACE_LANDMARKS
    points[33] = (272.0 + dx, 198.0, 0.0)
    points[133] = (302.0 + dx, 198.0, 0.0)
    points[362] = (340.0 + dx, 196.0, z_left_outer / 2)
    points[263] = (370.0 + dx, 195.0, z_left_outer)
    return points


def visible(points, yaw=None):
    pipeline = FramePipeline(GeometryOnly(), PipelineConfig(use_classifier=False))
    return pipeline._visible_eyes(points, 640, 480, lm.yaw_degrees(points) if yaw is None else yaw)


def test_frontal_eyes_are_both_visible():
    assert set(visible(face_points())) == {"left", "right"}


def test_eye_off_frame_is_unknown():
    assert set(visible(face_points(dx=-290))) == {"left"}   # right eye corners at x = -18 .. 12
    assert set(visible(face_points(dx=300))) == {"right"}   # left eye corners beyond x = 640
    assert visible(face_points(dx=-1000)) == {}


def test_far_eye_at_extreme_yaw_is_unknown():
    # the left eye's outer corner 120 px deeper than the right's over ~100 px width: yaw ~50 deg+
    points = face_points(z_left_outer=130.0)
    assert lm.yaw_degrees(points) > 50
    assert set(visible(points)) == {"right"}
    points = face_points(z_left_outer=-130.0)
    assert set(visible(points)) == {"left"}


def test_degenerate_landmarks_give_unknown_eyes_without_crashing():
    same = [(100.0, 100.0, 0.0)] * lm.NUM_FACE_LANDMARKS
    assert visible(same, yaw=0.0) == {}
    nan = face_points()
    nan[33] = (float("nan"), 198.0, 0.0)
    assert set(visible(nan)) == {"left"}


def test_opening_baseline_is_a_windowed_percentile():
    baseline = OpeningBaseline(window_s=10.0, percentile=0.75)
    for i in range(100):  # 0.1 s apart: a steady open eye with one blink
        value = baseline.update(i * 0.1, 0.1 if 40 <= i < 43 else 0.3 + 0.001 * (i % 5))
    assert value == pytest.approx(0.303)
    assert baseline.update(25.0, 0.5) == 0.5  # everything older than 10 s has left the window
    assert baseline.update(1.0, 0.2) == 0.2  # time going backwards starts afresh


def test_opening_maps_to_p_open_relative_to_the_usual_gap():
    config = PipelineConfig()
    assert p_open_from_opening(0.8 * 0.3, 0.3, config) == pytest.approx(0.5)
    assert p_open_from_opening(0.3, 0.3, config) > 0.95
    assert p_open_from_opening(0.15, 0.3, config) < 0.01
    # a tiny baseline (eyes closed since the start) is floored, so closed stays closed
    assert p_open_from_opening(0.03, 0.03, config) < 0.01
    # ... also a baseline of exactly 0 (openings of 0 so far): floored like any other, not taken for "none yet"
    assert p_open_from_opening(0.3, 0.0, config) == p_open_from_opening(0.3, 1e-9, config) > 0.95
    absolute = PipelineConfig(iris_relative=False, iris_closed_ratio=0.25)
    assert p_open_from_opening(0.25, 0.3, absolute) == pytest.approx(0.5)


def test_fusion_averages_the_available_signals():
    for fusion in FUSIONS:
        both = PipelineConfig(cnn_weight=1.0, iris_weight=1.0, fusion=fusion)
        assert fuse(0.9, 0.1, both) == pytest.approx(0.5)
        assert fuse(None, 0.2, both) == pytest.approx(0.2)
        assert fuse(None, 0.2, PipelineConfig(cnn_weight=1.0, iris_weight=0.0, fusion=fusion)) is None
    assert fuse(0.9, 0.1, PipelineConfig(cnn_weight=3.0, iris_weight=1.0, fusion="mean")) == pytest.approx(0.7)
    # log-odds: 3 * logit(0.9) - logit(0.9) over 4 = logit(0.9) / 2 -> p = 0.75
    assert fuse(0.9, 0.1, PipelineConfig(cnn_weight=3.0, iris_weight=1.0)) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="fusion"):
        PipelineConfig(fusion="max")


def test_logit_fusion_lets_a_confident_signal_outweigh_a_lukewarm_one():
    """The soniya case: the CNN says 'open, 0.9', the eyelid gap says 'shut' (p 0.01). Averaging
    probabilities lands at 0.455, a coin flip that the next lukewarm frame undoes; log-odds land at 0.23,
    firmly closed and well below the tracker's threshold."""
    closed_below = TemporalConfig().closed_below
    mean, logit = fuse(0.9, 0.01, PipelineConfig(fusion="mean")), fuse(0.9, 0.01, PipelineConfig())
    assert mean == pytest.approx(0.455)
    assert logit == pytest.approx(0.232, abs=1e-3)
    assert logit < closed_below - 0.2 and mean > closed_below - 0.05
    assert fuse(0.99, 0.99, PipelineConfig()) == pytest.approx(0.99)
    assert 0.0 < fuse(0.0, 0.0, PipelineConfig()) < 1e-3  # clamped, no log(0)


def mean_brightness_classifier(path, size=48, gain=4.0):
    """A real ONNX eye 'classifier' whose answer is known: logits = [0, gain * mean(input)]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weights = np.zeros((size * size, 2), np.float32)
    weights[:, 1] = gain / (size * size)
    graph = helper.make_graph(
        [helper.make_node("Flatten", ["x"], ["flat"], axis=1), helper.make_node("MatMul", ["flat", "w"], ["logits"])],
        "mean_brightness",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 1, size, size])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 2])],
        [numpy_helper.from_array(weights, "w")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return gain


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    from pipeline.cv_runtime import CvRuntime

    path = tmp_path_factory.mktemp("eye") / "mean_brightness.onnx"
    mean_brightness_classifier(path)
    return CvRuntime(face_models_dir(), path)


@needs_shared
@pytest.mark.shared
def test_real_frame_gives_both_eyes_with_batched_classifier(runtime):
    pipeline = FramePipeline(runtime, PipelineConfig())
    frame = video_frame()
    result = pipeline.process(frame, 0.0)
    assert isinstance(result, FrameResult) and result.status == "face"
    assert {"detect", "landmarks", "classify", "iris", "total"} <= set(result.timings)
    for eye in EYES:
        er = result.eyes[eye]
        # the batched call kept each eye's own answer: recompute it from that eye's crop alone
        from eyecore.geometry import eye_crop_rect

        rect = eye_crop_rect(*er.corners, PipelineConfig().preprocess.crop_scale)
        tensor = runtime.crop(frame, rect, 48, 48, pipeline.eye_spec)
        assert tensor.shape == (1, 1, 48, 48)
        assert er.p_cnn == pytest.approx(1 / (1 + math.exp(-4.0 * float(tensor.mean()))), abs=1e-5)
        assert 0.2 < er.eyelid_opening < 0.6 and er.p_iris > 0.5  # open eyes, the gap at its usual size
        assert er.p_open == pytest.approx(fuse(er.p_cnn, er.p_iris, PipelineConfig()))  # equal weights, log-odds
        xs = [x for x, _ in er.crop]
        assert min(xs) < er.corners[0][0] < er.corners[1][0] < max(xs)
    assert not result.eyes_small  # eye corners ~30 px apart
    assert result.left.p_cnn != result.right.p_cnn
    d = result.to_dict()
    assert d["left"]["crop"] and d["status"] == "face"


@needs_shared
@pytest.mark.shared
def test_tracking_skips_detection_until_the_face_is_lost(runtime):
    pipeline = FramePipeline(runtime, PipelineConfig(use_iris=False))
    frame = video_frame()
    first = pipeline.process(frame, 0.0)
    assert first.detected and "iris" not in first.timings
    # without the iris model the FaceMesh lid gap is reported but not fused: p_open is the classifier's
    assert first.left.eyelid_opening > 0.1 and first.left.p_iris is None
    assert first.left.p_open == first.left.p_cnn
    second = pipeline.process(frame, 0.03)
    assert second.status == "face" and not second.detected and "detect" not in second.timings
    black = pipeline.process(np.zeros_like(frame), 0.06)
    assert black.status == "no-face" and black.left is None and black.right is None
    assert pipeline.process(frame, 0.09).detected


@needs_shared
@pytest.mark.shared
def test_async_driver_gives_the_same_frames_as_the_sync_one(runtime):
    """The page awaits the models (process_async), the replay calls them (process): one generator, same results."""
    import asyncio

    frame = video_frame()
    sync, asynchronous = FramePipeline(runtime, PipelineConfig()), FramePipeline(runtime, PipelineConfig())
    times = (0.0, 0.033, 0.066, 0.5)
    a = [sync.process(frame, t).to_dict() for t in times]

    async def drive():
        return [(await asynchronous.process_async(frame, t)).to_dict() for t in times]

    b = asyncio.run(drive())
    for x, y in zip(a, b):
        x.pop("timings"), y.pop("timings")
        assert x == y
    assert a[0]["status"] == "face" and a[0]["left"]["p_open"] is not None


def iris_batch_sizes(runtime, monkeypatch) -> list:
    """A list that collects the batch size (eyes read) of every iris-model call made through `runtime`."""
    batches = []
    real_run = runtime.run

    def counting_run(model, feeds):
        if model == "iris_landmark":
            batches.append(len(next(iter(feeds.values()))))
        return real_run(model, feeds)

    monkeypatch.setattr(runtime, "run", counting_run)
    return batches


@needs_shared
@pytest.mark.shared
def test_iris_model_alternates_eyes_only_at_high_frame_rates(runtime, monkeypatch):
    ALTERNATE = PipelineConfig(iris_alternate_min_p=0.0, iris_refresh_s=0.0)  # the frame-rate rule alone
    pipeline = FramePipeline(runtime, ALTERNATE)
    frame = video_frame()
    batches = iris_batch_sizes(runtime, monkeypatch)
    results = [pipeline.process(frame, t) for t in (0.0, 0.033, 0.066, 0.099, 0.199, 0.232)]  # 30 fps, one late
    assert batches == [2, 1, 1, 1, 1, 1]  # both eyes first, then one per frame; one late frame changes nothing
    for r in results:  # every frame still reports both eyes, fused with the latest reading of each
        assert r.left.p_iris is not None and r.right.p_iris is not None
        assert r.left.p_open == pytest.approx(fuse(r.left.p_cnn, r.left.p_iris, ALTERNATE))
    assert results[2].left.eyelid_opening == results[1].left.eyelid_opening or \
        results[2].right.eyelid_opening == results[1].right.eyelid_opening  # one eye kept its reading
    batches.clear()
    pipeline.process(np.zeros_like(frame), 0.265)  # face lost: held readings are dropped
    pipeline.process(frame, 0.298)
    assert batches == [2]
    slow = FramePipeline(runtime, ALTERNATE)
    batches.clear()
    for t in (0.0, 0.1, 0.2, 0.3):  # 10 fps: a skipped reading could miss a whole blink, so both eyes
        slow.process(frame, t)
    assert batches == [2, 2, 2, 2]
    never = FramePipeline(runtime, PipelineConfig(iris_alternate_below_s=0, iris_alternate_min_p=0.0))
    batches.clear()
    for t in (0.0, 0.033, 0.066):
        never.process(frame, t)
    assert batches == [2, 2, 2]


@needs_shared
@pytest.mark.shared
def test_calm_frames_reread_each_eye_only_after_the_refresh_time(runtime, monkeypatch):
    """iris_refresh_s: while both eyes look plainly open, an eye's iris reading is renewed only once it is that
    old, so most calm frames skip the iris model; the held readings still feed every frame's fusion."""
    config = PipelineConfig(iris_alternate_min_p=0.0, iris_refresh_s=0.19)
    pipeline = FramePipeline(runtime, config)
    frame = video_frame()
    batches = iris_batch_sizes(runtime, monkeypatch)
    calls = []
    for i in range(13):  # 30 fps for 0.4 s
        before = len(batches)
        r = pipeline.process(frame, i / 30)
        calls.append(batches[before] if len(batches) > before else 0)
        assert r.left.p_iris is not None and r.left.p_open == pytest.approx(fuse(r.left.p_cnn, r.left.p_iris, config))
    # both eyes at t=0; at 0.2 s the right eye (ties go to the right), the left on the next frame; right again at 0.4
    assert calls == [2, 0, 0, 0, 0, 0, 1, 1, 0, 0, 0, 0, 1], calls
    doubt = FramePipeline(runtime, PipelineConfig(iris_alternate_min_p=1.0, iris_refresh_s=0.2))
    batches.clear()
    for i in range(4):
        doubt.process(frame, i / 30)
    assert batches == [2, 2, 2, 2]  # any doubt: both eyes, every frame, whatever the refresh time
    batches.clear()
    pipeline.config.use_iris = False  # the page's light mode, then back: no stale reading is fused on return
    pipeline.process(frame, 0.5)
    pipeline.config.use_iris = True
    pipeline.process(frame, 0.533)
    assert batches == [2]


@needs_shared
@pytest.mark.shared
def test_iris_model_reads_both_eyes_whenever_an_eye_is_in_doubt(runtime, monkeypatch):
    """Above the alternation frame rate, a frame whose classifier (or previous fused) p_open of any eye is under
    iris_alternate_min_p reads both eyes: a blink never depends on whose turn it was."""
    frame = video_frame()
    first = FramePipeline(runtime, PipelineConfig()).process(frame, 0.0)
    lowest = min(first.left.p_cnn, first.right.p_cnn, first.left.p_open, first.right.p_open)
    batches = iris_batch_sizes(runtime, monkeypatch)
    times = (0.0, 0.033, 0.066, 0.099)
    for floor, expected in ((lowest - 0.01, [2, 1, 1, 1]), (min(1.0, lowest + 0.01), [2, 2, 2, 2])):
        pipeline = FramePipeline(runtime, PipelineConfig(iris_alternate_min_p=floor, iris_refresh_s=0.0))
        batches.clear()
        for t in times:
            pipeline.process(frame, t)
        assert batches == expected, (floor, lowest)
    again = FramePipeline(runtime, PipelineConfig(iris_alternate_min_p=0.0, iris_refresh_s=0.0))
    frames = [frame, np.roll(frame, 3, axis=1), np.roll(frame, -2, axis=0), frame]  # readings differ per frame
    runs = []
    for extra in (0, 1):  # reset() restarts the alternation, whatever came before: replays are repeatable
        for t in times[:extra]:
            again.process(frame, t)
        again.reset()
        runs.append([(r.left.eyelid_opening, r.right.eyelid_opening)
                     for r in (again.process(f, t) for f, t in zip(frames, times))])
    assert runs[0] == runs[1]


@needs_shared
@pytest.mark.shared
def test_noise_and_black_frames_have_no_face(runtime):
    pipeline = FramePipeline(runtime, PipelineConfig())
    noise = np.random.default_rng(0).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    for frame in (noise, np.zeros((480, 640, 3), np.uint8)):
        result = pipeline.process(frame, 0.0)
        assert result.status == "no-face" and result.eyes == {"left": None, "right": None}


def test_search_windows_start_in_the_middle_and_hold_every_face_up_to_half_their_side():
    from eyecore.frame import PipelineConfig, search_windows

    cfg = PipelineConfig()
    cap, most = cfg.detection_search_max_px, cfg.detection_search_max_zoom
    for width, height, count, side in ((640, 480, 6, 320), (480, 640, 6, 320), (320, 240, 6, 160),
                                       (1280, 720, 18, 1280 / most), (720, 1280, 18, 1280 / most),
                                       (1920, 1080, 18, 1920 / most), (3840, 2160, 18, 3840 / most)):
        windows = search_windows(width, height, cfg.detection_search_zoom, cap, most)
        assert len(windows) == count
        middle = min(windows, key=lambda w: (w.cx - width / 2) ** 2 + (w.cy - height / 2) ** 2)
        assert windows[0] is middle  # the likeliest place first
        for w in windows:
            assert w.width == w.height == pytest.approx(side) and w.angle == 0
            assert -1e-9 <= w.cx - side / 2 and w.cx + side / 2 <= width + 1e-9
            assert -1e-9 <= w.cy - side / 2 and w.cy + side / 2 <= height + 1e-9
        half = side / 2  # a face this wide, anywhere in the frame, lies wholly in some window
        for x in range(math.ceil(half / 2), math.floor(width - half / 2) + 1, 8):
            for y in range(math.ceil(half / 2), math.floor(height - half / 2) + 1, 8):
                assert any(abs(x - w.cx) <= (side - half) / 2 + 1e-6 and abs(y - w.cy) <= (side - half) / 2 + 1e-6
                           for w in windows), (width, height, x, y)


@needs_shared
@pytest.mark.shared
def test_a_face_too_small_for_the_whole_frame_is_found_in_a_zoomed_window(runtime):
    """A person four times as far away (eyes ~9 px) in a corner of the picture: BlazeFace misses the face on the
    whole frame, the search windows find it within their cycle (the corner window is the last of six), and FaceMesh
    then tracks it without detecting again."""
    import cv2

    frame = video_frame()
    small = cv2.resize(frame, (160, 120), interpolation=cv2.INTER_AREA)
    far = np.full_like(frame, 128)
    far[330:450, 440:600] = small
    found = []
    zoomed = FramePipeline(runtime, PipelineConfig(use_iris=False))
    for i in range(7):
        result = zoomed.process(far, i / 30)
        found.append(result.status == "face")
        if result.status == "face":
            x0, y0, x1, y1 = result.face_box
            assert 440 <= x0 < x1 <= 600 and 330 <= y0 < y1 <= 450, result.face_box
            for eye in EYES:
                assert result.eyes[eye] is not None and result.eyes[eye].p_open is not None
            assert result.eyes_small and result.to_dict()["eyes_small"] is True  # ~7.5 px: the page asks to come closer
    assert found == [False] * 5 + [True, True]  # the five windows nearer the middle than the bottom-right one: none
    assert not result.detected  # the last frame was tracked
    whole_only = FramePipeline(runtime, PipelineConfig(use_iris=False, detection_search_zoom=0))
    assert all(whole_only.process(far, i / 30).status == "no-face" for i in range(6))


@needs_shared
@pytest.mark.shared
def test_a_small_face_in_a_1280x720_picture_is_found_as_in_a_640x480_one(runtime):
    """The page asks for 1280x720 when the eyes are small. The same small face (eyes ~9 px) in the bottom-right
    corner of a 1280x720 picture: windows of half the picture's side would show it to BlazeFace at half the pixels of
    a 640x480 window and miss it; the capped windows (18 at this size) find it within their cycle."""
    import cv2

    small = cv2.resize(video_frame(), (160, 120), interpolation=cv2.INTER_AREA)
    far = np.full((720, 1280, 3), 128, np.uint8)
    far[580:700, 1100:1260] = small
    capped = FramePipeline(runtime, PipelineConfig(use_iris=False))
    found = [capped.process(far, i / 30).status == "face" for i in range(20)]
    assert any(found) and all(found[found.index(True):]), found
    half = FramePipeline(runtime, PipelineConfig(use_iris=False, detection_search_max_px=0))
    assert all(half.process(far, i / 30).status == "no-face" for i in range(20))


@needs_shared
@pytest.mark.shared
def test_a_nearer_face_takes_the_track_over_from_a_bystander(runtime):
    """The person away, a bystander (a small face in a corner) is the only face and gets tracked; once the person is
    back, the whole-frame look every nearer_face_check_s hands the track to them within a second, and the bystander
    alone never takes it back. With the look off, the bystander keeps the track."""
    import cv2

    frame = video_frame()
    small = cv2.resize(frame, (224, 168), interpolation=cv2.INTER_AREA)
    alone, both = np.full_like(frame, 128), frame.copy()
    alone[:168, :224] = small
    both[:168, :224] = small

    def centres(config, frames):
        pipeline, out = FramePipeline(runtime, config), []
        for i, picture in enumerate(frames):
            box = pipeline.process(picture, i / 10).face_box
            out.append(None if box is None else ((box[0] + box[2]) / 2, (box[1] + box[3]) / 2))
        return out

    frames = [alone] * 5 + [both] * 15  # 10 frames a second: the person is back at 0.5 s
    seen = centres(PipelineConfig(use_iris=False), frames)
    assert all(c is not None and c[0] < 224 and c[1] < 168 for c in seen[2:5]), seen  # the bystander (a zoomed find)
    back = [i for i, c in enumerate(seen) if c is not None and c[0] > 240]
    assert back and 5 <= back[0] <= 15 and back == list(range(back[0], 20)), seen  # the person, from then on
    stuck = centres(PipelineConfig(use_iris=False, nearer_face_check_s=0), frames)
    assert all(c[0] < 224 for c in stuck[2:]), stuck


@needs_shared
@pytest.mark.shared
def test_face_half_out_of_frame_makes_the_cut_eye_unknown(runtime):
    frame = video_frame()
    shifted = np.zeros_like(frame)
    shifted[:, :640 - 290] = frame[:, 290:]  # the person's right eye (image left) leaves the frame
    result = FramePipeline(runtime, PipelineConfig()).process(shifted, 0.0)
    assert result.status == "face"
    assert result.right is None and result.left is not None and result.left.p_open is not None


@needs_shared
@pytest.mark.shared
def test_eyes_crushed_to_black_are_flagged_dark_and_lit_or_darkened_ones_not(runtime):
    """A dark room whose camera crushes shadows to black (here: 96 of 255 and below -> 0, the rest x0.3) still gives
    a face, but the eyes read open whatever they do (docs/BENCHMARKS.md, "Eyes crushed to black"): flagged. A
    picture merely darkened (x0.05) keeps its eyes' detail and is not; nor is the black fill of an eye crop that
    reaches past the frame's edge."""
    frame = video_frame()
    lit = FramePipeline(runtime, PipelineConfig()).process(frame, 0.0)
    crushed = np.clip((frame.astype(np.float32) - 96) * 0.3, 0, 255).round().astype(np.uint8)
    dark = FramePipeline(runtime, PipelineConfig()).process(crushed, 0.0)
    dim = FramePipeline(runtime, PipelineConfig()).process((frame * 0.05).round().astype(np.uint8), 0.0)
    assert lit.status == dark.status == dim.status == "face"
    assert not lit.eyes_dark and max(lit.left.black, lit.right.black) < 0.01 and not lit.eyes_bright
    assert dark.eyes_dark and (dark.left.black + dark.right.black) / 2 > PipelineConfig().dark_eye_share
    assert not dim.eyes_dark
    assert dark.to_dict()["eyes_dark"] is True and dark.to_dict()["left"]["black"] == dark.left.black
    shifted = np.zeros_like(frame)
    shifted[:, :640 - 275] = frame[:, 275:]  # the image-left eye's crop now reaches past the frame's left edge
    edge = FramePipeline(runtime, PipelineConfig()).process(shifted, 0.0)
    rect = runtime.crop(shifted, replace_rect(edge.right), 48, 48, FramePipeline(runtime).eye_spec)
    assert edge.right is not None and runtime.clipped_share(rect, FramePipeline(runtime).eye_spec)[0][0] > 0.05
    assert edge.right.black < 0.01 and not edge.eyes_dark


@needs_shared
@pytest.mark.shared
def test_eyes_blown_out_to_white_are_flagged_bright_and_a_lit_face_not(runtime):
    """Too much light: the skin round the eyes saturates to white (here the frame times 4) and open eyes read
    closed (docs/BENCHMARKS.md, "Eyes blown out to white"): flagged. Twice the light is not."""
    frame = video_frame()
    brighter = FramePipeline(runtime, PipelineConfig()).process(np.clip(frame * 2.0, 0, 255).astype(np.uint8), 0.0)
    blown = FramePipeline(runtime, PipelineConfig()).process(np.clip(frame * 4.0, 0, 255).astype(np.uint8), 0.0)
    assert brighter.status == blown.status == "face"
    assert not brighter.eyes_bright and not brighter.eyes_dark
    assert blown.eyes_bright and (blown.left.white + blown.right.white) / 2 > PipelineConfig().bright_eye_share
    assert not blown.eyes_dark and blown.to_dict()["eyes_bright"] is True


def replace_rect(eye):
    from eyecore.geometry import eye_crop_rect

    return eye_crop_rect(*eye.corners, PipelineConfig().preprocess.crop_scale)


@needs_shared
def test_replay_crops_as_the_model_metadata_says(tmp_path):
    """pipeline.video takes crop scale and input size from the classifier's metadata, as the page does from
    eye_state.json, so a model exported with another framing is replayed with that framing."""
    import onnx

    from eyecore.preprocess import PreprocessSpec
    from pipeline.video import make_pipeline

    plain = tmp_path / "plain.onnx"
    mean_brightness_classifier(plain)
    assert make_pipeline(face_models_dir(), plain, use_iris=True).config.preprocess == PreprocessSpec()
    tagged = tmp_path / "tagged.onnx"
    model = onnx.load(str(plain))
    spec = PreprocessSpec(crop_scale=1.7)
    model.metadata_props.add(key="eyestate.preprocess", value=spec.to_json())
    onnx.save(model, str(tagged))
    assert make_pipeline(face_models_dir(), tagged, use_iris=True).config.preprocess == spec


@needs_shared
@pytest.mark.shared
def test_facemesh_skips_frames_only_while_the_face_holds_still(runtime, monkeypatch):
    """landmark_hold_s: a still face keeps its FaceMesh landmarks for up to that long (FaceMesh skipped, eyes still
    judged on the new frame); a face that moved between the last two FaceMesh runs gets FaceMesh every frame; a held
    frame on which the classifier doubts an eye gets FaceMesh after all."""
    meshes = []
    real_run = runtime.run

    def counting_run(model, feeds):
        meshes.append(model == "face_landmark")
        return real_run(model, feeds)

    monkeypatch.setattr(runtime, "run", counting_run)
    frame = video_frame()

    def mesh_calls(pipeline, frames):
        ran = []
        for t, image in frames:
            meshes.clear()
            result = pipeline.process(image, t)
            assert result.status == "face" and result.left and result.right  # held or not, both eyes are judged
            ran.append(sum(meshes))
        return ran

    still = [(t, frame) for t in (0.0, 0.033, 0.066, 0.1, 0.133, 0.166, 0.2)]
    assert mesh_calls(FramePipeline(runtime, PipelineConfig(use_iris=False)), still) == [1] * 7  # off by default
    # this test's classifier (mean brightness) gives these eyes p_open 0.21-0.24: no doubt below 0.2, none at 0
    held = PipelineConfig(use_iris=False, landmark_hold_s=0.1, landmark_hold_min_p=0.0)
    # the first two frames measure the motion; then FaceMesh again once the landmarks are 0.1 s old
    assert mesh_calls(FramePipeline(runtime, held), still) == [1, 1, 0, 0, 1, 0, 0]
    assert mesh_calls(FramePipeline(runtime, replace(held, landmark_hold_min_p=0.2)), still) == [1, 1, 0, 0, 1, 0, 0]
    assert mesh_calls(FramePipeline(runtime, replace(held, landmark_hold_min_p=0.3)), still) == [1] * 7  # in doubt
    shifted = np.roll(frame, 40, axis=1)  # the head moved 40 px sideways between two frames
    moving = [(0.0, frame), (0.033, shifted), (0.066, frame), (0.1, shifted)]
    assert mesh_calls(FramePipeline(runtime, held), moving) == [1, 1, 1, 1]
    black = np.zeros_like(frame)  # the face vanishes: held landmarks stand for it at most landmark_hold_s ...
    pipeline = FramePipeline(runtime, held)
    mesh_calls(pipeline, still[:2])
    assert pipeline.process(black, 0.066).status == "face"
    assert pipeline.process(black, 0.133).status == "no-face"
    assert pipeline.process(black, 0.166).status == "no-face"  # and nothing is held once the face is lost
    pipeline = FramePipeline(runtime, replace(held, landmark_hold_min_p=0.2))
    mesh_calls(pipeline, still[:2])
    meshes.clear()  # ... unless the classifier doubts the held crops (black: p_open 0.02): FaceMesh looks again
    assert pipeline.process(black, 0.066).status == "no-face" and sum(meshes) == 1


@needs_shared
@pytest.mark.shared
def test_a_held_frame_the_eyelid_reading_doubts_gets_facemesh_again(runtime, monkeypatch):
    """With the iris model on, a held frame is also judged after the eyelid reading: if the fused p_open of an eye
    falls below landmark_hold_min_p (the eyelid crop may sit beside the eye after a head jump while the classifier
    is still sure), FaceMesh runs again and the frame is judged on fresh landmarks."""
    meshes = []
    real_run = runtime.run
    monkeypatch.setattr(runtime, "run", lambda model, feeds: meshes.append(model == "face_landmark")
                        or real_run(model, feeds))
    frame = video_frame()
    config = PipelineConfig(landmark_hold_s=0.1, landmark_hold_min_p=0.2)  # classifier 0.21-0.24 here: no doubt

    def run(pipeline, t):
        meshes.clear()
        result = pipeline.process(frame, t)
        assert result.status == "face" and result.left and result.right
        return sum(meshes)

    calm = FramePipeline(runtime, config)
    assert [run(calm, t) for t in (0.0, 0.033, 0.066)] == [1, 1, 0]  # open eyelids: the third frame is held

    def shut_eyelids(frame, corners):
        return {eye: 0.0 for eye in corners}
        yield  # a generator, like the method it replaces

    doubtful = FramePipeline(runtime, config)
    assert [run(doubtful, t) for t in (0.0, 0.033)] == [1, 1]
    monkeypatch.setattr(doubtful, "_iris_openings", shut_eyelids)
    assert run(doubtful, 0.066) == 1  # held, read as closed by the eyelids, so FaceMesh looked again
    assert doubtful._iris_held["left"][0] == 0.0 and doubtful._baselines["left"].current() is not None


@needs_shared
@pytest.mark.shared
def test_nan_model_outputs_are_no_reading(runtime, monkeypatch):
    """A broken model output (NaN) must not read as a wide-open eye (iris) or a closed one (classifier): that eye's
    signal is left out, and with no signal left the eye is unknown, which the tracker takes."""
    from eyecore.temporal import EyeStateTracker

    real_run = runtime.run
    broken = set()

    def run_with_nan(model, feeds):
        out = real_run(model, feeds)
        if model in broken:
            out = {name: np.full_like(np.asarray(value, np.float32), np.nan) for name, value in out.items()}
        return out

    monkeypatch.setattr(runtime, "run", run_with_nan)
    frame = video_frame()
    pipeline = FramePipeline(runtime, PipelineConfig())
    assert all(pipeline.process(frame, 0.0).eyes[eye].p_iris is not None for eye in EYES)  # a good reading first
    broken.add("iris_landmark")
    result = pipeline.process(frame, 0.5)  # both eyes read again, and broken: the older reading is not reused
    for eye in EYES:
        er = result.eyes[eye]
        assert er.p_iris is None and er.p_cnn is not None and er.p_open == pytest.approx(er.p_cnn)
    broken.add("eye_state")
    result = FramePipeline(runtime, PipelineConfig()).process(frame, 0.0)
    assert result.status == "face" and all(result.eyes[eye].p_open is None for eye in EYES)
    state = EyeStateTracker().update(0.0, result.left.p_open, result.right.p_open)
    assert state.eyes == "unknown"
