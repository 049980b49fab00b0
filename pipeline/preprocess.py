"""Vectorised numpy/torch twin of `eyecore.preprocess` (the one preprocessing definition, docs/DESIGN.md)."""
from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

try:
    from eyecore.preprocess import CLASSES, DEFAULT_SPEC, GRAY_WEIGHTS, OPEN_INDEX, PreprocessSpec
except ImportError:  # running from a checkout without `pip install -e .`
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site"))
    from eyecore.preprocess import CLASSES, DEFAULT_SPEC, GRAY_WEIGHTS, OPEN_INDEX, PreprocessSpec

__all__ = [
    "CLASSES", "DEFAULT_SPEC", "GRAY_WEIGHTS", "OPEN_INDEX", "PreprocessSpec",
    "color_to_gray_u8", "gray_to_input", "rgba_to_input", "spec_from_dict", "to_model_input",
]


def spec_from_dict(d: dict | None) -> PreprocessSpec:
    """A checkpoint's `preprocess` block -> spec (None or empty: the default); a malformed block is a ValueError
    that names the bad values, not a TypeError or ZeroDivisionError on the first image."""
    if not d:
        return DEFAULT_SPEC
    if not isinstance(d, dict):
        raise ValueError(f"preprocess block {d!r} is not a dict like {DEFAULT_SPEC.to_json()}")
    spec = PreprocessSpec.from_dict(d)
    problems = [f"{name} {getattr(spec, name)!r} ({expected})" for name, expected, ok in (
        ("size", "a whole number of pixels >= 1", _is_int(spec.size) and spec.size >= 1),
        ("channels", "1: gray input", spec.channels == 1 and _is_int(spec.channels)),
        ("mean", "a finite number", _is_number(spec.mean)),
        ("std", "a number > 0", _is_number(spec.std) and spec.std > 0),
        ("crop_scale", "a number > 0", _is_number(spec.crop_scale) and spec.crop_scale > 0)) if not ok]
    if problems:
        raise ValueError(f"malformed preprocess block: {'; '.join(problems)}")
    return spec


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def color_to_gray_u8(img: np.ndarray, order: str = "bgr") -> np.ndarray:
    """[H,W,3|4] uint8 colour (OpenCV's BGR by default) -> [H,W] uint8 gray with BT.601 weights."""
    if img.ndim != 3 or img.shape[2] not in (3, 4):
        raise ValueError(f"expected a [H,W,3] or [H,W,4] colour image, got shape {img.shape}")
    wr, wg, wb = GRAY_WEIGHTS
    weights = (wb, wg, wr) if order == "bgr" else (wr, wg, wb)
    px = img[..., :3].astype(np.float64)
    gray = px[..., 0] * weights[0] + px[..., 1] * weights[1] + px[..., 2] * weights[2]
    return np.clip(np.rint(gray), 0, 255).astype(np.uint8)


def gray_to_input(gray: np.ndarray, spec: PreprocessSpec = DEFAULT_SPEC, dtype=np.float32) -> np.ndarray:
    """Gray 0..255 ([S,S] or [N,S,S]) -> normalised model input [N,1,S,S]; same arithmetic as eyecore."""
    g = np.asarray(gray)
    if g.ndim == 2:
        g = g[None]
    if g.ndim != 3:
        raise ValueError(f"expected gray images [S,S] or [N,S,S], got shape {g.shape}")
    scale = 1.0 / (255.0 * spec.std)
    offset = spec.mean / spec.std
    return (g.astype(np.float64) * scale - offset).astype(dtype)[:, None]


def rgba_to_input(rgba: np.ndarray, spec: PreprocessSpec = DEFAULT_SPEC, dtype=np.float32) -> np.ndarray:
    """[H,W,4] (or [N,H,W,4]) RGBA bytes, as a canvas gives them -> [N,1,H,W]; float gray, no rounding."""
    a = np.asarray(rgba)
    if a.ndim == 3:
        a = a[None]
    if a.ndim != 4 or a.shape[-1] != 4:
        raise ValueError(f"expected RGBA images [H,W,4] or [N,H,W,4], got shape {a.shape}")
    wr, wg, wb = GRAY_WEIGHTS
    px = a.astype(np.float64)
    gray = wr * px[..., 0] + wg * px[..., 1] + wb * px[..., 2]
    scale = 1.0 / (255.0 * spec.std)
    offset = spec.mean / spec.std
    return (gray * scale - offset).astype(dtype)[:, None]


def to_model_input(images, spec: PreprocessSpec = DEFAULT_SPEC):
    """Torch twin: uint8 [N,S,S] / [N,1,S,S] or float in [0,1] -> normalised float32 [N,1,S,S] (same device)."""
    import torch

    x = images if isinstance(images, torch.Tensor) else torch.as_tensor(np.asarray(images))
    if x.ndim == 3:
        x = x[:, None]
    if x.ndim != 4 or x.shape[1] != 1:
        raise ValueError(f"expected gray images [N,S,S] or [N,1,S,S], got shape {tuple(x.shape)}")
    x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
    return (x - spec.mean) / spec.std
