"""Int8 quantization of an exported eye-state ONNX model, gated on test-subject accuracy.

    python -m pipeline.quantize --model models/eye_state.onnx --calib ../shared/data/mrl/mrlEyes_2018_01_dev.zip \
        --out models/eye_state.int8.onnx [--mode static|dynamic] [--force]

static (default): QDQ, per-channel int8 weights, uint8 activations (2x faster than int8 ones in ort-web),
calibrated on a class-balanced sample of TRAINING-subject images from the split; the calibration (MinMax,
its moving average, Percentile, Entropy) is chosen on VALIDATION subjects as the one closest to the fp32
outputs (`--calib-method auto`). dynamic: onnxruntime's `quantize_dynamic`, as the seed shipped it.
The accuracy change against the fp32 model is measured on TEST subjects; a drop above 0.3 points refuses
to write unless `--force`. The `eyestate.*` metadata is copied over (quantization drops it).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pipeline.cli import non_negative_int, output_file, output_file_of, positive_int, refuse_overwriting
from pipeline.export import INPUT_NAME, check_gray_input, copy_metadata, onnx_session, sha256_file, spec_from_onnx
from pipeline.preprocess import PreprocessSpec, gray_to_input

if TYPE_CHECKING:
    from pipeline.data import EyeData

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPLIT = REPO_ROOT / "splits" / "mrl_split.json"
MAX_DROP_POINTS = 0.3
# name -> (onnxruntime CalibrationMethod name, extra_options); "auto" picks on validation subjects.
CALIBRATIONS = {
    "minmax": ("MinMax", {}),
    "minmax-avg": ("MinMax", {"CalibMovingAverage": True}),  # mean of per-batch ranges: robust to outliers
    "percentile": ("Percentile", {"CalibPercentile": 99.99}),
    "percentile-99.9": ("Percentile", {"CalibPercentile": 99.9}),
    "entropy": ("Entropy", {}),
}
CALIB_METHODS = tuple(CALIBRATIONS)
ACTIVATION_TYPES = ("uint8", "int8")
# ops that only a quantized model holds (QDQ pairs, dynamic quantization's integer convolutions / matmuls)
QUANTIZED_OPS = {"QuantizeLinear", "DequantizeLinear", "DynamicQuantizeLinear", "ConvInteger", "MatMulInteger"}


class QuantizeError(RuntimeError):
    """A clear, user-facing reason why quantization could not run or was refused."""


@dataclass
class EvalSets:
    calib: EyeData  # class-balanced sample of training-subject images
    val: EyeData  # pipeline.data.EyeData of the validation subjects
    test: EyeData  # ... of the test subjects
    note: str


# ---------------------------------------------------------------- data

def balanced_sample(labels: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices of up to n images, half of each class (fewer if a class is short)."""
    rng = np.random.default_rng(seed)
    per_class = n // 2
    picks = []
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        picks.append(rng.choice(idx, size=min(per_class, len(idx)), replace=False))
    return np.sort(np.concatenate(picks))


