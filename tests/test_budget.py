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


def test_a_device_far_behind_the_camera_turns_light_after_a_full_window_and_stays():
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    seen = feed(budget, 30, 7.5, 6)
    assert seen[:2] == [False, False] and seen[3:] == [True] * len(seen[3:])
    assert all(feed(budget, 30, 30, 3, t0=6))  # later fast frames do not flip it back
    budget.reset()
    assert not budget.light



def test_frames_reported_together_count_one_by_one():
    """A page whose main thread is busy hears of several camera frames in one callback (presentedFrames)."""
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    t = 0.0
    while t < 3.5:  # 7.5 callbacks a second, each covering 4 camera frames of a 30 fps camera
        budget.arrived(t, count=4)
        budget.processed(t + 0.1)
        t += 1 / 7.5
    assert budget.light


def test_a_pause_starts_a_new_window_and_its_frame_burst_is_not_counted():
    """A hidden tab or a stalled camera: the first callback after it may report many frames at once."""
    budget = FrameBudget(BudgetConfig(window_s=3.0))
    feed(budget, 30, 30, 2)
    budget.arrived(12.0, count=300)  # ten seconds later
    assert not any(feed(budget, 30, 30, 4, t0=12.0))
