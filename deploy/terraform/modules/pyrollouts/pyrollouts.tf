# The pyrollouts controller as a Helm release, shaped like the guide's Argo Rollouts module:
# one object variable, a release only when it is set, `set` entries from a map, extra values files.
resource "helm_release" "pyrollouts" {
  for_each = var.pyrollouts != null ? toset(["pyrollouts"]) : toset([])

  name = var.pyrollouts.name

  # A chart repository (`make chart` builds one) at a pinned version, or the chart in this checkout.
  repository       = var.pyrollouts.repository
  chart            = var.pyrollouts.repository != null ? "pyrollouts" : "${path.module}/../../../helm/pyrollouts"
  version          = var.pyrollouts.version
  namespace        = var.pyrollouts.namespace
  create_namespace = true

  # The chart's CRDs come from its crds/ folder: Helm installs them before anything else.
  skip_crds = false
  wait      = var.pyrollouts.wait
  timeout   = var.pyrollouts.timeout

  dynamic "set" {
    for_each = var.pyrollouts.sets

    content {
      name  = set.key
      value = set.value
    }
  }

  values = var.pyrollouts.values
}
