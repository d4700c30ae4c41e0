"""Safe YAML loading: lines kept, hostile input refused quickly with a finding."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pyrollouts.model.findings import ManifestError
from pyrollouts.model.lint import lint_text
from pyrollouts.model.yamlsafe import MAX_BYTES, load_documents, read_text


def _refused(text: str, **kw: int) -> str:
    with pytest.raises(ManifestError) as ei:
        load_documents(text, "m.yaml", **kw)
    (finding,) = ei.value.findings
    assert finding.source == "m.yaml"
    assert finding.severity == "error"
    return str(finding)


def test_lines_for_keys_and_items_across_documents() -> None:
    text = "a: 1\nb:\n  - x: 1\n    y: 2\n---\n\n---\nk: v\n"
    first, second = load_documents(text, "m.yaml")
    assert first.data == {"a": 1, "b": [{"x": 1, "y": 2}]}
    assert first.lines.line(("b", 0, "y")) == 4
    assert first.lines.line(("b", 0)) == 3
    assert first.lines.line(("b", 0, "missing", "deeper")) == 3
    assert second.index == 2 and second.data == {"k": "v"} and second.lines.line(("k",)) == 8


def test_billion_laughs_is_refused_quickly() -> None:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 10):
        prev, cur = chr(96 + i), chr(97 + i)
        lines.append(f"{cur}: &{cur} [" + ",".join([f"*{prev}"] * 9) + "]")
    start = time.monotonic()
    msg = _refused("\n".join(lines) + "\n")
    assert time.monotonic() - start < 2
    assert "alias" in msg


def test_a_few_aliases_are_fine() -> None:
    (doc,) = load_documents("base: &b {x: 1}\nother: *b\nmerged:\n  <<: *b\n  y: 2\n", "m.yaml")
    assert doc.data == {"base": {"x": 1}, "other": {"x": 1}, "merged": {"x": 1, "y": 2}}


def test_merge_keys_lose_to_explicit_keys() -> None:
    (doc,) = load_documents("d: &d {x: 1, y: 1}\nm:\n  y: 2\n  <<: *d\n", "m.yaml")
    assert doc.data["m"] == {"x": 1, "y": 2}


def test_recursive_alias_is_refused() -> None:
    assert "contains it" in _refused("a: &a [1, *a]\n")


def test_deep_nesting_is_refused() -> None:
    assert "nested" in _refused("a: " + "[" * 200 + "]" * 200 + "\n")


def test_huge_document_is_refused_without_parsing() -> None:
    big = "a: " + "x" * (MAX_BYTES + 10) + "\n"
    start = time.monotonic()
    assert "over the limit" in _refused(big)
    assert time.monotonic() - start < 2


def test_huge_file_is_refused_before_reading_it_whole(tmp_path: Path) -> None:
    p = tmp_path / "big.yaml"
    p.write_bytes(b"a: " + b"x" * (MAX_BYTES + 10))
    with pytest.raises(ManifestError) as ei:
        read_text(p)
    assert "over the limit" in str(ei.value) and str(p) in str(ei.value)


def test_non_utf8_file_names_the_file_line_and_fix(tmp_path: Path) -> None:
    p = tmp_path / "latin1.yaml"
    p.write_bytes("a: 1\nb: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ManifestError) as ei:
        read_text(p)
    (f,) = ei.value.findings
    assert f.source == str(p) and f.line == 2
    assert "not UTF-8" in f.problem and "UTF-8" in f.fix


def test_utf8_bom_is_accepted(tmp_path: Path) -> None:
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbfa: 1\n")
    assert load_documents(read_text(p), str(p))[0].data == {"a": 1}


def test_missing_file_is_a_finding(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as ei:
        read_text(tmp_path / "nope.yaml")
    assert "cannot read" in str(ei.value)


def test_syntax_error_names_the_line() -> None:
    with pytest.raises(ManifestError) as ei:
        load_documents("a: 1\nb: [1, 2\nc: 3\n", "m.yaml")
    (f,) = ei.value.findings
    assert f.line is not None and f.line >= 2 and "invalid YAML" in f.problem


def test_control_characters_are_refused() -> None:
    assert "invalid YAML" in _refused("a: \x07\n")


def test_duplicate_keys_are_refused_with_their_line() -> None:
    with pytest.raises(ManifestError) as ei:
        load_documents("a: 1\nb: 2\na: 3\n", "m.yaml")
    (f,) = ei.value.findings
    assert f.line == 3 and f.path == "a" and "twice" in f.problem


def test_timestamps_stay_strings_and_keys_become_strings() -> None:
    (doc,) = load_documents("t: 2024-05-01T12:00:00Z\n1: one\ntrue: yes\n", "m.yaml")
    assert doc.data == {"t": "2024-05-01T12:00:00Z", "1": "one", "true": True}


@pytest.mark.parametrize("text", ["a: !!binary aGk=\n", "a: !!python/object:os.system x\n", "a: !!set {x}\n"])
def test_non_data_tags_are_refused(text: str) -> None:
    assert "tag" in _refused(text)


def test_lone_surrogate_in_text_is_refused() -> None:
    assert "not valid Unicode" in _refused("a: \ud800\n")


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([*"ab:-[]{}&*!|>'\"#%@ ,?\n\t0123", "<<", "\x00", "\u00e9"]), max_size=60))
def test_any_text_gives_data_or_a_finding(pieces: list[str]) -> None:
    text = "".join(pieces)
    try:
        load_documents(text, "m.yaml")
    except ManifestError as e:
        assert e.findings and all(f.severity == "error" for f in e.findings)
    assert all(f.source == "m.yaml" for f in lint_text(text, "m.yaml"))
