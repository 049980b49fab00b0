"""Train an eye-state classifier on MRL (subject-disjoint split) or an open/closed folder.

    python -m pipeline.train --model mobilenetv3_small_050 --epochs 20 --out-dir weights/mnv3
    python -m pipeline.train --out-dir weights/mnv3 --resume          # continue after a kill

The whole training set lives in memory as a uint8 tensor (on the GPU when there is one); batches are augmented
with torch ops on the whole batch, so there is no per-image Python loop. AdamW, warm-up + cosine LR schedule,
class-balanced sampling, early stopping on validation macro-F1. Test subjects are never touched here.

The seed's command (`--model efficientnetv2_s --pretrained ...`) stops at once with a clear message when no local
ImageNet weights exist: there is no network here, and timm publishes none for `efficientnetv2_s` (only for
`tf_efficientnetv2_s`). Pass `--pretrained-path FILE`, or drop `--pretrained` to train from scratch.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import random
import sys
import time
from pathlib import Path
from typing import NamedTuple

# Before torch loads OpenMP: idle threads sleep instead of spinning. On a busy 2-core machine spinning threads made
# 2-thread training ~6x slower than 1 thread (measured: 41 vs 248 img/s passive, mobilenetv3_small_050).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from tqdm import tqdm  # noqa: E402

from pipeline.augment import BatchAugment, parse_augmentations  # noqa: E402
from pipeline.cli import non_negative_float, non_negative_int, output_folder, positive_float, positive_int  # noqa: E402
from pipeline.data import DEFAULT_MRL_ZIP, EyeData, describe, load_any, subject_name  # noqa: E402
from pipeline.metrics import classification_metrics, softmax_p_open  # noqa: E402
from pipeline.models import (BASELINE, check_model_name, check_pretrained_available, count_parameters,  # noqa: E402
                             create_model, make_checkpoint, read_torch_file)
from pipeline.preprocess import DEFAULT_SPEC, to_model_input  # noqa: E402
from pipeline.split import (DEFAULT_SPLIT, PARTS, SplitError, load_split, make_image_split, make_split,  # noqa: E402
                            part_mask, unlisted_subjects, with_fold)

RESUMABLE_OVERRIDES = ("epochs", "device", "threads", "workers", "patience", "stop_after")


def build_parser() -> argparse.ArgumentParser:
    # no abbreviations: which options were given is read from the command line's own words (args._given)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                 allow_abbrev=False)
    ap.add_argument("--model", default="mobilenetv3_small_050", help=f"timm model name or {BASELINE}")
    ap.add_argument("--pretrained", action="store_true", help="ImageNet weights from --pretrained-path or the local cache")
    ap.add_argument("--pretrained-path", default=None)
    ap.add_argument("--num-classes", type=int, default=2, choices=[2], help="closed/open (kept for the seed's command)")
    ap.add_argument("--data", default=None, help=f"MRL zip/folder or open/closed folder/zip (default {DEFAULT_MRL_ZIP})")
    ap.add_argument("--split", default=str(DEFAULT_SPLIT),
                    help=f"split JSON (default {DEFAULT_SPLIT}; where that is absent, one is generated into --out-dir)")
    ap.add_argument("--fold", type=int, default=None, help="train/val from the split's k-fold entry i (model selection)")
    ap.add_argument("--img-size", type=positive_int, default=DEFAULT_SPEC.size)
    ap.add_argument("--epochs", type=positive_int, default=30)
    ap.add_argument("--batch-size", type=positive_int, default=128)
    ap.add_argument("--lr", type=positive_float, default=2e-3)
    ap.add_argument("--weight-decay", type=non_negative_float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--min-lr-ratio", type=float, default=0.01, help="final LR = lr * this (cosine floor)")
    ap.add_argument("--freeze-epochs", type=non_negative_int, default=0,
                    help="with --pretrained: train only the classifier for this many epochs, then all layers")
    ap.add_argument("--finetune-lr-scale", type=float, default=0.1, help="LR factor of the all-layers phase after freezing")
    ap.add_argument("--label-smoothing", type=float, default=0.05)
    ap.add_argument("--mixup", type=float, default=0.0,
                    help="mixup: blend each batch with a shuffled copy, weight ~ Beta(a, a) (0 = off)")
    ap.add_argument("--teacher", default=None,
                    help="distil from this checkpoint (.pth of pipeline.train): the loss mixes the labels with the "
                         "teacher's softened predictions on the same augmented batch")
    ap.add_argument("--distill-alpha", type=float, default=0.5, help="weight of the teacher term (0..1)")
    ap.add_argument("--distill-temperature", type=float, default=2.0, help="softening temperature of both outputs")
    ap.add_argument("--ema", type=float, default=0.0,
                    help="keep an exponential moving average of the weights with this decay (e.g. 0.998; 0 = off); "
                         "validation, best.pth and the shipped weights then use the average")
    ap.add_argument("--balance", choices=["sampler", "subgroup", "condition", "subject", "loss", "none"],
                    default="sampler",
                    help="class balance by weighted sampling (default); 'subgroup' also draws rare (class, glasses, "
                         "reflections) groups more often; 'condition' balances the classes within each (glasses, "
                         "reflections) condition; 'subject' gives every person an equal share, classes balanced "
                         "within each (the last three MRL only); by loss weights; or not at all")
    ap.add_argument("--epoch-size", type=positive_int, default=None,
                    help="samples drawn per epoch (default: train set size)")
    ap.add_argument("--augmentations", default="default", help="comma list of pipeline.augment names, 'seed', 'none'")
    ap.add_argument("--patience", type=non_negative_int, default=8,
                    help="early stopping: epochs without val macro-F1 gain (0 = off)")
    ap.add_argument("--final-fit", action="store_true",
                    help="train on train+val subjects for exactly --epochs and keep the last epoch (a recipe chosen "
                         "on validation before, refitted on more people); the val numbers printed are then in-sample")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda, cuda:1, ...")
    ap.add_argument("--threads", type=int, default=None, help="CPU threads for torch (default 2 on CPU)")
    ap.add_argument("--workers", type=int, default=2, help="threads decoding images while loading")
    ap.add_argument("--max-train-images", type=positive_int, default=None,
                    help="random class-stratified subset (smoke tests)")
    ap.add_argument("--max-val-images", type=positive_int, default=None)
    ap.add_argument("--out-dir", type=output_folder, default="weights/")
    ap.add_argument("--resume", nargs="?", const="auto", default=None,
                    help="continue from OUT_DIR/last.pth (or the given file): model, optimizer, schedule, RNG, history")
    ap.add_argument("--stop-after", type=positive_int, default=None,
                    help="stop after this many epochs in this run (time-boxing); continue later with --resume")
    ap.add_argument("--no-cache", action="store_true", help="do not use the .cache/ copy of the decoded data")
    ap.add_argument("--overwrite", action="store_true", help="replace an earlier run in --out-dir (else refused)")
    return ap


# ---------------------------------------------------------------- data and split

def _subsample(labels: np.ndarray, n: int | None, seed: int) -> np.ndarray:
    idx = np.arange(len(labels))
    if n is None or n >= len(labels):
        return idx
    rng = np.random.default_rng(seed)
    picked = [rng.permutation(np.flatnonzero(labels == c))[: max(1, round(n * (labels == c).mean()))]
              for c in np.unique(labels)]
    return np.sort(np.concatenate(picked))


def prepare_data(args, out_dir: Path):
    split_path = Path(args.split)
    given = "split" in getattr(args, "_given", ())
    if given and not split_path.exists():  # a mistyped path must not quietly train on a new split
        raise SystemExit(f"error: --split {split_path} not found (leave --split out to use {DEFAULT_SPLIT}, or to "
                         "have a split generated into --out-dir where there is none)")
    data = load_any(args.data, args.img_size, workers=args.workers, cache=not args.no_cache)
    print(describe(data), flush=True)
    # folder data (no subjects) takes an image split: the one given, or the default only if it is one
    folder_split = load_split(split_path) if data.kind != "mrl" and split_path.exists() else None
    if folder_split is not None and folder_split.get("kind") != "images":
        if given:  # a subject split given for data without subjects: refused, not swapped for another
            raise SystemExit(f"error: --split {split_path} lists people (a subject split), but {data.source} has no "
                             "subjects; give an image split (kind 'images', written by an earlier run on this data) "
                             "or leave --split out")
        folder_split = None
    if data.kind == "mrl" and split_path.exists():
        split = load_split(split_path)
        split_ref = str(split_path)
    elif data.kind == "mrl":
        split = make_split(data.subjects, data.labels, args.seed, meta=data.meta)
        split_ref = str(out_dir / "split.json")
        print(f"split file {split_path} not found: generated a subject-disjoint split -> {split_ref}")
    elif folder_split is not None:
        split = folder_split
        split_ref = str(split_path)
    else:
        split = make_image_split(data.labels, args.seed)
        split_ref = str(out_dir / "split.json")
        print(f"{data.source} has no subjects: stratified image split -> {split_ref}")
    if split_ref == str(out_dir / "split.json"):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "split.json").write_text(json.dumps(split, indent=1) + "\n")
    try:
        split = with_fold(split, args.fold)
    except SplitError as error:
        raise SystemExit(str(error)) from None
    if args.final_fit:
        if data.kind != "mrl":
            raise SystemExit("--final-fit needs MRL subjects (it adds the validation subjects to training)")
        split = {**split, "train": sorted(set(split["train"]) | set(split["val"]))}
    unseen = unlisted_subjects(data, split)
    if unseen:
        print(f"{len(unseen)} subject(s) not in split {split_ref} stay out of training and validation (they count as "
              f"test subjects): {', '.join(subject_name(s) for s in unseen)}")
    parts = {}
    for part, limit in (("train", args.max_train_images), ("val", args.max_val_images)):
        sub = data.subset(part_mask(data, split, part))
        if len(sub) == 0 or len(np.unique(sub.labels)) < 2:
            raise SystemExit(f"the {part} part of split {split_ref} has {len(sub)} images of {len(np.unique(sub.labels))} "
                             f"class(es) in {data.source}; it needs both classes")
        parts[part] = sub.subset(_subsample(sub.labels, limit, args.seed))
    split_record = {p: split[p] for p in PARTS} if data.kind == "mrl" else {"kind": "images", "file": split_ref}
    split_record["file"] = split_ref
    return parts["train"], parts["val"], split_record


# ---------------------------------------------------------------- schedule, freezing, sampling

def lr_factor(step: int, steps_per_epoch: int, args) -> float:
    """Warm-up + cosine; with freezing, a constant head-only phase then a scaled warm-up + cosine over the rest."""
    frozen = _freeze_epochs(args) * steps_per_epoch
    warmup = max(1, int(args.warmup_epochs * steps_per_epoch))
    if step < frozen:
        return min(1.0, (step + 1) / warmup)
    scale = args.finetune_lr_scale if frozen else 1.0
    s, total = step - frozen, max(1, args.epochs * steps_per_epoch - frozen)
    if s < warmup:
        return scale * (s + 1) / warmup
    progress = min(1.0, (s - warmup) / max(1, total - warmup))
    return scale * (args.min_lr_ratio + (1 - args.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def _freeze_epochs(args) -> int:
    return args.freeze_epochs if args.pretrained else 0


def set_head_only(model: torch.nn.Module, head_only: bool) -> None:
    head = set(id(p) for p in model.get_classifier().parameters())
    for p in model.parameters():
        p.requires_grad_(not head_only or id(p) in head)


def subgroup_keys(data: EyeData) -> torch.Tensor | None:
    """One integer per image naming its (class, glasses, reflections) group; None without MRL metadata."""
    meta = data.meta or {}
    if "glasses" not in meta or "reflections" not in meta:
        return None
    return torch.from_numpy(data.labels * 100 + meta["glasses"] * 10 + meta["reflections"]).long()


CONDITION_CAP = 4.0  # --balance condition / subject: at most this many times an image's draws under plain class balance


def _shares_within(labels: torch.Tensor, keys: torch.Tensor, equal: bool) -> torch.Tensor:
    """Draw weights: each key (a condition, a person) gets a share of the draws (its share of the images, or an equal
    share), split equally between the classes it has; no image is drawn more than CONDITION_CAP times as often as
    under plain class balance (a 20-image corner would otherwise repeat 90 times per epoch); then each class gets
    half of the draws."""
    base = (0.5 / torch.bincount(labels, minlength=2).float().clamp_min(1))[labels]
    weights = torch.zeros(len(labels))
    values = torch.unique(keys)
    for value in values:
        in_key = keys == value
        share = 1.0 / len(values) if equal else in_key.float().mean()
        classes = torch.unique(labels[in_key])
        for c in classes:
            mask = in_key & (labels == c)
            weights[mask] = share / (len(classes) * mask.sum())
    weights = torch.minimum(weights, CONDITION_CAP * base)
    for c in torch.unique(labels):
        mask = labels == c
        weights[mask] /= weights[mask].sum()
    return weights


class Mixed(NamedTuple):
    images: torch.Tensor
    partner: torch.Tensor  # index of the image each one was blended with
    weight: float  # share of the original image (and of its label in the loss)


def mixup_batch(x: torch.Tensor, alpha: float) -> Mixed:
    """Mixup (Zhang et al. 2018): blend the batch with a shuffled copy of itself; alpha 0 leaves it as it is."""
    if alpha <= 0:
        return Mixed(x, torch.arange(len(x), device=x.device), 1.0)
    weight = float(torch.distributions.Beta(alpha, alpha).sample())
    weight = max(weight, 1 - weight)  # the original image stays the larger share, so its label stays right
    partner = torch.randperm(len(x)).to(x.device)
    return Mixed(weight * x + (1 - weight) * x[partner], partner, weight)


def sample_epoch(labels: torch.Tensor, n: int, balance: str, generator: torch.Generator,
                 groups: torch.Tensor | None = None) -> torch.Tensor:
    if balance == "subgroup" and groups is not None:
        # Rare conditions (glasses with big reflections ...) drawn more often, but softly: a group of size c
        # gets weight c^-1/2 per image (fully equal groups would repeat a 200-image group 50x per epoch);
        # then each class gets half of the draws.
        _, index, counts = torch.unique(groups, return_inverse=True, return_counts=True)
        weights = counts.float().rsqrt()[index]
        for c in torch.unique(labels):
            mask = labels == c
            weights[mask] /= weights[mask].sum()
        return torch.multinomial(weights, n, replacement=True, generator=generator)
    if balance == "condition" and groups is not None:
        # MRL ties labels to conditions (training subjects with glasses and small reflections: 1,315 closed eyes,
        # 180 open), which a model can learn instead of the eye. Each (glasses, reflections) condition keeps its
        # share of the draws, split equally between the classes.
        return torch.multinomial(_shares_within(labels, groups % 100, equal=False), n, replacement=True,
                                 generator=generator)
    if balance == "subject" and groups is not None:
        # A few people hold most of MRL's images (one training subject 10,000, several 400); the model is judged on
        # new people, so each person gets an equal share of the draws, split equally between their classes.
        return torch.multinomial(_shares_within(labels, groups, equal=True), n, replacement=True,
                                 generator=generator)
    if balance not in ("sampler", "subgroup", "condition", "subject"):
        return torch.randperm(len(labels), generator=generator)[:n] if n <= len(labels) else \
            torch.randint(len(labels), (n,), generator=generator)
    counts = torch.bincount(labels, minlength=2).float()
    weights = (1.0 / counts.clamp_min(1))[labels]
    return torch.multinomial(weights, n, replacement=True, generator=generator)


# ---------------------------------------------------------------- evaluation during training

@torch.no_grad()
def predict_logits(model, images_u8: torch.Tensor, spec, device, batch_size: int = 512) -> np.ndarray:
    model.eval()
    out = []
    for i in range(0, len(images_u8), batch_size):
        x = to_model_input(images_u8[i:i + batch_size].to(device), spec)
        out.append(model(x).float().cpu())
    return torch.cat(out).numpy()


def validate(model, val: EyeData, val_images: torch.Tensor, spec, device) -> dict:
    logits = predict_logits(model, val_images, spec, device)
    loss = F.cross_entropy(torch.from_numpy(logits), torch.from_numpy(val.labels)).item()
    m = classification_metrics(val.labels, softmax_p_open(logits), val.meta)
    return {"val_loss": loss, "val_accuracy": m["accuracy"], "val_macro_f1": m["macro_f1"],
            "val_balanced_subject_accuracy": m["balanced_subject_accuracy"], "val_ece": m["ece"]}


# ---------------------------------------------------------------- outputs

def _atomic_save(obj, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def write_history(out_dir: Path, history: list[dict], info: dict) -> None:
    (out_dir / "history.json").write_text(json.dumps({**info, "history": history}, indent=1) + "\n")
    with open(out_dir / "history.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
    plot_curves(history, out_dir / "curves.png")


def plot_curves(history: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ep = [h["epoch"] for h in history]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.6))
    a.plot(ep, [h["train_loss"] for h in history], label="train loss")
    a.plot(ep, [h["val_loss"] for h in history], label="val loss")
    a.set_xlabel("epoch"), a.legend(), a.grid(alpha=0.3)
    for key in ("train_accuracy", "val_accuracy", "val_macro_f1", "val_balanced_subject_accuracy"):
        if history[0].get(key) is not None:
            b.plot(ep, [h[key] for h in history], label=key.replace("_", " "))
    b.set_xlabel("epoch"), b.legend(), b.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


# ---------------------------------------------------------------- main loop

def _rng_state() -> dict:
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def _set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def resolve_resume(args) -> tuple[argparse.Namespace, dict | None]:
    """With --resume: the run's own arguments come from last.pth; only RESUMABLE_OVERRIDES may change."""
    if not args.resume:
        return args, None
    path = Path(args.out_dir) / "last.pth" if args.resume == "auto" else Path(args.resume)
    if path.is_dir():
        path = path / "last.pth"  # a run's folder: its training state
    if not path.is_file():
        raise SystemExit(f"--resume: {path} not found (expected last.pth of an earlier run in --out-dir)")
    try:
        state = read_torch_file(path, map_location="cpu")
    except ValueError as error:
        raise SystemExit(f"--resume: {error}") from None
    if not isinstance(state, dict) or "args" not in state or "epoch" not in state:
        raise SystemExit(f"--resume: {path} is a torch file but not a training state (expected last.pth written by "
                         "pipeline.train)")
    if "optimizer" not in state or not isinstance(state["args"], dict) or not {"model", "epochs"} <= set(state["args"]):
        raise SystemExit(f"--resume: {path} holds model weights but not pipeline.train's training state (optimizer, "
                         "schedule, arguments); resume from the run's last.pth")
    if args.resume != "auto" and "out_dir" in args._given and Path(args.out_dir).resolve() != path.parent.resolve():
        raise SystemExit(f"--resume continues a run in its own folder ({path.parent}); drop --out-dir "
                         f"{args.out_dir}, or copy that folder there first and resume the copy")
    args.out_dir = str(path.parent)
    merged = dict(state["args"])
    for key in RESUMABLE_OVERRIDES:
        if key in args._given:
            merged[key] = getattr(args, key)
    ignored = [f"--{key.replace('_', '-')} {getattr(args, key)} (the run keeps {merged.get(key)})"
               for key in sorted(args._given) if key not in RESUMABLE_OVERRIDES + ("resume", "out_dir")
               and merged.get(key) != getattr(args, key)]
    if ignored:
        print(f"note: resuming keeps the run's own settings; ignored: {'; '.join(ignored)}. Only "
              f"{', '.join('--' + k.replace('_', '-') for k in RESUMABLE_OVERRIDES)} may change on --resume.")
    # a stop asked for on an earlier call (--stop-after) is not a property of the run: each call says its own
    merged.update(resume=args.resume, out_dir=args.out_dir, _given=args._given, stop_after=args.stop_after)
    print(f"resuming from {path} (epoch {state['epoch'] + 1} done)")
    return argparse.Namespace(**merged), state


