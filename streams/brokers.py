"""Where to find a Kafka broker, everywhere: `KAFKA_BOOTSTRAP_SERVERS` if set, else the local broker; and who to be
on it: the security the environment configures (KAFKA_SECURITY_PROTOCOL, ...), else, on the secured local broker,
the identity of the process's role (each process has a principal of its own, see topics/acls.yaml)."""

from __future__ import annotations

from dataclasses import dataclass

from streams.config import KafkaSecurity, Settings
from streams.local import kafka as local_kafka


class BrokerNotFound(RuntimeError):
    """No broker is configured and no local one runs."""


@dataclass(frozen=True)
class Connection:
    bootstrap_servers: str
    security: KafkaSecurity


def bootstrap_servers(settings: Settings) -> str:
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    running = local_kafka.status()
    if running is not None:
        return running.bootstrap_servers
    raise BrokerNotFound(
        "no Kafka broker: set KAFKA_BOOTSTRAP_SERVERS, or start a local one with `autodeploy kafka up`"
    )


def connection(settings: Settings, role: str) -> Connection:
    """The broker and this process's identity on it. `role` (one of streams.local.kafka.ROLES) picks the local
    secured broker's credentials when the environment configures none and the broker is the local one."""
    bootstrap = bootstrap_servers(settings)
    if settings.kafka_security_configured:
        return Connection(bootstrap, settings.kafka_security)
    running = local_kafka.status()
    if running is not None and running.secure and running.bootstrap_servers == bootstrap:
        return Connection(bootstrap, local_kafka.credentials(role))
    return Connection(bootstrap, settings.kafka_security)
