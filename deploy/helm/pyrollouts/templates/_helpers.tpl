{{/* Names and labels shared by every object of the chart. */}}

{{- define "pyrollouts.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pyrollouts.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "pyrollouts.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "pyrollouts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: pyrollouts
{{- end -}}

{{/* Selector labels: stable across upgrades (a Deployment's selector is immutable). */}}
{{- define "pyrollouts.controllerSelector" -}}
app.kubernetes.io/name: {{ include "pyrollouts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "pyrollouts.dashboardSelector" -}}
app.kubernetes.io/name: {{ include "pyrollouts.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dashboard
{{- end -}}

{{- define "pyrollouts.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "pyrollouts.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "pyrollouts.dashboardName" -}}
{{- printf "%s-dashboard" (include "pyrollouts.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "pyrollouts.dashboardSecretName" -}}
{{- default (printf "%s-token" (include "pyrollouts.dashboardName" .)) .Values.dashboard.token.existingSecret -}}
{{- end -}}

{{- define "pyrollouts.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/*
The controller's grants, exactly what it calls (tests/k8s/test_helm_install.py checks them against
the apiserver audit log). ReplicaSets, Services, Pods and Deployments (spec.workloadRef) are read
from watch caches, so no `get`.
AnalysisRuns are watched (their Rollouts follow them) and read fresh before a measurement; the
analysis controller writes their status; templates are read when a run is made from them; the job
metric provider creates, reads, lists and deletes Jobs (their pods are read from the cache). The
canary's traffic routers read and patch HTTPRoutes (Gateway API) and read, create and patch the
NGINX canary Ingresses, always fresh from the API server (no watch: the router reads an object
before each write; Argo's chart grants more, list, watch and update, which this controller never
calls).
Used as ClusterRole rules, or as Role rules in namespaced mode. Leases are
granted separately, in the release namespace only.
*/}}
{{- define "pyrollouts.controllerRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch", "create", "patch", "delete"]
- apiGroups: [""]
  resources: ["services"]
  verbs: ["list", "watch", "patch"]
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["list", "watch", "patch", "delete"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns"]
  verbs: ["get", "list", "watch", "create", "patch", "delete"]
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns/status"]
  verbs: ["patch"]
- apiGroups: ["argoproj.io"]
  resources: ["analysistemplates", "clusteranalysistemplates"]
  verbs: ["get"]
- apiGroups: ["batch"]
  resources: ["jobs"]
  verbs: ["get", "list", "create", "delete"]
- apiGroups: ["gateway.networking.k8s.io"]
  resources: ["httproutes"]
  verbs: ["get", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["ingresses"]
  verbs: ["get", "create", "patch"]
{{- end -}}

{{/*
The dashboard's grants, exactly what `rollouts dashboard` calls (tests/k8s/test_helm_dashboard_rbac.py
checks them against the apiserver audit log, driving every page, stream and button). It watches
Rollouts, ReplicaSets, Services and Pods in all namespaces (the same caches as the controller, so
Services are watched although no page shows them) and reads them from those caches: no `get` but
for the Rollout, which it reads fresh before each action. Events are listed for a rollout's event
log (not watched: the page re-reads them every second). Namespaces are listed for the namespace
switcher. The actions (promote, abort, retry, restart, rollback) are merge patches of the Rollout
and of its status. AnalysisRuns are listed (not watched: the views are re-read every second) for
the analysisRuns of Argo's RolloutInfo. No pod logs or experiments: no page shows them.
In namespaced mode the same rules go into a Role in the release namespace, without the Namespace
list: the dashboard runs with --namespace there, watches that namespace alone and lists no others.
*/}}
{{- define "pyrollouts.dashboardRules" -}}
- apiGroups: ["argoproj.io"]
  resources: ["rollouts"]
  verbs: ["get", "list", "watch", "patch"]
- apiGroups: ["argoproj.io"]
  resources: ["rollouts/status"]
  verbs: ["patch"]
- apiGroups: ["argoproj.io"]
  resources: ["analysisruns"]
  verbs: ["list"]
- apiGroups: ["apps"]
  resources: ["replicasets"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  resources: ["pods", "services"]
  verbs: ["list", "watch"]
- apiGroups: [""]
  {{- if .Values.namespaced }}
  resources: ["events"]
  {{- else }}
  resources: ["events", "namespaces"]
  {{- end }}
  verbs: ["list"]
{{- end -}}
