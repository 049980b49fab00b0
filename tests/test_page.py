"""The built page in headless Chromium (Debian /usr/bin/chromium via Playwright) with a fake camera.

dist/ is built once (build.py, into tmp) and served by build.py's own server. Every test records
every request of its browser context and asserts that none goes to another origin.
"""
from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from browser_utils import (DEMO_VIDEOS, FOCUS_VIDEOS, ROOT, RequestLog, browser_missing_reason,  # noqa: E402
                           collect_console, decode_probe, ffmpeg, frames_to_y4m, launch, serve, synthetic_y4m,
                           varying_rate_demo_clip, video_to_coded_y4m, video_to_webm, video_to_y4m,
                           wait_state)

# A Chromium renderer that dies mid-test (seen once in many local runs, never twice in a row) is the machine, not the
# page: such a test runs once more; any other failure fails at once.
pytestmark = [pytest.mark.browser, pytest.mark.flaky(reruns=1, only_rerun=["Target crashed"])]

LIVE_STATES = ["running", "no-face", "uncertain", "camera-dark", "eyes-dark", "eyes-bright"]
BOOT_TIMEOUT_MS = 120_000  # Pyodide + models on a busy 2-core machine


class Site(str):
    """Base URL of the built site served with COOP/COEP; `.plain` serves the same files without them
    (as GitHub Pages does)."""

    def __new__(cls, base: str, plain: str):
        site = super().__new__(cls, base)
        site.plain = plain
        return site


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    reason = browser_missing_reason()
    if reason:
        pytest.skip(reason)
    models = Path(os.environ.get("EYESTATE_MODELS_DIR", ROOT / "models"))  # the models the page ships
    if not (models / "eye_state.onnx").exists():
        pytest.skip(f"{models}/eye_state.onnx is missing; make it with `python -m pipeline.export`")
    sys.path.insert(0, str(ROOT))
    import build

    out = tmp_path_factory.mktemp("site") / "dist"
    build.build(out, models_dir=models)
    with serve(out) as base, serve(out, isolation=False) as plain_base:
        yield Site(base, plain_base)


@pytest.fixture(scope="module")
def page_eye_model(site):
    """The eye-state model file (in the models folder) the page runs by default."""
    import json
    import urllib.request

    with urllib.request.urlopen(site + "page_config.json") as response:
        config = json.load(response)
    return Path(os.environ.get("EYESTATE_MODELS_DIR", ROOT / "models")) / config["eye_model_source"]


@pytest.fixture(scope="module")
def playwright():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


# Records every getUserMedia call's constraints in window.gumCalls (add before the page loads).
GUM_HOOK = """(() => {
    const devices = navigator.mediaDevices;
    if (!devices || !devices.getUserMedia) return;
    const original = devices.getUserMedia.bind(devices);
    window.gumCalls = [];
    devices.getUserMedia = (constraints) => {
        window.gumCalls.push(JSON.parse(JSON.stringify(constraints)));
        return original(constraints);
    };
})();"""


# With window.hideOnClipPlay set, the page goes behind another tab (BEHIND_TAB_HOOK) right after the recorded clip
# first plays: while the reader plays its first frames to learn the frame step.
HIDE_ON_CLIP_PLAY = """(() => {
    const play = HTMLVideoElement.prototype.play;
    HTMLVideoElement.prototype.play = function () {
        const played = play.call(this);
        if (this.id === "clip-video" && window.hideOnClipPlay) {
            window.hideOnClipPlay = false;
            setTimeout(() => window.behindTab(true), 0);
        }
        return played;
    };
})();"""

# A stand-in for the browser's notifications, whose permission prompt a test cannot answer: requestPermission grants,
# each notification is recorded in window.notes (title, options, closed). navigator.vibrate calls are counted.
NOTIFICATION_HOOK = """(() => {
    window.notes = [];
    window.vibrations = 0;
    navigator.vibrate = () => { window.vibrations += 1; return true; };
    class FakeNotification {
        constructor(title, options) { Object.assign(this, {title, options, closed: false}); window.notes.push(this); }
        close() { this.closed = true; }
        static async requestPermission() { FakeNotification.permission = "granted"; return "granted"; }
    }
    FakeNotification.permission = "default";
    window.Notification = FakeNotification;
})();"""


# Records every screen wake lock the page gets (window.wakeLocks), so a test can check that each one is released.
WAKE_HOOK = """(() => {
    if (!navigator.wakeLock) return;
    const request = navigator.wakeLock.request.bind(navigator.wakeLock);
    window.wakeLocks = [];
    navigator.wakeLock.request = async (type) => { const lock = await request(type); window.wakeLocks.push(lock); return lock; };
})();"""
LOCKS = "window.wakeLocks.map(lock => lock.released)"


# Real Chrome renders nothing for a tab behind another one: document.hidden is true and a video's frame callbacks stop.
# Headless Chromium with another page in front keeps document.hidden false and still gives about one callback a
# second. window.behindTab(true) imitates real Chrome: hidden, a visibilitychange event, no frame callbacks, and the
# page's screen wake locks released (new ones refused until it is shown again).
BEHIND_TAB_HOOK = """(() => {
    let behind = false;
    Object.defineProperty(Document.prototype, "hidden", {get: () => behind, configurable: true});
    Object.defineProperty(Document.prototype, "visibilityState", {get: () => behind ? "hidden" : "visible",
                                                                  configurable: true});
    const locks = new Set();
    window.behindTab = (value) => {
        behind = value;
        if (behind) { for (const lock of locks) lock.release(); locks.clear(); }
        document.dispatchEvent(new Event("visibilitychange"));
    };
    const wake = navigator.wakeLock;
    if (wake) {
        const requestLock = wake.request.bind(wake);
        wake.request = async (type) => {
            if (behind) throw new DOMException("The requesting page is not visible", "NotAllowedError");
            const lock = await requestLock(type);
            locks.add(lock);
            return lock;
        };
    }
    const request = HTMLVideoElement.prototype.requestVideoFrameCallback;
    const cancel = HTMLVideoElement.prototype.cancelVideoFrameCallback;
    if (!request) return;
    const current = new Map();  // the id the page holds -> the id of the callback waiting now
    HTMLVideoElement.prototype.requestVideoFrameCallback = function (callback) {
        const video = this;
        let id;
        const shown = (now, meta) => {
            if (behind) { current.set(id, request.call(video, shown)); return; }
            current.delete(id);
            callback(now, meta);
        };
        id = request.call(video, shown);
        current.set(id, id);
        return id;
    };
    HTMLVideoElement.prototype.cancelVideoFrameCallback = function (id) {
        cancel.call(this, current.has(id) ? current.get(id) : id);
        current.delete(id);
    };
})();"""


def open_page(browser, base: str, query: str = "", ready: bool = True, retry_crash: bool = True,
              init_script: str | None = None, **context_options):
    # No offline copy (site/sw.js): saving 37 MB per test would only slow them; tests/test_offline.py covers it.
    context = browser.new_context(service_workers="block", **context_options)
    if init_script:
        context.add_init_script(init_script)
    requests = RequestLog(context)
    page = context.new_page()
    console: list = []
    collect_console(page, console)
    crashed: list = []
    page.on("crash", lambda _page: crashed.append(True))
    page.goto(base + "index.html" + query)
    if not ready:
        return page, requests, console
    try:
        wait_state(page, "ready", BOOT_TIMEOUT_MS)
    except Exception:
        if crashed and retry_crash:
            # Chromium's renderer died while loading (seen once in a full local run, not reproduced in 20 loads
            # after it): one more try in a fresh context; a page that crashes it twice fails.
            warnings.warn("Chromium's renderer crashed while loading the page; retrying once in a fresh context")
            context.close()
            return open_page(browser, base, query, ready, retry_crash=False, init_script=init_script,
                             **context_options)
        status = "(renderer crashed)" if crashed else repr(page.text_content("#status"))
        raise AssertionError(f"page never became ready: status={status}\n" + "\n".join(console[-20:]))
    return page, requests, console


def assert_same_origin_only(requests: RequestLog, base: str) -> None:
    assert requests.urls, "no request was recorded"
    assert requests.foreign(base) == [], f"requests to another origin: {requests.foreign(base)}"
    assert requests.failed == [], f"failed requests: {requests.failed}"


def frame_log(page) -> list:
    return page.evaluate("Array.from(window.eyestateLog)")


# ------------------------------------------------------------------------------------------ states


def test_camera_permission_denied_shows_denied_state(site, playwright, tmp_path):
    video = synthetic_y4m(tmp_path / "plain.y4m", duration_s=1)
    # no --use-fake-ui-for-media-stream and no granted permission: the prompt is answered "block"
    browser = launch(playwright, video, fake_ui=False)
    try:
        page, requests, _ = open_page(browser, site)
        page.click("#start")
        assert wait_state(page, ["camera-denied", *LIVE_STATES], 30_000) == "camera-denied"
        assert "blocked" in page.text_content("#status-message")
        assert page.get_attribute("#eye-left", "data-state") == "unknown"
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


@pytest.mark.parametrize("allowed", [True, False], ids=["allowed", "denied"])
def test_start_clicked_while_loading_opens_the_camera_once_ready(site, playwright, tmp_path, allowed):
    """A click before Python is up asks for the camera at once (index.html); Python takes that request over. That
    request asks for the camera picked on an earlier visit (page_settings.py, here one that is gone)."""
    video = synthetic_y4m(tmp_path / "plain.y4m", duration_s=2)
    browser = launch(playwright, video, fake_ui=allowed)
    remembered = "localStorage.setItem('eyestate.settings', JSON.stringify({camera: 'picked-last-visit'}));"
    try:
        page, requests, console = open_page(browser, site, ready=False, init_script=remembered + GUM_HOOK)
        page.focus("#start")
        page.keyboard.press("Enter")  # a keyboard user: the focus must not be lost to the page for good
        assert page.get_attribute("#status", "data-state") == "loading"
        assert page.is_disabled("#start")
        wanted = LIVE_STATES if allowed else ["camera-denied"]
        assert wait_state(page, [*wanted, "camera-denied", "model-failed"], BOOT_TIMEOUT_MS) in wanted, console[-10:]
        timings = page.evaluate("window.eyestateTimings")
        assert timings["start_clicked_ms"] < timings["ready_ms"]
        assert page.evaluate("window.eyestateEarlyStart") is None  # taken over, not asked twice
        calls = page.evaluate("window.gumCalls")
        assert len(calls) == 1 and calls[0]["video"]["deviceId"] == {"ideal": "picked-last-visit"}
        focused = page.evaluate("document.activeElement.id")
        if allowed:
            assert timings["camera_ms"] > timings["ready_ms"]
            assert page.is_visible("#stop") and not page.is_visible("#start") and focused == "stop"
        else:
            assert "blocked" in page.text_content("#status-message")
            assert page.is_enabled("#start") and focused == "start"  # a second try goes through Python's handler
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


# The tracks of index.html's early camera request (window.keptTracks, set by the test) are all stopped. Not an async
# function: wait_for_function takes the promise one returns for a true value and returns at once.
CAMERA_RELEASED = "window.keptTracks && window.keptTracks.every((track) => track.readyState === 'ended')"


def test_start_clicked_while_loading_releases_the_camera_if_the_models_fail(site, playwright, tmp_path):
    video = synthetic_y4m(tmp_path / "plain.y4m", duration_s=2)
    browser = launch(playwright, video)
    try:
        context = browser.new_context(service_workers="block")
        requests = RequestLog(context)
        page = context.new_page()
        held = []  # page_config.json waits until Start was clicked, so the failure comes after the click
        page.route("**/page_config.json", lambda route: held.append(route))
        page.goto(site + "index.html?eye=no-such-model")
        page.click("#start")
        page.evaluate("window.eyestateEarlyStart.stream.then((stream) => { window.keptTracks = stream.getTracks(); })")
        while not held:  # index.html's preload and main.py each ask for it; one answer is enough to fail
            page.wait_for_timeout(50)
        for route in held:
            route.continue_()
        page.unroute("**/page_config.json")
        assert wait_state(page, ["model-failed", "ready", *LIVE_STATES], BOOT_TIMEOUT_MS) == "model-failed"
        page.wait_for_function(CAMERA_RELEASED, timeout=10_000)  # the camera is off again
        assert page.is_disabled("#start") and page.text_content("#start") == "Start camera"
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_start_stays_disabled_when_the_models_failed_before_a_click(site, playwright, tmp_path):
    """A click after a failed start-up must not open the camera through index.html's early start."""
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=2))
    try:
        page, requests, _ = open_page(browser, site, "?eye=no-such-model", ready=False, init_script=GUM_HOOK)
        assert wait_state(page, ["model-failed", "ready", *LIVE_STATES], BOOT_TIMEOUT_MS) == "model-failed"
        assert page.is_disabled("#start")
        page.evaluate("document.getElementById('start').click()")  # a click on the disabled button: nothing
        page.wait_for_timeout(500)
        assert page.evaluate("window.gumCalls") == [] and page.evaluate("window.eyestateEarlyStart") is None
        assert "could not be loaded" in page.text_content("#status-message")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_loading_list_ticks_each_model_off_when_it_is_ready(site, playwright):
    """The models load while Pyodide boots (index.html); the list shows when each was ready, not when Python
    got round to it."""
    browser = launch(playwright)
    try:
        page, requests, _ = open_page(browser, site)
        items = page.evaluate("""Array.from(document.querySelectorAll('#loading li')).map(
            (li) => [li.dataset.stage, li.dataset.done, li.querySelector('.ms').textContent])""")
        timings = page.evaluate("window.eyestateTimings")
        shown = {stage: text for stage, done, text in items if done == "true"}
        assert set(shown) == {"pyodide", "modules", "face_detection", "face_landmark", "iris_landmark", "eye_state"}
        for model in ("face_detection", "face_landmark", "iris_landmark", "eye_state"):
            assert abs(float(shown[model].removesuffix(" s")) - timings[model + "_warm_ms"] / 1000) <= 0.051, \
                (model, shown, timings)  # index.html's time, to the tenth of a second
            assert timings[model + "_warm_ms"] < timings["ready_ms"]
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def _luminance(css_colour: str) -> float:
    channels = [int(float(v)) / 255 for v in css_colour[css_colour.index("(") + 1:-1].split(",")[:3]]
    r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


