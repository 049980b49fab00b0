"""Compare training recipes over the split's folds by subject: held-out macro-F1 per fold and the webcam replay of
every fold model, so that a recipe is judged on many people and several models instead of one draw of the seed.
Optionally, each fold model alone on open/ closed/ folders (`--eye-folder tight=runs/webcam_eyes/scale_1.5`).

    for f in 0 1 2 3 4; do python -m pipeline.train ... --fold $f --out-dir runs/folds/A/fold$f; done   # per recipe
    python scripts/recipe_folds.py --recipe A=runs/folds/A --recipe B=runs/folds/B --json runs/folds/summary.json

Per fold: held-out macro-F1 as the mean of the last three epochs (a refit keeps the last epoch, so the end of the
schedule is what counts, not its best spike). Per fold model: `last.pth` is exported and replayed through the live
pipeline on the videos (default: the shared focus videos); pooled blink F1 and frame F1 with labels shifted one frame.
Exports and replays are cached beside each run (`eye_state.onnx`, `video.json`).
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_VIDEOS = sorted((REPO.parent / "shared" / "data" / "videos" / "focus").glob("*.avi"))


def held_out_f1(run: Path, last: int = 3) -> float | None:
    """Mean val macro-F1 of the last epochs; None while the run has not finished (its history.json summary says
    "completed N epochs" or "early stop ..." once it has)."""
    path = run / "history.json"
    history = json.loads(path.read_text()) if path.exists() else {}
    if not history.get("summary", {}).get("finished"):
        return None
    return statistics.fmean(e["val_macro_f1"] for e in history["history"][-last:])


def replay(run: Path, videos: list[Path]) -> dict:
    onnx, result = run / "eye_state.onnx", run / "video.json"
    if not result.exists():
        if not onnx.exists():
            subprocess.run([sys.executable, "-m", "pipeline.export", "--weights", str(run / "last.pth"),
                            "--out", str(onnx)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
        subprocess.run([sys.executable, "-m", "pipeline.video", *map(str, videos), "--model", str(onnx),
                        "--json", str(result)], check=True, cwd=REPO, stdout=subprocess.DEVNULL)
    pooled = json.loads(result.read_text())["pooled"]
    return {"blink_f1": pooled["blink"]["f1"], "frame_f1_shifted": pooled["frame_shifted"]["f1"]}


def folder_f1(run: Path, name: str, folder: Path) -> float:
    """Classifier alone on an open/ closed/ folder (e.g. scripts/webcam_eye_crops.py output): macro-F1."""
    result = run / f"eval_{name}.json"
    if not result.exists():
        subprocess.run([sys.executable, "-m", "pipeline.evaluate", "--weights", str(run / "last.pth"), "--data",
                        str(folder), "--json", str(result)], check=True, cwd=REPO, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return json.loads(result.read_text())["macro_f1"]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--recipe", action="append", required=True, metavar="NAME=DIR",
                    help="recipe name and the folder holding its fold<i> run folders (give two or more)")
    ap.add_argument("--videos", nargs="*", type=Path, default=DEFAULT_VIDEOS, help="labelled videos for the replay")
    ap.add_argument("--no-replay", action="store_true", help="held-out macro-F1 only")
    ap.add_argument("--eye-folder", action="append", default=[], metavar="NAME=DIR",
                    help="also score each fold model alone on an open/ closed/ folder (macro-F1)")
    ap.add_argument("--json", type=Path, help="write the per-fold numbers here")
    args = ap.parse_args(argv)

    recipes = dict(r.split("=", 1) for r in args.recipe)
    table: dict[str, list[dict]] = {}
    for name, folder in recipes.items():
        runs = sorted((p for p in Path(folder).glob("fold[0-9]*") if p.is_dir() and p.name[4:].isdigit()),
                      key=lambda p: int(p.name[4:]))  # fold3/, not a fold3.log beside it
        if not runs:
            raise SystemExit(f"{folder}: no fold<i> run folders (expected {folder}/fold0, {folder}/fold1, ...)")
        table[name] = []
        for run in runs:
            f1 = held_out_f1(run)
            if f1 is None:
                print(f"{name} {run.name}: skipped, training has not finished", file=sys.stderr)
                continue
            row = {"fold": int(run.name[4:]), "held_out_macro_f1": f1}
            if not args.no_replay:
                row.update(replay(run, args.videos))
            for spec in args.eye_folder:
                folder_name, folder = spec.split("=", 1)
                row[f"{folder_name}_macro_f1"] = folder_f1(run, folder_name, Path(folder))
            table[name].append(row)
            print(f"{name} {run.name}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items() if k != "fold"),
                  flush=True)

    if not all(table.values()):
        raise SystemExit("no finished fold run for " + ", ".join(n for n, rows in table.items() if not rows))
    metrics = [k for k in table[next(iter(table))][0] if k != "fold"]
    print("\n| recipe | fold | " + " | ".join(metrics) + " |\n| --- | ---: |" + " ---: |" * len(metrics))
    for name, rows in table.items():
        for row in rows:
            print(f"| {name} | {row['fold']} | " + " | ".join(f"{row[m]:.3f}" for m in metrics) + " |")
        print(f"| **{name}** | mean | " + " | ".join(f"**{statistics.fmean(r[m] for r in rows):.3f}**"
                                                   for m in metrics) + " |")
    names = list(table)
    for other in names[1:]:
        common = {r["fold"] for r in table[names[0]]} & {r["fold"] for r in table[other]}
        base = [r for r in table[names[0]] if r["fold"] in common]
        rows = [r for r in table[other] if r["fold"] in common]
        print(f"{other} - {names[0]} over folds {sorted(common)}:")
        for m in metrics:
            diffs = [b[m] - a[m] for a, b in zip(base, rows)]
            print(f"  {m}: mean {statistics.fmean(diffs):+.3f}, per fold "
                  + " ".join(f"{d:+.3f}" for d in diffs))
    if args.json:
        args.json.write_text(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
