"""The adapter contract between the pure-Python frame pipeline and whatever runs models and crops pixels.

Two implementations exist: `web_runtime.WebRuntime` (onnxruntime-web + canvas, in the page) and
`pipeline.cv_runtime.CvRuntime` (onnxruntime + OpenCV, offline). The pipeline never touches pixels.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from .geometry import RotatedRect
from .preprocess import PreprocessSpec

MODEL_NAMES = ("face_detection", "face_landmark", "iris_landmark", "eye_state")
BLACK_LUMA = 1.5  # of 255: a pixel that rounds to luma 0 or 1 (what a camera crushes to black)
WHITE_LUMA = 253.5  # ... or to 254 or 255 (what a camera blows out to white)


@dataclass(frozen=True)
class TensorSpec:
    """How a crop becomes a model input: value = pixel * scale + offset (pixel in 0..255).

    channels "rgb" -> 3 channels R, G, B; "gray" -> 1 channel, BT.601 luma of R, G, B.
    layout "NHWC" (TFLite-style face models) or "NCHW" (the eye classifier).
    flip_horizontal mirrors the crop left-right (the iris model only knows one eye).
    """

    layout: str = "NHWC"
    channels: str = "rgb"
    scale: float = 1.0 / 255.0
    offset: float = 0.0
    flip_horizontal: bool = False

    def __post_init__(self):
        if self.layout not in ("NHWC", "NCHW"):
            raise ValueError(f"layout must be 'NHWC' or 'NCHW', got {self.layout!r}")
        if self.channels not in ("rgb", "gray"):
            raise ValueError(f"channels must be 'rgb' or 'gray', got {self.channels!r}")

    @property
    def num_channels(self) -> int:
        return 3 if self.channels == "rgb" else 1

    def flipped(self) -> "TensorSpec":
        return TensorSpec(self.layout, self.channels, self.scale, self.offset, not self.flip_horizontal)

    @classmethod
    def from_range(cls, low: float, high: float, layout: str = "NHWC", channels: str = "rgb") -> "TensorSpec":
        """Pixels 0..255 mapped linearly onto [low, high] (MediaPipe's output_tensor_float_range)."""
        return cls(layout, channels, (high - low) / 255.0, low)

    @classmethod
    def from_preprocess(cls, spec: PreprocessSpec) -> "TensorSpec":
        """The eye classifier's input: (gray/255 - mean) / std, NCHW."""
        channels = "gray" if spec.channels == 1 else "rgb"
        return cls("NCHW", channels, 1.0 / (255.0 * spec.std), -spec.mean / spec.std)


class Runtime(Protocol):
    def frame_size(self, frame) -> tuple:
        """(width, height) of a frame in pixels."""

    def crop(self, frame, roi: RotatedRect, width: int, height: int, spec: TensorSpec) -> Any:
        """Rotated crop of `roi` (frame pixels; outside the frame = black) resized to width x height
        with good downscaling, converted to one model input tensor [1, ...] per `spec`."""

    def run(self, model: str, feeds: dict) -> dict:
        """Run `model` (one of MODEL_NAMES); returns {output name: flat sequence of floats}.
        Used by FramePipeline.process (CPython)."""

    async def run_async(self, model: str, feeds: dict) -> dict:
        """The same as `run`, awaitable. Used by FramePipeline.process_async (the page). A runtime
        needs only the one its callers use."""

    def stack(self, tensors: list) -> Any:
        """Concatenate [1, ...] tensors along axis 0."""

    def clipped_share(self, crops, spec: TensorSpec) -> list:
        """For each crop of a batch (`crop` or `stack`, made with `spec`): (black, white), the shares of its pixels
        whose BT.601 luma is below BLACK_LUMA (crushed to black) and above WHITE_LUMA (blown out to white)."""

    def now(self) -> float:
        """Monotonic clock in seconds (for per-stage timings)."""
