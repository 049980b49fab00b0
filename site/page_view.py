"""Everything the page shows: status, loading list, per-eye cards, metrics, overlay, timeline, alarm.

DOM attributes follow the contract in docs/DESIGN.md. Only changed values are written (each DOM
write is an FFI call; the frame loop calls `render` 30 times a second).
"""
from __future__ import annotations

from collections import deque

import js

from eyecore.temporal import UNKNOWN

EYE_COLOURS = {"left": "#2f80ed", "right": "#e2761b"}
STATE_COLOURS = {"open": "#1e9e5a", "closed": "#d93b3b", "unknown": "#8a8f98"}
# The labels' text on the video, on LABEL_BOX: lighter, at least 5.2:1 even where the picture behind is white
LABEL_COLOURS = {"open": "#5fe39a", "closed": "#ff9e9e", "unknown": "#ffffff"}
LABEL_BOX = "rgba(0,0,0,0.75)"
TIMELINE_SECONDS = 20.0
ALARM_TEXT = "Eyes closed for too long — wake up!"
ALARM_TITLE = "⚠ Eyes closed — wake up!"  # the tab's title, seen when another tab or window is in front
LATENCY_STAGES = (("detect", "face detection (last run: when the face is lost, and once a second)"), ("landmarks", "face landmarks"), ("classify", "eye classifier"),
                  ("iris", "eyelid landmarks"), ("total", "pipeline total"), ("frame", "frame incl. drawing"),
                  ("ort:crop", "· canvas crops"),
                  ("ort:face_landmark", "· FaceMesh model"), ("ort:iris_landmark", "· iris model"),
                  ("ort:eye_state", "· classifier model"), ("ort:outputs", "· reading outputs"))


def _el(element_id: str):
    element = js.document.getElementById(element_id)
    if not element:  # JS null arrives as a falsy JsNull, not None
        raise RuntimeError(f"index.html has no #{element_id}")
    return element


class Attr:
    """Writes a DOM attribute / text only when the value changes."""

    def __init__(self, element, attribute: str | None = None):
        self.element, self.attribute, self.value = element, attribute, None

    def set(self, value) -> None:
        value = str(value)
        if value == self.value:
            return
        self.value = value
        if self.attribute is None:
            self.element.textContent = value
        else:
            self.element.setAttribute(self.attribute, value)


class EyeCard:
    def __init__(self, eye: str):
        root = _el(f"eye-{eye}")
        self.state = Attr(root, "data-state")
        self.p_open = Attr(root, "data-p-open")
        self.text = Attr(root.querySelector(".eye-state"))
        self.p_text = Attr(root.querySelector(".eye-p"))
        self.bar = root.querySelector(".bar-fill")
        self.bar_width = None

    def show(self, state: str, p_open: float | None) -> None:
        self.state.set(state)
        self.p_open.set("" if p_open is None else f"{p_open:.3f}")
        self.text.set(state if state in ("open", "closed") else "unknown")
        self.p_text.set("p(open) –" if p_open is None else f"p(open) {p_open:.2f}")
        width = "0%" if p_open is None else f"{p_open * 100:.0f}%"
        if width != self.bar_width:
            self.bar_width = width
            self.bar.style.width = width


