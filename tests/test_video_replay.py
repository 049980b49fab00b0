import csv
import json
from pathlib import Path

import pytest

from face_helpers import DEMO, FOCUS, MAHIE_1, ROOT, face_models_dir, needs_shared

pytest.importorskip("onnxruntime")
pytest.importorskip("cv2")

pytestmark = [needs_shared, pytest.mark.shared]


def replay(args, capsys):
    from pipeline.video import main

    code = main([*map(str, args), "--models-dir", str(face_models_dir())])
    return code, capsys.readouterr()


def test_replay_writes_one_row_per_frame_and_scores(tmp_path, capsys):
    from pipeline.video_metrics import load_timestamps

    out_csv, out_json = tmp_path / "frames.csv", tmp_path / "metrics.json"
    code, out = replay([MAHIE_1, "--max-frames", 120, "--csv", out_csv, "--json", out_json], capsys)
    assert code == 0, out.err
    rows = list(csv.DictReader(open(out_csv)))
    assert len(rows) == 120
    assert [int(r["frame"]) for r in rows] == list(range(120))
    for column in ("time", "p_open_left", "p_open_right", "eyelid_left", "eyelid_right", "state_left",
                   "state_right", "both_closed", "blink_id", "alarm"):
        assert column in rows[0]
    # the timestamps file beside the video is used
    times = load_timestamps(FOCUS / "mahie_test_1_timestamps.txt")
    assert [float(r["time"]) for r in rows[:5]] == pytest.approx(times[:5], abs=1e-3)
    # a face is found and eyes are labelled on (nearly) every frame of this clip
    assert sum(r["state_left"] != "unknown" for r in rows) > 110
    assert all(0.0 <= float(r["p_open_left"]) <= 1.0 for r in rows if r["p_open_left"])
    report = json.loads(out_json.read_text())
    video = report["videos"]["mahie_test_1"]
    for level in ("frame", "blink"):
        for key in ("precision", "recall", "f1", "tp", "fp", "fn"):
            assert key in video[level] and key in report["pooled"][level]
    assert "frame_shifted" in report["pooled"]
    assert video["timings"]["total"]["frames"] == 120


def test_corrupt_video_gets_a_clear_message(tmp_path, capsys):
    bad = tmp_path / "broken.avi"
    bad.write_bytes(b"RIFF\x00\x00not really a video" * 10)
    code, out = replay([bad], capsys)
    assert code == 2
    assert "broken.avi" in out.err and ("cannot open" in out.err or "no frame could be decoded" in out.err)


