"""Where to find a Kafka broker, everywhere: `KAFKA_BOOTSTRAP_SERVERS` if set, else the local broker."""

from __future__ import annotations

from streams.config import Settings
from streams.local import kafka as local_kafka


class BrokerNotFound(RuntimeError):
    """No broker is configured and no local one runs."""


def bootstrap_servers(settings: Settings) -> str:
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    running = local_kafka.status()
    if running is not None:
        return running.bootstrap_servers
    raise BrokerNotFound(
        "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS, or start a local one with `autodeploy kafka up`"
    )
