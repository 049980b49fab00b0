"""Export a checkpoint to a single-file ONNX model that carries its preprocessing contract.

    python -m pipeline.export --weights runs/x/best.pth --out models/eye_state.onnx [--with-cam]

The model gets input `input` [N,1,S,S] and output `logits` [N,2] (dynamic N); with `--with-cam` a second
output `cam` [N,h,w] (see `CamWrapper`). Torch and onnxruntime must agree on real eye images to 1e-4,
otherwise nothing is written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np

from pipeline.cli import output_file_of, positive_float, positive_int, refuse_overwriting
from pipeline.preprocess import CLASSES, PreprocessSpec, gray_to_input, spec_from_dict

INPUT_NAME = "input"
LOGITS_NAME = "logits"
CAM_NAME = "cam"
OPSET = 18
PARITY_TOLERANCE = 1e-4
DEFAULT_MRL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mrl" / "mrlEyes_2018_01_dev.zip"


class ParityError(RuntimeError):
    """onnxruntime and torch disagree more than the tolerance."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class CamWrapper:
    """Adds a class-activation map to a model whose head is global-average-pool + one linear layer.

    cam[n,y,x] = (w_open - w_closed) . F[n,:,y,x] + (b_open - b_closed), so the spatial mean of the map
    equals logit_open - logit_closed: positive cells push towards "open", negative towards
    "closed". Works for timm models whose `forward_head` is pool -> (dropout) -> linear (EfficientNet,
    EfficientNetV2, ResNet, RegNet, ...) and for any model exposing `forward_features` / `get_classifier`
    with that head. MobileNetV3 has a 1x1 conv + activation after the pooling, so it is refused.
    Whether the head really is GAP+linear is checked numerically, not by name.
    """

    @staticmethod
    def build(model):
        import torch

        if not (hasattr(model, "forward_features") and hasattr(model, "get_classifier")):
            raise ValueError(f"--with-cam needs a model with forward_features()/get_classifier(); "
                             f"{type(model).__name__} has neither")
        classifier = model.get_classifier()
        if not isinstance(classifier, torch.nn.Linear) or classifier.out_features != len(CLASSES):
            raise ValueError(f"--with-cam needs a Linear classifier with {len(CLASSES)} outputs, "
                             f"got {classifier!r}")

        class _Cam(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.model = model
                w = classifier.weight.detach()
                b = classifier.bias.detach() if classifier.bias is not None else torch.zeros(len(CLASSES))
                self.register_buffer("w_diff", (w[1] - w[0]).reshape(1, -1, 1, 1).clone())
                self.register_buffer("b_diff", (b[1] - b[0]).clone())

            def forward(self, x):
                feats = self.model.forward_features(x)
                logits = self.model.forward_head(feats)
                cam = (feats * self.w_diff).sum(dim=1) + self.b_diff
                return logits, cam

        return _Cam().eval()

    @staticmethod
    def check_head_is_linear(wrapper, x, tol=1e-4):
        """The CAM's mean must reproduce the logit difference, else the head is not GAP+linear."""
        import torch

        with torch.no_grad():
            channels = wrapper.model.forward_features(x).shape[1]
            if channels != wrapper.w_diff.shape[1]:
                raise ValueError(
                    f"--with-cam: the classifier takes {wrapper.w_diff.shape[1]} features but the last feature "
                    f"map has {channels} channels (a layer sits between pooling and classifier, as in "
                    f"MobileNetV3); CAM export is only defined for global-average-pool + linear heads")
            logits, cam = wrapper(x)
        diff = (logits[:, 1] - logits[:, 0]) - cam.mean(dim=(1, 2))
        err = float(diff.abs().max())
        if err > tol * max(1.0, float(logits.abs().max())):
            raise ValueError(
                f"--with-cam: the head of this model is not global-average-pool + linear (CAM mean differs "
                f"from the logit difference by {err:.3g}); CAM export is only defined for such heads")


def build_metadata(ckpt: dict, source_path: str | os.PathLike, with_cam: bool) -> dict:
    spec = spec_from_dict(ckpt.get("preprocess"))
    classes = list(ckpt.get("classes") or CLASSES)
    if classes != list(CLASSES):
        raise ValueError(f"checkpoint class order {classes} differs from the contract {list(CLASSES)}")
    s = spec.size
    outputs = {LOGITS_NAME: ["batch", len(CLASSES)]}
    if with_cam:
        outputs[CAM_NAME] = ["batch", "h", "w"]
    return {
        "preprocess": json.loads(spec.to_json()),
        "classes": classes,
        "model": ckpt.get("model", "unknown"),
        "source_sha256": sha256_file(source_path),
        "inputs": {INPUT_NAME: ["batch", spec.channels, s, s]},
        "outputs": outputs,
    }


def metadata_props(meta: dict) -> dict[str, str]:
    """The ONNX `metadata_props` form of the metadata (strings only)."""
    return {
        "eyestate.preprocess": json.dumps(meta["preprocess"], sort_keys=True),
        "eyestate.classes": json.dumps(meta["classes"]),
        "eyestate.model": str(meta["model"]),
        "eyestate.source_sha256": meta["source_sha256"],
        "eyestate.outputs": json.dumps(meta["outputs"]),
    }


def set_metadata(onnx_model, props: dict[str, str]) -> None:
    import onnx

    keep = [p for p in onnx_model.metadata_props if p.key not in props]
    del onnx_model.metadata_props[:]
    onnx_model.metadata_props.extend(keep)
    for k, v in props.items():
        onnx_model.metadata_props.append(onnx.StringStringEntryProto(key=k, value=v))


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    import onnx

    m = onnx.load(str(path), load_external_data=False)
    return {p.key: p.value for p in m.metadata_props}


def copy_metadata(src: str | os.PathLike, dst: str | os.PathLike, extra: dict[str, str] | None = None) -> None:
    """Re-attach `eyestate.*` metadata from src to dst (onnxruntime.quantization drops metadata_props)."""
    import onnx

    props = {k: v for k, v in read_metadata(src).items() if k.startswith("eyestate.")}
    props.update(extra or {})
    m = onnx.load(str(dst))
    set_metadata(m, props)
    onnx.save(m, str(dst))


def spec_from_onnx(path: str | os.PathLike) -> PreprocessSpec:
    props = read_metadata(path)
    if "eyestate.preprocess" not in props:
        raise ValueError(f"{path} has no eyestate.preprocess metadata; export it with pipeline.export")
    return PreprocessSpec.from_json(props["eyestate.preprocess"])


def check_gray_input(path: str | os.PathLike, advice: str = "give models/eye_state.onnx (or the .int8.onnx)") -> None:
    """Refuse the page's `*.rgba.onnx` (build.py's front end takes canvas RGBA bytes, uint8 [N,H,W,4]) where the
    pipeline's gray float input [N,1,S,S] is expected."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    weights = {t.name for t in graph.initializer}
    inputs = [i for i in graph.input if i.name not in weights]
    if inputs and inputs[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8:
        raise ValueError(f"{path} is the page's RGBA build (uint8 RGBA input, made by build.py for the browser); "
                         f"{advice} instead")


def parity_images(size: int, n: int = 300, data_path: str | os.PathLike | None = None, seed: int = 0):
    """A few hundred real eye crops [n,S,S] uint8 (any subjects); random pixels with a warning if absent."""
    if data_path and not Path(data_path).exists():
        raise ValueError(f"parity data {data_path} does not exist (expected MRL images or an open/closed folder)")
    path = Path(data_path) if data_path else DEFAULT_MRL
    if path.exists():
        from pipeline.data import load_any

        data = load_any(str(path), size, max_images=n, seed=seed)
        return data.images[:n], "real"
    warnings.warn(f"parity check on RANDOM pixels: real eye images not found at {path}")
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, size, size), dtype=np.uint8), "random"


def onnx_session(path: str | os.PathLike, threads: int = 1):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def max_abs_difference(torch_module, onnx_path, x: np.ndarray, batch: int = 64) -> tuple[float, float]:
    """(max |onnxruntime - torch| over all outputs, max |torch logit|)."""
    import torch

    sess = onnx_session(onnx_path, threads=2)
    worst, scale = 0.0, 0.0
    for i in range(0, len(x), batch):
        xb = x[i:i + batch]
        with torch.no_grad():
            ref = torch_module(torch.from_numpy(xb))
        refs = ref if isinstance(ref, tuple) else (ref,)
        got = sess.run(None, {INPUT_NAME: xb})
        scale = max(scale, float(refs[0].abs().max()))
        for r, g in zip(refs, got):
            worst = max(worst, float(np.abs(r.numpy() - g).max()))
    return worst, scale


def export_model(model, ckpt: dict, source_path, out_path, *, with_cam: bool = False,
                 images: np.ndarray | None = None, images_kind: str = "given",
                 tolerance: float = PARITY_TOLERANCE, relative: bool = False,
                 dynamo: bool = False, verbose: bool = True) -> dict:
    """Export `model` to `out_path` (+ JSON beside it); return the metadata plus `max_abs_diff`.

    The ONNX goes to a temporary file first and is moved into place only after the parity check passed.
    """
    import onnx
    import torch

    model = model.eval()
    meta = build_metadata(ckpt, source_path, with_cam)
    spec = spec_from_dict(meta["preprocess"])
    kind = images_kind
    if images is None:
        images, kind = parity_images(spec.size)
    x = gray_to_input(images, spec)
    module = model
    if with_cam:
        module = CamWrapper.build(model)
        CamWrapper.check_head_is_linear(module, torch.from_numpy(x[:8]))
    out_names = [LOGITS_NAME, CAM_NAME] if with_cam else [LOGITS_NAME]
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".onnx", dir=out_path.parent, prefix=f".{out_path.stem}.")
    os.close(fd)
    try:
        sample = torch.from_numpy(x[:2])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, UserWarning, torch.jit.TracerWarning))
            if dynamo:
                torch.onnx.export(module, (sample,), tmp, input_names=[INPUT_NAME], output_names=out_names,
                                  opset_version=OPSET, dynamo=True, external_data=False,
                                  dynamic_shapes=({0: torch.export.Dim("batch")},), verbose=False)
            else:
                axes = {name: {0: "batch"} for name in [INPUT_NAME, *out_names]}
                torch.onnx.export(module, (sample,), tmp, input_names=[INPUT_NAME], output_names=out_names,
                                  opset_version=OPSET, dynamo=False, dynamic_axes=axes)
        m = onnx.load(tmp)
        set_metadata(m, metadata_props(meta))
        onnx.checker.check_model(m)
        onnx.save(m, tmp)  # one file: the model is far below the 2 GB protobuf limit
        diff, scale = max_abs_difference(module, tmp, x)
        limit = tolerance * max(1.0, scale) if relative else tolerance
        if verbose:
            print(f"parity onnxruntime vs torch on {len(x)} {kind} images: max |diff| = {diff:.3g} "
                  f"(largest |logit| {scale:.3g}, limit {limit:.3g})")
        if not diff <= limit:
            hint = (" (float32 rounding alone reaches ~1e-7 x |logit|: see --relative-tolerance)"
                    if scale > 100 and not relative else "")
            raise ParityError(f"onnxruntime and torch differ by {diff:.3g} > {limit:.3g}{hint}; nothing written")
        os.chmod(tmp, 0o644)  # mkstemp makes owner-only files
        os.replace(tmp, out_path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    json_path = out_path.with_suffix(".json")
    json_path.write_text(json.dumps(meta, indent=2) + "\n")
    return {**meta, "max_abs_diff": diff, "max_abs_logit": scale, "parity_limit": limit, "parity_images": kind,
            "path": str(out_path), "json": str(json_path)}


def export_checkpoint(weights, out_path, **kwargs) -> dict:
    from pipeline.models import load_checkpoint

    model, ckpt = load_checkpoint(str(weights))
    return export_model(model, ckpt, weights, out_path, **kwargs)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--weights", required=True, help="checkpoint .pth (docs/DESIGN.md format)")
    p.add_argument("--out", type=output_file_of(".onnx"), default="models/eye_state.onnx")
    p.add_argument("--with-cam", action="store_true", help="add output 'cam' (GAP+linear heads only)")
    p.add_argument("--parity-data", default=None, help=f"real eye images for the parity check (default {DEFAULT_MRL})")
    p.add_argument("--parity-images", type=positive_int, default=300, help="real eye images compared (at least 1)")
    p.add_argument("--tolerance", type=positive_float, default=PARITY_TOLERANCE,
                   help="max |onnxruntime - torch| allowed")
    p.add_argument("--relative-tolerance", action="store_true",
                   help="scale the tolerance by max(1, largest |logit|), for models with very large logits")
    p.add_argument("--dynamo", action="store_true", help="use the torch.export-based exporter")
    args = p.parse_args(argv)
    refuse_overwriting(p, [args.weights], out=args.out)

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    if not Path(args.weights).is_file():
        what = "is a folder; expected a .pth file in it, e.g. best.pth" if Path(args.weights).is_dir() else "not found"
        print(f"error: checkpoint {args.weights} {what}", file=sys.stderr)
        return 2
    from pipeline.models import load_checkpoint

    try:
        try:
            model, ckpt = load_checkpoint(args.weights)
        except (ValueError, OSError) as e:
            raise ValueError(str(e)) from None
        except Exception as e:  # unpickling errors of files that are no torch checkpoint at all
            raise ValueError(f"{args.weights} is not a readable torch checkpoint ({type(e).__name__}: {e})") from None
        spec = spec_from_dict(ckpt.get("preprocess"))
        images, kind = parity_images(spec.size, args.parity_images, args.parity_data)
        info = export_model(model, ckpt, args.weights, args.out, with_cam=args.with_cam,
                            images=images, images_kind=kind, tolerance=args.tolerance,
                            relative=args.relative_tolerance, dynamo=args.dynamo)
    except (ParityError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    size = os.path.getsize(info["path"])
    print(f"wrote {info['path']} ({size / 1024:.1f} KB, {info['model']}, sha256 {sha256_file(info['path'])}) "
          f"and {info['json']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
