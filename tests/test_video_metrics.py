"""Frame-level and blink-level scoring: counts, one-to-one matching, tolerance, pooling, label files."""
import itertools
import json
import random
from pathlib import Path

import pytest

from pipeline.video_metrics import (blink_metrics, counter_metrics, events, frame_metrics, load_labels, load_tag, load_timestamps,
                                    match_events, pool_counters, shift_labels, summarize)

FOCUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "videos" / "focus"
FOCUS_NAMES = {"mahie_test_1": 8, "mahie_test_4_low_fps": 12, "soniya_test_5_low_fps": 9}


def flags(n, runs):
    out = [0] * n
    for first, last in runs:
        out[first:last + 1] = [1] * (last - first + 1)
    return out


def test_frame_counts_on_a_hand_made_sequence():
    pred = [0, 1, 1, 0, 0, 1, 0, 0]
    true = [0, 0, 1, 1, 0, 1, 0, 0]
    m = frame_metrics(pred, true)
    assert (m["tp"], m["fp"], m["fn"], m["tn"], m["frames"]) == (2, 1, 1, 4, 8)
    assert m["precision"] == pytest.approx(2 / 3) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)


def test_shift_labels():
    assert shift_labels([0, 1, 1, 0, 0], 1) == [0, 0, 1, 1, 0]
    assert shift_labels([0, 1, 1, 0, 0], -1) == [1, 1, 0, 0, 0]
    assert shift_labels([1, 0, 0], 2) == [1, 1, 1]
    assert shift_labels([0, 1], 5) == [0, 0]


def test_events_are_maximal_runs():
    assert events([1, 1, 0, 0, 1, 0, 1, 1]) == [(0, 1), (4, 4), (6, 7)]
    assert events([0, 0]) == []


def test_detector_firing_every_frame_is_not_perfect():
    labels = flags(200, [(10, 13), (50, 53), (120, 125)])
    m = blink_metrics([1] * 200, labels)
    assert (m["tp"], m["fp"], m["fn"]) == (1, 0, 2)
    assert m["recall"] == pytest.approx(1 / 3) and m["f1"] < 1.0
    assert frame_metrics([1] * 200, labels)["precision"] < 0.1


def test_exact_blink_counts_on_a_hand_made_sequence():
    labels = flags(100, [(10, 12), (30, 33), (60, 62)])
    pred = flags(100, [(11, 12), (20, 21), (34, 36), (80, 81)])
    m = blink_metrics(pred, labels)
    assert (m["tp"], m["fp"], m["fn"], m["predicted"], m["labelled"]) == (2, 2, 1, 4, 3)
    assert m["precision"] == pytest.approx(0.5) and m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(4 / 7)


def test_one_prediction_spanning_two_blinks_matches_one():
    labels = flags(50, [(10, 12), (16, 18)])
    assert blink_metrics(flags(50, [(10, 18)]), labels)["tp"] == 1
    # two predictions near one label: one tp, one fp
    m = blink_metrics(flags(50, [(8, 9), (11, 12)]), flags(50, [(10, 12)]))
    assert (m["tp"], m["fp"], m["fn"]) == (1, 1, 0)


@pytest.mark.parametrize("offset,matches", [(4, True), (5, False), (-4, True), (-5, False)])
def test_tolerance_edges(offset, matches):
    labels = flags(60, [(20, 22)])
    pred = flags(60, [(22 + offset, 22 + offset)] if offset > 0 else [(20 + offset, 20 + offset)])
    assert blink_metrics(pred, labels, tolerance=4)["tp"] == int(matches)


def test_zero_tolerance_needs_overlap():
    assert match_events([(5, 6)], [(6, 8)], tolerance=0) == [(0, 0)]
    assert match_events([(5, 5)], [(6, 8)], tolerance=0) == []


