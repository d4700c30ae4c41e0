"""One description of every field a manifest may hold, derived from the types, never hand-listed.

The Rollout's own fields come from the pydantic classes in ``model.rollout`` (the single source of
its schema); the pod template, label selector, object metadata, Service and Namespace come from
lightkube-models' generated classes, which are Kubernetes' own OpenAPI schema turned into Python.
The linter walks manifests against these descriptions (``model.lint``), and the CRD's
openAPIV3Schema is generated from them (``rollout_openapi_schema``).

lightkube-models erases the value type of maps (every ``map[string]X`` is typed ``dict``). In
Kubernetes' core API those maps hold strings, except resource quantities; ``_QUANTITY_MAPS`` names the
quantity maps so that ``cpu: 1`` is accepted there while ``version: 1.0`` in labels is not. Scalar
quantities (``resource.Quantity``, an alias of str) are recognised from the written annotation.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import types
import typing
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Union

from pydantic import BaseModel

from .analysis import ANALYSIS_KINDS
from .rollout import Rollout

ScalarKind = Literal[
    "string", "integer", "number", "boolean", "int-or-string", "int-or-args", "quantity", "date-time"
]


IntFormat = Literal["int32", "int64"]

#: The range of each integer format: Kubernetes (Go) stores an ``int32`` field in 32 bits, so the API
#: server refuses a number outside it, and so does the Go controller that decodes the object.
INT_RANGES: dict[str, tuple[int, int]] = {
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar; ``int-or-string`` is Kubernetes' IntOrString, ``quantity`` a resource quantity,
    ``int-or-args`` an IntOrString of Argo's analysis that holds a number, a numeric string or an
    ``{{args.name}}`` placeholder (Argo resolves it when a run starts, so "4" is fine there).
    ``format`` is the width of an integer (``integer`` and the number of an ``int-or-string``)."""

    kind: ScalarKind
    format: IntFormat | None = None


@dataclass(frozen=True)
class ListOf:
    """A JSON array whose items all have one type."""

    item: TypeNode


@dataclass(frozen=True)
class MapOf:
    """A JSON object with free keys and values of one type (labels, resource limits)."""

    value: TypeNode


@dataclass(frozen=True)
class Open:
    """Anything (``object_only=False``) or any JSON object (``True``): not checked further."""

    object_only: bool


@dataclass(frozen=True)
class FieldInfo:
    """One named field of an object type."""

    name: str
    type: TypeNode
    required: bool = False
    minimum: int | None = None
    maximum: int | None = None


@dataclass(frozen=True, eq=False)
class ObjectType:
    """A JSON object with known fields, described by a pydantic model or a lightkube class."""

    cls: type

    @property
    def name(self) -> str:
        """The class name, as users know it from the API reference (e.g. ``HTTPGetAction``)."""
        return self.cls.__name__

    @property
    def fields(self) -> dict[str, FieldInfo]:
        """Wire name -> field."""
        return _fields_of(self.cls)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ObjectType) and other.cls is self.cls

    def __hash__(self) -> int:
        return hash(self.cls)


TypeNode = Scalar | ListOf | MapOf | Open | ObjectType

