"""Deterministic subject-disjoint train / val / test split (and k-fold by subject) written to JSON.

    python -m pipeline.split --data ../shared/data/mrl/mrlEyes_2018_01_dev.zip --seed 0 --out splits/mrl_split.json

Test subjects are chosen once, to be representative (both classes, glasses, sensors, closed/open ratio), and are
never used for any choice afterwards: k-fold model selection (`--kfold K`) only folds train + val subjects.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from pipeline.cli import non_negative_int, output_file
from pipeline.data import VALUE_NAMES, EyeData, load_any, subject_name

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPLIT = REPO_ROOT / "splits" / "mrl_split.json"
PARTS = ("train", "val", "test")
MIN_IMAGES_PER_CLASS = 20  # a subject with fewer images of one class counts as single-class


class SplitError(ValueError):
    pass


def _subject_stats(subjects, labels, meta: dict | None) -> dict[int, dict]:
    subjects, labels = np.asarray(subjects), np.asarray(labels)
    meta = meta or {}
    stats = {}
    for s in np.unique(subjects):
        m = subjects == s
        st = {"images": int(m.sum()), "closed": int((labels[m] == 0).sum()), "open": int((labels[m] == 1).sum())}
        for key in ("glasses", "gender"):
            if key in meta:
                st[key] = int((np.asarray(meta[key])[m] == 1).sum())
        if "sensor" in meta:
            st["sensors"] = {int(v): int(c) for v, c in zip(*np.unique(np.asarray(meta["sensor"])[m], return_counts=True))}
        stats[int(s)] = st
    return stats


def _two_class(st: dict) -> bool:
    return st["closed"] >= MIN_IMAGES_PER_CLASS and st["open"] >= MIN_IMAGES_PER_CLASS


def _part_score(part: list[int], stats: dict, pool_fracs: dict, sensors: set[int]) -> float:
    """How far a group of subjects is from the pool it should represent (0 = perfect)."""
    total = sum(stats[s]["images"] for s in part)
    closed = sum(stats[s]["closed"] for s in part)
    if closed < 50 or total - closed < 50:
        return 1e9
    score = abs(closed / total - pool_fracs["closed"])
    for key in ("glasses", "gender"):
        if key in pool_fracs:
            score += abs(sum(stats[s][key] for s in part) / total - pool_fracs[key])
    if sensors:
        present = set().union(*(stats[s]["sensors"] for s in part))
        score += 0.25 * len(sensors - present)
    # No single subject may dominate the part (per-subject metrics must stay meaningful).
    score += max(0.0, max(stats[s]["images"] for s in part) / total - 0.5)
    return score


def make_split(subjects, labels, seed: int = 0, *, meta: dict | None = None, n_val: int = 4, n_test: int = 6,
               n_candidates: int = 20000) -> dict:
    """Subject-disjoint split. Single-class subjects go to train; val/test are searched (seeded) to be representative."""
    stats = _subject_stats(subjects, labels, meta)
    eligible = sorted(s for s, st in stats.items() if _two_class(st))
    single = sorted(s for s in stats if s not in eligible)
    if len(eligible) < n_val + n_test + 1:
        raise SplitError(
            f"need at least {n_val + n_test + 1} subjects with both classes (>= {MIN_IMAGES_PER_CLASS} images each) "
            f"for {n_val} val + {n_test} test + train, found {len(eligible)}"
        )
    total = sum(stats[s]["images"] for s in eligible)
    fracs = {"closed": sum(stats[s]["closed"] for s in eligible) / total}
    for key in ("glasses", "gender"):
        if meta and key in meta:
            fracs[key] = sum(stats[s][key] for s in eligible) / total
    sensors = set().union(*(stats[s]["sensors"] for s in eligible)) if meta and "sensor" in meta else set()
    n_all = sum(st["images"] for st in stats.values())
    images = lambda part: sum(stats[s]["images"] for s in part)  # noqa: E731

    rng = np.random.default_rng(seed)
    best, best_score = None, np.inf
    for _ in range(n_candidates):
        order = rng.permutation(eligible)
        test, val = sorted(int(s) for s in order[:n_test]), sorted(int(s) for s in order[n_test:n_test + n_val])
        train = [s for s in stats if s not in test and s not in val]
        # Parts hold about their share of subjects in images, so train keeps most of the data; train sees every sensor.
        score = (_part_score(test, stats, fracs, sensors) + 0.5 * _part_score(val, stats, fracs, set())
                 + abs(images(test) / n_all - n_test / len(stats)) + abs(images(val) / n_all - n_val / len(stats))
                 + 0.25 * len(sensors - set().union(*(stats[s].get("sensors", {}) for s in train))))
        if score < best_score:
            best, best_score = (test, val), score
    test, val = best
    train = sorted(s for s in stats if s not in test and s not in val)
    notes = [
        f"subject-disjoint; seed {seed}; val/test chosen among {len(eligible)} subjects with both classes "
        f"(>= {MIN_IMAGES_PER_CLASS} images of each) by a seeded search for representative parts "
        "(closed/open ratio, glasses, gender, sensors, share of images, no dominating subject)",
    ]
    if single:
        notes.append(
            f"single-class subjects (fewer than {MIN_IMAGES_PER_CLASS} images of one class) go to train: "
            + ", ".join(f"{subject_name(s)} ({stats[s]['closed']} closed / {stats[s]['open']} open)" for s in single)
        )
    notes.append("test subjects are never used for any choice (model, threshold, hyper-parameters, early stopping)")
    split = {p: [subject_name(s) for s in part] for p, part in zip(PARTS, (train, val, test))}
    split.update(seed=seed, notes=notes, counts=_counts(split, stats),
                 per_subject={subject_name(s): _readable(st) for s, st in sorted(stats.items())})
    return split


def make_kfold(split: dict, k: int, seed: int = 0, subjects=None, labels=None) -> list[dict]:
    """k folds over train + val subjects only (test stays untouched); single-class subjects stay in every train part."""
    per_subject = split.get("per_subject") or {}
    pool = sorted(split["train"] + split["val"])
    if subjects is not None:
        st = _subject_stats(subjects, labels, None)
        per_subject = {subject_name(s): v for s, v in st.items()}
    eligible = [s for s in pool if s in per_subject and _two_class(per_subject[s])]
    if k < 2 or k > len(eligible):
        raise SplitError(f"--kfold must be between 2 and {len(eligible)} (two-class train+val subjects), got {k}")
    rng = np.random.default_rng(seed)
    order = sorted(rng.permutation(eligible), key=lambda s: -per_subject[s]["images"])
    folds: list[list[str]] = [[] for _ in range(k)]
    for i, s in enumerate(order):  # snake order over subjects sorted by size: similar subject and image counts per fold
        r, c = divmod(i, k)
        folds[c if r % 2 == 0 else k - 1 - c].append(str(s))
    return [{"train": sorted(set(pool) - set(f)), "val": sorted(f)} for f in folds]


def with_fold(split: dict, fold: int | None) -> dict:
    """The split with fold `fold`'s train / val subjects in place of its own (test unchanged); as is for None."""
    if fold is None:
        return split
    folds = split.get("folds") or []
    if not 0 <= fold < len(folds):
        raise SplitError(f"--fold {fold}: the split has {len(folds)} folds (make them with pipeline.split --kfold K)")
    return {**split, "train": folds[fold]["train"], "val": folds[fold]["val"]}