def load_eval_sets(data_path, size: int, split_path=DEFAULT_SPLIT, n_calib: int = 1000,
                   max_val: int | None = 2000, max_test: int | None = None, seed: int = 0) -> EvalSets:
    """Calibration images from training subjects; val / test images from their subjects.

    `max_val` / `max_test` cap those parts with a class-balanced sample (None = all images); the validation
    part only ranks calibration methods, so 2000 images do.

    Folder data (open/ closed/, no subjects) has no split: calibration and evaluation then share images,
    which is stated in `note`.
    """
    from pipeline.data import DataLayoutError, load_any

    if data_path is None or not Path(data_path).exists():
        raise QuantizeError(f"calibration data {data_path} does not exist; expected the MRL zip/folder "
                            f"(mrlEyes_2018_01/sXXXX/*.png) or a folder with open/ and closed/ subfolders")
    try:
        data = load_any(str(data_path), size)
    except DataLayoutError as e:
        raise QuantizeError(f"calibration data unusable: {e}") from None

    def cap(d, n):
        if n is None or len(d) <= n:
            return d
        return d.subset(balanced_sample(d.labels, n, seed))

    if data.subjects is None:
        calib = data.subset(balanced_sample(data.labels, n_calib, seed))
        note = f"{data.source} has no subjects: calibration and evaluation share one image pool"
        warnings.warn(note)
        return EvalSets(calib, cap(data, max_val), cap(data, max_test), note)
    from pipeline.split import load_split, part_mask

    try:
        split = load_split(split_path)
    except (OSError, ValueError) as e:
        raise QuantizeError(f"split: {e}") from None
    parts = {k: data.subset(part_mask(data, split, k)) for k in ("train", "val", "test")}
    for k, d in parts.items():
        if len(d) == 0 or len(np.unique(d.labels)) < 2:
            raise QuantizeError(f"{data.source}: the {k} subjects of {split_path} give {len(d)} images "
                                f"with classes {sorted(set(d.labels.tolist()))}; need both classes")
    train = parts["train"]
    calib = train.subset(balanced_sample(train.labels, n_calib, seed))
    val, test = cap(parts["val"], max_val), cap(parts["test"], max_test)
    note = (f"calibration: {len(calib)} images of {len(split['train'])} training subjects; "
            f"val {len(val)} images; test {len(test)} images of {len(split['test'])} subjects")
    return EvalSets(calib, val, test, note)


def check_fp32_model(path) -> None:
    """Quantizing a quantized model fails only after calibration, inside onnxruntime: refuse it up front."""
    import onnx

    check_gray_input(path, "quantize models/eye_state.onnx")
    ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    found = sorted(op for op in ops if op in QUANTIZED_OPS or op.startswith("QLinear"))
    if found:
        raise QuantizeError(f"{path} is already quantized (it has {', '.join(found)} nodes); give the fp32 .onnx "
                            "written by pipeline.export (e.g. models/eye_state.onnx)")


# ---------------------------------------------------------------- inference + metrics

def score(model_path, data, spec: PreprocessSpec | None = None, threads: int = 2) -> dict:
    """pipeline.evaluate metrics of an ONNX model on an EyeData (accuracy, precision/recall of "closed", macro-F1)."""
    from pipeline.evaluate import evaluate_arrays

    sess = onnx_session(model_path, threads=threads)
    spec = spec or spec_from_onnx(model_path)
    return evaluate_arrays(lambda x: sess.run(None, {INPUT_NAME: x})[0], data, spec, batch_size=256)


# ---------------------------------------------------------------- quantization

class ArrayReader:
    """onnxruntime CalibrationDataReader over preprocessed images, in equal batches.

    The histogram calibrators (Percentile, Entropy) fail on a shorter last batch, so the remainder is dropped.
    """

    def __init__(self, x: np.ndarray, batch: int = 50):
        batch = max(1, min(batch, len(x)))
        self.batches = [x[i:i + batch] for i in range(0, len(x) - batch + 1, batch)]
        self.pos = 0

    def get_next(self):
        if self.pos >= len(self.batches):
            return None
        self.pos += 1
        return {INPUT_NAME: self.batches[self.pos - 1]}

    def rewind(self):
        self.pos = 0


def preprocess_for_quantization(model_path, out_path) -> None:
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(model_path), str(out_path), skip_symbolic_shape=False)


