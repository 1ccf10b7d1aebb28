"""Reading the user's input files (descriptor, config) safely: regular files only, bounded size.

A path may name anything: ``/dev/zero`` or a FIFO would make a plain ``read_bytes()`` hang or
exhaust memory, a directory raises ``IsADirectoryError`` with an unhelpful errno text. So we
open without blocking, check what the open descriptor is (``fstat``, so a file swapped between
a check and the read cannot slip through), and read at most ``limit + 1`` bytes.

The limit is the emulated host's (docs/emulated-host.md: "Descriptors larger than 5 MB fail
the task"); Cloud's own limit is smaller, so nothing valid is refused here.
"""

from __future__ import annotations

import codecs
import difflib
import errno
import os
import stat
from pathlib import Path

__all__ = [
    "MAX_INPUT_BYTES",
    "InputFileError",
    "NotUtf8Error",
    "decode_utf8",
    "describe_missing",
    "read_input_file",
]

MAX_INPUT_BYTES = 5 * 1000 * 1000  # 5 MB, as the emulated host refuses descriptors


class InputFileError(Exception):
    """A file could not be read as input. ``reason`` is a short phrase for a message
    ("file not found", "is a directory", "larger than 5 MB"); ``kind`` is what callers pick
    their hint by: ``missing`` (nothing at the path: add a did-you-mean), ``directory``,
    ``special`` (a FIFO, device, socket or broken link), ``too_large`` or ``unreadable``."""

    def __init__(self, reason: str, *, kind: str = "unreadable") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind

    @property
    def missing(self) -> bool:
        return self.kind == "missing"