def _readable(st: dict) -> dict:
    out = {k: v for k, v in st.items() if k != "sensors"}
    if "sensors" in st:
        out["sensors"] = {VALUE_NAMES["sensor"].get(k, str(k)): v for k, v in st["sensors"].items()}
    return out


def _counts(split: dict, stats: dict) -> dict:
    counts = {}
    for part in PARTS:
        ids = [int(s.lstrip("s")) for s in split[part]]
        c = {"subjects": len(ids)}
        for key in ("images", "closed", "open", "glasses", "gender"):
            if ids and key in stats[ids[0]]:
                c["woman" if key == "gender" else key] = sum(stats[s][key] for s in ids)
        if ids and "sensors" in stats[ids[0]]:
            sens: dict[str, int] = {}
            for s in ids:
                for v, n in stats[s]["sensors"].items():
                    name = VALUE_NAMES["sensor"].get(v, str(v))
                    sens[name] = sens.get(name, 0) + n
            c["sensors"] = dict(sorted(sens.items()))
        counts[part] = c
    return counts


def check_disjoint(split: dict) -> None:
    for i, a in enumerate(PARTS):
        for b in PARTS[i + 1:]:
            both = set(split[a]) & set(split[b])
            if both:
                raise SplitError(f"split is not subject-disjoint: {sorted(both)} in both {a} and {b}")


def load_split(path=DEFAULT_SPLIT) -> dict:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"split file {path} not found; create it with `python -m pipeline.split --out {path}`")
    try:
        split = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SplitError(f"split file {path} is not JSON ({error}); expected the split JSON written by "
                         "pipeline.split (subject lists 'train', 'val', 'test')") from None
    if not isinstance(split, dict):
        raise SplitError(f"split file {path} holds a JSON {type(split).__name__}; expected the object written by "
                         "pipeline.split (subject lists 'train', 'val', 'test')")
    missing = [p for p in PARTS if p not in split]
    if missing:
        raise SplitError(f"{path} lacks {missing}; expected JSON with subject lists 'train', 'val', 'test'")
    check_disjoint(split)
    return split


def _subject_ids(names) -> list[int]:
    return [int(str(s).lstrip("s")) for s in names]


