"""autodeploy's domain rules: pure functions and values, no I/O and no broker, HTTP or Kubernetes libraries."""
