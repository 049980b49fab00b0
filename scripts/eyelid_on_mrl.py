"""Could the eyelid model close the classifier's glasses gap on MRL? MediaPipe's iris model (the page's second opinion)
reads the eyelid opening on MRL's infrared crops; compared with the fold models' held-out p_open, alone and fused.

    python scripts/eyelid_on_mrl.py --recipe runs/folds/C [--per-fold 3000] [--pad 1.0 1.4 1.8]

Held-out people only: each fold model (`last.pth`) on a sample of the people its fold held out (the 24 train +
validation subjects of splits/mrl_split.json; the test subjects are not loaded). `--pad` widens each crop by edge
replication before the iris model sees it (it expects the eye in a 2.3x box, MRL crops are tighter). The fusion is a
logistic regression on (classifier log-odds, eyelid opening), fitted on the other folds' people.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "site"))
from eyecore.landmarks import EYE_CONTOUR_POINTS, IRIS_INPUT_SIZE, iris_lid_opening  # noqa: E402
from pipeline.data import default_data_path, load_mrl  # noqa: E402
from pipeline.evaluate import load_predictor, predict_p_open  # noqa: E402
from pipeline.face_models import ensure_face_models  # noqa: E402
from pipeline.split import DEFAULT_SPLIT, load_split, part_mask, with_fold  # noqa: E402


def eyelid_openings(session, gray64: np.ndarray, pad: float) -> np.ndarray:
    """Iris-model eyelid opening (gap / corner distance) of each 64x64 gray crop, widened by `pad`."""
    border = int(round(IRIS_INPUT_SIZE * (pad - 1) / 2))
    crops = []
    for g in gray64:
        if border > 0:
            g = cv2.resize(cv2.copyMakeBorder(g, *[border] * 4, cv2.BORDER_REPLICATE),
                           (IRIS_INPUT_SIZE, IRIS_INPUT_SIZE), interpolation=cv2.INTER_AREA)
        crops.append(np.repeat(g[..., None], 3, -1).astype(np.float32) / 255)
    crops = np.stack(crops)
    out = []
    for start in range(0, len(crops), 256):
        contours = session.run(["eye_contour"], {"input": crops[start:start + 256]})[0]
        out += [iris_lid_opening([tuple(p) for p in c.reshape(-1, 3)[:EYE_CONTOUR_POINTS]]) for c in contours]
    return np.asarray(out)


def accuracy_by_glasses(correct: np.ndarray, glasses: np.ndarray) -> str:
    return f"{correct.mean():.4f} (glasses {correct[glasses == 1].mean():.4f}, none {correct[glasses == 0].mean():.4f})"


def main(argv=None) -> int:
    import onnxruntime as ort
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--recipe", type=Path, required=True, help="folder with fold0 ... fold4 (pipeline.train --fold K)")
    ap.add_argument("--data", type=Path, default=None, help="MRL zip or folder (default: ../shared's dev zip)")
    ap.add_argument("--per-fold", type=int, default=3000, help="held-out images sampled per fold")
    ap.add_argument("--pad", type=float, nargs="+", default=[1.0, 1.4, 1.8])
    args = ap.parse_args(argv)

    data = load_mrl(args.data or default_data_path(), 64)
    split = load_split(DEFAULT_SPLIT)
    iris = ort.InferenceSession(str(ensure_face_models(ROOT / ".cache" / "face_models")["iris_landmark"]),
                                providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(0)
    folds = sorted(p for p in args.recipe.glob("fold*") if (p / "last.pth").exists())
    if not folds:
        raise SystemExit(f"{args.recipe}: no fold*/last.pth (train with `python -m pipeline.train --fold K`)")
    rows = []
    for run in folds:
        fold = int(run.name.removeprefix("fold"))
        idx = np.flatnonzero(part_mask(data, with_fold(split, fold), "val"))
        idx = np.sort(rng.permutation(idx)[:args.per_fold])
        predict, spec, _ = load_predictor(run / "last.pth")
        gray48 = np.stack([cv2.resize(data.images[i], (spec.size, spec.size), interpolation=cv2.INTER_AREA)
                           for i in idx])
        p_open = np.clip(predict_p_open(predict, gray48, spec), 1e-6, 1 - 1e-6)
        lids = {pad: eyelid_openings(iris, data.images[idx], pad) for pad in args.pad}
        rows.append({"fold": fold, "y": data.labels[idx], "glasses": data.meta["glasses"][idx],
                     "logit": np.log(p_open / (1 - p_open)), "lids": lids})
        print(f"fold {fold}: {len(idx)} held-out images", flush=True)

    y = np.concatenate([r["y"] for r in rows])
    glasses = np.concatenate([r["glasses"] for r in rows])
    logit = np.concatenate([r["logit"] for r in rows])
    print(f"\nclassifier alone: AUC {roc_auc_score(y, logit):.4f}, accuracy {accuracy_by_glasses((logit > 0) == y, glasses)}")
    for pad in args.pad:
        lid = np.concatenate([r["lids"][pad] for r in rows])
        fused = []
        for r in rows:  # fitted on the other folds' people
            others = [o for o in rows if o is not r]
            fit = LogisticRegression(C=10).fit(np.c_[np.concatenate([o["logit"] for o in others]),
                                                     np.concatenate([o["lids"][pad] for o in others])],
                                               np.concatenate([o["y"] for o in others]))
            fused.append(fit.predict(np.c_[r["logit"], r["lids"][pad]]) == r["y"])
        fused = np.concatenate(fused)
        wrong = (logit > 0) != y
        thresholds = np.quantile(lid, np.linspace(0.05, 0.95, 91))
        accuracies = [((lid > t) == y).mean() for t in thresholds]
        best, threshold = max(accuracies), thresholds[int(np.argmax(accuracies))]
        print(f"pad {pad:g}: eyelid AUC {roc_auc_score(y, lid):.4f} (glasses {roc_auc_score(y[glasses == 1], lid[glasses == 1]):.4f}, "
              f"none {roc_auc_score(y[glasses == 0], lid[glasses == 0]):.4f}); eyelid alone at its best threshold "
              f"{best:.4f}; right on {((lid > threshold) == y)[wrong].mean():.2f} of the classifier's {wrong.sum()} "
              f"errors; fused: {accuracy_by_glasses(fused, glasses)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
