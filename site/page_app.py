"""The page's behaviour: camera, live frame loop, recorded-clip mode, alarm sound.

One FramePipeline + EyeStateTracker (eyecore) per session; the named states come from
eyecore.states.AppStateMachine. Frames are processed one at a time (`_busy`, `_frame_lock`): a camera frame that
arrives meanwhile waits, and only the newest waiting one is processed. While the page is not rendered (another tab
or window in front) the camera frame callbacks stop; a worker's clock (ticker.js) then reads frames instead.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque

import js
from pyodide.ffi import JsException, create_once_callable, create_proxy

from eyecore import states as S
from eyecore.budget import FrameBudget
from eyecore.frame import FramePipeline
from eyecore.preprocess import mean_luma
from eyecore.temporal import CLOSED, OPEN, EyeStateTracker
import page_settings
from page_alarm import Beeper, Notifier, notification_permission
from page_clip import MAX_RATE, MIN_RATE, ClipError, ClipReader
from page_record import Recording, clock_text, count_text
from page_resolution import RAISE, SHARP, STANDARD, SharperPicture, constraints
from page_wake import ScreenWake
from web_runtime import js_obj


LIVE_RECORD_LIMIT = 30 * 3600  # the camera session's CSV keeps the newest hour of frames at 30 fps
FRAME_LOG_LIMIT = 20000  # window.eyestateLog keeps this many recent frames (tests, benchmark)
PROBE_BITS = 12  # frame-index code in test videos (?probe=1)
# Live frames, in full and in light mode, let FaceMesh skip a still face's frames for up to this long
# (PipelineConfig.landmark_hold_s): on a CPU throttled 2x the full pipeline then processed 26.6 instead of 20.1 fps,
# and replays of the focus videos found the same blinks, also with a jumping head (docs/BENCHMARKS.md section 4,
# "FaceMesh skips"). Clip mode runs FaceMesh on every frame, as pipeline.video does. ?hold=S sets it (0: never).
LIVE_LANDMARK_HOLD_S = 0.2
# When the page is not rendered (another tab or window in front), camera frame callbacks stop; a worker's clock
# (ticker.js) then reads a frame this often, once no callback has come for BACKGROUND_AFTER_S, counted from the end of
# the last frame processed in front: while a frame is processed no callback can come, and a device slower than that per
# frame had the clock read a frame after each one, which restarts the frame budget's count (on a CPU throttled 6x, 122
# of 149 frames, and light mode never came).
BACKGROUND_TICK_MS = 66  # ~15 fps: blinks (100-300 ms) still span a frame, at a fraction of the CPU
BACKGROUND_AFTER_S = 0.3
# The same dark picture read this long is a black one (a privacy shutter sends exact black), not a frame read twice
BLACK_AFTER_S = 0.5


def query_param(name: str):
    return js.URLSearchParams.new(js.window.location.search).get(name)


def number_param(name: str, default, low: float, high: float):
    """?name=N as a float in [low, high]; anything else is ignored (a console warning) and gives `default`."""
    text = query_param(name)
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not low <= value <= high:
        js.console.warn(f"?{name}={text} ignored: expected a number from {low} to {high}")
        return default
    return value


# A camera call's outcome as a value, never a rejection, with the promise kept in JS: a camera picked in the list
# that is gone by then is refused with Chromium's own OverconstrainedError, which Pyodide failed to raise into Python
# ("invalid exception object"; a promise a call returns to Python is wrapped at once, so it cannot be caught later):
# the await never ended, and the page kept waiting for permission.
_SETTLE = """.then((value) => ({ok: true, value}),
    (e) => ({ok: false, name: String((e && e.name) || "Error"), message: String((e && e.message) || e)}));"""
_GET_USER_MEDIA = js.Function.new("devices", "constraints", "return devices.getUserMedia(constraints)" + _SETTLE)
_APPLY_CONSTRAINTS = js.Function.new("track", "constraints", "return track.applyConstraints(constraints)" + _SETTLE)


def _error_name(error) -> str:
    """DOMException name of a JS error raised into Python (e.g. NotAllowedError)."""
    for candidate in (getattr(error, "js_error", None), error):
        name = getattr(candidate, "name", None)
        if isinstance(name, str) and name:
            return name
    text = str(error)
    return text.split(":", 1)[0].strip() or "Error"


class Stats:
    """Processed FPS over the last 2 s and smoothed per-stage latency."""

    def __init__(self):
        self.done = deque()
        self.latency = {}

    def reset(self) -> None:
        self.done.clear()
        self.latency.clear()

    def frame(self, now: float, timings: dict) -> None:
        self.done.append(now)
        while self.done and now - self.done[0] > 2.0:
            self.done.popleft()
        for key, ms in timings.items():
            old = self.latency.get(key)
            # face detection runs rarely (a lost track; a look for a nearer face once a second): show its last
            # time, not an average that would keep the first, warm-up-slow run for minutes
            self.latency[key] = ms if old is None or key == "detect" else old * 0.9 + ms * 0.1

    @property
    def fps(self) -> float:
        if len(self.done) < 2:
            return 0.0
        return (len(self.done) - 1) / max(1e-6, self.done[-1] - self.done[0])


def _focused() -> str:
    """The id of the element with the keyboard focus ("" for the page itself)."""
    element = js.document.activeElement
    return "" if element is None or element == js.document.body else (element.id or "?")


def _clear_summary(element) -> None:
    """A summary's text and data-* attributes: nothing of an earlier clip or session is left to read."""
    element.textContent = ""
    for name in list(element.getAttributeNames()):
        if name.startswith("data-"):
            element.removeAttribute(name)


def _swap_buttons(hide: str, show: str) -> None:
    """Show one button in another's place; the focus goes with it (a hidden button drops it to the page)."""
    shown = js.document.getElementById(show)
    shown.hidden = False
    if _focused() == hide:
        shown.focus()
    js.document.getElementById(hide).hidden = True


