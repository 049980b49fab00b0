"""Would averaging help? Fold models of several recipes, each on its fold's held-out people: every recipe alone,
with its horizontally flipped crop averaged in (test-time flip), and averaged with the other recipes (ensembles);
each recipe's accuracy at other thresholds than 0.5. Also how many of a recipe's errors the other recipes make too: shared errors are what no average can fix.

    python scripts/fold_ensembles.py --recipe A=runs/folds/A --recipe B=runs/folds/B --recipe C=runs/folds/C

Each DIR holds fold0 ... fold4 of `pipeline.train --fold K` (scripts/recipe_folds.py); `last.pth` is used, as a
refit keeps the last epoch. Held-out people only (the split's folds over train + validation subjects); the test
subjects are not loaded. Per-image p_open is cached beside each run (`heldout_p_open.npz`).
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from pipeline.data import default_data_path, load_mrl  # noqa: E402
from pipeline.evaluate import load_predictor, predict_p_open  # noqa: E402
from pipeline.split import DEFAULT_SPLIT, load_split  # noqa: E402


def held_out_p_open(run: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """p_open of the run's last.pth on the images and on their mirror images (cached)."""
    cache = run / "heldout_p_open.npz"
    if cache.exists():
        saved = np.load(cache)
        if len(saved["plain"]) == len(images):
            return saved["plain"], saved["flipped"]
    predict, spec, _ = load_predictor(run / "last.pth")
    plain = predict_p_open(predict, images, spec, 256)
    flipped = predict_p_open(predict, np.ascontiguousarray(images[:, :, ::-1]), spec, 256)
    np.savez(cache, plain=plain, flipped=flipped)
    return plain, flipped


def scores(labels: np.ndarray, glasses: np.ndarray, p_open: np.ndarray) -> dict:
    right = (p_open >= 0.5) == labels
    closed, opened = labels == 0, labels == 1
    recall = [right[closed].mean(), right[opened].mean()]
    precision = [right[(p_open < 0.5)].mean(), right[(p_open >= 0.5)].mean()]
    f1 = [2 * p * r / (p + r) for p, r in zip(precision, recall)]
    return {"accuracy": right.mean(), "macro_f1": float(np.mean(f1)), "errors": int((~right).sum()),
            "glasses": right[glasses == 1].mean() if (glasses == 1).any() else None,
            "no_glasses": right[glasses == 0].mean()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", action="append", required=True, metavar="NAME=DIR")
    ap.add_argument("--data", default=None, help="MRL zip or folder (default: ../shared's dev zip)")
    ap.add_argument("--split", default=str(DEFAULT_SPLIT))
    ap.add_argument("--json", default=None, help="write the table here")
    args = ap.parse_args(argv)
    recipes = dict(r.split("=", 1) for r in args.recipe)
    folds = load_split(args.split)["folds"]
    data = load_mrl(args.data or default_data_path())

    rows: dict[str, list[dict]] = {}
    pooled: dict[str, list] = {name: [] for name in recipes}  # (labels, p_open) per fold, for the threshold sweep
    shared = {name: {"errors": 0, "made_by_all_others": 0, "made_by_another": 0} for name in recipes}
    for k, fold in enumerate(folds):
        held = data.select_subjects(fold["val"])
        labels, glasses = held.labels, held.meta["glasses"]
        plain, flipped = {}, {}
        for name, folder in recipes.items():
            plain[name], flipped[name] = held_out_p_open(Path(folder) / f"fold{k}", held.images)
        variants = {}
        for name in recipes:
            variants[name] = plain[name]
            variants[f"{name} + flip"] = (plain[name] + flipped[name]) / 2
        for size in range(2, len(recipes) + 1):
            for group in itertools.combinations(recipes, size):
                variants[" + ".join(group)] = np.mean([plain[n] for n in group], axis=0)
        for variant, p_open in variants.items():
            rows.setdefault(variant, []).append(scores(labels, glasses, p_open))
        for name in recipes:
            pooled[name].append((labels, plain[name]))
        wrong = {name: (plain[name] >= 0.5) != labels for name in recipes}
        for name in recipes:
            others = [wrong[o] for o in recipes if o != name]
            if not others:
                continue
            shared[name]["errors"] += int(wrong[name].sum())
            shared[name]["made_by_all_others"] += int((wrong[name] & np.all(others, axis=0)).sum())
            shared[name]["made_by_another"] += int((wrong[name] & np.any(others, axis=0)).sum())
        print(f"fold {k} ({', '.join(fold['val'])}): " + ", ".join(
            f"{v} {r[-1]['accuracy']:.4f}" for v, r in rows.items()), flush=True)

    def mean(values):
        values = [v for v in values if v is not None]
        return float(np.mean(values)) if values else None

    summary = {v: {key: mean([f[key] for f in folds_]) for key in ("accuracy", "macro_f1", "glasses", "no_glasses")}
               | {"errors": sum(f["errors"] for f in folds_)} for v, folds_ in rows.items()}
    print("\n| variant | accuracy (mean of folds) | macro-F1 | glasses | no glasses | errors (all folds) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for variant, s in summary.items():
        glasses = f"{s['glasses']:.4f}" if s["glasses"] is not None else "–"
        print(f"| {variant} | {s['accuracy']:.4f} | {s['macro_f1']:.4f} | {glasses} | {s['no_glasses']:.4f} | "
              f"{s['errors']} |")
    for name, s in shared.items():
        if s["errors"]:
            print(f"{name}: {s['errors']} errors; {s['made_by_another']} also made by another recipe, "
                  f"{s['made_by_all_others']} by all others")
    thresholds = {}
    for name, parts in pooled.items():
        labels, p_open = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
        thresholds[name] = {t: float(((p_open >= t) == labels).mean()) for t in (0.3, 0.4, 0.5, 0.6, 0.7)}
        print(f"{name}, accuracy pooled over folds at threshold " +
              ", ".join(f"{t}: {a:.4f}" for t, a in thresholds[name].items()))
    result = {"variants": summary, "shared_errors": shared, "thresholds": thresholds, "recipes": recipes}
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
