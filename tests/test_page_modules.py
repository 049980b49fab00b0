"""The page's pure-Python helpers in CPython: user settings (alarm delay, sound), the per-frame CSV recording
shared by clip mode and camera sessions, and when to ask the camera for more pixels. Their browser side is in
test_page.py."""
from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "site"))
from page_record import CSV_COLUMNS, Recording, clock_text, count_text  # noqa: E402
from page_resolution import LOWER, RAISE, SHARP, STANDARD, SharperPicture, constraints  # noqa: E402
from page_settings import Settings, parse_alarm_s  # noqa: E402

from eyecore.temporal import EyeStateTracker, TemporalConfig  # noqa: E402


@pytest.mark.parametrize("value, expected", [("1.5", 1.5), (3, 3.0), ("0.5", 0.5), ("10", 10.0), (" 2.25 ", 2.25),
                                             ("0.4", None), ("10.5", None), ("nan", None), ("inf", None),
                                             ("", None), ("two", None), (None, None), ([2], None), (True, None)])
def test_alarm_delay_is_parsed_within_its_range(value, expected):
    assert parse_alarm_s(value) == expected


def test_stored_settings_round_trip_and_bad_values_fall_back_field_by_field():
    settings = Settings(alarm_after_s=2.5, sound=False, camera="a1b2", notify=True)
    assert Settings.from_json(settings.to_json()) == settings
    assert settings.temporal_config().alarm_after_s == 2.5
    default = Settings()
    assert default.alarm_after_s == TemporalConfig().alarm_after_s and default.sound and default.camera == ""
    for text in (None, "", "not json", "[1, 2]", '"x"'):
        assert Settings.from_json(text) == default
    assert Settings.from_json('{"alarm_after_s": 99, "sound": false}') == Settings(default.alarm_after_s, False)
    assert Settings.from_json('{"alarm_after_s": "3", "sound": "yes", "camera": 7}') == Settings(3.0, True, "")
    assert Settings.from_json('{"notify": 1}').notify is False and Settings.from_json('{"notify": true}').notify


def test_a_delay_for_one_visit_is_used_but_never_stored():
    settings = Settings(alarm_after_s=3.0, visit_alarm_s=2.0)
    assert settings.temporal_config().alarm_after_s == 2.0 == settings.effective_alarm_s
    assert json.loads(settings.to_json()) == {"alarm_after_s": 3.0, "sound": True, "camera": "", "notify": False}
    assert Settings.from_json(settings.to_json()).visit_alarm_s is None


def _run(recording: Recording, tracker: EyeStateTracker, closed_spans, seconds: float, fps: float = 30.0,
         t0: float = 100.0) -> None:
    """Both eyes open except inside closed_spans (seconds from t0); every 10th frame has no face."""
    for i in range(int(seconds * fps)):
        t = t0 + i / fps
        closed = any(a <= t - t0 < b for a, b in closed_spans)
        eye = None if i % 10 == 9 else SimpleNamespace(p_open=0.05 if closed else 0.95)
        result = SimpleNamespace(left=eye, right=eye)
        state = tracker.update(t, eye and eye.p_open, eye and eye.p_open)
        recording.add(t, result, state)


def _rows(recording: Recording) -> list:
    return list(csv.DictReader(io.StringIO(recording.csv_text())))