class Timeline:
    """Rolling p(open) plot. Per frame it scrolls the pixels and draws only the new segment; the last
    TIMELINE_SECONDS of points are kept so a resize can redraw everything."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.ctx = canvas.getContext("2d")
        self.colours = {}
        self.points = deque()  # (t, {eye: p or None})
        self.drawn_t = None  # time at the canvas' right edge
        self.last = None  # the last point drawn
        self.resize()

    def resize(self) -> None:
        """Also on a switch between light and dark theme: the colours are style.css's variables."""
        style = js.window.getComputedStyle(self.canvas)
        defaults = {"timeline-bg": "#fbfbfd", "timeline-guide": "#e6e8ee", **EYE_COLOURS}
        self.colours = {name: style.getPropertyValue(f"--{name}").strip() or value for name, value in defaults.items()}
        ratio = self.ratio = js.window.devicePixelRatio or 1
        width = max(100, int(self.canvas.clientWidth * ratio))
        height = max(50, int(self.canvas.clientHeight * ratio))
        self.canvas.width, self.canvas.height = width, height
        self.px_per_s = width / TIMELINE_SECONDS
        self._background(0, width)
        self.drawn_t = None
        points = list(self.points)
        for (t0, v0), (t1, v1) in zip(points, points[1:]):
            self._segment(t0, v0, t1, v1, points[-1][0])
        self.drawn_t = points[-1][0] if points else None
        self.last = points[-1] if points else None

    def clear(self) -> None:
        self.points.clear()
        self.drawn_t = self.last = None
        self._background(0, self.canvas.width)

    def _background(self, x: float, width: float) -> None:
        ctx = self.ctx
        ctx.fillStyle = self.colours["timeline-bg"]
        ctx.fillRect(x, 0, width, self.canvas.height)
        ctx.fillStyle = self.colours["timeline-guide"]  # the 0.5 guide line
        ctx.fillRect(x, round(self._y(0.5)), width, 1)

    def _y(self, p: float) -> float:
        margin = 4 * self.ratio  # 4 CSS px, where index.html's scale beside the plot puts 1 and 0
        return margin + (1.0 - p) * (self.canvas.height - 2 * margin)

    def _x(self, t: float, now: float) -> float:
        return self.canvas.width - 1 - (now - t) * self.px_per_s

    def _segment(self, t0, v0, t1, v1, now) -> None:
        ctx = self.ctx
        ctx.lineWidth = 2
        for eye in EYE_COLOURS:
            if v0.get(eye) is None or v1.get(eye) is None:
                continue
            ctx.strokeStyle = self.colours[eye]
            ctx.beginPath()
            ctx.moveTo(self._x(t0, now), self._y(v0[eye]))
            ctx.lineTo(self._x(t1, now), self._y(v1[eye]))
            ctx.stroke()

    def add(self, t: float, values: dict) -> None:
        if self.points and (t < self.points[-1][0] or t - self.points[-1][0] > TIMELINE_SECONDS):
            self.clear()  # time went back (a new clip) or a long pause
        self.points.append((t, values))
        while self.points and t - self.points[0][0] > TIMELINE_SECONDS:
            self.points.popleft()
        if self.drawn_t is None:
            self.drawn_t, self.last = t, (t, values)
            return
        shift = round((t - self.drawn_t) * self.px_per_s)
        if shift < 1:  # wait for at least a pixel of movement
            return
        width = self.canvas.width
        self.ctx.drawImage(self.canvas, -shift, 0)
        self._background(width - shift - 1, shift + 1)
        self.drawn_t += shift / self.px_per_s  # whole pixels, so no rounding drift accumulates
        if self.last is not None:
            t0, v0 = self.last
            self._segment(t0, v0, t, values, self.drawn_t)
        self.last = (t, values)