def _maximum_matching_size(preds, labels, tolerance):
    def ok(p, l):
        return p[0] <= l[1] + tolerance and p[1] >= l[0] - tolerance
    best = 0
    for k in range(min(len(preds), len(labels)), 0, -1):
        for chosen in itertools.combinations(range(len(labels)), k):
            for perm in itertools.permutations(range(len(preds)), k):
                if all(ok(preds[p], labels[l]) for p, l in zip(perm, chosen)):
                    return k
    return best


def test_matching_is_maximum_on_random_sequences():
    rng = random.Random(0)
    checked = 0
    while checked < 300:  # sequences with at most 6 runs each (the brute force's limit)
        n = rng.choice([12, 20, 30])
        pred = [int(rng.random() < 0.3) for _ in range(n)]
        true = [int(rng.random() < 0.25) for _ in range(n)]
        p_runs, l_runs = events(pred), events(true)
        if len(p_runs) > 6 or len(l_runs) > 6:
            continue
        checked += 1
        tolerance = rng.choice([0, 1, 2, 4])
        pairs = match_events(p_runs, l_runs, tolerance)
        assert len({p for p, _ in pairs}) == len({l for _, l in pairs}) == len(pairs)
        assert len(pairs) == _maximum_matching_size(p_runs, l_runs, tolerance)


def test_summarize_pools_by_summing_counts():
    videos = {
        "a": (flags(30, [(5, 6)]), flags(30, [(5, 6)])),                        # blink tp 1
        "b": (flags(30, [(2, 3), (12, 13), (22, 23)]), flags(30, [(12, 14)])),   # tp 1, fp 2
    }
    result = summarize(videos)
    assert set(result) == {"videos", "pooled"}
    assert set(result["videos"]) == {"a", "b"}
    pooled = result["pooled"]
    assert (pooled["blink"]["tp"], pooled["blink"]["fp"], pooled["blink"]["fn"]) == (2, 2, 0)
    assert pooled["blink"]["f1"] == pytest.approx(2 / 3)   # not the mean of 1.0 and 0.5
    assert pooled["frame"]["tp"] == 4 and pooled["frame"]["fn"] == 1 and pooled["frames"] == 60
    for entry in list(result["videos"].values()) + [pooled]:
        for key in ("frame", "blink", "frame_shifted"):
            assert {"precision", "recall", "f1", "tp", "fp", "fn"} <= set(entry[key])
    assert result["videos"]["a"]["frame_shifted"]["tp"] == 1     # labels one frame later
    json.dumps(result)
    assert "frame_shifted" not in summarize(videos, label_shift=0)["pooled"]


def test_empty_video_has_perfect_scores_by_convention():
    m = blink_metrics([0] * 5, [0] * 5)
    assert m["f1"] == 1.0 and m["tp"] == m["fp"] == m["fn"] == 0


def test_bad_input_is_rejected_clearly(tmp_path):
    with pytest.raises(ValueError, match="lengths must match"):
        frame_metrics([0, 1], [0, 1, 0])
    with pytest.raises(ValueError, match=r"pred_closed\[1\] = None"):
        frame_metrics([0, None], [0, 1])
    with pytest.raises(ValueError, match="video 'x'"):
        summarize({"x": ([0, 1], [0])})
    with pytest.raises(ValueError, match="time order"):
        match_events([(5, 6), (1, 2)], [])
    bad = tmp_path / "bad_ideal.csv"
    bad.write_text("0\n1\n2\n")
    with pytest.raises(ValueError, match=":3: expected 0 or 1"):
        load_labels(bad)
    broken = tmp_path / "t.txt"
    broken.write_text("[1.0, ")
    with pytest.raises(ValueError, match="JSON list"):
        load_timestamps(broken)


def test_label_file_with_bom_and_timestamps(tmp_path):
    path = tmp_path / "v_ideal.csv"
    path.write_bytes(b"\xef\xbb\xbf0\n1\n1\n0\n")
    assert load_labels(path) == [0, 1, 1, 0]
    times = tmp_path / "v_timestamps.txt"
    times.write_text(json.dumps(["2025-02-17 04:30:23.453145", "2025-02-17 04:30:23.553145"]))
    assert load_timestamps(times) == pytest.approx([0.0, 0.1])


