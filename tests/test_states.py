"""App state machine: transitions, messages, camera-error mapping, debounced frame results."""
import pytest

from eyecore import states as S
from eyecore.preprocess import mean_luma
from eyecore.states import AppStateMachine, InvalidTransition, error_message, error_to_state

DOM_STATES = {"loading", "ready", "requesting-camera", "running", "camera-denied", "no-camera", "camera-stalled",
              "camera-ended", "no-face", "camera-dark", "eyes-dark", "eyes-bright", "eyes-small", "uncertain",
              "model-failed"}


def started(**kwargs):
    machine = AppStateMachine(**kwargs)
    machine.go(S.READY)
    machine.go(S.REQUESTING_CAMERA)
    machine.go(S.RUNNING)
    return machine


def test_every_state_has_one_message_and_the_dom_states_exist():
    assert DOM_STATES | {"processing-clip", "clip-done"} <= set(S.STATES)
    assert all(S.MESSAGES[s].strip() for s in S.STATES)
    assert len(set(S.MESSAGES.values())) == len(S.STATES)
    assert set(S.TRANSITIONS) == set(S.STATES)


def test_happy_path_and_messages():
    changes = []
    machine = AppStateMachine(on_change=lambda m: changes.append(m.to_dict()))
    assert machine.state == S.LOADING
    machine.go(S.LOADING, detail="face model 1 of 4")
    assert machine.detail == "face model 1 of 4"
    machine.go(S.READY)
    machine.go(S.REQUESTING_CAMERA)
    machine.go(S.RUNNING)
    assert [c["state"] for c in changes] == ["loading", "ready", "requesting-camera", "running"]
    assert machine.to_dict() == {"state": "running", "message": S.MESSAGES[S.RUNNING], "detail": ""}
    assert machine.go(S.RUNNING) is False  # nothing changed, no callback
    assert len(changes) == 4


def test_invalid_transitions_are_refused_with_the_allowed_ones():
    machine = AppStateMachine()
    with pytest.raises(InvalidTransition, match="cannot go from 'loading' to 'running'"):
        machine.go(S.RUNNING)
    with pytest.raises(InvalidTransition, match="unknown app state"):
        machine.go("sleeping")
    machine.go(S.MODEL_FAILED)
    assert not machine.can_go(S.READY) and machine.can_go(S.LOADING)


def test_clip_mode_path():
    machine = AppStateMachine()
    machine.go(S.READY)
    machine.go(S.PROCESSING_CLIP, detail="frame 10 of 300")
    machine.go(S.CLIP_DONE)
    machine.go(S.PROCESSING_CLIP)
    machine.go(S.CLIP_FAILED)
    assert machine.message == S.MESSAGES[S.CLIP_FAILED]
    machine.go(S.PROCESSING_CLIP)
    machine.go(S.CLIP_STOPPED, detail="clip.mp4, at 0:42 of 3:10")  # the user stopped it; partial results kept
    assert "so far" in machine.message
    machine.go(S.PROCESSING_CLIP)
    machine.go(S.CLIP_DONE)
    machine.go(S.REQUESTING_CAMERA)
    assert not AppStateMachine().can_go(S.CLIP_STOPPED)


@pytest.mark.parametrize("name,state", [
    ("NotAllowedError", "camera-denied"), ("SecurityError", "camera-denied"),
    ("NotFoundError", "no-camera"), ("OverconstrainedError", "no-camera"),
    ("NotReadableError", "camera-ended"), ("ended", "camera-ended"),
    ("SomethingNewError", "camera-ended"),
])
def test_error_mapping(name, state):
    assert error_to_state(name) == state


def test_camera_errors_enter_their_state_with_a_specific_message():
    machine = started()
    machine.go(S.REQUESTING_CAMERA)
    assert machine.camera_error("NotAllowedError") == S.CAMERA_DENIED
    assert "Allow it in the address bar" in machine.message
    machine.go(S.REQUESTING_CAMERA)
    machine.camera_error("NotReadableError")
    assert machine.state == S.CAMERA_ENDED and machine.message == S.CAMERA_BUSY_MESSAGE
    assert "SomethingNewError" in error_message("SomethingNewError")
    # the camera picked in the list is gone: that one, not "no camera at all"; other errors keep their message
    machine.go(S.REQUESTING_CAMERA)
    assert machine.camera_error("OverconstrainedError", picked=True) == S.NO_CAMERA
    assert machine.message == S.PICKED_CAMERA_GONE_MESSAGE
    machine.go(S.REQUESTING_CAMERA)
    machine.camera_error("OverconstrainedError")
    assert machine.message == S.MESSAGES[S.NO_CAMERA]
    machine.go(S.REQUESTING_CAMERA)
    assert machine.camera_error("NotAllowedError", picked=True) == S.CAMERA_DENIED
    assert "Allow it in the address bar" in machine.message


