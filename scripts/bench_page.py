"""Benchmark the built page in headless Chromium with a fake camera (640x480 unless the video is larger).

    python scripts/bench_page.py [--video FILE] [--camera-fps 60] [--seconds 15] [--variant "?eye=int8" ...]
                                 [--repeat 3] [--click-early] [--no-build] [--cpu-throttle 4 [--throttle-for 10]]

Per variant (a query string the page understands: eye=fp32|int8, threads=N): processed FPS, p50/p95
frame time (pipeline + drawing, from the page's own per-frame log), first-label time after
navigation, total bytes loaded, each start-up stage (ms since navigation) and the median time of each
per-frame stage. Prints Markdown tables. The page can process at most as many frames as the camera
delivers; `--camera-fps 60` (frames repeated) measures what the pipeline could do beyond a 30 fps camera.
Start is clicked when the page says "ready"; `--click-early` also measures each variant clicked right after
navigation (a person who clicks at once, or a returning visitor's page opened with Start in mind).
`--throttle-for S` lifts the CPU throttling S seconds after Start (a laptop busy elsewhere for a while) and measures
from then on: the table's last columns say when light mode started and when the full pipeline came back.
`--background` measures with another tab in front (the page is not rendered; frames come from its worker clock).
`--second-visit` measures start-up when the page is opened a second time: with the files in the browser's HTTP cache
and no offline copy, with the offline copy (site/sw.js) and the site up, and with the site down (served from the copy).
`--clip-frames N` measures recorded-clip mode instead: the first N frames of the video as a lossless WebM file, chosen
in the page; how long until every frame is processed (variants such as "?cliprate=2" change the playback rate).
`--clip FILE` measures recorded-clip mode on FILE as it is (any video the browser plays: variable frame rates, stills).
"""
from __future__ import annotations

import argparse
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from browser_utils import (FOCUS_VIDEOS, ROOT, bench_dist, camera_y4m, launch, serve, video_to_webm,  # noqa: E402
                           wait_state)

STAGES = ["html_ms", "pyodide_ms", "modules_ms", "face_detection_ms", "face_landmark_ms", "eye_state_ms",
          "models_ms", "ready_ms", "camera_ms", "first_label_ms"]
EARLY = " +early click"  # variant suffix: Start clicked right after navigation


