"""Keeps the screen on while the page watches (Screen Wake Lock API).

A laptop or phone left alone dims and locks its screen after a few minutes without input, and the camera and the
page stop with it: exactly when a drowsy person sits still. The browser drops the lock whenever the page is hidden,
so it is asked for again when the page comes back. `#wake[data-state]`: off, on, unavailable, failed; the note is
shown only when the screen may go off.
"""
from __future__ import annotations

import asyncio

import js
from pyodide.ffi import create_proxy

MAY_SLEEP = ("This browser may dim and lock the screen while you sit still, and the camera stops then: keep the "
             "screen on in the system's settings.")


class ScreenWake:
    def __init__(self):
        self.wanted = False
        self.lock = None
        self._requesting = False  # one request at a time: two would leave one lock nobody releases
        self._on_visible = create_proxy(self._visibility_changed)
        self._on_lost = create_proxy(self._lost)
        js.document.addEventListener("visibilitychange", self._on_visible)

    def hold(self) -> None:
        self.wanted = True
        asyncio.ensure_future(self._acquire())

    def release(self) -> None:
        self.wanted = False
        lock, self.lock = self.lock, None
        if lock is not None and not lock.released:
            lock.release()
        self._show("off")

    def _held(self) -> bool:
        return self.lock is not None and not self.lock.released

    async def _acquire(self) -> None:
        wake = getattr(js.navigator, "wakeLock", None)
        if wake is None:
            return self._show("unavailable", MAY_SLEEP)
        if self._held() or self._requesting:
            return
        self._requesting = True
        try:
            lock = await wake.request("screen")
        except Exception as error:  # e.g. NotAllowedError: hidden page, battery saver, a policy
            if self.wanted:
                self._show("failed", f"{MAY_SLEEP} ({getattr(error, 'name', 'error')})")
            return
        finally:
            self._requesting = False
        if not self.wanted:  # stopped while the request was pending
            await lock.release()
            return
        self.lock = lock
        lock.addEventListener("release", self._on_lost)
        self._show("on")

    def _lost(self, _event) -> None:
        """The browser let go of the lock (page hidden, battery saver): say so, and ask again if it can be had now."""
        if not self.wanted or self._held():
            return
        self._show("off")
        if js.document.visibilityState == "visible":
            asyncio.ensure_future(self._acquire())

    def _visibility_changed(self, _event) -> None:
        if self.wanted and js.document.visibilityState == "visible":
            asyncio.ensure_future(self._acquire())

    @staticmethod
    def _show(state: str, text: str = "") -> None:
        note = js.document.getElementById("wake")
        note.dataset.state = state
        note.textContent = text
        note.hidden = not text
