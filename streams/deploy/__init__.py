"""The deploy agent: rolls ready commits out on Kubernetes and publishes the outcomes (see agent)."""
