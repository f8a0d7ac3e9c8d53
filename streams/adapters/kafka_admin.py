"""Topic administration through confluent-kafka's AdminClient: read what exists, apply a catalog plan."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import Future
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import (
    AclBinding,
    AclBindingFilter,
    AclOperation,
    AclPermissionType,
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourcePatternType,
    ResourceType,
)

from streams.catalog import acls as acl_model
from streams.catalog.plan import ActualTopic, Change, Plan
from streams.config import KafkaSecurity

log = logging.getLogger(__name__)


class KafkaAdminError(RuntimeError):
    """The broker refused or did not answer an admin request."""


class AuthorizerDisabled(KafkaAdminError):
    """The broker has no authorizer (SECURITY_DISABLED): it keeps no ACLs, and anyone may do anything."""


class TopicAdmin:
    def __init__(self, bootstrap_servers: str, timeout: float = 30.0, security: KafkaSecurity | None = None) -> None:
        self._timeout = timeout
        self._security = security or KafkaSecurity()
        self._admin = AdminClient(
            {
                "bootstrap.servers": bootstrap_servers,
                "socket.timeout.ms": int(timeout * 1000),
                **self._security.librdkafka(),
            }
        )

    def broker_count(self) -> int:
        return len(self._metadata().brokers)

    def describe(self, names: Iterable[str]) -> dict[str, ActualTopic]:
        """The named topics that exist, with their configs; missing names are left out."""
        topics = self._metadata().topics
        present = [n for n in names if n in topics and topics[n].error is None]
        if not present:
            return {}
        resources = [ConfigResource(ConfigResource.Type.TOPIC, n) for n in present]
        configs = {
            r.name: self._wait(f, f"describe configs of {r.name}")
            for r, f in self._admin.describe_configs(resources, request_timeout=self._timeout).items()
        }
        result = {}
        for name in present:
            partitions = topics[name].partitions
            replication = min(len(p.replicas) for p in partitions.values()) if partitions else 0
            entries = {k: str(v.value) for k, v in configs[name].items() if v.value is not None}
            result[name] = ActualTopic(name, len(partitions), replication, entries)
        return result

    def apply(self, plan: Plan) -> None:
        creates = [
            NewTopic(
                c.topic, num_partitions=c.partitions, replication_factor=c.replication_factor, config=dict(c.configs)
            )
            for c in plan.changes
            if c.kind == "create"
        ]
        grows = [NewPartitions(c.topic, c.partitions) for c in plan.changes if c.kind == "add_partitions"]
        alters = [
            ConfigResource(
                ConfigResource.Type.TOPIC,
                c.topic,
                incremental_configs=[
                    ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in c.configs.items()
                ],
            )
            for c in plan.changes
            if c.kind == "alter_configs"
        ]
        if creates:
            self._all(self._admin.create_topics(creates, operation_timeout=self._timeout), "create topic")
        if grows:
            self._all(self._admin.create_partitions(grows, operation_timeout=self._timeout), "add partitions to")
        if alters:
            self._all(self._admin.incremental_alter_configs(alters, request_timeout=self._timeout), "alter configs of")
        self._await_visible(plan)
        for change in plan.changes:
            log.debug("topic change applied kind=%s topic=%s", change.kind, change.topic)

    def _await_visible(self, plan: Plan) -> None:
        """Return only once clients see the changes: topic metadata and configs propagate asynchronously."""
        deadline = time.monotonic() + self._timeout
        pending = list(plan.changes)
        while pending:
            actual = self.describe({c.topic for c in pending})
            pending = [c for c in pending if not _visible(c, actual.get(c.topic))]
            if pending and time.monotonic() > deadline:
                raise KafkaAdminError(
                    f"changes not visible after {self._timeout:.0f}s: {[c.description for c in pending]}"
                )
            if pending:
                time.sleep(0.1)

    def ensure(self, name: str, partitions: int, configs: dict[str, str]) -> bool:
        """Create a topic outside the catalog (a worker's internal topic) unless it exists; True when created."""
        if name in self._metadata().topics:
            return False
        replication = min(3, self.broker_count())
        new = NewTopic(name, num_partitions=partitions, replication_factor=replication, config=configs)
        future = self._admin.create_topics([new], operation_timeout=self._timeout)[name]
        try:
            future.result(timeout=self._timeout)
        except KafkaException as e:
            # Workers started together (a StatefulSet's parallel start, a scale-up) race to create it: the loser's
            # topic exists all the same. The error's text names no code, so the code is what is compared.
            if e.args and isinstance(e.args[0], KafkaError) and e.args[0].code() == KafkaError.TOPIC_ALREADY_EXISTS:
                log.info("topic created by another worker topic=%s", name)
                return False
            raise KafkaAdminError(f"could not create topic {name}: {_reason(e)}") from e
        except TimeoutError as e:
            raise KafkaAdminError(f"could not create topic {name}: no answer within {self._timeout:.0f}s") from e
        return True

    def delete(self, names: Iterable[str]) -> None:
        names = list(names)
        if names:
            self._all(self._admin.delete_topics(names, operation_timeout=self._timeout), "delete topic")

    def acls(self, principals: Iterable[str]) -> set[acl_model.AclBinding]:
        """Every ACL of `principals` on the broker; AuthorizerDisabled when it keeps none."""
        if not self._has_authorizer():
            raise AuthorizerDisabled("the broker has no authorizer (authorizer.class.name is empty): it keeps no ACLs")
        found: set[acl_model.AclBinding] = set()
        for principal in principals:
            wanted = AclBindingFilter(
                ResourceType.ANY,
                None,  # type: ignore[arg-type]  # None matches any name (the stubs say str)
                ResourcePatternType.ANY,
                principal,
                None,  # type: ignore[arg-type]  # any host
                AclOperation.ANY,
                AclPermissionType.ANY,
            )
            future = self._admin.describe_acls(wanted, request_timeout=self._timeout)
            try:
                bindings = future.result(timeout=self._timeout)
            except KafkaException as e:
                error = e.args[0] if e.args else None
                if isinstance(error, KafkaError) and error.code() == KafkaError.SECURITY_DISABLED:
                    raise AuthorizerDisabled("the broker has no authorizer: it keeps no ACLs") from e
                raise KafkaAdminError(f"could not describe the ACLs of {principal}: {_reason(e)}") from e
            except TimeoutError as e:
                raise KafkaAdminError(f"could not describe the ACLs of {principal}: no answer") from e
            found.update(_ours(b) for b in bindings)
        return found

    def _has_authorizer(self) -> bool:
        """Kafka 4 answers DescribeAcls without an authorizer with an empty list, not SECURITY_DISABLED: its broker
        config tells."""
        brokers = self._metadata().brokers
        if not brokers:
            raise KafkaAdminError("the cluster's metadata lists no broker")
        resource = ConfigResource(ConfigResource.Type.BROKER, str(min(brokers)))
        future = self._admin.describe_configs([resource], request_timeout=self._timeout)[resource]
        configs = self._wait(future, "describe the broker's configs")
        entry = configs.get("authorizer.class.name")
        return bool(entry is not None and entry.value)

    def apply_acls(self, plan: acl_model.AclPlan) -> None:
        """Create the plan's ACLs, then delete the ones it removes (exactly those: each filter matches one)."""
        if plan.create:
            futures = self._admin.create_acls([_theirs(b) for b in plan.create], request_timeout=self._timeout)
            self._all({_ours(b).description: f for b, f in futures.items()}, "create the ACL")
        if plan.delete:
            deleted = self._admin.delete_acls([_filter(b) for b in plan.delete], request_timeout=self._timeout)
            self._all({_ours(b).description: f for b, f in deleted.items()}, "delete the ACL")
        self._await_acls(plan)
        for binding in plan.create:
            log.debug("acl created acl=%r", binding.description)
        for binding in plan.delete:
            log.debug("acl deleted acl=%r", binding.description)

    def _await_acls(self, plan: acl_model.AclPlan) -> None:
        """Return once the broker enforces the plan: a controller applies ACLs and the broker's authorizer learns them
        from the metadata log a moment later (a client let in before that would be refused)."""
        principals = {b.principal for b in (*plan.create, *plan.delete)}
        deadline = time.monotonic() + self._timeout
        while True:
            found = self.acls(principals)
            if set(plan.create) <= found and not set(plan.delete) & found:
                return
            if time.monotonic() > deadline:
                raise KafkaAdminError(f"ACL changes not visible after {self._timeout:.0f}s")
            time.sleep(0.1)

    def _metadata(self) -> Any:
        try:
            return self._admin.list_topics(timeout=self._timeout)
        except KafkaException as e:
            raise KafkaAdminError(f"Kafka did not answer a metadata request: {e}") from e

    def _all(self, futures: dict[Any, Future[Any]], what: str) -> None:
        errors = []
        for key, future in futures.items():
            name = getattr(key, "name", key)
            try:
                self._wait(future, f"{what} {name}")
            except KafkaAdminError as e:
                errors.append(str(e))
        if errors:
            raise KafkaAdminError("; ".join(errors))

    def _wait(self, future: Future[Any], what: str) -> Any:
        try:
            return future.result(timeout=self._timeout)
        except KafkaException as e:
            raise KafkaAdminError(f"could not {what}: {e.args[0].str() if e.args else e}") from e
        except TimeoutError as e:
            raise KafkaAdminError(f"could not {what}: no answer within {self._timeout:.0f}s") from e


def _reason(e: KafkaException) -> str:
    error = e.args[0] if e.args else None
    return error.str() if isinstance(error, KafkaError) else str(e)


def _ours(binding: AclBinding) -> acl_model.AclBinding:
    return acl_model.AclBinding(
        binding.principal,
        _enum_name(binding.restype),
        _enum_name(binding.resource_pattern_type),
        binding.name,
        _enum_name(binding.operation),
        _enum_name(binding.permission_type),
        binding.host,
    )


def _enum_name(value: object) -> str:
    return str(getattr(value, "name", value))  # the stubs allow the str and int forms too; answers carry enums


def _theirs(binding: acl_model.AclBinding) -> AclBinding:
    return AclBinding(*_fields(binding))


def _filter(binding: acl_model.AclBinding) -> AclBindingFilter:
    """A filter that matches exactly `binding` (every field given)."""
    return AclBindingFilter(*_fields(binding))


def _fields(
    binding: acl_model.AclBinding,
) -> tuple[ResourceType, str, ResourcePatternType, str, str, AclOperation, AclPermissionType]:
    return (
        ResourceType[binding.resource_type],
        binding.name,
        ResourcePatternType[binding.pattern_type],
        binding.principal,
        binding.host,
        AclOperation[binding.operation],
        AclPermissionType[binding.permission],
    )


def _visible(change: Change, actual: ActualTopic | None) -> bool:
    if actual is None or actual.partitions < change.partitions:
        return False
    return all(actual.configs.get(k) == v for k, v in change.configs.items())