def read_input_file(path: Path, *, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of the regular file at ``path`` (symlinks followed), at most ``limit`` bytes.

    Raises ``InputFileError`` at once for a missing path, a directory, a device, a FIFO or a
    socket, and for a file larger than ``limit`` (without reading more than ``limit + 1``).
    """
    try:
        # O_NONBLOCK: opening a FIFO with no writer must not wait for one.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as exc:
        target = _dangling_target(path)
        if target is not None:
            raise InputFileError(
                f"is a broken symbolic link (to {target}, which does not exist)", kind="special"
            ) from exc
        raise InputFileError("file not found", kind="missing") from exc
    except IsADirectoryError as exc:
        raise InputFileError("is a directory, not a regular file", kind="directory") from exc
    except OSError as exc:
        raise InputFileError(_reason(exc, path)) from exc
    except ValueError as exc:  # os.open refuses a path with a NUL character
        raise InputFileError("the path contains a NUL character") from exc
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise InputFileError("is a directory, not a regular file", kind="directory")
        if not stat.S_ISREG(info.st_mode):
            raise InputFileError(f"is {_kind(info.st_mode)}, not a regular file", kind="special")
        if info.st_size > limit:
            size = _size(info.st_size)
            if size == _size(limit):  # "larger than 5 MB (5 MB)" would puzzle
                size = f"{info.st_size:,} bytes"
            raise InputFileError(f"larger than {_size(limit)} ({size})", kind="too_large")
        chunks: list[bytes] = []
        remaining = limit + 1
        while remaining > 0:
            chunk = os.read(fd, min(remaining, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            remaining -= len(chunk)
        data = b"".join(chunks)
    except InputFileError:
        raise
    except OSError as exc:
        raise InputFileError(_reason(exc, path)) from exc
    finally:
        os.close(fd)
    if len(data) > limit:  # it grew while we read it
        raise InputFileError(f"larger than {_size(limit)}", kind="too_large")
    return data


def describe_missing(path: Path, *, suffix: str) -> str:
    """Where to look instead when nothing is at ``path``: a close name in its directory ("did you
    mean"), else the ``suffix`` files there, else the first directory on the way that is missing.
    """
    absolute = Path(os.path.abspath(path))
    directory = absolute.parent
    if not os.path.isdir(directory):
        missing = directory
        while missing.parent != missing and not os.path.isdir(missing.parent):
            missing = missing.parent
        close = _close_name(missing.name, missing.parent, directories=True)
        guess = f" (did you mean {missing.parent / close}?)" if close else ""
        return f"The directory {missing} does not exist{guess}."
    close = _close_name(absolute.name, directory, directories=False)
    if close:
        return f"Did you mean {close}? ({directory / close})"
    candidates = sorted(
        name for name in _names(directory, directories=False) if name.endswith(suffix)
    )
    if not candidates:
        return f"{directory} has no {suffix} file."
    shown = ", ".join(candidates[:10]) + (", ..." if len(candidates) > 10 else "")
    return f"The {suffix} files in {directory}: {shown}."


# A directory of a hundred thousand entries must not make an error message slow.
_MAX_NAMES = 2000


def _names(directory: Path, *, directories: bool) -> list[str]:
    names: list[str] = []
    try:
        with os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir() == directories:
                        names.append(entry.name)
                except OSError:
                    continue
                if len(names) >= _MAX_NAMES:
                    break
    except OSError:
        return []
    return names


def _close_name(name: str, directory: Path, *, directories: bool) -> str | None:
    if len(name) > 255:
        return None
    match = difflib.get_close_matches(name, _names(directory, directories=directories), n=1)
    return match[0] if match else None


def _dangling_target(path: Path) -> str | None:
    """The target of ``path`` when it is a symbolic link to nothing, else None."""
    try:
        return os.readlink(path) if os.path.islink(path) else None
    except (OSError, ValueError):
        return None


def _reason(exc: OSError, path: Path) -> str:
    if exc.errno == errno.EACCES:
        return "permission denied"
    if exc.errno == errno.ELOOP:
        return "is a symbolic link loop (too many levels of symbolic links)"
    if exc.errno == errno.ENOTDIR:
        return "a part of the path is not a directory"
    if exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    # Opening a socket fails with ENXIO, whose text ("No such device or address") misleads.
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        return f"is {_kind(mode)}, not a regular file"
    return f"cannot read: {exc.strerror or exc}"


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a special file"


def _size(count: int) -> str:
    if count >= 1000 * 1000:
        return f"{_three_digits(count / 1e6)} MB"
    if count >= 1000:
        return f"{_three_digits(count / 1e3)} kB"
    return f"{count} bytes"


def _three_digits(value: float) -> str:
    """52.4, 5, 2000: enough to recognise a size, never 52.4288 or 2e+03."""
    return f"{value:.0f}" if value >= 100 else f"{value:.3g}"


class NotUtf8Error(Exception):
    """Bytes that are not UTF-8 text. ``encoding`` names UTF-16/UTF-32 when that is what they
    are ("" otherwise); ``line``/``column`` are 1-based, of the first byte that is not UTF-8."""

    def __init__(self, reason: str, *, encoding: str = "", line: int = 1, column: int = 1):
        super().__init__(reason)
        self.reason = reason
        self.encoding = encoding
        self.line = line
        self.column = column


_BOMS = (
    (codecs.BOM_UTF32_LE, "UTF-32"),
    (codecs.BOM_UTF32_BE, "UTF-32"),
    (codecs.BOM_UTF16_LE, "UTF-16"),
    (codecs.BOM_UTF16_BE, "UTF-16"),
)


def decode_utf8(raw: bytes) -> str:
    """The text of UTF-8 bytes (a BOM is allowed); raises ``NotUtf8Error``, naming UTF-16 and
    UTF-32 (which some Windows editors write) as such."""
    encoding = next((name for bom, name in _BOMS if raw.startswith(bom)), "")
    # Without a BOM, UTF-16 text has a NUL byte beside each ASCII character.
    head = raw[:4]
    if not encoding and len(head) >= 2 and head.count(0) * 2 == len(head):
        encoding = "UTF-16"
    if encoding:
        raise NotUtf8Error(f"is {encoding} text", encoding=encoding)
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        start = 3 if raw.startswith(codecs.BOM_UTF8) else 0
        before = raw[start : exc.start]
        line = before.count(b"\n") + 1
        column = len(before[before.rfind(b"\n") + 1 :].decode("utf-8", "replace")) + 1
        raise NotUtf8Error(f"not UTF-8 text (byte {exc.start})", line=line, column=column) from exc