# Kubernetes' OpenAPI gives every integer a format: int32, except the fields below, which are int64
# (seconds that may be long, user and group ids, generations). lightkube-models erases the format
# (every integer is ``int``), so the int64 ones are named here: (class name, field). They are the
# ``format: int64`` integers of the core/v1, apps/v1 and meta/v1 schemas that a pod template,
# Deployment, Service or Namespace can hold; tests/unit/model/test_model_schema_formats.py keeps
# this list honest. An IntOrString's number is int32.
_INT64_FIELDS = frozenset(
    {
        ("ObjectMeta", "generation"),
        ("ObjectMeta", "deletionGracePeriodSeconds"),
        ("PodSpec", "activeDeadlineSeconds"),
        ("PodSpec", "terminationGracePeriodSeconds"),
        ("Probe", "terminationGracePeriodSeconds"),
        ("PodSecurityContext", "runAsUser"),
        ("PodSecurityContext", "runAsGroup"),
        ("PodSecurityContext", "fsGroup"),
        ("PodSecurityContext", "supplementalGroups"),
        ("SecurityContext", "runAsUser"),
        ("SecurityContext", "runAsGroup"),
        ("Toleration", "tolerationSeconds"),
        ("SleepAction", "seconds"),
        ("ServiceAccountTokenProjection", "expirationSeconds"),
        ("DeploymentStatus", "observedGeneration"),
        ("Condition", "observedGeneration"),
        # The alpha owner-UID fields of projected files (AtomicWriteVolumeUserFields), ids like runAsUser.
        ("KeyToPath", "user"),
        ("DownwardAPIVolumeFile", "user"),
        ("ConfigMapVolumeSource", "defaultUser"),
        ("SecretVolumeSource", "defaultUser"),
        ("DownwardAPIVolumeSource", "defaultUser"),
        ("ProjectedVolumeSource", "defaultUser"),
        ("ClusterTrustBundleProjection", "user"),
        ("ServiceAccountTokenProjection", "user"),
        ("PodCertificateProjection", "user"),
    }
)

# Maps whose values are resource quantities (see the module docstring): (class name, field).
_QUANTITY_MAPS = frozenset(
    {
        ("ResourceRequirements", "limits"),
        ("ResourceRequirements", "requests"),
        ("VolumeResourceRequirements", "limits"),
        ("VolumeResourceRequirements", "requests"),
        ("PodSpec", "overhead"),
    }
)


def object_type(cls: type) -> ObjectType:
    """The description of a pydantic model or a lightkube model class."""
    return ObjectType(cls)


def kube_class(ref: str) -> type:
    """The lightkube class for a Kubernetes OpenAPI name, e.g. ``io.k8s.api.core.v1.PodTemplateSpec``."""
    *pkg, cls_name = ref.split(".")
    if pkg[:5] == ["io", "k8s", "apimachinery", "pkg", "apis"]:
        module = f"{pkg[5]}_{pkg[6]}"
    elif pkg[:3] == ["io", "k8s", "api"]:
        module = f"{pkg[3]}_{pkg[4]}"
    else:
        raise ValueError(f"not a Kubernetes type name: {ref}")
    cls = getattr(importlib.import_module(f"lightkube.models.{module}"), cls_name)
    assert isinstance(cls, type)
    return cls


def kind_type(kind: str) -> ObjectType | None:
    """The description of a whole object of a kind the parser acts on; None for other kinds."""
    if kind == "Rollout":
        return object_type(Rollout)
    if kind in ("Service", "Namespace"):
        return object_type(kube_class(f"io.k8s.api.core.v1.{kind}"))
    if kind == "Deployment":  # stored for spec.workloadRef, checked by Kubernetes' own schema
        return object_type(kube_class("io.k8s.api.apps.v1.Deployment"))
    if kind in ANALYSIS_KINDS:
        return object_type(ANALYSIS_KINDS[kind])
    return None


@functools.cache
def _fields_of(cls: type) -> dict[str, FieldInfo]:
    if issubclass(cls, BaseModel):
        return _pydantic_fields(cls)
    if _is_kube_model(cls):
        return _kube_fields(cls)
    raise TypeError(f"{cls!r} is neither a pydantic model nor a lightkube model")


def _is_kube_model(tp: Any) -> bool:
    # lightkube >= 1.0 builds its models on msgspec structs, older releases on dataclasses.
    return isinstance(tp, type) and (hasattr(tp, "__struct_fields__") or dataclasses.is_dataclass(tp))


def _pydantic_fields(cls: type[BaseModel]) -> dict[str, FieldInfo]:
    out: dict[str, FieldInfo] = {}
    for attr, f in cls.model_fields.items():
        wire = f.alias or attr
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        kube_ref = extra.get("x-kube-type")
        tp: TypeNode
        if isinstance(kube_ref, str):
            tp = object_type(kube_class(kube_ref))
        else:
            # Argo types every integer of a Rollout int32 (``x-format`` may say otherwise).
            fmt = extra.get("x-format", "int32")
            tp = _with_int_format(_from_annotation(f.annotation, cls.__name__, wire), fmt)
            if extra.get("x-scalar") == "int-or-args" and tp == Scalar("int-or-string", "int32"):
                tp = Scalar("int-or-args", "int32")
        minimum, maximum = extra.get("minimum"), extra.get("maximum")
        out[wire] = FieldInfo(
            name=wire,
            type=tp,
            required=f.is_required() or extra.get("x-required") is True,
            minimum=minimum if isinstance(minimum, int) else None,
            maximum=maximum if isinstance(maximum, int) else None,
        )
    return out


