"""pipeline.data and pipeline.preprocess: MRL names, duplicates, corrupt files, layouts, open/closed folders, cache."""
from __future__ import annotations

import zipfile

import cv2
import numpy as np
import pytest

from pipeline import data as D
from pipeline.preprocess import DEFAULT_SPEC, color_to_gray_u8, gray_to_input, rgba_to_input, to_model_input


def _png(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes()


def _eye(seed: int, side: int = 60) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (side, side), dtype=np.uint8)


def _mrl_name(subject, image_id, state, glasses=0, reflections=0, lighting=1, sensor=1, gender=0):
    s = f"s{subject:04d}"
    return f"mrlEyes_2018_01/{s}/{s}_{image_id:05d}_{gender}_{glasses}_{state}_{reflections}_{lighting}_{sensor:02d}.png"


@pytest.fixture
def synthetic_mrl_zip(tmp_path):
    """8 distinct images + a conflicting duplicate pair + a same-label duplicate + a corrupt file + a stray file."""
    files = {}
    for i in range(8):
        files[_mrl_name(1 + i % 2, i + 1, i % 2, glasses=int(i % 3 == 0), sensor=1 + i % 3)] = _png(_eye(i))
    dup = _eye(100)
    files[_mrl_name(3, 1, 0)] = _png(dup)   # same pixels, closed ...
    files[_mrl_name(3, 2, 1)] = _png(dup)   # ... and open: both must go
    files[_mrl_name(3, 3, 1)] = _png(_eye(1))  # same pixels and label as an earlier file: kept
    files[_mrl_name(3, 4, 1)] = b"\x89PNG\r\n\x1a\n this is not an image"
    files["mrlEyes_2018_01/readme.txt"] = b"stray file"
    path = tmp_path / "mrl.zip"
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def test_parse_mrl_name_reads_all_eight_fields():
    f = D.parse_mrl_name("mrlEyes_2018_01/s0012/s0012_00345_0_1_0_2_0_01.png")
    assert f == D.MrlName(subject=12, image_id=345, gender=0, glasses=1, eye_state=0, reflections=2, lighting=0, sensor=1)
    assert D.parse_mrl_name("s0037_10257_1_0_1_0_1_03.png").sensor == 3


@pytest.mark.parametrize("bad", ["s12_00345_0_1_0_2_0_01.png", "s0012_00345_0_1_2_2_0_01.png", "eye.png",
                                 "s0012_00345_0_1_0_2_0.png"])
def test_parse_mrl_name_rejects_other_names(bad):
    with pytest.raises(ValueError, match="not an MRL file name"):
        D.parse_mrl_name(bad)


def test_mrl_zip_drops_conflicting_duplicates_and_reports_corrupt(synthetic_mrl_zip):
    with pytest.warns(UserWarning):
        data = D.load_mrl(synthetic_mrl_zip, size=24, cache=False)
    r = data.report
    assert r.n_files == 12
    assert [p.rsplit("/", 1)[1] for p in r.corrupt] == ["s0003_00004_0_0_1_0_1_01.png"]
    assert sorted(p.rsplit("/", 1)[1][:11] for p in r.conflicting_duplicates) == ["s0003_00001", "s0003_00002"]
    assert r.n_same_label_duplicates == 1
    assert len(data) == 9 and r.n_loaded == 9
    assert data.images.shape == (9, 24, 24) and data.images.dtype == np.uint8
    assert data.labels.dtype == np.int64
    assert set(data.meta) == set(D.META_KEYS)
    # labels and meta follow the file names
    for path, label, sensor, subject in zip(data.paths, data.labels, data.meta["sensor"], data.meta["subject"]):
        f = D.parse_mrl_name(path)
        assert (label, sensor, subject) == (f.eye_state, f.sensor, f.subject)
    first = data.paths.index(_mrl_name(1, 1, 0, glasses=1, sensor=1))
    expected = cv2.resize(_eye(0), (24, 24), interpolation=cv2.INTER_AREA)
    np.testing.assert_array_equal(data.images[first], expected)


def test_extracted_mrl_folder_loads_like_the_zip(synthetic_mrl_zip, tmp_path):
    with zipfile.ZipFile(synthetic_mrl_zip) as z:
        z.extractall(tmp_path / "extracted")
    with pytest.warns(UserWarning):
        from_zip = D.load_mrl(synthetic_mrl_zip, 24, cache=False)
        from_dir = D.load_any(tmp_path / "extracted", 24)
    assert from_dir.kind == "mrl"
    order = np.argsort(from_dir.paths)
    np.testing.assert_array_equal(from_dir.images[order], from_zip.images[np.argsort(from_zip.paths)])
    assert len(from_dir.report.corrupt) == 1