def unlisted_subjects(data: EyeData, split: dict) -> list[int]:
    """Subjects of `data` that the split names in no part (e.g. MRL's 7 subjects held back from the dev zip)."""
    if data.subjects is None or split.get("kind", "subjects") != "subjects":
        return []
    listed = _subject_ids(s for p in PARTS for s in split[p])
    return sorted(int(s) for s in np.unique(data.subjects) if s not in listed)


def part_mask(data: EyeData, split: dict, part: str) -> np.ndarray:
    """Boolean mask of `data` rows in `part` ('train'|'val'|'test'|'all'); subject-based for MRL, index-based otherwise.
    Subjects the split does not name were never trained on nor used for a choice: they belong to 'test'."""
    if part == "all":
        return np.ones(len(data), bool)
    if data.subjects is not None and split.get("kind", "subjects") == "subjects":
        ids = _subject_ids(split[part]) + (unlisted_subjects(data, split) if part == "test" else [])
        return np.isin(data.subjects, ids)
    if data.subjects is not None:
        raise SplitError(f"{data.source} names its people, but this split lists image indices (kind 'images'): that "
                         "would put one person's images in several parts; use a split by subject "
                         "(python -m pipeline.split on this data)")
    if split.get("kind") != "images":
        raise SplitError(f"{data.source} has no subjects; an image-index split (kind 'images') is needed")
    made_for = split.get("n_images")
    if made_for is not None and made_for != len(data):
        raise SplitError(f"this image split was made for {made_for} images but {data.source} has {len(data)}: the "
                         "indices no longer point at the same images; make a new split")
    if split[part] and max(split[part]) >= len(data):
        raise SplitError(f"this image split names image {max(split[part])} but {data.source} has {len(data)} images")
    mask = np.zeros(len(data), bool)
    mask[np.asarray(split[part], dtype=np.int64)] = True
    return mask


def make_image_split(labels, seed: int = 0, val_frac: float = 0.15, test_frac: float = 0.15) -> dict:
    """For data without subjects (open/closed folders): stratified random split of image indices."""
    labels = np.asarray(labels)
    rng = np.random.default_rng(seed)
    parts: dict[str, list[int]] = {p: [] for p in PARTS}
    for c in np.unique(labels):
        idx = rng.permutation(np.flatnonzero(labels == c))
        n_val, n_test = int(round(len(idx) * val_frac)), int(round(len(idx) * test_frac))
        parts["val"] += idx[:n_val].tolist()
        parts["test"] += idx[n_val:n_val + n_test].tolist()
        parts["train"] += idx[n_val + n_test:].tolist()
    split = {p: sorted(v) for p, v in parts.items()}
    split.update(kind="images", seed=seed, n_images=len(labels), notes=[
        "data without subject information: stratified random split of images; people may appear in several parts, "
        "so these scores do not measure generalisation to unseen people"])
    return split


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Write a deterministic subject-disjoint split of MRL data to JSON.")
    ap.add_argument("--data", default=None, help="MRL zip or folder (default: ../shared/data/mrl/mrlEyes_2018_01_dev.zip)")
    ap.add_argument("--out", type=output_file, default=None,
                    help=f"default: {DEFAULT_SPLIT} for MRL data, splits/<data name>_images.json for other folders")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--val-subjects", type=non_negative_int, default=4)
    ap.add_argument("--test-subjects", type=non_negative_int, default=6)
    ap.add_argument("--kfold", type=non_negative_int, default=0,
                    help="also write K folds by subject over train+val (model selection)")
    args = ap.parse_args(argv)
    try:
        data = load_any(args.data, 48)
    except (ValueError, OSError) as error:  # wrong path or layout: the message says what was expected
        raise SystemExit(f"error: {error}") from None
    try:
        if data.subjects is None:
            split = make_image_split(data.labels, args.seed)
        else:
            split = make_split(data.subjects, data.labels, args.seed, meta=data.meta, n_val=args.val_subjects,
                               n_test=args.test_subjects)
            if args.kfold:
                split["folds"] = make_kfold(split, args.kfold, args.seed)
    except SplitError as error:  # too few people for the parts asked for: the message says how many
        raise SystemExit(f"error: {error}") from None
    split["source"] = Path(data.source).name
    if args.out:
        out = Path(args.out)
    else:  # the tracked MRL split is only ever replaced by an MRL split
        source = Path(data.source)
        name = source.name if source.is_dir() else source.stem  # a folder "scale_1.5" keeps its whole name
        out = DEFAULT_SPLIT if data.subjects is not None else DEFAULT_SPLIT.with_name(f"{name}_images.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(split, indent=1) + "\n")
    for part in PARTS:
        shown = split[part] if data.subjects is not None else f"{len(split[part])} images"
        print(f"{part:5s} {shown} {split.get('counts', {}).get(part, '')}")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