class App:
    def __init__(self, runtime, pipeline_config, machine, view, timings):
        self.runtime = runtime
        self.pipeline = FramePipeline(runtime, pipeline_config)
        self.settings = page_settings.load(query_param("alarm"))
        self.tracker = self._new_tracker()
        self.machine = machine
        self.view = view
        self.timings = timings
        self.stats = Stats()
        # sheds the iris model when the device cannot keep up with the camera (eyecore/budget.py); ?light=0: never
        self.budget = FrameBudget() if pipeline_config.use_iris and query_param("light") != "0" else None
        self._presented = None  # the video's presentedFrames at the last frame callback
        self._light = False  # live frames run without the iris model (budget.light, as last applied)
        self._iris_available = pipeline_config.use_iris
        self._live_hold_s = number_param("hold", LIVE_LANDMARK_HOLD_S, 0.0, 5.0)
        self.sharper = SharperPicture()  # more camera pixels for eyes too small in the picture (page_resolution.py)
        self._frame_size = None  # (width, height) of the live picture: the camera may change it
        self._camera_id = ""  # deviceId of the running camera
        self._slow_cameras = set()  # deviceIds that processed clearly fewer frames (or froze) with more pixels
        self.beeper = Beeper()
        self.beeper.enabled = self.settings.sound
        self.notifier = Notifier(on_unavailable=self._notification_unavailable)
        self.notifier.enabled = self.settings.notify and notification_permission() == "granted"
        view.alarm_listener = lambda active: self.notifier.update(active and not self.clip_active)
        self.wake = ScreenWake()  # the screen stays on while the camera runs or a file is processed
        self.session = Recording(LIVE_RECORD_LIMIT, relative_time=True)  # the latest camera session, for its CSV
        self.video = js.document.getElementById("video")
        # no video frame callbacks (Firefox before 132): live frames come by animation frames, which are not camera
        # frames (60 a second, or the same picture again), so each picture is compared with the one before
        self._by_animation_frames = not hasattr(self.video, "requestVideoFrameCallback")
        self.clip_video = js.document.getElementById("clip-video")
        self.stream = None
        self._picked_camera = None  # a camera picked in the list while stopped, for the next Start
        self._starting = None  # the _camera_request of a camera start under way
        self._camera_request = 0  # counts camera starts, stops and video files: a stream asked for before is closed
        self.live = False
        self.clip_active = False
        self._clip_stop = False
        self.first_label_seen = False
        self.frame_log = js.Array.new()
        self.probe = bool(query_param("probe"))  # tests: log the frame-index code stamped in test videos
        js.window.eyestateLog = self.frame_log
        self._proxies = []  # event handlers kept alive for the page's lifetime
        self._frame_requested = False  # a video-frame callback is registered
        self._busy = False  # a live frame is being processed
        self._pending = None  # media time of the newest frame that arrived while busy
        self._has_pending = False
        self._last_callback = 0.0  # seconds (performance.now) of the latest camera frame callback
        self._front_done = 0.0  # ... and of the end of the latest frame processed from one
        self._ticker = None  # the background clock (ticker.js), while live
        self._ticked = False  # the clock read a frame since the last camera frame callback
        self._clock_read_at = -1e9  # seconds (performance.now) of the clock's latest frame read
        self._thumb = None  # 64x48 canvas context (_thumbnail): is a camera picture new (a frozen camera repeats one)?
        self._last_thumb = b""
        self._same_picture_since = None  # seconds (performance.now) since when the pictures read are the same
        # One frame at a time through the pipeline and tracker: model calls are awaited, and ort-web refuses
        # a second run of a session while one is in flight.
        self._frame_lock = asyncio.Lock()
        self._source_epoch = 0  # raised by stop_camera: a frame still in flight then belongs to a stopped source

    # -- wiring ----------------------------------------------------------------------------------

    def _on(self, element_id: str, event: str, handler) -> None:
        proxy = create_proxy(handler)
        self._proxies.append(proxy)
        js.document.getElementById(element_id).addEventListener(event, proxy)

    def wire(self) -> None:
        self._on("start", "click", lambda _e: self._start_clicked())
        self._on("stop", "click", lambda _e: self.stop_camera(to_ready=True))
        self._on("camera", "change", lambda e: self._camera_picked(e.target.value))
        self._on("clip-file", "change", self._clip_chosen)
        resize = create_proxy(lambda _e: (self.view.timeline.resize(), self.view.overlay.measure()))
        self._proxies.append(resize)
        js.window.addEventListener("resize", resize)
        js.window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", resize)  # timeline colours
        self._on("session-csv", "click", lambda _e: self.download_session())
        self._on("clip-stop", "click", lambda _e: setattr(self, "_clip_stop", True))
        self._wire_settings()
        for element_id in ("start", "clip-file"):
            js.document.getElementById(element_id).disabled = False

    def _wire_settings(self) -> None:
        delay, sound = js.document.getElementById("alarm-after"), js.document.getElementById("alarm-sound")
        delay.value, sound.checked = f"{self.settings.effective_alarm_s:g}", self.settings.sound

        error = js.document.getElementById("alarm-after-error")

        def delay_changed(_e) -> None:
            seconds = page_settings.parse_alarm_s(delay.value)
            delay.setAttribute("aria-invalid", "false" if seconds is not None else "true")
            error.hidden = seconds is not None
            if seconds is None:  # said next to the field; the alarm keeps the last valid delay
                error.textContent = (f"Not a delay between 0.5 and 10 s: the alarm still sounds after "
                                     f"{self.settings.effective_alarm_s:g} s.")
                return
            self.settings.alarm_after_s, self.settings.visit_alarm_s = seconds, None
            if not self.clip_active:  # a file is scored with one delay throughout; the next one uses the new delay
                self.tracker.config.alarm_after_s = seconds  # also for the closure in progress
            page_settings.save(self.settings)

        def sound_changed(_e) -> None:
            self.settings.sound = self.beeper.enabled = bool(sound.checked)
            page_settings.save(self.settings)

        def test_sound(_e) -> None:
            self.beeper.unlock()  # a click: the browser allows sound from here on
            self.beeper.beep()

        self._on("alarm-after", "change", delay_changed)
        self._on("alarm-sound", "change", sound_changed)
        self._on("alarm-test", "click", test_sound)
        self._wire_notification_setting()

    def _wire_notification_setting(self) -> None:
        box, help_text = js.document.getElementById("alarm-notify"), js.document.getElementById("alarm-notify-help")

        def say(text: str) -> None:
            help_text.textContent, help_text.hidden = text, not text

        def turn(on: bool, note: str = "") -> None:
            box.checked = self.notifier.enabled = on
            self.settings.notify = on
            page_settings.save(self.settings)
            say(note)

        blocked = "Notifications are blocked for this page in the browser's site settings."
        permission = notification_permission()
        box.checked = self.notifier.enabled
        if permission == "unsupported":
            box.disabled = True
            say("This browser does not offer notifications.")
        elif self.settings.notify and permission == "denied":
            say(blocked)

        async def answered(request) -> None:
            try:
                result = str(await request)
            except Exception as error:
                return turn(False, f"Not switched on: {error}")
            if result == "granted" and not box.checked:  # unticked again while the prompt was open
                return turn(False)
            turn(result == "granted", {"granted": "", "denied": blocked}.get(
                result, "Not switched on: the prompt was closed without an answer."))

        def changed(_e) -> None:
            if not box.checked:
                return turn(False)
            permission = notification_permission()
            if permission in ("granted", "denied"):
                return turn(permission == "granted", "" if permission == "granted" else blocked)
            say("Allow notifications in the browser's prompt…")
            request = js.window.Notification.requestPermission()  # here, inside the click: browsers prompt only then
            if request is None:  # an old browser that answers only through a callback
                return turn(False, "Allow notifications for this page in the browser's settings, then tick again.")
            asyncio.ensure_future(answered(request))

        self._on("alarm-notify", "change", changed)

    def _notification_unavailable(self, reason: str) -> None:
        help_text = js.document.getElementById("alarm-notify-help")
        help_text.textContent = f"The browser did not show the alarm's notification: {reason}"
        help_text.hidden = False

    def _camera_picked(self, device_id: str) -> None:
        self.settings.camera = device_id  # the next visit starts with it
        page_settings.save(self.settings)
        if self.live or self._camera_starting():
            self._picked_camera = None
            asyncio.ensure_future(self.start_camera(device_id))  # switch now
        else:  # stopped: picking a camera does not turn it on; the next Start asks for exactly this one
            self._picked_camera = device_id

    def _new_tracker(self) -> EyeStateTracker:
        return EyeStateTracker(self.settings.temporal_config())

    def _start_clicked(self) -> None:
        self.beeper.unlock()  # inside the click: browsers allow sound only after a gesture
        picked, self._picked_camera = self._picked_camera, None  # once: a later Start takes another if it is gone
        asyncio.ensure_future(self.start_camera(picked))

    # -- per frame -------------------------------------------------------------------------------

    async def process(self, frame, width: int, height: int, t: float, media_time: float | None = None,
                      started: float | None = None, background: bool = False, thumb: bytes | None = None):
        """Pipeline + tracker on one frame snapshot (runtime.snapshot); updates the view. `background`: read while the
        page is out of sight; `thumb`: this frame's thumbnail when the caller has already drawn it (the live clock).
        Returns (FrameResult, TemporalState), or None for a frame whose camera was stopped before it was done: nothing
        of it is shown or counted (a rate or an eye label of a camera that is off)."""
        epoch = self._source_epoch
        async with self._frame_lock:
            return await self._process(frame, width, height, t, media_time, started, background, thumb, epoch)

    async def _process(self, frame, width, height, t, media_time, started, background=False, thumb=None, epoch=0):
        started = js.performance.now() if started is None else started
        result = await self.pipeline.process_async(frame, t)
        if epoch != self._source_epoch:
            return None
        left, right = result.left, result.right
        state = self.tracker.update(t, left.p_open if left else None, right.p_open if right else None)
        face_found = result.status == "face"
        # how dark the picture is matters only without a face: frames with one never pay for the thumbnail
        luma = None
        if not face_found and self.machine.state in S.LIVE_STATES:
            luma = mean_luma(thumb or self._thumbnail(frame))
        self.machine.on_frame_result(face_found=face_found,
                                     eyes_known=left is not None and right is not None,
                                     confidence_ok=state.left != "unknown" and state.right != "unknown",
                                     t=t, luma=luma, eyes_dark=result.eyes_dark,
                                     eyes_bright=result.eyes_bright, eyes_small=result.eyes_small)
        live_state = self.machine.state in S.LIVE_STATES or self.machine.state == S.PROCESSING_CLIP
        shown = state if live_state else None
        self.view.overlay.size_to(width, height)
        self.view.overlay.draw(result, shown)
        self.view.show_eyes(shown)
        # Before show_metrics, which may start the alarm. Behind another tab a frame callback still comes about once a
        # second, and some browsers (headless Chromium) say the page is visible and focused: while the clock has
        # been reading frames, a callback's frame is out of sight too.
        self.notifier.background = background or js.performance.now() / 1000.0 - self._clock_read_at < 1.0
        self.view.show_metrics(state)
        self.view.timeline.add(t, {"left": left.p_open if left else None, "right": right.p_open if right else None})
        now = js.performance.now()
        timings = dict(result.timings)
        timings.update({f"ort:{k}": v for k, v in self.runtime.take_spent().items()})
        timings["frame"] = now - started
        self.stats.frame(now / 1000.0, timings)
        self.view.show_fps(self.stats.fps)
        self.view.show_latency(self.stats.latency, now / 1000.0)
        self.beeper.update(state.alarm and not self.clip_active, now / 1000.0)
        if not self.first_label_seen and (state.left in (OPEN, CLOSED) or state.right in (OPEN, CLOSED)):
            self.first_label_seen = True
            self.timings["first_label_ms"] = now
        if self.frame_log.length >= FRAME_LOG_LIMIT:
            self.frame_log.shift()
        entry = {
            "mediaTime": media_time, "t": t, "done": now, "app": self.machine.state, "left": state.left,
            "right": state.right, "eyes": state.eyes, "pLeft": left.p_open if left else None,
            "pRight": right.p_open if right else None, "blinks": state.blink_count, "frameMs": timings["frame"],
            "size": f"{width}x{height}", "eyePx": None if result.eye_px is None else round(result.eye_px, 1),
            "stages": {k: round(v, 2) for k, v in timings.items()}}
        if background:
            entry["background"] = True
        if result.eyes_dark:
            entry["eyesDark"] = True
        if result.eyes_bright:
            entry["eyesBright"] = True
        if result.eyes_small:
            entry["eyesSmall"] = True
        if luma is not None:
            entry["luma"] = round(luma, 1)
        if self.probe:
            entry["probe"] = self._probe(frame, height)
        self.frame_log.push(js_obj(entry))
        return result, state

    @staticmethod
    def _probe(frame, height: int) -> list:
        """Red values at the centres of the 8x8 code blocks along the bottom-left edge
        (tests/browser_utils.video_to_coded_y4m)."""
        data = frame.getContext("2d").getImageData(0, height - 8, PROBE_BITS * 8, 8).data.to_py()
        return [data[(4 * PROBE_BITS * 8 + 8 * i + 4) * 4] for i in range(PROBE_BITS)]

    def _fail(self, error) -> None:
        js.console.error(f"eye-state pipeline failed: {error}")
        self.stop_camera()  # the camera light goes off; the session so far can still be downloaded
        self.wake.release()
        self.view.show_alarm(False)
        for element_id in ("start", "camera", "clip-file"):  # "Reload the page to try again": nothing else starts
            js.document.getElementById(element_id).disabled = True
        self.machine.go(S.MODEL_FAILED, detail=str(error)[:300])

    # -- camera ----------------------------------------------------------------------------------

    def take_early_start(self) -> bool:
        """A Start click that came while the page loaded (index.html asked for the camera then): start
        with that request's stream. Returns whether there was one."""
        early = getattr(js.window, "eyestateEarlyStart", None)
        if not early:
            return False
        js.window.eyestateEarlyStart = None
        if early.audio:
            self.beeper.ctx = early.audio
        self.beeper.unlock()
        self.timings["start_clicked_ms"] = early.clicked_ms
        start = js.document.getElementById("start")
        lost_focus = _focused() == ""  # the early click disabled the button, and the focus fell to the page
        start.disabled, start.textContent = False, "Start camera"
        if lost_focus:
            start.focus()  # given back, so that it moves on to Stop with the camera (_swap_buttons)
        stream = early.stream  # null (no camera API on this page) arrives as None or as pyodide's jsnull
        asyncio.ensure_future(self.start_camera(early_request=stream if stream else None))
        return True

    async def start_camera(self, device_id: str | None = None, early_request=None) -> None:
        """Asks for the camera (or takes the stream of a request index.html made on an early click)."""
        if self.clip_active:
            return
        switching = device_id is not None and self.live  # a camera picked in the list while one runs
        self.stop_camera(summary=not switching)
        self._camera_request += 1  # a newer start, a Stop or a video file makes this one's late stream unwanted
        mine = self._starting = self._camera_request
        try:
            await self._open_camera(mine, device_id, early_request, switching)
        finally:
            if self._starting == mine:
                self._starting = None

    def _camera_starting(self) -> bool:
        """A start (or a switch to a picked camera) is under way and still wanted."""
        return self._starting is not None and self._starting == self._camera_request

    async def _open_camera(self, mine: int, device_id: str | None, early_request, switching: bool) -> None:
        async with self._frame_lock:  # a frame still in flight belongs to the stream just stopped
            pass
        if self.clip_active or mine != self._camera_request or not self.machine.can_go(S.REQUESTING_CAMERA):
            return  # a file, a Stop or a newer start came meanwhile, or that frame's model failed
        self.machine.go(S.REQUESTING_CAMERA)
        devices = getattr(js.navigator, "mediaDevices", None)
        if early_request is None and (devices is None or not hasattr(devices, "getUserMedia")):
            self.machine.camera_error("NotSupportedError")
            return
        video = constraints(STANDARD)  # index.html's early request asks the same
        if device_id:  # picked just now
            video["deviceId"] = {"exact": device_id}
        elif self.settings.camera:  # picked on an earlier visit; another camera if it is gone
            video["deviceId"] = {"ideal": self.settings.camera}
        else:  # a phone's selfie camera
            video["facingMode"] = {"ideal": "user"}
        refused = None  # the error name of a camera request that failed
        try:
            if early_request is not None:  # index.html's: no deviceId of its own, so never that error
                stream = await early_request
            else:
                outcome = await _GET_USER_MEDIA(devices, js_obj({"video": video, "audio": False}))
                stream, refused = (outcome.value, None) if outcome.ok else (None, outcome.name)
        except JsException as error:
            refused = _error_name(error)
        if refused is not None:
            if not self.clip_active and mine == self._camera_request:  # not when a file or a newer start took over
                self.machine.camera_error(refused, picked=bool(device_id))
                if device_id:  # the list may show a camera that is gone: list what is there now
                    asyncio.ensure_future(self._list_cameras())
            return
        if self.clip_active or mine != self._camera_request:  # a file (or another start) came while the camera
            for track in stream.getTracks():                   # started: that goes on, this camera not
                track.stop()
            return
        self.stream = stream
        self.video.hidden = False
        self.clip_video.hidden = True
        self.video.srcObject = stream
        try:
            await self.video.play()
        except JsException as error:
            if not self.clip_active and mine == self._camera_request:
                self.stop_camera()
                self.machine.camera_error(_error_name(error))
            return
        if self.clip_active or self.stream is not stream or mine != self._camera_request:  # superseded meanwhile
            if self.stream is stream:
                self.stop_camera(summary=False)
            return
        self.timings.setdefault("camera_ms", js.performance.now())  # first camera start, ms since navigation
        track = stream.getVideoTracks()[0]
        track.addEventListener("ended", create_once_callable(lambda _e: self._camera_ended(stream)))
        if track.readyState == "ended":  # it ended before the listener was there (unplugged during the start)
            self._camera_ended(stream)
            return
        self._camera_id = str(getattr(track.getSettings(), "deviceId", "") or "")
        self.sharper.reset(slow_camera=self._camera_id in self._slow_cameras)
        js.document.getElementById("placeholder").hidden = True
        _swap_buttons(hide="start", show="stop")
        self.view.set_source(live=True)
        self.view.reset_live()
        self.stats.reset()
        self.pipeline.reset()
        if self.budget is not None:  # a new stream; light mode, if on, stays until it is retried
            self.budget.reset()
        self._presented = None
        self._set_light(bool(self.budget and self.budget.light))
        if not switching:  # a new session; a camera picked while one runs goes on with the same one
            self.tracker = self._new_tracker()
            self.session = Recording(LIVE_RECORD_LIMIT, relative_time=True)
        js.document.getElementById("session-summary").hidden = True
        self.machine.go(S.RUNNING)
        asyncio.ensure_future(self._list_cameras(track))
        self.live = True
        self.wake.hold()
        self._last_callback = js.performance.now() / 1000.0
        self._start_ticker()
        self._request_frame()

    async def _list_cameras(self, track=None) -> None:
        """Fills the camera picker (shown with two cameras or more), the running `track`'s camera selected."""
        try:
            devices = await js.navigator.mediaDevices.enumerateDevices()
        except JsException:
            return
        cameras = [d for d in devices if d.kind == "videoinput"]
        picker = js.document.getElementById("camera")
        js.document.getElementById("camera-picker").hidden = len(cameras) < 2
        if len(cameras) < 2:
            return
        current = track.getSettings().deviceId if track is not None else None
        picker.textContent = ""
        for i, cam in enumerate(cameras):
            option = js.document.createElement("option")
            option.value = cam.deviceId
            option.textContent = cam.label or f"Camera {i + 1}"
            option.selected = cam.deviceId == current
            picker.append(option)

    def _camera_ended(self, stream) -> None:
        if stream is not self.stream:
            return  # an old stream we stopped ourselves
        self.stop_camera()
        self.machine.camera_error("ended")

    def stop_camera(self, to_ready: bool = False, summary: bool = True) -> None:
        self.live = False
        self._camera_request += 1  # a camera still being asked for is not wanted any more
        self._source_epoch += 1
        if not self.clip_active:
            self.wake.release()
        self._has_pending = False
        self._stop_ticker()
        if self.stream is not None:
            stream, self.stream = self.stream, None
            for track in stream.getTracks():
                track.stop()
            self.video.srcObject = None
            js.document.getElementById("placeholder").hidden = False  # not a black box where the picture was
        _swap_buttons(hide="stop", show="start")
        if summary:
            self._show_session_summary()
        self.view.reset_live()
        if self.sharper.lowered_for_rate and self._camera_id:
            self._slow_cameras.add(self._camera_id)
        self.sharper.reset()  # a camera started later (or another one picked) starts at 640x480 again
        self._frame_size = None
        self.view.show_picture(None, self.sharper)
        self.view.show_light_mode(False)  # a note and a rate about a camera that is off no longer hold
        self.view.show_fps(0.0)
        if to_ready and self.machine.can_go(S.READY):
            self.machine.go(S.READY)

    def _request_frame(self) -> None:
        """Keep exactly one video-frame callback registered while live, also while a frame is being
        processed: a frame that arrives meanwhile is then processed as soon as the current one is done,
        instead of waiting for the frame after it (the model calls are awaited, so the event loop runs meanwhile)."""
        if not self.live or self._frame_requested:
            return
        self._frame_requested = True
        callback = create_once_callable(self._on_video_frame)
        if hasattr(self.video, "requestVideoFrameCallback"):
            self.video.requestVideoFrameCallback(callback)
        else:
            js.requestAnimationFrame(callback)

    def _start_ticker(self) -> None:
        if self._ticker is not None or not hasattr(js.window, "Worker"):
            return
        try:
            self._ticker = js.Worker.new("./ticker.js")
        except JsException as error:  # no background watching, the page itself still works
            js.console.warn(f"no background clock: {error}")
            return
        self._ticker.onmessage = create_proxy(lambda _e: self._on_tick())
        self._ticker.postMessage(BACKGROUND_TICK_MS)

    def _stop_ticker(self) -> None:
        if self._ticker is not None:
            ticker, self._ticker = self._ticker, None
            handler = ticker.onmessage
            ticker.terminate()
            ticker.onmessage = None  # a tick already queued must not reach the destroyed handler
            handler.destroy()

    def _on_tick(self) -> None:
        """Background watching: read a frame when the camera frame callbacks have stopped."""
        quiet_since = max(self._last_callback, self._front_done)
        if not self.live or self._busy or js.performance.now() / 1000.0 - quiet_since < BACKGROUND_AFTER_S:
            return
        stream = self.stream
        if stream is not None and any(t.readyState == "ended" for t in stream.getVideoTracks()):
            self._camera_ended(stream)  # ended without an "ended" event (track.stop() fires none): not a dark picture
            return
        self._busy = True
        self._ticked = True
        self._clock_read_at = js.performance.now() / 1000.0
        if self.budget is not None:  # the clock's reads say nothing of this device's speed: the count starts afresh
            self.budget.reset()  # after them (light mode, if on, stays)
        asyncio.ensure_future(self._live_step(None, background=True))

    def _on_video_frame(self, _now, metadata=None) -> None:
        self._frame_requested = False
        self._last_callback = js.performance.now() / 1000.0
        self._request_frame()
        after_background, self._ticked = self._ticked, False
        if self.budget is not None:
            # While Python and the models hold the main thread, several camera frames pass between two
            # callbacks; presentedFrames counts them all. Not so behind another tab: the frames the browser did not
            # render for it say nothing of this device's speed (the clock read frames meanwhile).
            presented = getattr(metadata, "presentedFrames", None) if metadata is not None else None
            count = 1 if presented is None or self._presented is None else int(presented) - self._presented
            self._presented = None if presented is None else int(presented)
            # (animation frames are counted in _live_step, and only new pictures)
            if not after_background and not self._by_animation_frames:
                self.budget.arrived(js.performance.now() / 1000.0, count)
        media_time = getattr(metadata, "mediaTime", None) if metadata is not None else None
        if self._busy:
            self._pending = media_time  # only the newest waiting frame counts; older ones are skipped
            self._has_pending = True
            return
        self._busy = True  # set before the task starts, so a second callback cannot start a second loop
        asyncio.ensure_future(self._live_step(media_time))

    def _check_budget(self) -> None:
        if self.budget is None:
            return
        light = self.budget.processed(js.performance.now() / 1000.0)
        if light != self._light:
            self.timings["light_mode_ms" if light else "full_again_ms"] = js.performance.now()  # the latest switches
            self._set_light(light)

    def _set_light(self, light: bool, live: bool = True) -> None:
        self._light = light
        self.pipeline.config.use_iris = self._iris_available and not light
        self.pipeline.config.landmark_hold_s = self._live_hold_s if live else 0.0
        self.view.show_light_mode(light)

    async def _live_step(self, media_time, background: bool = False) -> None:
        """Runs while `_busy` (set by `_on_video_frame` or `_on_tick`): this frame, then any that arrived meanwhile.
        Background frames leave the frame budget alone: they come at the clock's pace, not the camera's."""
        try:
            while self.live:
                width, height = int(self.video.videoWidth), int(self.video.videoHeight)
                if width and height:
                    if (width, height) != self._frame_size:
                        self._picture_resized(width, height)
                    started = js.performance.now()
                    frame = self.runtime.snapshot(self.video, width, height)
                    # A frame callback means a new frame; the clock may re-read the last one (a frozen camera), so
                    # only its reads are compared, each with the clock's read before it (and animation frames)
                    by_animation = self._by_animation_frames and not background
                    changed = self._picture_changed(frame) if background or by_animation else True
                    luma = None if changed else mean_luma(self._last_thumb)
                    if changed or self._same_picture_since is None:
                        self._same_picture_since = started / 1000.0
                    if by_animation and changed and self.budget is not None:
                        # one camera frame per new picture (no presentedFrames here: a busy device goes unnoticed,
                        # so light mode does not start by itself in these browsers)
                        self.budget.arrived(started / 1000.0)
                    # a repeated picture that is neither dark nor frozen long enough falls through: nothing new. Dark
                    # only after BLACK_AFTER_S: read twice (animation frames come at 60 a second), a camera frame of a
                    # dark room with a face in it made the page say "too dark" for good (no video frame callbacks)
                    if luma is not None and luma < S.DARK_LUMA \
                            and started / 1000.0 - self._same_picture_since >= BLACK_AFTER_S:
                        self._show_black(started / 1000.0, luma)
                    elif self.machine.on_camera_picture(changed, started / 1000.0) == S.CAMERA_STALLED \
                            or (not changed and self.tracker.alarm_on and not by_animation):
                        self._show_nothing_seen(started / 1000.0)  # a running alarm goes on sounding
                        if self.machine.state == S.CAMERA_STALLED:  # frozen by a switch to more pixels?
                            before = self.sharper.state
                            self._follow_sharper(before, self.sharper.camera_stalled(started / 1000.0))
                    elif changed:  # the same picture again shows nothing new (fed, a frozen closed eye would alarm)
                        done = await self.process(frame, width, height, started / 1000.0, media_time, started,
                                                  background, self._last_thumb if background else None)
                        if done is not None:  # None: a frame that finished after Stop
                            self._record_live(started / 1000.0, *done)
                            if not background:  # the clock's pace says nothing of the camera's
                                self._check_resolution(started / 1000.0, done[0], (width, height))
                    if not background and (changed or not by_animation):
                        self._check_budget()  # a repeated picture is handled too: the device keeps up
                if not background:
                    self._front_done = js.performance.now() / 1000.0
                if not self._has_pending:
                    break
                media_time, self._has_pending, background = self._pending, False, False
        except Exception as error:  # a model that fails mid-run: say so instead of freezing
            self._fail(error)
        finally:
            self._busy = False

    def _picture_resized(self, width: int, height: int) -> None:
        """The camera sends another picture size (asked for by _check_resolution): the tracked face's place, in pixels
        of the old size, no longer holds, so the face is found afresh (the blink count and the rest go on)."""
        if self._frame_size is not None:
            self.pipeline.lose_track()
        self._frame_size = (width, height)
        self.view.show_picture(self._frame_size, self.sharper)

    def _check_resolution(self, t: float, result, size: tuple) -> None:
        if js.performance.now() / 1000.0 - self._clock_read_at < 2.0:  # the last 2 s' rate holds the clock's reads
            self.sharper.interrupt()
            return
        before = self.sharper.state
        self._follow_sharper(before, self.sharper.frame(t, result.eyes_small, size, self.stats.fps, self._light,
                                                        result.eye_px))

    def _follow_sharper(self, state_before: str, action: str | None) -> None:
        """Shows a new SharperPicture state and asks the camera for the picture size its action says."""
        if self.sharper.state != state_before:
            self.view.show_picture(self._frame_size, self.sharper)
        if action is not None and self.stream is not None:
            asyncio.ensure_future(self._ask_picture(self.stream, SHARP if action == RAISE else STANDARD))

    async def _ask_picture(self, stream, size: tuple) -> None:
        outcome = await _APPLY_CONSTRAINTS(stream.getVideoTracks()[0], js_obj(constraints(size)))
        if not outcome.ok:  # a camera that cannot: it goes on as it was
            js.console.warn(f"camera picture {size[0]}x{size[1]} refused: {outcome.name} {outcome.message}")

    def _picture_changed(self, frame) -> bool:
        """Whether this camera picture differs from the one before, from an averaged 64x48 thumbnail (a frozen camera
        repeats its last picture exactly; a working one does not: on the focus videos, area-averaged 32x24 and 64x48
        thumbnails of consecutive frames always differed, 16x12 ones did not on 3 of 1,790)."""
        pixels = self._thumbnail(frame)
        changed, self._last_thumb = pixels != self._last_thumb, pixels
        return changed

    def _show_black(self, t: float, luma: float) -> None:
        """The same black picture again (mean luma below the dark line): some privacy shutters send exact black, every
        picture the same. Too dark,
        not frozen (a frozen picture is reported as such only while it could show a face); like a frozen one it is not
        processed again: nothing is seen."""
        self.machine.on_camera_picture(True, t)  # leaves camera-stalled
        self._show_nothing_seen(t)
        self.machine.on_frame_result(face_found=False, eyes_known=False, confidence_ok=False, t=t, luma=luma)

    def _thumbnail(self, frame) -> bytes:
        """RGBA bytes of the picture area-averaged to 64x48 (every camera pixel counts)."""
        if self._thumb is None:
            self._thumb = js.OffscreenCanvas.new(64, 48).getContext("2d", js_obj({"willReadFrequently": True}))
            self._thumb.imageSmoothingQuality = "high"
        self._thumb.drawImage(frame, 0, 0, 64, 48)
        return bytes(self._thumb.getImageData(0, 0, 64, 48).data.to_py())

    def _show_nothing_seen(self, t: float) -> None:
        """No new picture: nothing is seen, so both eyes are unknown; an alarm that is on keeps sounding."""
        state = self.tracker.update(t, None, None)
        self.view.overlay.draw(None, None)
        self.view.show_eyes(None)
        self.view.show_metrics(state)
        self.beeper.update(state.alarm, t)

    def _record_live(self, t: float, result, state) -> None:
        self.session.add(t, result, state)
        if len(self.session) == 1:
            js.document.getElementById("session-csv").hidden = False

    def _show_session_summary(self) -> None:
        """After a camera session: how long, blinks, alarms, closed share (from page_record.Recording)."""
        element = js.document.getElementById("session-summary")
        if not len(self.session) or self.session.duration_s < 1.0:  # too short to sum up: nothing of an earlier one
            element.hidden = True
            _clear_summary(element)
            return
        summary = self.session.summary()
        for key, value in summary.items():
            element.setAttribute(f"data-{key.replace('_', '-')}", str(value))
        blinks, alarms = count_text(summary["blinks"], "blink"), count_text(summary["alarms"], "microsleep alarm")
        element.textContent = (f"Camera session {clock_text(summary['seconds'])}: {blinks} "
                               f"({summary['blinks_per_min']:g} a minute with the eyes in view), {alarms}, "
                               f"eyes closed {summary['closed_share'] * 100:.0f} % of the time they were seen "
                               f"(seen {summary['seen_share'] * 100:.0f} % of the session)"
                               f"{self.session.light_text()}.")
        element.hidden = False

    def download_session(self) -> None:
        """The latest camera session's per-frame CSV (the clip CSV's columns; time in seconds since its first
        frame), made in the browser and saved by it."""
        if not len(self.session):
            return
        blob = js.Blob.new(js_obj([self.session.csv_text()]), js_obj({"type": "text/csv"}))
        url = js.URL.createObjectURL(blob)
        link = js.document.createElement("a")
        link.href = url
        link.download = "camera_" + js.Date.new().toISOString()[:19].replace(":", "-") + "_eye_state.csv"
        js.document.body.append(link)
        link.click()
        link.remove()
        js.setTimeout(create_once_callable(lambda: js.URL.revokeObjectURL(url)), 10_000)

    # -- recorded clip ---------------------------------------------------------------------------

    def _set_busy(self, busy: bool) -> None:
        """While a clip is processed, the camera and a second clip cannot be started."""
        for element_id in ("start", "camera", "clip-file"):  # picking a camera starts it
            js.document.getElementById(element_id).disabled = busy

    def _clip_chosen(self, event) -> None:
        files = event.target.files
        if files.length == 0:
            return
        asyncio.ensure_future(self.process_clip(files.item(0)))
        event.target.value = ""  # choosing the same file again fires change again

    async def process_clip(self, file) -> None:
        """Every frame of a local video file, in order, exactly once (method: page_clip.py)."""
        if self.clip_active:
            return
        self.stop_camera()  # also drops a camera still being asked for
        self.clip_active = True
        self._clip_stop = False  # set by the "Stop processing" button
        self._set_busy(True)
        async with self._frame_lock:  # let a live frame still in flight finish before resetting
            pass
        self.machine.go(S.PROCESSING_CLIP, detail=file.name)
        js.document.getElementById("clip").hidden = False
        download = js.document.getElementById("clip-download")
        download.hidden = True
        _clear_summary(js.document.getElementById("clip-summary"))  # the previous file's results must not stand
        js.document.getElementById("clip-progress").value = 0  # under this one's outcome
        video = self.clip_video
        url = js.URL.createObjectURL(file)
        self.video.hidden = True
        video.hidden = False
        js.document.getElementById("placeholder").hidden = True
        self.view.set_source(live=False)
        self.view.reset_live()
        self.pipeline.reset()
        # a file is not real-time: never light mode, FaceMesh on every frame as in pipeline.video (the next live
        # start re-applies the live settings)
        self._set_light(False, live=False)
        self.tracker = self._new_tracker()
        self.stats.reset()
        stop_button, tab_note = js.document.getElementById("clip-stop"), js.document.getElementById("clip-tab-note")
        stop_button.hidden = tab_note.hidden = False  # the note is about processing: shown while it runs
        if _focused() in ("clip-file", "start"):  # now disabled: a keyboard user keeps a place on the page
            stop_button.focus()
        try:
            self.wake.hold()  # a long file takes minutes: a locked screen would pause it
            record, dropped, rate, stopped_at, duration, cut = await self._clip_frames(video, url)
        except Exception as error:
            js.console.error(f"clip failed: {error}")
            self.clip_active = False
            self._set_busy(False)
            if isinstance(error, (JsException, ClipError)):
                self.machine.go(S.CLIP_FAILED, detail=str(error)[:200])
            else:
                self._fail(error)
            return
        finally:
            js.URL.revokeObjectURL(url)
            stop_button.hidden = tab_note.hidden = True
            self.wake.release()
            self.view.show_alarm(False)  # a clip that ends inside a long closure
        self.clip_active = False
        self._set_busy(False)
        csv_text = record.csv_text()
        js.document.getElementById("clip-csv").value = csv_text
        if download.href:
            js.URL.revokeObjectURL(download.href)  # the previous clip's CSV
        download.href = js.URL.createObjectURL(js.Blob.new(js_obj([csv_text]), js_obj({"type": "text/csv"})))
        download.download = (file.name.rsplit(".", 1)[0] or "video") + "_eye_state.csv"
        download.hidden = False
        if _focused() in ("", "clip-stop"):  # focus fell to the page when Stop processing was hidden
            download.focus()
        frames, blinks, alarms = len(record), record.blink_count, record.alarms
        summary = js.document.getElementById("clip-summary")
        summary.setAttribute("data-frames", str(frames))
        summary.setAttribute("data-blinks", str(blinks))
        summary.setAttribute("data-alarms", str(alarms))
        summary.setAttribute("data-alarm-after", str(self.tracker.config.alarm_after_s))
        summary.setAttribute("data-dropped", str(dropped))
        summary.setAttribute("data-rate", f"{rate:.2f}")  # the playback rate the clip was read at
        summary.setAttribute("data-stopped", "false" if stopped_at is None else f"{stopped_at:.3f}")
        where = None if stopped_at is None else f"{clock_text(stopped_at)} of {clock_text(duration)}"
        faceless = record.faceless_frames
        summary.textContent = ((f"First {where}: " if where else "")
                               + f"{count_text(frames, 'frame')}, {count_text(blinks, 'blink')}, "
                               + count_text(alarms, "microsleep alarm")
                               + f" (eyes shut ≥ {self.tracker.config.alarm_after_s:g} s)"
                               + (f"; {dropped} frames could not be read" if dropped else "")
                               + (f"; no face found on {faceless} of the {frames} frames" if faceless else "")
                               + record.light_text())
        summary.setAttribute("data-dark-frames", str(record.dark_frames))
        summary.setAttribute("data-bright-frames", str(record.bright_frames))
        summary.setAttribute("data-small-frames", str(record.small_frames))
        summary.setAttribute("data-faceless-frames", str(faceless))
        if cut is not None:  # the file broke off after some frames: what was read is kept
            self.machine.go(S.CLIP_CUT, detail=f"{file.name}, read up to {where}: {cut}"[:200])
        elif stopped_at is None:
            self.machine.go(S.CLIP_DONE, detail=file.name)
        else:
            self.machine.go(S.CLIP_STOPPED, detail=f"{file.name}, at {where}")

    async def _clip_frames(self, video, url):
        rate = number_param("cliprate", None, MIN_RATE, MAX_RATE)  # fixed playback rate (A/B timing)
        reader = ClipReader(video, url, rate)
        record = Recording()
        frames = reader.frames()
        stopped_at = cut = None
        progress = js.document.getElementById("clip-progress")
        try:
            await reader.open()
            if reader.duration:
                progress.value = 0
            else:
                progress.removeAttribute("value")  # indeterminate: the file does not say how long it is
            summary = js.document.getElementById("clip-summary")
            started, shown = js.performance.now(), 0.0
            while True:
                try:
                    media_time, canvas = await frames.__anext__()
                except StopAsyncIteration:
                    break
                except (ClipError, JsException) as error:  # the file, not the models: damaged or cut off here
                    if not len(record):
                        raise
                    stopped_at, cut = record.rows[-1][1], str(error)  # keep what was read
                    js.console.error(f"clip failed after {len(record)} frames: {error}")
                    break
                # background: read by seeking while the page is not rendered (page_clip.ClipReader._step)
                result, state = await self.process(canvas, reader.width, reader.height, media_time, media_time,
                                                   background=reader.stepping)
                reader.recycle(canvas)
                record.add(media_time, result, state)
                if reader.duration:  # else the bar stays indeterminate
                    progress.value = min(1.0, media_time / reader.duration)
                now = js.performance.now()
                if now - shown > 500:  # a readable pace, and few DOM writes
                    shown = now
                    fps = len(record) / max(1e-3, (now - started) / 1000)
                    total = clock_text(reader.duration or math.inf)
                    summary.textContent = (f"{clock_text(media_time)} of {total} processed, {fps:.0f} frames a second "
                                           "on average")  # the Processed card shows the latest rate
                if self._clip_stop:
                    stopped_at = media_time
                    break
        finally:
            await frames.aclose()
            reader.close()
            if not progress.hasAttribute("value"):
                progress.value = 0  # length unknown and stopped or failed: no bar that still looks busy
        if stopped_at is None:
            progress.value = 1  # also a file that did not say how long it is
        js.console.log(f"clip: {len(record)} frames at playback rate {reader.rate}; {reader.dropped_then_recovered} "
                       f"skipped by the browser and fetched again by seeking; {reader.unrecovered} not recovered; "
                       f"{reader.stepped} read by seeking while the page was not rendered")
        return record, reader.unrecovered, reader.rate, stopped_at, reader.duration or math.inf, cut


