import json

import pytest

from eyecore import blazeface
from eyecore.geometry import letterbox_rect

from face_helpers import face_models_dir, needs_shared, video_frame

np = pytest.importorskip("numpy")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")


def test_anchor_grid_matches_mediapipe_short_range():
    anchors = blazeface.ANCHORS
    assert len(anchors) == blazeface.NUM_ANCHORS == 896
    assert anchors[0] == anchors[1] == (0.5 / 16, 0.5 / 16)          # 16x16 grid, 2 per cell
    assert anchors[512] == anchors[517] == (0.5 / 8, 0.5 / 8)        # 8x8 grid, 6 per cell
    assert anchors[-1] == (7.5 / 8, 7.5 / 8)


def test_decode_maps_offsets_to_anchor_and_skips_low_scores():
    regressors = [0.0] * (896 * 16)
    scores = [-10.0] * 896
    i = 3  # anchor of cell (1, 0) of the 16x16 grid
    scores[i] = 2.0
    regressors[i * 16:(i + 1) * 16] = [12.8, -6.4, 25.6, 38.4] + [1.28 * k for k in range(12)]
    (det,) = blazeface.decode(regressors, scores)
    ax, ay = blazeface.ANCHORS[i]
    assert det.score == pytest.approx(1 / (1 + np.exp(-2.0)))
    assert ((det.xmin + det.xmax) / 2, (det.ymin + det.ymax) / 2) == pytest.approx((ax + 0.1, ay - 0.05))
    assert (det.xmax - det.xmin, det.ymax - det.ymin) == pytest.approx((0.2, 0.3))
    assert det.keypoints[1] == pytest.approx((ax + 0.02, ay + 0.03))
    with pytest.raises(ValueError, match="896"):
        blazeface.decode(regressors[:-1], scores)


def test_weighted_nms_merges_overlaps_and_keeps_separate_faces():
    kps = [(0.0, 0.0)] * 6
    a = blazeface.Detection(0.9, 0.10, 0.10, 0.30, 0.30, kps)
    b = blazeface.Detection(0.6, 0.12, 0.12, 0.32, 0.32, kps)
    c = blazeface.Detection(0.8, 0.60, 0.60, 0.80, 0.80, kps)
    merged = blazeface.weighted_nms([b, c, a])
    assert [d.score for d in merged] == [0.9, 0.8]
    assert merged[0].xmin == pytest.approx((0.9 * 0.10 + 0.6 * 0.12) / 1.5)


@pytest.fixture(scope="module")
def models():
    return face_models_dir()


def test_converted_models_have_the_documented_interface(models):
    from pipeline.face_models import MODEL_IO

    meta = json.loads((models / "face_models.json").read_text())
    assert set(meta["models"]) == set(MODEL_IO)
    assert (models / meta["license"]).read_text().startswith("The MIT License")
    for name, io in MODEL_IO.items():
        sess = ort.InferenceSession(str(models / io["file"]), providers=["CPUExecutionProvider"])
        (inp,) = sess.get_inputs()
        batch = ["N"] if io["input"].get("dynamic_batch") else [1]
        assert (inp.name, inp.shape) == (io["input"]["name"], batch + io["input"]["shape"][1:])
        assert {o.name: o.shape for o in sess.get_outputs()} == {
            k: batch + v["shape"][1:] for k, v in io["outputs"].items()}
        assert meta["models"][name]["sha256"]


def test_ensure_face_models_uses_the_cache(models, capsys):
    from pipeline.face_models import ensure_face_models

    paths = ensure_face_models(models)
    assert "cached" in capsys.readouterr().out
    assert all(p.exists() for p in paths.values())


@needs_shared
@pytest.mark.shared
def test_blazeface_finds_the_one_face_on_a_real_frame(models):
    from eyecore.frame import DETECTION_SPEC
    from pipeline.cv_runtime import CvRuntime

    frame = video_frame()
    runtime = CvRuntime(models)
    box = letterbox_rect(640, 480)
    out = runtime.run("face_detection", {"input": runtime.crop(frame, box, 128, 128, DETECTION_SPEC)})
    found = blazeface.detect(out["regressors"], out["classificators"])
    assert len(found) == 1
    face = found[0].to_frame(box)
    assert face.score > 0.8
    width, height = face.xmax - face.xmin, face.ymax - face.ymin
    assert 80 < width < 300 and 80 < height < 300
    assert 200 < (face.xmin + face.xmax) / 2 < 440 and 120 < (face.ymin + face.ymax) / 2 < 360
    eye_a, eye_b = face.keypoints[0], face.keypoints[1]
    for x, y in (eye_a, eye_b):
        assert face.xmin < x < face.xmax and face.ymin < y < (face.ymin + face.ymax) / 2 + 10
    assert eye_a[0] < eye_b[0]  # keypoint 0 is the image-left eye on an upright face


@needs_shared
@pytest.mark.shared
def test_facemesh_eye_corners_are_the_persons_own_eyes(models):
    from eyecore.frame import FramePipeline, PipelineConfig
    from pipeline.cv_runtime import CvRuntime

    pipeline = FramePipeline(CvRuntime(models), PipelineConfig(use_classifier=False))
    result = pipeline.process(video_frame(), 0.0)
    assert result.status == "face" and result.detected and result.face_score > 0.9
    xmin, ymin, xmax, ymax = result.face_box
    for eye in (result.left, result.right):
        for x, y in eye.corners:
            assert xmin < x < xmax and ymin < y < (ymin + ymax) / 2
        assert 0.2 < eye.eyelid_opening < 0.6  # open eyes on the first frame
    # A non-mirrored camera frame shows the person's right eye on the image's left.
    right_x = sum(x for x, _ in result.right.corners) / 2
    left_x = sum(x for x, _ in result.left.corners) / 2
    assert right_x < left_x
    assert abs(result.yaw_degrees) < 20
