"""pipeline.benchmark plumbing: rows, missing checkpoints, latency harnesses (onnxruntime CPU, ort-web in Chromium)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from pipeline import benchmark
from pipeline.export import export_model
from pipeline.models import create_model, make_checkpoint
from pipeline.ortweb_bench import CHROMIUM, OrtWebBench, OrtWebUnavailable


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    model = create_model("test_efficientnet").eval()
    ckpt = make_checkpoint(model, "test_efficientnet")
    torch.save(ckpt, tmp / "m.pth")
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)  # latency only
    export_model(model, ckpt, tmp / "m.pth", tmp / "m.onnx", images=images, verbose=False)
    return tmp / "m.onnx"


def test_rows_notes_and_missing_checkpoints(tmp_path):
    rows = benchmark.parse_rows(["base=runs/none/best.pth", "ship=models/none.onnx"], ["base=seed CNN, 3 epochs"])
    assert [(r.name, r.path, r.note) for r in rows] == [("base", "runs/none/best.pth", "seed CNN, 3 epochs"),
                                                         ("ship", "models/none.onnx", "")]
    with pytest.raises(ValueError, match="NAME=PATH"):
        benchmark.parse_rows(["no-equals-sign"], [])
    with pytest.raises(ValueError, match="one of the rows"):
        benchmark.parse_rows(["a=x.pth"], ["b=note for an unknown row"])

    results = benchmark.run_benchmark(rows, sets=None, workdir=tmp_path, ortweb=False, verbose=False)
    assert [r["error"].split(":")[0] for r in results] == ["missing", "missing"]
    table = benchmark.markdown_table(results)
    assert table.count("missing: ") == 2 and "seed CNN, 3 epochs" in table


def test_onnxruntime_cpu_latency(tiny_onnx):
    r = benchmark.ort_cpu_latency(tiny_onnx, batch=2, warmup=5, runs=30)
    assert r["batch"] == 2 and r["runs"] == 30
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p95_ms"]


@pytest.mark.browser
def test_ortweb_latency_in_headless_chromium(tiny_onnx):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} missing (apt-get install chromium)")
    try:
        with OrtWebBench() as bench:
            r = bench.run(tiny_onnx, batch=2, warmup=5, runs=30)
    except OrtWebUnavailable as e:
        pytest.skip(str(e))
    assert r["threads"] == 1 and r["batch"] == 2 and r["runs"] == 30
    assert r["cross_origin_isolated"]  # COOP/COEP served, so performance.now() has fine resolution
    assert 0 < r["min_ms"] <= r["median_ms"] <= r["p95_ms"]


def test_ortweb_bench_refuses_a_missing_model_and_zero_runs_before_starting_a_browser(tmp_path, capsys):
    from pipeline.ortweb_bench import main

    shipped = str(Path(__file__).resolve().parents[1] / "models" / "eye_state.onnx")
    for argv, said in (([str(tmp_path / "none.onnx")], "none.onnx: no such model file"),
                       ([str(tmp_path)], "is a folder; expected an .onnx model file"),
                       ([shipped, "--runs", "0"], "--runs: 0: expected a whole number of at least 1")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 2 and said in capsys.readouterr().err
