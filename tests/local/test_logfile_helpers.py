"""runtimes/local/logfiles.py on real files: the tail found backwards matches reading everything,
rotation keeps whole lines and a bounded number of files, a restart moves a run aside, sizes parse."""

from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from pyrollouts.runtimes.local import logfiles as lf


def write_segments(d: Path, data: bytes, cuts: list[int]) -> list[Path]:
    paths = [d / f"c.log.{i}" for i in range(len(cuts), 0, -1)] + [d / "c.log"]
    bounds = [0, *cuts, len(data)]
    for p, a, b in zip(paths, bounds, bounds[1:], strict=False):
        p.write_bytes(data[a:b])
    return paths


def read_tail(paths: list[Path], n: int) -> bytes:
    idx, off = lf.tail_start(paths, n)
    return b"".join(lf.read_from(paths, idx, off))


def test_tail_matches_reading_everything(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lf, "CHUNK", 7)  # blocks smaller than lines: every boundary case
    rng = random.Random(11)
    for trial in range(200):
        d = tmp_path / str(trial)
        d.mkdir()
        lines = [b"x" * rng.randrange(0, 12) + b"\n" for _ in range(rng.randrange(0, 12))]
        data = b"".join(lines) + (b"partial" if rng.random() < 0.5 else b"")
        cuts = sorted(rng.randrange(0, len(data) + 1) for _ in range(rng.randrange(0, 3)))
        paths = write_segments(d, data, cuts)
        assert b"".join(lf.read_from(paths, 0, 0)) == data
        for n in range(0, 15):
            want = b"".join(data.splitlines(keepends=True)[-n:]) if n else b""
            assert read_tail(paths, n) == want, (data, cuts, n)


def test_rotation_keeps_whole_lines_and_a_bounded_number_of_files(tmp_path: Path) -> None:
    files = lf.LogFiles(tmp_path, lf.LogPolicy(max_size=1000, max_files=3))
    d = tmp_path / "ns" / "pod"
    fd = files.open_live(d, "c")
    live = lf.live_path(d, "c")
    assert (os.stat(live).st_mode & 0o777) == 0o600 and (os.stat(d).st_mode & 0o777) == 0o700
    n = 0
    for _round in range(6):
        for _ in range(50):  # 50 x 30 bytes = 1500: over the size each round
            os.write(fd, b"%08d %s\n" % (n, b"y" * 20))
            n += 1
        assert files.rotate_all([live]) == 1
        assert live.stat().st_size == 0
    os.write(fd, b"after\n")  # O_APPEND: at the start of the truncated file, no hole
    os.close(fd)
    assert live.read_bytes() == b"after\n"
    assert sorted(p.name for p in d.iterdir()) == ["c.log", "c.log.1", "c.log.2"]
    newest = (d / "c.log.1").read_bytes()
    assert len(newest) <= 1000 and newest.endswith(b"%08d %s\n" % (n - 1, b"y" * 20))
    assert newest.startswith(b"%08d" % int(newest[:8]))  # begins at a line start
    assert lf.rotated_start(d / "c.log.1") in (0, 1500 - len(newest))
    assert files.rotate_all([live]) == 0  # under the size: nothing to do

    files.new_run(d, "c")
    assert sorted(p.name for p in d.iterdir()) == ["c.previous.log", "c.previous.log.1", "c.previous.log.2"]
    assert lf.segments(d, "c", previous=True)[-1].read_bytes() == b"after\n"
    assert lf.segments(d, "c") == []

    files.remove_pod("ns", "pod")
    assert not (tmp_path / "ns").exists()


def test_one_file_means_truncate(tmp_path: Path) -> None:
    files = lf.LogFiles(tmp_path, lf.LogPolicy(max_size=10, max_files=1))
    live = tmp_path / "c.log"
    live.write_bytes(b"0123456789abc\n")
    assert files.rotate_all([live]) == 1
    assert live.read_bytes() == b"" and sorted(p.name for p in tmp_path.iterdir()) == ["c.log"]


def test_sweep_removes_dirs_of_unknown_pods(tmp_path: Path) -> None:
    for ns, pod in [("a", "p1"), ("a", "p2"), ("b", "p3")]:
        (tmp_path / ns / pod).mkdir(parents=True)
        (tmp_path / ns / pod / "c.log").write_text("x\n")
    files = lf.LogFiles(tmp_path)
    assert sorted(files.sweep({("a", "p1")})) == ["a/p2", "b/p3"]
    assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*")) == ["a", "a/p1", "a/p1/c.log"]


def test_sizes() -> None:
    assert lf.parse_size("4096") == 4096
    assert lf.parse_size("256K") == 256 * 1024
    assert lf.parse_size("10M") == lf.parse_size("10Mi") == lf.parse_size("10MiB") == 10 * 1024 * 1024
    assert lf.parse_size("1g") == 1024**3
    for bad in ["", "ten", "-1", "0", "5X"]:
        with pytest.raises(ValueError, match=r"expected a number of bytes|at least 1 byte"):
            lf.parse_size(bad, "--log-max-size")
    with pytest.raises(ValueError, match="at least 1"):
        lf.LogPolicy(max_files=0)