# [what, element, its colour property, minimum (WCAG AA: 4.5 for text, 3 for large text and a field's outline)]
READABLE = [("the alarm banner", "#alarm", "color", 4.5), ("an outlined button", "#stop", "color", 4.5),
            ("the file button", "label.file-button", "color", 4.5), ("a footer link", ".foot a", "color", 4.5),
            ("the delay field's outline", "#alarm-after", "borderTopColor", 3.0),
            ("the camera list's outline", "#camera", "borderTopColor", 3.0)]


def test_text_controls_and_the_alarm_are_readable_in_both_themes_also_with_reduced_motion(site, playwright):
    """Contrast from the computed styles against the background behind each element, in the light and the dark
    theme with reduced motion asked for (the alarm then does not pulse between two dark reds: before, its dark
    theme's light red under white text was 2.8:1). Reduced motion also stops the eye bars' animation."""
    browser = launch(playwright)
    try:
        found = {}
        for scheme in ("light", "dark"):
            page, _, _ = open_page(browser, site, ready=False, color_scheme=scheme, reduced_motion="reduce")
            page.wait_for_load_state("load")
            found[scheme] = page.evaluate("""(readable) => {
                document.getElementById('alarm').dataset.active = 'true';
                const behind = (element) => {
                    for (let e = element; e; e = e.parentElement) {
                        const colour = getComputedStyle(e).backgroundColor;
                        if (colour !== 'rgba(0, 0, 0, 0)' && colour !== 'transparent') return colour;
                    }
                    return getComputedStyle(document.body).backgroundColor;
                };
                const pairs = readable.map(([what, selector, property]) => {
                    const element = document.querySelector(selector);
                    const own = getComputedStyle(element)[property];
                    return [what, own, property === 'color' ? behind(element) : behind(element.parentElement)];
                });
                const bar = getComputedStyle(document.querySelector('.bar-fill')).transitionDuration;
                return {pairs, bar};
            }""", [r[:3] for r in READABLE])
            page.context.close()
    finally:
        browser.close()
    for scheme, result in found.items():
        for (what, colour, background), (*_, minimum) in zip(result["pairs"], READABLE):
            assert _contrast(colour, background) >= minimum, (scheme, what, colour, background)
        assert result["bar"] == "0s", scheme


def test_the_timeline_scale_lines_up_with_the_plot(site, playwright):
    """The labels 1, 0.5 and 0 beside the p(open) plot sit on the rows where page_view.Timeline draws those values
    (4 CSS px inside the canvas at the top and bottom; the 0.5 guide line, read from the canvas' pixels, in the
    middle), on a wide and a phone-sized screen, at 1 and 2 device pixels per CSS pixel; "20 s ago" and "now" sit
    under the plot's two ends."""
    browser = launch(playwright)
    try:
        for ratio in (1, 2):
            page, requests, _ = open_page(browser, site, device_scale_factor=ratio,
                                          viewport={"width": 1280, "height": 900})
            for width in (1280, 390):
                page.set_viewport_size({"width": width, "height": 900})
                page.wait_for_timeout(300)  # the resize handler redraws the canvas at its new size
                boxes = page.evaluate("""() => {
                    const box = (e) => { const r = e.getBoundingClientRect();
                        return {left: r.left, right: r.right, top: r.top, bottom: r.bottom}; };
                    const canvas = document.getElementById('timeline');
                    const pixels = canvas.getContext('2d').getImageData(0, 0, 1, canvas.height).data;
                    const rows = [];  // canvas rows unlike the first one's colour: the guide line
                    for (let y = 0; y < canvas.height; y++)
                        if ([0, 1, 2].some((c) => pixels[4 * y + c] !== pixels[c])) rows.push(y);
                    return {plot: box(canvas), scale: canvas.height / canvas.getBoundingClientRect().height, rows,
                            axis: Array.from(document.querySelectorAll('.timeline-axis span'),
                                             (e) => [e.textContent, box(e)]),
                            time: Array.from(document.querySelectorAll('.timeline-time span'),
                                             (e) => [e.textContent, box(e)])};
                }""")
                plot, where = boxes["plot"], (ratio, width)
                assert boxes["scale"] == pytest.approx(ratio, abs=0.02) and len(boxes["rows"]) == 1, boxes
                guide = plot["top"] + (boxes["rows"][0] + 0.5) / ratio  # CSS px
                rows = {"1": plot["top"] + 4, "0.5": guide, "0": plot["bottom"] - 4}
                assert abs(guide - (plot["top"] + plot["bottom"]) / 2) <= 1, (where, guide, plot)
                assert [text for text, _ in boxes["axis"]] == ["1", "0.5", "0"]
                for text, box in boxes["axis"]:
                    assert abs((box["top"] + box["bottom"]) / 2 - rows[text]) <= 3, (where, text, box, plot)
                    assert box["right"] <= plot["left"]
                (first, left), *_, (last, right) = boxes["time"]
                assert (first, last) == ("20 s ago", "now")
                assert abs(left["left"] - plot["left"]) <= 1 and abs(right["right"] - plot["right"]) <= 1, boxes
                assert left["top"] >= plot["bottom"]
            assert_same_origin_only(requests, site)
            page.context.close()
    finally:
        browser.close()


def test_no_camera_shows_no_camera_state(site, playwright):
    browser = launch(playwright, fake_video=None)  # no fake device: this machine has no camera
    try:
        page, requests, _ = open_page(browser, site, "?iris=0")  # classifier-only mode, also checked here
        page.click("#start")
        assert wait_state(page, ["no-camera", "camera-denied", "camera-ended", *LIVE_STATES], 30_000) == "no-camera"
        assert "No camera" in page.text_content("#status-message")
        assert_same_origin_only(requests, site)
        assert not [u for u in requests.urls if "iris_landmark" in u], "?iris=0 must not download the iris model"
        assert any("face_landmark" in u for u in requests.urls)
    finally:
        browser.close()


def test_video_without_a_face_shows_no_face_then_camera_ended(site, playwright, tmp_path):
    """Served without COOP/COEP, as on GitHub Pages: the page does not need cross-origin isolation."""
    video = synthetic_y4m(tmp_path / "testsrc.y4m", duration_s=4)
    browser = launch(playwright, video)
    site = site.plain
    # A browser that will not keep the screen on (battery saver, a policy): the page says the camera may stop.
    refuse_wake_lock = """navigator.wakeLock.request = () => Promise.reject(new DOMException('saver', 'NotAllowedError'));"""
    try:
        page, requests, _ = open_page(browser, site, init_script=refuse_wake_lock)
        assert page.evaluate("crossOriginIsolated") is False
        page.click("#start")
        assert wait_state(page, ["no-face"], 30_000) == "no-face"
        assert page.get_attribute("#wake", "data-state") == "failed"
        assert "lock the screen" in page.text_content("#wake") and page.is_visible("#wake")
        for eye in ("left", "right"):
            assert page.get_attribute(f"#eye-{eye}", "data-state") == "unknown"  # never open/closed without a face
        assert int(page.get_attribute("#blinks", "data-count")) == 0
        assert page.get_attribute("#alarm", "data-active") == "false"
        assert float(page.get_attribute("#fps", "data-fps")) > 0
        # The camera goes away (unplugged): the track fires "ended".
        page.evaluate("document.getElementById('video').srcObject.getVideoTracks()[0].dispatchEvent(new Event('ended'))")
        assert wait_state(page, ["camera-ended"], 10_000) == "camera-ended"
        assert page.is_visible("#start")
        page.click("#start")
        assert wait_state(page, ["no-face"], 30_000) == "no-face"
        # Stopped by code without an "ended" event (track.stop() fires none): ended, not a "too dark" picture
        page.evaluate("document.getElementById('video').srcObject.getVideoTracks()[0].stop()")
        assert wait_state(page, ["camera-ended", "camera-dark"], 10_000) == "camera-ended"
        # Stop while the camera is still being asked for (1.5 s late here): its stream is not taken when it comes
        page.evaluate("""() => { const devices = navigator.mediaDevices, ask = devices.getUserMedia.bind(devices);
            window.lateStreams = [];
            devices.getUserMedia = async (c) => { await new Promise((r) => setTimeout(r, 1500));
                const stream = await ask(c); window.lateStreams.push(stream); return stream; }; }""")
        page.click("#start")
        page.wait_for_function("document.getElementById('status').dataset.state === 'requesting-camera'")
        page.evaluate("document.getElementById('stop').click()")
        page.wait_for_function("window.lateStreams.length === 1", timeout=10_000)
        page.wait_for_timeout(500)
        assert page.get_attribute("#status", "data-state") == "ready" and page.is_visible("#start")
        assert page.evaluate("window.lateStreams[0].getTracks().every((t) => t.readyState === 'ended')")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_a_camera_picked_in_the_list_is_switched_to_while_running_and_waits_for_start_when_stopped(site, playwright):
    """Two cameras: the list shows them, the running one selected. Picking the other while one runs switches to
    exactly that one. Picking one while stopped does not turn the camera on (picking is not permission to film);
    Start then asks for exactly it, and one gone by then says so, not "no camera" (Chromium's own
    OverconstrainedError, which Pyodide could not raise: the page once waited for permission for ever)."""
    browser = launch(playwright, cameras=2)
    picked = "document.getElementById('camera').value"
    try:
        page, requests, _ = open_page(browser, site, init_script=GUM_HOOK)
        page.click("#start")
        assert wait_state(page, ["no-camera", *LIVE_STATES], 30_000) in LIVE_STATES
        page.wait_for_selector("#camera-picker", state="visible")
        cameras = page.evaluate("Array.from(document.getElementById('camera').options).map((o) => o.value)")
        running = page.evaluate("document.getElementById('video').srcObject.getVideoTracks()[0].getSettings().deviceId")
        assert len(cameras) == 2 and page.evaluate(picked) == running
        other = next(c for c in cameras if c != running)
        page.select_option("#camera", other)  # while running: switched to at once
        page.wait_for_function(f"""document.getElementById('video').srcObject &&
            document.getElementById('video').srcObject.getVideoTracks()[0].getSettings().deviceId === '{other}'""")
        assert page.evaluate("window.gumCalls")[-1]["video"]["deviceId"] == {"exact": other}
        assert wait_state(page, LIVE_STATES, 30_000) in LIVE_STATES
        page.click("#stop")
        calls = len(page.evaluate("window.gumCalls"))
        page.select_option("#camera", running)  # while stopped: remembered, the camera stays off
        page.wait_for_timeout(1_000)
        assert len(page.evaluate("window.gumCalls")) == calls
        assert page.evaluate("document.getElementById('video').srcObject") is None
        assert page.get_attribute("#status", "data-state") == "ready" and page.is_visible("#start")
        page.click("#start")
        assert wait_state(page, ["no-camera", *LIVE_STATES], 30_000) in LIVE_STATES
        assert page.evaluate("window.gumCalls")[-1]["video"]["deviceId"] == {"exact": running}
        page.click("#stop")
        page.evaluate("""() => { const picker = document.getElementById('camera');
            picker.append(new Option('Gone', 'gone-device')); picker.value = 'gone-device';
            picker.dispatchEvent(new Event('change')); }""")
        page.click("#start")
        assert wait_state(page, ["no-camera", *LIVE_STATES], 10_000) == "no-camera"
        assert "picked in the list is not there" in page.text_content("#status-message")
        assert page.is_visible("#start") and not page.is_visible("#stop")
        page.wait_for_function("Array.from(document.getElementById('camera').options).length === 2")  # listed again
        page.click("#start")  # once: the next Start takes a camera that is there
        assert wait_state(page, LIVE_STATES, 30_000) in LIVE_STATES
        assert page.evaluate("window.gumCalls")[-1]["video"]["deviceId"] == {"ideal": "gone-device"}
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


# ------------------------------------------------------------------------------------ focus video

LIVE_VIDEO = "mahie_test_4_low_fps"  # ~17 fps, 60 s, 12 labelled blinks
LIVE_FRAMES = 1026  # the whole video, 60 s
OPEN_STRETCH_S = 1.0   # "long open stretch": labelled open for at least this long ...
OPEN_MARGIN_FRAMES = 3  # ... not counting this many frames next to a closure
# Floors. Measured with the shipped model (eyecnn_std refit, int8) and tracker (closed below 0.5) on the 2-core dev
# machine, 2 runs (the page labels ~1020 of the 1026 frames): blinks seen 0.92 (11 of 12), closed frames 0.70
# (labels shifted one frame later; 0.51 as labelled), open frames 1.00 (~910). The offline replay of the same video
# gives the same 0.92 and 0.70 (pipeline.video, int8). Closed frames is the edge-heavy number: most misses are
# a blink's last, reopening frame. With the previous weights the page scored 0.75 / 0.47; a floor set at a
# measured value once failed CI by one frame.
# Each floor sits ~0.15 below the runs: two more missed blinks or five more missed frames still pass; a page that
# stops showing closed (or shows it during open stretches) does not.
BLINKS_SEEN_FLOOR = 0.75
CLOSED_FRAMES_FLOOR = 0.55
OPEN_FRAMES_FLOOR = 0.95


def load_labels(name: str) -> list:
    text = (FOCUS_VIDEOS / f"{name}_ideal.csv").read_text(encoding="utf-8-sig")
    return [int(v) for v in text.split()]


def runs_of(values: list, value: int) -> list:
    out, start = [], None
    for i, v in enumerate(values + [None]):
        if v == value and start is None:
            start = i
        elif v != value and start is not None:
            out.append((start, i))
            start = None
    return out


def live_agreement(shown: dict, labels: list, fps: float) -> dict:
    """shown: file frame index -> "open" | "closed" | "unknown" for the frames the page labelled."""
    blinks = runs_of(labels, 1)
    closed = [shown[i] == "closed" for s, e in blinks for i in range(s, e) if i in shown]
    seen = [any(shown.get(i) == "closed" for i in range(s, e + 1)) for s, e in blinks
            if any(i in shown for i in range(s, e + 1))]
    opened = [shown[i] == "open" for s, e in runs_of(labels, 0) if (e - s) / fps >= OPEN_STRETCH_S
              for i in range(s + OPEN_MARGIN_FRAMES, e - OPEN_MARGIN_FRAMES) if i in shown]
    return {"closed_frames": sum(closed) / max(1, len(closed)), "n_closed": len(closed),
            "blinks_seen": sum(seen) / max(1, len(seen)), "n_blinks": len(seen),
            "open_frames": sum(opened) / max(1, len(opened)), "n_open": len(opened)}


