output "controller_namespace" {
  value = module.pyrollouts.namespace
}

output "chart_version" {
  value = module.pyrollouts.chart_version
}