def test_camera_session_csv_has_relative_times_blink_ids_and_alarms():
    recording = Recording(relative_time=True)
    # a 0.2 s blink at 1 s, a 2 s closure (microsleep alarm, not a blink) at 3 s, another blink at 6 s
    _run(recording, EyeStateTracker(), [(1.0, 1.2), (3.0, 5.0), (6.0, 6.15)], seconds=7.0)
    text = recording.csv_text()
    assert text.splitlines()[0] == ",".join(CSV_COLUMNS)
    rows = _rows(recording)
    assert len(rows) == len(recording) == 210 and recording.frames == 210
    assert [int(r["frame"]) for r in rows] == list(range(210))
    assert float(rows[0]["time"]) == 0.0 and float(rows[30]["time"]) == pytest.approx(1.0)
    assert rows[9]["p_open_left"] == "" and rows[9]["state"] in ("open", "unknown")
    assert recording.blink_count == 2 and recording.alarms == 1
    blink_ids = {int(r["blink_id"]) for r in rows} - {0}
    assert blink_ids == {1, 2}
    blink_times = [float(r["time"]) for r in rows if r["blink_id"] == "1"]
    assert 1.0 <= min(blink_times) and max(blink_times) < 1.3
    alarm_times = [float(r["time"]) for r in rows if r["alarm"] == "1"]
    assert alarm_times and 4.4 <= min(alarm_times) and max(alarm_times) < 5.1  # 1.5 s into the closure


def test_session_summary_counts_the_whole_session_even_past_the_row_limit():
    recording = Recording(limit=60, relative_time=True)
    _run(recording, EyeStateTracker(), [(1.0, 1.2), (3.0, 5.0), (6.0, 6.15)], seconds=7.0)
    summary = recording.summary()
    assert summary["frames"] == 210 and summary["seconds"] == pytest.approx(7.0 - 1 / 30, abs=0.06)
    assert summary["blinks"] == 2 and recording.blink_count == 1  # one blink's rows were dropped, not its count
    # per minute with the eyes in view, as the live rate counts, over at least 10 s: 2 blinks in ~6.3 s seen
    assert summary["blinks_per_min"] == 12.0
    assert summary["alarms"] == 1
    # closed 0.2 + 2.0 + 0.15 s of ~7 s; every 10th frame has no face but the eyes' state holds through it
    assert summary["closed_share"] == pytest.approx(2.35 / 7.0, abs=0.03)
    assert 0.9 <= summary["seen_share"] <= 1.0
    assert Recording().summary()["blinks_per_min"] == 0.0


def test_a_pause_longer_than_the_hold_is_unseen_time_and_the_rate_counts_seen_time_only():
    """2 s of open eyes with a blink, a 3 s pause (a stalled camera), 2 s more: the pause is not seen time (not its
    first second either), as in the tracker, and the blink rate is per minute of the 4 s seen (floored at 10 s, as
    the live rate is), not of the 7 s session."""
    tracker, recording = EyeStateTracker(), Recording(relative_time=True)
    times = [k / 30 for k in range(60)] + [5.0 + k / 30 for k in range(60)]
    for t in times:
        eye = SimpleNamespace(p_open=0.05 if 1.0 <= t < 1.15 else 0.95)
        recording.add(t, SimpleNamespace(left=eye, right=eye), tracker.update(t, eye.p_open, eye.p_open))
    summary = recording.summary()
    assert summary["seen_share"] == pytest.approx(2 * (2 - 1 / 30) / summary["seconds"], abs=0.01)
    assert summary["blinks"] == 1 and summary["blinks_per_min"] == 6.0  # 1 per 10 s (the floor)


def test_frames_whose_eyes_were_too_dark_bright_or_small_are_counted_and_said():
    recording, tracker = Recording(), EyeStateTracker()
    assert recording.light_text() == "" and recording.summary()["dark_share"] == 0.0
    eye = SimpleNamespace(p_open=0.95)
    for i in range(40):
        result = SimpleNamespace(left=eye, right=eye, eyes_dark=i < 10, eyes_bright=30 <= i < 34,
                                 eyes_small=34 <= i < 36)
        recording.add(i / 30, result, tracker.update(i / 30, 0.95, 0.95))
    assert recording.dark_frames == 10 and recording.summary()["dark_share"] == 0.25
    assert recording.bright_frames == 4 and recording.summary()["bright_share"] == 0.1
    assert recording.small_frames == 2 and recording.summary()["small_share"] == 0.05
    text = recording.light_text()
    assert "too dark to see the eyes well on 25 % of the frames" in text and "washed out by light on 10 %" in text
    assert "too small in the picture (too far from the camera) on 5 % of the frames" in text