@pytest.mark.shared
def test_live_camera_labels_focus_video(site, playwright, tmp_path):
    source = FOCUS_VIDEOS / f"{LIVE_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    labels = load_labels(LIVE_VIDEO)[:LIVE_FRAMES]
    fps = 205 / 12  # the .avi's nominal frame rate, which the fake camera plays
    video = video_to_coded_y4m(source, tmp_path / "live.y4m", LIVE_FRAMES)
    browser = launch(playwright, video)
    try:
        page, requests, console = open_page(browser, site, "?probe=1")
        page.click("#start")
        assert wait_state(page, LIVE_STATES, 30_000) in LIVE_STATES
        wait_state(page, "running", 20_000)
        time.sleep(LIVE_FRAMES / fps)  # one pass of the clip (the fake camera loops it)
        # one evaluate: the page's Python runs on the same thread, so log and DOM are read consistently
        log, last_dom = page.evaluate("""() => [Array.from(window.eyestateLog), {
            left: document.getElementById('eye-left').dataset.state,
            right: document.getElementById('eye-right').dataset.state}]""")
        assert float(page.get_attribute("#fps", "data-fps")) > 3
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert log, "no frame was processed"
    assert last_dom == {"left": log[-1]["left"], "right": log[-1]["right"]}  # the log is what the DOM shows
    live = [e for e in log if e["app"] in LIVE_STATES]
    assert any("iris" in e["stages"] for e in live)  # the full pipeline, with the eyelid model
    assert any("landmarks" not in e["stages"] for e in live)  # FaceMesh skipped some frames of the still face
    assert sum("landmarks" in e["stages"] for e in live) > len(live) / 10
    # Each processed frame carries the file frame index stamped into the video (browser_utils);
    # the first pass ends where the index drops (the fake camera loops the file).
    shown, previous = {}, -1
    for entry in log:
        index = decode_probe(entry["probe"])
        if index is None or index < previous:
            break
        previous = index
        if entry["app"] in LIVE_STATES:
            eyes = {entry["left"], entry["right"]}  # what the two eye cards show
            shown[index] = "closed" if "closed" in eyes else "open" if "open" in eyes else "unknown"
    assert len(shown) > 0.3 * LIVE_FRAMES, f"only {len(shown)} of {LIVE_FRAMES} frames were labelled"
    # The labels run about one frame early (../shared/README.md): score as labelled and one frame later.
    scores = {shift: live_agreement(shown, [0] * shift + labels[:len(labels) - shift], fps) for shift in (0, 1)}
    best = max(scores.values(), key=lambda r: r["closed_frames"] + r["blinks_seen"])
    print(f"live {LIVE_VIDEO}: {len(shown)} frames labelled; as labelled {scores[0]}; shifted {scores[1]}")
    assert best["n_blinks"] >= 8 and best["n_open"] >= 300
    assert best["blinks_seen"] >= BLINKS_SEEN_FLOOR, scores
    assert best["closed_frames"] >= CLOSED_FRAMES_FLOOR, scores
    assert best["open_frames"] >= OPEN_FRAMES_FLOOR, scores


@pytest.mark.shared
def test_long_closure_raises_the_microsleep_alarm(site, playwright, tmp_path):
    """A labelled closed frame held for ~2.3 s (longer than the 1.5 s alarm time) between open frames."""
    source = FOCUS_VIDEOS / f"{LIVE_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    closed = 198  # inside the blink labelled at frames 197-199, both eyes shut
    assert load_labels(LIVE_VIDEO)[closed] == 1
    frames = list(range(140, 190)) + [closed] * 40 + list(range(200, 260))
    video = frames_to_y4m(source, tmp_path / "microsleep.y4m", frames)
    browser = launch(playwright, video)
    try:
        page, requests, _ = open_page(browser, site, init_script=NOTIFICATION_HOOK + WAKE_HOOK)
        page.click("#settings-box summary")
        page.check("#alarm-notify")
        page.wait_for_function("JSON.parse(localStorage.getItem('eyestate.settings') || '{}').notify === true")
        page.click("#start")
        page.wait_for_selector('#alarm[data-active="true"]', timeout=30_000)
        assert "wake up" in page.text_content("#alarm")
        assert {page.get_attribute(f"#eye-{eye}", "data-state") for eye in ("left", "right")} == {"closed"}
        page.wait_for_selector('#alarm[data-active="false"]', timeout=15_000)  # eyes open again
        assert page.evaluate("window.eyestateBeeps") >= 1  # the alarm sound is on by default
        assert page.evaluate("window.notes.length") == 0  # in front the banner says it: no system notification
        assert page.evaluate("window.vibrations") >= 1  # a phone vibrates with each beep
        assert page.get_attribute("#wake", "data-state") == "on"  # the screen stays on while the camera runs
        assert page.evaluate(LOCKS) == [False]  # one lock, held
        # the camera session's per-frame CSV, made in the page after Stop
        page.click("#stop")
        assert page.get_attribute("#wake", "data-state") == "off" and page.is_hidden("#wake")
        page.wait_for_function(f"{LOCKS}.every(released => released)", timeout=5_000)
        log = frame_log(page)
        with page.expect_download() as download:
            page.click("#session-csv")
        name = download.value.suggested_filename
        rows = read_csv(Path(download.value.path()).read_text())
        read_summary = """() => { const e = document.getElementById('session-summary');
            return {hidden: e.hidden, text: e.textContent, alarms: e.dataset.alarms, frames: e.dataset.frames}; }"""
        summary = page.evaluate(read_summary)
        # a session too short to sum up leaves nothing of the one before on the summary (its data-* too)
        page.click("#start")
        wait_state(page, LIVE_STATES, 30_000)
        page.click("#stop")
        short = page.evaluate(read_summary)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert name.startswith("camera_") and name.endswith("_eye_state.csv")  # as a clip's: <name>_eye_state.csv
    assert len(log) - 1 <= len(rows) <= len(log)  # every live frame (one may have been in flight at Stop)
    assert list(rows[0]) == ["frame", "time", "p_open_left", "p_open_right", "state_left", "state_right",
                             "state", "blink_id", "alarm"]
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    times = [float(r["time"]) for r in rows]
    assert times[0] == 0.0 and times == sorted(times)
    assert any(r["alarm"] == "1" and r["state"] == "closed" for r in rows)
    assert not summary["hidden"] and summary["text"].startswith("Camera session 0:")
    assert int(summary["alarms"]) >= 1 and int(summary["frames"]) == len(rows)
    assert (short["hidden"] and short["frames"] is None and short["text"] == "") or (
        not short["hidden"] and short["frames"] != summary["frames"]), short  # not the first session's numbers


@pytest.mark.shared
def test_the_screen_wake_lock_is_taken_again_when_the_page_is_shown_again(site, playwright, tmp_path):
    """Chrome lets go of a page's screen wake lock when another tab comes to the front and refuses a new one until the
    page is shown again (BEHIND_TAB_HOOK does the same). The page must say the screen may sleep meanwhile, not ask
    while hidden, and hold the screen on again once it is back in front."""
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=4))
    try:
        page, requests, _ = open_page(browser, site, init_script=BEHIND_TAB_HOOK + WAKE_HOOK)
        page.click("#start")
        page.wait_for_function("document.getElementById('wake').dataset.state === 'on'", timeout=60_000)
        page.evaluate("window.behindTab(true)")
        page.wait_for_function("document.getElementById('wake').dataset.state === 'off'", polling=100, timeout=5_000)
        time.sleep(1)
        hidden = page.evaluate(LOCKS)
        page.evaluate("window.behindTab(false)")
        page.wait_for_function("document.getElementById('wake').dataset.state === 'on'", timeout=5_000)
        shown = page.evaluate(LOCKS)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert hidden == [True]  # released, and none asked for while hidden
    assert shown == [True, False]  # a new one once shown


@pytest.mark.parametrize("hidden", [False, True], ids=["not-rendered", "hidden"])
def test_the_page_keeps_watching_and_alarms_when_another_tab_is_in_front(site, playwright, tmp_path, hidden):
    """With another tab in front the page is not rendered, so its camera frame callbacks stop (measured in this
    headless Chromium: 5 frames in 5 s; real Chrome: none, and document.hidden, imitated by BEHIND_TAB_HOOK); the
    worker clock (site/ticker.js) then reads frames. The long closure of the microsleep test must still raise the
    alarm, and the tab's title must say so."""
    source = FOCUS_VIDEOS / f"{LIVE_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = list(range(140, 190)) + [198] * 40 + list(range(200, 260))  # as in the microsleep test
    video = frames_to_y4m(source, tmp_path / "microsleep.y4m", frames)
    browser = launch(playwright, video)
    try:
        page, requests, _ = open_page(browser, site, init_script=GUM_HOOK + NOTIFICATION_HOOK + BEHIND_TAB_HOOK)
        title = page.title()
        page.click("#settings-box summary")
        page.check("#alarm-notify")  # asks for the permission (granted by the stand-in)
        page.wait_for_function("JSON.parse(localStorage.getItem('eyestate.settings') || '{}').notify === true")
        page.click("#start")
        wait_state(page, "running", 30_000)
        other = page.context.new_page()
        other.goto("about:blank")
        other.bring_to_front()
        page.evaluate(f"window.behindTab({str(hidden).lower()})")
        before = len(frame_log(page))
        # interval polling: the page renders no frames in the background, so no requestAnimationFrame polling
        page.wait_for_function("document.getElementById('alarm').dataset.active === 'true'", polling=100,
                               timeout=30_000)
        alarm_title, beeps, calls = page.evaluate("[document.title, window.eyestateBeeps, window.gumCalls]")
        shown = page.evaluate("window.notes.map(n => ({title: n.title, tag: n.options.tag}))")
        time.sleep(4)
        log = frame_log(page)
        mode = page.get_attribute("#fps", "data-mode")
        page.bring_to_front()
        page.evaluate("window.behindTab(false)")
        page.wait_for_function("document.getElementById('alarm').dataset.active === 'false'", polling=100,
                               timeout=15_000)
        assert page.title() == title
        notes = page.evaluate("window.notes.map(n => n.closed)")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert alarm_title.startswith("⚠") and alarm_title != title
    assert beeps >= 1  # the sound is on by default, also behind another tab
    assert shown == [{"title": alarm_title, "tag": "eyestate-alarm"}]  # one notification for the one alarm
    assert notes == [True]  # closed once the eyes opened
    assert mode == "full"  # the rare frame callbacks behind another tab do not read as a device too slow
    assert calls[0]["video"]["facingMode"] == {"ideal": "user"}  # no camera picked before: a phone's selfie camera
    background = [e for e in log[before:] if e.get("background")]
    assert len(background) >= 10, f"{len(background)} background frames of {len(log) - before}"
    assert {e["left"] for e in background} >= {"open", "closed"}  # they were read and labelled, not repeated


