"""argparse types shared by the pipeline's command lines: a bad count or output path fails when the arguments are
parsed, before minutes of work, not at the end."""
from __future__ import annotations

import argparse
import tempfile
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


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def non_negative_float(text: str) -> float:
    """A number where 0 has a meaning of its own (e.g. 'never')."""
    if not _float(text) >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text}: expected a number of at least 0")
    return float(text)


def positive_float(text: str) -> float:
    if not _float(text) > 0:  # also NaN
        raise argparse.ArgumentTypeError(f"{text}: expected a number greater than 0")
    return float(text)


def _writable_above(path: Path) -> None:
    """The nearest existing folder above `path` must take a new file (missing folders are the writer's to make)."""
    above = next((p for p in path.parents if p.exists()), None)
    if above is None:
        return
    if not above.is_dir():
        raise argparse.ArgumentTypeError(f"{path}: {above} is a file, not a folder")
    try:
        with tempfile.TemporaryFile(dir=above):
            pass
    except OSError as error:
        raise argparse.ArgumentTypeError(f"cannot write {path}: {above} does not take new files "
                                         f"({error.strerror or error})") from None


def output_file(text: str) -> Path | str:
    """A file to write. An existing folder, a path below an existing file, or one where no file can be made is
    refused; missing folders above it are the writer's to make. "" stays "" (pipeline.benchmark: do not write that
    file)."""
    if not text:
        return text
    path = Path(text)
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is an existing folder; expected the path of a file to write "
                                         "(a new name, or a file to replace)")
    _writable_above(path)
    return path


def output_file_of(*suffixes: str):
    """output_file, and its name must end in one of `suffixes` (e.g. the image formats a writer knows)."""
    def check(text: str) -> Path | str:
        path = output_file(text)
        if path and Path(path).suffix.lower() not in suffixes:
            raise argparse.ArgumentTypeError(f"{path}: expected a file name ending in {' or '.join(suffixes)}")
        return path
    return check


def output_folder(text: str) -> str:
    """A folder to write into: it may exist; an existing file, or a place where nothing can be made, is refused.
    The text is kept as given (it goes into run records as JSON)."""
    path = Path(text)
    if path.exists() and not path.is_dir():
        raise argparse.ArgumentTypeError(f"{path} is a file; expected a folder (an existing one or a new name)")
    if path.is_dir():
        _writable_above(path / "probe")
    else:
        _writable_above(path)
    return text


def refuse_overwriting(parser: argparse.ArgumentParser, inputs, **outputs) -> None:
    """parser.error when an output (option name -> path; "" or None: not written) names one of the `inputs` files or
    the same file as another output: it would be replaced once the work is done (a model, a video, its labels)."""
    given = {Path(path).resolve() for path in inputs if path}
    taken = {}
    for option, path in outputs.items():
        if not path:
            continue
        where, option = Path(path).resolve(), "--" + option.replace("_", "-")
        if where in given:
            parser.error(f"{option} {path} is one of the input files, which it would replace; choose another name")
        if where in taken:
            parser.error(f"{taken[where]} and {option} both name {path}; choose two files")
        taken[where] = option
