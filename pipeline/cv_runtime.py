"""onnxruntime + OpenCV implementation of `eyecore.runtime.Runtime` (the page uses ort-web + canvas).

Frames are BGR uint8 arrays as cv2.VideoCapture gives them. Crops follow canvas semantics: continuous
pixel coordinates (pixel i covers [i, i+1]), black outside the frame, and an area-averaging
pre-shrink for strong downscaling, close to drawImage with imageSmoothingQuality "high".
"""
from __future__ import annotations

import time
from pathlib import Path

import cv2
import numpy as np
import onnxruntime as ort

from eyecore.geometry import RotatedRect
from eyecore.preprocess import PreprocessSpec
from eyecore.runtime import BLACK_LUMA, WHITE_LUMA, TensorSpec
from pipeline.face_models import MODEL_IO

# Downscaling by more than this factor first shrinks with INTER_AREA, then warps ~1:1.
PRESHRINK_ABOVE = 2.0
# BGR channel weights for BT.601 luma.
_GRAY_BGR = np.array([0.114, 0.587, 0.299], dtype=np.float32)
_GRAY_RGB = _GRAY_BGR[::-1].copy()


def _session(path: Path, threads: int) -> ort.InferenceSession:
    if not Path(path).exists():
        raise FileNotFoundError(f"model not found: {path}")
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def warp_crop(frame: np.ndarray, roi: RotatedRect, width: int, height: int) -> np.ndarray:
    """Rotated crop of `roi` resized to width × height (uint8, same channels as frame)."""
    a, b, c, d, e, f = roi.affine_frame_to_crop(width, height)
    shrink = roi.width / width
    if shrink > PRESHRINK_ABOVE:
        # Area-average the ROI's bounding box down to ~the output scale, then warp the small image.
        xs = [p[0] for p in roi.corners()]
        ys = [p[1] for p in roi.corners()]
        h_img, w_img = frame.shape[:2]
        x0, y0 = max(int(np.floor(min(xs))), 0), max(int(np.floor(min(ys))), 0)
        x1, y1 = min(int(np.ceil(max(xs))), w_img), min(int(np.ceil(max(ys))), h_img)
        if x1 - x0 >= 2 and y1 - y0 >= 2:
            sub = frame[y0:y1, x0:x1]
            sw, sh = max(1, round((x1 - x0) / shrink)), max(1, round((y1 - y0) / shrink))
            frame = cv2.resize(sub, (sw, sh), interpolation=cv2.INTER_AREA)
            kx, ky = (x1 - x0) / sw, (y1 - y0) / sh
            # frame point = (x0 + kx * xs, y0 + ky * ys) in continuous coordinates
            a, b, c, d, e, f = a * kx, b * ky, a * x0 + b * y0 + c, d * kx, e * ky, d * x0 + e * y0 + f
    # cv2 samples at integer pixel centres; shift by half a pixel on both sides for continuous coords.
    c = c + 0.5 * (a + b) - 0.5
    f = f + 0.5 * (d + e) - 0.5
    matrix = np.array([[a, b, c], [d, e, f]], dtype=np.float64)
    return cv2.warpAffine(frame, matrix, (width, height), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_tensor(crop_bgr: np.ndarray, spec: TensorSpec) -> np.ndarray:
    """uint8 BGR crop -> float32 [1, ...] tensor per spec."""
    if spec.flip_horizontal:
        crop_bgr = crop_bgr[:, ::-1]
    pixels = crop_bgr.astype(np.float32)
    if spec.channels == "gray":
        pixels = (pixels @ _GRAY_BGR)[..., None]
    else:
        pixels = pixels[..., ::-1]
    values = pixels * np.float32(spec.scale) + np.float32(spec.offset)
    if spec.layout == "NCHW":
        values = values.transpose(2, 0, 1)
    return np.ascontiguousarray(values[None], dtype=np.float32)


class CvRuntime:
    """Runtime for CPython: the three face models from `models_dir` and the eye classifier."""

    def __init__(self, models_dir, eye_model_path=None, threads: int = 1, clock=time.perf_counter):
        """clock: what `now` reads; time.thread_time gives CPU time per stage (with threads=1 onnxruntime
        computes on the calling thread), which stays meaningful on a busy machine."""
        self.clock = clock
        models_dir = Path(models_dir)
        self.sessions = {name: _session(models_dir / io["file"], threads) for name, io in MODEL_IO.items()}
        if eye_model_path is not None:
            self.sessions["eye_state"] = _session(Path(eye_model_path), threads)

    @property
    def has_classifier(self) -> bool:
        return "eye_state" in self.sessions

    @property
    def eye_spec(self) -> PreprocessSpec | None:
        """The classifier's preprocessing from its ONNX metadata (pipeline.export writes it), else None."""
        if not self.has_classifier:
            return None
        text = self.sessions["eye_state"].get_modelmeta().custom_metadata_map.get("eyestate.preprocess")
        return PreprocessSpec.from_json(text) if text else None

    def frame_size(self, frame: np.ndarray) -> tuple:
        return frame.shape[1], frame.shape[0]

    def crop(self, frame: np.ndarray, roi: RotatedRect, width: int, height: int, spec: TensorSpec):
        return to_tensor(warp_crop(frame, roi, width, height), spec)

    def run(self, model: str, feeds: dict) -> dict:
        if model not in self.sessions:
            raise KeyError(f"no model {model!r} loaded (have {sorted(self.sessions)})")
        sess = self.sessions[model]
        inputs = sess.get_inputs()
        if len(feeds) == 1 and len(inputs) == 1:  # the eye classifier's input may have any name
            feeds = {inputs[0].name: next(iter(feeds.values()))}
        outs = sess.run(None, feeds)
        return {o.name: v.ravel().tolist() for o, v in zip(sess.get_outputs(), outs)}

    async def run_async(self, model: str, feeds: dict) -> dict:
        """`run` as an awaitable, so CPython can drive FramePipeline.process_async (the page's path)."""
        return self.run(model, feeds)

    def stack(self, tensors: list) -> np.ndarray:
        return np.concatenate(tensors, axis=0)

    def clipped_share(self, crops: np.ndarray, spec: TensorSpec) -> list:
        pixels = (crops - np.float32(spec.offset)) / np.float32(spec.scale)  # back to 0..255
        axis = 1 if spec.layout == "NCHW" else -1
        luma = (pixels[:, 0] if spec.channels == "gray" else np.moveaxis(pixels, axis, -1) @ _GRAY_RGB)
        luma = luma.reshape(len(crops), -1)
        return list(zip((luma < BLACK_LUMA).mean(axis=1).tolist(), (luma > WHITE_LUMA).mean(axis=1).tolist()))

    def now(self) -> float:
        return self.clock()