@pytest.mark.shared
def test_a_device_too_slow_for_the_camera_switches_to_light_mode_and_back(site, playwright, tmp_path):
    """CPU throttled 6x after loading (DevTools emulation of a weak laptop; ~250 ms a frame), 30 fps camera: the page
    falls far behind the camera, turns the iris model off, says so, and goes on labelling with the classifier alone.
    Throttling lifted (the laptop is free again), the full pipeline comes back after the retry time."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    video = video_to_y4m(source, tmp_path / "fast.y4m", 0, 10)
    browser = launch(playwright, video)
    try:
        page, requests, _ = open_page(browser, site)
        assert page.get_attribute("#fps", "data-mode") == "full" and page.is_hidden("#light-note")
        page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 6})
        page.click("#start")
        page.wait_for_selector('#fps[data-mode="light"]', timeout=60_000)
        # Frames take ~250 ms here: the background clock (another tab in front) must not take the end of one for
        # missing frame callbacks and read a frame, which restarts the budget's count (122 of 149 frames, and no light
        # mode within a minute, before page_app counted its wait from the end of the frame)
        clock_reads = sum(bool(e.get("background")) for e in frame_log(page))
        assert page.is_visible("#light-note")
        rows = page.eval_on_selector_all("#latency tr", "rows => rows.map(r => [r.cells[0].textContent, r.cells[1].textContent])")
        assert dict(rows)["eyelid landmarks"] == "off"  # not the last average of a stage that no longer runs
        switched = page.evaluate("window.eyestateTimings.light_mode_ms")
        page.wait_for_function(f"Array.from(window.eyestateLog).filter(e => e.done > {switched}).length >= 10",
                               timeout=30_000)
        after = [e for e in frame_log(page) if e["done"] > switched]
        page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": 1})
        page.wait_for_selector('#fps[data-mode="full"]', timeout=60_000)  # retry_after_s (10 s) + a 3 s window
        assert page.is_hidden("#light-note")
        again = page.evaluate("window.eyestateTimings.full_again_ms")
        page.wait_for_function(f"Array.from(window.eyestateLog).filter(e => e.done > {again}).length >= 10",
                               timeout=30_000)
        back = [e for e in frame_log(page) if e["done"] > again]
        # a video file is not real-time: clip mode keeps the full pipeline even after the live switch
        page.set_input_files("#clip-file", str(video_to_webm(source, tmp_path / "clip.webm", 0, 20)))
        assert wait_state(page, ["clip-done", "clip-failed"], 120_000) == "clip-done"
        clip_log = [e for e in frame_log(page) if e["app"] == "processing-clip"]
        assert page.get_attribute("#fps", "data-mode") == "full" and page.is_hidden("#light-note")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert clock_reads <= 2, clock_reads
    assert all("iris" not in e["stages"] for e in after)  # the iris model no longer runs live
    # live frames let FaceMesh skip a still face's frames (page_app.LIVE_LANDMARK_HOLD_S); clip mode never does
    assert any("landmarks" not in e["stages"] for e in after)
    assert all("landmarks" in e["stages"] for e in clip_log)
    assert any(e["left"] in ("open", "closed") for e in after)  # and the eyes are still labelled
    assert any("iris" in e["stages"] for e in back)  # back in full mode, the eyelid model runs again
    assert clip_log and any("iris" in e["stages"] for e in clip_log)


# ------------------------------------------------------------------------------------- clip mode

CLIP_VIDEO = "mahie_test_1"
CLIP_FRAMES = 360  # 12 s with two labelled blinks (frames 93 and 292)


def read_csv(text: str) -> list:
    return list(csv.DictReader(io.StringIO(text)))


def replay_csv_rows(clip, eye_model, tmp_path) -> list:
    """`python -m pipeline.video` on `clip` with the page's classifier: its per-frame CSV rows."""
    replay_csv = tmp_path / "replay.csv"
    done = subprocess.run([sys.executable, "-m", "pipeline.video", str(clip), "--csv", str(replay_csv),
                           "--model", str(eye_model)], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return list(csv.DictReader(replay_csv.open()))


# Browsers whose VideoFrame of a video element does not carry the frame's own time (page_clip.py reads frames by
# frame callbacks there): Firefox stamps whole seconds of the playback position, Safari the playback position. They
# read the clip's first OTHER_FRAMES frames (one labelled blink, at frame 93), without the camera running first.
OTHER_FRAMES = 200
OTHER_VIDEOFRAMES = {
    "VideoFrame": None,
    "whole-second-timestamps": """const VF = window.VideoFrame; window.VideoFrame = class extends VF {
        constructor(source, init) { super(source, init); this.t = Math.floor(source.currentTime); }
        get timestamp() { return this.t; } };""",
    "playback-position-timestamps": """const VF = window.VideoFrame; window.VideoFrame = class extends VF {
        constructor(source, init) { super(source, init); this.t = Math.round(source.currentTime * 1e6); }
        get timestamp() { return this.t; } };""",
}


@pytest.fixture(scope="module")
def focus_clip(tmp_path_factory) -> Path:
    """CLIP_VIDEO's first CLIP_FRAMES frames as a clip the page plays (made once)."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    # Browsers do not play .avi/MPEG-4 part 2: lossless VP9 keeps the decoded pixels of the source.
    return video_to_webm(source, tmp_path_factory.mktemp("focus_clip") / "clip.webm", 0, CLIP_FRAMES)


@pytest.fixture(scope="module")
def focus_clip_front_csv() -> dict:
    """The page's CSV rows and summary of focus_clip read in front, kept by test_clip_mode_matches_offline_replay
    [VideoFrame] for the test that compares a run behind another tab with them (one reading of the clip less); empty
    where that test did not run first."""
    return {}


@pytest.fixture(scope="module")
def focus_clip_replay(focus_clip, page_eye_model, tmp_path_factory) -> list:
    return replay_csv_rows(focus_clip, page_eye_model, tmp_path_factory.mktemp("focus_replay"))


@pytest.mark.shared
@pytest.mark.parametrize("frames_by", list(OTHER_VIDEOFRAMES))
def test_clip_mode_matches_offline_replay(site, playwright, focus_clip, focus_clip_replay, focus_clip_front_csv,
                                         tmp_path, frames_by):
    source, own_times = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi", frames_by == "VideoFrame"
    frames = CLIP_FRAMES if own_times else OTHER_FRAMES
    clip = focus_clip if own_times else video_to_webm(source, tmp_path / "clip.webm", 0, frames)
    # the live camera runs (a face, so model calls are in flight) when the clip is chosen: the clip must
    # wait for the live frame to finish and then own the pipeline alone
    browser = launch(playwright, video_to_y4m(source, tmp_path / "camera.y4m", 0, 5) if own_times else None)
    try:
        page, requests, console = open_page(
            browser, site, init_script=OTHER_VIDEOFRAMES[frames_by])
        if own_times:
            page.click("#start")
            wait_state(page, ["running", "no-face", "uncertain"], 60_000)
            page.wait_for_function("window.eyestateLog.length > 3", timeout=30_000)
        page.set_input_files("#clip-file", str(clip))
        state = wait_state(page, ["clip-done", "clip-failed", "model-failed"], 240_000)
        assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
        assert own_times == (not any("do not carry the frame's own time" in line for line in console)), console[-20:]
        page_rows = read_csv(page.input_value("#clip-csv"))
        summary = {k: page.get_attribute("#clip-summary", f"data-{k}") for k in ("frames", "blinks", "alarms", "dropped")}
        href = page.get_attribute("#clip-download", "href")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert href and href.startswith("blob:")
    assert len(page_rows) == frames and summary["frames"] == str(frames) and summary["dropped"] == "0"
    assert [int(r["frame"]) for r in page_rows] == list(range(frames))
    assert list(page_rows[0]) == ["frame", "time", "p_open_left", "p_open_right", "state_left", "state_right",
                                  "state", "blink_id", "alarm"]

    assert len(focus_clip_replay) == CLIP_FRAMES
    replay_rows = focus_clip_replay[:frames]  # the replay of the first frames alone gives the same rows

    page_blinks = {int(r["blink_id"]) for r in page_rows} - {0}
    replay_blinks = {int(r["blink_id"]) for r in replay_rows} - {0}
    assert len(page_blinks) == len(replay_blinks) == int(summary["blinks"]) >= 1, (page_blinks, replay_blinks)
    assert [r["alarm"] for r in page_rows] == [r["alarm"] for r in replay_rows]  # no closure this long: all "0"
    assert summary["alarms"] == "0"
    same = sum(p["state_left"] == r["state_left"] and p["state_right"] == r["state_right"]
               for p, r in zip(page_rows, replay_rows))
    # Browser and OpenCV convert YUV to RGB and resample crops slightly differently; the states may
    # differ on a frame where p(open) sits right at a threshold, never more.
    assert same / frames >= 0.97, f"per-frame states agree on {same}/{frames} frames"
    diffs = [abs(float(p["p_open_left"]) - float(r["p_open_left"])) for p, r in zip(page_rows, replay_rows)
             if p["p_open_left"] and r["p_open_left"]]
    assert diffs and sorted(diffs)[len(diffs) // 2] < 0.02
    if own_times:
        focus_clip_front_csv.update(rows=page_rows, summary={k: summary[k] for k in ("frames", "blinks", "dropped")})


@pytest.mark.shared
def test_the_alarm_delay_setting_is_kept_and_scores_a_video_file(site, playwright, tmp_path):
    """The no-glasses demo clip around its 2.4 s closure (labels/, frames 138-194): one microsleep alarm with the
    default 1.5 s delay, none with 3 s. Settings persist in this browser; ?alarm=S overrides the delay for a visit;
    a remembered camera that is gone does not stop the camera from starting."""
    source = DEMO_VIDEOS / "repeating_Blink-Detector__video.mp4"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = video_to_webm(source, tmp_path / "closure.webm", 120, 96)
    browser = launch(playwright, synthetic_y4m(tmp_path / "camera.y4m", duration_s=1))
    try:
        page, requests, console = open_page(browser, site)

        def score() -> dict:
            page.set_input_files("#clip-file", str(clip))
            page.wait_for_function("document.getElementById('status').dataset.state !== 'clip-done'")
            state = wait_state(page, ["clip-done", "clip-failed", "model-failed"], 120_000)
            assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
            rows = read_csv(page.input_value("#clip-csv"))
            return {"alarms": page.get_attribute("#clip-summary", "data-alarms"),
                    "delay": page.get_attribute("#clip-summary", "data-alarm-after"),
                    "alarm_rows": sum(r["alarm"] == "1" for r in rows)}

        def stored() -> dict:
            return page.evaluate("JSON.parse(localStorage.getItem('eyestate.settings') || '{}')")

        assert page.input_value("#alarm-after") == "1.5" and page.is_checked("#alarm-sound")
        assert score() == {"alarms": "1", "delay": "1.5", "alarm_rows": pytest.approx(20, abs=12)}
        page.click("#settings-box summary")
        page.fill("#alarm-after", "3")
        page.dispatch_event("#alarm-after", "change")
        page.click("#alarm-test")  # the sound can be tried without closing one's eyes
        page.wait_for_function("window.eyestateBeeps === 1", timeout=5_000)
        page.uncheck("#alarm-sound")
        assert stored() == {"alarm_after_s": 3.0, "sound": False, "camera": "", "notify": False}
        page.fill("#alarm-after", "0.1")  # out of range: marked, and the last valid delay stays
        page.dispatch_event("#alarm-after", "change")
        assert page.get_attribute("#alarm-after", "aria-invalid") == "true"
        # said in words next to the field (an alert), with the delay that still holds
        assert page.is_visible("#alarm-after-error") and "still sounds after 3 s" in page.text_content(
            "#alarm-after-error")
        assert stored()["alarm_after_s"] == 3.0
        assert score() == {"alarms": "0", "delay": "3.0", "alarm_rows": 0}

        page.evaluate("""localStorage.setItem('eyestate.settings', JSON.stringify(
            {...JSON.parse(localStorage.getItem('eyestate.settings')), camera: 'a-camera-unplugged-since'}))""")
        page.context.add_init_script(GUM_HOOK)
        page.goto(site + "index.html?alarm=2")  # same browser context: the stored settings load, the query wins
        wait_state(page, "ready", BOOT_TIMEOUT_MS)
        assert page.input_value("#alarm-after") == "2" and not page.is_checked("#alarm-sound")
        page.click("#start")
        assert wait_state(page, ["no-camera", "camera-denied", *LIVE_STATES], 30_000) in LIVE_STATES
        assert page.evaluate("window.gumCalls")[-1]["video"]["deviceId"] == {"ideal": "a-camera-unplugged-since"}
        page.click("#settings-box summary")
        page.check("#alarm-sound")  # saves the settings, but not the link's delay
        assert stored() == {"alarm_after_s": 3.0, "sound": True, "camera": "a-camera-unplugged-since",
                            "notify": False}
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


@pytest.mark.shared
def test_processing_a_video_file_can_be_stopped_and_keeps_what_was_done(site, playwright, tmp_path):
    """Also a file that does not say how long it is, as browsers record them (the video reports Infinity)."""
    source = DEMO_VIDEOS / "repeating_Blink-Detector__video.mp4"  # 334 frames
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = video_to_webm(source, tmp_path / "demo.webm", streamed=True)
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site, init_script=WAKE_HOOK)
        page.set_input_files("#clip-file", str(clip))
        page.wait_for_function("Array.from(window.eyestateLog).filter(e => e.app === 'processing-clip').length >= 40",
                               timeout=120_000)
        assert page.text_content("#clip-summary").startswith("0:0")  # progress while it runs ...
        assert " of ? processed, " in page.text_content("#clip-summary")  # ... of a length the file does not give
        assert page.get_attribute("#clip-progress", "value") is None  # an indeterminate bar
        assert page.get_attribute("#wake", "data-state") == "on"  # the screen stays on while a file is processed
        assert page.evaluate(LOCKS) == [False]
        page.click("#clip-stop")
        state = wait_state(page, ["clip-stopped", "clip-done", "clip-failed", "model-failed"], 60_000)
        assert state == "clip-stopped", page.text_content("#status") + "\n".join(console[-20:])
        assert page.get_attribute("#wake", "data-state") == "off"
        page.wait_for_function(f"{LOCKS}.every(released => released)", timeout=5_000)
        rows = read_csv(page.input_value("#clip-csv"))
        summary = {k: page.get_attribute("#clip-summary", f"data-{k}") for k in ("frames", "stopped")}
        text = page.text_content("#clip-summary")
        assert page.is_hidden("#clip-stop") and page.is_enabled("#start") and page.is_visible("#clip-download")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert 40 <= len(rows) < 334 and summary["frames"] == str(len(rows))
    assert [int(r["frame"]) for r in rows] == list(range(len(rows)))
    assert float(summary["stopped"]) == pytest.approx(float(rows[-1]["time"]), abs=1e-3)
    assert text.startswith("First 0:") and " of ?: " in text


def decoded_times(path) -> list:
    import cv2

    capture = cv2.VideoCapture(str(path))
    times = []
    while capture.grab():
        times.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    capture.release()
    return times


class ClipRead(NamedTuple):
    rows: list  # the clip CSV's rows
    rate: float  # playback rate
    dropped: str  # frames that could not be read
    stepped: int  # frames read by seeking as if behind another tab
    size: list  # the video element's [width, height]
    console: list  # the page's console lines


def rate_falls(console: list) -> list:
    """Clip times at which the reader saw the frame rate fall (page_clip.FELL_FACTOR)."""
    return [float(m.group(1)) for line in console if (m := re.search(r"the frame rate fell at ([\d.]+) s", line))]


def read_clip(site, playwright, clip, cpu_throttle: float = 1) -> ClipRead:
    """The page's clip mode on `clip`, in a browser of its own; it must finish and ask no other origin. `cpu_throttle`:
    the page runs that many times slower once it is ready (DevTools' emulation of a weak device)."""
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site)
        if cpu_throttle > 1:
            page.context.new_cdp_session(page).send("Emulation.setCPUThrottlingRate", {"rate": cpu_throttle})
        page.set_input_files("#clip-file", str(clip))
        state = wait_state(page, ["clip-done", "clip-failed", "model-failed"], 240_000)
        assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
        read = ClipRead(rows=read_csv(page.input_value("#clip-csv")),
                        rate=float(page.get_attribute("#clip-summary", "data-rate")),
                        dropped=page.get_attribute("#clip-summary", "data-dropped"),
                        stepped=page.evaluate("Array.from(window.eyestateLog).filter(e => e.background).length"),
                        size=page.evaluate("['videoWidth', 'videoHeight'].map((k) => "
                                           "document.getElementById('clip-video')[k])"),
                        console=console)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    return read


@pytest.mark.shared
def test_a_clip_on_a_slow_device_plays_slower_so_that_frames_are_not_skipped(site, playwright, tmp_path):
    """On a device that takes ~100 ms a frame (CPU throttled 4x), 30 presentations a second skipped about every other
    frame, each read again by seeking (67 of 120, docs/BENCHMARKS.md section 5, H3). The reader presents no more than
    the pipeline keeps up with (page_clip.KEEP_UP): a 30 fps clip plays at about half speed, few frames are skipped,
    and every frame is read once, in order."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = 60
    clip = video_to_webm(source, tmp_path / "clip.webm", 0, frames)
    read = read_clip(site, playwright, clip, cpu_throttle=4)
    skipped = [int(m.group(1)) for line in read.console if (m := re.search(r"(\d+) skipped by the browser", line))]
    assert read.rate < 0.75, read.rate  # 0.99 at 30 presentations a second
    assert skipped and skipped[-1] <= 10, skipped  # 34 and 37 of 60 at 30 a second
    assert read.dropped == "0" and len(read.rows) == frames
    assert [float(r["time"]) for r in read.rows] == pytest.approx(decoded_times(clip), abs=0.002)


@pytest.mark.shared
def test_a_low_frame_rate_clip_plays_faster_and_still_gives_every_frame_once(site, playwright, tmp_path):
    """Clip mode plays a 6 fps clip at up to 5x (page_clip.PRESENTED_PER_S, fewer where the pipeline takes longer on a
    frame: KEEP_UP): frames come closer together, so more may slip past the pause and be fetched again by seeking; the
    CSV must still hold every frame once, in order."""
    source = FOCUS_VIDEOS / "soniya_test_5_low_fps.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = video_to_webm(source, tmp_path / "slow.webm", 0, 60)
    rows, rate, dropped, *_ = read_clip(site, playwright, clip)
    assert 2 <= rate <= 6, rate  # up to 30 presentations a second at ~0.163 s per frame (3.95 seen: 24 a second)
    assert dropped == "0" and len(rows) == 60
    assert [float(r["time"]) for r in rows] == pytest.approx(decoded_times(clip), abs=0.002)


@pytest.mark.shared
def test_a_60_fps_clip_with_uneven_steps_plays_slower_and_gives_every_frame_once(site, playwright, tmp_path):
    """A 60 fps clip whose frame steps are 16, 17 and now and then 33 ms (as re-timed or phone videos have) is read at
    about half speed. At full speed the pause after each frame missed frames that seeking did not always bring back
    (3 of 600 lost in one run, docs/BENCHMARKS.md section 5, table H)."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    even = video_to_webm(source, tmp_path / "even.webm", 0, 120)
    clip = tmp_path / "fast.webm"
    ffmpeg("-i", str(even), "-vf", "setpts=0.5*PTS", "-r", "60", "-c:v", "libvpx-vp9", "-lossless", "1",
           "-deadline", "realtime", "-cpu-used", "8", str(clip))
    times = decoded_times(clip)
    steps = {round(1000 * (b - a)) for a, b in zip(times, times[1:])}
    assert steps >= {16, 17} and max(steps) >= 33, steps  # the uneven steps this test is about
    rows, rate, dropped, *_ = read_clip(site, playwright, clip)
    assert 0.4 <= rate <= 0.6, rate
    assert dropped == "0" and len(rows) == len(times)
    assert [float(r["time"]) for r in rows] == pytest.approx(times, abs=0.002)


def test_a_240_fps_slow_motion_clip_gives_every_frame_once(site, playwright, tmp_path):
    """Frame callbacks come at most once per display refresh, so the probe that plays a few frames at 1x saw only
    every fifth frame of a 240 fps clip: read at 0.62x with a 21 ms step, its 4 ms gaps went unnoticed and 17
    of its 480 frames were lost, with none reported dropped. The step found by seeking reads it at 0.125x."""
    clip = tmp_path / "slowmo.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=320x240:rate=240", "-t", "2", "-c:v", "libx264", "-preset",
           "ultrafast", "-qp", "0", "-pix_fmt", "yuv420p", str(clip))
    times = decoded_times(clip)
    assert len(times) == 480
    rows, rate, dropped, *_ = read_clip(site, playwright, clip)
    assert rate == pytest.approx(0.125, abs=0.01)  # 30 presentations a second (MIN_RATE)
    assert dropped == "0" and len(rows) == len(times)
    assert [float(r["time"]) for r in rows] == pytest.approx(times, abs=0.002)


