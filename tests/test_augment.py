"""pipeline.augment: every augmentation keeps shape, dtype, range (and so the label); names are validated."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from pipeline.augment import AUGMENTATIONS, DEFAULT_AUGMENTATIONS, SEED_AUGMENTATIONS, BatchAugment, parse_augmentations


def _batch(n=16, size=32, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, size, size), generator=g, dtype=torch.uint8)


@pytest.mark.parametrize("name", list(AUGMENTATIONS))
def test_each_augmentation_keeps_shape_dtype_and_range(name):
    torch.manual_seed(0)
    x = _batch()
    aug = BatchAugment({name: 1.0})
    for inp in (x, x.float() / 255):
        out = aug(inp)
        assert out.shape == inp.shape and out.dtype == inp.dtype
        assert float(out.min()) >= 0 and float(out.max()) <= (255 if inp.dtype == torch.uint8 else 1.0)
    assert not torch.equal(aug(x), x), f"{name} at p=1 left every image unchanged"
    single = aug(x[0])  # a single [1,S,S] image
    assert single.shape == x[0].shape


def test_labels_are_untouched_because_augment_only_sees_images():
    x, labels = _batch(8), torch.arange(8) % 2
    out = BatchAugment("default")(x)
    assert out.shape == x.shape and torch.equal(labels, torch.arange(8) % 2)


def test_flip_mirrors_and_probability_zero_is_identity():
    x = _batch(4)
    assert torch.equal(BatchAugment({"flip": 1.0})(x), x.flip(-1))
    assert torch.equal(BatchAugment({n: 0.0 for n in AUGMENTATIONS})(x), x)
    assert torch.equal(BatchAugment("none")(x), x)


def test_rotation_is_about_the_centre_and_bounded():
    """A bright horizontal bar rotated by at most 15 degrees keeps its centre and stays nearly horizontal."""
    img = np.zeros((48, 48), np.uint8)
    img[22:26, 8:40] = 255
    torch.manual_seed(0)
    out = BatchAugment({"rotate": 1.0})(torch.from_numpy(img)[None, None].repeat(16, 1, 1, 1)).numpy()
    for o in out[:, 0]:
        ys, xs = np.nonzero(o > 128)
        assert abs(ys.mean() - 23.5) < 1.5 and abs(xs.mean() - 23.5) < 1.5
        angle = np.degrees(np.arctan2(*np.polyfit(xs, ys, 1)[:1], 1))
        assert abs(angle) <= 16


def test_parse_names_probabilities_and_aliases():
    assert list(parse_augmentations("rotate,flip")) == ["flip", "rotate"]  # canonical order
    assert parse_augmentations("flip:0.25")["flip"] == 0.25
    assert list(parse_augmentations("seed")) == [n for n in AUGMENTATIONS if n in SEED_AUGMENTATIONS.split(",")]
    assert list(parse_augmentations("default")) == DEFAULT_AUGMENTATIONS.split(",")
    assert parse_augmentations("none") == {}
    with pytest.raises(ValueError, match="unknown augmentation 'sharpen'.*known: flip"):
        parse_augmentations("flip,sharpen")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        parse_augmentations("flip:2")


def test_jpeg_adds_block_artefacts_and_downup_removes_detail():
    x = _batch(8, 48)
    torch.manual_seed(0)
    fine = (x.float() / 255)
    lowres = AUGMENTATIONS["downup"].fn(fine)
    assert lowres.diff(dim=-1).abs().mean() < 0.6 * fine.diff(dim=-1).abs().mean()
    jpg = AUGMENTATIONS["jpeg"].fn(fine)
    assert 0.01 < (jpg - fine).abs().mean() < 0.5


def test_grid_cli_writes_png(tmp_path):
    from pipeline.augment import main

    for label in ("open", "closed"):
        (tmp_path / "data" / label).mkdir(parents=True)
        for i in range(4):
            cv2.imwrite(str(tmp_path / "data" / label / f"{i}.png"), np.random.default_rng(i + 10 * (label == 'open')).integers(0, 255, (40, 40), np.uint8))
    out = tmp_path / "grid.png"
    main(["--data", str(tmp_path / "data"), "--out", str(out), "--rows", "4"])
    img = cv2.imread(str(out))
    assert img is not None and img.shape[1] > img.shape[0] > 200


def test_glasses_augmentations_are_opt_in_and_local():
    assert not {"glare", "rim", "glint"} & set(parse_augmentations("default"))
    assert {"glare", "rim", "glint"} <= set(parse_augmentations("all"))
    torch.manual_seed(0)
    x = torch.full((32, 1, 48, 48), 0.4)
    glared = BatchAugment({"glare": 1.0})(x)
    assert torch.all(glared >= x - 1e-6)  # reflections only brighten
    assert (glared > 0.5).float().mean() < 0.5  # ... a part of the crop, not all of it
    rimmed = BatchAugment({"rim": 1.0})(x)
    changed = ((rimmed - x).abs() > 1e-3).float().mean(dim=(1, 2, 3))
    assert float(changed.max()) < 0.35  # a thin arc


def test_glints_are_small_saturated_dots_near_the_centre():
    torch.manual_seed(0)
    x = torch.full((32, 1, 48, 48), 0.3)
    out = BatchAugment({"glint": 1.0})(x)
    bright = out > 0.7
    assert bool(bright.flatten(1).any(1).all())  # every image got at least one glint
    assert float(bright.float().mean()) < 0.03  # small dots
    ys, xs = torch.nonzero(bright[:, 0], as_tuple=True)[1:]
    assert float(ys.float().mean()) == pytest.approx(23.5, abs=4) and float(xs.float().mean()) == pytest.approx(23.5, abs=4)
