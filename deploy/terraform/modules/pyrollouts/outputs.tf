output "namespace" {
  description = "The namespace of the release (null when nothing is installed)."
  value       = one([for r in helm_release.pyrollouts : r.namespace])
}

output "release_name" {
  description = "The Helm release name."
  value       = one([for r in helm_release.pyrollouts : r.name])
}

output "chart_version" {
  description = "The chart version Helm installed."
  value       = one([for r in helm_release.pyrollouts : r.metadata[0].version])
}

output "app_version" {
  description = "The controller version (the chart's appVersion)."
  value       = one([for r in helm_release.pyrollouts : r.metadata[0].app_version])
}

output "status" {
  description = "The release status (deployed, failed, ...)."
  value       = one([for r in helm_release.pyrollouts : r.status])
}