def _kube_fields(cls: type) -> dict[str, FieldInfo]:
    hints = typing.get_type_hints(cls)
    entries: list[tuple[str, str, bool]] = []  # (attribute, wire name, required)
    if hasattr(cls, "__struct_fields__"):
        names: tuple[str, ...] = cls.__struct_fields__
        wires: tuple[str, ...] = getattr(cls, "__struct_encode_fields__", names)
        # msgspec keeps defaults for the trailing fields only; the leading ones are required.
        n_required = len(names) - len(getattr(cls, "__struct_defaults__", ()))
        entries = [(a, w, i < n_required) for i, (a, w) in enumerate(zip(names, wires, strict=True))]
    else:
        for f in dataclasses.fields(cls):
            wire = f.metadata.get("json", f.name) if f.metadata else f.name
            required = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
            entries.append((f.name, wire, required))
    raw = getattr(cls, "__annotations__", {})
    out: dict[str, FieldInfo] = {}
    for attr, wire, required in entries:
        tp = _from_annotation(hints[attr], cls.__name__, wire)
        # A scalar resource.Quantity resolves to str; the written annotation still names it.
        if tp == Scalar("string") and "Quantity" in str(raw.get(attr, "")):
            tp = Scalar("quantity")
        tp = _with_int_format(tp, "int64" if (cls.__name__, wire) in _INT64_FIELDS else "int32")
        out[wire] = FieldInfo(name=wire, type=tp, required=required)
    return out


def _with_int_format(node: TypeNode, fmt: Any) -> TypeNode:
    """``node`` with its integers (also inside lists and maps, and an IntOrString's) given ``fmt``."""
    if fmt not in INT_RANGES:
        raise ValueError(f"unknown integer format {fmt!r}")
    if isinstance(node, Scalar):
        if node.kind == "integer":
            return Scalar("integer", fmt)
        if node.kind == "int-or-string":
            return Scalar("int-or-string", "int32")  # IntOrString holds an int32
        return node
    if isinstance(node, ListOf):
        return ListOf(_with_int_format(node.item, fmt))
    if isinstance(node, MapOf):
        return MapOf(_with_int_format(node.value, fmt))
    return node


def _from_annotation(tp: Any, owner: str, field_name: str) -> TypeNode:
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if set(args) == {int, str}:
            return Scalar("int-or-string")
        if len(args) == 1:
            return _from_annotation(args[0], owner, field_name)
        return Open(object_only=False)
    if tp is Any:
        return Open(object_only=False)
    if tp is str:
        return Scalar("string")
    if tp is bool:
        return Scalar("boolean")
    if tp is int:
        return Scalar("integer")
    if tp is float:
        return Scalar("number")
    if tp is datetime:
        return Scalar("date-time")
    if tp is dict:
        # A lightkube map with its value type erased (see the module docstring).
        quantity = (owner, field_name) in _QUANTITY_MAPS
        return MapOf(Scalar("quantity") if quantity else Scalar("string"))
    if tp is typing.Dict or (origin is dict and not typing.get_args(tp)):  # noqa: UP006
        return Open(object_only=True)
    if origin is dict:
        _key, value = typing.get_args(tp)
        if value is Any:
            return Open(object_only=True)
        return MapOf(_from_annotation(value, owner, field_name))
    if origin is list:
        (item,) = typing.get_args(tp)
        return ListOf(_from_annotation(item, owner, field_name))
    if isinstance(tp, type) and (issubclass(tp, BaseModel) or _is_kube_model(tp)):
        return object_type(tp)
    raise TypeError(f"no schema for {tp!r} ({owner}.{field_name})")


