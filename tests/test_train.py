"""pipeline.train: a real smoke training on MRL subjects, resume after an interruption, early clear failures."""
from __future__ import annotations

import json
import sys

import cv2
import numpy as np
import pytest
import torch

from conftest import pretrained_stand_in

from pipeline.data import load_any
from pipeline.evaluate import evaluate_arrays, select_part, torch_predictor
from pipeline.models import load_checkpoint, read_torch_file
from pipeline.preprocess import spec_from_dict
from pipeline.train import main, mixup_batch

from conftest import SPLIT_FILE


@pytest.mark.shared
def test_smoke_training_beats_chance_on_held_out_subjects(smoke_run, small_mrl_zip):
    for name in ("best.pth", "last.pth", "history.csv", "history.json", "curves.png"):
        assert (smoke_run / name).is_file(), name
    info = json.loads((smoke_run / "history.json").read_text())
    assert len(info["history"]) == 4 and info["summary"]["finished"] == "completed 4 epochs"
    assert all(row["images_per_s"] > 0 for row in info["history"])
    model, ckpt = load_checkpoint(smoke_run / "best.pth")
    assert {"model", "num_classes", "in_chans", "state_dict", "preprocess", "classes", "epoch", "best_val_macro_f1",
            "args", "split"} <= set(ckpt)
    assert ckpt["preprocess"]["size"] == 32
    assert ckpt["split"]["test"] == json.loads(SPLIT_FILE.read_text())["test"]
    spec = spec_from_dict(ckpt["preprocess"])
    test, part, split = select_part(load_any(small_mrl_zip, spec.size, cache=False), None, "test")
    assert set(np.unique(test.subjects)) == {int(s[1:]) for s in split["test"]}
    assert not set(split["test"]) & set(ckpt["split"]["train"] + ckpt["split"]["val"])
    m = evaluate_arrays(torch_predictor(model), test, spec)
    assert m["n"] == 180
    assert m["macro_f1"] > 0.65 and m["roc_auc"] > 0.7, m  # chance is 0.5 (balanced test sample)


