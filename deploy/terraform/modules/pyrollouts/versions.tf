terraform {
  required_version = ">= 1.6.0"

  required_providers {
    # 2.x: the `dynamic "set"` block above is a block there (3.x turned it into a list attribute).
    helm = {
      source  = "hashicorp/helm"
      version = "~> 2.17"
    }
  }
}
