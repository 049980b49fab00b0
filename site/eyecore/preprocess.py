"""The one preprocessing definition for the eye-state classifier (see docs/DESIGN.md)."""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass

CLASSES = ("closed", "open")
OPEN_INDEX = 1

# ITU-R BT.601 luma weights.
GRAY_WEIGHTS = (0.299, 0.587, 0.114)


@dataclass(frozen=True)
class PreprocessSpec:
    size: int = 48
    channels: int = 1
    mean: float = 0.5
    std: float = 0.5
    gray: str = "bt601"
    crop: str = "square on the eye-corner line, side crop_scale x corner distance"
    # 2.5, not 2.0: with the wider crop the classifier separates closed from open eyes better on the webcam
    # videos (AUC, both mahie videos) and no worse elsewhere (docs/BENCHMARKS.md, "Eye crop scale").
    crop_scale: float = 2.5

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict) -> "PreprocessSpec":
        known = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        return cls(**known)

    @classmethod
    def from_json(cls, text: str) -> "PreprocessSpec":
        return cls.from_dict(json.loads(text))


DEFAULT_SPEC = PreprocessSpec()


def gray_value(r: float, g: float, b: float) -> float:
    wr, wg, wb = GRAY_WEIGHTS
    return wr * r + wg * g + wb * b


def mean_luma(rgba) -> float:
    """Mean BT.601 luma (0-255) of RGBA bytes: how bright a picture is (states.DARK_LUMA)."""
    if not rgba or len(rgba) % 4:
        raise ValueError(f"expected RGBA bytes (a multiple of 4), got {len(rgba)}")
    wr, wg, wb = GRAY_WEIGHTS
    return (wr * sum(rgba[0::4]) + wg * sum(rgba[1::4]) + wb * sum(rgba[2::4])) / (len(rgba) // 4)


def rgba_to_input(rgba, width: int, height: int, spec: PreprocessSpec = DEFAULT_SPEC) -> list:
    """RGBA bytes (row-major, as canvas getImageData gives) -> normalised gray floats, length w*h."""
    if len(rgba) != width * height * 4:
        raise ValueError(f"expected {width * height * 4} RGBA bytes for {width}x{height}, got {len(rgba)}")
    wr, wg, wb = GRAY_WEIGHTS
    scale = 1.0 / (255.0 * spec.std)
    offset = spec.mean / spec.std
    r, g, b = rgba[0::4], rgba[1::4], rgba[2::4]
    return [(wr * rr + wg * gg + wb * bb) * scale - offset for rr, gg, bb in zip(r, g, b)]


def gray_to_input(gray, spec: PreprocessSpec = DEFAULT_SPEC) -> list:
    """Gray bytes 0..255 -> normalised floats."""
    scale = 1.0 / (255.0 * spec.std)
    offset = spec.mean / spec.std
    return [v * scale - offset for v in gray]


def p_open_from_logits(logits) -> float:
    """Softmax over [closed, open] logits -> probability of open."""
    import math

    a, b = float(logits[0]), float(logits[1])
    m = max(a, b)
    ea, eb = math.exp(a - m), math.exp(b - m)
    return eb / (ea + eb)
