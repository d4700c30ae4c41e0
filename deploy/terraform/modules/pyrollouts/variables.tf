variable "pyrollouts" {
  description = "The pyrollouts release; null installs nothing."

  type = object({
    name = string
    # `--set` style overrides, e.g. { "controller.replicas" = "2" }.
    sets = optional(map(string), {})
    # Values files as YAML strings (yamlencode({...})). A list, not the guide's set: Helm merges
    # them in order, and a set would sort them. The guide's set(string) converts to it, so a
    # variable of the guide's type can be passed on as it is.
    values = optional(list(string), [])
    # The chart version; null takes the newest in the repository.
    version = optional(string)
    # A chart repository URL; null installs the chart from this checkout (deploy/helm/pyrollouts).
    repository = optional(string)
    namespace  = optional(string, "pyrollouts")
    wait       = optional(bool, true)
    timeout    = optional(number, 300)
  })

  default = null

  validation {
    condition     = var.pyrollouts == null || can(regex("^[a-z0-9]([-a-z0-9]*[a-z0-9])?$", var.pyrollouts.name))
    error_message = "pyrollouts.name must be a DNS label (lower-case letters, digits and '-'), as Helm requires."
  }
}
