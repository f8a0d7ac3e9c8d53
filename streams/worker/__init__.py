"""The readiness worker: a Faust app that joins github.events and ci.events into a readiness table."""