@pytest.mark.parametrize("source_fps, seconds, select, frames, rate, fell", [
    (240, 3, "gte(t\\,1)+not(mod(n\\,8))", 510, 0.125, False),  # 1 s at 30 fps, 2 s at 240 fps
    (120, 3, "if(between(t\\,1\\,2)\\,not(mod(n\\,2))\\,not(mod(n\\,5)))", 108, 0.5, False),  # 24, 60, 24 fps
    (240, 1.75, "lt(t\\,0.25)+not(mod(n\\,8))", 105, 1.0, True),  # 0.25 s at 240 fps, 1.5 s at 30 fps
], ids=["30-then-240-fps", "24-60-24-fps", "240-then-30-fps"])
def test_a_clip_whose_frame_rate_changes_gives_every_frame_once(site, playwright, tmp_path, source_fps, seconds,
                                                                select, frames, rate, fell):
    """The probe sees the first frames only. Read at the rate and step of its start, a clip lost frames at a faster
    stretch without a jump in presentedFrames and within 1.5 x the step (30 then 240 fps: 409, 394, 493 and 510 of
    510 in four runs; 24, 60, 24 fps: 106 and 107 of 108), none reported. The count of frames dropped unseen (and a
    callback whose frame was already replaced, and a step shorter than the one known) marks the gap, filled up to
    its end; the gap's length over the frames in it bounds the step, and the playback rate follows the step of the
    last 30 frames: also up again after a fast start (it stayed at 0.125x; 240 then 30 fps for 3 s took twice as long
    to read)."""
    clip = tmp_path / "varying.mp4"
    ffmpeg("-f", "lavfi", "-i", f"testsrc2=size=320x240:rate={source_fps}", "-t", str(seconds), "-vf",
           f"select='{select}'", "-fps_mode", "vfr", "-c:v", "libx264", "-preset", "ultrafast", "-qp", "0", "-pix_fmt",
           "yuv420p", str(clip))
    times = decoded_times(clip)
    steps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) == frames and max(steps) > 2 * min(steps)  # the frame rate changes within the clip
    read = read_clip(site, playwright, clip)
    assert read.rate == pytest.approx(rate, abs=0.01)  # followed the last stretch's step
    assert read.dropped == "0" and len(read.rows) == len(times)
    assert [float(r["time"]) for r in read.rows] == pytest.approx(times, abs=0.002)
    # an 8x fall is followed at once (page_clip.FELL_FACTOR); 60 then 24 fps keeps the shorter step for 30 frames
    assert [t < 0.4 for t in rate_falls(read.console)] == ([True] if fell else []), read.console


@pytest.mark.shared
def test_a_clip_of_varying_frame_rate_gives_the_same_times_and_alarm_as_replay(site, playwright, page_eye_model,
                                                                             tmp_path):
    """The no-glasses demo clip's first 200 frames with the 138 before its 2.4 s closure sped up 8 times (5 ms steps,
    then 42 ms; as tests/test_video_replay.py). The page reads every frame once at its own time, as the replay does
    since session 17, so both raise the one alarm and count none of the 20 ms closures as a blink."""
    if not (DEMO_VIDEOS / "repeating_Blink-Detector__video.mp4").exists():
        pytest.skip(f"needs {DEMO_VIDEOS} (../shared)")
    clip = varying_rate_demo_clip(tmp_path / "vfr.mp4")
    times = decoded_times(clip)
    assert len(times) == 200 and times[1] - times[0] < 0.006
    read = read_clip(site, playwright, clip)
    rows = read.rows
    assert read.dropped == "0" and len(rows) == len(times)
    assert [float(r["time"]) for r in rows] == pytest.approx(times, abs=0.002)
    # the step follows the fall at once (page_clip.FELL_FACTOR): 30 frames more at 0.15x, ~1 s each, before
    assert [t < 0.9 for t in rate_falls(read.console)] == [True], read.console  # at 0.80 s (the second 42 ms step)
    replay_rows = replay_csv_rows(clip, page_eye_model, tmp_path)
    assert [float(r["time"]) for r in replay_rows] == pytest.approx(times, abs=0.002)
    for table in (rows, replay_rows):
        assert {r["blink_id"] for r in table} == {"0"}
        alarm = [r["alarm"] in ("1", "True", "true") for r in table]
        assert sum(a and not b for a, b in zip(alarm, [False] + alarm)) == 1  # one alarm, late in the closure
        assert not any(alarm[:170])  # not before 1.5 s of the closure (frame 174 by the frames' own times)


# One rerun: on a loaded host the callback of the frame after the still can come later than the reader's waits
# (3 frames read by seeking in one CI run of session 20, none in the other runs); a reader that takes every still
# for another tab fails both runs.
@pytest.mark.shared
@pytest.mark.flaky(reruns=1)
def test_a_still_frame_held_for_two_seconds_is_waited_for_not_taken_for_another_tab(site, playwright, tmp_path):
    """A clip (variable frame rate: a slideshow, a screen recording) whose frame at 1 s stays for 2 s: no frame
    callback comes for longer than page_clip.NOT_RENDERED_AFTER_S, but nothing was presented unseen, so the reader
    waits instead of stepping through the still frame by seeking as if behind another tab."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = tmp_path / "still.webm"
    ffmpeg("-i", str(source), "-filter_complex",
           "[0:v]fps=30,trim=end_frame=90,setpts=PTS-STARTPTS,split=3[a][b][c];"
           "[a]trim=end_frame=30,setpts=PTS-STARTPTS[a1];"
           "[b]trim=start_frame=30:end_frame=31,setpts=PTS-STARTPTS,tpad=stop_mode=clone:stop_duration=2[b1];"
           "[c]trim=start_frame=31,setpts=PTS-STARTPTS[c1];"
           "[a1][b1][c1]concat=n=3:v=1,mpdecimate=max=0:hi=1:lo=1:frac=0[v]",
           "-map", "[v]", "-fps_mode", "vfr", "-c:v", "libvpx-vp9", "-lossless", "1", str(clip))
    times = decoded_times(clip)
    assert max(b - a for a, b in zip(times, times[1:])) > 2.0  # the still this test is about
    read = read_clip(site, playwright, clip)
    assert read.dropped == "0" and len(read.rows) == len(times) and read.stepped == 0
    assert [float(r["time"]) for r in read.rows] == pytest.approx(times, abs=0.002)


@pytest.mark.shared
def test_a_clip_in_front_on_a_device_that_holds_the_main_thread_is_not_taken_for_another_tab(site, playwright,
                                                                                            tmp_path):
    """A slow or busy device may hold the page's main thread for a second (here a busy loop, six times while the clip
    plays). The wait for the next frame then ends late, before the frame callback that came meanwhile has had its
    turn: the reader waits once more (page_clip.LATE_TIMER_S) instead of reading on by seeking as if another tab were
    in front (3 frames were, before). Every frame is still read once, in order."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = 150
    clip = video_to_webm(source, tmp_path / "clip.webm", 0, frames)
    count = "Array.from(window.eyestateLog).filter(e => e.app === 'processing-clip').length"
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site)
        page.set_input_files("#clip-file", str(clip))
        page.wait_for_function(f"{count} >= 10", timeout=120_000)
        for _ in range(6):
            page.evaluate("(() => { const t = performance.now(); while (performance.now() - t < 1000) {} })()")
            page.wait_for_timeout(700)
        during = page.evaluate(count)
        assert wait_state(page, ["clip-done", "clip-failed", "model-failed"], 240_000) == "clip-done"
        rows = read_csv(page.input_value("#clip-csv"))
        stepped = page.evaluate("Array.from(window.eyestateLog).filter(e => e.background).length")
    finally:
        browser.close()
    assert during < frames  # the busy loops fell inside the clip
    assert len(rows) == frames
    assert [float(r["time"]) for r in rows] == pytest.approx(decoded_times(clip), abs=0.002)
    assert stepped == 0, [line for line in console if "clip" in line]


@pytest.mark.shared
def test_a_clip_goes_on_behind_another_tab_and_gives_the_same_frames(site, playwright, focus_clip,
                                                                     focus_clip_front_csv):
    """Behind another tab the page is not rendered and frame callbacks nearly stop (headless Chromium: about one a
    second while the pipeline runs; this clip then "finished" with 130 of its 360 frames, 19 counted unreadable). The
    reader then reads each frame by seeking (page_clip.ClipReader._step) and plays again once the page is in front. The
    clip, put behind another tab, shown and put behind again until it ends, gives exactly the CSV of a run in front:
    the same frames, in order, with the same pixels (so the same p(open), states and blinks). The first time behind is
    headless Chromium's own (another page in front); the second is real Chrome's, imitated: no frame callback at all
    and document.hidden (BEHIND_TAB_HOOK)."""
    clip = focus_clip
    browser = launch(playwright)
    count = "Array.from(window.eyestateLog).filter(e => e.app === 'processing-clip').length"
    done = "['clip-done', 'clip-failed', 'model-failed'].includes(document.getElementById('status').dataset.state)"
    try:
        page, requests, console = open_page(browser, site, init_script=BEHIND_TAB_HOOK)

        def result() -> tuple:
            assert page.get_attribute("#status", "data-state") == "clip-done", page.text_content("#status")
            summary = {k: page.get_attribute("#clip-summary", f"data-{k}") for k in ("frames", "blinks", "dropped")}
            return read_csv(page.input_value("#clip-csv")), summary

        if focus_clip_front_csv:  # read in front already (test_clip_mode_matches_offline_replay), in another browser
            front_rows, front_summary = focus_clip_front_csv["rows"], focus_clip_front_csv["summary"]
        else:
            page.set_input_files("#clip-file", str(clip))
            wait_state(page, ["clip-done", "clip-failed", "model-failed"], 240_000)
            front_rows, front_summary = result()
        before = page.evaluate(count)

        page.set_input_files("#clip-file", str(clip))
        page.wait_for_function(f"{count} >= {before + 60}", timeout=120_000)
        other = page.context.new_page()
        other.goto("about:blank")
        other.bring_to_front()  # headless Chromium's own "behind another tab"
        # interval polling: the page renders no frames in the background, so no requestAnimationFrame polling
        page.wait_for_function(f"{count} >= {before + 170}", polling=100, timeout=120_000)
        page.bring_to_front()
        page.wait_for_function(f"{count} >= {before + 240}", timeout=120_000)
        other.bring_to_front()
        page.evaluate("window.behindTab(true)")  # real Chrome's
        page.wait_for_function(done, polling=100, timeout=120_000)
        page.bring_to_front()
        page.evaluate("window.behindTab(false)")
        rows, summary = result()
        log = frame_log(page)[before:]
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert front_summary == {"frames": str(CLIP_FRAMES), "blinks": "2", "dropped": "0"}
    assert summary == front_summary and rows == front_rows  # every frame once, in order, with the same results
    behind = [bool(e.get("background")) for e in log]  # frames read by seeking while the page was not rendered
    runs = [flag for i, flag in enumerate(behind) if i == 0 or flag != behind[i - 1]]
    # front, behind, front again (played), behind to the end; a busy machine may add a pause in front
    assert runs[0] is False and runs[-1] is True and len(runs) >= 4, runs
    assert sum(behind) >= 150
    assert sum("reading frames by seeking" in line for line in console) >= 2
    assert sum("rendered again" in line for line in console) >= 1
    spans = {True: [0, 0.0], False: [0, 0.0]}  # frames and seconds, behind and in front (second run)
    for a, b in zip(log, log[1:]):
        if a.get("background") == b.get("background"):
            spans[bool(b.get("background"))][0] += 1
            spans[bool(b.get("background"))][1] += (b["done"] - a["done"]) / 1000
    print("frames a second behind another tab: {:.1f}, in front: {:.1f}".format(
        *(spans[k][0] / spans[k][1] for k in (True, False))))


