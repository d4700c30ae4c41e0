"""The OpenAPI 3 document of the dashboard API, served at /api/openapi.json."""

from __future__ import annotations

from typing import Any

from .. import __version__

_NS = {"name": "ns", "in": "path", "required": True, "schema": {"type": "string"}, "description": "namespace"}
_NAME = {
    "name": "name",
    "in": "path",
    "required": True,
    "schema": {"type": "string"},
    "description": "rollout",
}


def _err(desc: str) -> dict[str, Any]:
    return {
        "description": desc,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(ref: str, desc: str = "OK") -> dict[str, Any]:
    return {
        "description": desc,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}},
    }


def _sse(desc: str) -> dict[str, Any]:
    return {"description": desc, "content": {"text/event-stream": {"schema": {"type": "string"}}}}


def _action(
    summary: str, extra_params: list[dict[str, Any]] | None = None, body: bool = False
) -> dict[str, Any]:
    op: dict[str, Any] = {
        "summary": summary,
        "description": "Needs 'Authorization: Bearer <token>' or an Origin header naming this server.",
        "parameters": [_NS, _NAME, *(extra_params or [])],
        "responses": {
            "200": {
                "description": "the patched Rollout",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            "400": _err("malformed body, unknown revision or container"),
            "403": _err(
                "no token and no same-origin Origin header, or a namespace this dashboard does not "
                "serve (started with --namespace)"
            ),
            "404": _err("unknown rollout"),
            "409": _err("the action does not apply now (e.g. promote when not paused)"),
        },
    }
    if body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PromoteBody"}}},
        }
    return op


#: A dashboard started with ``--namespace`` answers this for any other namespace.
_OTHER_NAMESPACE = _err("a namespace this dashboard does not serve (started with --namespace)")