def test_label_and_timestamp_files_in_other_common_shapes(tmp_path):
    """A header line, pandas-style floats or booleans; times one per line instead of a JSON list."""
    path = tmp_path / "v_ideal.csv"
    path.write_text("closed\n0\n1.0\nTrue\n\n0.0\n")
    assert load_labels(path) == [0, 1, 1, 0]
    path.write_text("closed\n0\nclosed\n")  # only the first line may be a header
    with pytest.raises(ValueError, match=":3: expected 0 or 1"):
        load_labels(path)
    path.write_text("2\n0\n1\n")  # ... and not a number: taken for a header, it shifted every label by a frame
    with pytest.raises(ValueError, match=":1: expected 0 or 1 per line .* got '2'"):
        load_labels(path)
    times = tmp_path / "v_timestamps.txt"
    times.write_text("12.5\n12.6\n\n12.75\n")
    assert load_timestamps(times) == pytest.approx([0.0, 0.1, 0.25])
    times.write_text("2025-02-17 04:30:23.453145\n2025-02-17 04:30:23.553145\n")
    assert load_timestamps(times) == pytest.approx([0.0, 0.1])
    times.write_text("0\n84.086\n201.295\n")  # milliseconds: no blink could be seen at these times as seconds
    with pytest.raises(ValueError, match="median 117.209 apart, under one frame a second: .* milliseconds"):
        load_timestamps(times)
    times.write_text("5.0\n5.0\n5.0\n")
    with pytest.raises(ValueError, match="frame times do not advance"):
        load_timestamps(times)
    times.write_text("12.5\nsoon\n")
    with pytest.raises(ValueError, match=r"\[1\]: 'soon' is neither seconds nor an ISO date-time"):
        load_timestamps(times)


@pytest.mark.shared
@pytest.mark.skipif(not FOCUS.is_dir(), reason=f"shared focus videos not found at {FOCUS}")
def test_focus_labels_against_themselves():
    videos = {}
    for name, expected in FOCUS_NAMES.items():
        labels = load_labels(FOCUS / f"{name}_ideal.csv")
        assert len(labels) == len(load_timestamps(FOCUS / f"{name}_timestamps.txt"))
        assert len(events(labels)) == expected
        videos[name] = (labels, labels)
    result = summarize(videos)
    for entry in list(result["videos"].values()) + [result["pooled"]]:
        assert entry["frame"]["f1"] == 1.0 and entry["blink"]["f1"] == 1.0
    assert result["pooled"]["blink"]["labelled"] == sum(FOCUS_NAMES.values()) == 29
    # shifting by one frame keeps every blink (tolerance) but costs frame-level F1
    shifted = {name: (shift_labels(labels, 1), labels) for name, (labels, _) in videos.items()}
    pooled = summarize(shifted)["pooled"]
    assert pooled["blink"]["f1"] == 1.0 and pooled["frame"]["f1"] < 1.0


TAG_HEADER = "#header\nsome text the annotation tool writes\n#start\n"


def _tag_record(frame: int, blink: int, closed: bool = False) -> str:
    flag = "C" if closed else "X"
    return f"{frame}:{blink}:X:{flag}:X:{flag}:X:240:204:138:122:258:224:283:225:320:226:347:224\n"


def test_eyeblink8_tag_files_give_one_flag_per_frame(tmp_path):
    """Frames inside a labelled blink (blink ID >= 0) are 1, whatever the eye flags say; frame IDs count from 0; a
    frame without a record counts as open; two blinks give two events."""
    path = tmp_path / "26122013_223310_cam.tag"
    records = [_tag_record(0, -1), _tag_record(1, 1), _tag_record(2, 1, closed=True), _tag_record(3, 1),
               _tag_record(4, -1), _tag_record(6, -1), _tag_record(7, 2, closed=True), _tag_record(8, -1)]
    path.write_text(TAG_HEADER + "".join(records) + "#end\n", newline="\r\n")
    flags = load_tag(path)
    assert flags == [0, 1, 1, 1, 0, 0, 0, 1, 0]
    assert events(flags) == [(1, 3), (7, 7)]
    path.write_text(TAG_HEADER + _tag_record(0, -1) + _tag_record(1, 0))  # no #end: read to the end of the file
    assert load_tag(path) == [0, 1]