class Overlay:
    """Eye crop outlines and labels over the video. `mirrored` = the preview is shown as a selfie
    (CSS scaleX(-1)); the overlay itself is not mirrored, so text stays readable: x is flipped here."""

    def __init__(self, canvas):
        self.canvas = canvas
        self.ctx = canvas.getContext("2d")
        self.mirrored = True
        self.drawn = False
        self.scale = 1.0  # canvas pixels per CSS pixel, so labels keep a readable size on screen

    def measure(self) -> None:
        """On resize only: reading clientWidth every frame would force a layout per frame. The canvas is drawn
        `object-fit: contain` like the video, so its larger ratio is the one shown (a portrait clip in a landscape
        box is scaled by its height)."""
        canvas = self.canvas
        self.scale = max(1.0, canvas.width / max(1, canvas.clientWidth or canvas.width),
                         canvas.height / max(1, canvas.clientHeight or canvas.height))

    def size_to(self, width: int, height: int) -> None:
        if self.canvas.width != width or self.canvas.height != height:
            self.canvas.width, self.canvas.height = width, height
            self.measure()

    def clear(self) -> None:
        if self.drawn:
            self.ctx.clearRect(0, 0, self.canvas.width, self.canvas.height)
            self.drawn = False

    def _x(self, x: float) -> float:
        return self.canvas.width - x if self.mirrored else x

    def draw(self, result, state) -> None:
        ctx = self.ctx
        self.clear()
        if result is None or result.status != "face":
            return
        self.drawn = True
        scale = self.scale
        if result.face_roi:
            ctx.strokeStyle = "rgba(255,255,255,0.35)"
            ctx.lineWidth = 1 * scale
            self._polygon(result.face_roi)
        ctx.font = f"600 {int(14 * scale)}px system-ui, sans-serif"
        boxes = {}
        for eye in ("left", "right"):
            found = getattr(result, eye)
            if found is not None:
                boxes[eye] = ([self._x(p[0]) for p in found.crop], [p[1] for p in found.crop], found.crop)
        centre = sum(sum(xs) / 4 for xs, _, _ in boxes.values()) / max(1, len(boxes))
        states = {eye: getattr(state, eye) if state is not None else UNKNOWN for eye in boxes}
        # Labels go above the box on its outer side; where even so the two would overlap (a small face on a
        # small screen), they shrink to "L" / "R" and the box colour alone tells the state.
        labels = {eye: f"{'L' if eye == 'left' else 'R'} {states[eye] if states[eye] != UNKNOWN else '?'}"
                  for eye in boxes}
        spans = self._label_spans(boxes, labels, centre)
        if len(spans) == 2 and min(b for _, b in spans.values()) > max(a for a, _ in spans.values()) - 8 * scale:
            labels = {eye: label[0] for eye, label in labels.items()}
            spans = self._label_spans(boxes, labels, centre)
        for eye, (xs, ys, crop) in boxes.items():
            colour = STATE_COLOURS.get(states[eye], STATE_COLOURS["unknown"])
            ctx.strokeStyle = colour
            ctx.lineWidth = 2.5 * scale
            self._polygon(crop)
            x, text_width = spans[eye][0], spans[eye][1] - spans[eye][0]
            y = min(ys) - 6 * scale
            ctx.fillStyle = LABEL_BOX
            ctx.fillRect(x - 3 * scale, y - 15 * scale, text_width + 6 * scale, 19 * scale)
            ctx.fillStyle = LABEL_COLOURS.get(states[eye], LABEL_COLOURS["unknown"])
            ctx.fillText(labels[eye], x, y)

    def _label_spans(self, boxes: dict, labels: dict, centre: float) -> dict:
        """(left, right) x of each eye's label: flush with the outer side of its box."""
        spans = {}
        for eye, (xs, _, _) in boxes.items():
            width = self.ctx.measureText(labels[eye]).width
            outer_left = sum(xs) / 4 < centre or len(boxes) == 1
            x = min(xs) if outer_left else max(xs) - width
            spans[eye] = (x, x + width)
        return spans

    def _polygon(self, corners) -> None:
        ctx = self.ctx
        ctx.beginPath()
        first = corners[0]
        ctx.moveTo(self._x(first[0]), first[1])
        for x, y in corners[1:]:
            ctx.lineTo(self._x(x), y)
        ctx.closePath()
        ctx.stroke()


