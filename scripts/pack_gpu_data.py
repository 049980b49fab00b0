"""Pack the MRL training + validation subjects as a small MRL-layout zip of 48 px PNGs for a GPU machine.

The device tool carries at most 64 MiB, so every `--train-stride`-th training image is kept (MRL images are
consecutive video frames, neighbours are near-duplicates); validation subjects are kept whole and test subjects
are left out entirely. The zip keeps the official file names, so `pipeline.train --data` reads it unchanged.
"""
from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import cv2
import numpy as np

from pipeline.data import load_mrl


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data", default=None)
    ap.add_argument("--split", default="splits/mrl_split.json")
    ap.add_argument("--size", type=int, default=48)
    ap.add_argument("--train-stride", type=int, default=2)
    ap.add_argument("--out", default=".devdata/mrl_trainval.zip")
    args = ap.parse_args()
    split = json.loads(Path(args.split).read_text())
    data = load_mrl(args.data, args.size)
    subj = {int(s.lstrip("s")): part for part in ("train", "val") for s in split[part]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    seen: dict[int, int] = {}
    kept = 0
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for img, path, s in zip(data.images, data.paths, data.subjects):
            part = subj.get(int(s))
            if part is None:
                continue
            i = seen.get(int(s), 0)
            seen[int(s)] = i + 1
            if part == "train" and i % args.train_stride:
                continue
            ok, png = cv2.imencode(".png", np.ascontiguousarray(img), [cv2.IMWRITE_PNG_COMPRESSION, 9])
            z.writestr(path, png.tobytes())
            kept += 1
    print(f"wrote {kept} images to {out} ({out.stat().st_size / 2**20:.1f} MiB)")


if __name__ == "__main__":
    main()
