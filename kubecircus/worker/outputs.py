"""Reading what a plug-in left in ``out/`` as an adversary's work.

The plug-in is finished when this runs, but whatever it left may be built to trick a trusted
reader: symbolic links to the collect pod's credentials or ``/proc/self/environ``, FIFOs that
block an ``open``, files it made unreadable, names with newlines or invalid UTF-8, a million
files, sparse files of terabytes, folders nested a thousand deep. So:

- the tree is walked through directory file descriptors, every component opened with
  ``O_NOFOLLOW`` (a link anywhere in a path is never followed), with ``lstat`` only;
- anything but regular files and folders is refused (``OutputInvalid``), as are names that are
  not clean UTF-8 text;
- counts, total bytes and depth are capped before anything is read (``OutputTooLarge``);
- a file is opened ``O_NONBLOCK`` and checked again with ``fstat`` to be the file that was seen.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

_FORBIDDEN_NAME = re.compile(r"[\x00-\x1f\x7f]")
MAX_NAME_BYTES = 255
MAX_KEY_BYTES = 900  # S3 keys stop at 1,024 bytes; the job's prefix takes the rest
DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class OutputRefused(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class OutputFile:
    parts: tuple[str, ...]
    size: int

    @property
    def name(self) -> str:
        return "/".join(self.parts)


@dataclass(frozen=True)
class Limits:
    max_files: int = 10000
    max_bytes: int = 1 << 30
    max_depth: int = 32


def _check_name(relative: str) -> None:
    try:
        encoded = relative.encode("utf-8")
    except UnicodeEncodeError:
        raise OutputRefused("OutputInvalid", "out/ holds a file name that is not valid UTF-8") from None
    if _FORBIDDEN_NAME.search(relative):
        shown = relative.encode("unicode_escape").decode()[:200]
        raise OutputRefused("OutputInvalid", f"out/{shown}: file names may not hold control characters")
    if any(part.strip() in {".", ".."} for part in relative.split("/")):
        raise OutputRefused("OutputInvalid", f"out/{relative[:200]}: '.' and '..' are not usable names")
    if len(encoded) > MAX_KEY_BYTES:
        raise OutputRefused(
            "OutputInvalid", f"out/{relative[:100]}...: path longer than {MAX_KEY_BYTES} bytes"
        )


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device file"
    return "not a regular file"


class _Walk:
    """One walk of ``out/``: counters and the checks of each entry."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self.files: list[OutputFile] = []
        self.entries = 0
        self.total = 0

    def names(self, fd: int, parents: tuple[str, ...]) -> list[str]:
        """The folder's names, counted as they are read (a folder of millions stops early)."""
        names: list[str] = []
        try:
            with os.scandir(fd) as listing:
                for entry in listing:
                    names.append(entry.name)
                    if self.entries + len(names) > self.limits.max_files:
                        raise OutputRefused(
                            "OutputTooLarge",
                            f"out/ holds more than {self.limits.max_files} files and folders",
                        )
            return sorted(names)  # checked in a stable order: the same out/ gives the same verdict
        except PermissionError:
            where = "/".join(parents) or "."
            raise OutputRefused(
                "OutputInvalid", f"out/{where} cannot be read (its mode bars reading)"
            ) from None

    def entry(self, fd: int, name: str, parts: tuple[str, ...]) -> int | None:
        """Check one entry; returns a descriptor of it when it is a folder to descend into."""
        relative = "/".join(parts)
        _check_name(relative)
        self.entries += 1
        if self.entries > self.limits.max_files:
            raise OutputRefused(
                "OutputTooLarge", f"out/ holds more than {self.limits.max_files} files and folders"
            )
        st = os.stat(name, dir_fd=fd, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            if len(parts) > self.limits.max_depth:
                raise OutputRefused(
                    "OutputInvalid", f"out/{relative[:200]}: folders nest deeper than {self.limits.max_depth}"
                )
            try:
                return os.open(name, DIR_FLAGS, dir_fd=fd)
            except PermissionError:
                raise OutputRefused("OutputInvalid", f"out/{relative} cannot be read") from None
        if not stat.S_ISREG(st.st_mode):
            raise OutputRefused(
                "OutputInvalid", f"out/{relative} is {_kind(st.st_mode)}; plug-ins must write regular files"
            )
        self.total += st.st_size
        if self.total > self.limits.max_bytes:
            raise OutputRefused(
                "OutputTooLarge", f"out/ holds more than {self.limits.max_bytes} bytes (at out/{relative})"
            )
        try:
            os.close(os.open(name, FILE_FLAGS, dir_fd=fd))
        except PermissionError:
            mode = stat.S_IMODE(st.st_mode)
            raise OutputRefused("OutputInvalid", f"out/{relative} cannot be read (mode {mode:03o})") from None
        self.files.append(OutputFile(parts, st.st_size))
        return None


def scan(root: Path, limits: Limits) -> list[OutputFile]:
    """Every regular file below ``root``, after every check; raises :class:`OutputRefused`."""
    walk = _Walk(limits)
    stack: list[tuple[int, tuple[str, ...]]] = [(os.open(root, DIR_FLAGS), ())]
    try:
        while stack:
            fd, parents = stack.pop()
            try:
                for name in walk.names(fd, parents):
                    child = walk.entry(fd, name, (*parents, name))
                    if child is not None:
                        stack.append((child, (*parents, name)))
            finally:
                os.close(fd)
    finally:
        for fd, _ in stack:
            os.close(fd)
    return sorted(walk.files, key=lambda f: f.parts)


@contextmanager
def open_output(root: Path, item: OutputFile) -> Iterator[int]:
    """A read descriptor of ``item``, reached without following any link; checked to be the
    regular file of the size that :func:`scan` saw."""
    fds = [os.open(root, DIR_FLAGS)]
    try:
        for part in item.parts[:-1]:
            fds.append(os.open(part, DIR_FLAGS, dir_fd=fds[-1]))
        fd = os.open(item.parts[-1], FILE_FLAGS, dir_fd=fds[-1])
        fds.append(fd)
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size != item.size:
            raise OutputRefused("OutputInvalid", f"out/{item.name} changed while it was collected")
        os.set_blocking(fd, True)
        yield fd
    finally:
        for fd in reversed(fds):
            os.close(fd)
