"""pipeline.export: single-file ONNX, parity with torch on real eyes, metadata contract, CAM output, failure modes."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from pipeline import export
from pipeline.models import create_model, load_checkpoint, make_checkpoint
from pipeline.preprocess import PreprocessSpec, gray_to_input
from trained_model import MRL_ZIP, REPO, SPLIT, trained_checkpoint

needs_mrl = pytest.mark.skipif(not MRL_ZIP.exists(), reason=f"needs the MRL zip at {MRL_ZIP} (../shared)")


@pytest.fixture(scope="module")
def checkpoint():
    if not MRL_ZIP.exists():
        pytest.skip(f"needs the MRL zip at {MRL_ZIP} (../shared) to train the test model")
    return trained_checkpoint()


@pytest.fixture(scope="module")
def exported(checkpoint, tmp_path_factory):
    """The trained checkpoint exported through the CLI, as a user would."""
    out = tmp_path_factory.mktemp("export") / "eye_state.onnx"
    res = subprocess.run([sys.executable, "-m", "pipeline.export", "--weights", str(checkpoint), "--out", str(out)],
                         cwd=REPO, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "max |diff|" in res.stdout and "real images" in res.stdout
    return out


def _test_subject_sample(size: int, per_class: int = 150):
    from pipeline.data import load_mrl

    split = json.loads(SPLIT.read_text())
    data = load_mrl(MRL_ZIP, size, subjects=split["test"], max_images=3000, seed=3)
    picks = [np.flatnonzero(data.labels == c)[:per_class] for c in (0, 1)]
    return data.subset(np.concatenate(picks))


@pytest.mark.shared
@needs_mrl
def test_parity_with_torch_on_real_mrl_images(checkpoint, tmp_path):
    model, ckpt = load_checkpoint(checkpoint)
    sample = _test_subject_sample(ckpt["preprocess"]["size"])
    info = export.export_model(model, ckpt, checkpoint, tmp_path / "m.onnx", images=sample.images)
    assert info["max_abs_diff"] < 1e-4

    x = gray_to_input(sample.images, PreprocessSpec.from_dict(ckpt["preprocess"]))
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()
    got = ort.InferenceSession(str(tmp_path / "m.onnx")).run(["logits"], {"input": x})[0]
    assert np.abs(ref - got).max() < 1e-4


@pytest.mark.shared
@needs_mrl
def test_single_file_with_metadata_and_dynamic_batch(exported, checkpoint):
    assert {p.name for p in exported.parent.iterdir()} == {"eye_state.onnx", "eye_state.json"}
    m = onnx.load(str(exported), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in m.graph.initializer)
    assert max(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert [i.name for i in m.graph.input] == ["input"] and [o.name for o in m.graph.output] == ["logits"]

    props = export.read_metadata(exported)
    _, ckpt = load_checkpoint(checkpoint)
    assert json.loads(props["eyestate.classes"]) == ["closed", "open"]
    spec = PreprocessSpec.from_json(props["eyestate.preprocess"])
    for key in ("size", "channels", "mean", "std", "gray"):
        assert getattr(spec, key) == ckpt["preprocess"][key]
    assert props["eyestate.model"] == ckpt["model"]
    assert props["eyestate.source_sha256"] == export.sha256_file(checkpoint)

    sidecar = json.loads(exported.with_suffix(".json").read_text())
    assert sidecar["classes"] == ["closed", "open"] and sidecar["model"] == ckpt["model"]
    assert PreprocessSpec.from_dict(sidecar["preprocess"]) == spec
    assert sidecar["inputs"] == {"input": ["batch", 1, spec.size, spec.size]}
    assert sidecar["outputs"] == {"logits": ["batch", 2]}

    sess = ort.InferenceSession(str(exported))
    for n in (1, 2, 5):
        out = sess.run(None, {"input": np.zeros((n, 1, spec.size, spec.size), np.float32)})[0]
        assert out.shape == (n, 2)


@pytest.mark.shared
@needs_mrl
def test_real_open_eyes_come_out_open(exported):
    """Class order end to end: real test-subject eyes, preprocessing read from the ONNX metadata only."""
    spec = export.spec_from_onnx(exported)
    sample = _test_subject_sample(spec.size)
    logits = ort.InferenceSession(str(exported)).run(["logits"], {"input": gray_to_input(sample.images, spec)})[0]
    pred = logits.argmax(1)
    open_rate = (pred[sample.labels == 1] == 1).mean()
    closed_rate = (pred[sample.labels == 0] == 0).mean()
    # A small, briefly trained model: far from perfect, but swapped classes would put both rates near 0.
    assert open_rate > 0.7 and closed_rate > 0.6, (open_rate, closed_rate)


@pytest.mark.shared
@needs_mrl
def test_cam_output_explains_the_logits(tmp_path):
    model = create_model("test_efficientnet").eval()  # GAP + linear head
    with torch.no_grad():
        model.get_classifier().bias.copy_(torch.tensor([0.7, -0.4]))  # a trained head has a bias
    ckpt = make_checkpoint(model, "test_efficientnet")
    torch.save(ckpt, tmp_path / "m.pth")
    images, kind = export.parity_images(48, 64)
    assert kind == "real"
    info = export.export_model(model, ckpt, tmp_path / "m.pth", tmp_path / "cam.onnx", with_cam=True, images=images)
    assert info["max_abs_diff"] < 1e-4
    assert json.loads(export.read_metadata(tmp_path / "cam.onnx")["eyestate.outputs"])["cam"] == ["batch", "h", "w"]
    sess = ort.InferenceSession(str(tmp_path / "cam.onnx"))
    assert [o.name for o in sess.get_outputs()] == ["logits", "cam"]
    logits, cam = sess.run(None, {"input": gray_to_input(images[:4])})
    assert cam.ndim == 3 and cam.shape[0] == 4 and cam.shape[1] > 1 and cam.shape[2] > 1
    np.testing.assert_allclose(cam.mean(axis=(1, 2)), logits[:, 1] - logits[:, 0], atol=1e-4)


def test_cam_refused_for_heads_that_are_not_gap_linear(tmp_path):
    model = create_model("mobilenetv3_small_050").eval()  # conv + activation between pooling and classifier
    ckpt = make_checkpoint(model, "mobilenetv3_small_050")
    torch.save(ckpt, tmp_path / "m.pth")
    images = np.random.default_rng(0).integers(0, 256, (8, 48, 48), dtype=np.uint8)
    with pytest.raises(ValueError, match="global-average-pool"):
        export.export_model(model, ckpt, tmp_path / "m.pth", tmp_path / "cam.onnx", with_cam=True, images=images)
    assert not (tmp_path / "cam.onnx").exists()


class _DriftsAfterTracing(torch.nn.Module):
    """Adds a Python-side counter: tracing freezes its value, so later torch calls no longer match the ONNX."""

    def __init__(self):
        super().__init__()
        self.net = create_model("test_efficientnet").eval()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x) + float(self.calls)


def test_export_fails_and_leaves_no_file_when_parity_breaks(tmp_path):
    model = _DriftsAfterTracing()
    ckpt = make_checkpoint(model.net, "test_efficientnet")
    torch.save(ckpt, tmp_path / "m.pth")
    images = np.random.default_rng(0).integers(0, 256, (16, 48, 48), dtype=np.uint8)
    out = tmp_path / "models" / "eye_state.onnx"
    with pytest.raises(export.ParityError, match="differ"):
        export.export_model(model, ckpt, tmp_path / "m.pth", out, images=images)
    assert list(out.parent.iterdir()) == []  # neither the model, nor its JSON, nor a temp file


def test_cli_reports_missing_checkpoint(tmp_path):
    res = subprocess.run([sys.executable, "-m", "pipeline.export", "--weights", str(tmp_path / "nope.pth"),
                          "--out", str(tmp_path / "x.onnx")], cwd=REPO, capture_output=True, text=True)
    assert res.returncode != 0 and "not found" in res.stderr
    assert not (tmp_path / "x.onnx").exists()


@pytest.mark.shared
@needs_mrl
@pytest.mark.parametrize("name", ["eye_state.onnx", "eye_state.int8.onnx"])
def test_shipped_models_carry_the_contract_and_see_open_eyes_as_open(name):
    path = REPO / "models" / name
    if not path.exists():
        pytest.skip(f"{path} not built yet (python -m pipeline.export / pipeline.quantize)")
    props = export.read_metadata(path)
    assert json.loads(props["eyestate.classes"]) == ["closed", "open"]
    spec = PreprocessSpec.from_json(props["eyestate.preprocess"])
    sidecar = json.loads((REPO / "models" / "eye_state.json").read_text())
    assert PreprocessSpec.from_dict(sidecar["preprocess"]) == spec and sidecar["classes"] == ["closed", "open"]
    assert props["eyestate.model"] == sidecar["model"] and props["eyestate.source_sha256"] == sidecar["source_sha256"]

    sample = _test_subject_sample(spec.size)
    logits = ort.InferenceSession(str(path)).run(["logits"], {"input": gray_to_input(sample.images, spec)})[0]
    pred = logits.argmax(1)
    assert (pred[sample.labels == 1] == 1).mean() > 0.9 and (pred[sample.labels == 0] == 0).mean() > 0.9


@pytest.mark.parametrize("args, message", [
    (["--parity-images", "0"], "argument --parity-images: 0: expected a whole number of at least 1"),
    (["--out", "{tmp}"], "argument --out: {tmp} is an existing folder"),
    (["--out", "{tmp}/best.pth"], "argument --out: {tmp}/best.pth: expected a file name ending in .onnx"),
    (["--weights", "{tmp}/m.onnx"], "--out {tmp}/m.onnx is one of the input files, which it would replace"),
    (["--tolerance", "-1"], "argument --tolerance: -1: expected a number greater than 0")])
def test_no_parity_check_or_a_folder_as_output_is_refused_before_export(tmp_path, capsys, args, message):
    """Also an output that would replace the checkpoint (after the parity check, the trained weights were gone)."""
    args = [a.format(tmp=tmp_path) for a in args]
    with pytest.raises(SystemExit):
        export.main(["--weights", str(REPO / "models" / "eye_state.pth"), "--out", str(tmp_path / "m.onnx"), *args])
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