def test_clip_csv_keeps_media_time_and_the_alarm_delay_setting_counts():
    for delay, alarms in ((1.5, 1), (2.5, 0)):
        recording = Recording()  # clip mode: times are the clip's own
        _run(recording, EyeStateTracker(Settings(alarm_after_s=delay).temporal_config()), [(3.0, 5.0)], 6.0, t0=0.5)
        rows = _rows(recording)
        assert float(rows[0]["time"]) == 0.5
        assert recording.alarms == alarms
        assert any(r["alarm"] == "1" for r in rows) == bool(alarms)


def test_a_long_camera_session_keeps_the_newest_rows_and_their_blinks():
    recording = Recording(limit=60, relative_time=True)
    _run(recording, EyeStateTracker(), [(1.0, 1.2), (6.0, 6.15)], seconds=7.0)
    rows = _rows(recording)
    assert len(rows) == 60
    assert [int(r["frame"]) for r in rows] == list(range(150, 210))  # numbering continues from the first frame
    assert float(rows[0]["time"]) == pytest.approx(5.0)  # still seconds since the session's first frame
    assert recording.blink_count == 1  # the blink at 1 s ended before the oldest kept row
    assert {int(r["blink_id"]) for r in rows} - {0} == {2}


def test_clock_and_count_texts():
    assert [clock_text(s) for s in (0, 59.9, 61, 3599, 3600 + 62, -1)] == ["0:00", "0:59", "1:01", "59:59", "1:01:02",
                                                                          "0:00"]
    assert clock_text(float("inf")) == clock_text(float("nan")) == "?"  # a file that does not say how long it is
    assert (count_text(1, "blink"), count_text(0, "blink"), count_text(2, "microsleep alarm")) == \
        ("1 blink", "0 blinks", "2 microsleep alarms")


def _feed(sharper: SharperPicture, start: float, seconds: float, small, size=(640, 480), fps: float = 30.0,
          light: bool = False, eye_px=None) -> list:
    """30 frames a second from `start`; `small` and `eye_px` are values or functions of the frame's time. Returns
    (t, action) for every frame that asked for something."""
    asked = []
    for i in range(round(seconds * 30)):
        t = start + i / 30
        action = sharper.frame(t, small(t) if callable(small) else small, size, fps, light,
                               eye_px(t) if callable(eye_px) else eye_px)
        if action:
            asked.append((round(t - start, 2), action))
    return asked


def test_the_camera_is_asked_for_more_pixels_once_the_eyes_stay_small_for_a_second():
    sharper = SharperPicture()
    assert _feed(sharper, 0.0, 5.0, False) == [] and sharper.state == "standard"
    assert _feed(sharper, 5.0, 3.0, lambda t: (t % 1.0) < 0.9) == []  # small, but normal eyes every second
    assert _feed(sharper, 8.0, 1.5, True) == [(1.0, RAISE)] and sharper.state == "asked"
    assert sharper.fps_before == 30.0 and sharper.before == (640, 480)
    assert _feed(sharper, 9.5, 1.0, True) == [] and sharper.state == "asked"  # the camera takes its time
    assert _feed(sharper, 10.5, 2.9, False, size=(1280, 720), fps=29.0) == [] and sharper.state == "judging"
    assert _feed(sharper, 13.4, 1.0, False, size=(1280, 720), fps=29.0) == [] and sharper.state == "kept"
    assert _feed(sharper, 14.4, 5.0, True) == []  # asked once per camera start
    sharper.reset()  # a new camera start
    assert sharper.state == "standard" and _feed(sharper, 20.0, 1.5, True) == [(1.0, RAISE)]
    assert constraints(SHARP) == {"width": {"ideal": 1280}, "height": {"ideal": 720}}
    assert constraints(STANDARD) == {"width": {"ideal": 640}, "height": {"ideal": 480}}