def test_bad_tag_files_are_rejected_clearly(tmp_path):
    path = tmp_path / "v.tag"
    for text, message in [
            ("0:-1:X\n1:1:X\n", "no '#start' line"),
            (TAG_HEADER + "#end\n", "no records between"),
            (TAG_HEADER + _tag_record(0, -1) + "one:two:X\n", r"v.tag:5: expected 'frame ID:blink ID:...'"),
            (TAG_HEADER + _tag_record(0, -1) + _tag_record(0, 1), "v.tag:5: frame 0 has a second record"),
            (TAG_HEADER + _tag_record(0, -3), "out of range")]:
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            load_tag(path)


def test_frame_time_pairs_are_read_in_frame_order(tmp_path):
    """The `.txt` beside an Eyeblink8 video: `frame time` per line."""
    times = tmp_path / "v.txt"
    times.write_text("1 10.1\n0 10.0\n2 10.25\n")
    assert load_timestamps(times) == pytest.approx([0.0, 0.1, 0.25])


def test_frame_times_that_go_backwards_are_rejected_before_any_replay(tmp_path):
    times = tmp_path / "v_timestamps.txt"
    times.write_text(json.dumps(["2025-02-17 04:30:23.4", "2025-02-17 04:30:23.5", "2025-02-17 04:30:23.45"]))
    with pytest.raises(ValueError, match=r"\[2\]: frame time .* is earlier than the one before it"):
        load_timestamps(times)
    times.write_text("1.0\n1.0\n1.1\n")  # a repeated time is allowed (the tracker takes it)
    assert load_timestamps(times) == pytest.approx([0.0, 0.0, 0.1])


def test_frame_times_that_are_not_finite_name_the_file_and_line(tmp_path):
    times = tmp_path / "v_timestamps.txt"
    times.write_text("0.0\n0.1\n\nnan\n0.3\n")
    with pytest.raises(ValueError, match=r"v_timestamps.txt:4: frame time nan is not a finite number of seconds"):
        load_timestamps(times)
    times.write_text("0 10.0\n1 inf\n")
    with pytest.raises(ValueError, match=r"v_timestamps.txt:2: frame time inf is not"):
        load_timestamps(times)
    times.write_text("[0.0, 0.1, Infinity]")
    with pytest.raises(ValueError, match=r"v_timestamps.txt\[2\]: frame time inf is not"):
        load_timestamps(times)


def test_blink_counter_is_scored_against_labelled_closures_that_can_be_blinks():
    """Two labelled blinks and a 2 s closure at 10 fps; the counter found the first blink, missed the second, left
    the long closure out (right) and counted one blink the labels lack."""
    times = [i / 10 for i in range(80)]
    labels = [0] * 80
    for a, b in ((5, 6), (20, 21), (40, 60)):
        labels[a:b + 1] = [1] * (b - a + 1)
    ids = [0] * 80
    ids[5:7] = [1, 1]
    ids[70:72] = [2, 2]
    m = counter_metrics(ids, labels, times, max_blink_s=0.5)
    assert (m["tp"], m["fp"], m["fn"], m["labelled"], m["long_closures"]) == (1, 1, 1, 2, 1)
    pooled = pool_counters([m, m])
    assert (pooled["tp"], pooled["labelled"], pooled["long_closures"]) == (2, 4, 2) and pooled["f1"] == m["f1"]
    with pytest.raises(ValueError, match="lengths must match"):
        counter_metrics(ids[:-1], labels, times, 0.5)