def test_cache_returns_the_same_data(synthetic_mrl_zip, tmp_path, monkeypatch):
    monkeypatch.setattr(D, "CACHE_DIR", tmp_path / "cache")
    with pytest.warns(UserWarning):
        first = D.load_mrl(synthetic_mrl_zip, 24)
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    again = D.load_mrl(synthetic_mrl_zip, 24)
    np.testing.assert_array_equal(first.images, again.images)
    np.testing.assert_array_equal(first.meta["glasses"], again.meta["glasses"])
    assert again.paths == first.paths and again.report.corrupt == first.report.corrupt


def test_wrong_path_and_layout_give_clear_errors(tmp_path):
    with pytest.raises(D.DataLayoutError, match="does not exist"):
        D.load_any(tmp_path / "missing.zip")
    (tmp_path / "junk").mkdir()
    cv2.imwrite(str(tmp_path / "junk" / "eye.png"), _eye(1))
    with pytest.raises(D.DataLayoutError, match=r"open/ and closed/.*|MRL") as err:
        D.load_any(tmp_path / "junk")
    assert "open/ and closed/" in str(err.value) and "mrlEyes_2018_01/sXXXX" in str(err.value)
    not_zip = tmp_path / "data.bin"
    not_zip.write_bytes(b"nothing")
    with pytest.raises(D.DataLayoutError, match="neither a folder nor a zip"):
        D.load_any(not_zip)
    with pytest.raises(D.DataLayoutError, match="MRL Eye Dataset"):
        D.load_mrl(tmp_path / "junk")


def _write_open_closed_tree(root):
    colour = np.zeros((30, 40, 3), np.uint8)
    colour[:] = (50, 100, 200)  # BGR: R=200, G=100, B=50
    rgba = np.zeros((20, 20, 4), np.uint8)
    rgba[:] = (10, 20, 30, 255)
    files = {
        "people/anna/open/a.jpg": colour,
        "people/anna/open/b.png": _eye(1, 36),
        "people/anna/CLOSED/c.bmp": _eye(2, 50),
        "closed/d.png": rgba,
        "closed/e.tiff": _eye(3, 20),
        "closed/broken.png": None,
        "open/notes.txt": "text",
    }
    for name, img in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if img is None:
            path.write_bytes(b"not an image")
        elif isinstance(img, str):
            path.write_text(img)
        else:
            assert cv2.imwrite(str(path), img)


def test_open_closed_folder_any_depth_colour_and_gray(tmp_path):
    _write_open_closed_tree(tmp_path / "tree")
    with pytest.warns(UserWarning, match="corrupt"):
        data = D.load_any(tmp_path / "tree", size=16)
    assert data.kind == "folder" and data.meta == {}
    labels = dict(zip(data.paths, data.labels))
    assert labels == {"closed/d.png": 0, "closed/e.tiff": 0, "people/anna/CLOSED/c.bmp": 0,
                      "people/anna/open/a.jpg": 1, "people/anna/open/b.png": 1}
    assert data.report.corrupt == ["closed/broken.png"]
    bt601 = round(0.299 * 200 + 0.587 * 100 + 0.114 * 50)
    jpg = data.images[data.paths.index("people/anna/open/a.jpg")]
    assert abs(int(np.median(jpg)) - bt601) <= 2  # JPEG is lossy
    png_rgba = data.images[data.paths.index("closed/d.png")]
    assert int(png_rgba[0, 0]) == round(0.299 * 30 + 0.587 * 20 + 0.114 * 10)  # written as BGRA (10,20,30)


def test_public_dataset_folder_names_label_their_images(tmp_path):
    """Names public eye sets use (Open_Eyes, closedLeftEyes, eyes_opened, ...) label like open/ closed/; a folder
    that only contains the word (opencv/, reopened/) does not."""
    for i, folder in enumerate(("Open_Eyes", "dataset_B_Eye_Images/closedLeftEyes", "dataset_B_Eye_Images/openRightEyes",
                                "Closed-Eyes", "opencv/open", "opencv/stray", "eyes_opened", "left_eye_closed",
                                "reopened")):
        (tmp_path / folder).mkdir(parents=True)
        assert cv2.imwrite(str(tmp_path / folder / "x.png"), np.full((20, 20), 30 + 25 * i, np.uint8))
    data = D.load_any(tmp_path, size=16)
    assert dict(zip(data.paths, data.labels.tolist())) == {
        "Closed-Eyes/x.png": 0, "Open_Eyes/x.png": 1, "dataset_B_Eye_Images/closedLeftEyes/x.png": 0,
        "dataset_B_Eye_Images/openRightEyes/x.png": 1, "opencv/open/x.png": 1, "eyes_opened/x.png": 1,
        "left_eye_closed/x.png": 0}