@pytest.mark.shared
def test_a_clip_opened_behind_another_tab_is_read_by_seeking_and_gives_the_same_frames(site, playwright, tmp_path):
    """A file picked just before another tab comes to the front opens while the page is not rendered: no frame
    callback comes (BEHIND_TAB_HOOK does what real Chrome does there; before, this failed as "no frame could be
    decoded"), so the reader learns the frame step by seeking (page_clip.ClipReader._probe_by_seeking) and reads every
    frame by seeking from the first. Run to its end behind the tab, it gives exactly the CSV of a run in front; so
    does a tab hidden while the clip plays its first frames to learn the step. The clip is a phone-style MP4 whose
    first steps are uneven (35 and 27 ms, then 33): a first version took the third frame for the second there, and
    read every other frame."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = 60
    clip = tmp_path / "phone.mp4"
    ffmpeg("-i", str(source), "-frames:v", str(frames), "-vf",
           "settb=1/1000,setpts='(N/30+0.002*eq(N,1)-0.004*eq(N,2))/TB'", "-fps_mode", "vfr", "-enc_time_base",
           "1/1000", "-video_track_timescale", "1000", "-an", "-c:v", "libx264", "-crf", "10", "-pix_fmt", "yuv420p",
           str(clip))
    browser = launch(playwright)
    done = "['clip-done', 'clip-failed', 'model-failed'].includes(document.getElementById('status').dataset.state)"
    try:
        page, requests, console = open_page(browser, site, init_script=BEHIND_TAB_HOOK + HIDE_ON_CLIP_PLAY)
        other = page.context.new_page()

        def run(hide: str) -> tuple:
            """(CSV rows, summary, frames read by seeking) of one run; hide: "open", "probe" or "" (in front)."""
            before = len(frame_log(page))
            if hide:
                other.bring_to_front()
                page.evaluate("window.behindTab(true)" if hide == "open" else "window.hideOnClipPlay = true")
            page.set_input_files("#clip-file", str(clip))
            # interval polling: the page renders no frames in the background, so no requestAnimationFrame polling
            page.wait_for_function("document.getElementById('status').dataset.state === 'processing-clip'",
                                   polling=50, timeout=30_000)
            page.wait_for_function(done, polling=100, timeout=120_000)
            page.bring_to_front()
            page.evaluate("window.behindTab(false)")
            assert page.get_attribute("#status", "data-state") == "clip-done", (
                page.text_content("#status") + "\n".join(console[-20:]))
            summary = {k: page.get_attribute("#clip-summary", f"data-{k}") for k in ("frames", "blinks", "dropped")}
            seeking = sum(bool(e.get("background")) for e in frame_log(page)[before:])
            return read_csv(page.input_value("#clip-csv")), summary, seeking

        other.goto("about:blank")
        rows, summary, seeking = run("open")
        front_rows, front_summary, _ = run("")
        probe_rows, probe_summary, probe_seeking = run("probe")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    times = [float(r["time"]) for r in front_rows]
    assert times[:4] == pytest.approx([0, 0.035, 0.062, 0.1], abs=1e-3) and len(times) == frames
    assert front_summary["frames"] == str(frames) and front_summary["dropped"] == "0"
    assert summary == front_summary and rows == front_rows  # every frame once, in order, with the same results
    assert seeking == frames  # each one read by seeking
    assert probe_summary == front_summary and probe_rows == front_rows
    assert probe_seeking == frames


@pytest.mark.shared
def test_a_clip_whose_frame_rate_rises_is_read_whole_behind_another_tab(site, playwright, tmp_path):
    """A phone raises its frame rate as the light gets better: here 15 frames a second for 10 frames, then 30. Read by
    seeking behind another tab, each seek one known step ahead would show the second of two frames and skip the
    first (31 of 50 frames, "done" with 0 dropped, before page_clip.ClipReader._first_since); every frame must come."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = tmp_path / "rising.mp4"
    ffmpeg("-i", str(source), "-frames:v", "50", "-vf", "settb=1/1000,setpts='if(lt(N,10),N/15,10/15+(N-10)/30)/TB'",
           "-fps_mode", "vfr", "-enc_time_base", "1/1000", "-video_track_timescale", "1000", "-an", "-c:v", "libx264",
           "-crf", "10", "-pix_fmt", "yuv420p", str(clip))
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site, init_script=BEHIND_TAB_HOOK)
        page.evaluate("window.behindTab(true)")
        page.set_input_files("#clip-file", str(clip))
        page.wait_for_function("document.getElementById('status').dataset.state === 'processing-clip'", polling=50,
                               timeout=30_000)
        page.wait_for_function("['clip-done', 'clip-failed', 'model-failed'].includes("
                               "document.getElementById('status').dataset.state)", polling=100, timeout=120_000)
        assert page.get_attribute("#status", "data-state") == "clip-done", page.text_content("#status")
        rows = read_csv(page.input_value("#clip-csv"))
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert [float(r["time"]) for r in rows] == pytest.approx(decoded_times(clip), abs=0.002)
    assert any("frame step 0.06" in line and "-> 0.03" in line for line in console)


@pytest.mark.shared
@pytest.mark.parametrize("stamps, when", [("playback-position-timestamps", "opened"),
                                          ("whole-second-timestamps", "opened"),
                                          ("playback-position-timestamps", "mid-clip")])
