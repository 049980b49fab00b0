"""pipeline.models: timm names and baseline_cnn at small sizes, local-only pretrained weights, checkpoints."""
from __future__ import annotations

import pytest
import torch

from conftest import pretrained_stand_in

from pipeline.models import (BASELINE, EYECNN, EYECNN_RSTD, EYECNN_STD, PretrainedWeightsMissing, count_parameters,
                             create_model, load_checkpoint, make_checkpoint)


@pytest.mark.parametrize("name", ["mobilenetv3_small_050", "lcnet_050", "resnet10t", BASELINE, EYECNN, EYECNN_STD,
                                  EYECNN_RSTD])
@pytest.mark.parametrize("size", [32, 48])
def test_factory_gives_one_channel_two_class_models(name, size):
    torch.manual_seed(0)
    model = create_model(name).eval()
    first_conv = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
    assert first_conv.in_channels == 1
    with torch.no_grad():
        out = model(torch.randn(3, 1, size, size))
    assert out.shape == (3, 2) and torch.isfinite(out).all()
    assert model.get_classifier().out_features == 2


def test_eyecnn_std_ignores_the_exposure_and_contrast_of_a_crop():
    """Each crop is standardized first, so a darker, flatter webcam crop of the same eye gives the same answer;
    plain eyecnn has the same parameters but no such invariance."""
    torch.manual_seed(0)
    x = torch.rand(4, 1, 48, 48) * 2 - 1
    darker = 0.6 * x - 0.3
    std, plain = create_model(EYECNN_STD).eval(), create_model(EYECNN).eval()
    def change(model):  # relative change of the feature maps (an untrained net's activations are tiny)
        with torch.no_grad():
            a, b = model.features(darker), model.features(x)
        return float((a - b).abs().max() / b.abs().max())

    assert change(std) < 0.02 and change(plain) > 0.2, (change(std), change(plain))
    assert count_parameters(std) == count_parameters(plain)


def test_eyecnn_rstd_keeps_the_eye_visible_behind_a_glint():
    """A saturated blob (an infrared glint on glasses) inflates the crop's variance; plain standardization then
    squeezes the rest of the crop, the robust one (bright pixels capped, then standardized again) much less."""
    torch.manual_seed(0)
    eye = torch.rand(1, 1, 48, 48) * 0.3 - 0.15  # a dim, flat infrared crop, in (gray/255 - 0.5) / 0.5 units
    glint = eye.clone()
    glint[..., 20:28, 14:22] = 1.0  # saturated
    outside = torch.ones(48, 48, dtype=torch.bool)
    outside[20:28, 14:22] = False

    def kept(model):  # contrast left outside the glint, relative to the same crop without it
        with torch.no_grad():
            return float(model.features[0](glint)[0, 0][outside].std() / model.features[0](eye)[0, 0][outside].std())

    plain, robust = create_model(EYECNN_STD).eval(), create_model(EYECNN_RSTD).eval()
    assert kept(plain) < 0.6 and kept(robust) > 0.75, (kept(plain), kept(robust))  # measured: 0.49, 0.80
    assert count_parameters(robust) == count_parameters(plain)


def test_small_candidates_stay_under_one_million_parameters():
    for name in ("mobilenetv3_small_050", "lcnet_050", BASELINE):
        assert count_parameters(create_model(name)) < 1_000_000, name


def test_unknown_model_name_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown model 'mobilenetv9'"):
        create_model("mobilenetv9")


def test_pretrained_without_local_weights_says_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "hf" / "hub"))
    with pytest.raises(PretrainedWeightsMissing, match="--pretrained-path"):
        create_model("efficientnetv2_s", pretrained=True)
    with pytest.raises(PretrainedWeightsMissing, match="not a file"):
        create_model("lcnet_050", pretrained=True, pretrained_path=tmp_path / "missing.safetensors")


def test_pretrained_from_a_local_file_adapts_the_first_conv(tmp_path):
    import timm

    torch.manual_seed(0)
    imagenet_like = pretrained_stand_in("lcnet_050")  # stands in for downloaded ImageNet weights
    path = tmp_path / "lcnet_050.pth"
    torch.save(imagenet_like.state_dict(), path)
    model = create_model("lcnet_050", pretrained=True, pretrained_path=path)
    w_rgb = imagenet_like.conv_stem.weight
    torch.testing.assert_close(model.conv_stem.weight, w_rgb.sum(dim=1, keepdim=True))  # timm sums RGB for 1 channel
    assert model.get_classifier().out_features == 2


def test_pretrained_file_of_another_model_or_not_weights_at_all_is_refused(tmp_path):
    """timm loads such a file non-strictly and would train from scratch while the run says "pretrained"."""
    import timm

    other = tmp_path / "mobilenet.pth"
    torch.save(pretrained_stand_in("mobilenetv3_small_050").state_dict(), other)
    with pytest.raises(PretrainedWeightsMissing, match="holds weights of another model|could not be loaded"):
        create_model("lcnet_050", pretrained=True, pretrained_path=other)
    text = tmp_path / "notes.pth"
    text.write_text("not weights\n" * 50)
    with pytest.raises(PretrainedWeightsMissing, match="notes.pth"):
        create_model("lcnet_050", pretrained=True, pretrained_path=text)


def test_checkpoint_round_trip_gives_the_same_outputs(tmp_path):
    torch.manual_seed(0)
    model = create_model("mobilenetv3_small_050").eval()
    path = tmp_path / "ck.pth"
    torch.save(make_checkpoint(model, "mobilenetv3_small_050", epoch=3, best_val_macro_f1=0.5, args={}, split={}), path)
    loaded, ckpt = load_checkpoint(path)
    assert ckpt["model"] == "mobilenetv3_small_050" and ckpt["classes"] == ["closed", "open"]
    assert ckpt["preprocess"] == {"size": 48, "channels": 1, "mean": 0.5, "std": 0.5, "gray": "bt601"}
    x = torch.randn(2, 1, 48, 48)
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), model(x))
    torch.save({"weights": 1}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="not a pipeline checkpoint"):
        load_checkpoint(tmp_path / "other.pth")


class _RunsCodeWhenUnpickled:
    """What a hostile .pth can carry: unpickling it calls any function (here one that writes a file)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_a_checkpoint_carrying_code_is_refused_without_running_it(tmp_path):
    model = create_model(BASELINE)
    planted = tmp_path / "planted.txt"
    hostile = tmp_path / "hostile.pth"
    torch.save({**make_checkpoint(model, BASELINE), "args": _RunsCodeWhenUnpickled(planted)}, hostile)
    with pytest.raises(ValueError, match=r"hostile.pth holds Python objects other than tensors.*\bopen\b"):
        load_checkpoint(hostile)
    assert not planted.exists()