def test_label_file_of_the_wrong_length_is_rejected(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    video.symlink_to(MAHIE_1)  # a link, not a copy of the shared data
    (tmp_path / "clip_ideal.csv").write_text("0\n1\n0\n")
    code, out = replay([video], capsys)
    assert code == 2
    assert "3 entries" in out.err and "1790 frames" in out.err


def _fake_replay(replayed: list):
    """pipeline.video.replay standing in for the real one: records the video, gives `max_frames` open-eye rows."""
    def fake(path, pipeline, tracker, times, max_frames, *args, **kwargs):
        replayed.append(path)
        rows = [{"frame": i, "time": i / 30, "both_closed": 0, "blink_id": 0, "face": 1, "eyes_dark": 0,
                 "eyes_bright": 0, "eyes_small": 0}
                for i in range(max_frames)]
        return {"rows": rows, "blinks": [], "alarms": 0, "timings": {}, "frames": max_frames}
    return fake


def test_every_input_is_checked_before_any_replay(tmp_path, capsys, monkeypatch):
    """A wrong label file or a missing video is reported before any replay; the other videos are still replayed,
    scored and written, and the exit status says that something failed. A single bad video stops at once."""
    from pipeline import video as V

    replayed = []
    monkeypatch.setattr(V, "replay", _fake_replay(replayed))
    bad = tmp_path / "clip.avi"
    bad.symlink_to(MAHIE_1)
    (tmp_path / "clip_ideal.csv").write_text("0\n" * 1789)
    code, out = replay([bad], capsys)
    assert code == 2 and "1789 entries" in out.err and "1790 frames" in out.err and replayed == []
    (tmp_path / "clip_ideal.csv").write_text("0\n" * 3)
    out_json = tmp_path / "report.json"
    code, out = replay([bad, MAHIE_1, tmp_path / "nope.avi", "--max-frames", 5, "--json", out_json], capsys)
    assert code == 1 and replayed == [MAHIE_1]
    assert "3 entries, fewer than the 5 frames" in out.err and "no such video file" in out.err
    report = json.loads(out_json.read_text())
    assert list(report["videos"]) == ["mahie_test_1"] and report["pooled"]["n_videos"] == 1
    assert sorted(report["errors"]) == sorted([str(bad), str(tmp_path / "nope.avi")])


def test_labels_are_checked_against_decoded_frames_when_the_header_count_is_wrong(tmp_path, monkeypatch):
    """Containers can carry a missing or estimated frame count (MP4, WebM); labels that match the frames that
    actually decode are accepted, and a wrong file is still called wrong, with the decoded count."""
    from pipeline import video as V
    from pipeline.video_metrics import load_labels

    truth = load_labels(FOCUS / "mahie_test_1_ideal.csv")
    short = tmp_path / "short.csv"
    short.write_text("".join(f"{v}\n" for v in truth[:-1]))
    for header_count in (1800, 0, -1):
        monkeypatch.setattr(V, "video_info", lambda path, n=header_count: (30.0, n))
        [(_, _, labels, times, expected)] = V.checked_inputs([MAHIE_1], None, None)
        assert labels == truth and len(times) == expected == 1790
        with pytest.raises(V.VideoError, match="has 1789 entries but the video has 1790 frames"):
            V.checked_inputs([MAHIE_1], [short], None)


def test_missing_video_is_reported(tmp_path, capsys):
    code, out = replay([tmp_path / "nope.avi"], capsys)
    assert code == 2 and "no such video file" in out.err


def test_replay_of_the_labelled_no_glasses_clip(tmp_path, capsys):
    """The demo clip of a man without glasses, with this project's own labels (labels/README.md): six blinks and two
    closures of 2.4 and 2.7 s. Measured with the shipped model: every closed frame and every closure found, 6 blinks
    counted (the long closures are not blinks). Floors leave a few frames of room."""
    video = DEMO / "repeating_Blink-Detector__video.mp4"
    labels = ROOT / "labels" / "repeating_Blink-Detector__video_ideal.csv"
    out_json, out_csv = tmp_path / "demo.json", tmp_path / "demo.csv"
    code, out = replay([video, "--labels", labels, "--json", out_json, "--csv", out_csv], capsys)
    assert code == 0, out.err
    result = json.loads(out_json.read_text())["videos"]["repeating_Blink-Detector__video"]
    # the CSV's blink ids sit on exactly the closed frames of each counted blink (sample-and-hold timing)
    rows = list(csv.DictReader(open(out_csv)))
    ids = [int(r["blink_id"]) for r in rows]
    assert sorted(set(ids) - {0}) == list(range(1, 7))
    for k in range(1, 7):
        frames = [i for i, v in enumerate(ids) if v == k]
        assert all(rows[i]["both_closed"] == "1" for i in frames)
        assert rows[frames[0] - 1]["both_closed"] == "0" and rows[frames[-1] + 1]["both_closed"] == "0"
    assert result["blink"]["labelled"] == 8 and result["blink"]["tp"] == 8 and result["blink"]["fp"] == 0
    assert result["blinks"] == 6  # the blink counter leaves the two long closures out ...
    counter = result["blink_counter"]
    assert (counter["tp"], counter["labelled"], counter["fp"], counter["long_closures"]) == (6, 6, 0, 2)
    assert result["alarms"] == 2  # ... and each raises the microsleep alarm once
    assert result["frame"]["f1"] >= 0.95


def test_the_alarm_delay_option_counts_only_longer_closures(tmp_path, capsys):
    """Same clip, `--alarm-after 2.5` (the page's alarm setting): only the 2.7 s closure raises the alarm."""
    video = DEMO / "repeating_Blink-Detector__video.mp4"
    out_json = tmp_path / "demo.json"
    code, out = replay([video, "--alarm-after", "2.5", "--json", out_json], capsys)
    assert code == 0, out.err
    report = json.loads(out_json.read_text())
    assert report["videos"]["repeating_Blink-Detector__video"]["alarms"] == 1
    assert report["config"]["temporal"]["alarm_after_s"] == 2.5
    with pytest.raises(SystemExit):
        replay([video, "--alarm-after", "0"], capsys)
    assert "expected seconds > 0" in capsys.readouterr().err


def _as_tag_files(labels: list, times: list, tag: Path, frames_txt: Path) -> None:
    """The focus labels rewritten in the Eyeblink8 format: blink IDs on each labelled run, `frame time` pairs."""
    from pipeline.video_metrics import events

    blink_of = {}
    for number, (first, last) in enumerate(events(labels), start=1):
        blink_of.update({frame: number for frame in range(first, last + 1)})
    records = "".join(f"{i}:{blink_of.get(i, -1)}:X:X:X:X:X:0:0:0:0:0:0:0:0:0:0:0:0\n" for i in range(len(labels)))
    tag.write_text(f"#tool header\n#start\n{records}#end\n")
    frames_txt.write_text("".join(f"{i} {t:.6f}\n" for i, t in enumerate(times)))


def test_eyeblink8_tag_labels_score_the_same_as_the_focus_csv(tmp_path, capsys):
    """The same labels and frame times as a `.tag` + `.txt` pair beside the video (Eyeblink8's layout, found
    without --labels) give the same scores and times as the focus CSV files."""
    from pipeline import video as V
    from pipeline.video_metrics import load_labels, load_timestamps

    labels = load_labels(FOCUS / "mahie_test_1_ideal.csv")
    times = load_timestamps(FOCUS / "mahie_test_1_timestamps.txt")
    video = tmp_path / "eyeblink8_style.avi"
    video.symlink_to(MAHIE_1)
    _as_tag_files(labels, times, tmp_path / "eyeblink8_style.tag", tmp_path / "eyeblink8_style.txt")
    [(_, label_path, truth, tag_times, expected)] = V.checked_inputs([video], None, None)
    assert label_path.suffix == ".tag" and truth == labels and expected == 1790
    assert tag_times == pytest.approx(times, abs=1e-5)

    out_json = tmp_path / "both.json"
    code, out = replay([MAHIE_1, video, "--max-frames", 240, "--json", out_json], capsys)
    assert code == 0, out.err
    report = json.loads(out_json.read_text())["videos"]
    focus, tag = report["mahie_test_1"], report["eyeblink8_style"]
    assert focus["blink"]["labelled"] >= 1  # the first 240 frames hold blinks
    for level in ("frame", "frame_shifted", "blink"):
        assert tag[level] == focus[level]


def test_a_tag_shorter_than_the_video_leaves_the_rest_open_and_a_longer_one_is_rejected(tmp_path):
    from pipeline import video as V

    video = tmp_path / "clip.avi"
    video.symlink_to(MAHIE_1)
    tag = tmp_path / "clip.tag"
    tag.write_text("#start\n0:-1\n1:4\n2:4\n#end\n")
    (tmp_path / "clip.txt").write_text("0 0.0\n1 0.033\n")  # times for 2 of 1790 frames: not used
    [(_, _, truth, times, expected)] = V.checked_inputs([video], None, None)
    assert truth[:4] == [0, 1, 1, 0] and len(truth) == expected == 1790 and sum(truth) == 2
    assert times is None
    tag.write_text("#start\n1790:-1\n#end\n")
    with pytest.raises(V.VideoError, match="records up to frame 1790 but clip.avi has 1790 frames"):
        V.checked_inputs([video], None, None)


def test_outputs_and_short_labels_are_checked_before_any_replay(tmp_path, capsys, monkeypatch):
    """With --max-frames a label file shorter than the frames to replay is refused up front, and an output folder
    that does not exist yet is made, so minutes of replay are never lost at the end."""
    from pipeline import video as V

    replayed = []
    monkeypatch.setattr(V, "replay", _fake_replay(replayed))
    short = tmp_path / "short.csv"
    short.write_text("0\n" * 50)
    code, out = replay([MAHIE_1, "--labels", short, "--max-frames", 100], capsys)
    assert code == 2 and "50 entries, fewer than the 100 frames to replay" in out.err and replayed == []
    monkeypatch.undo()
    target = tmp_path / "new" / "folder" / "frames.csv"
    code, out = replay([MAHIE_1, "--max-frames", 5, "--csv", target], capsys)
    assert code == 0, out.err
    assert len(target.read_text().splitlines()) == 6


def test_a_model_file_that_is_not_an_eye_classifier_is_refused_up_front(tmp_path, capsys):
    notes = tmp_path / "notes.onnx"
    notes.write_text("not a model\n" * 10)
    code, out = replay([MAHIE_1, "--model", notes, "--max-frames", 3], capsys)
    assert code == 2 and "cannot load the models" in out.err and "notes.onnx" in out.err
    face_mesh = face_models_dir() / "face_landmark.onnx"  # a real ONNX model, but not for eye crops
    code, out = replay([MAHIE_1, "--model", face_mesh, "--max-frames", 3], capsys)
    assert code == 2 and "its input is [1, 192, 192, 3], expected [N, 1, 48, 48]" in out.err


def test_a_folder_given_as_a_video_says_to_give_its_videos(tmp_path, capsys):
    code, out = replay([tmp_path, "--no-iris"], capsys)
    assert code == 2 and f"{tmp_path} is a folder; expected a video file" in out.err


def _write_video(path: Path, frames: int, keep: float = 1.0) -> None:
    """A small MJPG clip of noise; keep < 1 cuts the file, so its header promises more frames than decode."""
    import cv2
    import numpy as np

    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (48, 64, 3), np.uint8))
    writer.release()
    data = path.read_bytes()
    path.write_bytes(data[:int(len(data) * keep)])