def test_frame_results_are_debounced():
    machine = started(debounce_s=0.4)
    t = 10.0
    for _ in range(11):                    # 0.33 s without a face at 30 fps: no change yet
        assert machine.on_frame_result(False, False, False, t=t) == S.RUNNING
        t += 1 / 30
    for _ in range(3):                     # a face again resets the pending change
        machine.on_frame_result(True, True, True, t=t)
        t += 1 / 30
    start = t
    while machine.state == S.RUNNING:
        machine.on_frame_result(False, False, False, t=t)
        t += 1 / 30
    assert machine.state == S.NO_FACE and t - start >= 0.4
    machine.on_frame_result(True, False, True, t=t)
    machine.on_frame_result(True, True, False, t=t + 0.41)
    assert machine.state == S.UNCERTAIN
    machine.on_frame_result(True, True, True, t=t + 0.5)
    machine.on_frame_result(True, True, True, t=t + 0.95)
    assert machine.state == S.RUNNING


def test_flicker_does_not_change_the_status():
    machine = started(debounce_s=0.4)
    for i in range(300):
        machine.on_frame_result(i % 2 == 0, True, True, t=i / 30)
        assert machine.state == S.RUNNING


@pytest.mark.parametrize("turns", [
    [(False, False, False), (True, False, True), (True, False, True)],  # no face, then a face whose eyes are unknown
    [(True, False, True, "dark"), (True, False, True)],  # eyes crushed to black, then unknown
])
def test_two_situations_taking_turns_still_leave_running(turns):
    """No frame says "running", but neither situation lasts debounce_s on its own: after twice that, the status says
    the one seen most often instead of "Watching your eyes"."""
    machine = started(debounce_s=0.4)
    t = 0.0
    for i in range(60):
        face, known, ok, *dark = turns[i % len(turns)]
        machine.on_frame_result(face, known, ok, t=t, eyes_dark=bool(dark))
        t += 1 / 30
        if t > 0.85:
            assert machine.state != S.RUNNING
    # the one seen most; in a tie, the one the deciding frame saw
    assert machine.state in ({S.UNCERTAIN} if len(turns) == 3 else {S.EYES_DARK, S.UNCERTAIN})


def test_at_one_frame_a_second_a_single_changed_frame_is_left_to_the_debounce():
    """Frames 1 s apart: no face on one frame, then a face with the eyes unknown. Two frames are one change, not two
    situations taking turns: the status says what the latest frame saw once it has lasted, not the first one."""
    machine = started(debounce_s=0.4)
    machine.on_frame_result(False, False, False, t=0.0)
    machine.on_frame_result(True, False, True, t=1.0)
    assert machine.state == S.RUNNING
    machine.on_frame_result(True, False, True, t=2.0)
    assert machine.state == S.UNCERTAIN


def test_frame_results_are_ignored_outside_live_states():
    machine = AppStateMachine(debounce_s=0.0)
    assert machine.on_frame_result(False, False, False, t=1.0) == S.LOADING


def test_default_clock_is_used_without_t():
    now = [0.0]
    machine = started(debounce_s=0.2, clock=lambda: now[0])
    machine.on_frame_result(False, False, False)
    now[0] = 0.25
    assert machine.on_frame_result(False, False, False) == S.NO_FACE


def test_a_camera_that_repeats_its_picture_is_stalled_until_a_new_picture_comes():
    machine = started(stall_after_s=2.0)
    machine.on_camera_picture(True, t=0.0)
    for k in range(1, 19):  # the same picture for 1.8 s: still running (a slow camera repeats a few pictures)
        assert machine.on_camera_picture(False, t=k / 10) == S.RUNNING
    assert machine.on_camera_picture(True, t=1.9) == S.RUNNING  # a new picture restarts the count
    for k in range(20, 41):
        machine.on_camera_picture(False, t=k / 10)
    assert machine.state == S.CAMERA_STALLED and "covered or frozen" in machine.message
    machine.on_frame_result(face_found=False, eyes_known=False, confidence_ok=False, t=5.0)
    assert machine.state == S.CAMERA_STALLED  # frame results do not hide a stalled camera
    assert machine.on_camera_picture(True, t=5.1) == S.RUNNING
    machine.go(S.READY)  # Stop; a later session times its own stall from scratch
    machine.go(S.REQUESTING_CAMERA)
    machine.go(S.RUNNING)
    assert machine.on_camera_picture(False, t=100.0) == S.RUNNING
    with pytest.raises(ValueError, match="stall_after_s > 0"):
        AppStateMachine(stall_after_s=0)


