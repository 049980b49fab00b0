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
        self._on_visible = create_proxy(self._visibility_changed)
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

    async def _acquire(self) -> None:
        wake = getattr(js.navigator, "wakeLock", None)
        if wake is None:
            return self._show("unavailable", MAY_SLEEP)
        if self.lock is not None and not self.lock.released:
            return
        try:
            lock = await wake.request("screen")
        except Exception as error:  # e.g. NotAllowedError: hidden page, battery saver, a policy
            if self.wanted:
                self._show("failed", f"{MAY_SLEEP} ({getattr(error, 'name', 'error')})")
            return
        if not self.wanted:  # stopped while the request was pending
            await lock.release()
            return
        self.lock = lock
        self._show("on")

    def _visibility_changed(self, _event) -> None:
        if self.wanted and js.document.visibilityState == "visible":
            asyncio.ensure_future(self._acquire())

    @staticmethod
    def _show(state: str, text: str = "") -> None:
        note = js.document.getElementById("wake")
        note.dataset.state = state
        note.textContent = text
        note.hidden = not text
