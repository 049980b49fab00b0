"""Grad-CAM of a trained checkpoint on a sample of test images: a PNG grid, correct and wrong predictions apart.

    python -m pipeline.gradcam --weights models/eye_state.pth --data ../shared/data/mrl/mrlEyes_2018_01_dev.zip \
        --out docs/img/gradcam.png

The target layer is picked automatically: the last convolution whose output is still at least 3×3 at the model's
input size (timm models and baseline_cnn alike), so the heat map keeps some spatial detail.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pipeline.cli import output_file_of, positive_int
from pipeline.data import load_any
from pipeline.evaluate import predict_p_open, select_part, torch_predictor
from pipeline.models import load_checkpoint
from pipeline.preprocess import CLASSES, spec_from_dict, to_model_input


def find_target_layer(model: nn.Module, size: int, min_side: int = 3) -> tuple[str, nn.Module]:
    """Last Conv2d (in execution order) whose output is at least min_side×min_side (else the last with >1×1)."""
    seen: list[tuple[str, nn.Module, tuple]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out, name=name: seen.append((name, mod, tuple(out.shape[-2:]))))
             for name, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    was_training = model.training
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 1, size, size))
    model.train(was_training)
    for h in hooks:
        h.remove()
    for limit in (min_side, 2):
        usable = [(n, m) for n, m, hw in seen if min(hw) >= limit]
        if usable:
            return usable[-1]
    raise ValueError("the model has no convolution with a spatial output; Grad-CAM needs one")


def gradcam_maps(model: nn.Module, layer: nn.Module, images_u8: np.ndarray, classes: np.ndarray, spec) -> np.ndarray:
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = to_model_input(torch.from_numpy(images_u8), spec)
    with GradCAM(model=model, target_layers=[layer]) as cam:
        return cam(input_tensor=x, targets=[ClassifierOutputTarget(int(c)) for c in classes])


def _section(fig, images, maps, labels, p_open, title: str, cols: int) -> None:
    from pytorch_grad_cam.utils.image import show_cam_on_image

    rows = max(1, int(np.ceil(len(images) / cols)))
    axes = np.atleast_2d(fig.subplots(rows, cols, squeeze=False))
    fig.suptitle(title, fontsize=11)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, cam_map, y, p in zip(axes.flat, images, maps, labels, p_open):
        rgb = np.repeat(img[..., None].astype(np.float32) / 255, 3, axis=2)
        ax.imshow(show_cam_on_image(rgb, cam_map, use_rgb=True))
        pred = int(p >= 0.5)
        ax.set_title(f"true {CLASSES[y]}\npred {CLASSES[pred]} {max(p, 1 - p):.2f}", fontsize=7,
                     color="green" if pred == y else "red")


def main(argv: list[str] | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ap = argparse.ArgumentParser(description="Grad-CAM grid of a .pth checkpoint on test images.")
    ap.add_argument("--weights", required=True, help=".pth checkpoint written by pipeline.train")
    ap.add_argument("--data", default=None, help="MRL zip/folder (test subjects of --split) or open/closed folder")
    ap.add_argument("--split", default=None)
    ap.add_argument("--part", default=None, choices=["all", "train", "val", "test"])
    ap.add_argument("--out", type=output_file_of(".png", ".jpg", ".jpeg", ".pdf", ".svg"),
                    default="docs/img/gradcam.png")
    ap.add_argument("--n", type=positive_int, default=16, help="images per section (correct / wrong)")
    ap.add_argument("--cols", type=positive_int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if Path(args.weights).suffix == ".onnx":
        raise SystemExit("Grad-CAM needs gradients: pass the .pth checkpoint, not the .onnx export")

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        model, ckpt = load_checkpoint(args.weights)
        spec = spec_from_dict(ckpt.get("preprocess"))
        data, part, _ = select_part(load_any(args.data, spec.size), args.split, args.part)
    except (ValueError, OSError) as error:  # bad checkpoint, data or split: say which and why
        raise SystemExit(f"error: {error}") from None
    p_open = predict_p_open(torch_predictor(model), data.images, spec, batch_size=256)
    correct = (p_open >= 0.5).astype(int) == data.labels
    rng = np.random.default_rng(args.seed)
    name, layer = find_target_layer(model, spec.size)
    sections = []
    for label, mask in (("correct", correct), ("wrong", ~correct)):
        idx = np.flatnonzero(mask)
        idx = np.sort(rng.choice(idx, min(args.n, len(idx)), replace=False)) if len(idx) else idx
        maps = gradcam_maps(model, layer, data.images[idx], (p_open[idx] >= 0.5).astype(int), spec) if len(idx) else []
        sections.append((label, idx, maps, int(mask.sum())))

    rows = [max(1, int(np.ceil(len(idx) / args.cols))) for _, idx, _, _ in sections]
    fig = plt.figure(figsize=(1.4 * args.cols, 1.75 * sum(rows) + 0.8), layout="constrained")
    subfigs = fig.subfigures(len(sections), 1, height_ratios=rows)
    for sub, (label, idx, maps, total) in zip(subfigs, sections):
        title = (f"{label} predictions ({len(idx)} of {total} shown)" if len(idx) else f"no {label} predictions")
        _section(sub, data.images[idx], maps, data.labels[idx], p_open[idx], title, args.cols)
    fig.suptitle(f"Grad-CAM of the predicted class — {ckpt['model']} ({name}), {Path(data.source).name} {part}",
                 fontsize=10)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    print(f"wrote {out}: layer {name}; {int(correct.sum())} correct / {int((~correct).sum())} wrong of {len(correct)}")
    return out


if __name__ == "__main__":
    main()
