variable "kubeconfig" {
  description = "The kubeconfig both providers use."
  type        = string
  default     = "~/.kube/config"
}

variable "service_type" {
  description = "Type of the prod, preview and dashboard Services: LoadBalancer as in the guide; ClusterIP or NodePort where no load balancer controller runs (a LoadBalancer Service would never get an address)."
  type        = string
  default     = "LoadBalancer"

  validation {
    condition     = contains(["ClusterIP", "NodePort", "LoadBalancer"], var.service_type)
    error_message = "service_type must be ClusterIP, NodePort or LoadBalancer."
  }
}

variable "welcome" {
  description = "The WELCOME message the app answers with: change it (\"VERSION V3\") and apply to start a blue-green update."
  type        = string
  default     = "VERSION V2"
}

variable "chart_repository" {
  description = "The chart repository URL (`make chart` builds one); null uses the chart in this checkout."
  type        = string
  default     = null
}

variable "chart_version" {
  description = "The pyrollouts chart version; null takes the newest."
  type        = string
  default     = "0.1.0"
}
