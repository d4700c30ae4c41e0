"""Integer formats: every integer of the schema has Kubernetes' width (int32 unless named int64),
the named int64 fields exist, and a value outside the width is refused by lint, by the InvalidSpec
checks and by the CRD alike (issue 11: replicas 2147483648 was accepted).

tests/k8s/test_int_formats_k8s.py compares every format with the live API server's OpenAPI.
"""

from __future__ import annotations

from typing import Any

from pyrollouts.model import schema
from pyrollouts.model.schema import INT_RANGES, kind_type
from pyrollouts.model.validate import pod_template_errors, rollout_spec_errors


def integer_formats() -> dict[tuple[str, str], str | None]:
    roots = [kind_type(k) for k in ("Rollout", "Service", "Namespace", "Deployment")]
    return schema.integer_formats([r for r in roots if r is not None])


def test_every_integer_has_a_format() -> None:
    formats = integer_formats()
    assert len(formats) > 50
    assert {k: v for k, v in formats.items() if v not in INT_RANGES} == {}
    assert formats[("RolloutSpec", "replicas")] == "int32"
    assert formats[("BlueGreenStrategy", "scaleDownDelaySeconds")] == "int32"
    assert formats[("Probe", "periodSeconds")] == "int32"
    assert formats[("ServicePort", "port")] == "int32"
    assert formats[("HTTPGetAction", "port")] == "int32"  # IntOrString holds an int32
    assert formats[("PodSpec", "terminationGracePeriodSeconds")] == "int64"
    assert formats[("PodSecurityContext", "supplementalGroups")] == "int64"


def test_the_int64_list_names_integer_fields_that_exist() -> None:
    """A typo in the list would make a field int32 silently; every entry must be an integer here."""
    formats = integer_formats()
    missing = sorted(k for k in schema._INT64_FIELDS if k not in formats)
    assert missing == [], f"not integer fields reachable from the kinds read: {missing}"
    assert all(formats[k] == "int64" for k in schema._INT64_FIELDS)


def _walk_openapi(node: dict[str, Any], path: str, out: dict[str, dict[str, Any]]) -> None:
    if node.get("type") == "integer":
        out[path] = node
    for key, sub in (node.get("properties") or {}).items():
        _walk_openapi(sub, f"{path}.{key}", out)
    if isinstance(node.get("items"), dict):
        _walk_openapi(node["items"], f"{path}[]", out)


def test_the_crd_bounds_every_integer_by_its_format() -> None:
    integers: dict[str, dict[str, Any]] = {}
    _walk_openapi(schema.rollout_openapi_schema(), "", integers)
    assert len(integers) > 40
    for path, node in integers.items():
        if node["format"] == "int64":
            # Bounds of 2**63 would be float64 in the API server, which then refuses the field.
            assert "maximum" not in node or node["maximum"] < 2**53, path
            continue
        low, high = INT_RANGES[node["format"]]
        assert low <= node["minimum"] and node["maximum"] <= high, path
    assert integers[".spec.replicas"]["maximum"] == 2**31 - 1


def test_invalid_spec_checks_refuse_int32_overflow() -> None:
    """The runtimes' InvalidSpec condition (a Rollout stored by PATCH or kubectl) says the same."""
    errors = rollout_spec_errors({"spec": {"replicas": 2**31}})
    assert any(e.startswith("spec.replicas: replicas is 2147483648, over 2147483647") for e in errors), errors
    template = {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "a", "image": "i"}]}}
    template["spec"]["containers"][0]["ports"] = [{"containerPort": 2**40}]
    errors = pod_template_errors(template)
    assert any("containerPort is 1099511627776, over 2147483647" in e for e in errors), errors