def test_a_clip_behind_another_tab_waits_to_be_shown_where_frames_come_by_frame_callbacks(
        site, playwright, tmp_path, stamps, when):
    """Where a VideoFrame of the element does not carry the frame's own time (Safari's playback-position stamps,
    Firefox's whole seconds), frames come only by frame callbacks, which stop behind another tab.
    - Opened there, a clip waits, saying so, and is read once the page is shown. The clip lasts 2.5 s: a first
      version of the probe by seeking took Firefox's stamp at 2 s for a frame 2 µs after the first and then stepped
      through the file 2 µs at a time, for ever.
    - Put there mid-clip, the element must not play on unseen to its end: before, the clip ended "done" with the
      frames after the switch missing (42 of 119); it pauses until the page is shown, then reads every frame."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    clip = video_to_webm(source, tmp_path / "clip.webm", 0, 75 if when == "opened" else 90)
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site, init_script=BEHIND_TAB_HOOK + OTHER_VIDEOFRAMES[stamps])
        if when == "opened":
            page.evaluate("window.behindTab(true)")
            page.set_input_files("#clip-file", str(clip))
            page.wait_for_function(
                "document.getElementById('clip-summary').textContent.startsWith('Waiting for this tab')",
                polling=100, timeout=30_000)
            time.sleep(1)
            assert frame_log(page) == []
        else:
            page.set_input_files("#clip-file", str(clip))
            page.wait_for_function("window.eyestateLog.length >= 10", polling=50, timeout=60_000)
            page.evaluate("window.behindTab(true)")
            time.sleep(4)  # longer than the rest of the 3 s clip takes to play
            assert page.text_content("#clip-summary").startswith("Waiting for this tab")
        assert page.get_attribute("#status", "data-state") == "processing-clip"
        page.evaluate("window.behindTab(false)")
        state = wait_state(page, ["clip-done", "clip-failed", "clip-cut", "model-failed"], 120_000)
        assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
        rows = read_csv(page.input_value("#clip-csv"))
        assert_same_origin_only(requests, site)
    finally:
        browser.close()

    assert any("do not carry the frame's own time" in line for line in console)
    assert [float(r["time"]) for r in rows] == pytest.approx(decoded_times(clip), abs=0.002)


def test_a_file_that_is_not_a_video_fails_clearly_and_the_next_clip_works(site, playwright, tmp_path):
    """A file the browser cannot decode is a state with a message, not a crash: the buttons come back, and a real
    clip chosen next is processed from its first frame (a test pattern without a face: every frame, eyes unknown).
    That clip's sound runs 2 minutes past its 1.2 s of video: played at the clip's own rate (3x) the page would wait
    40 s for the sound to end, looking stuck; it hurries through a frame that stays the same (16x, 7.5 s)."""
    broken = tmp_path / "holiday.mp4"
    broken.write_bytes(b"this is a text file with a video file's name\n" * 50)
    clip = tmp_path / "pattern.webm"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-f", "lavfi", "-i", "sine=frequency=440:duration=120",
           "-filter_complex", "[0:v]trim=end_frame=12[v]", "-map", "[v]", "-map", "1:a", "-c:v", "libvpx-vp9",
           "-deadline", "realtime", "-cpu-used", "8", "-c:a", "libopus", "-b:a", "16k", str(clip))
    browser = launch(playwright)
    try:
        page, requests, console = open_page(browser, site)
        page.set_input_files("#clip-file", str(broken))
        assert wait_state(page, ["clip-done", "clip-failed", "model-failed"], 60_000) == "clip-failed"
        message = page.text_content("#status")
        assert "could not be read" in message and "decode" in message, message
        assert "PipelineStatus" not in message and "FFmpeg" not in message  # the decoder's words go to the console
        assert not page.is_disabled("#start") and not page.is_disabled("#clip-file")
        page.set_input_files("#clip-file", str(clip))
        chosen = time.monotonic()
        # the state is still "clip-failed" from the first file until the page takes the second one
        page.wait_for_function("document.querySelector('#status').dataset.state !== 'clip-failed'", timeout=30_000)
        state = wait_state(page, ["clip-done", "clip-failed", "model-failed"], 120_000)
        took_s = time.monotonic() - chosen
        assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
        rows = read_csv(page.input_value("#clip-csv"))
        tab_note_hidden = page.is_hidden("#clip-tab-note")  # it speaks of processing, which is over
        owner = page.text_content("#eye-left .eye-name small")  # a filmed person's eyes, not the viewer's
        faceless = (page.get_attribute("#clip-summary", "data-faceless-frames"),
                    "no face found on 12 of the 12 frames" in page.text_content("#clip-summary"))
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert owner == "(the person's)"
    assert [int(r["frame"]) for r in rows] == list(range(12))
    assert {r["state"] for r in rows} <= {"unknown", "no-face", ""}, {r["state"] for r in rows}
    assert faceless == ("12", True)  # said, not left to be read as "no blinks"
    assert took_s < 20, took_s  # not the 40 s the sound lasts at the clip's own rate
    assert tab_note_hidden


@pytest.mark.shared
def test_a_one_frame_clip_is_read_a_cut_off_one_keeps_what_was_read_and_a_failure_clears_the_last_results(
        site, playwright, tmp_path):
    """A video of one frame is that frame (the element shows it from the start: no new frame comes by seeking). An
    MP4 cut off halfway, its header still promising the whole length, breaks off partway: the frames before are
    kept, with their CSV, as "clip-cut". A file that then cannot be read at all shows no results of the one before."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    single, whole, cut = tmp_path / "single.mp4", tmp_path / "whole.mp4", tmp_path / "cut.mp4"
    ffmpeg("-i", str(source), "-frames:v", "1", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", str(single))
    ffmpeg("-i", str(source), "-frames:v", "120", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p",
           "-movflags", "+faststart", str(whole))  # the index first: a player starts before the file is complete
    data = whole.read_bytes()
    cut.write_bytes(data[:len(data) * 55 // 100])
    broken = tmp_path / "notes.mp4"
    broken.write_bytes(b"not a video\n" * 100)
    browser = launch(playwright)
    outcome = {}
    try:
        page, requests, console = open_page(browser, site)
        for clip in (single, cut, broken):
            page.set_input_files("#clip-file", str(clip))
            page.wait_for_function("document.querySelector('#status').dataset.state === 'processing-clip'",
                                   timeout=30_000)
            state = wait_state(page, ["clip-done", "clip-cut", "clip-failed", "model-failed"], 120_000)
            summary = page.get_attribute("#clip-summary", "data-frames"), page.text_content("#clip-summary")
            outcome[clip.name] = state, read_csv(page.input_value("#clip-csv")), summary, page.text_content("#status")
            assert not page.is_disabled("#clip-file")
        assert page.is_visible("#clip-download") is False  # no CSV offered under a file that could not be read
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    state, rows, (frames, _), status = outcome["single.mp4"]
    assert state == "clip-done" and frames == "1" and [int(r["frame"]) for r in rows] == [0], (status, rows)
    state, rows, (frames, text), status = outcome["cut.mp4"]
    assert state == "clip-cut" and "could not be read to its end" in status, status
    assert 10 <= len(rows) < 120 and frames == str(len(rows)), (len(rows), frames)
    assert [int(r["frame"]) for r in rows] == list(range(len(rows))) and text.startswith("First ")
    state, _, (frames, text), status = outcome["notes.mp4"]
    assert state == "clip-failed" and frames is None and text == "", (frames, text)
    assert "Try another file (MP4 or WebM)." in status and "try an MP4" not in status  # said once


@pytest.mark.shared
def test_the_keyboard_focus_follows_the_buttons_that_replace_each_other(site, playwright, tmp_path):
    """Start camera and Stop take each other's place, as the file input (disabled while a file is processed) and
    Stop processing do: a keyboard or screen-reader user keeps a place on the page instead of falling back to its
    top. After Stop, no rate or light-mode note of a camera that is off is left on show, also when Stop comes while a
    frame is being processed."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    focused = "document.activeElement && document.activeElement.id"
    browser = launch(playwright, video_to_y4m(source, tmp_path / "camera.y4m", 0, 90))
    try:
        page, requests, _ = open_page(browser, site)
        page.focus("#start")
        page.keyboard.press("Enter")
        assert wait_state(page, LIVE_STATES, 30_000) in LIVE_STATES
        assert page.evaluate(focused) == "stop"
        page.wait_for_function("window.eyestateLog.length >= 5", timeout=30_000)
        # a slow face detector: Stop comes while a frame is being processed, as on a loaded device
        page.evaluate("""Promise.all(Object.values(window.eyestatePreload.sessions)).then((sessions) => sessions.forEach((s) => {
            const run = s.run.bind(s);
            s.run = async (feeds) => { await new Promise((r) => setTimeout(r, 150)); return run(feeds); };
        }))""")
        page.wait_for_timeout(700)
        page.keyboard.press("Space")
        page.wait_for_selector("#start:not([hidden])", timeout=10_000)
        logged = page.evaluate("window.eyestateLog.length")
        page.wait_for_timeout(1000)  # the frame in flight at Stop is done by now
        assert page.evaluate(focused) == "start"
        assert page.text_content("#fps") == "0 fps" and page.is_hidden("#light-note")
        assert page.evaluate("window.eyestateLog.length") == logged  # nothing of a camera that is off is shown
        page.focus("#clip-file")
        page.set_input_files("#clip-file", str(video_to_webm(source, tmp_path / "clip.webm", 0, 30)))
        page.wait_for_function(f"{focused} === 'clip-stop'", timeout=30_000)
        assert wait_state(page, ["clip-done", "clip-failed"], 120_000) == "clip-done"
        assert page.evaluate(focused) == "clip-download"
        assert page.text_content("#clip-download") != page.text_content("#session-csv")  # whose CSV is whose
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_a_video_file_picked_while_the_camera_starts_wins_over_the_camera(site, playwright, tmp_path):
    """The camera answers late (a permission prompt a person takes a second to answer) and a file is picked meanwhile:
    the file is processed to its end, the late camera is closed at once instead of starting on top of it, and the
    screen wake lock the file took is released at its end."""
    clip = tmp_path / "pattern.webm"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "20", "-c:v", "libvpx-vp9",
           "-deadline", "realtime", "-cpu-used", "8", str(clip))
    slow_camera = """(() => {
        const devices = navigator.mediaDevices, original = devices.getUserMedia.bind(devices);
        window.cameraTracks = [];
        devices.getUserMedia = (constraints) => new Promise((resolve) => setTimeout(resolve, 1500)).then(
            () => original(constraints)).then((stream) => { window.cameraTracks.push(...stream.getTracks()); return stream; });
    })();"""
    browser = launch(playwright, synthetic_y4m(tmp_path / "camera.y4m", duration_s=2))
    try:
        page, requests, console = open_page(browser, site, init_script=slow_camera + WAKE_HOOK)
        page.click("#start")
        page.set_input_files("#clip-file", str(clip))
        state = wait_state(page, ["clip-done", "clip-failed", "model-failed"], 120_000)
        assert state == "clip-done", page.text_content("#status") + "\n".join(console[-20:])
        page.wait_for_function("window.cameraTracks.length === 1", timeout=10_000)  # the late camera came ...
        tracks = page.evaluate("window.cameraTracks.map(t => t.readyState)")
        rows = read_csv(page.input_value("#clip-csv"))
        shown = page.evaluate("[document.getElementById('video').hidden, document.getElementById('clip-video').hidden]")
        page.wait_for_function(f"{LOCKS}.length >= 1 && {LOCKS}.every(released => released)", timeout=5_000)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert tracks == ["ended"]  # ... and was closed, not started
    assert [int(r["frame"]) for r in rows] == list(range(20))
    assert shown == [True, False]  # the file stays on screen


def test_an_early_click_without_a_camera_api_says_so(site, playwright, tmp_path):
    """A page without navigator.mediaDevices (plain http from another machine) clicked before it is ready: index.html
    stores no camera request (null), and the page must say there is no camera instead of waiting for a prompt."""
    no_camera_api = "Object.defineProperty(Navigator.prototype, 'mediaDevices', {get: () => undefined});"
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=2))
    try:
        page, requests, _ = open_page(browser, site, ready=False, init_script=no_camera_api)
        page.click("#start")
        assert page.evaluate("window.eyestateEarlyStart.stream") is None
        assert wait_state(page, ["no-camera", *LIVE_STATES, "model-failed"], BOOT_TIMEOUT_MS) == "no-camera"
        assert "camera" in page.text_content("#status-message").lower()
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_a_model_failing_mid_run_stops_the_camera(site, playwright, tmp_path):
    """Every model call starts failing while the camera runs: the page says the models failed, the camera is
    stopped (its light goes off), and Start stays disabled. Bad numeric query values are ignored, not fatal."""
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=6))
    try:
        page, requests, console = open_page(browser, site, "?hold=abc&cliprate=0&threads=x")
        assert any("?hold=abc ignored" in line for line in console)
        page.click("#start")
        assert wait_state(page, LIVE_STATES, 30_000) in LIVE_STATES
        page.evaluate("""Promise.all(Object.values(window.eyestatePreload.sessions)).then((sessions) => {
            for (const s of sessions) s.run = () => Promise.reject(new Error('simulated model failure'));
        })""")
        assert wait_state(page, ["model-failed"], 20_000) == "model-failed"
        assert page.evaluate("document.getElementById('video').srcObject") is None
        assert page.is_disabled("#start") and page.is_disabled("#camera") and page.is_disabled("#clip-file")
    finally:
        browser.close()


@pytest.mark.parametrize("dark, animation_frames", [(False, False), (True, False), (False, True), (True, True)],
                         ids=["lit", "dark", "lit-no-video-frame-callbacks", "dark-no-video-frame-callbacks"])
def test_a_frozen_camera_is_reported_and_watching_resumes_with_new_pictures(site, playwright, tmp_path, dark,
                                                                            animation_frames):
    """The video stops changing (here: the page's video element paused, as when a USB camera hangs without ending
    its track): after 2 s the page says the camera may have frozen and that the eyes are not watched, shows both eyes
    unknown, and goes back to watching with the first new picture. A picture frozen in a very dark room (mean luma
    below the dark line, the face still found) is "too dark" after half a second instead, and is not processed again
    either: a camera frozen on closed eyes must not raise the alarm. Without video frame callbacks (Firefox before 132)
    frames come by animation frames, which are no camera frames: the same picture is not processed again, there as
    when running (before, ~50 "processed" frames a second of a 30 fps camera, and a frozen one was never noticed);
    a dark room's camera frame read twice that way is not a black picture (it once kept the page "too dark" after the
    camera came back)."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    camera = tmp_path / "cam.y4m"
    ffmpeg("-i", str(source), "-t", "10", *(["-vf", "lutyuv=y='16+(val-16)*0.15'"] if dark else []),
           "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(camera))
    browser = launch(playwright, camera)
    no_callbacks = "delete HTMLVideoElement.prototype.requestVideoFrameCallback;" if animation_frames else None
    try:
        page, requests, _ = open_page(browser, site, init_script=no_callbacks)
        page.click("#start")
        assert wait_state(page, ["running"], 30_000) == "running"
        time.sleep(2)
        assert 0 < float(page.get_attribute("#fps", "data-fps")) <= 33  # a 30 fps camera
        page.evaluate("document.getElementById('video').pause()")
        before = len(frame_log(page))
        frozen = "camera-dark" if dark else "camera-stalled"
        assert wait_state(page, [frozen], 10_000) == frozen
        assert ("too dark" if dark else "not being watched") in page.text_content("#status-message")
        page.wait_for_function("document.querySelector('#eye-left').dataset.state === 'unknown'", timeout=5_000)
        time.sleep(1)
        assert len(frame_log(page)) - before <= 2  # not processed again (one in flight, the clock's first read)
        page.evaluate("document.getElementById('video').play()")
        assert wait_state(page, ["running"], 10_000) == "running"  # (camera-dark is one of LIVE_STATES)
        page.wait_for_function(f"window.eyestateLog.length > {len(frame_log(page)) + 5}", timeout=10_000)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


def test_a_browser_without_what_the_page_needs_is_told_so_not_to_reload(site, playwright, tmp_path):
    """No OffscreenCanvas (Safari before 16.4): the page cannot read the camera, and says that, not "the models could
    not be loaded ... reload". Python that cannot start at all is said too. No video frame callbacks (Firefox before 132): the camera still works (animation
    frames), but a video file cannot be read frame by frame, which its failure says."""
    clip = tmp_path / "pattern.webm"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=320x240:rate=10", "-frames:v", "5", "-c:v", "libvpx-vp9",
           "-deadline", "realtime", "-cpu-used", "8", str(clip))
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=2))
    try:
        page, _, _ = open_page(browser, site, ready=False, init_script="delete window.OffscreenCanvas;")
        assert wait_state(page, ["model-failed", "ready"], BOOT_TIMEOUT_MS) == "model-failed"
        no_canvas = (page.text_content("#status-message"), page.text_content("#status-detail"),
                     page.is_disabled("#start"))
        page.context.close()
        # PyScript itself cannot start (no Worker): not "Loading the Python runtime…" for ever; a Start clicked while
        # it loaded (index.html opened the camera) does not leave the camera on
        context = browser.new_context(service_workers="block")
        context.add_init_script("delete window.Worker;")
        page = context.new_page()
        held = []  # PyScript waits until Start was clicked, so its failure comes after the click
        page.route("**/vendor/pyscript/core.js", lambda route: held.append(route))
        page.goto(site + "index.html", wait_until="commit")  # "load" would wait for the held script
        page.wait_for_selector('script[type="py"]', state="attached")  # parsed past the early-start script
        page.click("#start")
        page.evaluate("window.eyestateEarlyStart.stream.then((stream) => { window.keptTracks = stream.getTracks(); })")
        page.wait_for_function("window.keptTracks && window.keptTracks.every((t) => t.readyState === 'live')")
        for route in held:
            route.continue_()
        assert wait_state(page, ["model-failed", "ready"], BOOT_TIMEOUT_MS) == "model-failed"
        page.wait_for_function(CAMERA_RELEASED, timeout=10_000)
        no_python = (page.text_content("#status-message"), page.is_disabled("#start"))
        page.context.close()
        page, requests, _ = open_page(browser, site,
                                      init_script="delete HTMLVideoElement.prototype.requestVideoFrameCallback;")
        page.set_input_files("#clip-file", str(clip))
        assert wait_state(page, ["clip-failed", "clip-done", "model-failed"], 30_000) == "clip-failed"
        no_callbacks = page.text_content("#status")
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert "lacks what the page needs" in no_canvas[0] and "OffscreenCanvas" in no_canvas[1] and no_canvas[2]
    assert no_python == ("The page could not start in this browser. Use a current Chrome, Edge, Firefox or Safari, "
                         "or reload the page.", True)
    assert "frame by frame" in no_callbacks and "Firefox before 132" in no_callbacks


@pytest.mark.shared
def test_a_covered_camera_says_it_is_too_dark_and_watching_resumes_when_a_face_is_back(site, playwright, tmp_path):
    """A black picture (a lens covered, a privacy shutter; with a camera's faint noise) is camera-dark, not no-face;
    the face that follows is watched again. The picture's brightness is measured only on frames without a face."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    camera = tmp_path / "covered.y4m"
    ffmpeg("-f", "lavfi", "-i", "color=c=black:s=640x480:r=30:d=5", "-t", "6", "-i", str(source), "-filter_complex",
           "[0:v]noise=alls=2:allf=t[dark];[1:v]fps=30[face];[dark][face]concat=n=2:v=1[v]", "-map", "[v]",
           "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(camera))
    browser = launch(playwright, camera)
    try:
        page, requests, _ = open_page(browser, site)
        page.click("#start")
        assert wait_state(page, ["camera-dark"], 30_000) == "camera-dark"
        assert "too dark" in page.text_content("#status-message")
        assert page.get_attribute("#eye-left", "data-state") == "unknown"
        assert wait_state(page, ["running", "uncertain"], 30_000) in ("running", "uncertain")
        log = frame_log(page)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    dark = [e["luma"] for e in log if e["app"] == "camera-dark" and "luma" in e]  # not the face's first frames
    assert dark and max(dark) < 12, dark[:20]
    seen = [e for e in log if e["pLeft"] is not None or e["pRight"] is not None]
    assert seen and not any("luma" in e for e in seen)  # frames with a face never pay for the measurement


@pytest.mark.shared
@pytest.mark.parametrize("light", ["crushed", "blown", "far"])
def test_eyes_crushed_to_black_or_blown_out_say_so_and_watching_resumes_in_good_light(site, playwright, tmp_path,
                                                                                    light):
    """A dark room whose camera crushes its shadows to black: the face is still found, but the eyes are black and read
    "open" whatever they do (a review saw "Watching your eyes" and no blink for 25 s). Too much light blows the skin
    round the eyes out to white, and open eyes read closed. The page must say which (eyes-dark / eyes-bright,
    measured in the page by web_runtime.clipped_share), still judge the eyes, and go back to running in good light.
    A person five times as far away (eyes ~6 px wide, found by the zoomed face search) is eyes-small alike."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    camera = tmp_path / f"{light}.y4m"
    curve = "clip((val-96)*0.3\\,0\\,255)" if light == "crushed" else "clip(val*4\\,0\\,255)"
    change = (f"lutrgb=r='{curve}':g='{curve}':b='{curve}'" if light != "far"
              else "scale=128:96:flags=area,pad=640:480:256:192:color=gray")
    ffmpeg("-i", str(source), "-filter_complex",
           f"[0:v]fps=30,trim=duration=5,setpts=PTS-STARTPTS,{change}[bad];"
           "[0:v]fps=30,trim=start=5:duration=5,setpts=PTS-STARTPTS[lit];[bad][lit]concat=n=2:v=1[v]",
           "-map", "[v]", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(camera))
    state, flag, words = {"crushed": ("eyes-dark", "eyesDark", "too dark to see your eyes"),
                          "blown": ("eyes-bright", "eyesBright", "too much light on your eyes"),
                          "far": ("eyes-small", "eyesSmall", "move closer")}[light]
    browser = launch(playwright, camera)
    try:
        page, requests, _ = open_page(browser, site)
        page.click("#start")
        assert wait_state(page, [state], 30_000) == state
        assert words in page.text_content("#status-message").lower()
        assert page.get_attribute("#eye-left", "data-state") in ("open", "closed")  # still judged, with a warning
        assert wait_state(page, ["running"], 30_000) == "running"
        page.wait_for_timeout(1000)
        log = frame_log(page)
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    flagged = [e for e in log if e.get(flag)]
    assert flagged and all(e["pLeft"] is not None for e in flagged)
    lit = log[-10:]  # the last frames, in good light
    assert all(e["app"] == "running" and not any(e.get(k) for k in ("eyesDark", "eyesBright", "eyesSmall"))
               for e in lit), lit


