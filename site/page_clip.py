"""Every frame of a local video file, in order, exactly once (recorded-clip mode).

Method. The video plays; each requestVideoFrameCallback pauses it at once and copies the presented
frame into a canvas, so nothing new is presented until playback resumes. It resumes as soon as a frame is handed
out (from the third frame on, once a frame's processing time is known), so the next frame is on its way while the
pipeline works on this one, at a rate that presents no more frames than the pipeline keeps up with. A browser may still
present frames the page never sees (its callbacks coalesce when the main thread is busy) or, when they come faster
than the display refreshes, decode frames it never presents. A gap is noticed by metadata.presentedFrames jumping by
more than one, by the element's count of dropped frames (getVideoPlaybackQuality) rising while it played, by a
mediaTime step above 1.5× the smallest frame step of the last 30 frames, or below 0.9× it (the frame rate rose: one
seek looks for a frame between); the missing frames are then fetched in order by seeking (paused) to just past the
last processed frame (+1.25 × that smallest step) until the gap is closed, up to the frame just before its end. A gap
with frames unseen makes the step known at most its length over the frames in it, and the playback rate follows the
step, up again after a faster stretch.
Frames are identified by mediaTime, so a frame presented twice (after a resume or seek) is used once. At the end the
same stepping looks for frames after the last one seen, until a seek shows no newer frame.

Where the browser has WebCodecs, a frame is copied as a VideoFrame of the element, whose timestamp is the frame's own
mediaTime (the microseconds a frame callback gives; the same pixels as drawImage(video)), and seeking needs no frame
callback: after "seeked" the shown frame is taken when it lies past the last one and not past the seek's target
(else it is looked at again on the worker clock, ticker.js, for up to SEEKED_GRACE_S; with no frame there the target
moves on by one step, up to the gap's end or the file's end).

Behind another tab or window the page is not rendered, so frame callbacks stop (headless Chromium: about one a second
while the pipeline runs) and playback presents frames nobody copies. When no callback comes for NOT_RENDERED_AFTER_S,
the reader pauses and steps from the last frame by seeking (`_step`), the next seek running while the caller
processes a frame; seeks and their events go on behind another tab, and no page timer paces the stepping (browsers
throttle those there). Once frame callbacks come again after FRONT_AGAIN seeks in a row, playback resumes after the
last frame. A clip opened there learns its frame step by seeking too (`_probe_by_seeking`) and is read by seeking from
its first frame; where frames come by frame callbacks (no VideoFrame with the frame's own time), it waits to be shown.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque

import js
from pyodide.ffi import JsException, create_once_callable, create_proxy

# Playback runs at the rate that presents this many frames per second, whatever the clip's own frame rate: at ~30
# presentations a second the pause after each frame still catches the next one, faster loses frames to seeks,
# slower waits. A 6 fps clip then plays at about 5x, a 60 fps clip at 0.5x (docs/BENCHMARKS.md section 5, table H),
# a 240 fps slow-motion clip at 0.125x.
PRESENTED_PER_S = 30.0
MIN_RATE, MAX_RATE = 0.125, 8.0
# ... fewer where the device is slower than that. Playback resumes when a frame is handed out, and the next frame's
# callback runs at the first display refresh after the caller is done with this one (callbacks coalesce on a busy
# main thread): two frames presented by then lose the first of them, fetched again by seeking (about 0.5 s each). So
# at most KEEP_UP presentations per frame's processing time (the 80th percentile of the last PROCESSING_WINDOW frames)
# plus a refresh: on a CPU throttled 4x (100 ms a frame) 67 of 120 frames of a 30 fps clip were skipped and it took
# 39.0 s, now 5 and 23.2 s (docs/BENCHMARKS.md section 5, H3).
KEEP_UP = 1.8
REFRESH_S = 0.02
PROCESSING_WINDOW = 15
# While the shown frame stays the same past a wait's timeout (a still stretch, or sound that outlasts the video), play
# this fast: the next new frame still pauses the element at once, and playback after it goes back to the step's rate.
# A 2 s video with 30 s of sound took 18.5 s, most of it waiting for the sound to end (Chromium's highest rate is 16).
STILL_RATE = 16.0
# The step known is the smallest of this many recent frames, and the rate follows it: after a fast stretch (slow
# motion, a burst of a phone's variable rate) a slower one is read at its own pace again, without a seek per frame for
# steps that look like gaps. A stretch that turns faster again shows as frames unseen or as a shorter step (FASTER).
RATE_WINDOW = 30
GAP_FACTOR = 1.5
FASTER = 0.9  # a frame step this much shorter than the shortest of the last RATE_WINDOW: the frame rate rose
# Two gaps in a row without a frame in them, each this many times the step known: the frame rate fell (a slow-motion
# stretch ended). The step follows at once, not after RATE_WINDOW frames that would each look like a gap (a seek or two
# and a slow play each: 200 frames of 5 then 42 ms steps took 55.9 s, now 15.0; docs/BENCHMARKS.md H2). Uneven steps
# (a phone's 16, 17 and 33 ms; 24, 60, 24 fps) keep the shortest of the window: read at a 33 ms step, a 60 fps stretch
# lost frames that looked like steps. One such gap is a still frame (played at 8x, the 30 fps frames after it were
# skipped).
FELL_FACTOR = 4.0
STEP_FACTOR = 1.25
SEEK_TIMEOUT_S = 2.0
SEEKED_GRACE_S = 0.25  # after "seeked", how long a new frame may take to be presented
NOT_RENDERED_AFTER_S = 0.5  # no frame callback this long while playing: the page is not rendered (another tab in front)
# A wait that ended this much after its time: the main thread was held (a slow or busy device), and the frame callback
# due meanwhile has not had its turn yet; waited for once more instead of taken for another tab in front
LATE_TIMER_S = 0.1
FRONT_AGAIN = 3  # frame callbacks after this many seeks in a row: rendered again, playback resumes
CLOCK_MS = 10  # the worker clock's tick while seeking (looks again for a frame that was not shown at "seeked")
NOT_RENDERED = object()  # _next_presented: no frame callback came in time
MAX_EMPTY_STEPS = 40  # seeking past the last frame of a file of unknown length: this many steps without one is its end
MAX_SEEK_FAILURES = 3  # seeks in a row that never finish ("seeked"): the file cannot be read on
# A file this short whose first frame never comes by seeking (a single frame: the element shows it from the start, so
# no new frame is presented) is read as the one frame the element shows
SINGLE_FRAME_MAX_S = 0.25
# _next_by_seeking: first and last distance past a frame (4 ms: below the step of a 240 fps clip)
PROBE_SEEK_S = 0.004, 16.0
PROBE_INTERVALS = 4  # steps between frames _probe_by_seeking measures (as many as _probe_step's 5 frames give)
MAX_PROBE_REFINE = 6  # _next_by_seeking, _first_since: frames walked back past, at the most


class ClipError(RuntimeError):
    """The chosen video file cannot be processed (message says why)."""


class ClipReader:
    def __init__(self, video, url: str, playback_rate: float | None = None):
        self.video = video
        self.url = url
        self.rate = playback_rate  # None: chosen from the clip's frame step (PRESENTED_PER_S), and follows it
        self._rate_follows_step = playback_rate is None
        self.width = self.height = 0
        self.duration = 0.0
        self.dropped_then_recovered = 0
        self.unrecovered = 0  # frames that were skipped and could not be fetched by seeking
        self.step = None
        self._frame_waiter = None
        self._canvases = []
        self._proxies = []
        self._ended = False
        self._error = None
        self._ahead = None  # the next frame's fetch, started while the caller processes the current one
        self._seeked = asyncio.get_event_loop().create_future()
        self.stepping = False  # reading frames by seeking while the page is not rendered (_step)
        self.stepped = 0  # frames read that way
        self.shorter_step = None  # _first_since: a step shorter than the one known, seen while seeking
        self._at_end = False  # seeking found no frame after the last one
        self._callbacks = 0  # frame callbacks while stepping (the page is rendered again when they come)
        self._clock = None  # ticker.js worker, while seeking needs to look again (_clock_tick)
        self._tick = None
        self._own_times = False  # a VideoFrame of the element carries the shown frame's own time (_check_own_times)
        self._frame_callback = None  # id of the pending frame callback of _next_presented
        self._counting = 0  # generation of the _count_callback chain (a new stepping run starts a new one)
        self._seek_failures = 0  # in a row
        self._hurried = False  # played fast through a still frame since the last frame (_hurry_through_still)
        self._may_hurry = True  # not while playing again frames that went by in a hurry
        self._fell_before = False  # the last frame came after a gap without a frame, FELL_FACTOR steps long
        self._gap_last = None  # _seek_after: (end of a gap, time of the last frame before it)
        self._recent_steps = deque(maxlen=RATE_WINDOW)  # frame steps, and steps guessed for gaps (frames())
        self._processing_s = deque(maxlen=PROCESSING_WINDOW)  # the caller's time on each frame handed out (frames())
        self._dropped_at_play = self._dropped_at_frame = 0  # getVideoPlaybackQuality's count (_dropped)
        self._callback_frame_unseen = False
        self._closed = False

    # -- events ----------------------------------------------------------------------------------

    def _listen(self, event: str, handler) -> None:
        proxy = create_proxy(handler)
        self._proxies.append((event, proxy))
        self.video.addEventListener(event, proxy)

    def close(self) -> None:
        self._closed = True  # the element is reused for the next clip: a late frame callback must not touch it
        self._counting += 1
        self._cancel_frame_callback()
        if self._ahead is not None and not self._ahead.done():
            self._ahead.cancel()  # the caller stopped early (an error): nobody waits for that frame
        self._stop_clock()
        self.video.pause()
        for event, proxy in self._proxies:
            self.video.removeEventListener(event, proxy)
            proxy.destroy()
        self._proxies.clear()

    def _wake(self, value=None) -> None:
        waiter, self._frame_waiter = self._frame_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(value)

    def _on_frame(self, _now, meta) -> None:
        if self._closed:
            return
        self.video.pause()  # nothing new is presented while this frame is processed
        self._dropped_at_frame = self._dropped()
        t, canvas = self._copy_shown(float(meta.mediaTime))
        # the element already shows a later frame (its own time, _copy_shown): the callback's frame went unseen
        self._callback_frame_unseen = t > float(meta.mediaTime) + 1e-5
        self._wake((t, int(meta.presentedFrames), canvas))

    def _copy_shown(self, media_time: float | None = None):
        """(mediaTime, canvas) of the frame the element shows now. Where the browser has WebCodecs, the time is that
        frame's own (a VideoFrame's timestamp: the same microseconds a frame callback gives, and the same pixels as
        drawImage(video)): in a frame callback the element now and then already shows the next frame (headless
        Chromium: 1 of 720 frames in one of two probed runs), whose pixels were then processed as the callback's frame.
        Else (no VideoFrame, or one without the frame's own time: Firefox, Safari) `media_time`."""
        canvas = self._canvases.pop() if self._canvases else js.OffscreenCanvas.new(self.width, self.height)
        if not self._own_times:
            canvas.getContext("2d").drawImage(self.video, 0, 0, self.width, self.height)
            return media_time, canvas
        frame = js.VideoFrame.new(self.video)
        try:
            canvas.getContext("2d").drawImage(frame, 0, 0, self.width, self.height)
            return frame.timestamp / 1e6, canvas
        finally:
            frame.close()  # an open VideoFrame holds a decoder buffer

    def recycle(self, canvas) -> None:
        self._canvases.append(canvas)

    def _dropped(self) -> int:
        """Frames the element decoded but never presented, so far (0 where the browser does not say). Chromium counts
        those a play at a frame rate above the display's refresh skips: a clip that turns from 30 to 240 fps after 1 s
        lost up to 116 of its 510 frames unreported while this count rose; it does not count frames presented to a
        page that missed their callbacks (presentedFrames does)."""
        if not hasattr(self.video, "getVideoPlaybackQuality"):
            return 0
        return int(self.video.getVideoPlaybackQuality().droppedVideoFrames)

    def presented_per_s(self) -> float:
        """Frames to present a second: PRESENTED_PER_S, or fewer when the caller takes longer on a frame (KEEP_UP)."""
        if not self._processing_s:
            return PRESENTED_PER_S
        slow = sorted(self._processing_s)[int(0.8 * (len(self._processing_s) - 1))]
        return min(PRESENTED_PER_S, KEEP_UP / (slow + REFRESH_S))

    def _follow_step(self, step: float) -> None:
        if self._rate_follows_step:
            self.rate = min(MAX_RATE, max(MIN_RATE, self.presented_per_s() * step))

    async def open(self) -> None:
        if not hasattr(self.video, "requestVideoFrameCallback"):
            raise ClipError("this browser cannot read a video file frame by frame (it has no video frame callbacks: "
                            "Firefox before 132); a current Chrome, Edge, Firefox or Safari can")
        loop = asyncio.get_event_loop()
        ready = loop.create_future()

        def on_error(_e):
            err = self.video.error
            js.console.warn(f"clip: media error {err.code if err else '?'}: {err.message if err else ''}")  # the jargon
            self._error = ClipError("this browser cannot decode it")
            if not ready.done():
                ready.set_result(False)
            self._wake(None)
            for waiting in (self._seeked, self._tick):  # a seek or a look again in progress ends now
                if waiting is not None and not waiting.done():
                    waiting.set_result(None)

        def on_ended(_e):
            self._ended = True
            self._wake(None)

        self._listen("error", on_error)
        self._listen("ended", on_ended)
        self._listen("loadeddata", lambda _e: ready.done() or ready.set_result(True))
        self._listen("seeked", lambda _e: self._seeked.done() or self._seeked.set_result(True))
        self.video.muted = True
        self.video.src = self.url
        await ready
        if self._error:
            raise self._error
        self.width, self.height = int(self.video.videoWidth), int(self.video.videoHeight)
        if not (self.width and self.height):
            raise ClipError("the file has no video track")
        duration = float(self.video.duration or 0.0)
        # 0.0 = unknown: a browser-recorded WebM may say Infinity until it has been read to the end
        self.duration = duration if math.isfinite(duration) and duration > 0 else 0.0
        while True:
            if js.document.hidden:  # behind another tab no frame callback comes
                await self._probe(self._probe_by_seeking)
                if self._can_step():
                    break
                await self._until_shown()  # frames by frame callbacks: they come only while the page is shown
            await self._probe(self._probe_in_front)
            if self.step is not None or not js.document.hidden:
                break  # else hidden before the probe saw two frames: again, by seeking
        if hasattr(js, "VideoFrame") and not self._own_times:
            js.console.log("clip: this browser's VideoFrames do not carry the frame's own time; frames by frame callbacks")
        if self.rate is None:
            self.rate = 1.0  # until a step is known
        if self.step:
            self._recent_steps.append(self.step)
            self._follow_step(self.step)

    async def _probe(self, probe) -> None:
        self.step, own = await probe()
        self._own_times = own and await self._check_own_times()

    async def _probe_in_front(self):
        """_probe_step, then, where VideoFrames carry the frame's own time, the step after the first frame found by
        seeking. Frame callbacks come at most once per display refresh, fewer on a busy page, so a clip faster than
        that (slow motion, or a phone's variable frame rate) shows the playing probe only every second to sixth
        frame: a 240 fps clip was then read at 0.62x with a step of 21 ms, its 4 ms steps went unnoticed as gaps
        (1.5 x the step) and 17 of its 480 frames were lost unreported. The seeks start just past the frame the
        probe saw next, so a clip whose probe saw every frame costs two. A shorter step found so is kept only if
        _check_own_times holds with it (a VideoFrame that tells the playback position "finds" a frame at every seek)."""
        step, own = await self._probe_step()
        if step is None or not own:
            return step, own
        first = self._probe_times[0]
        try:
            later = await self._next_by_seeking(first, step)
        finally:
            self._stop_clock()
        if later is None or later - first >= step:
            return step, own
        self.step = later - first
        if await self._check_own_times():
            return self.step, True
        return step, own

    async def _probe_step(self, frames: int = 5):
        """The frame step (s): play a few frames with nothing else running (no frame is missed while the main thread
        is idle, unless they come faster than the display refreshes), take the smallest mediaTime step, pause there.
        Also whether a VideoFrame of the element, made in each frame callback, has the callback's mediaTime as its
        timestamp (Firefox: whole seconds of the playback position)."""
        times = []
        same = []
        loop = asyncio.get_event_loop()
        done = loop.create_future()

        def on_frame(_now, meta):
            times.append(float(meta.mediaTime))
            if hasattr(js, "VideoFrame"):  # this frame, or at a high frame rate a later one already (not earlier)
                same.append(self._shown_time() > times[-1] - 1e-3)
            if len(times) >= frames or self._ended:
                done.done() or done.set_result(True)
            else:
                self.video.requestVideoFrameCallback(create_once_callable(on_frame))

        self.video.requestVideoFrameCallback(create_once_callable(on_frame))
        self.video.playbackRate = 1.0
        await self.video.play()
        try:
            await asyncio.wait_for(done, SEEK_TIMEOUT_S)
        except asyncio.TimeoutError:
            pass
        self.video.pause()
        self._ended = False
        steps = [b - a for a, b in zip(times, times[1:]) if b > a]
        self._probe_times = times
        return (min(steps) if steps else None), len(same) >= 2 and all(same)

    async def _check_own_times(self) -> bool:
        """Whether, after a seek to the middle of the first frame, a VideoFrame of the element says that frame's time
        (Chromium), not the time sought (Safari: the playback position), within SEEKED_GRACE_S (right after "seeked"
        Chromium may still show the frame before)."""
        if self.step is None or self.step < 1e-3:  # no clip has 1,000 frames a second: not frame times
            return False
        first = self._probe_times[0]
        try:
            return (await self._seeked_at(first + 0.5 * self.step)
                    and await self._shows_soon(lambda t: abs(t - first) < 1e-3))
        finally:
            self._stop_clock()
            await self._seeked_at(self._probe_times[-1])  # where the probe left it: frames() then seeks to the start

    async def _probe_by_seeking(self):
        """The frame step (s) without frame callbacks: the smallest of the first PROBE_INTERVALS steps between frames,
        each found by seeking (_next_by_seeking). A VideoFrame without the frame's own time fails here (whole seconds:
        no later frame; the playback position: no end to the frames before a sought one) or in _check_own_times."""
        if not (hasattr(js, "VideoFrame") and await self._seeked_at(0.0)):
            return None, False
        try:
            if not await self._shows_soon(lambda t: t >= 0):  # no frame to show yet: _shown_time_if_any
                return None, False
            times = [self._shown_time()]
            for _ in range(PROBE_INTERVALS):
                later = await self._next_by_seeking(times[-1], times[-1] - times[-2] if len(times) > 1 else None)
                if later is None:
                    break
                times.append(later)
        finally:
            self._stop_clock()
        self._probe_times = times
        steps = [b - a for a, b in zip(times, times[1:])]
        return (min(steps), True) if steps else (None, False)

    async def _next_by_seeking(self, t: float, last_step: float | None):
        """The time of the first frame after the frame at `t`, None when none is found. A seek shows the last frame at
        or before its target: seek ahead of `t` (STEP_FACTOR times the last step, else PROBE_SEEK_S[0]), twice as far
        each time until a later frame shows; then just before that frame until the frame before it is the one at `t`
        (two frames may lie between `t` and the target: uneven steps, a variable frame rate). A time that is not where
        the seeks put it is no frame's own time (whole seconds, the playback position): None."""
        ahead, still = (STEP_FACTOR * last_step if last_step else PROBE_SEEK_S[0]), t  # `still`: a target showing t
        while True:
            if ahead > PROBE_SEEK_S[1] or (self.duration and t + ahead / 2 > self.duration) \
                    or not await self._seeked_at(t + ahead):
                return None
            if await self._shows_soon(lambda shown: shown > t + 1e-6):
                break
            still, ahead = t + ahead, ahead * 2
        found = self._shown_time()
        if not still < found <= t + ahead + 1e-6:
            return None
        for _ in range(MAX_PROBE_REFINE):
            before = await self._frame_before(found)
            if before is None or before > found - 1e-4 + 1e-6:
                return None
            if before <= t + 1e-6:
                return found
            found = before  # a frame between: the next one is earlier still
        # many frames between (a slow start, then a faster rate): look again from close by
        return await self._next_by_seeking(t, None) if last_step else None

    async def _until_shown(self) -> None:
        if not js.document.hidden:
            return
        js.console.log("clip: behind another tab and its frames cannot be read by seeking: waiting to be shown")
        js.document.getElementById("clip-summary").textContent = "Waiting for this tab to be shown to read the video"
        shown = asyncio.get_event_loop().create_future()
        listener = create_proxy(lambda _e: js.document.hidden or shown.done() or shown.set_result(None))
        js.document.addEventListener("visibilitychange", listener)
        try:
            await shown
        finally:
            js.document.removeEventListener("visibilitychange", listener)
            listener.destroy()

    def _shown_time_if_any(self) -> float:
        """_shown_time, or NaN (no `wanted` of _shows_soon holds for it) while the element has no frame to show: a
        VideoFrame of it then fails with "InvalidStateError: Invalid source state" (once in a full run of
        tests/test_page.py, a clip opened behind another tab: the clip failed)."""
        try:
            return self._shown_time()
        except JsException as error:
            if "InvalidStateError" not in str(error):
                raise
            return math.nan

    def _shown_time(self) -> float:
        """The timestamp of a VideoFrame of the element (the shown frame's own time where self._own_times)."""
        frame = js.VideoFrame.new(self.video)
        try:
            return frame.timestamp / 1e6
        finally:
            frame.close()

    # -- frames ----------------------------------------------------------------------------------

    async def _next_presented(self, start_playing: bool, timeout: float | None = None, after: float | None = None):
        """(mediaTime, presentedFrames, canvas) of the next presented frame, None at the end; NOT_RENDERED when none
        comes within `timeout` although the element shows a frame past `after` (presented unseen), or the page is
        hidden. A still frame held longer than `timeout` (a slideshow, a screen recording) is waited for."""
        loop = asyncio.get_event_loop()
        waiter = loop.create_future()
        self._frame_waiter = waiter
        self._frame_callback = self.video.requestVideoFrameCallback(create_once_callable(self._on_frame))
        if start_playing:
            if self.video.ended or self._ended:
                return None
            self.video.playbackRate = self.rate
            self._dropped_at_play = self._dropped()
            try:
                await self.video.play()
            except JsException as error:
                # a frame came before play() settled, and its callback paused the element: that frame is the answer
                if not (waiter.done() and str(error).startswith("AbortError")):
                    raise
        waited_since, late_before = js.performance.now(), False
        while True:
            try:
                result = await asyncio.wait_for(asyncio.shield(waiter), timeout) if timeout else await waiter
                break
            except asyncio.TimeoutError:
                now = js.performance.now()
                late = (now - waited_since) / 1000 > timeout + LATE_TIMER_S and not late_before
                waited_since, late_before = now, late
                if not self._can_step():  # frames only by frame callbacks (no VideoFrame with the frame's own time)
                    if js.document.hidden and not self._error:
                        # they stop behind another tab: the element must not play on unseen to its end
                        self.video.pause()
                        await self._until_shown()
                        waited_since = js.performance.now()
                        if not waiter.done():  # (its frame may have come as the page was shown again)
                            try:
                                await self.video.play()
                            except JsException as error:  # a frame came before play() settled and paused it
                                if not (waiter.done() and str(error).startswith("AbortError")):
                                    raise
                    elif start_playing and not late and not self._error:
                        self._hurry_through_still()  # in front a callback comes for every frame: a still one
                    continue
                if after is not None and not js.document.hidden and not self._error and (
                        late or self._shown_time() <= after + 1e-6):
                    if not late and start_playing:
                        self._hurry_through_still()
                    continue  # held up, or nothing new was presented (a still frame): not another tab in front
                self._frame_waiter = None
                self._cancel_frame_callback()  # else it pauses the element whenever the page is rendered again
                result = NOT_RENDERED
                break
        if self._error:
            raise self._error
        return result

    async def _went_by(self, still: float, t: float, unseen: int) -> bool:
        """Whether frames between the still frame and the frame at `t` went by unseen (counted, or one seek tells)."""
        if unseen:
            return True
        if not self._can_step():
            return True  # not known without the frames' own times: played again, as if
        self._gap_last = t, await self._frame_before(t)  # (as _seek_after looks for, when nothing went by)
        return self._gap_last[1] is None or self._gap_last[1] > still + 1e-6

    async def _play_again_from(self, still: float) -> None:
        """Play on from the still frame at `still` at the step's rate all along (no hurry this time)."""
        js.console.log(f"clip: frames after the still frame at {still:.3f} s went by; playing again")
        await self._resume_at(still)
        self._hurried, self._may_hurry, self._ended, self._fell_before = False, False, False, False
        self._fetch_next(still)

    async def _resume_at(self, t: float) -> None:
        """Move the playhead to the frame at `t` (paused), so that playback goes on after it."""
        if self._can_step():
            await self._seeked_at(t)
        else:
            again = await self._seek(t)
            if again is not None:
                self.recycle(again[2])

    def _hurry_through_still(self) -> None:
        if not self._may_hurry:
            return
        self._hurried = True
        try:
            self.video.playbackRate = max(self.rate, STILL_RATE)
        except JsException:  # a browser with a lower highest rate
            self.video.playbackRate = max(self.rate, MAX_RATE)

    def _cancel_frame_callback(self) -> None:
        if self._frame_callback is not None:
            self.video.cancelVideoFrameCallback(self._frame_callback)
            self._frame_callback = None

    async def _seek(self, t: float):
        """Seek (paused); the frame shown there, or None when the seek showed no new frame."""
        self.video.pause()
        loop = asyncio.get_event_loop()
        seeked = self._seeked = loop.create_future()
        waiter = loop.create_future()
        self._frame_waiter = waiter
        self.video.requestVideoFrameCallback(create_once_callable(self._on_frame))
        self.video.currentTime = t
        done, _ = await asyncio.wait([waiter, seeked], timeout=SEEK_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done() and seeked.done():
            done, _ = await asyncio.wait([waiter], timeout=SEEKED_GRACE_S)
        if self._error:
            raise self._error
        if not waiter.done():
            self._frame_waiter = None
            return None
        return waiter.result()

    async def frames(self):
        """Async iterator of (mediaTime, canvas); hand each canvas back with recycle()."""
        step = self.step  # smallest mediaTime step of the last RATE_WINDOW frames
        if js.document.hidden and self._can_step():  # no frame callback would come: by seeking from the first frame
            js.console.log(f"clip: opened behind another tab; frame step {step:.4f} s found by seeking")
            last_t, last_presented = self._probe_times[0] - 0.5 * step, None
            self._ahead = asyncio.get_event_loop().create_future()
            self._ahead.set_result(NOT_RENDERED)
        else:
            await self._until_shown()  # hidden, and frames come only by frame callbacks
            first = await self._seek(0.0)
            if first is None and 0 < self.duration <= SINGLE_FRAME_MAX_S and int(self.video.readyState) >= 2:
                t, canvas = self._copy_shown(float(self.video.currentTime))
                js.console.log(f"clip: one frame, at {t:.3f} s, shown from the start")
                yield t, canvas
                return
            if first is None:
                raise ClipError("no frame could be decoded from this file")
            last_t, last_presented = first[0], first[1]
            yield first[0], first[2]  # the next frame is fetched once this one is processed (below)
        while True:
            got = await (self._ahead or self._fetch_next(last_t))
            self._ahead = None
            if got is NOT_RENDERED:  # another tab in front: frames by seeking until it is rendered again
                async for t, canvas in self._step(last_t, step, until_rendered=True):
                    yield t, canvas
                    last_t = t
                if self._at_end:
                    return
                last_presented, self._hurried, self._fell_before = None, False, False
                self._fetch_next(last_t)
                continue
            if got is None:
                if self._hurried and self._may_hurry and (
                        not (self._can_step() and self.duration) or await self._frame_after(last_t)):
                    # Hurrying through a still frame ran to the end past the frames after it (all read by seeking, a
                    # seek each step of the still too, before: 56 s for 89 frames). Where that cannot be told (no
                    # frames' own times, a file of unknown length), played again too: slower, not frames lost.
                    await self._play_again_from(last_t)
                    last_presented = None
                    continue
                break
            t, presented, canvas = got
            if t <= last_t:
                self.recycle(canvas)  # the same frame again after a resume or seek
                last_presented = presented
                continue
            # Frames unseen: counted as dropped (Chromium may count a frame both dropped and presented), presented
            # without a callback, or replaced before the callback copied it
            unseen = max(self._dropped_at_frame - self._dropped_at_play,
                         presented - last_presented - 1 if last_presented is not None else 0)
            unseen += self._callback_frame_unseen
            if self._hurried and self._may_hurry and await self._went_by(last_t, t, unseen):
                # Played past frames while hurrying through a still one: played again from the still frame (one seek),
                # not one seek or two each (50 frames after a 2 s still took 37 s; with none counted unseen, a seek
                # each step of the still: 60, 22 s)
                self.recycle(canvas)
                await self._play_again_from(last_t)
                last_presented = None
                continue
            self._hurried, self._may_hurry = False, True
            jumped = unseen > 0
            gap = step is not None and t - last_t > GAP_FACTOR * step
            seek_step = step
            if jumped:  # assume evenly spaced frames in the gap: at most that step
                self._recent_steps.append((t - last_t) / (unseen + 1))
                step = seek_step = min(self._recent_steps)
            elif not gap and step is not None and t - last_t < FASTER * step and self._can_step():
                # The clip turned faster: a frame between may have been neither presented nor counted dropped
                # (24 then 60 fps at 1.25x: 1 of 108 frames, once in 24 traced runs). Costs a seek or two each time
                # the frame rate rises.
                gap, seek_step = True, (t - last_t) / 2
            # (not without the frames' own times: no FASTER check there would catch a rate that rises again)
            fell = gap and not jumped and t - last_t > FELL_FACTOR * step and self._can_step()
            if jumped or gap:
                async for missing_t, missing_canvas in self._missing(last_t, t, seek_step):
                    fell = False
                    yield missing_t, missing_canvas
                    self._recent_steps.append(missing_t - last_t)
                    last_t = missing_t
                await self._resume_at(t)  # so playback goes on after the current frame
            if fell and self._fell_before:  # twice in a row: one such gap alone is a still frame
                js.console.log(f"clip: the frame rate fell at {t:.3f} s: frame step {step:.4f} -> {t - last_t:.4f} s")
                self._recent_steps.clear()
                fell = False
            self._fell_before = fell
            self._recent_steps.append(t - last_t)
            step = min(self._recent_steps)
            self._follow_step(step)
            last_t, last_presented = t, None if (jumped or gap) else presented
            if self._processing_s:  # else fetched once this frame is processed: frames presented meanwhile
                self._fetch_next(last_t)  # would each be a seek (the first frame's time, with warm-up, is not kept)
            handed_out = js.performance.now()
            yield t, canvas
            self._processing_s.append((js.performance.now() - handed_out) / 1000)
        # frames presented after the last callback, right before "ended" (all the rest when playback ran to the end
        # unseen behind another tab before NOT_RENDERED_AFTER_S had passed)
        if step is not None:
            async for missing_t, missing_canvas in self._missing(last_t, math.inf, step):
                yield missing_t, missing_canvas

    def _fetch_next(self, after: float):
        """Resume playback for the next frame now, while the caller processes this one (it is paused and copied the
        moment it is presented, as always); awaited before anything else moves the playhead. 17.8 -> 21.7 frames
        per second on a 30 fps clip (docs/BENCHMARKS.md section 5, table H)."""
        # without stepping by seeking, the timeout only checks for another tab in front (then it waits to be shown)
        timeout = NOT_RENDERED_AFTER_S
        self._ahead = asyncio.ensure_future(self._next_presented(True, timeout, after))
        return self._ahead

    def _can_step(self) -> bool:
        return self.step is not None and self._own_times

    def _missing(self, after: float, before: float, step: float):
        """The frames between two (before=inf: after the last one), by seeking."""
        return self._step(after, step, before) if self._can_step() else self._fill_gap(after, before, step)

    async def _fill_gap(self, after: float, before: float, step: float):
        t = after
        while t + STEP_FACTOR * step < before:
            await self._until_shown()  # these seeks need frame callbacks, which stop behind another tab
            got = await self._seek(t + STEP_FACTOR * step)
            if got is None or not (t < got[0] < before):
                js.console.log(f"clip gap ({after:.4f}, {before:.4f}) step {step:.4f}: seek to "
                               f"{t + STEP_FACTOR * step:.4f} gave {None if got is None else got[0]}")
                if got is not None:
                    self.recycle(got[2])
                self.unrecovered += 1 if got is None and before != float("inf") else 0  # past the end: none due
                return  # no frame there (variable frame rate): the gap was not a drop
            self.dropped_then_recovered += 1
            t = got[0]
            yield got[0], got[2]

    # -- seeking with WebCodecs: also while the page is not rendered ---------------------------------

    async def _step(self, after: float, step: float, before: float = math.inf, until_rendered: bool = False):
        """(mediaTime, canvas) of each frame in (after, before), one seek each, the next seek running while the caller
        processes a frame; with `until_rendered` (the page is not rendered) until frame callbacks come again."""
        self.video.pause()
        rendered, seen = 0, self._callbacks
        self.stepping = until_rendered
        if until_rendered:
            js.console.log(f"clip: page not rendered (no frame callback for {NOT_RENDERED_AFTER_S} s) after "
                           f"{after:.3f} s; reading frames by seeking")
            self._counting += 1
            generation = self._counting
            self.video.requestVideoFrameCallback(create_once_callable(lambda *_: self._count_callback(generation)))
        self._ahead = asyncio.ensure_future(self._seek_after(after, step, before))
        try:
            while True:
                got = await self._ahead
                self._ahead = None
                if got is None:
                    return
                if self.shorter_step:  # a frame that seeking one step ahead would have skipped
                    js.console.log(f"clip: frame step {step:.4f} -> {self.shorter_step:.4f} s at {got[0]:.3f} s")
                    step, self.shorter_step = min(step, self.shorter_step), None
                rendered, seen = (rendered + 1 if self._callbacks > seen else 0), self._callbacks
                back = until_rendered and rendered >= FRONT_AGAIN and not js.document.hidden
                if not back:
                    self._ahead = asyncio.ensure_future(self._seek_after(got[0], step, before))
                if until_rendered:
                    self.stepped += 1
                else:
                    self.dropped_then_recovered += 1
                yield got
                if back:
                    js.console.log(f"clip: rendered again after {got[0]:.3f} s ({self.stepped} frames read by "
                                   "seeking so far)")
                    return
        finally:
            self.stepping = False
            self._stop_clock()

    def _count_callback(self, generation: int) -> None:
        if generation != self._counting or self._closed:
            return  # an earlier stepping run's chain, or a closed reader
        self._callbacks += 1
        if self.stepping:
            self.video.requestVideoFrameCallback(create_once_callable(lambda *_: self._count_callback(generation)))

    async def _seeked_at(self, t: float) -> bool:
        """Seek (paused); whether it finished ("seeked")."""
        self.video.pause()
        seeked = self._seeked = asyncio.get_event_loop().create_future()
        self.video.currentTime = t
        await asyncio.wait([seeked], timeout=SEEK_TIMEOUT_S)
        if not seeked.done() and self.video.seeking and not self._error:  # slow (a long stretch to decode), not stuck
            await asyncio.wait([seeked], timeout=4 * SEEK_TIMEOUT_S)
        if self._error:
            raise self._error
        return seeked.done()

    async def _seek_after(self, after: float, step: float, before: float = math.inf):
        """(mediaTime, canvas) of the first frame in (after, before), by seeking; None when there is none (also at the
        end of the file: then self._at_end)."""
        target, empty = after + STEP_FACTOR * step, 0
        if before < math.inf:  # a gap: up to the frame just before its end at least (a count of frames unseen was short)
            target = min(target, before - 1e-4)
            # Most gaps hold no frame (the frame rate fell: a phone's variable rate, the end of a slow-motion stretch).
            # One seek just before the gap's end tells: otherwise a seek one step in waited SEEKED_GRACE_S for a frame
            # that is not there (about 1 s a frame for the 30 frames of RATE_WINDOW after a rate fell 8x).
            if self._gap_last is None or self._gap_last[0] != before:
                self._gap_last = before, await self._frame_before(before)
            last = self._gap_last[1]  # the gap's last frame; each frame read in it is one seek, no look back again
            if last is not None and last <= after + 1e-6:
                return None  # no frame in the gap (None: not known, looked for below)
        while target < before:
            if not await self._seeked_at(target):
                if before < math.inf:
                    self.unrecovered += 1  # a gap's frame that could not be read
                self._seek_failures += 1
                if self._seek_failures >= MAX_SEEK_FAILURES:
                    raise ClipError(f"seeking in this file stopped working after {after:.2f} s")
                return None
            self._seek_failures = 0
            # Right after "seeked" the element may still show the frame before (seen in Chromium), which after playback
            # ran on unseen can also be a later one: only a frame in (after, target] is the one sought.
            sought = lambda t: after < t <= target + 1e-6  # noqa: E731
            if await self._shows_soon(sought):
                t, canvas = self._copy_shown()  # paused: the frame just seen
                if sought(t):
                    return await self._first_since(after, t, canvas)
                self.recycle(canvas)
            if before < math.inf:
                if target >= before - 2e-4:
                    if self._gap_last[1] is not None and self._gap_last[1] > after + 1e-6:
                        self.unrecovered += 1  # a frame known to be there (the look before) did not show in time
                    return None  # no frame up to the one at `before`: the gap is closed, or was not a drop
                # nothing up to `target`: the step known is too short there (a variable frame rate, or one guessed from
                # a count of frames unseen); a frame lies further in the gap (checked above)
                target = min(target + step, before - 1e-4)
                continue
            empty += 1
            if self.video.ended or float(self.video.currentTime) < target - 1e-4:  # a seek past the end was clamped
                at_end = True
            elif self.duration:  # past it, or no frame between `after` and it (checked once)
                at_end = target > self.duration + step or (empty == 1 and not await self._frame_after(after))
            else:  # a file of unknown length
                at_end = empty >= MAX_EMPTY_STEPS
            if at_end:
                self._at_end = True
                return None
            target += step  # no frame up to here (a longer step): at most one frame lies in each step
        return None

    async def _first_since(self, after: float, t: float, canvas):
        """(time, canvas) of the first frame after `after`, given the frame at `t` that a seek showed. A seek shows the
        last frame at or before its target: with steps shorter than the one known (a variable frame rate; a phone
        whose rate rises as the light gets better) two frames lie there. One seek just before `t` shows the frame
        before it: `after`'s, or one that was about to be skipped (then the step known is made shorter)."""
        for _ in range(MAX_PROBE_REFINE):
            earlier = await self._frame_before(t)
            if earlier is None or earlier <= after + 1e-6:
                break  # `after`'s frame, or none shows (the first frame), or not known: keep it
            self.shorter_step = min(self.shorter_step or math.inf, t - earlier)
            self.recycle(canvas)
            t, canvas = self._copy_shown()  # paused: the earlier frame
        return t, canvas

    async def _frame_before(self, t: float):
        """The time of the frame before the one at `t` (one seek just before it; right after "seeked" the element may
        still show the frame at `t`), None when none shows in time (the first frame, or a seek that did not finish)."""
        if await self._seeked_at(t - 1e-4) and await self._shows_soon(lambda shown: shown < t - 1e-6):
            return self._shown_time()
        return None

    async def _frame_after(self, after: float) -> bool:
        """Whether the file's last frame comes after `after`: one seek to its end (a file whose audio outlasts its
        video would otherwise be stepped through to its duration, a look-again for each step)."""
        if not await self._seeked_at(self.duration):
            return True  # not known: go on stepping
        return await self._shows_soon(lambda t: t > after + 1e-6)

    async def _shows_soon(self, wanted) -> bool:
        """Whether, within SEEKED_GRACE_S of a seek, the element shows a frame whose own time is `wanted` (right after
        "seeked" it may still show the frame before). Timed, not counted in ticks: they queue up while a frame runs."""
        since = js.performance.now()
        while not wanted(self._shown_time_if_any()):
            if js.performance.now() - since > SEEKED_GRACE_S * 1000:
                return False
            await self._clock_tick()
            if self._error:
                raise self._error
        return True

    async def _clock_tick(self) -> None:
        """The worker clock's next tick (started on first use, stopped when a seeking run ends)."""
        if self._clock is None:
            self._clock = js.Worker.new("./ticker.js")
            self._tick_proxy = create_proxy(lambda _e: self._tick is not None and not self._tick.done()
                                            and self._tick.set_result(None))
            self._clock.onmessage = self._tick_proxy
            self._clock.postMessage(CLOCK_MS)
        self._tick = asyncio.get_event_loop().create_future()
        await self._tick

    def _stop_clock(self) -> None:
        if self._clock is not None:
            self._clock.terminate()
            self._clock.onmessage = None
            self._tick_proxy.destroy()
            self._clock = None