def test_labels_that_do_not_fit_the_decoded_frames_cost_no_other_video(tmp_path, capsys):
    """B's header announces as many frames as its labels, but the file is cut: found only after its replay. A's
    result is still scored and written, B's rows too (unscored), and the exit status is 1."""
    good, cut = tmp_path / "a.avi", tmp_path / "b.avi"
    _write_video(good, 12)
    _write_video(cut, 40, keep=0.25)
    for video, n in ((good, 12), (cut, 40)):
        video.with_name(video.stem + "_ideal.csv").write_text("0\n" * n)
    out_csv, out_json = tmp_path / "frames.csv", tmp_path / "report.json"
    code, out = replay([good, cut, "--no-iris", "--csv", out_csv, "--json", out_json], capsys)
    assert code == 1
    assert "label file" in out.err and "b_ideal.csv has 40 labels but" in out.err and "truncated file?" in out.err
    report = json.loads(out_json.read_text())
    assert report["pooled"]["n_videos"] == 1
    assert "frame" in report["videos"]["a"] and "frame" not in report["videos"]["b"]
    assert list(report["errors"]) == [str(cut)]
    rows = list(csv.DictReader(open(out_csv)))
    assert sum(r["video"] == "a" for r in rows) == 12 and 0 < sum(r["video"] == "b" for r in rows) < 40

    (tmp_path / "b_ideal.csv").unlink()
    code, out = replay([cut, "--no-iris"], capsys)  # without labels: a note, not an error
    assert code == 0 and "frames decoded of the 40 its header announces (a truncated file?)" in out.err


