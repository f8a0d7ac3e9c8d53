"""The webhook server: provider deliveries and CloudEvents in, CloudEvents on Kafka out, 2xx only once durable."""
