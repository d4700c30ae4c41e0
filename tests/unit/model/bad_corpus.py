"""The corpus of bad manifests (tests/data/bad/) and the few that are generated at test time.

Each file starts with a header of comment lines::

    # bad: what is wrong (for people)
    # expect: the field path a refusal must name (``-`` for the whole file; ``a.b*`` for a prefix)
    # expect-text: a fragment of the problem the refusal must state (optional)

Cases too large (or too binary) for the repository are written by :func:`generated` into a
directory at test time. Both the lint test (tests/unit/model/test_bad_corpus.py) and the apply test
(tests/local/test_bad_corpus_apply.py) run every case.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pyrollouts.model.yamlsafe import MAX_BYTES

CORPUS = Path(__file__).resolve().parents[2] / "data" / "bad"


@dataclass(frozen=True)
class Case:
    """One bad manifest: its file and what a refusal of it must say."""

    path: Path
    what: str
    expect_path: str
    expect_text: str

    @property
    def name(self) -> str:
        return self.path.stem

    def path_matches(self, path: str) -> bool:
        """Whether a finding's field path is the one this case expects."""
        if self.expect_path == "-":
            return path == ""
        if self.expect_path.endswith("*"):
            return path.startswith(self.expect_path[:-1])
        return path == self.expect_path


def read_case(path: Path) -> Case:
    """A corpus file's header (ASCII comment lines, read as bytes: the body may not be UTF-8)."""
    head: dict[str, str] = {}
    for line in path.read_bytes().split(b"\n"):
        if not line.startswith(b"# "):
            break
        key, _, value = line[2:].decode("ascii").partition(": ")
        head[key] = value
    assert "bad" in head and "expect" in head, f"{path}: the header needs '# bad:' and '# expect:' lines"
    return Case(path, head["bad"], head["expect"], head.get("expect-text", ""))


def corpus() -> list[Case]:
    """Every case of tests/data/bad/, by name."""
    return [read_case(p) for p in sorted(CORPUS.glob("*.yaml"))]


#: A valid Rollout (the int32-replicas case with its one mistake undone) that generated cases bend.
BASE_ROLLOUT = (
    (CORPUS / "int32-replicas.yaml")
    .read_text()
    .split("\n", 3)[3]
    .replace("  replicas: 2147483648\n", "  replicas: 2\n")
)
_ROLLOUT = BASE_ROLLOUT


def _rollout_with(old: str, new: str) -> str:
    assert old in _ROLLOUT, old
    return _ROLLOUT.replace(old, new, 1)


def generated(directory: Path) -> list[Case]:
    """The cases that would bloat the repository, written into ``directory``."""
    specs: list[tuple[str, str, str, str, bytes]] = [
        (
            "gen-annotations-over-256k",
            "annotations over Kubernetes' 256 KiB total",
            "metadata.annotations",
            "256 KiB",
            _rollout_with(
                "  name: demo\n",
                "  name: demo\n  annotations:\n"
                + "".join(f"    note-{i}: {'x' * 4000}\n" for i in range(70)),
            ).encode(),
        ),
        (
            "gen-object-over-1-5mib",
            "an env value of 2 MB (the object is over etcd's 1.5 MiB)",
            "-",
            "1.5 MiB",
            _rollout_with(
                "          image: demo:1\n",
                "          image: demo:1\n          env:\n            - name: BLOB\n"
                f"              value: {'y' * 2_000_000}\n",
            ).encode(),
        ),
        (
            "gen-file-over-limit",
            "a manifest over the 4 MiB file limit",
            "-",
            "over the limit",
            (
                _ROLLOUT + "\n".join(f"# padding {i:08d} " + "z" * 60 for i in range(MAX_BYTES // 70 + 10))
            ).encode(),
        ),
        (
            "gen-deep-nesting-10000",
            "a flow sequence nested 10,000 levels deep (the YAML parser itself refuses it)",
            "-",
            "nesting depth",
            _rollout_with(
                "  name: demo\n", "  name: demo\n  labels: " + "[" * 10_000 + "]" * 10_000 + "\n"
            ).encode(),
        ),
        (
            "gen-alias-bomb-wide",
            "a wide alias bomb: 12 levels of 6 aliases each",
            "metadata.*",
            "alias bomb",
            _rollout_with(
                "  name: demo\n",
                "  name: demo\n  l0: &a0 [x, x, x, x, x, x]\n"
                + "".join(f"  l{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 6)}]\n" for i in range(1, 12)),
            ).encode(),
        ),
        (
            "gen-unknown-field-flood",
            "50,000 unknown fields (each would be searched for nearby: lint stops after 100)",
            "spec.zz0",
            "unknown field",
            _rollout_with(
                "  replicas: 2\n", "  replicas: 2\n" + "".join(f"  zz{i}: 1\n" for i in range(50_000))
            ).encode(),
        ),
        (
            "gen-many-documents",
            "20,000 documents, the last one bad",
            "spec.replicas",
            "the most a 32-bit integer holds",
            (
                "".join(
                    f"---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: ns-{i}\n"
                    for i in range(20_000)
                )
                + "---\n"
                + _rollout_with("  replicas: 2\n", "  replicas: 2147483648\n")
            ).encode(),
        ),
    ]
    directory.mkdir(parents=True, exist_ok=True)
    out: list[Case] = []
    for name, what, expect_path, expect_text, body in specs:
        p = directory / f"{name}.yaml"
        p.write_bytes(body)
        out.append(Case(p, what, expect_path, expect_text))
    return out
