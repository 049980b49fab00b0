"""Can the page be left running for an hour? Memory of a long live session in headless Chromium.

    python scripts/soak_page.py [--minutes 15] [--every 60] [--video FILE] [--no-build]

The fake camera loops a clip (default: 20 s of the shared focus video mahie_test_1); Start is clicked once and the
page runs untouched. Every `--every` seconds one row: frames processed so far, the page's renderer process memory
from /proc (anonymous = the process's own heap, wasm and JS included; shared = memory mapped from other processes,
such as the camera's frame buffers), the JS heap (DevTools), Pyodide's WebAssembly memory and the DOM node count.
Linux only (reads /proc). The page's own buffers are bounded: window.eyestateLog keeps 20,000 frames and the
session CSV the newest hour.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser_utils import FOCUS_VIDEOS, bench_dist, camera_y4m, launch, serve, wait_state  # noqa: E402

# Pyodide's wasm memory, reached through the page's App object (a PyProxy): its module's builtins import pyodide_js.
PYODIDE_HEAP = """() => { const builtins = window.eyestateApp.__class__.__init__.__globals__.get('__builtins__');
    return builtins.get('__import__')('pyodide_js')._module.HEAP8.length; }"""


def renderer_memory() -> dict:
    """/proc status of the largest Chromium renderer process (the page's), in MB."""
    best = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if b"--type=renderer" not in Path(f"/proc/{pid}/cmdline").read_bytes():
                continue
            fields = {line.split(":")[0]: int(line.split()[1]) / 1024
                      for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                      if line.startswith(("VmRSS", "RssAnon", "RssShmem"))}
        except OSError:
            continue
        if fields.get("VmRSS", 0) > best.get("VmRSS", 0):
            best = fields
    return best


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--every", type=float, default=60.0, help="seconds between rows")
    parser.add_argument("--video", type=Path, help="camera video (default: 20 s of the shared focus video)")
    parser.add_argument("--no-build", action="store_true", help="use the existing dist/")
    args = parser.parse_args(argv)
    dist = bench_dist(args.no_build, None if Path("/proc/self/status").exists() else "needs Linux /proc")
    if dist is None:
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        source = args.video or FOCUS_VIDEOS / "mahie_test_1.avi"
        camera = camera_y4m(source, Path(tmp) / "camera.y4m")
        with serve(dist) as base, sync_playwright() as playwright:
            browser = launch(playwright, camera)
            try:
                page = browser.new_context(service_workers="block").new_page()
                cdp = page.context.new_cdp_session(page)
                cdp.send("Performance.enable")
                page.goto(base + "index.html")
                wait_state(page, "ready", 180_000)
                page.click("#start")
                wait_state(page, ["running", "no-face", "camera-dark", "uncertain"], 30_000)
                print(f"camera: {source.name if source.exists() else 'synthetic'} looped; Chromium headless, "
                      f"--disable-gpu\n")
                print("| minutes | frames processed | renderer anonymous MB | renderer shared MB | JS heap MB "
                      "| Pyodide wasm MB | DOM nodes | page state |")
                print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
                started = time.monotonic()
                frames_before, stalled = None, False
                while True:
                    elapsed = time.monotonic() - started
                    metrics = {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}
                    memory = renderer_memory()
                    frames = page.evaluate("window.eyestateApp.session.frames")  # all, also rows the CSV dropped
                    print(f"| {elapsed / 60:.1f} | {frames} | {memory.get('RssAnon', 0):.0f} | "
                          f"{memory.get('RssShmem', 0):.0f} | {metrics['JSHeapUsedSize'] / 1e6:.1f} | "
                          f"{page.evaluate(PYODIDE_HEAP) / 1e6:.0f} | {metrics['Nodes']:.0f} | "
                          f"{page.get_attribute('#status', 'data-state')} |", flush=True)
                    if elapsed >= args.minutes * 60:
                        break
                    if frames_before is not None and frames <= frames_before:
                        print("no new frame since the last row: the page stopped processing", file=sys.stderr)
                        stalled = True
                    frames_before = frames
                    time.sleep(min(args.every, max(0.0, args.minutes * 60 - elapsed)))
            finally:
                browser.close()
    return 1 if stalled else 0


if __name__ == "__main__":
    sys.exit(main())