def frames(machine, t0: float, seconds: float, face: bool, luma: float | None, fps: float = 30.0) -> float:
    """Feeds `seconds` of frame results (a face with both eyes known, or none) at `fps`; returns the next time."""
    t = t0
    while t < t0 + seconds:
        machine.on_frame_result(face, face, face, t=t, luma=None if face else luma)
        t += 1 / fps
    return t


def test_a_dark_picture_without_a_face_is_camera_dark_until_a_face_or_light_comes():
    machine = started(debounce_s=0.4)
    t = frames(machine, 0.0, 0.3, face=False, luma=2.0)
    assert machine.state == S.RUNNING  # debounced like the other live states
    t = frames(machine, t, 0.2, face=False, luma=2.0)
    assert machine.state == S.CAMERA_DARK and "too dark" in machine.message
    t = frames(machine, t, 0.5, face=True, luma=None)  # uncovered: a face straight away
    assert machine.state == S.RUNNING
    t = frames(machine, t, 0.5, face=False, luma=0.5)
    assert machine.state == S.CAMERA_DARK
    t = frames(machine, t, 0.5, face=False, luma=60.0)  # light, but nobody there
    assert machine.state == S.NO_FACE
    frames(machine, t, 0.5, face=False, luma=None)  # not measured: never dark
    assert machine.state == S.NO_FACE


def test_a_picture_near_the_dark_line_does_not_flicker():
    machine = started(debounce_s=0.4)
    t = frames(machine, 0.0, 0.5, face=False, luma=S.DARK_LUMA - 1)
    assert machine.state == S.CAMERA_DARK
    step = (S.DARK_EXIT_LUMA - S.DARK_LUMA) / 2.5
    for i in range(300):  # from the entry line up to just below the exit line: stays dark
        machine.on_frame_result(False, False, False, t=t, luma=S.DARK_LUMA + (i % 3) * step)
        assert machine.state == S.CAMERA_DARK
        t += 1 / 30
    frames(machine, t, 0.5, face=False, luma=S.DARK_EXIT_LUMA + 1)
    assert machine.state == S.NO_FACE
    for i in range(300):  # a lit empty room whose single frames dip dark: stays no-face
        machine.on_frame_result(False, False, False, t=t + 1 + i / 30, luma=1.0 if i % 4 == 0 else 40.0)
        assert machine.state == S.NO_FACE


@pytest.mark.parametrize("cycle", [[10, 20], [10, 10, 20, 20], [5] * 6 + [30] * 6])
def test_no_face_in_a_picture_flickering_round_the_dark_line_still_leaves_running(cycle):
    """A hand waved over the lens, auto-exposure hunting: dark and not dark in turn are one situation, no face; it
    must not keep restarting the debounce and leave the page saying "Watching your eyes"."""
    machine = started(debounce_s=0.4)
    for i in range(24):  # 0.8 s at 30 fps
        machine.on_frame_result(False, False, False, t=i / 30, luma=cycle[i % len(cycle)])
    assert machine.state in (S.NO_FACE, S.CAMERA_DARK)


def test_one_dark_frame_does_not_lower_the_line_for_the_frames_after_it():
    machine = started(debounce_s=0.4)
    machine.on_frame_result(False, False, False, t=0.0, luma=S.DARK_LUMA - 0.1)
    frames(machine, 1 / 30, 0.5, face=False, luma=(S.DARK_LUMA + S.DARK_EXIT_LUMA) / 2)
    assert machine.state == S.NO_FACE  # a dim empty room, not a covered camera


def test_a_face_found_in_a_dark_picture_is_watched():
    machine = started(debounce_s=0.4)
    frames(machine, 0.0, 0.5, face=False, luma=1.0)
    assert machine.state == S.CAMERA_DARK
    for i in range(15):  # the page measures luma only without a face; a face wins whatever the picture's light
        machine.on_frame_result(True, True, True, t=0.5 + i / 30, luma=1.0)
    assert machine.state == S.RUNNING