class View:
    def __init__(self):
        self.status = _el("status")
        self.status_state = Attr(self.status, "data-state")
        self.status_message = Attr(_el("status-message"))
        self.status_detail = Attr(_el("status-detail"))
        self.eyes = {"left": EyeCard("left"), "right": EyeCard("right")}
        self.blinks = Attr(_el("blinks"), "data-count")
        self.blinks_text = Attr(_el("blinks"))
        self.blink_rate = Attr(_el("blink-rate"), "data-value")
        self.blink_rate_text = Attr(_el("blink-rate"))
        self.perclos = Attr(_el("perclos"), "data-value")
        self.perclos_meter = _el("perclos-meter")
        self.perclos_text = Attr(_el("perclos").querySelector(".perclos-text"))
        self.fps = Attr(_el("fps"), "data-fps")
        self.fps_text = Attr(_el("fps"))
        self.alarm = Attr(_el("alarm"), "data-active")
        self.alarm_text = Attr(_el("alarm").querySelector(".alarm-text"))  # text appears -> role=alert speaks
        self.title = js.document.title
        self.alarm_listener = None  # called with True / False when the alarm starts / ends (page_alarm.Notifier)
        self.latency_body = _el("latency").querySelector("tbody")
        self.latency_cells = {}
        self.overlay = Overlay(_el("overlay"))
        self.timeline = Timeline(_el("timeline"))
        self.load_progress = _el("load-progress")
        self._latency_shown_at = 0.0
        self._build_latency_table()

    def set_source(self, live: bool) -> None:
        """The camera is shown as a selfie (mirrored) and the eyes are the viewer's own; a video file is shown as
        recorded and the eyes are the filmed person's."""
        self.overlay.mirrored = live
        for element in js.document.querySelectorAll(".eye-name small"):
            element.textContent = "(yours)" if live else "(the person's)"

    # -- start-up ---------------------------------------------------------------------------------

    def stage_done(self, stage: str, ms: float, ok: bool = True) -> None:
        item = js.document.querySelector(f'#loading li[data-stage="{stage}"]')
        if not item:
            return
        if not (ok and item.getAttribute("data-done") == "true"):  # index.html may have ticked a model off already
            item.setAttribute("data-done", "true" if ok else "failed")
            item.querySelector(".ms").textContent = f"{ms / 1000:.1f} s" if ok else "failed"
        done = js.document.querySelectorAll('#loading li[data-done="true"]').length
        self.load_progress.value = done

    def loading_finished(self) -> None:
        _el("loading").setAttribute("data-finished", "true")
        self.load_progress.hidden = True

    def show_state(self, machine) -> None:
        self.status_state.set(machine.state)
        self.status_message.set(machine.message)
        self.status_detail.set(machine.detail)

    # -- per frame --------------------------------------------------------------------------------

    def _build_latency_table(self) -> None:
        for key, label in LATENCY_STAGES:
            row = js.document.createElement("tr")
            name = js.document.createElement("th")
            name.textContent = label
            value = js.document.createElement("td")
            value.textContent = "–"
            row.append(name)
            row.append(value)
            self.latency_body.append(row)
            self.latency_cells[key] = Attr(value)

    def show_latency(self, averages: dict, now: float) -> None:
        if now - self._latency_shown_at < 0.5:  # readable, and cheap
            return
        self._latency_shown_at = now
        for key, cell in self.latency_cells.items():
            value = averages.get(key)
            if cell.value != "off":
                cell.set("–" if value is None else f"{value:.1f}")

    def show_fps(self, fps: float) -> None:
        self.fps.set(f"{fps:.1f}")
        self.fps_text.set(f"{fps:.0f} fps")

    def show_light_mode(self, light: bool) -> None:
        _el("fps").setAttribute("data-mode", "light" if light else "full")
        _el("light-note").hidden = not light
        for key in ("iris", "ort:iris_landmark"):  # stages that do not run show as off, not as their last average
            if key in self.latency_cells:
                self.latency_cells[key].set("off" if light else "–")

    def show_picture(self, size: tuple | None, sharper) -> None:
        """The camera's picture size (#fps data-picture and its tooltip) and page_resolution.SharperPicture's state
        (#picture-note data-sharper): a note while the page asks the camera for more pixels, once it sends them, and
        when it went back."""
        fps = _el("fps")
        fps.setAttribute("data-picture", f"{size[0]}x{size[1]}" if size else "")
        fps.title = f"camera picture {size[0]} × {size[1]} px" if size else ""
        note = _el("picture-note")
        note.setAttribute("data-sharper", sharper.state)
        by = "\u00a0×\u00a0"  # no line break inside "640 × 480"
        before = sharper.before
        grew = size is not None and before is not None and size[0] * size[1] > before[0] * before[1]
        text = {"asked": "Your eyes are small in the picture: asking the camera for more pixels.",
                "lowered": "The page went back to the smaller picture: with more pixels, fewer frames a second were "
                           "processed.",
                "frozen": "The camera's picture stopped changing after the page asked it for more pixels: back to "
                          "the smaller picture.",
                }.get(sharper.state, "")
        if sharper.state in ("judging", "kept") and grew:
            text = (f"The camera sends {size[0]}{by}{size[1]} pixels: your eyes were small in "
                    f"{before[0]}{by}{before[1]}.")
        note.textContent = text
        note.hidden = not text

    def show_eyes(self, state) -> None:
        for eye, card in self.eyes.items():
            if state is None:
                card.show(UNKNOWN, None)
            else:
                card.show(getattr(state, eye), getattr(state, f"p_{eye}"))

    def show_metrics(self, state) -> None:
        self.blinks.set(state.blink_count)
        self.blinks_text.set(state.blink_count)
        self.blink_rate.set(f"{state.blink_rate_per_min:.1f}")
        self.blink_rate_text.set(f"{state.blink_rate_per_min:.0f} /min")
        value = f"{state.perclos:.3f}"
        if value != self.perclos.value:
            self.perclos_meter.value = state.perclos
        self.perclos.set(value)
        self.perclos_text.set(f"{state.perclos * 100:.0f} %")
        self.show_alarm(state.alarm)

    def show_alarm(self, active: bool) -> None:
        if ("true" if active else "false") != self.alarm.value:
            js.document.title = ALARM_TITLE if active else self.title
            if self.alarm_listener is not None:
                try:  # a notification that fails must not stop the frame loop
                    self.alarm_listener(active)
                except Exception as error:
                    js.console.warn(f"alarm listener failed: {error}")
        self.alarm.set("true" if active else "false")
        self.alarm_text.set(ALARM_TEXT if active else "")

    def reset_live(self) -> None:
        self.show_eyes(None)
        self.overlay.clear()
        self.show_alarm(False)
        self.timeline.clear()
