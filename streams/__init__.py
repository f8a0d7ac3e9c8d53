"""autodeploy: webhooks to CloudEvents on Kafka, joined by Faust into deploy readiness, rolled out on Kubernetes."""

__version__ = "0.1.0"