def test_more_pixels_are_not_asked_for_a_camera_that_sends_them_or_a_device_that_cannot_keep_up():
    assert _feed(SharperPicture(), 0.0, 5.0, True, size=(1280, 720)) == []
    assert _feed(SharperPicture(), 0.0, 5.0, True, size=(720, 1280)) == []  # a phone held upright
    assert _feed(SharperPicture(), 0.0, 5.0, True, light=True) == []
    assert _feed(SharperPicture(), 0.0, 5.0, True, size=(480, 640)) == [(1.0, RAISE)]  # upright, small picture
    slow = SharperPicture()
    slow.reset(slow_camera=True)  # this camera slowed down with more pixels earlier in the visit
    assert _feed(slow, 0.0, 5.0, True) == [] and slow.state == "slow"
    interrupted = SharperPicture()
    assert _feed(interrupted, 0.0, 0.8, True) == []
    interrupted.interrupt()  # frames read behind another tab: a second of small eyes counts from here
    assert _feed(interrupted, 0.8, 1.5, True) == [(1.0, RAISE)]


def test_a_camera_without_a_larger_picture_is_left_as_it_is_or_put_back():
    none = SharperPicture()
    _feed(none, 0.0, 1.5, True)
    assert _feed(none, 1.5, 4.0, True) == [] and none.state == "unavailable"  # still 640x480 after 3 s
    late = SharperPicture()  # ... but a camera that switches later is judged all the same
    _feed(late, 0.0, 1.5, True, fps=24.0)
    _feed(late, 1.5, 4.0, True)
    assert _feed(late, 5.5, 2.0, True, size=(1280, 720), fps=10.0) == [] and late.state == "judging"
    assert _feed(late, 7.5, 1.5, True, size=(1280, 720), fps=10.0) == [(1.0, LOWER)] and late.lowered_for_rate
    cropped = SharperPicture()
    _feed(cropped, 0.0, 1.5, True)
    assert _feed(cropped, 1.5, 1.0, True, size=(640, 360)) == [(0.0, LOWER)]  # other, not more pixels: back
    assert cropped.state == "unavailable"


def test_the_camera_goes_back_to_640x480_when_it_then_sends_clearly_fewer_frames_or_light_mode_starts():
    sharper = SharperPicture()
    assert _feed(sharper, 0.0, 1.5, True, fps=24.0) == [(1.0, RAISE)]
    assert _feed(sharper, 1.5, 2.0, True, size=(1280, 720), fps=10.0) == []  # judged 3 s after the picture grew
    assert _feed(sharper, 3.5, 2.0, True, size=(1280, 720), fps=10.0) == [(1.0, LOWER)]
    assert sharper.state == "lowered" and sharper.lowered_for_rate
    assert _feed(sharper, 5.5, 10.0, True) == []  # not asked again for this camera start
    kept = SharperPicture()
    _feed(kept, 0.0, 1.5, True, fps=24.0)
    assert _feed(kept, 1.5, 3.5, True, size=(1280, 720), fps=18.0) == [] and kept.state == "kept"  # 75 % of 24
    assert _feed(kept, 5.0, 1.0, True, size=(1280, 720), fps=14.0, light=True) == [(0.0, LOWER)]
    assert kept.state == "lowered" and not kept.lowered_for_rate  # the device, not the camera


