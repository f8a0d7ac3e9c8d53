"""Real services started on this machine for `make run` and the integration tests: Kafka, Kubernetes, Prometheus."""
