"""Container log files: their names, size-based rotation, removal, and reading the end of a log
without reading all of it.

A container's process writes its stdout and stderr straight to a file it holds open with
O_APPEND (no pipe through the server, so it keeps running and logging when the server dies). The
files of container ``c`` live in ``<state-dir>/logs/<namespace>/<pod>/``:

``c.log``
    what the running process writes (the live file);
``c.log.1`` .. ``c.log.<max_files-1>``
    older output of the same run, newest first: size rotation;
``c.previous.log`` (and ``c.previous.log.1`` ..)
    the previous run's files, moved aside when the container restarts (``logs --previous``).

Rotation is copy-truncate, as logrotate's ``copytruncate``: when the live file is over
``max_size``, its end (at most ``max_size`` bytes, from a line start) is copied to ``c.log.1``
(older files shift up, the oldest goes) and the live file is truncated to zero; the process's
next write lands at the new end because its descriptor is O_APPEND. What the process writes in
the instant between the copy's last read and the truncate is lost; a file found far over the
size (a fast writer between two checks, or a server that was down) keeps only its last
``max_size`` bytes. A rotated file records where its copy began in the original (the
``user.pyrollouts.start`` extended attribute, where the filesystem has them) so a follower can go
on where it was.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

KiB = 1024
MiB = 1024 * KiB
#: Kubernetes' kubelet defaults (containerLogMaxSize 10Mi, containerLogMaxFiles 5).
DEFAULT_MAX_SIZE = 10 * MiB
DEFAULT_MAX_FILES = 5
#: How often the supervisor looks at the sizes (seconds).
DEFAULT_CHECK_INTERVAL = 1.0
CHUNK = 256 * KiB
START_XATTR = "user.pyrollouts.start"
#: The mode of log files and directories (the state dir is private: it holds env values).
FILE_MODE = 0o600
DIR_MODE = 0o700

_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmgt]?)(i?b?)\s*$", re.IGNORECASE)


def parse_size(text: str, what: str = "size") -> int:
    """``10M``, ``256K``, ``1G``, ``10Mi``, ``4096`` (bytes; the units are powers of 1024)."""
    m = _SIZE_RE.match(str(text))
    if not m:
        raise ValueError(f"{what} {text!r}: expected a number of bytes like 4096, 256K, 10M or 1G")
    n = int(m.group(1)) * 1024 ** "_kmgt".index(m.group(2).lower() or "_")
    if n < 1:
        raise ValueError(f"{what} {text!r}: must be at least 1 byte")
    return int(n)


@dataclass(frozen=True)
class LogPolicy:
    """``max_size``: rotate the live file when it is over this many bytes. ``max_files``: files
    kept per container run, the live one included (1: truncate, keep nothing). The previous run
    keeps as many, so a container's logs take at most about 2 x max_files x max_size."""

    max_size: int = DEFAULT_MAX_SIZE
    max_files: int = DEFAULT_MAX_FILES
    check_interval: float = DEFAULT_CHECK_INTERVAL

    def __post_init__(self) -> None:
        if self.max_size < 1:
            raise ValueError(f"log max size {self.max_size}: must be at least 1 byte")
        if self.max_files < 1:
            raise ValueError(f"log max files {self.max_files}: must be at least 1 (the live file)")


# ---- names -------------------------------------------------------------------------------------


def live_path(log_dir: Path, container: str) -> Path:
    return log_dir / f"{container}.log"


def previous_path(log_dir: Path, container: str) -> Path:
    return log_dir / f"{container}.previous.log"


def _numbered(base: Path, i: int) -> Path:
    return base if i == 0 else base.with_name(f"{base.name}.{i}")


def _rotated(base: Path) -> list[tuple[int, Path]]:
    """(number, path) of the existing rotated files of ``base`` (``base.1``, ``base.2``, ...)."""
    out = []
    with contextlib.suppress(OSError):
        for entry in os.scandir(base.parent):
            head, dot, num = entry.name.rpartition(".")
            if dot and head == base.name and num.isdigit() and int(num) > 0:
                out.append((int(num), Path(entry.path)))
    return sorted(out)


def segments(log_dir: Path, container: str, *, previous: bool = False) -> list[Path]:
    """A container's files for one run (the current or the previous), oldest first; only those
    that exist."""
    base = previous_path(log_dir, container) if previous else live_path(log_dir, container)
    out = [p for _, p in reversed(_rotated(base))]
    if base.exists():
        out.append(base)
    return out


# ---- rotation (called from a worker thread and from the event loop, under one lock) -----------


