"""Model factory: any timm model by name (1-channel input adapted by timm) plus the seed's small `baseline_cnn`.

ImageNet weights (`pretrained=True`) come only from a local file (`pretrained_path`) or the local Hugging Face / timm
cache: there is no network here, and a missing file fails with a message that says where to put it.

    python -m pipeline.models --list mobilenetv3_small_050 lcnet_050 resnet10t baseline_cnn
"""
from __future__ import annotations

import argparse
import os
import pickle
from pathlib import Path

import torch
from torch import nn

from pipeline.preprocess import CLASSES, DEFAULT_SPEC, spec_from_dict

BASELINE = "baseline_cnn"
# VGG-style twins of the baseline with two convs per block. Plain 3x3 convs at full resolution kept more of the small
# eye image than the early-striding depthwise timm nets (val subjects and webcam replay, docs/BENCHMARKS.md);
# `eyecnn` halves the widths so two eyes per frame fit the page's budget, `eyecnn_wide` is the 0.58 M variant.
EYECNN = "eyecnn"
EYECNN_WIDE = "eyecnn_wide"
# eyecnn that first standardizes each crop (zero mean, unit variance; InstanceNorm without parameters): exposure
# and contrast of a webcam crop then matter less. The shipped model (docs/BENCHMARKS.md, "Later recipe experiments").
EYECNN_STD = "eyecnn_std"
# eyecnn_std whose standardization is robust to bright blobs: infrared glints on glasses are saturated blobs that
# inflate a crop's variance, so plain standardization flattens the eye behind them. It standardizes, caps the
# brightest pixels at GLINT_CAP standard deviations, and standardizes again.
EYECNN_RSTD = "eyecnn_rstd"
GLINT_CAP = 2.0


class RobustStandardize(nn.Module):
    """Zero mean, unit variance per crop, computed with the brightest pixels capped (no parameters)."""

    def __init__(self, in_chans: int = 1, cap: float = GLINT_CAP):
        super().__init__()
        self.norm = nn.InstanceNorm2d(in_chans, eps=1e-3)
        self.cap = cap

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(torch.clamp(self.norm(x), max=self.cap))


class PretrainedWeightsMissing(RuntimeError):
    pass


class BaselineCNN(nn.Module):
    """The seed's small CNN: a few conv-bn-relu-maxpool blocks, global average pool, dropout, linear (~0.24 M params)."""

    def __init__(self, num_classes: int = 2, in_chans: int = 1, widths=(32, 64, 128, 128), drop: float = 0.2,
                 convs_per_block: int = 1, standardize_input: str | None = None):
        super().__init__()
        if standardize_input not in (None, "plain", "robust"):
            raise ValueError(f"standardize_input: expected None, 'plain' or 'robust', got {standardize_input!r}")
        blocks, c = [], in_chans
        if standardize_input == "plain":
            blocks.append(nn.InstanceNorm2d(in_chans, eps=1e-3))
        elif standardize_input == "robust":
            blocks.append(RobustStandardize(in_chans))
        for w in widths:
            for _ in range(convs_per_block):
                blocks += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True)]
                c = w
            blocks.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(drop), nn.Linear(c, num_classes))
        self.num_classes = num_classes

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))

    def get_classifier(self) -> nn.Module:
        return self.head[-1]


def check_model_name(name: str) -> None:
    """ValueError (saying what is known) unless `name` is one of this package's CNNs or a timm model."""
    if name in (BASELINE, EYECNN, EYECNN_WIDE, EYECNN_STD, EYECNN_RSTD):
        return
    import timm

    if not timm.is_model(name):
        close = timm.list_models(f"*{name.split('_')[0]}*")[:10]
        raise ValueError(f"unknown model {name!r}: expected {BASELINE}, {EYECNN}, {EYECNN_STD} or a timm model name"
                         + (f" (similar: {', '.join(close)})" if close else ""))