def test_max_frames_past_the_end_of_a_video_still_needs_one_label_and_one_time_per_frame(tmp_path, capsys):
    """--max-frames cuts the labels and frame times only where it cut the video: a 12-frame clip with 20 labels (or
    20 frame times) replayed with --max-frames 50 is not scored on the first 12 of them, silently."""
    video = tmp_path / "clip.avi"
    _write_video(video, 12)
    labels = tmp_path / "clip_ideal.csv"
    labels.write_text("0\n" * 20)
    code, out = replay([video, "--no-iris", "--max-frames", 50], capsys)
    assert code == 1 and "has 20 labels but 12 frames were decoded" in out.err
    code, out = replay([video, "--no-iris", "--max-frames", 8], capsys)  # cut by --max-frames: scored on 8
    assert code == 0 and "frame F1" in out.out, out.err
    labels.write_text("0\n" * 12)
    (tmp_path / "clip_timestamps.txt").write_text("".join(f"{i / 30}\n" for i in range(20)))
    code, out = replay([video, "--no-iris", "--max-frames", 50], capsys)
    assert code == 1 and "timestamp file for clip.avi has 20 entries but 12 frames were decoded" in out.err


def test_label_paths_that_are_folders_and_videos_given_twice_get_a_message(tmp_path, capsys):
    video = tmp_path / "clip.avi"
    _write_video(video, 6)
    folder = tmp_path / "labels"
    folder.mkdir()
    code, out = replay([video, "--no-iris", "--labels", folder], capsys)
    assert code == 2 and f"label file {folder} is a folder; expected a file" in out.err
    code, out = replay([video, tmp_path / "." / "clip.avi", "--no-iris"], capsys)
    assert code == 2 and "is given twice" in out.err


