"""The page's named app states: one state and one human message per situation.

`#status[data-state]` shows `AppStateMachine.state`; the text shows `message` (+ `detail`).
Standard library only (runs in Pyodide).

A live picture too dark to find a face in (a privacy shutter, a hand over the lens, a dark room) is "camera-dark",
not "no-face": `on_frame_result` gets the picture's mean luma when no face was found (`preprocess.mean_luma`). A face
whose eyes are crushed to black (`FrameResult.eyes_dark`) is "eyes-dark": the eyes are still judged, but closed eyes
may read as open there, and the user is told so instead of "Watching your eyes". Eyes blown out to white by too much
light (`FrameResult.eyes_bright`) are "eyes-bright" alike: there open eyes may read as closed. Eyes only a few pixels
wide (`FrameResult.eyes_small`: the person far from the camera) are "eyes-small": blinks may be miscounted there.

Camera errors (getUserMedia DOMException names) map to states with `error_to_state`. A camera that
another app or tab holds (NotReadableError, AbortError) is reported as "camera-ended" — the camera
could not deliver frames — but with its own "busy" message, so the user knows what to close.
"""
from __future__ import annotations

import time

LOADING = "loading"
READY = "ready"
REQUESTING_CAMERA = "requesting-camera"
RUNNING = "running"
CAMERA_DENIED = "camera-denied"
NO_CAMERA = "no-camera"
CAMERA_ENDED = "camera-ended"
CAMERA_STALLED = "camera-stalled"
NO_FACE = "no-face"
CAMERA_DARK = "camera-dark"
EYES_DARK = "eyes-dark"
EYES_BRIGHT = "eyes-bright"
EYES_SMALL = "eyes-small"
UNCERTAIN = "uncertain"
MODEL_FAILED = "model-failed"
PROCESSING_CLIP = "processing-clip"
CLIP_DONE = "clip-done"
CLIP_FAILED = "clip-failed"
CLIP_STOPPED = "clip-stopped"
CLIP_CUT = "clip-cut"

MESSAGES = {
    LOADING: "Loading the models…",
    READY: "Ready. Press Start camera, or process a video file.",
    REQUESTING_CAMERA: "Waiting for camera permission… Allow access in the browser prompt.",
    RUNNING: "Watching your eyes.",
    CAMERA_DENIED: "Camera access was blocked. Allow it in the address bar and press Start camera.",
    NO_CAMERA: "No camera was found. Connect a camera and press Start camera, or choose a video file.",
    CAMERA_ENDED: "The camera stopped. Check that it is connected and press Start camera.",
    CAMERA_STALLED: "The camera picture is not changing: the camera may be covered or frozen. Your eyes are not "
                    "being watched. Check the camera, or press Stop, then Start camera.",
    NO_FACE: "No face in view. Face the camera with your whole face in the picture.",
    CAMERA_DARK: "The camera picture is too dark to see a face. Uncover the camera or add light.",
    EYES_DARK: "Too dark to see your eyes well: closed eyes and blinks may be missed. Add light in front of you.",
    EYES_BRIGHT: "Too much light on your eyes: the picture is washed out, so blinks may be miscounted. Turn the light "
                 "down or away from your face.",
    EYES_SMALL: "You are far from the camera: your eyes are only a few pixels wide in the picture, so blinks may be "
                "miscounted. Move closer.",
    UNCERTAIN: "Your eyes are not clearly visible. Move closer, face the camera, or add light.",
    MODEL_FAILED: "The models could not be loaded or run. Reload the page to try again.",
    PROCESSING_CLIP: "Processing your video file on this device…",
    CLIP_DONE: "Video processed. Download its CSV, or choose another file.",
    CLIP_FAILED: "This video file could not be read. Try another file (MP4 or WebM).",
    CLIP_STOPPED: "Stopped. The results and the CSV cover the part processed so far.",
    CLIP_CUT: "The file could not be read to its end (it may be damaged or cut off). The results and the CSV cover the "
              "part before that.",
}
STATES = tuple(MESSAGES)

CAMERA_BUSY_MESSAGE = ("The camera is in use by another app or tab. Close it there and press Start camera.")
PICKED_CAMERA_GONE_MESSAGE = ("The camera picked in the list is not there any more (unplugged or turned off). "
                              "Press Start camera to use another one.")
UNSUPPORTED_MESSAGE = ("This browser cannot open a camera on this page (it needs https:// or "
                       "localhost). You can still choose a video file.")

# States the per-frame results move between.
LIVE_STATES = (RUNNING, NO_FACE, UNCERTAIN, CAMERA_DARK, EYES_DARK, EYES_BRIGHT, EYES_SMALL)
_CAMERA_PROBLEMS = (CAMERA_DENIED, NO_CAMERA, CAMERA_ENDED)
_AFTER_LIVE = {*LIVE_STATES, CAMERA_STALLED, CAMERA_ENDED, READY, REQUESTING_CAMERA, PROCESSING_CLIP}

