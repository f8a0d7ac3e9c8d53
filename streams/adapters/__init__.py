"""Thin wrappers around external clients (Kafka, Kubernetes), each with its own exceptions."""