def _synthetic_eyes(root, n=48, size=40):
    """closed = a dark horizontal lid line, open = a dark round iris, on noisy skin."""
    rng = np.random.default_rng(0)
    for label in ("open", "closed"):
        (root / label).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            img = rng.normal(150, 20, (size, size)).clip(0, 255).astype(np.uint8)
            c = (size // 2 + int(rng.integers(-3, 4)), size // 2 + int(rng.integers(-3, 4)))
            if label == "open":
                cv2.circle(img, c, int(rng.integers(6, 10)), 40, -1)
            else:
                cv2.line(img, (c[0] - 12, c[1]), (c[0] + 12, c[1]), 40, 3)
            cv2.imwrite(str(root / label / f"{i}.png"), img)
    return root


TINY = ["--model", "baseline_cnn", "--img-size", "24", "--epochs", "2", "--epoch-size", "96", "--batch-size", "32",
        "--lr", "3e-3", "--patience", "0", "--threads", "1", "--no-cache", "--seed", "3"]


@pytest.mark.parametrize("extra", [[], ["--ema", "0.9"], ["--mixup", "0.4"]], ids=["plain", "ema", "mixup"])
def test_resume_after_interruption_finishes_the_same_run(tmp_path, extra):
    data = _synthetic_eyes(tmp_path / "eyes")
    straight, interrupted = tmp_path / "straight", tmp_path / "interrupted"
    main([*TINY, *extra, "--data", str(data), "--out-dir", str(straight)])
    main([*TINY, *extra, "--data", str(data), "--out-dir", str(interrupted), "--stop-after", "1"])  # "killed" after epoch 1
    first = read_torch_file(interrupted / "last.pth")
    assert first["epoch"] == 0 and first["finished"] is None
    summary = main(["--out-dir", str(interrupted), "--resume"])
    assert summary["finished"] == "completed 2 epochs" and summary["epochs_run"] == 2
    a = read_torch_file(straight / "last.pth")
    b = read_torch_file(interrupted / "last.pth")
    weights = ["state_dict"] + (["train_state_dict"] if "--ema" in extra else [])
    for which in weights:
        for key in a[which]:
            torch.testing.assert_close(a[which][key], b[which][key], rtol=1e-5, atol=1e-6, msg=f"{which} {key}")
    if "--ema" in extra:  # the shipped weights are the average, which differs from the last optimizer step's
        assert any(not torch.equal(a["state_dict"][k], a["train_state_dict"][k])
                   for k in a["state_dict"] if a["state_dict"][k].is_floating_point())
    drop = ("images_per_s", "epoch_seconds")
    assert [{k: v for k, v in r.items() if k not in drop} for r in a["history"]] == \
        [{k: v for k, v in r.items() if k not in drop} for r in b["history"]]
    assert json.loads((interrupted / "split.json").read_text())["kind"] == "images"  # folder data: image split
    again = main(["--out-dir", str(interrupted), "--resume"])  # a finished run stays finished
    assert again["finished"] == "completed 2 epochs"
    longer = main(["--out-dir", str(interrupted), "--resume", "--epochs", "3"])  # ... unless given more epochs
    assert longer["finished"] == "completed 3 epochs" and longer["epochs_run"] == 3


def test_resume_says_which_flags_it_ignores_and_forgets_an_earlier_stop(tmp_path, capsys):
    """A resumed run keeps its own settings (a changed --lr would make it another run) and says so; a --stop-after
    given to an earlier call does not stop the resumed one."""
    data = _synthetic_eyes(tmp_path / "eyes", n=24)
    out = tmp_path / "run"
    main([*TINY, "--data", str(data), "--out-dir", str(out), "--stop-after", "1"])
    # Mistakes around a paused run, each refused before any data is loaded:
    for argv, said in (
            ([*TINY, "--data", str(data), "--out-dir", str(out)], "holds an earlier run .*--resume.*--overwrite"),
            (["--resume", str(out / "best.pth")], "holds model weights but not pipeline.train's training state"),
            (["--resume", str(out), "--out-dir", str(tmp_path / "elsewhere")], "continues a run in its own folder"),
            (["--resume", str(out), "--epochs", "1"], "has done 1 epochs already; continue it with --epochs above 1")):
        with pytest.raises(SystemExit, match=said):
            main(argv)
    with pytest.raises(SystemExit):  # an abbreviation is not taken for --model (it would slip past the checks)
        main(["--out-dir", str(out), "--resume", "--mod", "resnet18"])
    assert "unrecognized arguments: --mod" in capsys.readouterr().err
    summary = main(["--resume", str(out), "--epochs", "3", "--lr", "5", "--batch-size", "4"])  # the run's folder
    printed = capsys.readouterr().out
    assert "ignored: --batch-size 4 (the run keeps 32); --lr 5.0 (the run keeps 0.003)" in printed
    assert summary["finished"] == "completed 3 epochs" and summary["epochs_run"] == 3


def test_seed_command_with_pretrained_and_no_local_weights_fails_early_and_clearly(tmp_path):
    seed_cmd = ["--model", "efficientnetv2_s", "--pretrained", "--num-classes", "2", "--epochs", "30", "--batch-size", "32",
                "--lr", "1e-3", "--weight-decay", "1e-4", "--augmentations", "flip,rotate,brightness,contrast,blur,occlusion",
                "--out-dir", str(tmp_path / "weights")]
    with pytest.raises(SystemExit, match="--pretrained-path") as err:
        main([*seed_cmd, "--data", str(tmp_path / "not_loaded_yet")])
    assert "efficientnetv2_s" in str(err.value)
    assert not (tmp_path / "weights").exists()


def test_bad_augmentation_name_fails_before_training(tmp_path):
    with pytest.raises(SystemExit, match="unknown augmentation"):
        main([*TINY, "--data", str(tmp_path), "--augmentations", "flip,swirl", "--out-dir", str(tmp_path / "o")])


def test_user_mistakes_get_a_message_not_a_traceback_and_cost_no_data_loading(tmp_path, capsys):
    """Each fails with a message saying what was expected; the ones the arguments show fail before any data is read
    (--data points nowhere), and the folder data's own split is never swapped for another silently."""
    nowhere = str(tmp_path / "not_loaded")
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not json\n")
    with pytest.raises(SystemExit, match="unknown model 'resnet_typo'"):
        main([*TINY, "--model", "resnet_typo", "--data", nowhere, "--out-dir", str(tmp_path / "o")])
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(SystemExit, match="--resume: .*junk.pth"):
        main([*TINY, "--data", nowhere, "--out-dir", str(tmp_path / "o"), "--resume", str(junk)])
    for args, message in ((["--lr", "-1"], "argument --lr: -1: expected a number greater than 0"),
                          (["--out-dir", str(a_file)], "notes.txt is a file; expected a folder")):
        with pytest.raises(SystemExit):
            main([*TINY, "--data", nowhere, *(["--out-dir", str(tmp_path / "o")] if "--out-dir" not in args else []),
                  *args])
        assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    data = _synthetic_eyes(tmp_path / "eyes", n=8)
    with pytest.raises(SystemExit, match="--split .*typo.json not found"):
        main([*TINY, "--data", str(data), "--split", str(tmp_path / "typo.json"), "--out-dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="notes.txt is not JSON"):
        main([*TINY, "--data", str(data), "--split", str(a_file), "--out-dir", str(tmp_path / "o")])
    with pytest.raises(SystemExit, match="lists people .* has no subjects"):  # not ignored for a new image split
        main([*TINY, "--data", str(data), "--split", str(SPLIT_FILE), "--out-dir", str(tmp_path / "o")])
    assert not (tmp_path / "o").exists()  # refused runs leave no folder behind


def test_pretrained_from_local_file_trains_head_first_then_everything(tmp_path):
    import timm

    from pipeline.models import create_model

    data = _synthetic_eyes(tmp_path / "eyes", n=24)
    torch.manual_seed(0)
    weights = tmp_path / "lcnet_050_imagenet.pth"
    torch.save(pretrained_stand_in("lcnet_050").state_dict(), weights)  # stands in for a download
    start = create_model("lcnet_050", pretrained=True, pretrained_path=weights).state_dict()
    args = ["--model", "lcnet_050", "--pretrained", "--pretrained-path", str(weights), "--freeze-epochs", "1",
            "--epochs", "2", "--img-size", "24", "--epoch-size", "64", "--batch-size", "32", "--patience", "0",
            "--threads", "1", "--no-cache", "--data", str(data), "--out-dir", str(tmp_path / "run")]
    main([*args, "--stop-after", "1"])
    head_phase = read_torch_file(tmp_path / "run" / "last.pth")["state_dict"]
    torch.testing.assert_close(head_phase["conv_stem.weight"], start["conv_stem.weight"])  # backbone frozen
    main(["--out-dir", str(tmp_path / "run"), "--resume"])
    final = read_torch_file(tmp_path / "run" / "last.pth")
    assert final["finished"] == "completed 2 epochs"
    assert not torch.allclose(final["state_dict"]["conv_stem.weight"], start["conv_stem.weight"])  # then all layers


def test_distillation_from_a_teacher_checkpoint(tmp_path):
    data = _synthetic_eyes(tmp_path / "eyes")
    main([*TINY, "--data", str(data), "--out-dir", str(tmp_path / "teacher")])
    teacher = tmp_path / "teacher" / "best.pth"
    summary = main([*TINY, "--data", str(data), "--out-dir", str(tmp_path / "student"), "--teacher", str(teacher),
                    "--distill-alpha", "0.7"])
    assert summary["finished"] == "completed 2 epochs"
    # same seed, data and init as the teacher's own run: only the teacher term can change the loss
    loss = lambda run: json.loads((tmp_path / run / "history.json").read_text())["history"][0]["train_loss"]
    assert loss("student") != pytest.approx(loss("teacher"), rel=1e-6)
    args = read_torch_file(tmp_path / "student" / "last.pth")["args"]
    assert args["teacher"] == str(teacher) and args["distill_alpha"] == 0.7
    with pytest.raises(SystemExit, match="px"):  # a teacher of another input size is refused
        main([*TINY, "--img-size", "32", "--data", str(data), "--out-dir", str(tmp_path / "bad"), "--teacher", str(teacher)])


def test_subgroup_balance_draws_rare_conditions_more_often_but_softly():
    from pipeline.train import sample_epoch

    labels = torch.tensor([0] * 1000 + [1] * 1000)
    groups = torch.tensor([0] * 900 + [1] * 100 + [2] * 1000)  # group 1: a rare condition of class 0
    order = sample_epoch(labels, 20000, "subgroup", torch.Generator().manual_seed(0), groups)
    drawn = groups[order]
    assert abs(float((labels[order] == 1).float().mean()) - 0.5) < 0.02  # classes still balanced
    rare_share = float((drawn == 1).sum()) / float((drawn != 2).sum())
    assert abs(rare_share - 0.25) < 0.03  # 10 % of the class -> 25 % of its draws (c^-1/2 per image), not 50 %
    plain = sample_epoch(labels, 20000, "sampler", torch.Generator().manual_seed(0))
    assert abs(float((groups[plain] == 1).sum()) / float((groups[plain] != 2).sum()) - 0.10) < 0.02


def test_condition_balance_unties_labels_from_conditions_within_a_cap():
    from pipeline.train import CONDITION_CAP, sample_epoch

    # groups as subgroup_keys makes them: label * 100 + glasses * 10 + reflections
    labels = torch.tensor([0] * 800 + [1] * 200 + [0] * 200 + [1] * 800)
    glint = torch.tensor([1] * 1000 + [0] * 1000)  # condition "glasses, small reflections": mostly closed eyes
    groups = labels * 100 + glint * 11
    closed_share = {}
    for balance in ("sampler", "condition"):
        order = sample_epoch(labels, 40000, balance, torch.Generator().manual_seed(0), groups)
        in_glint = glint[order] == 1
        closed_share[balance] = float((labels[order][in_glint] == 0).float().mean())
        assert abs(float(in_glint.float().mean()) - 0.5) < 0.02  # the condition keeps its share of the draws
        assert abs(float((labels[order] == 1).float().mean()) - 0.5) < 0.02  # and the classes stay balanced
    assert abs(closed_share["sampler"] - 0.8) < 0.02 and abs(closed_share["condition"] - 0.5) < 0.02
    rare = torch.tensor([0] * 5 + [1] * 995 + [0] * 995 + [1] * 5)  # a 5-image corner per condition
    order = sample_epoch(rare, 40000, "condition", torch.Generator().manual_seed(0), rare * 100 + glint * 11)
    plain = sample_epoch(rare, 40000, "sampler", torch.Generator().manual_seed(0))
    most, most_plain = torch.bincount(order).max(), torch.bincount(plain).max()
    assert most < CONDITION_CAP * 2 * most_plain  # capped: not the 100x that full balance would give


def test_subject_balance_gives_every_person_an_equal_share_within_a_cap():
    from pipeline.train import sample_epoch

    # person 1: 3,000 images, two thirds open; persons 2 and 3: 600 and 400, balanced
    subjects = torch.tensor([1] * 3000 + [2] * 600 + [3] * 400)
    labels = torch.tensor([0] * 1000 + [1] * 2000 + [0] * 300 + [1] * 300 + [0] * 200 + [1] * 200)
    order = sample_epoch(labels, 60000, "subject", torch.Generator().manual_seed(0), subjects)
    share = torch.bincount(subjects[order], minlength=4)[1:].float() / len(order)
    assert abs(float((labels[order] == 1).float().mean()) - 0.5) < 0.02  # classes still balanced overall
    assert share.max() - share.min() < 0.05, share  # a third each (under plain class balance: 0.71 / 0.17 / 0.12)
    for person in (1, 2):  # and within a person the classes are drawn alike, so who it is says nothing of the label
        closed = float((labels[order][subjects[order] == person] == 0).float().mean())
        assert abs(closed - 0.5) < 0.05, (person, closed)
    plain = sample_epoch(labels, 60000, "sampler", torch.Generator().manual_seed(0))
    assert float((subjects[plain] == 1).float().mean()) > 0.6
    tiny = torch.tensor([1] * 3990 + [2] * 10)  # a 10-image person is not repeated 130x: the cap holds
    order = sample_epoch(labels, 60000, "subject", torch.Generator().manual_seed(0), tiny)
    assert float((tiny[order] == 2).float().mean()) < 0.02


@pytest.mark.shared
def test_final_fit_trains_on_validation_subjects_too_and_keeps_the_last_epoch(small_mrl_zip, tmp_path):
    out = tmp_path / "final"
    summary = main([*TINY, "--data", str(small_mrl_zip), "--final-fit", "--epochs", "3", "--patience", "1",
                    "--out-dir", str(out)])
    assert summary["finished"] == "completed 3 epochs"  # no early stop: there is no held-out validation
    _, ckpt = load_checkpoint(out / "best.pth")
    split = json.loads(SPLIT_FILE.read_text())
    assert set(ckpt["split"]["train"]) == set(split["train"]) | set(split["val"])
    assert not set(ckpt["split"]["train"]) & set(split["test"])
    assert ckpt["epoch"] == 2  # the last epoch (0-based), whatever its in-sample val score
    info = json.loads((out / "history.json").read_text())
    assert info["history"][-1]["train_loss"] > 0


def test_final_fit_needs_mrl_subjects(tmp_path):
    data = _synthetic_eyes(tmp_path / "folder")
    with pytest.raises(SystemExit, match="final-fit"):
        main([*TINY, "--data", str(data), "--final-fit", "--out-dir", str(tmp_path / "o")])


def test_mixup_blends_each_image_with_a_partner_and_keeps_its_own_label_the_larger_share():
    torch.manual_seed(0)
    x = torch.rand(16, 1, 8, 8)
    same = mixup_batch(x, 0.0)
    assert same.weight == 1.0 and same.images is x
    for _ in range(20):
        mix = mixup_batch(x, 0.4)
        assert 0.5 <= mix.weight <= 1.0
        torch.testing.assert_close(mix.images, mix.weight * x + (1 - mix.weight) * x[mix.partner])
        assert sorted(mix.partner.tolist()) == list(range(16))


def test_training_with_mixup_blends_its_batches(tmp_path, monkeypatch):
    import pipeline.train as train_module

    weights = []

    def spy(x, alpha):
        mixed = mixup_batch(x, alpha)
        weights.append(mixed.weight)
        return mixed

    monkeypatch.setattr(train_module, "mixup_batch", spy)
    data = _synthetic_eyes(tmp_path / "eyes")
    main([*TINY, "--mixup", "0.4", "--data", str(data), "--out-dir", str(tmp_path / "run")])
    assert len(weights) == 6 and all(0.5 <= w < 1 for w in weights)  # 2 epochs of 3 batches, every one blended


def test_one_run_at_a_time_in_a_folder_and_a_killed_runs_lock_is_let_go(tmp_path):
    """Two runs writing to one --out-dir would mix their checkpoints: the second is refused while the first holds
    the folder's lock; the system lets go of it when that process ends (here: killed), and the next run goes on."""
    import subprocess

    data = _synthetic_eyes(tmp_path / "eyes")
    out = tmp_path / "run"
    out.mkdir()
    holder = ("import fcntl, os, sys, time; f = open(sys.argv[1], 'a+'); fcntl.flock(f, fcntl.LOCK_EX); "
              "f.write(str(os.getpid())); f.flush(); print('held', flush=True); time.sleep(60)")
    other = subprocess.Popen([sys.executable, "-c", holder, str(out / "run.lock")], stdout=subprocess.PIPE, text=True)
    try:
        assert other.stdout.readline().strip() == "held"
        with pytest.raises(SystemExit, match=f"another training run \\(process {other.pid}\\) is writing to"):
            main([*TINY, "--data", str(data), "--out-dir", str(out)])
    finally:
        other.kill()
        other.wait()
    summary = main([*TINY, "--data", str(data), "--out-dir", str(out)])  # its process is gone now
    assert summary["finished"] == "completed 2 epochs"
