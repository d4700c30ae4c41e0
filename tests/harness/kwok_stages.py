"""kwok configuration for the test control plane: fake nodes and the Stages that drive pod status.

kwok has no kubelet: Stages (selectors over an object plus a status template) say what status a pod or
node gets and when. The binary runs only the Stages it is given, so this file holds all of them:
nodes become Ready and keep heart-beating; pods become Running and Ready at once by default, and a pod
annotation picks another behaviour so tests can exercise progress deadlines and failures:

- ``pyrollouts.test/ready: "never"``     Running, never Ready.
- ``pyrollouts.test/ready-after: "5s"``  Running and unready, Ready after the delay (a Go duration).
- ``pyrollouts.test/crash: "true"``      never Ready: its container is in CrashLoopBackOff.
- ``pyrollouts.test/crash-after: "5s"``  Ready at first, then crashes after the delay.
- ``pyrollouts.test/job-fail: "true"``   a Job's pod fails (exit code 1) instead of succeeding.

The annotations go on the pod template of a Deployment, ReplicaSet or Rollout.
"""

from __future__ import annotations

ANNOTATION_READY = "pyrollouts.test/ready"
ANNOTATION_READY_AFTER = "pyrollouts.test/ready-after"
ANNOTATION_CRASH = "pyrollouts.test/crash"
ANNOTATION_CRASH_AFTER = "pyrollouts.test/crash-after"
ANNOTATION_JOB_FAIL = "pyrollouts.test/job-fail"

# Fake nodes carry this annotation; kwok manages only the nodes that match it.
NODE_ANNOTATION = "kwok.x-k8s.io/node"
NODE_ANNOTATION_VALUE = "fake"


def _annotation(name: str) -> str:
    return f'.metadata.annotations["{name}"]'


_NOT_DELETED = """\
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'"""

_READY_STATUS = '.status.conditions.[] | select( .type == "Ready" ) | .status'

# The pod's addresses: kwok hands out pod IPs from --cidr (never contacted: kwok runs no containers).
_ADDRESSES = """\
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) \
( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}"""


def _conditions(ready: bool) -> str:
    status = '"True"' if ready else '"False"'
    reason = "" if ready else "\n        reason: ContainersNotReady"
    return f"""\
      conditions:
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: {status}
        type: Ready{reason}
      - lastTransitionTime: {{{{ $now | Quote }}}}
        status: {status}
        type: ContainersReady{reason}"""


def _running_containers(ready: bool) -> str:
    return f"""\
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: {"true" if ready else "false"}
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      initContainerStatuses:
      {{{{ range .spec.initContainers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: true
        restartCount: 0
        state:
          terminated:
            exitCode: 0
            finishedAt: {{{{ $now | Quote }}}}
            reason: Completed
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}"""


# A crash as a kubelet reports it for restartPolicy Always: the pod stays Running, its containers wait
# in CrashLoopBackOff with the last run terminated by an error.
_CRASHED_CONTAINERS = """\
      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: false
        restartCount: 1
        lastState:
          terminated:
            exitCode: 1
            reason: Error
            startedAt: {{ $now | Quote }}
            finishedAt: {{ $now | Quote }}
        state:
          waiting:
            reason: CrashLoopBackOff
            message: back-off restarting failed container (pyrollouts.test/crash)
      {{ end }}"""


def _pod_stage(name: str, selector: list[str], template: str, delay_from: str | None = None) -> str:
    delay = ""
    if delay_from is not None:
        delay = f"""
  delay:
    durationMilliseconds: 1000
    durationFrom:
      expressionFrom: '{delay_from}'"""
    expressions = "\n".join(selector)
    return f"""\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: {name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
{expressions}{delay}
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
{template}
"""


def _expr(key: str, operator: str, *values: str) -> str:
    text = f"    - key: '{key}'\n      operator: '{operator}'"
    if values:
        text += "\n      values:\n" + "\n".join(f"      - '{v}'" for v in values)
    return text


def _pending() -> list[str]:
    return [_NOT_DELETED, _expr(".status.phase", "In", "Pending")]