def test_open_closed_zip_is_read_in_place(tmp_path):
    _write_open_closed_tree(tmp_path / "tree")
    path = tmp_path / "mine.zip"
    with zipfile.ZipFile(path, "w") as z:
        for f in sorted((tmp_path / "tree").rglob("*")):
            if f.is_file():
                z.write(f, "export/" + f.relative_to(tmp_path / "tree").as_posix())
    with pytest.warns(UserWarning):
        data = D.load_any(path, size=16)
    assert len(data) == 5 and sorted(data.labels.tolist()) == [0, 0, 0, 1, 1]


def test_preprocess_twin_matches_eyecore_exactly():
    from eyecore.preprocess import gray_to_input as py_gray
    from eyecore.preprocess import rgba_to_input as py_rgba

    rng = np.random.default_rng(0)
    rgba = rng.integers(0, 256, (7, 5, 4), dtype=np.uint8)
    expected = np.asarray(py_rgba(rgba.tobytes(), 5, 7, DEFAULT_SPEC))
    np.testing.assert_array_equal(rgba_to_input(rgba, dtype=np.float64).ravel(), expected)
    np.testing.assert_array_equal(rgba_to_input(rgba).ravel(), expected.astype(np.float32))
    gray = rng.integers(0, 256, (6, 6), dtype=np.uint8)
    expected = np.asarray(py_gray(gray.ravel().tolist(), DEFAULT_SPEC))
    np.testing.assert_array_equal(gray_to_input(gray, dtype=np.float64).ravel(), expected)
    np.testing.assert_allclose(to_model_input(gray[None]).numpy().ravel(), expected, atol=1e-6)
    bgr = rgba[..., 2::-1]
    np.testing.assert_array_equal(color_to_gray_u8(bgr), np.rint(np.asarray(py_rgba(rgba.tobytes(), 5, 7,
                                  DEFAULT_SPEC.__class__(mean=0.0, std=1 / 255))).reshape(7, 5)).astype(np.uint8))


@pytest.mark.shared
def test_real_mrl_subset_labels_follow_names(mrl_zip):
    data = D.load_mrl(mrl_zip, 48, subjects=["s0009"], cache=False)
    assert len(data) == 387 and set(np.unique(data.subjects)) == {9}
    assert int((data.labels == 0).sum()) == 363
    assert data.images.shape == (387, 48, 48)


def test_empty_files_are_corrupt_and_jpeg_exif_orientation_is_applied(tmp_path):
    """A zero-byte image is reported and skipped like any corrupt one (it used to stop the whole load); a phone
    JPEG stored sideways with an EXIF orientation is read upright, as viewers show it."""
    import io

    from PIL import Image

    (tmp_path / "open").mkdir()
    (tmp_path / "closed").mkdir()
    (tmp_path / "closed" / "empty.png").write_bytes(b"")
    (tmp_path / "closed" / "fine.png").write_bytes(cv2.imencode(".png", np.full((20, 20), 90, np.uint8))[1].tobytes())
    wide = np.zeros((40, 80), np.uint8)
    wide[:, :40] = 255  # stored: white left half; EXIF 6 = shown rotated 90 degrees clockwise: white top half
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(wide).save(buffer, "JPEG", exif=exif.tobytes())
    (tmp_path / "open" / "phone.jpg").write_bytes(buffer.getvalue())
    with pytest.warns(UserWarning, match="corrupt"):
        data = D.load_any(tmp_path, size=16, cache=False)
    assert data.report.corrupt == ["closed/empty.png"]
    upright = data.images[data.paths.index("open/phone.jpg")].astype(int)
    assert upright[:6].mean() > 200 and upright[-6:].mean() < 50
    gray = D.decode_gray(buffer.getvalue())
    assert gray.shape == (80, 40)


