"""Load eye images into memory: the MRL Eye Dataset (zip or folder) or any open/ + closed/ labelled folder or zip.

Everything is decoded once, converted to gray (BT.601), resized to `size` with INTER_AREA and kept as uint8.
Zip loads are cached under `.cache/` (keyed by path, size, mtime), so a second run is instant.

    python -m pipeline.data --data ../shared/data/mrl/mrlEyes_2018_01_dev.zip --size 48
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import warnings
import zipfile
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.cli import positive_int
from pipeline.preprocess import color_to_gray_u8

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_MRL_ZIP = REPO_ROOT.parent / "shared" / "data" / "mrl" / "mrlEyes_2018_01_dev.zip"
CACHE_DIR = Path(os.environ.get("EYESTATE_CACHE_DIR", REPO_ROOT / ".cache" / "eyedata"))
CACHE_VERSION = 3  # 2: EXIF orientation, 16-bit depth, non-square images padded; 3: .jfif/.tga, float TIFF, PNG EXIF

# .jfif / .jpe: JPEGs as browsers save them from the web; .tga: read by Pillow (OpenCV cannot)
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".jfif", ".jpe", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".pgm", ".ppm",
                    ".pnm", ".tga"}
MRL_FIELDS = ("subject", "image_id", "gender", "glasses", "eye_state", "reflections", "lighting", "sensor")
META_KEYS = ("subject", "gender", "glasses", "reflections", "lighting", "sensor")
MRL_NAME = re.compile(r"^s(\d{4})_(\d+)_([01])_([01])_([01])_([012])_([01])_(\d{2})$")
MRL_LAYOUT = "mrlEyes_2018_01/sXXXX/sXXXX_IIIII_G_GL_E_R_L_SS.png (MRL Eye Dataset, zip or extracted folder)"
FOLDER_LAYOUT = ("a folder or zip with open/ and closed/ subfolders (at any depth; also names like Open_Eyes/, "
                 "eyes_opened/ or closedLeftEyes/) holding image files")
# A folder that labels its images: open / opened / closed (or close), optionally with left/right and eye(s) before
# or after, in any case and with _ - or space between (open_eyes, Closed-Eyes, closedLeftEyes, openRightEyes,
# eyes_opened, left_eye_closed: the names public sets use).
_SIDE_EYE = r"(?:(?:left|right)[ _-]?)?(?:eyes?)?"
LABEL_FOLDER = re.compile(rf"(?:{_SIDE_EYE}[ _-]?)?(open(?:ed)?|closed?)[ _-]?{_SIDE_EYE}")

# Readable names of the MRL field values (used by reports).
VALUE_NAMES = {
    "gender": {0: "man", 1: "woman"},
    "glasses": {0: "no", 1: "yes"},
    "reflections": {0: "none", 1: "small", 2: "big"},
    "lighting": {0: "bad", 1: "good"},
    "sensor": {1: "RealSense", 2: "IDS", 3: "Aptina"},
}


class DataLayoutError(ValueError):
    """The path does not exist or does not hold one of the supported layouts."""


class MrlName(NamedTuple):
    subject: int
    image_id: int
    gender: int
    glasses: int
    eye_state: int
    reflections: int
    lighting: int
    sensor: int


def parse_mrl_name(name: str) -> MrlName:
    """`s0012_00345_0_1_0_2_0_01.png` (any directory part) -> its eight fields as ints."""
    stem = Path(name.replace("\\", "/")).stem
    m = MRL_NAME.match(stem)
    if not m:
        raise ValueError(
            f"not an MRL file name: {name!r}; expected subject_imageid_gender_glasses_eyestate_reflections_lighting_sensor,"
            " e.g. s0012_00345_0_1_0_2_0_01.png"
        )
    return MrlName(*(int(g) for g in m.groups()))


def subject_name(subject: int) -> str:
    return f"s{int(subject):04d}"


@dataclass
class LoadReport:
    n_files: int = 0
    n_loaded: int = 0
    corrupt: list[str] = field(default_factory=list)
    unparsed: list[str] = field(default_factory=list)
    conflicting_duplicates: list[str] = field(default_factory=list)
    n_same_label_duplicates: int = 0
    unlabelled: list[str] = field(default_factory=list)  # open/closed layout: images in folders named neither
    not_images: list[str] = field(default_factory=list)  # open/closed layout: labelled files of no image kind read

    def summary(self) -> str:
        return (
            f"{self.n_loaded} images loaded of {self.n_files} files; {len(self.corrupt)} corrupt/unreadable skipped; "
            f"{len(self.conflicting_duplicates)} dropped as identical pixels with conflicting labels; "
            f"{self.n_same_label_duplicates} identical-pixel copies with the same label kept"
            + (f"; {len(self.unparsed)} image names not in the MRL format skipped" if self.unparsed else "")
            + (f"; {len(self.unlabelled)} images in folders without an open/closed name skipped"
               if self.unlabelled else "")
        )

    def notes(self, source: str) -> list[str]:
        """One line per kind of image left out without an error (the layout explains it, but the user may not
        expect it)."""
        lines = []
        if self.unparsed:
            lines.append(f"note: {len(self.unparsed)} images skipped: {source} holds MRL-named images, so it is read "
                         f"as MRL data, and these names are not MRL names (sXXXX_IIIII_G_GL_E_R_L_SS): "
                         f"{_few(self.unparsed)}; in a folder of their own, their open/closed folders would label them")
        if self.unlabelled:
            folders = defaultdict(int)
            for name in self.unlabelled:
                folders[name.rpartition("/")[0] or "."] += 1
            shown = _few([f"{folder}/ ({n})" for folder, n in folders.items()], 5)
            lines.append(f"note: {len(self.unlabelled)} images in {len(folders)} folder(s) named neither open nor "
                         f"closed carry no label and are left out: {shown}")
        if self.not_images:
            kinds = sorted({Path(name).suffix.lower() or "(no extension)" for name in self.not_images})
            lines.append(f"note: {len(self.not_images)} files in open/closed folders are not of an image kind read "
                         f"here ({', '.join(kinds)}; read: {', '.join(sorted(IMAGE_EXTENSIONS))}) and are left out: "
                         f"{_few(self.not_images)}")
        return lines


def _few(names: list[str], n: int = 3) -> str:
    return ", ".join(names[:n]) + (f", ... ({len(names) - n} more)" if len(names) > n else "")


@dataclass
class EyeData:
    images: np.ndarray  # uint8 [N,S,S]
    labels: np.ndarray  # int64 [N], 0 closed / 1 open
    meta: dict[str, np.ndarray]  # int arrays (MRL only): subject, gender, glasses, reflections, lighting, sensor
    paths: list[str]
    source: str = ""
    kind: str = "folder"  # "mrl" or "folder"
    report: LoadReport = field(default_factory=LoadReport)

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def subjects(self) -> np.ndarray | None:
        return self.meta.get("subject")

    def subset(self, index) -> "EyeData":
        idx = np.flatnonzero(index) if np.asarray(index).dtype == bool else np.asarray(index, dtype=np.int64)
        return EyeData(
            images=self.images[idx], labels=self.labels[idx], meta={k: v[idx] for k, v in self.meta.items()},
            paths=[self.paths[i] for i in idx], source=self.source, kind=self.kind, report=self.report,
        )

    def select_subjects(self, subjects) -> "EyeData":
        if self.subjects is None:
            raise ValueError(f"{self.source} has no subject information (only MRL data has subjects)")
        wanted = {int(str(s).lstrip("s")) for s in subjects}
        return self.subset(np.isin(self.subjects, sorted(wanted)))


# ---------------------------------------------------------------- sources: a zip or a folder, listed as names

class _Source:
    """Lists the files of a zip or folder (relative names with '/') and reads their bytes."""

    def __init__(self, path: Path):
        self.path = path
        if path.is_dir():
            self.names = sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())
            self._zip = None
        elif zipfile.is_zipfile(path):
            self._zip = zipfile.ZipFile(path)
            self.names = [i.filename for i in self._zip.infolist() if not i.is_dir()]
        else:
            raise DataLayoutError(f"{path} is neither a folder nor a zip file; expected {MRL_LAYOUT} or {FOLDER_LAYOUT}")

    def read(self, name: str) -> bytes:
        return self._zip.read(name) if self._zip else (self.path / name).read_bytes()

    def close(self) -> None:
        if self._zip:
            self._zip.close()


def _is_hidden(name: str) -> bool:
    """Hidden files and folders, and the ones operating systems add (thumbnail caches, folder settings)."""
    parts = name.split("/")
    return any(p.startswith(".") or p == "__MACOSX" for p in parts) or parts[-1].lower() in ("thumbs.db", "desktop.ini")


def _is_image(name: str) -> bool:
    return not _is_hidden(name) and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def decode_gray(data: bytes) -> np.ndarray | None:
    """Image bytes (any common format, gray/colour/alpha, 8 or 16 bit) -> uint8 gray [H,W], or None if unreadable.
    JPEGs are turned upright by their EXIF orientation, as image viewers show them (phones store many rotated)."""
    if not data:
        return None  # an empty file, or one that could not be read
    # IMREAD_UNCHANGED keeps 16 bit and alpha but ignores EXIF; JPEGs have neither, so they decode as colour,
    # which applies the orientation.
    flag = cv2.IMREAD_COLOR if data[:2] == b"\xff\xd8" else cv2.IMREAD_UNCHANGED
    img = None
    if _has_exif_outside_jpeg(data):  # OpenCV turns only JPEGs by their EXIF orientation; Pillow turns any
        img = _decode_with_pillow(data)
    if img is None:
        try:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), flag)
        except cv2.error:
            img = None
    if img is None:  # formats OpenCV cannot decode (e.g. some GIFs): try Pillow
        img = _decode_with_pillow(data)
        if img is None:
            return None
    if img.dtype == np.uint16:  # 10- or 12-bit sensors store their values in 16-bit PNGs: use the bits present
        colour = img[..., :3] if img.ndim == 3 else img  # not the alpha channel
        img = (img >> max(0, int(colour.max()).bit_length() - 8)).astype(np.uint8)
    elif img.dtype.kind == "f" and np.nanmax(img, initial=0.0) <= 1.0:  # a float TIFF holds 0..1, not 0..255
        img = np.clip(np.nan_to_num(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    elif img.dtype != np.uint8:
        img = np.clip(np.nan_to_num(img), 0, 255).astype(np.uint8)
    if img.ndim == 3 and img.shape[2] == 1:
        img = img[..., 0]
    if img.ndim == 3:
        img = color_to_gray_u8(img, order="bgr")
    return img if img.ndim == 2 and img.size else None


def _has_exif_outside_jpeg(data: bytes) -> bool:
    """A PNG with an eXIf chunk or a WebP with an EXIF chunk (header bytes only: the chunks come before the pixels)."""
    head = data[:65536]
    return (data[:8] == b"\x89PNG\r\n\x1a\n" and b"eXIf" in head) or \
        (data[:4] == b"RIFF" and data[8:12] == b"WEBP" and b"EXIF" in head)


def square(gray: np.ndarray) -> np.ndarray:
    """A non-square image padded to a square (edges repeated) instead of squashed: the model sees square eye crops
    (MRL's, the page's), and an eye stretched to fill a square looks more open than it is."""
    h, w = gray.shape
    if h == w:
        return gray
    pad = abs(h - w)
    first, second = pad // 2, pad - pad // 2
    top, bottom, left, right = (first, second, 0, 0) if h < w else (0, 0, first, second)
    return cv2.copyMakeBorder(gray, top, bottom, left, right, cv2.BORDER_REPLICATE)


def _decode_with_pillow(data: bytes) -> np.ndarray | None:
    import io

    from PIL import Image, ImageOps

    try:
        with Image.open(io.BytesIO(data)) as im:
            rgb = np.asarray(ImageOps.exif_transpose(im).convert("RGB"))
    except Exception:
        return None
    return np.ascontiguousarray(rgb[..., ::-1])  # BGR like OpenCV


def _decode_all(source: _Source, names: list[str], size: int, workers: int, desc: str):
    """Decode + resize every name; returns (images uint8 [N,S,S], ok mask, pixel hashes)."""
    images = np.zeros((len(names), size, size), np.uint8)
    ok = np.zeros(len(names), bool)
    hashes: list[bytes] = [b""] * len(names)

    def work(item: tuple[int, bytes]) -> None:
        i, data = item
        gray = decode_gray(data)
        if gray is None:
            return
        hashes[i] = hashlib.blake2b(gray.tobytes() + np.asarray(gray.shape).tobytes(), digest_size=16).digest()
        images[i] = cv2.resize(square(gray), (size, size), interpolation=cv2.INTER_AREA)
        ok[i] = True

    def read(name: str) -> bytes:
        try:
            return source.read(name)
        except Exception:  # unreadable zip member or file: counted as corrupt
            return b""

    chunk = 512
    with ThreadPoolExecutor(max(1, workers)) as pool, tqdm(
        total=len(names), desc=desc, unit="img", mininterval=0.5, leave=False
    ) as bar:
        for start in range(0, len(names), chunk):
            batch = [(i, read(names[i])) for i in range(start, min(start + chunk, len(names)))]
            list(pool.map(work, batch))  # cv2 releases the GIL while decoding
            bar.update(len(batch))
    return images, ok, hashes


def _drop_conflicting_duplicates(hashes: list[bytes], labels: np.ndarray, report: LoadReport, names: list[str]):
    groups: dict[bytes, list[int]] = defaultdict(list)
    for i, h in enumerate(hashes):
        groups[h].append(i)
    keep = np.ones(len(hashes), bool)
    for idx in groups.values():
        if len(idx) < 2:
            continue
        if len({int(labels[i]) for i in idx}) > 1:
            keep[idx] = False
            report.conflicting_duplicates.extend(names[i] for i in idx)
        else:
            report.n_same_label_duplicates += len(idx) - 1
    return keep


# ---------------------------------------------------------------- MRL

def _mrl_entries(source: _Source, report: LoadReport) -> tuple[list[str], list[MrlName]]:
    names, fields = [], []
    for name in source.names:
        if not _is_image(name):
            continue
        try:
            fields.append(parse_mrl_name(name))
            names.append(name)
        except ValueError:
            report.unparsed.append(name)
    return names, fields


def scan_mrl(path) -> tuple[list[str], np.ndarray]:
    """File names and their parsed fields ([N,8] ints, MRL_FIELDS order) without decoding any image."""
    source = _Source(_checked_path(path))
    try:
        names, fields = _mrl_entries(source, LoadReport())
    finally:
        source.close()
    if not names:
        raise DataLayoutError(_layout_message(Path(path), source.names, expected=MRL_LAYOUT))
    return names, np.asarray(fields, dtype=np.int64).reshape(-1, len(MRL_FIELDS))


def _sample(n: int, max_images: int | None, seed: int) -> np.ndarray:
    if max_images is None or max_images >= n:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_images, replace=False))


def load_mrl(path, size: int = 48, *, subjects=None, max_images: int | None = None, seed: int = 0,
             workers: int = 2, cache: bool = True) -> EyeData:
    """MRL Eye Dataset from the official zip (read in place) or an extracted folder.

    `subjects` (ints or "s0012") and `max_images` (random subset, `seed`) load only part of it (not cached).
    """
    path = _checked_path(path)
    partial = subjects is not None or max_images is not None
    key = _cache_key(path, size, "mrl") if cache and not partial else None
    if key and (cached := _read_cache(key)) is not None:
        return cached
    source = _Source(path)
    try:
        report = LoadReport()
        names, fields = _mrl_entries(source, report)
        if not names:
            raise DataLayoutError(_layout_message(path, source.names, expected=MRL_LAYOUT))
        if subjects is not None:
            wanted = {int(str(s).lstrip("s")) for s in subjects}
            pairs = [(n, f) for n, f in zip(names, fields) if f.subject in wanted]
            names, fields = [p[0] for p in pairs], [p[1] for p in pairs]
        pick = _sample(len(names), max_images, seed)
        names, fields = [names[i] for i in pick], [fields[i] for i in pick]
        report.n_files = len(names)
        images, ok, hashes = _decode_all(source, names, size, workers, desc=f"MRL {path.name}")
    finally:
        source.close()
    table = np.asarray(fields, dtype=np.int64).reshape(-1, len(MRL_FIELDS))
    labels = table[:, MRL_FIELDS.index("eye_state")]
    data = _finish(images, labels, ok, hashes, names, report, str(path), "mrl",
                   meta={k: table[:, MRL_FIELDS.index(k)] for k in META_KEYS})
    if key:
        _write_cache(key, data)
    return data


# ---------------------------------------------------------------- open/ closed/ folders

def _folder_label(name: str) -> int | None:
    """Label from the nearest enclosing folder named open or closed (LABEL_FOLDER, case-insensitive)."""
    for part in reversed(name.lower().split("/")[:-1]):
        match = LABEL_FOLDER.fullmatch(part)
        if match:
            return 1 if match.group(1).startswith("open") else 0
    return None


def load_folder(path, size: int = 48, *, workers: int = 2, cache: bool = True) -> EyeData:
    """Any folder or zip holding `open/` and `closed/` subfolders at any depth (any common image format)."""
    path = _checked_path(path)
    key = _cache_key(path, size, "folder") if cache and path.is_file() else None
    if key and (cached := _read_cache(key)) is not None:
        return cached
    source = _Source(path)
    try:
        names, labels, unlabelled, not_images = [], [], [], []
        for name in source.names:
            if _is_hidden(name):
                continue
            label = _folder_label(name)
            if not _is_image(name):
                if label is not None:
                    not_images.append(name)
            elif label is None:
                unlabelled.append(name)
            else:
                names.append(name)
                labels.append(label)
        if not names:
            raise DataLayoutError(_layout_message(path, source.names, expected=FOLDER_LAYOUT))
        report = LoadReport(n_files=len(names), unlabelled=unlabelled, not_images=not_images)
        images, ok, hashes = _decode_all(source, names, size, workers, desc=f"images {path.name}")
    finally:
        source.close()
    data = _finish(images, np.asarray(labels, np.int64), ok, hashes, names, report, str(path), "folder", meta={})
    if key:
        _write_cache(key, data)
    return data


def load_any(path=None, size: int = 48, **kwargs) -> EyeData:
    """MRL layout if the file names are MRL names, else the open/closed layout; clear error otherwise."""
    path = _checked_path(path if path is not None else default_data_path())
    source = _Source(path)
    try:
        images = [n for n in source.names if _is_image(n)]
        is_mrl = any(MRL_NAME.match(Path(n).stem) for n in images)
        has_folders = any(_folder_label(n) is not None for n in images)
    finally:
        source.close()
    if is_mrl or has_folders:
        if is_mrl:
            data = load_mrl(path, size, **kwargs)
        else:
            data = load_folder(path, size, **{k: v for k, v in kwargs.items() if k in ("workers", "cache")})
        for line in data.report.notes(str(path)):
            print(line, file=sys.stderr)
        return data
    raise DataLayoutError(_layout_message(path, source.names, expected=f"either {MRL_LAYOUT} or {FOLDER_LAYOUT}"))


def default_data_path() -> Path:
    if DEFAULT_MRL_ZIP.exists():
        return DEFAULT_MRL_ZIP
    raise DataLayoutError(
        f"no --data given and the default MRL zip {DEFAULT_MRL_ZIP} does not exist; pass --data with {MRL_LAYOUT} "
        f"or {FOLDER_LAYOUT}"
    )


# ---------------------------------------------------------------- shared helpers

def _checked_path(path) -> Path:
    if path is None:
        return default_data_path()
    p = Path(path).expanduser()
    if not p.exists():
        raise DataLayoutError(f"data path {p} does not exist; expected {MRL_LAYOUT} or {FOLDER_LAYOUT}")
    return p


def _layout_message(path: Path, names: list[str], expected: str) -> str:
    shown = ", ".join(names[:5]) or "nothing"
    return f"{path} does not have the expected layout: expected {expected}; found {len(names)} files ({shown}{', ...' if len(names) > 5 else ''})"


def _finish(images, labels, ok, hashes, names, report: LoadReport, source: str, kind: str, meta) -> EyeData:
    report.corrupt = [n for n, good in zip(names, ok) if not good]
    if report.corrupt:
        warnings.warn(f"{len(report.corrupt)} corrupt or unreadable images skipped: {report.corrupt[:10]}", stacklevel=3)
    keep = ok.copy()
    idx_ok = np.flatnonzero(ok)
    keep_ok = _drop_conflicting_duplicates([hashes[i] for i in idx_ok], labels[idx_ok], report, [names[i] for i in idx_ok])
    keep[idx_ok] = keep_ok
    if report.conflicting_duplicates:
        warnings.warn(
            f"dropped {len(report.conflicting_duplicates)} images whose pixels are identical but whose labels conflict",
            stacklevel=3,
        )
    idx = np.flatnonzero(keep)
    report.n_loaded = len(idx)
    if not len(idx):
        raise DataLayoutError(f"no readable images in {source} ({len(report.corrupt)} corrupt)")
    return EyeData(
        images=images[idx], labels=labels[idx].astype(np.int64), meta={k: np.asarray(v)[idx] for k, v in meta.items()},
        paths=[names[i] for i in idx], source=source, kind=kind, report=report,
    )


def _cache_key(path: Path, size: int, kind: str) -> str:
    st = path.stat()
    ident = f"v{CACHE_VERSION}|{kind}|{path.resolve()}|{st.st_size}|{st.st_mtime_ns}|{size}"
    return f"{kind}_{path.stem}_{size}px_{hashlib.sha1(ident.encode()).hexdigest()[:12]}"


def _read_cache(key: str) -> EyeData | None:
    file = CACHE_DIR / f"{key}.npz"
    if not file.exists():
        return None
    try:
        with np.load(file, allow_pickle=False) as z:
            info = json.loads(str(z["info"]))
            return EyeData(
                images=z["images"], labels=z["labels"], meta={k: z[f"meta_{k}"] for k in info["meta_keys"]},
                paths=[str(p) for p in z["paths"]], source=info["source"], kind=info["kind"], report=LoadReport(**info["report"]),
            )
    except Exception as exc:  # a broken cache file is rebuilt, never trusted
        warnings.warn(f"ignoring unreadable cache {file}: {exc}", stacklevel=2)
        return None


def _write_cache(key: str, data: EyeData) -> None:
    CACHE_DIR.mkdir(parents=True, exist_ok=True)
    info = {"source": data.source, "kind": data.kind, "meta_keys": list(data.meta), "report": data.report.__dict__}
    tmp = CACHE_DIR / f"{key}.{os.getpid()}.tmp.npz"  # parallel runs must not share a temp file
    np.savez(tmp, images=data.images, labels=data.labels, paths=np.asarray(data.paths), info=json.dumps(info),
             **{f"meta_{k}": v for k, v in data.meta.items()})
    os.replace(tmp, CACHE_DIR / f"{key}.npz")


def describe(data: EyeData) -> str:
    lines = [f"{data.source} ({data.kind}): {len(data)} images {data.size}x{data.size}, "
             f"closed {int((data.labels == 0).sum())}, open {int((data.labels == 1).sum())}",
             data.report.summary()]
    if data.subjects is not None:
        lines.append(f"{len(np.unique(data.subjects))} subjects")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Load eye images (MRL or open/closed folders) and report what was found.")
    ap.add_argument("--data", default=None, help=f"MRL zip/folder or open/closed folder/zip (default {DEFAULT_MRL_ZIP})")
    ap.add_argument("--size", type=positive_int, default=48)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-cache", action="store_true")
    args = ap.parse_args(argv)
    try:
        data = load_any(args.data, args.size, workers=args.workers, cache=not args.no_cache)
    except (ValueError, OSError) as error:  # wrong path or layout: the message says what was expected
        raise SystemExit(f"error: {error}") from None
    print(describe(data))
    for name in data.report.corrupt[:20]:
        print("corrupt:", name)


if __name__ == "__main__":
    main()