def test_videos_of_the_same_name_keep_their_own_rows(tmp_path, capsys):
    """a/clip, x/clip#2 and b/clip: b's rows must not take the name x's rows already have."""
    videos = []
    for folder, stem, frames in (("a", "clip", 4), ("x", "clip#2", 5), ("b", "clip", 6)):
        (tmp_path / folder).mkdir()
        videos.append(tmp_path / folder / f"{stem}.avi")
        _write_video(videos[-1], frames)
    out_csv, out_json = tmp_path / "frames.csv", tmp_path / "metrics.json"
    code, out = replay([*videos, "--no-iris", "--csv", out_csv, "--json", out_json], capsys)
    assert code == 0, out.err
    rows = list(csv.DictReader(open(out_csv)))
    counts = {name: sum(r["video"] == name for r in rows) for name in {r["video"] for r in rows}}
    assert sorted(counts.values()) == [4, 5, 6] and counts["clip"] == 4 and counts["clip#2"] == 5
    # each name's file is said in the JSON: which "clip" is which does not depend on the order given
    paths = {name: v["path"] for name, v in json.loads(out_json.read_text())["videos"].items()}
    assert sorted(paths.values()) == sorted(str(v) for v in videos) and paths["clip"] == str(videos[0])


def test_frame_times_beside_a_tag_that_do_not_fit_fall_back_also_with_max_frames(tmp_path, capsys):
    """Any .txt may sit beside an Eyeblink8-style video: times for fewer or more frames than it has are not used (a
    note), with --max-frames as without it. A cut file whose header promises more frames is scored on the frames
    that decode (the .tag's labels are padded to those), with --max-frames past its end too."""
    video = tmp_path / "clip.avi"
    _write_video(video, 60)
    (tmp_path / "clip.tag").write_text("#start\n10:1\n11:1\n#end\n")
    for times in (40, 70):
        (tmp_path / "clip.txt").write_text("".join(f"{i} {i / 30}\n" for i in range(times)))
        for extra in ([], ["--max-frames", 50], ["--max-frames", 100]):
            code, out = replay([video, "--no-iris", *extra], capsys)
            assert code == 0 and "using the video's own frame times instead" in out.err, (times, extra, out.err)
    (tmp_path / "clip.txt").unlink()
    _write_video(video, 60, keep=0.8)
    for extra in ([], ["--max-frames", 1000]):
        code, out = replay([video, "--no-iris", *extra], capsys)
        assert code == 0 and "frame F1" in out.out, (extra, out.err)