TRANSITIONS = {
    LOADING: {READY},
    READY: {REQUESTING_CAMERA, PROCESSING_CLIP, LOADING},
    REQUESTING_CAMERA: {RUNNING, READY, PROCESSING_CLIP, *_CAMERA_PROBLEMS},  # a file picked during the prompt
    RUNNING: _AFTER_LIVE,
    NO_FACE: _AFTER_LIVE,
    UNCERTAIN: _AFTER_LIVE,
    CAMERA_DARK: _AFTER_LIVE,
    EYES_DARK: _AFTER_LIVE,
    EYES_BRIGHT: _AFTER_LIVE,
    EYES_SMALL: _AFTER_LIVE,
    CAMERA_STALLED: _AFTER_LIVE,  # new pictures again: running, then the frame results say what they see
    CAMERA_DENIED: {REQUESTING_CAMERA, PROCESSING_CLIP, READY},
    NO_CAMERA: {REQUESTING_CAMERA, PROCESSING_CLIP, READY},
    CAMERA_ENDED: {REQUESTING_CAMERA, PROCESSING_CLIP, READY},
    PROCESSING_CLIP: {CLIP_DONE, CLIP_FAILED, CLIP_STOPPED, CLIP_CUT, READY},
    CLIP_DONE: {PROCESSING_CLIP, REQUESTING_CAMERA, READY},
    CLIP_FAILED: {PROCESSING_CLIP, REQUESTING_CAMERA, READY},
    CLIP_STOPPED: {PROCESSING_CLIP, REQUESTING_CAMERA, READY},
    CLIP_CUT: {PROCESSING_CLIP, REQUESTING_CAMERA, READY},
    MODEL_FAILED: {LOADING},
}
# A model can fail to load or to run at any moment.
for _targets in TRANSITIONS.values():
    _targets.add(MODEL_FAILED)

# Mean luma (0-255, BT.601) of a picture without a face below which it is camera-dark; it stays dark until the
# luma is back above DARK_EXIT_LUMA (hysteresis: a picture near the line does not flicker). Measured on 64x48 area
# averages: the darkest of the 3,667 frames of the shared videos is 55; darkened by a gain, every 15th focus-video
# frame still has its face found at ~3 (x0.05: 99 %), hardly at ~2 (x0.035: 5-7 %); a covered lens (black plus the
# gain's sensor noise, clipped; simulated, sigma 8-24) gives 3-10. The exit stays below the x0.3 "dark" camera
# of docs/BENCHMARKS.md (16.5-19.5), on which faces are found on every frame.
DARK_LUMA = 12.0
DARK_EXIT_LUMA = 16.0
_NO_FACE_STATES = (NO_FACE, CAMERA_DARK)

_ERROR_STATES = {
    "NotAllowedError": CAMERA_DENIED,
    "PermissionDeniedError": CAMERA_DENIED,   # old Chrome name
    "SecurityError": CAMERA_DENIED,
    "NotFoundError": NO_CAMERA,
    "DevicesNotFoundError": NO_CAMERA,        # old Chrome name
    "OverconstrainedError": NO_CAMERA,
    "ConstraintNotSatisfiedError": NO_CAMERA,  # old Chrome name
    "NotSupportedError": NO_CAMERA,            # no navigator.mediaDevices (insecure context)
    "NotReadableError": CAMERA_ENDED,          # busy elsewhere or hardware error
    "TrackStartError": CAMERA_ENDED,           # old Chrome name of NotReadableError
    "AbortError": CAMERA_ENDED,
    "ended": CAMERA_ENDED,                     # the track's "ended" event
}
_ERROR_MESSAGES = {
    "NotReadableError": CAMERA_BUSY_MESSAGE,
    "TrackStartError": CAMERA_BUSY_MESSAGE,
    "AbortError": CAMERA_BUSY_MESSAGE,
    "NotSupportedError": UNSUPPORTED_MESSAGE,
}


def error_to_state(name: str) -> str:
    """getUserMedia DOMException name (or "ended") -> app state. Unknown names -> camera-ended."""
    return _ERROR_STATES.get(name, CAMERA_ENDED)


def error_message(name: str) -> str:
    """The human message for a camera error name."""
    if name in _ERROR_MESSAGES:
        return _ERROR_MESSAGES[name]
    message = MESSAGES[error_to_state(name)]
    if name not in _ERROR_STATES:
        message = f"The camera could not start ({name}). Press Start camera to try again."
    return message


class InvalidTransition(ValueError):
    pass