_NODE_STAGES = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-initialize
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'NotIn'
      values:
      - 'True'
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        lastTransitionTime: {{ $now | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
      addresses:
      - address: {{ NodeIP | Quote }}
        type: InternalIP
      - address: {{ NodeName | Quote }}
        type: Hostname
      allocatable:
        cpu: "32"
        memory: 256Gi
        pods: "250"
      capacity:
        cpu: "32"
        memory: 256Gi
        pods: "250"
      nodeInfo:
        architecture: amd64
        operatingSystem: linux
        kubeletVersion: {{ printf "kwok-%s" Version | Quote }}
        kubeProxyVersion: {{ printf "kwok-%s" Version | Quote }}
        containerRuntimeVersion: {{ printf "kwok-%s" Version | Quote }}
        kernelVersion: {{ printf "kwok-%s" Version | Quote }}
        osImage: kwok
        bootID: ""
        machineID: ""
        systemUUID: ""
      phase: Running
---
# kwok renews the node Leases (--node-lease-duration-seconds); this refreshes the conditions now and
# then as a kubelet would, so the node lifecycle controller never sees a stale node.
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: node-heartbeat
spec:
  resourceRef:
    apiGroup: v1
    kind: Node
  selector:
    matchExpressions:
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.status.conditions.[] | select( .type == "Ready" ) | .status'
      operator: 'In'
      values:
      - 'True'
  delay:
    durationMilliseconds: 20000
    jitterDurationMilliseconds: 25000
  next:
    statusTemplate: |
      {{ $now := Now }}
      conditions:
      {{ range NodeConditions }}
      - lastHeartbeatTime: {{ $now | Quote }}
        message: {{ .message | Quote }}
        reason: {{ .reason | Quote }}
        status: {{ .status | Quote }}
        type: {{ .type | Quote }}
      {{ end }}
"""

_POD_DELETE = """\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-delete
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'Exists'
  next:
    delete: true
"""


# Pods owned by a Job finish: without this they would run forever. They succeed, or fail with exit
# code 1 when annotated pyrollouts.test/job-fail: "true".
def _job_pod_stage(name: str, fail: bool) -> str:
    exit_code, reason, phase = (1, "Error", "Failed") if fail else (0, "Completed", "Succeeded")
    return f"""\
apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: {name}
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Running'
    - key: '.metadata.ownerReferences.[].kind'
      operator: 'In'
      values:
      - 'Job'
{_expr(_annotation(ANNOTATION_JOB_FAIL), "In" if fail else "NotIn", "true")}
  next:
    statusTemplate: |
      {{{{ $now := Now }}}}
      containerStatuses:
      {{{{ range .spec.containers }}}}
      - image: {{{{ .image | Quote }}}}
        name: {{{{ .name | Quote }}}}
        ready: false
        started: false
        restartCount: 0
        state:
          terminated:
            exitCode: {exit_code}
            finishedAt: {{{{ $now | Quote }}}}
            reason: {reason}
            startedAt: {{{{ $now | Quote }}}}
      {{{{ end }}}}
      phase: {phase}
"""


def stages_yaml() -> str:
    """Return every kwok Stage (nodes and pods) as one multi-document YAML text for kwok --config."""
    no_special = [
        _expr(_annotation(ANNOTATION_READY), "NotIn", "never"),
        _expr(_annotation(ANNOTATION_READY_AFTER), "DoesNotExist"),
        _expr(_annotation(ANNOTATION_CRASH), "NotIn", "true"),
    ]
    started_unready = "\n".join(
        [
            _conditions(False),
            _running_containers(False),
            _ADDRESSES,
            "      phase: Running",
            "      startTime: {{ $now | Quote }}",
        ]
    )
    pods = [
        # The default: Running and Ready at once.
        _pod_stage(
            "pod-ready",
            [*_pending(), _expr(_READY_STATUS, "NotIn", "True"), *no_special],
            "\n".join(
                [
                    _conditions(True),
                    _running_containers(True),
                    _ADDRESSES,
                    "      phase: Running",
                    "      startTime: {{ $now | Quote }}",
                ]
            ),
        ),
        _pod_stage(
            "pod-unready-never",
            [
                *_pending(),
                _expr(_annotation(ANNOTATION_READY), "In", "never"),
                _expr(_annotation(ANNOTATION_CRASH), "NotIn", "true"),
            ],
            started_unready,
        ),
        _pod_stage(
            "pod-unready-until-delay",
            [
                *_pending(),
                _expr(_annotation(ANNOTATION_READY), "NotIn", "never"),
                _expr(_annotation(ANNOTATION_READY_AFTER), "Exists"),
                _expr(_annotation(ANNOTATION_CRASH), "NotIn", "true"),
            ],
            started_unready,
        ),
        # The delay counts from the moment the pod matched this stage, i.e. once it was Running.
        _pod_stage(
            "pod-ready-after-delay",
            [
                _NOT_DELETED,
                _expr(".status.phase", "In", "Running"),
                _expr(_READY_STATUS, "In", "False"),
                _expr(_annotation(ANNOTATION_READY), "NotIn", "never"),
                _expr(_annotation(ANNOTATION_READY_AFTER), "Exists"),
                _expr(_annotation(ANNOTATION_CRASH), "NotIn", "true"),
                _expr(_annotation(ANNOTATION_CRASH_AFTER), "DoesNotExist"),
            ],
            "\n".join([_conditions(True), _running_containers(True)]),
            delay_from=_annotation(ANNOTATION_READY_AFTER),
        ),
        _pod_stage(
            "pod-crash",
            [*_pending(), _expr(_annotation(ANNOTATION_CRASH), "In", "true")],
            "\n".join(
                [
                    _conditions(False),
                    _CRASHED_CONTAINERS,
                    _ADDRESSES,
                    "      phase: Running",
                    "      startTime: {{ $now | Quote }}",
                ]
            ),
        ),
        _pod_stage(
            "pod-crash-after-delay",
            [
                _NOT_DELETED,
                _expr(".status.phase", "In", "Running"),
                _expr(_READY_STATUS, "In", "True"),
                _expr(_annotation(ANNOTATION_CRASH_AFTER), "Exists"),
            ],
            "\n".join([_conditions(False), _CRASHED_CONTAINERS]),
            delay_from=_annotation(ANNOTATION_CRASH_AFTER),
        ),
    ]
    jobs = [_job_pod_stage("pod-complete", fail=False), _job_pod_stage("pod-fail", fail=True)]
    return "\n---\n".join([_NODE_STAGES, *pods, *jobs, _POD_DELETE])