def test_the_pages_rgba_build_and_bad_options_are_refused_before_any_replay(rgba_eye_model, tmp_path, capsys):
    code, out = replay([MAHIE_1, "--model", rgba_eye_model, "--max-frames", 3], capsys)
    assert code == 2 and "RGBA build" in out.err and "give --model models/eye_state.onnx" in out.err
    for args, message in ((["--csv", tmp_path], f"argument --csv: {tmp_path} is an existing folder"),
                          (["--json", tmp_path], f"argument --json: {tmp_path} is an existing folder"),
                          (["--max-frames", 0], "argument --max-frames: 0: expected a whole number of at least 1"),
                          (["--landmark-hold", -1], "argument --landmark-hold: -1: expected a number of at least 0"),
                          (["--models-dir", MAHIE_1], f"argument --models-dir: {MAHIE_1} is a file; expected a folder"),
                          (["--model", ROOT / "models" / "eye_state.pth"], "expected the ONNX eye-state model"),
                          # the results must not replace the video's labels, the video, or each other
                          (["--csv", MAHIE_1.with_name(MAHIE_1.stem + "_ideal.csv")], "is one of the input files"),
                          (["--json", MAHIE_1], "is one of the input files"),
                          (["--csv", tmp_path / "r", "--json", tmp_path / "r"], "--csv and --json both name")):
        with pytest.raises(SystemExit):
            replay([MAHIE_1, *args], capsys)
        assert message in capsys.readouterr().err


def test_a_clip_of_varying_frame_rate_is_timed_by_its_own_frame_times(tmp_path, capsys):
    """Phones and browser recordings change their frame rate as the light changes; the page times each frame of a clip
    by its own presentation time (mediaTime), so must the replay. The no-glasses demo clip's first 200 frames, the
    138 before its 2.4 s closure sped up 8 times: the header then says about 60 fps, which would make the closure
    last under a second (no alarm) and count the sped-up 20 ms closures as 4 blinks. By the frames' own times the
    closure raises the microsleep alarm and the 20 ms closures are flicker."""
    import shutil

    import cv2

    if not shutil.which("ffmpeg"):
        pytest.skip("ffmpeg not found (apt-get install ffmpeg; scripts/test.sh does it)")
    from browser_utils import varying_rate_demo_clip

    clip = varying_rate_demo_clip(tmp_path / "vfr.mp4")
    capture = cv2.VideoCapture(str(clip))
    header_fps, decoded = capture.get(cv2.CAP_PROP_FPS), []
    while capture.grab():
        decoded.append(capture.get(cv2.CAP_PROP_POS_MSEC) / 1000)
    capture.release()
    assert len(decoded) == 200 and header_fps > 50 and decoded[-1] == pytest.approx(3.26, abs=0.01)

    out_json, out_csv = tmp_path / "vfr.json", tmp_path / "vfr.csv"
    code, out = replay([clip, "--json", out_json, "--csv", out_csv], capsys)
    assert code == 0, out.err
    rows = list(csv.DictReader(open(out_csv)))
    assert [float(r["time"]) for r in rows] == pytest.approx(decoded, abs=1e-3)
    result = json.loads(out_json.read_text())["videos"]["vfr"]
    assert result["alarms"] == 1 and result["blinks"] == 0


def test_frames_without_their_own_time_are_timed_by_the_frame_rate():
    from pipeline.video import next_frame_time

    assert next_frame_time(None, None, 25.0) == 0.0 and next_frame_time(0.5, None, 25.0) == 0.5  # the first frame
    assert next_frame_time(0.54, 0.5, 25.0) == 0.54  # its own time
    assert next_frame_time(None, 0.5, 25.0) == pytest.approx(0.54)  # none given: one frame step on
    assert next_frame_time(0.5, 0.5, 25.0) == pytest.approx(0.54)  # not after the previous frame: the same
    assert next_frame_time(0.3, 0.5, 25.0) == pytest.approx(0.54)