def test_web_jpeg_names_tga_float_tiff_and_png_exif_are_read_and_other_files_are_named(tmp_path, capsys):
    """Public eye sets scraped from the web hold .jfif files; some store TGA, float TIFF (0..1) or a PNG turned by
    its EXIF orientation. Each reads as the picture it shows. A labelled file of no image kind is left out with a
    note that names it (it used to vanish without a word); the files an OS adds are not mentioned."""
    import io

    from PIL import Image

    picture = np.tile(np.linspace(0, 255, 32).astype(np.uint8), (24, 1))  # dark left, bright right, 32 wide
    for folder in ("open", "closed"):
        (tmp_path / folder).mkdir()
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, "JPEG", quality=95)
    (tmp_path / "open" / "web.jfif").write_bytes(buffer.getvalue())
    Image.fromarray(picture).save(tmp_path / "closed" / "old.tga")
    (tmp_path / "open" / "notes.txt").write_text("eyes\n")
    (tmp_path / "closed" / "photo.heic").write_bytes(b"\x00" * 64)
    (tmp_path / "closed" / "Thumbs.db").write_bytes(b"\x00" * 64)
    data = D.load_any(tmp_path, size=16, cache=False)
    assert sorted(data.paths) == ["closed/old.tga", "open/web.jfif"] and data.report.corrupt == []
    notes = capsys.readouterr().err
    assert "2 files in open/closed folders are not of an image kind read here (.heic, .txt" in notes
    assert "Thumbs.db" not in notes
    for name in data.paths:  # dark left, bright right: neither lost nor mirrored
        image = data.images[data.paths.index(name)].astype(int)
        assert image[:, :4].mean() < 80 and image[:, -4:].mean() > 170, name

    tiff = io.BytesIO()
    Image.fromarray(picture.astype(np.float32) / 255.0, "F").save(tiff, "TIFF")
    assert np.abs(D.decode_gray(tiff.getvalue()).astype(int) - picture).max() <= 1  # not all black

    exif = Image.Exif()
    exif[0x0112] = 6  # shown turned 90 degrees clockwise
    for kind in ("PNG", "WEBP"):
        turned = io.BytesIO()
        Image.fromarray(picture).save(turned, kind, exif=exif.tobytes(), **({"lossless": True} if kind == "WEBP" else {}))
        gray = D.decode_gray(turned.getvalue())
        assert gray.shape == (32, 24), kind  # upright, as viewers show it
        assert gray[:4].mean() < 80 and gray[-4:].mean() > 170, kind  # the dark left side is now the top


def test_16_bit_images_keep_the_bits_their_sensor_used():
    """A 12-bit infrared frame stored in a 16-bit PNG (values up to 4095) reads as the full 0-255 range, not 0-15."""
    ramp = (np.arange(64 * 64).reshape(64, 64) % 4096).astype(np.uint16)
    gray = D.decode_gray(cv2.imencode(".png", ramp)[1].tobytes())
    assert gray.dtype == np.uint8 and gray.max() == 255 and gray.min() == 0
    full = (ramp.astype(np.uint32) * 16).astype(np.uint16)  # the same picture using all 16 bits
    assert np.array_equal(D.decode_gray(cv2.imencode(".png", full)[1].tobytes()), gray)


def test_non_square_images_are_padded_to_a_square_not_squashed():
    """An eye patch wider than tall (public sets have 60x36 ones) keeps its shape: an eye stretched to fill a square
    looks more open than it is (docs/BENCHMARKS.md section 2, "Non-square eye patches")."""
    wide = np.full((20, 40), 200, np.uint8)
    wide[0] = 10  # the top row, repeated upwards by the padding
    padded = D.square(wide)
    assert padded.shape == (40, 40)
    assert (padded[:10] == 10).all() and np.array_equal(padded[10:30], wide) and (padded[30:] == 200).all()
    tall = D.square(wide.T.copy())
    assert tall.shape == (40, 40) and np.array_equal(tall[:, 10:30], wide.T)
    assert D.square(padded) is padded  # square images are untouched (MRL, the page's crops)


def test_16_bit_alpha_does_not_set_the_depth():
    colour = np.full((8, 8, 3), 1000, np.uint16)
    rgba = np.dstack([colour, np.full((8, 8), 65535, np.uint16)])
    as_rgb = D.decode_gray(cv2.imencode(".png", colour)[1].tobytes())
    assert np.array_equal(D.decode_gray(cv2.imencode(".png", rgba)[1].tobytes()), as_rgb) and as_rgb.max() > 200
