"""eyecore.budget: the page sheds the iris model only when the device, not the camera, is slow."""
from eyecore.budget import BudgetConfig, FrameBudget


def feed(budget: FrameBudget, camera_fps: float, processed_fps: float, seconds: float, t0: float = 0.0) -> list:
    """Camera frames at camera_fps; every frame the device manages (processed_fps of them) is also processed.
    Returns `light` after each second."""
    seen, step, t, next_done = [], 1.0 / camera_fps, t0, t0
    while t < t0 + seconds - 1e-9:
        budget.arrived(t)
        if t >= next_done - 1e-9:
            budget.processed(t + 0.001)
            next_done += 1.0 / processed_fps
        t += step
        if abs((t - t0) % 1.0) < step / 2 or abs((t - t0) % 1.0 - 1.0) < step / 2:
            seen.append(budget.light)
    return seen


def test_a_device_that_keeps_up_stays_full():
    assert not any(feed(FrameBudget(), 30, 30, 10))
    assert not any(feed(FrameBudget(), 30, 20, 10))  # drops frames, but 20 fps still sees every blink


def test_a_slow_camera_whose_frames_are_all_processed_stays_full():
    assert not any(feed(FrameBudget(), 8, 8, 10))  # soniya-like 6-8 fps stream: nothing to gain by shedding


def test_a_device_far_behind_the_camera_turns_light_after_a_full_window():
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    seen = feed(budget, 30, 7.5, 6)
    assert seen[:2] == [False, False] and seen[3:] == [True] * len(seen[3:])
    budget.reset()  # a new camera stream on the same device
    assert budget.light


def test_light_mode_that_keeps_up_tries_the_full_pipeline_again_after_the_retry_time():
    budget = FrameBudget(BudgetConfig(window_s=3.0, retry_after_s=10.0))
    feed(budget, 30, 7.5, 4)  # light from t = 3
    assert budget.light
    seen = feed(budget, 30, 30, 12, t0=4)  # light mode keeps up with the camera
    assert seen[:8] == [True] * 8  # not before t = 13
    assert seen[-1] is False
    assert not any(feed(budget, 30, 30, 10, t0=16))  # and the full pipeline keeps up too: it stays


def test_light_mode_still_behind_the_camera_never_retries():
    budget = FrameBudget(BudgetConfig(window_s=3.0, retry_after_s=5.0))
    feed(budget, 30, 7.5, 4)
    assert all(feed(budget, 30, 12, 30, t0=4))  # a 4x-throttled laptop: 12 fps light vs a 30 fps camera


def test_each_relapse_doubles_the_wait_before_the_next_try():
    budget = FrameBudget(BudgetConfig(window_s=3.0, retry_after_s=10.0, max_retry_after_s=25.0))
    waits, t = [], 0.0
    for _ in range(4):  # full is too slow (7.5 fps), light keeps up (30 fps): light, try, relapse, ...
        t_light = t
        while not budget.light:
            feed(budget, 30, 7.5, 1, t0=t)
            t += 1
        while budget.light:
            feed(budget, 30, 30, 1, t0=t)
            t += 1
        waits.append(t - t_light)
    assert waits[0] < waits[1] < waits[2] == waits[3]  # 10, 20, then capped at 25 s in light mode
    assert budget.retry_after == 25.0



def test_frames_reported_together_count_one_by_one():
    """A page whose main thread is busy hears of several camera frames in one callback (presentedFrames)."""
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    t = 0.0
    while t < 3.5:  # 7.5 callbacks a second, each covering 4 camera frames of a 30 fps camera
        budget.arrived(t, count=4)
        budget.processed(t + 0.1)
        t += 1 / 7.5
    assert budget.light


def test_a_device_that_takes_over_a_second_per_frame_turns_light():
    """Each frame takes 1.5 s (far behind the camera's 30 fps): the long waits end with a processed frame, not a
    camera frame, so they are the device's own slowness and count, not silences that restart the window."""
    budget = FrameBudget(BudgetConfig(window_s=3.0, max_gap_s=1.0))
    t = 0.0
    while t < 10.0 and not budget.light:
        budget.arrived(t, count=45)  # the frames the camera presented while the one before was processed
        t += 1.5
        budget.processed(t)
    assert budget.light and t <= 6.0, t


def test_a_pause_starts_a_new_window_and_its_frame_burst_is_not_counted():
    """A hidden tab or a stalled camera: the first callback after it may report many frames at once."""
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    feed(budget, 30, 30, 2)
    budget.arrived(12.0, count=300)  # ten seconds later
    assert not any(feed(budget, 30, 30, 4, t0=12.0))