def quantize_static_model(fp32_path, out_path, calib_images: np.ndarray, *, method: str = "minmax",
                          activations: str = "uint8", per_channel: bool = True) -> dict:
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    if method not in CALIB_METHODS:
        raise QuantizeError(f"calibration method {method!r}; expected one of {CALIB_METHODS}")
    if activations not in ACTIVATION_TYPES:
        raise QuantizeError(f"activation type {activations!r}; expected one of {ACTIVATION_TYPES}")
    if len(calib_images) == 0:
        raise QuantizeError("no calibration images")
    spec = spec_from_onnx(fp32_path)
    calib_name, calib_options = CALIBRATIONS[method]
    act = QuantType.QUInt8 if activations == "uint8" else QuantType.QInt8
    settings = {"mode": "static", "format": "QDQ", "per_channel": per_channel, "weights": "int8",
                "activations": activations, "calibration": method, "calibration_images": int(len(calib_images))}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        preprocess_for_quantization(fp32_path, pre)
        quantize_static(str(pre), str(out_path), ArrayReader(gray_to_input(calib_images, spec)),
                        quant_format=QuantFormat.QDQ, per_channel=per_channel, activation_type=act,
                        weight_type=QuantType.QInt8, calibrate_method=CalibrationMethod[calib_name],
                        extra_options=dict(calib_options))
    copy_metadata(fp32_path, out_path, {"eyestate.quantization": json.dumps(settings, sort_keys=True)})
    return settings