class LogFiles:
    """The log files of one state dir: rotation, a restart's move aside, removal. Every change
    takes ``lock`` so a rotation in a worker thread and a restart in the event loop never work on
    one file at once."""

    def __init__(self, root: Path, policy: LogPolicy | None = None) -> None:
        self.root = root
        self.policy = policy or LogPolicy()
        self.lock = threading.Lock()

    def pod_dir(self, namespace: str, pod: str) -> Path:
        return self.root / namespace / pod

    def open_live(self, log_dir: Path, container: str) -> int:
        """The live file's descriptor for a new process (O_APPEND, 0600); the caller closes it."""
        log_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        return os.open(live_path(log_dir, container), os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)

    def new_run(self, log_dir: Path, container: str) -> None:
        """A container restarts: its files become the previous run's (the older previous goes)."""
        live = live_path(log_dir, container)
        prev = previous_path(log_dir, container)
        with self.lock:
            if not live.exists():
                return
            for _, p in _rotated(prev):
                p.unlink(missing_ok=True)
            for i, p in _rotated(live):
                p.replace(_numbered(prev, i))
            live.replace(prev)

    def rotate_if_over(self, live: Path) -> bool:
        """Rotate ``live`` if it is over the size; True when it did. Errors are logged."""
        try:
            with self.lock:
                if live.stat().st_size <= self.policy.max_size:
                    return False
                self._rotate(live)
                return True
        except FileNotFoundError:
            return False  # the pod went away meanwhile
        except OSError as e:
            log.warning("could not rotate %s: %s", live, e)
            return False

    def rotate_all(self, lives: Iterable[Path]) -> int:
        """Rotate every file of ``lives`` that is over the size; how many were."""
        return sum(self.rotate_if_over(p) for p in lives)

    def _rotate(self, live: Path) -> None:
        keep = self.policy.max_files - 1
        for i, p in _rotated(live):
            if i >= keep:
                p.unlink(missing_ok=True)
        if keep < 1:
            os.truncate(live, 0)
            return
        for i in range(keep - 1, 0, -1):
            src = _numbered(live, i)
            if src.exists():
                src.replace(_numbered(live, i + 1))
        tmp = live.with_name(f".{live.name}.rotating")
        with open(live, "rb") as src_f:
            size = os.fstat(src_f.fileno()).st_size
            start = max(0, size - self.policy.max_size)
            if start:
                # Begin at a line start when one is near.
                src_f.seek(start)
                nl = src_f.read(64 * KiB).find(b"\n")
                if nl >= 0:
                    start += nl + 1
            src_f.seek(start)
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
            try:
                # Copy to the end, and on through whatever the process appends meanwhile; the
                # truncate follows the last read at once.
                while True:
                    block = src_f.read(CHUNK)
                    if not block:
                        break
                    os.write(fd, block)
                os.truncate(live, 0)
                if start:
                    with contextlib.suppress(OSError, AttributeError):
                        os.setxattr(tmp, START_XATTR, str(start).encode())
            finally:
                os.close(fd)
        tmp.replace(_numbered(live, 1))

    def remove_pod(self, namespace: str, pod: str) -> None:
        """Remove a deleted pod's logs (and its namespace's dir when that is left empty)."""
        d = self.pod_dir(namespace, pod)
        with self.lock:
            shutil.rmtree(d, ignore_errors=True)
            with contextlib.suppress(OSError):
                d.parent.rmdir()

    def sweep(self, keep: set[tuple[str, str]]) -> list[str]:
        """Remove the log dirs of pods not in ``keep`` ((namespace, name) pairs): left by pods
        deleted while no server ran. Returns what was removed (``ns/pod``)."""
        removed = []
        with contextlib.suppress(OSError):
            for ns_entry in os.scandir(self.root):
                if not ns_entry.is_dir(follow_symlinks=False):
                    continue
                for pod_entry in os.scandir(ns_entry.path):
                    if (ns_entry.name, pod_entry.name) not in keep:
                        removed.append(f"{ns_entry.name}/{pod_entry.name}")
                        self.remove_pod(ns_entry.name, pod_entry.name)
                with contextlib.suppress(OSError):
                    os.rmdir(ns_entry.path)
        return removed


# ---- reading ------------------------------------------------------------------------------------


def rotated_start(path: Path) -> int:
    """Where a rotated file's copy began in the live file it came from (0 when not recorded)."""
    try:
        return int(os.getxattr(path, START_XATTR))
    except (OSError, ValueError, AttributeError):
        return 0


def _size(p: Path) -> int:
    try:
        return p.stat().st_size
    except OSError:
        return 0


def tail_start(paths: list[Path], lines: int) -> tuple[int, int]:
    """Where the last ``lines`` lines of the files (read one after the other) begin: (index of
    the file, offset in it). Reads backwards in blocks: memory stays bounded whatever the size."""
    if lines <= 0:
        return len(paths), 0
    need = lines
    first = True
    for idx in range(len(paths) - 1, -1, -1):
        try:
            f = open(paths[idx], "rb")  # noqa: SIM115 - closed below
        except OSError:
            continue
        with f:
            end = os.fstat(f.fileno()).st_size
            while end > 0:
                begin = max(0, end - CHUNK)
                f.seek(begin)
                block = f.read(end - begin)
                if first and block:
                    first = False
                    if block.endswith(b"\n"):
                        need += 1  # the last newline ends the last line; it does not start one
                pos = len(block)
                while True:
                    nl = block.rfind(b"\n", 0, pos)
                    if nl < 0:
                        break
                    need -= 1
                    if need == 0:
                        return idx, begin + nl + 1
                    pos = nl
                end = begin
    return 0, 0


def read_from(paths: list[Path], idx: int, offset: int) -> Iterator[bytes]:
    """The files' bytes from (``idx``, ``offset``) to the end, in chunks of at most CHUNK."""
    for i in range(idx, len(paths)):
        # Each file up to its size when opened: what is written meanwhile is not chased.
        yield from read_range(paths[i], offset if i == idx else 0)


def read_range(path: Path, start: int, end: int | None = None) -> Iterator[bytes]:
    """Bytes of one file from ``start`` to ``end`` (its current end), in chunks."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError:
        return
    with f:
        stop = os.fstat(f.fileno()).st_size if end is None else end
        f.seek(start)
        pos = start
        while pos < stop:
            block = f.read(min(CHUNK, stop - pos))
            if not block:
                break
            pos += len(block)
            yield block


__all__ = [
    "DEFAULT_MAX_FILES",
    "DEFAULT_MAX_SIZE",
    "LogFiles",
    "LogPolicy",
    "live_path",
    "parse_size",
    "previous_path",
    "read_from",
    "read_range",
    "rotated_start",
    "segments",
    "tail_start",
]