def test_an_exactly_black_camera_behind_another_tab_stays_too_dark_not_frozen(site, playwright, tmp_path):
    """Some privacy shutters make the camera send exactly black pictures, every one the same. In front each is a new
    frame (camera-dark); behind another tab the clock re-reads the picture and an exact repeat means a frozen camera,
    except for a black one: it must stay camera-dark ("uncover the camera"), not turn camera-stalled."""
    browser = launch(playwright, synthetic_y4m(tmp_path / "black.y4m", "color=c=black:s=640x480:rate=30", 3))
    try:
        page, requests, _ = open_page(browser, site, init_script=BEHIND_TAB_HOOK)
        page.click("#start")
        assert wait_state(page, ["camera-dark"], 30_000) == "camera-dark"
        other = page.context.new_page()
        other.goto("about:blank")
        other.bring_to_front()
        page.evaluate("window.behindTab(true)")
        states = []
        for _ in range(12):  # 6 s: three times the 2 s after which the same picture means a frozen camera
            time.sleep(0.5)
            states.append(page.get_attribute("#status", "data-state"))
        eyes = page.evaluate("[document.querySelector('#eye-left').dataset.state, "
                             "document.querySelector('#eye-right').dataset.state]")
        page.bring_to_front()
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    assert set(states) == {"camera-dark"}, states
    assert eyes == ["unknown", "unknown"]


def test_a_camera_that_ends_while_it_starts_is_reported_as_ended(site, playwright, tmp_path):
    """The track ends before the page listens for "ended" (a camera unplugged during the start): the page says the
    camera stopped instead of watching a dead stream."""
    ended_at_once = """(() => {
        const devices = navigator.mediaDevices, original = devices.getUserMedia.bind(devices);
        devices.getUserMedia = async (constraints) => {
            const stream = await original(constraints);
            stream.getVideoTracks()[0].stop();
            return stream;
        };
    })();"""
    browser = launch(playwright, synthetic_y4m(tmp_path / "plain.y4m", duration_s=2))
    try:
        page, requests, _ = open_page(browser, site, init_script=ended_at_once)
        page.click("#start")
        assert wait_state(page, ["camera-ended", *LIVE_STATES, "camera-stalled"], 20_000) == "camera-ended"
        assert page.evaluate("document.getElementById('video').srcObject") is None
        assert page.is_visible("#start")
    finally:
        browser.close()


@pytest.mark.shared
def test_a_phone_video_stored_sideways_is_read_upright_by_the_page_and_by_replay(site, playwright, page_eye_model,
                                                                                 tmp_path):
    """Phones store their pictures sideways and say in the file how to turn them (MP4 rotation metadata). The page
    (a VideoFrame or the element, drawn at the element's upright size) and pipeline.video (OpenCV turns frames by the
    metadata) must both see the face upright, and agree frame by frame as on any clip."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = 100  # the first labelled blink is at frame 93
    sideways = tmp_path / "sideways.mp4"
    ffmpeg("-i", str(source), "-vf", "transpose=clock", "-frames:v", str(frames), "-an", "-c:v", "libx264",
           "-crf", "10", "-pix_fmt", "yuv420p", str(sideways))
    clip = tmp_path / "phone.mp4"
    ffmpeg("-i", str(sideways), "-c", "copy", "-metadata:s:v:0", "rotate=90", str(clip))  # turn it back to show it
    read = read_clip(site, playwright, clip)
    page_rows, size = read.rows, read.size
    assert size == [640, 480]  # upright, as the source (the face pipeline follows a tilted face, so this is the check)
    import cv2

    frame = cv2.VideoCapture(str(clip)).read()[1]
    assert frame.shape[:2] == (480, 640)  # replay's frames are upright too
    replay_rows = replay_csv_rows(clip, page_eye_model, tmp_path)
    assert len(page_rows) == len(replay_rows) == frames
    for rows in (page_rows, replay_rows):  # a face sideways is not found: the eyes would be unknown
        assert sum(bool(r["p_open_left"]) and bool(r["p_open_right"]) for r in rows) >= 0.95 * frames
    same = sum(p["state_left"] == r["state_left"] and p["state_right"] == r["state_right"]
               for p, r in zip(page_rows, replay_rows))
    assert same / frames >= 0.97, f"per-frame states agree on {same}/{frames} frames"


@pytest.mark.shared
def test_a_person_far_from_the_camera_is_found_by_the_page_and_by_replay(site, playwright, page_eye_model, tmp_path):
    """A face four times smaller than the focus video's (eyes ~9 px) in a corner of a 640x480 picture: too small for
    BlazeFace on the whole frame. Both the page (canvas crops of the search windows) and pipeline.video must find it
    within the first five frames, read both eyes from then on, and agree frame by frame as on any clip."""
    source = FOCUS_VIDEOS / f"{CLIP_VIDEO}.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    frames = 100  # the first labelled blink is at frame 93
    clip = tmp_path / "far.webm"
    ffmpeg("-i", str(source), "-vf", "scale=160:120:flags=area,pad=640:480:440:330:color=gray", "-frames:v",
           str(frames), "-an", "-c:v", "libvpx-vp9", "-lossless", "1", "-pix_fmt", "yuv420p", "-deadline", "realtime",
           "-cpu-used", "8", str(clip))
    page_rows = read_clip(site, playwright, clip).rows
    replay_rows = replay_csv_rows(clip, page_eye_model, tmp_path)
    assert len(page_rows) == len(replay_rows) == frames
    for rows in (page_rows, replay_rows):
        both = [bool(r["p_open_left"]) and bool(r["p_open_right"]) for r in rows]
        assert all(both[5:]), both.index(False, 5)
    same = sum(p["state_left"] == r["state_left"] and p["state_right"] == r["state_right"]
               for p, r in zip(page_rows, replay_rows))
    assert same / frames >= 0.95, f"per-frame states agree on {same}/{frames} frames"


def far_person_hd_camera(tmp_path) -> Path:
    """A fake 1280x720 camera: 4 s of mahie_test_1 at 15 fps, the person shrunk to 230x172 in a grey picture (eyes
    ~7 px apart once Chromium crops and scales it to the 640x480 the page asks for first, ~11 px at 1280x720)."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    camera = tmp_path / "far_hd.y4m"
    ffmpeg("-i", str(source), "-t", "4", "-vf", "fps=15,scale=230:172:flags=area,pad=1280:720:525:274:color=gray",
           "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(camera))
    return camera


@pytest.mark.shared
def test_eyes_small_in_a_640x480_picture_get_the_camera_asked_for_1280x720(site, playwright, tmp_path):
    """A person far from a 1280x720 camera: in the 640x480 picture the page asks for, the eyes are ~7 px (eyes-small);
    after a second of that the page asks the camera for 1280x720, where the same eyes are ~11 px, finds the face again
    in the larger picture and reads both eyes, no longer small. The note says so. A device that then falls behind
    (CPU throttled 6x: light mode) gets 640x480 back. (Going back when the camera itself sends fewer frames is tested
    in tests/test_page_modules.py: Chromium's fake camera keeps its rate.)"""
    browser = launch(playwright, far_person_hd_camera(tmp_path))
    try:
        page, requests, _ = open_page(browser, site)
        page.click("#start")
        page.wait_for_function("document.getElementById('video').videoWidth === 1280", timeout=30_000)
        page.wait_for_function("document.getElementById('picture-note').dataset.sharper === 'kept'", timeout=10_000)
        assert page.get_attribute("#fps", "data-picture") == "1280x720"
        assert page.is_visible("#picture-note")
        assert "1280 × 720" in page.text_content("#picture-note").replace("\u00a0", " ")
        page.wait_for_timeout(1500)
        log = frame_log(page)
        cdp = page.context.new_cdp_session(page)
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 6})  # the device can no longer keep up: light mode
        page.wait_for_function("document.getElementById('picture-note').dataset.sharper === 'lowered'", timeout=30_000)
        page.wait_for_function("document.getElementById('video').videoWidth === 640", timeout=10_000)
        assert page.get_attribute("#fps", "data-mode") == "light" and page.is_visible("#picture-note")
        cdp.send("Emulation.setCPUThrottlingRate", {"rate": 1})
        page.click("#stop")  # the next camera start begins at 640x480 again, without the note
        assert page.get_attribute("#picture-note", "data-sharper") == "standard"
        assert not page.is_visible("#picture-note") and page.get_attribute("#fps", "data-picture") == ""
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    small = [e for e in log if e["size"] == "640x480"]
    assert small and any(e.get("eyesSmall") for e in small), small[-5:]
    sharp = [e for e in log if e["size"] == "1280x720"]
    assert len(sharp) >= 20 and log.index(sharp[0]) > log.index(small[-1])
    last = sharp[-10:]
    assert all(e["app"] == "running" and e["pLeft"] is not None and e["pRight"] is not None and not e.get("eyesSmall")
               for e in last), last


# The page's video element paused once the camera has been asked for 1280x720: to the page, a camera whose picture
# stopped changing (as some do when their format changes).
FREEZE_AFTER_SWITCH_HOOK = """
const apply = MediaStreamTrack.prototype.applyConstraints;
MediaStreamTrack.prototype.applyConstraints = function (constraints) {
  const done = apply.call(this, constraints);
  if (!window.frozeAfterSwitch && constraints && constraints.width && constraints.width.ideal === 1280) {
    window.frozeAfterSwitch = true;
    setTimeout(() => document.getElementById("video").pause(), 1000);
  }
  return done;
};
"""


@pytest.mark.shared
def test_a_camera_whose_picture_stops_after_being_asked_for_1280x720_is_put_back_and_not_asked_again(
        site, playwright, tmp_path):
    """A far person (eyes small in 640x480) makes the page ask for 1280x720; a second later the picture stops
    changing (FREEZE_AFTER_SWITCH_HOOK). The page says the camera is not changing, puts it back to 640x480 with a note
    ("frozen"), and once restarted does not ask this camera again in the visit, although the eyes are still small."""
    browser = launch(playwright, far_person_hd_camera(tmp_path))
    settings = "document.getElementById('video').srcObject.getVideoTracks()[0].getSettings().width"
    try:
        page, requests, _ = open_page(browser, site, init_script=FREEZE_AFTER_SWITCH_HOOK)
        page.click("#start")
        page.wait_for_function("window.frozeAfterSwitch === true", timeout=30_000)
        wait_state(page, "camera-stalled", 15_000)
        page.wait_for_function("document.getElementById('picture-note').dataset.sharper === 'frozen'", timeout=15_000)
        assert page.is_visible("#picture-note") and "stopped changing" in page.text_content("#picture-note")
        page.wait_for_function(f"{settings} === 640", timeout=10_000)  # asked for 640x480 again
        page.click("#stop")
        page.click("#start")  # the same camera: remembered for the visit
        wait_state(page, "eyes-small", 30_000)
        page.wait_for_timeout(3000)  # three times the second of small eyes that made the page ask before
        assert page.get_attribute("#picture-note", "data-sharper") == "slow"
        assert page.evaluate("document.getElementById('video').videoWidth") == 640
        assert_same_origin_only(requests, site)
    finally:
        browser.close()


@pytest.mark.shared
def test_the_camera_goes_back_to_640x480_once_the_far_person_comes_closer(
        site, playwright, tmp_path):
    """The fake 1280x720 camera shows the person far away for 5 s (eyes ~7 px in 640x480: the page asks for 1280x720),
    then near for 8 s (eyes ~45 px in 1280x720): after 5 s of near eyes the larger picture only costs time, and the
    page asks for 640x480 again, without a note. The camera's file then starts again with the person far away: not
    asked again at once (only after 10 s of small eyes, tests/test_page_modules.py), so a head turned far aside
    cannot make the camera switch every few seconds."""
    source = FOCUS_VIDEOS / "mahie_test_1.avi"
    if not source.exists():
        pytest.skip(f"needs {source} (../shared)")
    camera = tmp_path / "far_then_near.y4m"
    ffmpeg("-i", str(source), "-t", "13", "-filter_complex",  # -t: the output's length, 5 + 8 s
           "[0:v]fps=10,split[a][b];[a]trim=end=5,scale=230:172:flags=area,pad=1280:720:525:274:color=gray,setsar=1[far];"
           "[b]trim=start=0:end=8,setpts=PTS-STARTPTS,scale=960:720,pad=1280:720:160:0:color=gray,setsar=1[near];"
           "[far][near]concat=n=2:v=1[out]", "-map", "[out]", "-pix_fmt", "yuv420p", "-f", "yuv4mpegpipe", str(camera))
    browser = launch(playwright, camera)
    try:
        page, requests, _ = open_page(browser, site)
        page.click("#start")
        page.wait_for_function("document.getElementById('picture-note').dataset.sharper === 'kept'", timeout=40_000)
        page.wait_for_function("document.getElementById('video').videoWidth === 640", timeout=30_000)
        assert page.get_attribute("#picture-note", "data-sharper") == "standard"
        assert not page.is_visible("#picture-note")
        page.wait_for_function("""(() => { const last = window.eyestateLog[window.eyestateLog.length - 1];
            return last.size === '640x480' && last.eyePx !== null; })()""", timeout=10_000)  # the face found again
        log = frame_log(page)
        wait_state(page, "eyes-small", 20_000)  # the file again from its start: the person far away
        page.wait_for_timeout(3000)  # three times the second of small eyes that made the page ask the first time
        assert page.evaluate("document.getElementById('video').videoWidth") == 640
        assert page.get_attribute("#picture-note", "data-sharper") == "standard"
        assert_same_origin_only(requests, site)
    finally:
        browser.close()
    sharp = [e for e in log if e["size"] == "1280x720"]
    near = [e for e in sharp if (e["eyePx"] or 0) >= 32]  # >= 16 px as 640x480 would show them
    assert len(near) >= 30, [e["eyePx"] for e in sharp]  # 5 s of near eyes at 10 fps before going back
    assert log[-1]["size"] == "640x480" and not log[-1].get("eyesSmall") and log[-1]["eyePx"] >= 16
