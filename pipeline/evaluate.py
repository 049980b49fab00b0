"""Evaluate a `.pth` checkpoint or an `.onnx` model on MRL test subjects or an open/closed folder.

    python -m pipeline.evaluate --weights models/eye_state.pth --data ../shared/data/mrl/mrlEyes_2018_01_dev.zip \
        --batch-size 64 --json runs/eval.json

On MRL data the split's test subjects are used by default (`--part all|train|val|test`), together with any subject
the split does not name (people never trained on, such as MRL's subjects held back from the dev zip); on open/closed
folders all images. "closed" is the positive class of precision/recall (what blinks are made of). The JSON gets a
confusion-matrix PNG beside it (`<json stem>_confusion.png`).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from pipeline.cli import output_file, positive_int
from pipeline.data import DEFAULT_MRL_ZIP, EyeData, load_any, subject_name
from pipeline.metrics import classification_metrics, softmax_p_open
from pipeline.preprocess import CLASSES, DEFAULT_SPEC, PreprocessSpec, gray_to_input, spec_from_dict
from pipeline.split import DEFAULT_SPLIT, SplitError, load_split, part_mask, unlisted_subjects, with_fold

PredictFn = Callable[[np.ndarray], np.ndarray]  # float32 [B,1,S,S] normalised -> logits [B,2]
ONNX_PREPROCESS_KEY = "eyestate.preprocess"


def predict_p_open(predict_fn: PredictFn, images: np.ndarray, spec: PreprocessSpec = DEFAULT_SPEC,
                   batch_size: int = 64) -> np.ndarray:
    """uint8 gray [N,S,S] -> p_open [N] (images of another size are resized with INTER_AREA first)."""
    if images.shape[-1] != spec.size or images.shape[-2] != spec.size:
        images = np.stack([cv2.resize(im, (spec.size, spec.size), interpolation=cv2.INTER_AREA) for im in images])
    out = [softmax_p_open(predict_fn(gray_to_input(images[i:i + batch_size], spec)))
           for i in range(0, len(images), batch_size)]
    return np.concatenate(out) if out else np.zeros(0)


def evaluate_arrays(predict_fn: PredictFn, data: EyeData, spec: PreprocessSpec = DEFAULT_SPEC,
                    batch_size: int = 64) -> dict:
    """Metrics dict (see pipeline.metrics.classification_metrics) of `predict_fn` on in-memory `data`."""
    p_open = predict_p_open(predict_fn, data.images, spec, batch_size)
    return classification_metrics(data.labels, p_open, data.meta)


def torch_predictor(model, device="cpu") -> PredictFn:
    import torch

    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"--device {device}: this torch sees no CUDA GPU; use --device cpu")
    model = model.to(device).eval()

    def predict(x: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model(torch.from_numpy(x).to(device)).float().cpu().numpy()

    return predict


def onnx_predictor(path) -> tuple[PredictFn, PreprocessSpec, dict]:
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as error:  # not ONNX at all, or a broken file
        raise ValueError(f"{path} is not a readable ONNX model ({type(error).__name__}: {str(error)[:200]})") from None
    from pipeline.export import check_gray_input

    check_gray_input(path, "evaluate models/eye_state.onnx (or the .int8.onnx)")
    meta = session.get_modelmeta().custom_metadata_map
    if ONNX_PREPROCESS_KEY not in meta:
        raise ValueError(f"{path} has no '{ONNX_PREPROCESS_KEY}' metadata; export it with pipeline.export "
                         "(see docs/DESIGN.md) so the preprocessing is known")
    spec = PreprocessSpec.from_json(meta[ONNX_PREPROCESS_KEY])
    inp = session.get_inputs()[0]
    fixed_batch = inp.shape[0] if isinstance(inp.shape[0], int) else None

    def predict(x: np.ndarray) -> np.ndarray:
        if not fixed_batch:
            return session.run(None, {inp.name: x})[0]
        outs = []
        for i in range(0, len(x), fixed_batch):  # models exported with a fixed batch run in chunks, last one padded
            chunk = x[i:i + fixed_batch]
            pad = fixed_batch - len(chunk)
            if pad:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], pad, 0)])
            outs.append(session.run(None, {inp.name: chunk})[0][: fixed_batch - pad])
        return np.concatenate(outs)

    info = {"model": meta.get("eyestate.model"), "classes": json.loads(meta.get("eyestate.classes", json.dumps(CLASSES)))}
    return predict, spec, info


def load_predictor(weights, device="cpu") -> tuple[PredictFn, PreprocessSpec, dict]:
    """`.pth` checkpoint or `.onnx` model -> (predict_fn, preprocessing spec, info)."""
    path = Path(weights)
    if path.is_dir():
        raise ValueError(f"--weights {path} is a folder; expected a .pth checkpoint or an .onnx model file "
                         "(e.g. models/eye_state.pth)")
    if not path.is_file():
        raise FileNotFoundError(f"--weights {path} not found (expected a .pth checkpoint or an .onnx model)")
    if path.suffix.lower() == ".onnx":
        return onnx_predictor(path)
    if path.suffix.lower() not in (".pth", ".pt"):
        raise ValueError(f"--weights {path}: expected a .pth checkpoint or an .onnx model")
    from pipeline.models import load_checkpoint

    model, ckpt = load_checkpoint(path)
    info = {"model": ckpt["model"], "classes": ckpt.get("classes", list(CLASSES)), "epoch": ckpt.get("epoch"),
            "split_file": (ckpt.get("split") or {}).get("file")}
    return torch_predictor(model, device), spec_from_dict(ckpt.get("preprocess")), info


def select_part(data: EyeData, split_path, part: str | None,
                fold: int | None = None) -> tuple[EyeData, str, dict | None]:
    """MRL: the split's part (default test: its test subjects and any subject it does not name); folder data: all
    images unless an image split file is given. `fold`: train / val of the split's k-fold entry (as pipeline.train)."""
    split_file = Path(split_path) if split_path else None
    if data.kind == "mrl":
        part = part or "test"
        if part == "all":
            return data, part, None
        try:
            split = with_fold(load_split(split_file or DEFAULT_SPLIT), fold)
        except SplitError as error:
            raise SystemExit(str(error)) from None
    else:
        if split_file is None or part in (None, "all"):
            return data, "all", None
        split = load_split(split_file)
    sub = data.subset(part_mask(data, split, part))
    if len(sub) == 0:
        raise SystemExit(f"no images of part {part!r} of {split_file or DEFAULT_SPLIT} in {data.source}")
    unseen = unlisted_subjects(data, split) if part == "test" else []
    if unseen:
        print(f"{len(unseen)} subject(s) not in {(split_file or DEFAULT_SPLIT).name} count as test subjects (never "
              f"trained on or used for a choice): {', '.join(subject_name(s) for s in unseen)}")
    return sub, part, split


