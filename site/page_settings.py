"""The page's user settings: how long the eyes may stay shut before the microsleep alarm, its sound, whether it also
shows a system notification, and the camera last chosen in the picker.

Kept in this browser's localStorage (nothing leaves the device); `?alarm=S` sets the delay for one visit without
saving it. Parsing is pure Python (tested in CPython); only `load` / `save` touch the browser.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from eyecore.temporal import TemporalConfig

STORAGE_KEY = "eyestate.settings"
ALARM_MIN_S, ALARM_MAX_S = 0.5, 10.0


def parse_alarm_s(value) -> float | None:
    """Seconds from a form field, a query parameter or storage; None when it is not a number in range."""
    if isinstance(value, bool):  # float(True) is 1.0
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    if not ALARM_MIN_S <= seconds <= ALARM_MAX_S:  # also rejects NaN
        return None
    return round(seconds, 2)


@dataclass
class Settings:
    alarm_after_s: float = TemporalConfig.alarm_after_s
    sound: bool = True
    camera: str = ""  # deviceId picked last; asked for as "ideal", so a camera that is gone falls back to another
    notify: bool = False  # a system notification while the page is hidden (needs the browser's permission)
    visit_alarm_s: float | None = None  # ?alarm=S: this visit's delay, never stored

    @classmethod
    def from_json(cls, text: str | None) -> "Settings":
        """Whatever is stored: a value that does not parse falls back to its default, the others are kept."""
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            data = {}
        alarm = parse_alarm_s(data.get("alarm_after_s"))
        sound, notify, camera = data.get("sound"), data.get("notify"), data.get("camera")
        return cls(alarm_after_s=cls.alarm_after_s if alarm is None else alarm,
                   sound=sound if isinstance(sound, bool) else cls.sound,
                   notify=notify if isinstance(notify, bool) else cls.notify,
                   camera=camera if isinstance(camera, str) and len(camera) <= 512 else cls.camera)

    @property
    def effective_alarm_s(self) -> float:
        return self.alarm_after_s if self.visit_alarm_s is None else self.visit_alarm_s

    def to_json(self) -> str:
        return json.dumps({"alarm_after_s": self.alarm_after_s, "sound": self.sound, "notify": self.notify,
                           "camera": self.camera})

    def temporal_config(self) -> TemporalConfig:
        return TemporalConfig(alarm_after_s=self.effective_alarm_s)


def load(query_alarm: str | None = None) -> Settings:
    """The stored settings, with ?alarm=S on top for this visit (`visit_alarm_s`, never saved)."""
    import js

    try:
        stored = js.window.localStorage.getItem(STORAGE_KEY)
    except Exception:  # storage blocked (private mode, file://): defaults
        stored = None
    settings = Settings.from_json(stored)
    settings.visit_alarm_s = parse_alarm_s(query_alarm)
    return settings


def save(settings: Settings) -> None:
    import js

    try:
        js.window.localStorage.setItem(STORAGE_KEY, settings.to_json())
    except Exception:  # storage blocked or full: the setting still holds for this visit
        pass
