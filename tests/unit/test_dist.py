"""`make dist` builds a wheel and an sdist; the wheel, installed in a fresh virtualenv, provides the
`rollouts` and `kubectl-rollouts` commands and `rollouts version` runs.

The fresh venv installs the wheel's dependencies with pip as a user would (from the package index,
through pip's cache); nothing of the development venv is visible to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
import venv
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _run(cmd: list[str], timeout: float, **kw: object) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, **kw)  # type: ignore[call-overload]
    assert res.returncode == 0, (
        f"{' '.join(map(str, cmd))} exited {res.returncode}:\n{res.stdout}\n{res.stderr}"
    )
    return res  # type: ignore[no-any-return]


def test_make_dist_wheel_installs_in_a_fresh_venv(tmp_path: Path) -> None:
    out = tmp_path / "dist"
    _run(["make", "-s", "dist", f"DIST_OUT={out}"], 300, cwd=REPO)
    (wheel,) = out.glob("pyrollouts-*-py3-none-any.whl")
    (sdist,) = out.glob("pyrollouts-*.tar.gz")

    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        entry_points = next(zf.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "rollouts = pyrollouts.cli.main:main" in entry_points, entry_points
    assert "kubectl-rollouts = pyrollouts.cli.main:kubectl_main" in entry_points, entry_points
    # Data files the code opens at run time travel with the wheel.
    for data in ("pyrollouts/web/static/dashboard.js", "pyrollouts/runtimes/local/images.yaml"):
        assert data in names, data
    with tarfile.open(sdist) as tf:
        members = {m.name.split("/", 1)[1] for m in tf.getmembers() if "/" in m.name}
    assert {"pyproject.toml", "src/pyrollouts/__init__.py"} <= members

    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
    py = env_dir / "bin" / "python"
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "KUBECONFIG")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    _run([str(py), "-m", "pip", "install", "-q", str(wheel)], 300, env=env)

    bin_dir = env_dir / "bin"
    for cmd in ("rollouts", "kubectl-rollouts"):
        assert (bin_dir / cmd).is_file(), f"{cmd} is not in the fresh venv's bin"
    # Run from a folder outside the checkout, so nothing but the installed wheel can be imported.
    ver = _run([str(bin_dir / "rollouts"), "version"], 60, env=env, cwd=tmp_path)
    assert ver.stdout.startswith("rollouts: v0.1.0"), ver.stdout
    assert _run([str(bin_dir / "kubectl-rollouts"), "version"], 60, env=env, cwd=tmp_path).stdout.startswith(
        "rollouts: v"
    )
    where = _run([str(py), "-c", "import pyrollouts; print(pyrollouts.__file__)"], 60, env=env, cwd=tmp_path)
    assert str(env_dir) in where.stdout and str(REPO) not in where.stdout, where.stdout
    assert sys.executable not in where.stdout