def train(args) -> dict:
    args, state = resolve_resume(args)
    out_dir = Path(args.out_dir)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available() else
                          "cpu" if args.device == "auto" else args.device)
    torch.set_num_threads(args.threads or (2 if device.type == "cpu" else torch.get_num_threads()))
    done = state["epoch"] + 1 if state else 0
    if state and not state.get("finished") and done >= args.epochs:  # paused, and asked for no more epochs
        raise SystemExit(f"--epochs {args.epochs}: the run in {out_dir} has done {done} epochs already; continue it "
                         f"with --epochs above {done}, or without --epochs to finish its own {state['args']['epochs']}")
    if state and (done >= args.epochs or str(state.get("finished")).startswith("early stop")):
        print(f"{out_dir / 'last.pth'} is a finished run ({state['finished']}); nothing to do "
              "(a completed run continues only with a larger --epochs)")
        return state["summary"]
    earlier = [name for name in ("last.pth", "best.pth", "history.json") if (out_dir / name).exists()]
    if not state and earlier and not args.overwrite:  # never replace a finished or paused run silently
        raise SystemExit(f"error: {out_dir} holds an earlier run ({', '.join(earlier)}); continue it with --resume, "
                         "choose another --out-dir, or replace it with --overwrite")
    try:  # fail before loading any data
        check_model_name(args.model)
        augment = BatchAugment(parse_augmentations(args.augmentations))
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    if args.pretrained and not state:
        check_pretrained_available(args.model, args.pretrained_path)
    with run_lock(out_dir):
        return _fit(args, state, out_dir, device, augment)


