"""Side-by-side comparison: each model as fp32, dynamic int8 (the seed's recipe) and static int8 QDQ.

    python -m pipeline.benchmark --row baseline=runs/baseline/best.pth --row shipped=models/eye_state.onnx \
        --note "baseline=small CNN, 10 epochs CPU" --out docs/benchmark.json --md docs/BENCHMARKS_table.md

A row is NAME=PATH: a checkpoint (.pth, exported here) or an fp32 ONNX (used as is; a sibling
`<stem>.int8.onnx`, as shipped, is used as its static int8). Missing paths are reported as missing.
Columns: accuracy, precision, recall, macro-F1 on the test subjects of the split; file size; onnxruntime
CPU latency and onnxruntime-web (wasm) latency in headless Chromium, both 1 thread, batch 2 (= two eyes),
median and p95 over `--runs` runs after warm-up.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipeline.cli import non_negative_int, output_file, positive_int
from pipeline.export import INPUT_NAME, export_checkpoint, onnx_session, read_metadata, spec_from_onnx
from pipeline.quantize import CALIB_METHODS, DEFAULT_SPLIT, EvalSets, load_eval_sets, quantize, score

VARIANTS = ("fp32", "dynamic int8", "static int8")


@dataclass
class Row:
    name: str
    path: str
    note: str = ""
    variants: dict = field(default_factory=dict)  # variant -> onnx path
    error: str = ""
    parity: dict = field(default_factory=dict)


def parse_rows(rows: list[str], notes: list[str]) -> list[Row]:
    out = []
    for r in rows:
        name, sep, path = r.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"--row {r!r}: expected NAME=PATH (a .pth checkpoint or an fp32 .onnx)")
        out.append(Row(name, path))
    by_name = {r.name: r for r in out}
    for n in notes:
        name, sep, text = n.partition("=")
        if not sep or name not in by_name:
            raise ValueError(f"--note {n!r}: expected NAME=TEXT for one of the rows {list(by_name)}")
        by_name[name].note = text
    return out


def checkpoint_note(path: str) -> str:
    """What the checkpoint says about its training run (model, epochs, images), for the note column."""
    from pipeline.models import read_torch_file

    ckpt = read_torch_file(path, map_location="cpu")
    args = ckpt.get("args") or {}
    parts = [str(ckpt.get("model", "?"))]
    if args.get("pretrained"):
        parts.append("ImageNet-pretrained")
    if "epoch" in ckpt:  # pipeline.train stores the 0-based epoch of the best validation score
        total = args.get("epochs")
        parts.append(f"best epoch {ckpt['epoch'] + 1}" + (f" of {total}" if total else ""))
    if args.get("max_train_images"):
        parts.append(f"{args['max_train_images']} train images")
    if args.get("device") not in (None, "auto"):
        parts.append(f"on {args['device']}")
    return ", ".join(parts)


def prepare_row(row: Row, workdir: Path, sets: EvalSets, calib_method: str, verbose: bool) -> None:
    """Fill row.variants with fp32 / dynamic / static ONNX paths; sets row.error on failure."""
    src = Path(row.path)
    if not src.is_file():
        row.error = f"missing: {row.path} not found"
        return
    fp32 = workdir / f"{row.name}.fp32.onnx"
    if src.suffix == ".onnx":
        fp32 = src
        shipped_int8 = src.with_name(f"{src.stem}.int8.onnx")
        if not row.note:
            row.note = read_metadata(src).get("eyestate.model", "")
    else:
        shipped_int8 = None
        if not row.note:
            row.note = checkpoint_note(str(src))
        # Reference rows may have huge logits (e.g. a briefly trained EfficientNetV2-S: |logit| ~ 250), where an
        # absolute 1e-4 is below float32 rounding; the shipped model keeps the absolute check in pipeline.export.
        row.parity = export_checkpoint(src, fp32, relative=True, verbose=verbose)
    row.variants["fp32"] = str(fp32)
    dyn = workdir / f"{row.name}.dynamic.onnx"
    quantize(fp32, dyn, sets, mode="dynamic", force=True, verbose=verbose)
    row.variants["dynamic int8"] = str(dyn)
    if shipped_int8 is not None and shipped_int8.is_file():
        row.variants["static int8"] = str(shipped_int8)
    else:
        st = workdir / f"{row.name}.static.onnx"
        quantize(fp32, st, sets, mode="static", method=calib_method, force=True, verbose=verbose)
        row.variants["static int8"] = str(st)


def ort_cpu_latency(path, batch: int = 2, warmup: int = 50, runs: int = 300) -> dict:
    sess = onnx_session(path, threads=1)
    size = spec_from_onnx(path).size
    x = np.random.default_rng(0).uniform(-1, 1, (batch, 1, size, size)).astype(np.float32)
    for _ in range(warmup):
        sess.run(None, {INPUT_NAME: x})
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {INPUT_NAME: x})
        times.append(1000 * (time.perf_counter() - t0))
    return {"median_ms": statistics.median(times), "p95_ms": float(np.percentile(times, 95)),
            "min_ms": min(times), "runs": runs, "batch": batch}


def run_benchmark(rows: list[Row], sets: EvalSets, workdir: Path, *, runs: int = 300, warmup: int = 50,
                  ortweb: bool = True, calib_method: str = "auto", verbose: bool = True) -> list[dict]:
    for row in rows:
        if verbose:
            print(f"== {row.name}: {row.path}", flush=True)
        try:
            prepare_row(row, workdir, sets, calib_method, verbose)
        except Exception as e:  # one broken row must not hide the others
            row.error = f"failed: {type(e).__name__}: {e}"
            traceback.print_exc()
    results = []
    for row in rows:
        if row.error:
            results.append({"row": row.name, "path": row.path, "note": row.note, "error": row.error})
            continue
        for variant, path in row.variants.items():
            spec = spec_from_onnx(path)
            metrics = score(path, sets.test, spec)
            meta = read_metadata(path)
            results.append({
                "row": row.name, "path": row.path, "note": row.note, "variant": variant, "onnx": path,
                "model": meta.get("eyestate.model", ""), "quantization": json.loads(meta.get("eyestate.quantization", "{}")),
                "size_bytes": os.path.getsize(path), "metrics": metrics,
                "parity": {k: row.parity[k] for k in ("max_abs_diff", "max_abs_logit", "parity_limit")
                           if variant == "fp32" and k in row.parity},
                "ort_cpu": ort_cpu_latency(path, runs=runs, warmup=warmup),
            })
            if verbose:
                r = results[-1]
                print(f"  {variant:13s} acc {100 * metrics['accuracy']:.2f}  size {r['size_bytes'] / 1024:.0f} KB  "
                      f"ORT CPU {r['ort_cpu']['median_ms']:.3f} ms", flush=True)
    if ortweb:
        from pipeline.ortweb_bench import OrtWebBench, OrtWebUnavailable

        try:
            with OrtWebBench() as bench:
                for r in results:
                    if "onnx" in r:
                        r["ort_web"] = bench.run(r["onnx"], batch=2, warmup=warmup, runs=runs)
        except OrtWebUnavailable as e:
            print(f"ort-web latency skipped: {e}", file=sys.stderr)
    return results


def _pct(v) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


def _fmt_ms(d: dict | None) -> str:
    return f"{d['median_ms']:.3f} / {d['p95_ms']:.3f}" if d else "n/a"


def markdown_table(results: list[dict], test_note: str = "") -> str:
    head = ("| model | variant | accuracy | precision | recall | macro-F1 | per-subject acc. | size (KB) "
            "| ORT CPU ms median / p95 | ort-web ms median / p95 | ort-web ms per eye | note |")
    lines = [head, "|---" * (head.count("|") - 1) + "|"]
    for r in results:
        if "error" in r:
            error = r["error"].splitlines()[0][:160].replace("|", "/")
            lines.append(f"| {r['row']} | — | {error} | | | | | | | | | {r.get('note', '')} |")
            continue
        m = r["metrics"]
        web = r.get("ort_web")
        per_eye = f"{web['median_ms'] / web['batch']:.3f}" if web else "n/a"
        q = r["quantization"]
        variant = r["variant"]
        if q.get("mode") == "static":
            variant += f" ({q.get('activations')} act., {q.get('calibration')})"
        lines.append(
            f"| {r['row']} | {variant} | {100 * m['accuracy']:.2f} | {100 * m['precision']:.2f} | "
            f"{100 * m['recall']:.2f} | {100 * m['macro_f1']:.2f} | {_pct(m.get('balanced_subject_accuracy'))} | "
            f"{r['size_bytes'] / 1024:.1f} | "
            f"{_fmt_ms(r.get('ort_cpu'))} | {_fmt_ms(web)} | {per_eye} | {r['note']} |")
    if test_note:
        lines += ["", test_note]
    return "\n".join(lines) + "\n"


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict:
    import onnxruntime

    from pipeline.ortweb_bench import ORT_WEB_VERSION

    return {"cpu": _cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(), "onnxruntime": onnxruntime.__version__,
            "onnxruntime_web": ORT_WEB_VERSION, "load_average": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--row", action="append", default=[], help="NAME=PATH (.pth or fp32 .onnx), repeatable")
    p.add_argument("--note", action="append", default=[], help="NAME=TEXT for the note column, repeatable")
    p.add_argument("--data", default=None, help="MRL zip/folder (default ../shared/data/mrl/mrlEyes_2018_01_dev.zip)")
    p.add_argument("--split", default=str(DEFAULT_SPLIT))
    p.add_argument("--calib-images", type=positive_int, default=1000)
    p.add_argument("--calib-method", default="auto", choices=("auto", *CALIB_METHODS))
    p.add_argument("--max-val", type=non_negative_int, default=2000,
                   help="validation images ranking the calibrations (0 = all)")
    p.add_argument("--max-test", type=non_negative_int, default=0, help="cap the test images (class-balanced; 0 = all)")
    p.add_argument("--runs", type=positive_int, default=300, help="timed runs per latency (>= 200)")
    p.add_argument("--warmup", type=non_negative_int, default=50)
    p.add_argument("--no-ortweb", action="store_true", help="skip the browser latency")
    p.add_argument("--workdir", default=None, help="keep the exported models here (default: a temp dir)")
    p.add_argument("--out", type=output_file, default="docs/benchmark.json")
    p.add_argument("--md", type=output_file, default="docs/BENCHMARKS_table.md")
    args = p.parse_args(argv)

    import torch

    torch.set_num_threads(min(2, torch.get_num_threads()))
    from pipeline.data import default_data_path

    if not args.row:
        p.error("give at least one --row NAME=PATH")
    try:
        rows = parse_rows(args.row, args.note)
        data = args.data or str(default_data_path())
        present = [r for r in rows if Path(r.path).is_file()]
        size = 48
        if present and present[0].path.endswith(".onnx"):
            size = spec_from_onnx(present[0].path).size
        sets = load_eval_sets(data, size, args.split, args.calib_images, args.max_val or None, args.max_test or None)
    except (ValueError, RuntimeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="eyestate_bench_") as tmp:
        workdir = Path(args.workdir or tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        results = run_benchmark(rows, sets, workdir, runs=args.runs, warmup=args.warmup,
                                ortweb=not args.no_ortweb, calib_method=args.calib_method)
    command = "python -m pipeline.benchmark " + shlex.join(sys.argv[1:] if argv is None else argv)
    table = markdown_table(results, (
        f"Test data: {sets.note}. Precision / recall: class \"closed\" is positive. Per-subject acc.: mean of the "
        f"test subjects' accuracies. Latency: batch 2 (two eyes), 1 thread, {args.runs} runs after {args.warmup} "
        f"warm-up; CPU {environment()['cpu']}, load average {os.getloadavg()[0]:.1f} at the end."))
    print(table)
    report = {"command": command, "environment": environment(), "data": sets.note, "results": results}
    for path, text in ((args.out, json.dumps(report, indent=2, default=float) + "\n"),
                       (args.md, f"Command: `{command}`\n\n{table}")):
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            Path(path).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