def openapi_document() -> dict[str, Any]:
    """The document (a fresh dict each call)."""
    rs_info = {
        "type": "object",
        "properties": {
            "objectMeta": {"$ref": "#/components/schemas/ObjectMeta"},
            "status": {"type": "string", "description": "Healthy, Progressing, ScaledDown"},
            "revision": {"type": "integer"},
            "stable": {"type": "boolean"},
            "active": {"type": "boolean"},
            "preview": {"type": "boolean"},
            "canary": {"type": "boolean"},
            "replicas": {"type": "integer"},
            "available": {"type": "integer"},
            "template": {"type": "string", "description": "pod-template hash"},
            "scaleDownDeadline": {"type": "string", "description": "RFC3339, empty when none"},
            "images": {"type": "array", "items": {"type": "string"}},
            "pods": {"type": "array", "items": {"$ref": "#/components/schemas/PodInfo"}},
        },
    }
    paths: dict[str, Any] = {
        "/api/v1/version": {"get": {"summary": "Server version", "responses": {"200": _json("Version")}}},
        "/api/v1/namespace": {
            "get": {
                "summary": "Default and available namespaces",
                "responses": {"200": _json("NamespaceInfo")},
            }
        },
        "/api/v1/rollouts/{ns}/info": {
            "get": {
                "summary": "RolloutInfo of every Rollout in a namespace",
                "parameters": [_NS],
                "responses": {"200": _json("RolloutInfoList"), "403": _OTHER_NAMESPACE},
            }
        },
        "/api/v1/rollouts/{ns}/info/watch": {
            "get": {
                "summary": "Changes of the namespace's Rollouts",
                "description": 'Server-Sent Events; each data is {"result": {"type": ADDED|MODIFIED|DELETED, '
                '"rolloutInfo": RolloutInfo}}.',
                "parameters": [_NS],
                "responses": {"200": _sse("the stream"), "403": _OTHER_NAMESPACE},
            }
        },
        "/api/v1/rollouts/{ns}/{name}/info": {
            "get": {
                "summary": "RolloutInfo of one Rollout",
                "parameters": [_NS, _NAME],
                "responses": {
                    "200": _json("RolloutInfo"),
                    "403": _OTHER_NAMESPACE,
                    "404": _err("unknown rollout"),
                },
            }
        },
        "/api/v1/rollouts/{ns}/{name}/info/watch": {
            "get": {
                "summary": "One Rollout, again on every change",
                "description": 'Server-Sent Events; each unnamed message is {"result": RolloutInfo}; named '
                'events "events" ({"items": [Event]}) and, on the local runtime, "traffic" '
                '({"revisions": [{revision, hash, points: [{t, rps, errorRate}]}]}); "deleted" when it goes.',
                "parameters": [_NS, _NAME],
                "responses": {
                    "200": _sse("the stream"),
                    "403": _OTHER_NAMESPACE,
                    "404": _err("unknown rollout"),
                },
            }
        },
        "/api/v1/rollouts/{ns}/{name}/events": {
            "get": {
                "summary": "The rollout's events, oldest first",
                "parameters": [_NS, _NAME],
                "responses": {
                    "200": _json("EventList"),
                    "403": _OTHER_NAMESPACE,
                    "404": _err("unknown rollout"),
                },
            }
        },
        "/api/v1/rollouts/{ns}/{name}/traffic": {
            "get": {
                "summary": "Requests per second and error rate per revision (local runtime)",
                "parameters": [_NS, _NAME],
                "responses": {
                    "200": {"description": "series"},
                    "403": _OTHER_NAMESPACE,
                    "404": _err("unknown rollout"),
                },
            }
        },
        "/api/v1/rollouts/{ns}/{name}/promote": {"put": _action("Promote (full: skip the pause)", body=True)},
        "/api/v1/rollouts/{ns}/{name}/abort": {"put": _action("Abort the update")},
        "/api/v1/rollouts/{ns}/{name}/retry": {"put": _action("Retry an aborted update")},
        "/api/v1/rollouts/{ns}/{name}/restart": {"put": _action("Restart the pods")},
        "/api/v1/rollouts/{ns}/{name}/undo/{revision}": {
            "put": _action(
                "Roll back to a revision",
                [{"name": "revision", "in": "path", "required": True, "schema": {"type": "integer"}}],
            )
        },
        "/api/v1/rollouts/{ns}/{name}/set/{container}/{image}": {
            "put": _action(
                "Set a container's image ('*': all containers)",
                [
                    {"name": "container", "in": "path", "required": True, "schema": {"type": "string"}},
                    {
                        "name": "image",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                        "description": "the rest of the path, slashes included",
                    },
                ],
            )
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "pyrollouts dashboard API",
            "version": __version__,
            "description": "Argo Rollouts' dashboard API (/api/v1) over the local or Kubernetes runtime.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {"type": "string"},
                        "message": {"type": "string"},
                        "code": {"type": "integer"},
                    },
                },
                "Version": {"type": "object", "properties": {"rolloutsVersion": {"type": "string"}}},
                "NamespaceInfo": {
                    "type": "object",
                    "properties": {
                        "namespace": {"type": "string"},
                        "availableNamespaces": {"type": "array", "items": {"type": "string"}},
                    },
                },
                "PromoteBody": {"type": "object", "properties": {"full": {"type": "boolean"}}},
                "ObjectMeta": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "namespace": {"type": "string"},
                        "uid": {"type": "string"},
                        "creationTimestamp": {"type": "string"},
                    },
                },
                "PodInfo": {
                    "type": "object",
                    "properties": {
                        "objectMeta": {"$ref": "#/components/schemas/ObjectMeta"},
                        "status": {"type": "string"},
                        "ready": {"type": "string", "description": "ready/total containers"},
                        "restarts": {"type": "integer"},
                    },
                },
                "ReplicaSetInfo": rs_info,
                "RolloutInfo": {
                    "type": "object",
                    "properties": {
                        "objectMeta": {"$ref": "#/components/schemas/ObjectMeta"},
                        "status": {"type": "string", "description": "the phase"},
                        "message": {"type": "string"},
                        "strategy": {"type": "string"},
                        "desired": {"type": "integer"},
                        "current": {"type": "integer"},
                        "updated": {"type": "integer"},
                        "ready": {"type": "integer"},
                        "available": {"type": "integer"},
                        "restartedAt": {"type": "string"},
                        "containers": {"type": "array", "items": {"type": "object"}},
                        "replicaSets": {
                            "type": "array",
                            "items": {"$ref": "#/components/schemas/ReplicaSetInfo"},
                        },
                        "actions": {"type": "object", "description": "which actions apply now"},
                        "step": {"type": "string", "description": "a canary's currentStepIndex/steps"},
                        "setWeight": {"type": "string", "description": "the weight a canary's steps ask for"},
                        "actualWeight": {"type": "string", "description": "a canary's weight in force"},
                        "steps": {
                            "type": "array",
                            "items": {"type": "object"},
                            "description": "canary steps",
                        },
                        "canary": {
                            "type": "object",
                            "description": "ours: each step's text and state, the Services, statusSplit",
                        },
                    },
                },
                "RolloutInfoList": {
                    "type": "object",
                    "properties": {
                        "rollouts": {"type": "array", "items": {"$ref": "#/components/schemas/RolloutInfo"}}
                    },
                },
                "EventList": {
                    "type": "object",
                    "properties": {"items": {"type": "array", "items": {"type": "object"}}},
                },
            }
        },
    }