def create_model(name: str, num_classes: int = 2, in_chans: int = 1, pretrained: bool = False,
                 pretrained_path: str | os.PathLike | None = None, **kwargs) -> nn.Module:
    if name == BASELINE:
        if pretrained:
            raise PretrainedWeightsMissing(f"{BASELINE} has no pretrained weights; drop --pretrained")
        return BaselineCNN(num_classes, in_chans)
    if name in (EYECNN, EYECNN_WIDE, EYECNN_STD, EYECNN_RSTD):
        if pretrained:
            raise PretrainedWeightsMissing(f"{name} has no pretrained weights; drop --pretrained")
        widths = (32, 64, 128, 128) if name == EYECNN_WIDE else (16, 32, 64, 128)
        standardize = {EYECNN_STD: "plain", EYECNN_RSTD: "robust"}.get(name)
        return BaselineCNN(num_classes, in_chans, widths=widths, convs_per_block=2, standardize_input=standardize)
    check_model_name(name)
    import timm

    if not pretrained:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, in_chans=in_chans, **kwargs)
    if pretrained_path is not None:
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise PretrainedWeightsMissing(f"--pretrained-path {path} is not a file; {_where_to_put(name)}")
        overlay = {"file": str(path)}
        import torch

        def build(pretrained: bool):
            # the same random start with and without the file; the CPU generator only (timm builds on the CPU),
            # restored by fork_rng below: torch.manual_seed would also reseed a GPU the caller seeded
            torch.random.default_generator.manual_seed(2718)
            return timm.create_model(name, pretrained=pretrained, num_classes=num_classes, in_chans=in_chans,
                                     **({"pretrained_cfg_overlay": overlay} if pretrained else {}), **kwargs)

        with torch.random.fork_rng(devices=[]):  # the caller's random state is left as it was
            try:
                model = build(True)
            except Exception as exc:
                raise PretrainedWeightsMissing(f"--pretrained-path {path} could not be loaded into {name} "
                                               f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
            _check_pretrained_file(model, path, name, lambda: build(False))
        return model
    from huggingface_hub import constants as hf_constants

    offline = hf_constants.HF_HUB_OFFLINE
    hf_constants.HF_HUB_OFFLINE = True  # never reach for the network: the local cache or nothing
    try:
        return timm.create_model(name, pretrained=True, num_classes=num_classes, in_chans=in_chans, **kwargs)
    except Exception as exc:
        reason = str(exc).splitlines()[0][:200]
        raise PretrainedWeightsMissing(f"no local ImageNet weights for {name} ({type(exc).__name__}: {reason}); "
                                       f"{_where_to_put(name)}") from None
    finally:
        hf_constants.HF_HUB_OFFLINE = offline


def _check_pretrained_file(model, path: Path, name: str, build, share: float = 0.8) -> None:
    """timm loads a weights file non-strictly (the classifier and an adapted first layer differ), so a file of another
    model would load almost nothing and train from scratch unnoticed. `build()` makes the same model without the
    file from the same seed as `model`: most of its tensors must differ from `model`'s, i.e. have been loaded
    (this follows timm's own key remapping of original-format files)."""
    import torch

    fresh = build().state_dict()
    tensors = [k for k in fresh if not k.endswith("num_batches_tracked")]
    loaded = model.state_dict()
    changed = sum(1 for k in tensors if not torch.equal(fresh[k], loaded[k]))
    if changed < share * len(tensors):
        raise PretrainedWeightsMissing(f"--pretrained-path {path} holds weights of another model: only {changed} of "
                                       f"{name}'s {len(tensors)} tensors were loaded from it; {_where_to_put(name)}")


def _where_to_put(name: str) -> str:
    import timm

    if not timm.list_models(name, pretrained=True):
        alternatives = [n.split(".")[0] for n in timm.list_models(f"*{name}*", pretrained=True)][:5]
        return (f"timm publishes no ImageNet weights for {name!r}"
                + (f" (names with weights: {', '.join(dict.fromkeys(alternatives))})" if alternatives else "")
                + "; pass a weights file with timm's key names as --pretrained-path FILE, or train without --pretrained")
    cfg = timm.models.get_pretrained_cfg(name)
    hub = getattr(cfg, "hf_hub_id", None) if cfg else None
    hf_home = os.environ.get("HF_HOME", str(Path.home() / ".cache" / "huggingface"))
    where = (f"download the weights on a machine with internet (e.g. `huggingface-cli download {hub}`) and copy "
             f"the cache into {hf_home}/hub, or " if hub else "")
    return (f"{where}pass the weights file (.safetensors/.pth/.bin with timm's key names) as --pretrained-path FILE, "
            "or train without --pretrained")


def check_pretrained_available(name: str, pretrained_path=None) -> None:
    """Fail early (before loading data) when --pretrained cannot be honoured."""
    create_model(name, num_classes=2, in_chans=1, pretrained=True, pretrained_path=pretrained_path)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def make_checkpoint(model: nn.Module, name: str, *, preprocess: dict | None = None, **extra) -> dict:
    """The checkpoint dict of docs/DESIGN.md (extra keys, e.g. optimizer state, are allowed)."""
    ckpt = {
        "model": name,
        "num_classes": int(getattr(model, "num_classes", 2)),
        "in_chans": 1,
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "preprocess": preprocess or {k: getattr(DEFAULT_SPEC, k) for k in ("size", "channels", "mean", "std", "gray")},
        "classes": list(CLASSES),
    }
    ckpt.update(extra)
    return ckpt


def read_torch_file(path, map_location="cpu"):
    """torch.load without running code from the file: only tensors, plain Python data and numpy arrays (the numpy
    random state in last.pth) are read. A file that holds any other object fails instead of being unpickled."""
    import numpy as np

    numeric = np.typecodes["AllInteger"] + np.typecodes["AllFloat"] + "?"
    numpy_array = [np._core.multiarray._reconstruct, np.ndarray, np.dtype, *{type(np.dtype(c)) for c in numeric}]
    try:
        with torch.serialization.safe_globals(numpy_array):
            return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:
        unsafe = _unsafe_objects(path) if isinstance(error, pickle.UnpicklingError) else []
        if unsafe:
            raise ValueError(f"{path} holds Python objects other than tensors and plain data ({', '.join(unsafe)}); "
                             "pipeline checkpoints never do, and loading it could run code from the file, so it is "
                             "not loaded") from None
        if _is_onnx(path):
            raise ValueError(f"{path} is an ONNX model, not a torch checkpoint; give it a .onnx name where an ONNX "
                             "model is taken, or the .pth written by pipeline.train") from None
        # torch's own text advises weights_only=False, i.e. running the file's code: not shown
        first = "" if isinstance(error, pickle.UnpicklingError) else str(error).strip()[:200].partition("\n")[0]
        raise ValueError(f"{path} is not a readable torch checkpoint ({type(error).__name__}"
                         f"{': ' + first if first else ''}); expected a .pth written by pipeline.train") from None


def _is_onnx(path) -> bool:
    try:
        import onnx

        return len(onnx.load(str(path), load_external_data=False).graph.node) > 0
    except Exception:  # not ONNX either
        return False


def _unsafe_objects(path) -> list:
    """The names of the objects a torch file holds beyond plain data, [] where it is no torch file at all."""
    try:
        return torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:
        return []


def load_checkpoint(path, map_location="cpu") -> tuple[nn.Module, dict]:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found (expected a .pth written by pipeline.train)")
    ckpt = read_torch_file(path, map_location)
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "model" not in ckpt:
        raise ValueError(f"{path} is not a pipeline checkpoint: expected a dict with 'model' and 'state_dict' "
                         "(see docs/DESIGN.md)")
    try:
        spec_from_dict(ckpt.get("preprocess"))
    except ValueError as error:
        raise ValueError(f"checkpoint {path}: {error}") from None
    model = create_model(ckpt["model"], num_classes=ckpt.get("num_classes", 2), in_chans=ckpt.get("in_chans", 1))
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as error:  # e.g. a file edited by hand: keys or shapes of another model
        first = str(error).splitlines()[0][:200]
        raise ValueError(f"{path}: its weights do not fit a {ckpt['model']} ({first})") from None
    model.eval()
    return model, ckpt


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Print parameter counts and output shapes of candidate models.")
    ap.add_argument("--list", nargs="+", default=["mobilenetv3_small_050", "lcnet_050", "resnet10t", BASELINE])
    ap.add_argument("--img-size", type=int, default=48)
    args = ap.parse_args(argv)
    for name in args.list:
        model = create_model(name).eval()
        with torch.no_grad():
            out = model(torch.zeros(2, 1, args.img_size, args.img_size))
        print(f"{name:28s} {count_parameters(model) / 1e6:6.3f} M params, output {tuple(out.shape)}")


if __name__ == "__main__":
    main()