def test_a_face_whose_eyes_are_crushed_to_black_is_eyes_dark_and_the_eyes_are_still_watched():
    """FrameResult.eyes_dark: a face found, its eyes too dark to judge well. The page must not say "Watching your
    eyes" there (closed eyes read as open), and it takes precedence over "uncertain", whose likely cause it is."""
    machine = started(debounce_s=0.4)
    for i in range(15):
        machine.on_frame_result(True, True, True, t=i / 30, eyes_dark=True)
    assert machine.state == S.EYES_DARK and "too dark to see your eyes" in machine.message.lower()
    assert S.EYES_DARK in S.LIVE_STATES  # the eyes' labels, blinks and alarm go on
    for i in range(15):
        machine.on_frame_result(True, True, False, t=1 + i / 30, eyes_dark=True)
    assert machine.state == S.EYES_DARK
    for i in range(15):  # light again
        machine.on_frame_result(True, True, True, t=2 + i / 30)
    assert machine.state == S.RUNNING
    machine.on_frame_result(True, True, True, t=3.0, eyes_dark=True)  # one dark frame: debounced
    machine.on_frame_result(True, True, True, t=3.1)
    assert machine.state == S.RUNNING
    for i in range(15):  # blown out to white by too much light: the same, with its own message
        machine.on_frame_result(True, True, True, t=4 + i / 30, eyes_bright=True)
    assert machine.state == S.EYES_BRIGHT and "too much light" in machine.message.lower()
    assert S.EYES_BRIGHT in S.LIVE_STATES


def test_eyes_too_small_in_the_picture_ask_the_person_to_come_closer_and_the_eyes_are_still_watched():
    machine = started(debounce_s=0.4)
    for i in range(15):
        machine.on_frame_result(True, True, False, t=i / 30, eyes_small=True)  # over "uncertain", its likely cause
    assert machine.state == S.EYES_SMALL and "move closer" in machine.message.lower()
    assert S.EYES_SMALL in S.LIVE_STATES
    for i in range(15):  # the light is said first when it is bad too
        machine.on_frame_result(True, True, True, t=1 + i / 30, eyes_small=True, eyes_dark=True)
    assert machine.state == S.EYES_DARK
    for i in range(15):
        machine.on_frame_result(True, True, True, t=2 + i / 30)
    assert machine.state == S.RUNNING
    machine.go(S.READY)  # Stop
    assert machine.state == S.READY


@pytest.mark.parametrize("leave", ["stop", "ended", "stalled", "model", "clip"])
def test_camera_dark_is_left_like_the_other_live_states(leave):
    machine = started(debounce_s=0.0)
    machine.on_frame_result(False, False, False, t=1.0, luma=0.0)
    assert machine.state == S.CAMERA_DARK
    if leave == "stop":
        machine.go(S.READY)
    elif leave == "ended":
        machine.camera_error("ended")
    elif leave == "stalled":
        for k in range(25):  # the clock re-reads one black picture (behind another tab): frozen
            machine.on_camera_picture(False, t=1.0 + k / 10)
        assert machine.state == S.CAMERA_STALLED
        assert machine.on_camera_picture(True, t=4.0) == S.RUNNING
        return
    elif leave == "model":
        machine.go(S.MODEL_FAILED)
    else:
        machine.go(S.PROCESSING_CLIP)
        machine.on_frame_result(False, False, False, t=2.0, luma=0.0)  # a clip's frames never make it dark
        assert machine.state == S.PROCESSING_CLIP
        return
    left_in = machine.state
    assert left_in != S.CAMERA_DARK
    assert machine.on_frame_result(False, False, False, t=3.0, luma=0.0) == left_in  # no camera: ignored


def test_mean_luma_of_rgba_bytes():
    assert mean_luma(bytes([0, 0, 0, 255]) * 12) == 0
    assert mean_luma(bytes([255, 255, 255, 0]) * 12) == pytest.approx(255)
    assert mean_luma(bytes([100, 0, 0, 255, 0, 100, 0, 255])) == pytest.approx((29.9 + 58.7) / 2)
    with pytest.raises(ValueError, match="RGBA"):
        mean_luma(b"\x00\x00\x00")
