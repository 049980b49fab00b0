"""How the microsleep alarm reaches the person beyond the red banner: a beep (with a vibration on phones), and, if
they switch it on, a system notification while another tab or window is in front (a muted laptop, a beep not heard).
"""
from __future__ import annotations

import asyncio

import js
from pyodide.ffi import create_proxy

from web_runtime import js_obj

NOTIFICATION_TITLE = "⚠ Eyes closed — wake up!"
NOTIFICATION_BODY = "Your eyes have been closed longer than the alarm delay."
NOTIFICATION_TAG = "eyestate-alarm"  # a new alarm replaces the last one instead of piling up
VIBRATION_MS = 300


class Beeper:
    """Audible microsleep alarm (WebAudio). The AudioContext is made on the Start click (a user
    gesture), otherwise browsers keep it muted."""

    def __init__(self):
        self.ctx = None
        self.last_beep = -1e9
        self.enabled = True  # the "Sound" setting; the alarm stays visible without it
        self.beeps = 0  # window.eyestateBeeps, for tests

    def unlock(self) -> None:
        if self.ctx is None and hasattr(js.window, "AudioContext"):
            self.ctx = js.window.AudioContext.new()
        if self.ctx is not None and self.ctx.state == "suspended":
            self.ctx.resume()

    def update(self, active: bool, now: float) -> None:
        if not active or not self.enabled or self.ctx is None or now - self.last_beep < 0.8:
            return
        self.last_beep = now
        self.beep()

    def beep(self) -> None:
        if self.ctx is None:
            return
        self.beeps += 1
        js.window.eyestateBeeps = self.beeps
        vibrate = getattr(js.navigator, "vibrate", None)
        if vibrate is not None:  # phones; ignored where there is nothing to vibrate
            try:
                js.navigator.vibrate(VIBRATION_MS)
            except Exception:
                pass
        osc = self.ctx.createOscillator()
        gain = self.ctx.createGain()
        osc.type = "square"
        osc.frequency.value = 880
        start = self.ctx.currentTime
        gain.gain.setValueAtTime(0.0001, start)
        gain.gain.exponentialRampToValueAtTime(0.25, start + 0.02)
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.35)
        osc.connect(gain)
        gain.connect(self.ctx.destination)
        osc.start(start)
        osc.stop(start + 0.4)


def notifications_offered() -> bool:
    return hasattr(js.window, "Notification")


def notification_permission() -> str:
    """"granted", "denied", "default" (not asked yet) or "unsupported"."""
    return str(js.window.Notification.permission) if notifications_offered() else "unsupported"


class Notifier:
    """One system notification per alarm, shown only while the page is out of sight (in front, the banner says it),
    closed when the eyes open. Clicking it brings the page back. `on_unavailable(reason)` hears when the browser
    would not show one."""

    def __init__(self, on_unavailable=None):
        self.enabled = False  # the setting, and the browser's permission
        self.background = False  # the frame came from the background clock: the page is not being rendered
        self.current = None  # the notification of the alarm in progress
        self.alarm_on = False
        self.on_unavailable = on_unavailable or (lambda reason: None)
        self._on_click = create_proxy(self._clicked)

    def update(self, active: bool) -> None:
        if active and not self.alarm_on and self.enabled and self.out_of_sight():
            self._show()
        if not active and self.current is not None:
            try:
                self.current.close()
            except Exception:
                pass
            self.current = None
        self.alarm_on = active

    def out_of_sight(self) -> bool:
        """Another tab in front (hidden; or not rendered, which is all some browsers say), or another window focused."""
        return bool(self.background or js.document.hidden or not js.document.hasFocus())

    def _show(self) -> None:
        if notification_permission() != "granted":
            return
        options = js_obj({"body": NOTIFICATION_BODY, "tag": NOTIFICATION_TAG, "renotify": True,
                          "icon": "icons/icon-192.png"})  # phones show PNG icons, not SVG
        try:
            self.current = js.window.Notification.new(NOTIFICATION_TITLE, options)
            self.current.onclick = self._on_click
        except Exception as error:
            # Android's Chrome shows notifications only through a service worker (sw.js, which also handles the click)
            workers = getattr(js.navigator, "serviceWorker", None)
            if workers is None:
                self._unavailable(error)
                return
            self.current = WorkerNotification(workers, options, self._unavailable)

    def _unavailable(self, error) -> None:
        js.console.warn(f"system notification not shown: {error}")
        self.on_unavailable(str(error))

    def _clicked(self, _event) -> None:
        js.window.focus()
        if self.current is not None:
            self.current.close()
            self.current = None


class WorkerNotification:
    """The alarm's notification shown by the service worker (sw.js), closed through its registration once shown."""

    latest = None  # the newest one: notifications share one tag, so closing by tag closes the newest

    def __init__(self, workers, options, on_fail):
        self.workers = workers
        WorkerNotification.latest = self
        self.shown = asyncio.ensure_future(self._show(options, on_fail))

    async def _show(self, options, on_fail) -> bool:
        try:
            registration = await self.workers.getRegistration()
            if not registration or not registration.active:
                raise RuntimeError("no service worker to show it (the page is not saved on this device)")
            await registration.showNotification(NOTIFICATION_TITLE, options)
            return True
        except Exception as error:
            on_fail(error)
            return False

    def close(self) -> None:
        asyncio.ensure_future(self._close())

    async def _close(self) -> None:
        try:
            if not await self.shown:  # an alarm that ends at once: close what was shown, not what was not there yet
                return
            registration = await self.workers.getRegistration()
            shown = await registration.getNotifications(js_obj({"tag": NOTIFICATION_TAG}))
        except Exception as error:
            js.console.warn(f"alarm notification not closed: {error}")
            return
        if WorkerNotification.latest is self:  # a newer alarm's notification replaced this one: leave it
            for notification in shown:
                notification.close()
