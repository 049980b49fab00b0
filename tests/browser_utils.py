"""Headless Chromium helpers shared by the browser tests and scripts/bench_page.py.

Debian's /usr/bin/chromium through Playwright's sync API; the fake camera plays a .y4m file.
"""
from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlparse

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
FOCUS_VIDEOS = SHARED / "data" / "videos" / "focus"
DEMO_VIDEOS = SHARED / "data" / "videos" / "demo"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  # keep timers and video callbacks running at full rate in a background/headless tab
                  "--disable-background-timer-throttling", "--disable-renderer-backgrounding",
                  "--disable-backgrounding-occluded-windows", "--autoplay-policy=no-user-gesture-required",
                  # containers (CI) often have a 64 MB /dev/shm, too small for a renderer running wasm models
                  "--disable-dev-shm-usage"]


def browser_missing_reason() -> str | None:
    """Why browser tests cannot run here (None when they can)."""
    if not Path(CHROMIUM).exists():
        return f"{CHROMIUM} not found (apt-get install chromium; scripts/test.sh does it)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install -e .[dev])"
    if not shutil.which("ffmpeg"):
        return "ffmpeg not found (apt-get install ffmpeg; scripts/test.sh does it)"
    return None


def bench_dist(no_build: bool, extra_reason: str | None = None) -> Path | None:
    """dist/ for a page benchmark script, built unless `no_build`; None (with the reason on stderr) when the browser
    tests' tools are missing or `extra_reason` says the script cannot run here."""
    reason = browser_missing_reason() or extra_reason
    if reason:
        print(f"cannot run: {reason}", file=sys.stderr)
        return None
    dist = ROOT / "dist"
    if not no_build:
        ensure_built(dist)
    return dist


def ensure_built(dist: Path = ROOT / "dist") -> Path:
    """Builds dist/ with build.py (same code path as users)."""
    sys.path.insert(0, str(ROOT))
    import build

    build.build(dist)
    return dist


@contextlib.contextmanager
def serve(directory: Path, isolation: bool = True):
    """build.py's server (MIME types + COOP/COEP unless isolation=False, like GitHub Pages) on a free
    port in a thread; yields the base URL."""
    sys.path.insert(0, str(ROOT))
    import build

    server = build.make_server(directory, port=0, isolation=isolation)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}/"
    finally:
        server.shutdown()
        server.server_close()


def ffmpeg(*args: str) -> None:
    done = subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ffmpeg {' '.join(args)} failed: {done.stderr.strip()}")