def test_the_camera_goes_back_to_640x480_once_the_person_has_come_closer_and_is_asked_again_if_they_leave():
    sharper = SharperPicture()
    _feed(sharper, 0.0, 1.5, True)
    _feed(sharper, 1.5, 3.5, False, size=(1280, 720), eye_px=11.0)
    assert sharper.state == "kept"
    # 20 px in 1280x720 are at most 10 px in 640x480 (a 4:3 sensor: the same view): not yet twice the small size
    assert _feed(sharper, 5.0, 8.0, False, size=(1280, 720), eye_px=20.0) == []
    # near, but the face lost now and then (no eye seen): five seconds of near eyes count from the last gap
    assert _feed(sharper, 13.0, 6.0, False, size=(1280, 720), eye_px=lambda t: None if t % 3 < 0.1 else 40.0) == []
    assert _feed(sharper, 19.0, 4.0, False, size=(1280, 720), eye_px=40.0) == []
    sharper.interrupt()  # frames read behind another tab: five seconds of near eyes count from here
    assert _feed(sharper, 23.0, 6.0, False, size=(1280, 720), eye_px=40.0) == [(5.0, LOWER)]
    assert sharper.state == "standard" and sharper.before is None and not sharper.lowered_for_rate
    assert _feed(sharper, 29.0, 1.0, False, size=(1280, 720), eye_px=40.0) == []  # until the camera has switched
    assert _feed(sharper, 30.0, 3.0, False, eye_px=25.0) == []
    assert sharper.near_lowerings == 1
    # they sat back again: asked again, after 10 s of small eyes (a head turned far aside must not make it switch
    # every few seconds)
    assert _feed(sharper, 33.0, 11.0, True, eye_px=7.0) == [(10.0, RAISE)]
    sharper.reset()  # a new camera start: a second of small eyes is enough again
    assert sharper.near_lowerings == 0 and _feed(sharper, 50.0, 1.5, True) == [(1.0, RAISE)]
    upright = SharperPicture()  # a phone held upright: its short side is the 720
    _feed(upright, 0.0, 1.5, True, size=(480, 640))
    _feed(upright, 1.5, 3.5, False, size=(720, 1280), eye_px=11.0)
    assert _feed(upright, 5.0, 6.0, False, size=(720, 1280), eye_px=30.0) == []  # at most 15 px in 480x640
    assert _feed(upright, 11.0, 6.0, False, size=(720, 1280), eye_px=40.0) == [(5.0, LOWER)]


def test_a_camera_whose_picture_stops_after_being_asked_for_more_pixels_is_put_back_and_not_asked_again():
    sharper = SharperPicture()
    assert sharper.camera_stalled(0.0) is None  # a frozen camera that was never asked: nothing to undo
    _feed(sharper, 0.0, 1.5, True)  # asked at t = 1.0
    assert sharper.camera_stalled(5.9) is None and sharper.state == "asked"  # some cameras take seconds to switch
    assert sharper.camera_stalled(6.0) == LOWER and sharper.state == "frozen" and sharper.lowered_for_rate
    assert _feed(sharper, 6.0, 5.0, True) == []
    judging = SharperPicture()  # the larger picture came, then stopped
    _feed(judging, 0.0, 1.5, True)
    _feed(judging, 1.5, 1.0, True, size=(1280, 720))  # judging since t = 1.5
    assert judging.camera_stalled(6.4) is None and judging.camera_stalled(6.5) == LOWER
    kept = SharperPicture()  # a camera that froze long after switching: not the switch's doing
    _feed(kept, 0.0, 1.5, True)
    _feed(kept, 1.5, 4.0, True, size=(1280, 720))
    assert kept.state == "kept" and kept.camera_stalled(30.0) is None and kept.state == "kept"
    slow_switch = SharperPicture()  # still 640x480 when the judging time ran out, then stopped while switching
    _feed(slow_switch, 0.0, 1.5, True)  # asked at t = 1.0
    _feed(slow_switch, 1.5, 3.0, True)
    assert slow_switch.state == "unavailable" and slow_switch.camera_stalled(6.5) == LOWER
    assert slow_switch.state == "frozen"
    later = SharperPicture()  # ... but a camera that stops long after it did not switch: not the switch's doing
    _feed(later, 0.0, 1.5, True)
    _feed(later, 1.5, 10.0, True)
    assert later.camera_stalled(11.5) is None and later.state == "unavailable"
