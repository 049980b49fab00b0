"""Shared helpers for the face / frame-pipeline tests: data paths, cached face models, video frames."""
from __future__ import annotations

import functools
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FOCUS = SHARED / "data" / "videos" / "focus"
MAHIE_1 = FOCUS / "mahie_test_1.avi"
DEMO = SHARED / "data" / "videos" / "demo"
MODELS_DIR = ROOT / ".cache" / "face_models"

needs_shared = pytest.mark.skipif(
    not MAHIE_1.exists(),
    reason=f"needs the shared focus videos at {FOCUS} (../shared beside the repository; CI has it)")


@functools.lru_cache(maxsize=None)
def face_models_dir() -> Path:
    """Converted once per test session (and cached on disk across sessions)."""
    from pipeline.face_models import ensure_face_models

    ensure_face_models(MODELS_DIR, quiet=True)
    return MODELS_DIR


@functools.lru_cache(maxsize=None)
def video_frame(path: Path = MAHIE_1, index: int = 0):
    import cv2

    cap = cv2.VideoCapture(str(path))
    try:
        for _ in range(index + 1):
            ok, frame = cap.read()
            assert ok, f"{path} has fewer than {index + 1} frames"
    finally:
        cap.release()
    frame.setflags(write=False)
    return frame
