"""The local image map: packaged demo mapping, user overrides, Kubernetes command/args rules."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pyrollouts.runtimes.local.imagemap import ImageMap, ImageMapError

DEMO = [sys.executable, "-m", "pyrollouts.runtimes.local.demoapp"]


def test_packaged_map_runs_the_seed_image_as_the_demo_app() -> None:
    m = ImageMap.load()
    assert m.argv({"image": "ghcr.io/gbaeke/super:1.0.2"}) == DEMO
    assert m.argv({"image": "ghcr.io/gbaeke/super:1.0.3"}) == DEMO
    assert m.argv({"image": "docker.io/library/nginx:1.25"}) is None


def test_user_map_wins_and_state_dir_file_is_read(tmp_path: Path) -> None:
    (tmp_path / "images.yaml").write_text(
        "images:\n"
        '  "ghcr.io/gbaeke/super:2.*": {command: ["/opt/super2"], args: ["--fast"]}\n'
        '  "shop/api:*": ["{python}", "-m", "shop.api"]\n'
    )
    m = ImageMap.load(state_dir=tmp_path)
    assert m.argv({"image": "ghcr.io/gbaeke/super:2.0"}) == ["/opt/super2", "--fast"]
    assert m.argv({"image": "ghcr.io/gbaeke/super:1.0"}) == DEMO
    assert m.argv({"image": "shop/api:7"}) == [sys.executable, "-m", "shop.api"]
    assert m.where_to_map() == str(tmp_path / "images.yaml")


def test_command_and_args_follow_kubernetes() -> None:
    m = ImageMap.load()
    base = {"image": "ghcr.io/gbaeke/super:1"}
    # command replaces the entrypoint (and the image's default args); args are appended.
    assert m.argv({**base, "command": ["/bin/app"]}) == ["/bin/app"]
    assert m.argv({**base, "command": ["/bin/app"], "args": ["-v"]}) == ["/bin/app", "-v"]
    # args alone replace the image's default args after the mapped entrypoint.
    assert m.argv({**base, "args": ["--x"]}) == [*DEMO, "--x"]
    # No mapping is needed when the container says what to run.
    assert m.argv({"image": "unknown:1", "command": ["/bin/true"]}) == ["/bin/true"]
    assert m.argv({"image": "unknown:1", "args": ["x"]}) is None


def test_bad_files_name_the_file_and_entry(tmp_path: Path) -> None:
    with pytest.raises(ImageMapError, match="not found"):
        ImageMap.load(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("images: [oops")
    with pytest.raises(ImageMapError, match=r"bad.yaml: not valid YAML"):
        ImageMap.load(bad)
    bad.write_text('images:\n  "a:*": "run a shell string"\n')
    with pytest.raises(ImageMapError, match=r"bad.yaml: images\['a:\*'\]: expected a list"):
        ImageMap.load(bad)
    bad.write_text('images:\n  "a:*": {cmd: [x]}\n')
    with pytest.raises(ImageMapError, match="unknown keys"):
        ImageMap.load(bad)