def integer_formats(roots: typing.Iterable[TypeNode]) -> dict[tuple[str, str], str | None]:
    """(class name, wire field) -> integer format, for every integer field (or list or map of
    integers, or IntOrString) reachable from ``roots``: what the bounds checks use."""
    out: dict[tuple[str, str], str | None] = {}
    seen: set[type] = set()

    def leaf(node: TypeNode) -> TypeNode:
        while isinstance(node, ListOf | MapOf):
            node = node.item if isinstance(node, ListOf) else node.value
        return node

    def go(node: TypeNode) -> None:
        node = leaf(node)
        if not isinstance(node, ObjectType) or node.cls in seen:
            return
        seen.add(node.cls)
        for name, f in node.fields.items():
            t = leaf(f.type)
            if isinstance(t, Scalar) and t.kind in ("integer", "int-or-string"):
                out[(node.name, name)] = t.format
            go(f.type)

    for root in roots:
        go(root)
    return out


# --- openAPIV3Schema -------------------------------------------------------------------------------


def openapi(node: TypeNode, *, _stack: tuple[type, ...] = ()) -> dict[str, Any]:
    """A structural openAPIV3Schema for a type: every node has a type, int-or-string is marked,
    open objects preserve unknown fields, and a type nested in itself is cut off as an open object."""
    if isinstance(node, Scalar):
        if node.kind in ("int-or-string", "int-or-args", "quantity"):
            return {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]}
        if node.kind == "date-time":
            return {"type": "string", "format": "date-time"}
        if node.kind == "integer" and node.format == "int32":
            # The API server does not check an integer's format; the bounds make it refuse what a
            # Go controller could not decode (validation in model.schemawalk says the same).
            low, high = INT_RANGES[node.format]
            return {"type": "integer", "format": node.format, "minimum": low, "maximum": high}
        if node.kind == "integer" and node.format is not None:
            # No bounds on int64: the API server holds a schema's bounds as float64, where 2**63 - 1
            # is not an integer, and then refuses every object that has the field (it refused
            # terminationGracePeriodSeconds: 30 in an undo). JSON decoding bounds int64 anyway.
            return {"type": "integer", "format": node.format}
        return {"type": node.kind}
    if isinstance(node, ListOf):
        return {"type": "array", "items": openapi(node.item, _stack=_stack)}
    if isinstance(node, MapOf):
        return {"type": "object", "additionalProperties": openapi(node.value, _stack=_stack)}
    if isinstance(node, Open):
        if node.object_only:
            return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
        return {"x-kubernetes-preserve-unknown-fields": True}
    if node.cls in _stack:
        return {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    props: dict[str, Any] = {}
    required: list[str] = []
    for name, f in node.fields.items():
        schema = openapi(f.type, _stack=(*_stack, node.cls))
        if f.minimum is not None:
            schema["minimum"] = max(f.minimum, schema.get("minimum", f.minimum))
        if f.maximum is not None:
            schema["maximum"] = min(f.maximum, schema.get("maximum", f.maximum))
        props[name] = schema
        if f.required:
            required.append(name)
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def rollout_openapi_schema() -> dict[str, Any]:
    """The Rollout CRD's openAPIV3Schema, generated from ``model.rollout``.

    ``spec.template`` is fully expanded from lightkube's PodTemplateSpec (Kubernetes' own schema),
    so the API server checks and prunes the pod template as it would a Deployment's. Root metadata is
    ``type: object`` (the API server owns its schema), and ``apiVersion``/``kind`` are strings.
    """
    return kind_openapi_schema(Rollout)


def kind_openapi_schema(cls: type[BaseModel]) -> dict[str, Any]:
    """The openAPIV3Schema of a whole object of one of this project's kinds (Rollout, the analysis
    kinds), generated from its model class, with a CRD root's rules (see ``rollout_openapi_schema``)."""
    schema = openapi(object_type(cls))
    props = schema["properties"]
    props["metadata"] = {"type": "object"}
    # The root of a CRD schema may not list required fields of metadata/kind; drop required at root.
    schema.pop("required", None)
    return schema
