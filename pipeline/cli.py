"""argparse types shared by the pipeline's command lines: a bad count or output path fails when the arguments are
parsed, before minutes of work, not at the end."""
from __future__ import annotations

import argparse
from pathlib import Path


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None


def positive_int(text: str) -> int:
    """A count of at least 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value}: expected a whole number of at least 1")
    return value


def non_negative_int(text: str) -> int:
    """A count where 0 has a meaning of its own (e.g. 'all')."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value}: expected a whole number of at least 0")
    return value


def output_file(text: str) -> Path | str:
    """A file to write. An existing folder, or a path below an existing file, is refused; missing folders above it
    are the writer's to make. "" stays "" (pipeline.benchmark: do not write that file)."""
    if not text:
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is an existing folder; expected the path of a file to write "
                                         "(a new name, or a file to replace)")
    above = next((p for p in path.parents if p.exists()), None)
    if above is not None and not above.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {above} is a file, not a folder")
    return path
