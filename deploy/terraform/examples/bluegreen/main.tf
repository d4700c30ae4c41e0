# The guide's blue-green example with pyrollouts in place of Argo Rollouts.
#
# kubernetes_manifest needs the Rollout CRD when it plans, so the first apply installs the module
# (the chart and its CRDs) alone, and the second everything else:
#   tofu apply -target=module.pyrollouts
#   tofu apply
module "pyrollouts" {
  source = "../../modules/pyrollouts"

  pyrollouts = {
    name       = "lupass"
    version    = var.chart_version
    repository = var.chart_repository

    values = [
      yamlencode(
        {
          dashboard = {
            enabled = true
            service = {
              type = var.service_type
            }
          }
        }
      )
    ]
  }
}

resource "kubernetes_namespace" "my_app" {
  metadata {
    name = "my-app"
  }
}

resource "kubernetes_manifest" "super_hello" {
  manifest = {
    apiVersion = "argoproj.io/v1alpha1"
    kind       = "Rollout"
    metadata = {
      name      = "super-hello"
      namespace = kubernetes_namespace.my_app.metadata.0.name
    }

    spec = {
      replicas             = 3
      revisionHistoryLimit = 6
      selector = {
        matchLabels = {
          "app" = "super-hello"
        }
      }
      template = {
        metadata = {
          labels = {
            "app" = "super-hello"
          }
        }
        spec = {
          containers = [
            {
              name  = "super-hello"
              image = "ghcr.io/gbaeke/super:1.0.2"
              env = [
                {
                  name  = "WELCOME"
                  value = var.welcome
                }
              ]
              imagePullPolicy = "Always"
              resources = {
                requests = {
                  memory = "128Mi"
                  cpu    = "50m"
                }
                limits = {
                  memory = "128Mi"
                  cpu    = "50m"
                }
              }
              # The guide put initialDelaySeconds and periodSeconds inside httpGet, where the API
              # drops them; they belong to the probe.
              readinessProbe = {
                httpGet = {
                  path = "/healthz"
                  port = 8080
                }
                initialDelaySeconds = 3
                periodSeconds       = 3
              }
            }
          ]
        }
      }
      strategy = {
        blueGreen = {
          activeService        = kubernetes_service_v1.blue_green_prod.metadata.0.name
          previewService       = kubernetes_service_v1.blue_green_preview.metadata.0.name
          autoPromotionEnabled = false
        }
      }
    }
  }

  field_manager {
    force_conflicts = true
  }

  depends_on = [module.pyrollouts]
}

resource "kubernetes_service_v1" "blue_green_prod" {
  metadata {
    name      = "super-hello-prod"
    namespace = kubernetes_namespace.my_app.metadata.0.name
  }

  spec {
    selector = {
      "app" = "super-hello"
    }

    port {
      port        = 8088
      target_port = 8080
    }
    type = var.service_type
  }

  # The controller adds these to the Service; Terraform must not take them away again.
  lifecycle {
    ignore_changes = [
      metadata.0.annotations["argo-rollouts.argoproj.io/managed-by-rollouts"],
      spec.0.selector["rollouts-pod-template-hash"],
    ]
  }
}

resource "kubernetes_service_v1" "blue_green_preview" {
  metadata {
    name      = "super-hello-preview"
    namespace = kubernetes_namespace.my_app.metadata.0.name
  }

  spec {
    selector = {
      "app" = "super-hello"
    }

    port {
      port        = 8089
      target_port = 8080
    }
    type = var.service_type
  }

  lifecycle {
    ignore_changes = [
      metadata.0.annotations["argo-rollouts.argoproj.io/managed-by-rollouts"],
      spec.0.selector["rollouts-pod-template-hash"],
    ]
  }
}
