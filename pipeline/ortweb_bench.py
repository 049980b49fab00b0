"""Latency of ONNX models in onnxruntime-web (wasm, 1 thread) inside headless Chromium.

Serves `scripts/bench_ortweb.html`, onnxruntime-web's wasm build and the models from a temp dir (with
COOP/COEP so `performance.now()` has fine resolution) and drives the page with Playwright.

    python -m pipeline.ortweb_bench models/eye_state.onnx models/eye_state.int8.onnx
"""
from __future__ import annotations

import argparse
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

from pipeline.cli import non_negative_int, positive_int

REPO_ROOT = Path(__file__).resolve().parents[1]
PAGE = REPO_ROOT / "scripts" / "bench_ortweb.html"
ORT_DIST = REPO_ROOT / "node_modules" / "onnxruntime-web" / "dist"
ORT_FILES = ("ort.wasm.min.js", "ort-wasm-simd-threaded.wasm", "ort-wasm-simd-threaded.mjs")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ORT_WEB_VERSION = "1.30.0"


class OrtWebUnavailable(RuntimeError):
    """Chromium, Playwright or onnxruntime-web is missing."""


def find_ort_dist(cache_dir: Path | None = None) -> Path:
    """node_modules/onnxruntime-web/dist of the repo, else an npm install into a cache dir."""
    if all((ORT_DIST / f).is_file() for f in ORT_FILES):
        return ORT_DIST
    cache_dir = cache_dir or REPO_ROOT / ".cache" / "ortweb"
    dist = cache_dir / "node_modules" / "onnxruntime-web" / "dist"
    if all((dist / f).is_file() for f in ORT_FILES):
        return dist
    if not shutil.which("npm"):
        raise OrtWebUnavailable(f"onnxruntime-web not in {ORT_DIST} and npm is missing; run `npm ci` in {REPO_ROOT}")
    cache_dir.mkdir(parents=True, exist_ok=True)
    print(f"installing onnxruntime-web@{ORT_WEB_VERSION} into {cache_dir}", file=sys.stderr)
    subprocess.run(["npm", "install", f"onnxruntime-web@{ORT_WEB_VERSION}", "--no-save", "--no-audit", "--no-fund",
                    "--prefix", str(cache_dir)], check=True, stdout=subprocess.DEVNULL)
    return dist


class _Handler(http.server.SimpleHTTPRequestHandler):
    extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                      ".wasm": "application/wasm", ".mjs": "text/javascript", ".js": "text/javascript",
                      ".onnx": "application/octet-stream"}

    def end_headers(self):
        self.send_header("Cross-Origin-Opener-Policy", "same-origin")
        self.send_header("Cross-Origin-Embedder-Policy", "require-corp")
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, *args):
        pass


def _input_shape(model_path, batch: int) -> list:
    import onnx

    dims = onnx.load(str(model_path), load_external_data=False).graph.input[0].type.tensor_type.shape.dim
    shape = [d.dim_value if d.dim_value > 0 else 1 for d in dims]
    return [batch, *shape[1:]]


class OrtWebBench:
    """Context manager: `bench.run(model_path, batch=2)` -> dict with median_ms / p95_ms."""

    def __init__(self, chromium: str = CHROMIUM):
        self.chromium = chromium

    def __enter__(self):
        if not Path(self.chromium).exists():
            raise OrtWebUnavailable(f"{self.chromium} not found; install it with `apt-get install -y chromium`")
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            raise OrtWebUnavailable("playwright (python) is not installed; pip install playwright") from None
        self._tmp = tempfile.TemporaryDirectory(prefix="ortweb_bench_")
        self.root = Path(self._tmp.name)
        dist = find_ort_dist()
        for f in ORT_FILES:
            shutil.copy(dist / f, self.root / f)
        shutil.copy(PAGE, self.root / "index.html")
        handler = functools.partial(_Handler, directory=str(self.root))
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=self.chromium, args=CHROMIUM_FLAGS, headless=True)
        self._page = self._browser.new_page()
        self._page.goto(f"http://127.0.0.1:{self._server.server_port}/index.html")
        self._page.wait_for_function("window.benchReady === true", timeout=60_000)
        self._n = 0
        return self

    def run(self, model_path, batch: int = 2, warmup: int = 50, runs: int = 300, size: int | None = None) -> dict:
        """Eye models (gray [N,1,S,S] with preprocessing metadata) take `size`; any other float32 model
        gets its own input shape with the batch dimension set to `batch`."""
        shape = None
        if size is None:
            from pipeline.export import spec_from_onnx

            try:
                size = spec_from_onnx(model_path).size
            except ValueError:
                shape = _input_shape(model_path, batch)
        self._n += 1
        name = f"m{self._n}.onnx"
        shutil.copy(model_path, self.root / name)
        try:
            res = self._page.evaluate("([u, b, w, r, s, shape]) => window.benchModel(u, b, w, r, s, shape)",
                                      [name, batch, warmup, runs, size, shape])
        finally:
            os.remove(self.root / name)
        res["batch"] = batch
        return res

    def __exit__(self, *exc):
        for close in (self._browser.close, self._pw.stop, self._server.shutdown, self._tmp.cleanup):
            try:
                close()
            except Exception:
                pass
        return False


def _model_file(text: str) -> str:
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder; expected an .onnx model file")
    if not path.is_file():
        raise argparse.ArgumentTypeError(f"{text}: no such model file (expected an .onnx model)")
    return text


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+", type=_model_file)
    p.add_argument("--batch", type=positive_int, default=2)
    p.add_argument("--runs", type=positive_int, default=300)
    p.add_argument("--warmup", type=non_negative_int, default=50)
    args = p.parse_args(argv)
    with OrtWebBench() as bench:
        for m in args.models:
            r = bench.run(m, args.batch, args.warmup, args.runs)
            print(json.dumps({"model": m, **r}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