def save_confusion_png(confusion, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(3.8, 3.4))
    ConfusionMatrixDisplay(np.asarray(confusion), display_labels=list(CLASSES)).plot(ax=ax, colorbar=False, values_format="d")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def format_report(m: dict) -> str:
    lines = [f"n {m['n']}  accuracy {m['accuracy']:.4f}  macro-F1 {m['macro_f1']:.4f}  "
             f"precision {m['precision']:.4f}  recall {m['recall']:.4f} (positive class: closed)  "
             f"ROC-AUC {m['roc_auc'] if m['roc_auc'] is None else round(m['roc_auc'], 4)}  ECE {m['ece']:.4f}",
             f"confusion (rows true closed/open, columns predicted): {m['confusion']}"]
    if m.get("per_subject_summary"):
        s = m["per_subject_summary"]
        lines.append(f"per subject accuracy: min {s['min']:.4f} ({s['worst_subject']}), median {s['median']:.4f}, "
                     f"mean {s['mean']:.4f} (= balanced subject accuracy), max {s['max']:.4f}")
        lines += [f"  {k}: n {v['n']:5d}  acc {v['accuracy']:.4f}  macro-F1 {v['macro_f1']:.4f}"
                  for k, v in m["per_subject"].items()]
    for key, groups in m.get("subgroups", {}).items():
        lines.append(f"{key}: " + "; ".join(f"{g} n {v['n']} acc {v['accuracy']:.4f} F1 {v['macro_f1']:.4f}"
                                            for g, v in groups.items()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description="Evaluate a .pth or .onnx eye-state model.")
    ap.add_argument("--weights", required=True, help=".pth checkpoint (pipeline.train) or .onnx (pipeline.export)")
    ap.add_argument("--data", default=None, help=f"MRL zip/folder or open/closed folder/zip (default {DEFAULT_MRL_ZIP})")
    ap.add_argument("--batch-size", type=positive_int, default=64)
    ap.add_argument("--json", type=output_file, default=None,
                    help="write the metrics here (and a confusion-matrix PNG beside it)")
    ap.add_argument("--split", default=None, help=f"split JSON (default {DEFAULT_SPLIT} for MRL data)")
    ap.add_argument("--part", default=None, choices=["all", "train", "val", "test"],
                    help="MRL default: test; folder data default: all")
    ap.add_argument("--fold", type=int, default=None,
                    help="MRL: train/val are the split's k-fold entry i (as pipeline.train --fold); with --part val "
                         "this scores a fold run on the people it held out")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    try:
        predict_fn, spec, info = load_predictor(args.weights, args.device)
        data = load_any(args.data, spec.size, workers=args.workers, cache=not args.no_cache)
        split_file = args.split
        if data.kind != "mrl" and args.part not in (None, "all") and split_file is None:
            if not info.get("split_file"):
                raise ValueError(f"--part {args.part} on folder data needs the image split pipeline.train used "
                                 "(--split FILE); the checkpoint records none")
            split_file = info["split_file"]
            print(f"--part {args.part}: the split {split_file} recorded in {args.weights}")
        data, part, split = select_part(data, split_file, args.part, args.fold)
        metrics = evaluate_arrays(predict_fn, data, spec, args.batch_size)
    except (ValueError, OSError, RuntimeError) as error:  # bad model, data or split file: say which and why
        raise SystemExit(f"error: {error}") from None
    subjects = [subject_name(s) for s in np.unique(data.subjects)] if data.kind == "mrl" else None
    report = data.report
    skipped = {"corrupt": report.corrupt, "conflicting_duplicates": report.conflicting_duplicates,  # files in the
               "not_mrl_names": report.unparsed, "no_label_folder": report.unlabelled}  # data not in n, and why
    result = {**metrics, "skipped": skipped, "weights": str(args.weights), "model": info.get("model"),
              "data": data.source, "part": part,
              "subjects": subjects,
              "preprocess": {"size": spec.size, "mean": spec.mean, "std": spec.std, "gray": spec.gray}}
    print(f"{info.get('model')} from {args.weights} on {data.source} (part {part}):")
    print(format_report(result))
    present = sorted(set(np.asarray(data.labels).tolist()))
    if len(present) == 1:
        only, missing = ("open", "closed") if present == [1] else ("closed", "open")
        print(f"note: all {len(data)} images are {only}: the scores of '{missing}' (precision, recall, F1) and "
              f"ROC-AUC say nothing here; accuracy is the share called {only}")
    if args.json:
        out = Path(args.json)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, indent=1) + "\n")
        png = out.with_name(out.stem + "_confusion.png")
        save_confusion_png(metrics["confusion"], png, f"{info.get('model')} — {Path(data.source).name} ({part})")
        print(f"wrote {out} and {png}")
    return result


if __name__ == "__main__":
    main()