@contextlib.contextmanager
def run_lock(out_dir: Path):
    """One run at a time in a folder: two at once would mix their checkpoints and history. An advisory lock on
    `run.lock`, which the system lets go of when the process ends, killed or not. A folder this call made is removed
    again when the run fails before writing anything into it."""
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        yield
        return
    made = not out_dir.exists()
    out_dir.mkdir(parents=True, exist_ok=True)
    lock = open(out_dir / "run.lock", "a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.seek(0)
            owner = lock.read().strip() or "?"
            raise SystemExit(f"error: another training run (process {owner}) is writing to {out_dir}; wait for it, "
                             "or choose another --out-dir") from None
        lock.seek(0), lock.truncate(), lock.write(str(os.getpid())), lock.flush()  # who holds it, for that message
        try:
            yield
        except BaseException:
            if made and [p.name for p in out_dir.iterdir()] == ["run.lock"]:  # nothing of the run: no folder either
                lock.close()
                (out_dir / "run.lock").unlink(missing_ok=True)
                out_dir.rmdir()
            raise
    finally:
        lock.close()


def _fit(args, state: dict | None, out_dir: Path, device, augment) -> dict:
    random.seed(args.seed), np.random.seed(args.seed), torch.manual_seed(args.seed)
    train_set, val_set, split_record = prepare_data(args, out_dir)
    spec = DEFAULT_SPEC.__class__(size=args.img_size)
    preprocess = {"size": spec.size, "channels": 1, "mean": spec.mean, "std": spec.std, "gray": spec.gray}
    model = create_model(args.model, args.num_classes, 1, pretrained=args.pretrained and not state,
                         pretrained_path=args.pretrained_path).to(device)
    from timm.optim import param_groups_weight_decay

    optimizer = torch.optim.AdamW(param_groups_weight_decay(model, args.weight_decay), lr=args.lr)
    epoch_size = args.epoch_size or len(train_set)
    steps_per_epoch = math.ceil(epoch_size / args.batch_size)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: lr_factor(s, steps_per_epoch, args))
    history, best, bad_epochs, start = [], -1.0, 0, 0
    ema = None
    if getattr(args, "ema", 0):
        from timm.utils import ModelEmaV3

        ema = ModelEmaV3(model, decay=args.ema, use_warmup=True)
    if state:
        model.load_state_dict(state.get("train_state_dict", state["state_dict"]))
        if ema is not None:
            ema.module.load_state_dict(state["state_dict"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        _set_rng_state(state["rng"])
        history, best, bad_epochs, start = state["history"], state["best_val_macro_f1"], state["bad_epochs"], state["epoch"] + 1

    train_images = torch.from_numpy(train_set.images[:, None]).to(device)
    train_labels = torch.from_numpy(train_set.labels).to(device)
    val_images = torch.from_numpy(val_set.images[:, None])
    groups = None
    if args.balance in ("subgroup", "condition"):
        groups = subgroup_keys(train_set)
    elif args.balance == "subject" and train_set.subjects is not None:
        groups = torch.from_numpy(train_set.subjects.astype(np.int64))
    if args.balance in ("subgroup", "condition", "subject") and groups is None:
        print(f"--balance {args.balance} needs MRL metadata (subjects, glasses, reflections); balancing classes only")
    class_weights = None
    if args.balance == "loss":
        counts = torch.bincount(train_labels, minlength=2).float()
        class_weights = (counts.sum() / (2 * counts.clamp_min(1))).to(device)
    teacher = None
    if getattr(args, "teacher", None):
        from pipeline.models import load_checkpoint

        teacher, teacher_ckpt = load_checkpoint(args.teacher, map_location=device)
        if teacher_ckpt["preprocess"].get("size") != spec.size:
            raise SystemExit(f"--teacher {args.teacher} was trained at {teacher_ckpt['preprocess'].get('size')} px, "
                             f"this run uses {spec.size} px (--img-size); they must match")
        teacher = teacher.to(device).eval()
        for param in teacher.parameters():
            param.requires_grad_(False)
        print(f"distilling from {args.teacher} ({teacher_ckpt['model']}), alpha {args.distill_alpha}, "
              f"temperature {args.distill_temperature}")
    use_amp = device.type == "cuda"
    n_params = count_parameters(model)
    info = {"args": {k: v for k, v in vars(args).items() if not k.startswith("_")}, "model": args.model,
            "params": n_params, "device": str(device), "augment": repr(augment), "split": split_record,
            "n_train": len(train_set), "n_val": len(val_set)}
    print(f"{args.model}: {n_params / 1e6:.3f} M params on {device}; train {len(train_set)} / val {len(val_set)} images; "
          f"{steps_per_epoch} steps of {args.batch_size} per epoch; {augment}", flush=True)

    stopped = None
    epochs_this_run = 0
    for epoch in range(start, args.epochs):
        set_head_only(model, epoch < _freeze_epochs(args))
        model.train()
        gen = torch.Generator().manual_seed(args.seed * 100003 + epoch)  # epoch order does not depend on resumes
        order = sample_epoch(train_labels.cpu(), epoch_size, args.balance, gen, groups).to(device)
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        bar = tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{args.epochs}", unit="step", leave=False,
                   mininterval=1.0)
        for step in bar:
            idx = order[step * args.batch_size:(step + 1) * args.batch_size]
            x = augment(train_images[idx].float() / 255)
            y = train_labels[idx]
            mix = mixup_batch(x, getattr(args, "mixup", 0.0))
            x = mix.images
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_amp):
                inputs = to_model_input(x, spec)
                logits = model(inputs)
                loss = mix.weight * F.cross_entropy(logits.float(), y, weight=class_weights,
                                                    label_smoothing=args.label_smoothing)
                if mix.weight < 1:
                    loss = loss + (1 - mix.weight) * F.cross_entropy(
                        logits.float(), y[mix.partner], weight=class_weights, label_smoothing=args.label_smoothing)
                if teacher is not None:
                    with torch.no_grad():
                        soft = F.softmax(teacher(inputs).float() / args.distill_temperature, dim=1)
                    kd = F.kl_div(F.log_softmax(logits.float() / args.distill_temperature, dim=1), soft,
                                  reduction="batchmean") * args.distill_temperature ** 2
                    loss = (1 - args.distill_alpha) * loss + args.distill_alpha * kd
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            if ema is not None:
                ema.update(model, step=epoch * steps_per_epoch + step)
            seen += len(idx)
            loss_sum += loss.item() * len(idx)
            correct += (logits.argmax(1) == y).sum().item()
            bar.set_postfix(loss=f"{loss_sum / seen:.4f}", img_s=f"{seen / (time.perf_counter() - t0):.0f}")
        bar.close()
        train_time = time.perf_counter() - t0
        eval_model = ema.module if ema is not None else model
        row = {"epoch": epoch + 1, "lr": optimizer.param_groups[0]["lr"], "train_loss": loss_sum / seen,
               "train_accuracy": correct / seen, **validate(eval_model, val_set, val_images, spec, device),
               "images_per_s": seen / train_time, "epoch_seconds": time.perf_counter() - t0}
        history.append(row)
        improved = row["val_macro_f1"] > best or args.final_fit  # final fit: no selection, the last epoch wins
        best = max(best, row["val_macro_f1"])
        bad_epochs = 0 if improved else bad_epochs + 1
        print(f"epoch {epoch + 1}/{args.epochs} loss {row['train_loss']:.4f} train acc {row['train_accuracy']:.4f} | "
              f"val loss {row['val_loss']:.4f} acc {row['val_accuracy']:.4f} macro-F1 {row['val_macro_f1']:.4f}"
              f"{' (best)' if improved else ''} | {row['images_per_s']:.0f} img/s, {row['epoch_seconds']:.1f} s",
              flush=True)
        common = dict(preprocess=preprocess, epoch=epoch, best_val_macro_f1=best, args=info["args"], split=split_record)
        if improved:
            _atomic_save(make_checkpoint(eval_model, args.model, val_metrics=row, **common), out_dir / "best.pth")
        epochs_this_run += 1
        if args.patience and bad_epochs >= args.patience and not args.final_fit:
            stopped = f"early stop at epoch {epoch + 1}: no val macro-F1 gain for {args.patience} epochs"
        elif epoch + 1 == args.epochs:
            stopped = f"completed {args.epochs} epochs"
        summary = {"best_val_macro_f1": best, "best_epoch": max(history, key=lambda h: h["val_macro_f1"])["epoch"],
                   "epochs_run": len(history), "params": n_params, "out_dir": str(out_dir), "finished": stopped}
        write_history(out_dir, history, {**info, "summary": summary})
        resume_extra = {"train_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}} \
            if ema is not None else {}
        _atomic_save(make_checkpoint(eval_model, args.model, optimizer=optimizer.state_dict(), scheduler=scheduler.state_dict(),
                                     rng=_rng_state(), history=history, bad_epochs=bad_epochs, finished=stopped,
                                     summary=summary, **resume_extra, **common), out_dir / "last.pth")
        if stopped:
            break
        if args.stop_after and epochs_this_run >= args.stop_after:
            print(f"stopping after {epochs_this_run} epoch(s) as asked; continue with --resume")
            break
    if args.final_fit:
        print(f"{summary['finished'] or 'paused'}; final fit: best.pth is the last epoch, {len(history)} "
              f"(in-sample val macro-F1 {history[-1]['val_macro_f1']:.4f}) -> {out_dir / 'best.pth'}")
    else:
        print(f"{summary['finished'] or 'paused'}; best val macro-F1 {best:.4f} at epoch {summary['best_epoch']} -> "
              f"{out_dir / 'best.pth'}")
    return summary


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser().parse_args(argv)
    args._given = {a.split("=")[0].lstrip("-").replace("-", "_") for a in argv if a.startswith("--")}
    try:
        return train(args)
    except Exception as exc:
        from pipeline.data import DataLayoutError
        from pipeline.models import PretrainedWeightsMissing

        if isinstance(exc, (DataLayoutError, PretrainedWeightsMissing, SplitError)):  # messages meant for the user
            raise SystemExit(f"error: {exc}") from None
        raise


if __name__ == "__main__":
    main()