def video_to_y4m(src: Path, dst: Path, start_s: float = 0.0, duration_s: float | None = None,
                 fps: float | None = None) -> Path:
    """A slice of a video as .y4m (what Chromium's fake camera reads); keeps the frame rate unless `fps`
    is given (then frames are repeated or dropped to reach it)."""
    args = ["-ss", f"{start_s}", "-i", str(src)]
    if duration_s is not None:
        args += ["-t", f"{duration_s}"]
    if fps is not None:
        # frames repeated to reach `fps` get faint noise, as a camera's would (the page skips exact repeats)
        args += ["-vf", f"fps={fps},noise=alls=2:allf=t"]
    ffmpeg(*args, "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(dst))
    return dst


def varying_rate_demo_clip(dst: Path) -> Path:
    """The no-glasses demo clip's first 200 frames, the 138 before its 2.4 s closure (frames 138-194) sped up 8 times:
    5 ms steps, then 42 ms; MP4 with millisecond timestamps, whose header then says about 60 fps."""
    ffmpeg("-i", str(DEMO_VIDEOS / "repeating_Blink-Detector__video.mp4"), "-frames:v", "200",
           "-vf", r"setpts=if(lt(N\,138)\,N/8\,17.25+N-138)/24/TB", "-fps_mode", "passthrough",
           "-enc_time_base", "1/1000", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", str(dst))
    return dst


def synthetic_y4m(dst: Path, source: str = "testsrc2=size=640x480:rate=30", duration_s: float = 4.0) -> Path:
    """A clip without a face (ffmpeg lavfi source) as .y4m."""
    ffmpeg("-f", "lavfi", "-i", source, "-t", f"{duration_s}", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(dst))
    return dst


def camera_y4m(source: Path, dst: Path, fps: float | None = None) -> Path:
    """The benchmarks' fake camera: the first 20 s of `source`, or a synthetic clip without a face when the video is
    not there (no ../shared), which is said on stdout."""
    if source.exists():
        return video_to_y4m(source, dst, 0, 20, fps)
    print(f"{source} not found: using a synthetic clip without a face (no landmark/classifier work)")
    return synthetic_y4m(dst, duration_s=20)


def video_to_webm(src: Path, dst: Path, start_frame: int = 0, frames: int | None = None,
                  streamed: bool = False) -> Path:
    """Lossless VP9 WebM (plays in Chromium, decodes to the same pixels as the source), same frame rate.
    streamed=True writes it as a browser's MediaRecorder does: no length in the header (the video says Infinity)."""
    select = f"select=gte(n\\,{start_frame}),setpts=PTS-STARTPTS"
    args = ["-i", str(src), "-vf", select]
    if frames is not None:
        args += ["-frames:v", str(frames)]
    if streamed:
        args += ["-live", "1"]
    ffmpeg(*args, "-an", "-c:v", "libvpx-vp9", "-lossless", "1", "-pix_fmt", "yuv420p", "-g", "30",
           "-row-mt", "1", "-deadline", "realtime", "-cpu-used", "8", str(dst))
    return dst


CODE_BITS = 12
CODE_BLOCK = 8  # px: bit i is an 8x8 block at x = 8 i along the frame's bottom-left edge


def video_to_coded_y4m(src: Path, dst: Path, frames: int) -> Path:
    """The first `frames` frames of a video as .y4m, each with its frame index stamped in binary as
    black/white 8x8 blocks in the bottom-left corner (far from the face). The page reads them back
    with `?probe=1` (window.eyestateLog[i].probe), which ties every processed frame to its label even
    when the fake camera's clock drifts from the file's frame rate on a busy machine."""
    return frames_to_y4m(src, dst, list(range(frames)), stamp=True)


def frames_to_y4m(src: Path, dst: Path, indices: list, stamp: bool = False) -> Path:
    """.y4m made of the source's frames in the given order (repeats allowed, each with faint noise, as a camera gives a
    still picture), at the source's frame rate; with stamp=True each output frame carries its index as a code
    (video_to_coded_y4m).
    ffmpeg does both colour conversions, exactly as for a plain conversion."""
    import numpy as np

    probe = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries",
                            "stream=width,height,r_frame_rate", "-of", "csv=p=0", str(src)],
                           capture_output=True, text=True, check=True).stdout.strip().split(",")
    w, h, rate = int(probe[0]), int(probe[1]), probe[2]
    needed, size = set(indices), w * h * 3
    decode = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-i", str(src), "-frames:v", str(max(indices) + 1),
                               "-f", "rawvideo", "-pix_fmt", "bgr24", "-"], stdout=subprocess.PIPE)
    kept = {}
    for index in range(max(indices) + 1):
        raw = decode.stdout.read(size)
        if len(raw) < size:
            raise RuntimeError(f"{src} has only {index} frames (wanted frame {max(indices)})")
        if index in needed:
            kept[index] = raw
    decode.stdout.close()
    decode.wait()
    encode = subprocess.Popen(["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24",
                               "-s", f"{w}x{h}", "-r", rate, "-i", "-", "-pix_fmt", "yuv420p",
                               "-f", "yuv4mpegpipe", str(dst)], stdin=subprocess.PIPE)
    shown = set()
    for position, index in enumerate(indices):
        frame = np.frombuffer(kept[index], np.uint8).reshape(h, w, 3).copy()
        if index in shown:  # a repeated frame stands for a still face: a real camera adds sensor noise (the page
            noise = np.random.default_rng(position).integers(-2, 3, frame.shape)  # skips exact repeats)
            frame = np.clip(frame.astype(np.int16) + noise, 0, 255).astype(np.uint8)
        shown.add(index)
        if stamp:
            for bit in range(CODE_BITS):
                frame[h - CODE_BLOCK:h, bit * CODE_BLOCK:(bit + 1) * CODE_BLOCK] = 255 if position >> bit & 1 else 0
        encode.stdin.write(frame.tobytes())
    encode.stdin.close()
    if encode.wait() != 0:
        raise RuntimeError(f"ffmpeg failed while writing {dst}")
    return dst


def decode_probe(values) -> int | None:
    """Frame index from the page's probe values (red channel at each block centre)."""
    if not values or len(values) < CODE_BITS:
        return None
    return sum(1 << bit for bit, v in enumerate(values[:CODE_BITS]) if v >= 128)


def launch(playwright, fake_video: Path | None = None, fake_ui: bool = True, extra_flags=(), cameras: int = 1):
    flags = list(CHROMIUM_FLAGS)
    if fake_video is not None:  # one camera that plays the file
        flags += ["--use-fake-device-for-media-stream", f"--use-file-for-fake-video-capture={fake_video}"]
    elif cameras > 1:  # Chromium's own test pattern (no face), from that many cameras
        flags.append(f"--use-fake-device-for-media-stream=device-count={cameras}")
    if fake_ui:
        flags.append("--use-fake-ui-for-media-stream")
    flags += list(extra_flags)
    return playwright.chromium.launch(executable_path=CHROMIUM, args=flags)


class RequestLog:
    """Every request a page (and its workers) makes; `foreign(base)` lists those to another origin."""

    def __init__(self, context):
        self.urls: list[str] = []
        self.failed: list[str] = []
        context.on("request", lambda request: self.urls.append(request.url))
        # blob: URLs are in-page objects (the clip's object URL is revoked when done; its reads end then)
        context.on("requestfailed", lambda request: request.url.startswith("blob:") or self.failed.append(request.url))
        context.on("response", lambda response: response.status >= 400 and self.failed.append(
            f"{response.status} {response.url}"))

    def foreign(self, base_url: str) -> list[str]:
        origin = urlparse(base_url)
        out = []
        for url in self.urls:
            parsed = urlparse(url)
            if parsed.scheme in ("data", "blob"):
                continue  # in-page data, not a network request
            if (parsed.scheme, parsed.netloc) != (origin.scheme, origin.netloc):
                out.append(url)
        return out


def collect_console(page, sink: list) -> None:
    page.on("console", lambda message: sink.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: sink.append(f"pageerror: {error}"))


def wait_state(page, states, timeout_ms: float = 60000) -> str:
    """Waits until #status[data-state] is one of `states`; returns it."""
    wanted = [states] if isinstance(states, str) else list(states)
    page.wait_for_function(
        "wanted => wanted.includes(document.querySelector('#status')?.dataset.state)", arg=wanted,
        timeout=timeout_ms)
    return page.get_attribute("#status", "data-state")