def percentile(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def measure(playwright, base: str, video: Path, seconds: float, variant: str, warmup: float,
            cpu_throttle: float = 1.0, throttle_for: float | None = None, background: bool = False) -> dict:
    browser = launch(playwright, video)
    try:
        page = browser.new_context(service_workers="block").new_page()  # no offline copy (site/sw.js) while measuring
        cdp = page.context.new_cdp_session(page)
        if cpu_throttle > 1:  # DevTools' CPU throttling: the page's main thread runs this many times slower
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": cpu_throttle})
        query = variant.removesuffix(EARLY)
        page.goto(base + "index.html" + query)
        if query == variant:
            wait_state(page, "ready", 180_000)
        page.click("#start")
        clicked = page.evaluate("performance.now()")
        wait_state(page, ["running", "no-face", "camera-dark", "uncertain"], 30_000)
        try:
            page.wait_for_function("window.eyestateTimings.first_label_ms !== undefined", timeout=20_000)
        except Exception:
            print(f"{variant or '(default)'}: no open/closed label within 20 s of the first frame")
        if throttle_for is not None:
            time.sleep(max(0.0, throttle_for - (page.evaluate("performance.now()") - clicked) / 1000))
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        if background:  # another tab in front: the page is no longer rendered
            other = page.context.new_page()
            other.goto("about:blank")
            other.bring_to_front()
        time.sleep(warmup)
        start = page.evaluate("performance.now()")
        time.sleep(seconds)
        log = page.evaluate("Array.from(window.eyestateLog)")
        timings = page.evaluate("window.eyestateTimings")
        loaded = page.evaluate("""() => {
            const nav = performance.getEntriesByType('navigation')[0];
            const res = performance.getEntriesByType('resource');
            return (nav ? nav.encodedBodySize : 0) + res.reduce((s, e) => s + e.encodedBodySize, 0);
        }""")
        threads = page.evaluate("globalThis.crossOriginIsolated")
    finally:
        browser.close()
    window = [e for e in log if e["done"] >= start]
    if len(window) < 2:
        raise RuntimeError(f"only {len(window)} frames processed in {seconds} s")
    frame_ms = [e["frameMs"] for e in window]
    stage_names = sorted({k for e in window for k in (e.get("stages") or {})})
    stages = {k: statistics.median(e["stages"][k] for e in window if k in (e.get("stages") or {}))
              for k in stage_names}
    span_s = (window[-1]["done"] - window[0]["done"]) / 1000
    timings["start_clicked_ms"] = clicked
    label = (query or "(default)") + variant[len(query):] + (" +background tab" if background else "")
    return {"variant": label, "fps": (len(window) - 1) / span_s,
            "p50_ms": statistics.median(frame_ms), "p95_ms": percentile(frame_ms, 0.95),
            "frames": len(window), "bytes": loaded, "timings": timings, "isolated": threads, "stages": stages,
            "pictures": " then ".join(dict.fromkeys(e.get("size", "?") for e in window))}


def measure_clip(playwright, base: str, clip: Path, variant: str, cpu_throttle: float = 1.0) -> dict:
    browser = launch(playwright, None)
    try:
        page = browser.new_page()
        console = []
        page.on("console", lambda message: console.append(message.text))
        page.goto(base + "index.html" + variant)
        wait_state(page, "ready", 180_000)
        if cpu_throttle > 1:  # after start-up: the clip is read on a weak device
            page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": cpu_throttle})
        start = time.perf_counter()
        page.set_input_files("#clip-file", str(clip))
        state = wait_state(page, ["clip-done", "clip-failed"], 900_000)
        seconds = time.perf_counter() - start
        log = [e for e in page.evaluate("Array.from(window.eyestateLog)") if e["app"] == "processing-clip"]
        rows = page.input_value("#clip-csv").strip().count("\n")  # CSV lines after the header: frames processed
        rate = page.get_attribute("#clip-summary", "data-rate")
    finally:
        browser.close()
    if state != "clip-done" or not log:
        raise RuntimeError(f"{variant or '(default)'}: the clip was not processed ({state})")
    # page_clip.py's closing line: "...; N skipped by the browser and fetched again by seeking; ..."
    skipped = [int(m.group(1)) for line in console if (m := re.search(r"(\d+) skipped by the browser", line))]
    return {"variant": variant or "(default)", "seconds": seconds, "fps": rows / seconds, "rate": float(rate),
            "pipeline_ms": statistics.median(e["stages"]["total"] for e in log if "total" in e["stages"]),
            "frames": rows, "skipped": skipped[-1] if skipped else float("nan")}


SECOND_VISITS = {"HTTP cache, no offline copy": "block", "offline copy, site up": "allow",
                 "offline copy, site down": "down"}


def measure_second_visit(playwright, dist: Path, camera: Path, mode: str) -> dict:
    """Start-up of the second visit in one browser context: ready and first label, s since navigation."""
    browser = launch(playwright, camera)
    try:
        context = browser.new_context(service_workers="block" if mode == "block" else "allow")
        page = context.new_page()
        with serve(dist) as base:
            page.goto(base + "index.html")
            wait_state(page, "ready", 180_000)
            if mode != "block":
                page.wait_for_function("document.getElementById('offline').dataset.state === 'ready'", timeout=120_000)
            if mode != "down":
                return second_visit(page, base)
        return second_visit(page, base)  # the server is gone
    finally:
        browser.close()


def second_visit(page, base: str) -> dict:
    page.goto(base + "index.html")
    wait_state(page, "ready", 180_000)
    page.click("#start")
    page.wait_for_function("window.eyestateTimings.first_label_ms !== undefined", timeout=60_000)
    timings = page.evaluate("window.eyestateTimings")
    return {"ready_s": timings["ready_ms"] / 1000, "first_label_s": timings["first_label_ms"] / 1000,
            "offline": page.get_attribute("#offline", "data-state")}


def second_visit_benchmark(args, camera: Path) -> int:
    from playwright.sync_api import sync_playwright

    runs = {name: [] for name in SECOND_VISITS}
    with sync_playwright() as playwright:
        for _ in range(args.repeat):
            for name, mode in SECOND_VISITS.items():
                runs[name].append(measure_second_visit(playwright, ROOT / "dist", camera, mode))
    print(f"\nsecond visit (Start clicked when ready); Chromium headless, --disable-gpu; median of {args.repeat} "
          f"run(s)\n")
    print("| second visit | ready s | first label s | #offline says |")
    print("| --- | ---: | ---: | --- |")
    for name, mine in runs.items():
        print(f"| {name} | {statistics.median(r['ready_s'] for r in mine):.2f} | "
              f"{statistics.median(r['first_label_s'] for r in mine):.2f} | {mine[-1]['offline']} |")
    return 0


def clip_benchmark(args, source: Path, base_dir: Path) -> int:
    from playwright.sync_api import sync_playwright

    if args.clip:
        clip, what = args.clip, args.clip.name
    else:
        clip = video_to_webm(source, base_dir / "clip.webm", 0, args.clip_frames)
        what = f"the first {args.clip_frames} frames of {source.name} as lossless WebM"
    runs = []
    with serve(ROOT / "dist") as base, sync_playwright() as playwright:
        for _ in range(args.repeat):
            for variant in args.variant or [""]:
                runs.append(measure_clip(playwright, base, clip, variant, args.cpu_throttle))
    throttle = f", CPU throttled {args.cpu_throttle:g}x" if args.cpu_throttle > 1 else ""
    print(f"\nclip mode: {what}; Chromium headless, --disable-gpu{throttle}; median of {args.repeat} run(s)\n")
    print("| variant | playback rate | frames processed | skipped, fetched by seeking | seconds | seconds, each run "
          "| frames per second | pipeline median ms |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for variant in dict.fromkeys(r["variant"] for r in runs):
        mine = [r for r in runs if r["variant"] == variant]
        med = {k: statistics.median(r[k] for r in mine)
               for k in ("rate", "frames", "skipped", "seconds", "fps", "pipeline_ms")}
        each = ", ".join(f"{r['seconds']:.1f}" for r in mine)
        print(f"| {variant} | {med['rate']:.2f} | {med['frames']:.0f} | {med['skipped']:.0f} | {med['seconds']:.1f} | "
              f"{each} | {med['fps']:.1f} | {med['pipeline_ms']:.1f} |")
    return 0


def median_result(runs: list) -> dict:
    """Per-number median over repeated runs of one variant (start-up stages and per-frame stages too)."""
    def med(values):
        return statistics.median(values) if values else float("nan")

    out = dict(runs[0])
    for key in ("fps", "p50_ms", "p95_ms", "bytes", "frames"):
        out[key] = med([r[key] for r in runs])
    out["timings"] = {k: med([r["timings"][k] for r in runs if k in r["timings"]])
                      for k in dict.fromkeys(k for r in runs for k in r["timings"])}
    out["stages"] = {k: med([r["stages"][k] for r in runs if k in r["stages"]]) for k in runs[0]["stages"]}
    out["variant"] = f"{runs[0]['variant']} (median of {len(runs)})"
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--video", type=Path, help="camera video (default: 20 s of the shared focus video)")
    parser.add_argument("--camera-fps", type=float, default=None,
                        help="re-time the camera video to this frame rate (default: the video's own, ~30)")
    parser.add_argument("--seconds", type=float, default=15.0, help="measured seconds per variant")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds after the first label before measuring")
    parser.add_argument("--variant", action="append", default=None,
                        help='query string per run, e.g. "?eye=int8" (repeatable; default: the page as built)')
    parser.add_argument("--repeat", type=int, default=1,
                        help="rounds over all variants; the tables then show the median of the rounds")
    parser.add_argument("--click-early", action="store_true",
                        help="also run each variant with Start clicked right after navigation")
    parser.add_argument("--no-build", action="store_true", help="use the existing dist/")
    parser.add_argument("--cpu-throttle", type=float, default=1.0,
                        help="slow the page's CPU down N times (DevTools emulation of a weak laptop)")
    parser.add_argument("--throttle-for", type=float, default=None,
                        help="lift --cpu-throttle this many seconds after Start, then warm up and measure")
    parser.add_argument("--background", action="store_true",
                        help="measure with another tab in front (the page keeps watching on its worker clock)")
    parser.add_argument("--second-visit", action="store_true",
                        help="measure start-up of a second visit: HTTP cache only, offline copy with the site up and down")
    parser.add_argument("--clip-frames", type=int, default=None,
                        help="measure recorded-clip mode on the video's first N frames instead of the live camera")
    parser.add_argument("--clip", type=Path, default=None,
                        help="measure recorded-clip mode on this video file as it is")
    args = parser.parse_args(argv)
    dist = bench_dist(args.no_build)
    if dist is None:
        return 2
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        source = args.video or FOCUS_VIDEOS / "mahie_test_1.avi"
        if args.clip and not args.clip.is_file():
            parser.error(f"--clip {args.clip}: no such file")
        if args.clip_frames or args.clip:
            return clip_benchmark(args, source, Path(tmp))
        video = camera_y4m(source, Path(tmp) / "camera.y4m", args.camera_fps)
        if args.second_visit:
            return second_visit_benchmark(args, video)
        results = []
        with serve(dist) as base, sync_playwright() as playwright:
            for _ in range(args.repeat):  # rounds interleave the variants: a noisy machine hits them alike
                variants = args.variant or [""]
                for variant in variants + ([v + EARLY for v in variants] if args.click_early else []):
                    results.append(measure(playwright, base, video, args.seconds, variant, args.warmup,
                                           args.cpu_throttle, args.throttle_for, args.background))
    if args.repeat > 1:
        results = [median_result([r for r in results if r["variant"] == v]) for v in dict.fromkeys(r["variant"] for r in results)]
    rate = f" at {args.camera_fps:g} fps" if args.camera_fps else ""
    throttle = f", CPU throttled {args.cpu_throttle:g}x" if args.cpu_throttle > 1 else ""
    if throttle and args.throttle_for is not None:
        throttle += f" for the first {args.throttle_for:g} s after Start (measured after that)"
    print(f"\ncamera: {source.name if source.exists() else 'synthetic'} as y4m{rate}; {args.seconds:.0f} s measured "
          f"after {args.warmup:.0f} s warm-up; Chromium headless, --disable-gpu{throttle}\n")
    print("| variant | camera picture | processed FPS | p50 frame ms | p95 frame ms | first label s | bytes loaded "
          "| cross-origin isolated | light mode (s after Start) | full again (s after Start) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: |")
    for r in results:
        t = r["timings"]
        first = t.get("first_label_ms")
        since_start = [f"{(t[k] - t['start_clicked_ms']) / 1000:.1f}" if k in t else "–"
                       for k in ("light_mode_ms", "full_again_ms")]  # the latest switch of each kind
        print(f"| {r['variant']} | {r['pictures']} | {r['fps']:.1f} | {r['p50_ms']:.1f} | {r['p95_ms']:.1f} | "
              f"{first / 1000 if first else float('nan'):.2f} | {r['bytes'] / 1e6:.1f} MB | {r['isolated']} | "
              + " | ".join(since_start) + " |")
    print("\nstart-up stages (s since navigation):\n")
    print("| variant | " + " | ".join(s.removesuffix("_ms") for s in STAGES) + " |")
    print("| --- | " + " | ".join("---:" for _ in STAGES) + " |")
    for r in results:
        cells = [f"{r['timings'][s] / 1000:.2f}" if s in r["timings"] else "–" for s in STAGES]
        print(f"| {r['variant']} | " + " | ".join(cells) + " |")
    names = [k for k in ("detect", "landmarks", "classify", "iris", "total", "frame") if any(k in r["stages"] for r in results)]
    names += sorted({k for r in results for k in r["stages"]} - set(names))
    print("\nper-frame stages, median ms (total = eyecore pipeline; frame = pipeline + tracker + drawing; "
          "ort:* = inside ort-web session.run, crop = canvas crops):\n")
    print("| variant | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---:" for _ in names) + " |")
    for r in results:
        print(f"| {r['variant']} | " + " | ".join(f"{r['stages'][k]:.1f}" if k in r["stages"] else "–" for k in names) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