def quantize_dynamic_model(fp32_path, out_path) -> dict:
    """The seed's recipe: onnxruntime `quantize_dynamic` with its default int8 weights."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    settings = {"mode": "dynamic", "weights": "int8", "per_channel": False}
    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        preprocess_for_quantization(fp32_path, pre)
        quantize_dynamic(str(pre), str(out_path), weight_type=QuantType.QInt8)
    copy_metadata(fp32_path, out_path, {"eyestate.quantization": json.dumps(settings, sort_keys=True)})
    return settings


def p_open_of(model_path, images: np.ndarray, spec: PreprocessSpec, threads: int = 2) -> np.ndarray:
    from pipeline.evaluate import predict_p_open

    sess = onnx_session(model_path, threads=threads)
    return predict_p_open(lambda x: sess.run(None, {INPUT_NAME: x})[0], images, spec, batch_size=256)


def choose_calibration(fp32_path, sets: EvalSets, activations: str, methods=CALIB_METHODS,
                       verbose: bool = True) -> str:
    """The calibration whose int8 model stays closest to fp32 on the VALIDATION subjects.

    Closeness = mean |p_open(int8) - p_open(fp32)|: quantization should reproduce the fp32 model, and this is a
    far finer signal than validation accuracy, whose few-image wiggles do not carry over to other subjects.
    """
    from pipeline.metrics import classification_metrics

    spec = spec_from_onnx(fp32_path)
    ref = p_open_of(fp32_path, sets.val.images, spec)
    best, best_err = None, float("inf")
    with tempfile.TemporaryDirectory() as tmp:
        for method in methods:
            path = Path(tmp) / f"{method}.onnx"
            quantize_static_model(fp32_path, path, sets.calib.images, method=method, activations=activations)
            p = p_open_of(path, sets.val.images, spec)
            err = float(np.abs(p - ref).mean())
            if verbose:
                f1 = classification_metrics(sets.val.labels, p)["macro_f1"]
                agree = float(((p >= 0.5) == (ref >= 0.5)).mean())
                print(f"  calibration {method:16s}: validation |p_open - fp32| {err:.4f}, agreement "
                      f"{100 * agree:.2f} %, macro-F1 {100 * f1:.2f}", flush=True)
            if err < best_err:
                best, best_err = method, err
    if verbose:
        print(f"  -> {best}")
    return best


def _headline(m: dict) -> dict:
    keys = ("n", "accuracy", "precision", "recall", "macro_f1", "balanced_subject_accuracy", "confusion")
    return {k: m.get(k) for k in keys}


def quantize(fp32_path, out_path, sets: EvalSets, *, mode: str = "static", method: str = "auto",
             activations: str = "uint8", force: bool = False, max_drop: float = MAX_DROP_POINTS,
             verbose: bool = True) -> dict:
    """Quantize, compare with fp32 on the test images, and write `out_path` only if the drop is allowed."""
    spec = spec_from_onnx(fp32_path)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent, prefix=f".{out_path.stem}.")
    os.close(fd)
    try:
        if mode == "static":
            if method == "auto":
                method = choose_calibration(fp32_path, sets, activations, verbose=verbose)
            settings = quantize_static_model(fp32_path, tmp, sets.calib.images, method=method,
                                             activations=activations)
        elif mode == "dynamic":
            settings = quantize_dynamic_model(fp32_path, tmp)
        else:
            raise QuantizeError(f"--mode {mode!r}; expected static or dynamic")
        fp32 = score(fp32_path, sets.test, spec)
        q = score(tmp, sets.test, spec)
        drop = 100 * (fp32["accuracy"] - q["accuracy"])
        report = {"settings": settings, "fp32": _headline(fp32), "int8": _headline(q), "accuracy_drop_points": drop,
                  "macro_f1_drop_points": 100 * (fp32["macro_f1"] - q["macro_f1"]), "data": sets.note,
                  "size_bytes": os.path.getsize(tmp), "fp32_size_bytes": os.path.getsize(fp32_path)}
        if verbose:
            print(sets.note)
            print(f"test accuracy fp32 {100 * fp32['accuracy']:.2f} -> int8 {100 * q['accuracy']:.2f} "
                  f"(drop {drop:+.2f} pt); macro-F1 {100 * fp32['macro_f1']:.2f} -> {100 * q['macro_f1']:.2f}")
        if drop > max_drop and not force:
            raise QuantizeError(f"accuracy drops {drop:.2f} points (> {max_drop}); not written "
                                f"(use --force to write anyway)")
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    report["path"] = str(out_path)
    return report


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="fp32 ONNX from pipeline.export")
    p.add_argument("--calib", required=True, help="MRL zip/folder (split by --split) or an open/closed folder")
    p.add_argument("--out", type=output_file_of(".onnx"), required=True)
    p.add_argument("--mode", choices=("static", "dynamic"), default="static")
    p.add_argument("--split", default=str(DEFAULT_SPLIT), help="subject split JSON (train/val/test)")
    p.add_argument("--calib-images", type=positive_int, default=1000, help="class-balanced training-subject images")
    p.add_argument("--calib-method", choices=("auto", *CALIB_METHODS), default="auto",
                   help="auto = the one closest to fp32 on validation subjects")
    p.add_argument("--activations", choices=ACTIVATION_TYPES, default="uint8")
    p.add_argument("--max-val", type=non_negative_int, default=2000, help="validation images ranking the calibrations "
                   "(class-balanced sample; 0 = all)")
    p.add_argument("--max-test", type=non_negative_int, default=0, help="cap the test images (class-balanced; 0 = all)")
    p.add_argument("--force", action="store_true", help=f"write even if accuracy drops > {MAX_DROP_POINTS} pt")
    p.add_argument("--report", type=output_file, default=None, help="write the comparison as JSON here")
    args = p.parse_args(argv)
    refuse_overwriting(p, [args.model, args.calib, args.split], out=args.out, report=args.report)

    if not Path(args.model).is_file():
        print(f"error: model {args.model} not found", file=sys.stderr)
        return 2
    try:
        if Path(args.model).suffix.lower() != ".onnx":
            raise ValueError(f"{args.model}: expected the .onnx model written by pipeline.export")
        try:
            spec = spec_from_onnx(args.model)
        except ValueError:
            raise
        except Exception as error:  # not ONNX at all
            raise ValueError(f"{args.model} is not a readable ONNX model ({type(error).__name__})") from None
        check_fp32_model(args.model)
        sets = load_eval_sets(args.calib, spec.size, args.split, args.calib_images, args.max_val or None,
                              args.max_test or None)
        report = quantize(args.model, args.out, sets, mode=args.mode, method=args.calib_method,
                          activations=args.activations, force=args.force)
    except (QuantizeError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if args.report:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(json.dumps(report, indent=2, default=float) + "\n")
    print(f"wrote {report['path']} ({report['size_bytes'] / 1024:.1f} KB, fp32 "
          f"{report['fp32_size_bytes'] / 1024:.1f} KB, sha256 {sha256_file(report['path'])})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