class AppStateMachine:
    """Current app state, its message and a detail line (e.g. loading progress).

    `on_change(machine)` is called after every change of state, message or detail.
    """

    def __init__(self, debounce_s: float = 0.4, on_change=None, clock=time.monotonic, stall_after_s: float = 2.0):
        if debounce_s < 0 or stall_after_s <= 0:
            raise ValueError(f"expected debounce_s >= 0 and stall_after_s > 0 seconds, got {debounce_s}, {stall_after_s}")
        self.debounce_s = debounce_s
        self.stall_after_s = stall_after_s
        self._same_since: float | None = None  # when the camera's picture stopped changing
        self.on_change = on_change
        self._clock = clock
        self.state = LOADING
        self.message = MESSAGES[LOADING]
        self.detail = ""
        self._candidate: str | None = None
        self._candidate_since = 0.0
        self._leaving: dict | None = None  # frames per target since the last frame that agreed with the state
        self._leaving_since = 0.0

    def can_go(self, state: str) -> bool:
        return state == self.state or state in TRANSITIONS[self.state]

    def go(self, state: str, detail: str = "", message: str | None = None) -> bool:
        """Move to `state` (staying is allowed, to update the detail). Returns True if anything changed.
        Raises InvalidTransition for a move the page should never make."""
        if state not in MESSAGES:
            raise InvalidTransition(f"unknown app state {state!r}; expected one of {STATES}")
        if not self.can_go(state):
            allowed = sorted(TRANSITIONS[self.state])
            raise InvalidTransition(f"cannot go from {self.state!r} to {state!r}; allowed: {allowed}")
        message = message or MESSAGES[state]
        changed = (state, message, detail) != (self.state, self.message, self.detail)
        self.state, self.message, self.detail = state, message, detail
        self._candidate = self._leaving = None
        if state not in LIVE_STATES:
            self._same_since = None  # a stall is timed within one stretch of live pictures
        if changed and self.on_change is not None:
            self.on_change(self)
        return changed

    def camera_error(self, name: str, picked: bool = False) -> str:
        """Enter the state for a getUserMedia / track error name, with its specific message. `picked`: the request
        asked for exactly the camera picked in the list, so "not found" means that camera, not every camera."""
        state = error_to_state(name)
        gone = picked and state == NO_CAMERA and name != "NotSupportedError"
        self.go(state, message=PICKED_CAMERA_GONE_MESSAGE if gone else error_message(name))
        return state

    def on_camera_picture(self, changed: bool, t: float | None = None) -> str:
        """Each picture read from the live camera: `changed` is False when it is identical to the one before. A real
        camera's pictures always differ (sensor noise); the same picture for `stall_after_s` seconds means the
        camera froze: camera-stalled, left again by the first new picture."""
        now = self._clock() if t is None else t
        if changed:
            self._same_since = None
            if self.state == CAMERA_STALLED:
                self.go(RUNNING)
        elif self.state in LIVE_STATES:
            if self._same_since is None:
                self._same_since = now
            elif now - self._same_since >= self.stall_after_s:
                self.go(CAMERA_STALLED)
        return self.state

    def on_frame_result(self, face_found: bool, eyes_known: bool, confidence_ok: bool,
                        t: float | None = None, luma: float | None = None, eyes_dark: bool = False,
                        eyes_bright: bool = False, eyes_small: bool = False) -> str:
        """Moves between running / no-face / uncertain / camera-dark / eyes-dark / eyes-bright / eyes-small once the
        new situation has lasted `debounce_s` seconds (t defaults to the clock). `luma`: the picture's mean luma,
        needed only without a face (None: not measured, never dark); `eyes_dark`, `eyes_bright`, `eyes_small`:
        FrameResult's. Ignored in any other state."""
        if self.state not in LIVE_STATES:
            return self.state
        now = self._clock() if t is None else t
        if not face_found:
            dark_below = DARK_EXIT_LUMA if self.state == CAMERA_DARK else DARK_LUMA
            target = CAMERA_DARK if luma is not None and luma < dark_below else NO_FACE
        elif eyes_dark:  # the likely cause of any doubt too
            target = EYES_DARK
        elif eyes_bright:
            target = EYES_BRIGHT
        elif eyes_small:
            target = EYES_SMALL
        elif not (eyes_known and confidence_ok):
            target = UNCERTAIN
        else:
            target = RUNNING
        if target == self.state:
            self._candidate = self._leaving = None
            return self.state
        if self._leaving is None:
            self._leaving, self._leaving_since = {}, now
        self._leaving[target] = self._leaving.get(target, 0) + 1
        if self._candidate in _NO_FACE_STATES and target in _NO_FACE_STATES:
            self._candidate = target  # one situation, no face: a picture flickering round the dark line keeps its time
        elif target != self._candidate:
            self._candidate, self._candidate_since = target, now
        if now - self._candidate_since >= self.debounce_s:
            self.go(target)
        elif now - self._leaving_since >= 2 * self.debounce_s and sum(self._leaving.values()) >= 3:
            # Two situations taking turns (a face found on two frames of three, and eyes unknown on those) never
            # last debounce_s each, yet no frame agreed with the state shown: the one seen most often is said (a tie:
            # this frame's). Three frames at least: at 1 fps two frames are one change, left to the debounce.
            self.go(max(self._leaving, key=lambda s: (self._leaving[s], s == target)))
        return self.state

    def to_dict(self) -> dict:
        return {"state": self.state, "message": self.message, "detail": self.detail}
