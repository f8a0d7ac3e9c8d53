"""aiohttp application: routes, error mapping, health and metrics. A 2xx means Kafka acknowledged the event."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol
from urllib.parse import parse_qs

import orjson
from aiohttp import web
from cloudevents.core.base import BaseCloudEvent
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.adapters.kafka_producer import Acknowledged, PublishRejected, PublishUnavailable, Record
from streams.catalog import Catalog
from streams.config import WebhookSettings
from streams.domain import signatures
from streams.domain.circleci_mapping import circleci_attributes
from streams.domain.webhook_mapping import UnmappableDelivery, github_attributes, github_paths
from streams.events.ce_wire import MalformedEvent, from_structured, with_member_structured
from streams.events.deadletters import HttpDelivery, deadletter_headers
from streams.events.dsse_keys import SigningKey
from streams.events.encoding import STRUCTURED_HEADERS, structured_record
from streams.events.signing import signed_record, signed_structured
from streams.events.verification_material import MATERIAL_ATTRIBUTE
from streams.webhooks import inbound, json_bodies
from streams.webhooks.metrics import WebhookMetrics
from streams.webhooks.provider_events import provider_event

log = logging.getLogger(__name__)

RETRY_AFTER_S = 5
# Parsing a large body blocks the loop; above this size it happens on a thread.
OFFLOAD_BYTES = 512 * 1024
STARTED = web.RequestKey("started", float)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Publisher(Protocol):
    async def publish(self, record: Record, timeout: float) -> Acknowledged: ...

    def reachable(self, timeout: float) -> bool: ...


class Rejection(Exception):
    """A request refused with a 4xx/5xx status; `reason` labels the rejection metric."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class WebhookServer:
    def __init__(
        self,
        settings: WebhookSettings,
        catalog: Catalog,
        publisher: Publisher,
        metrics: WebhookMetrics | None = None,
        *,
        signer: SigningKey | None = None,
    ) -> None:
        self.settings = settings
        # Signs every event it publishes once the delivery's signature or token checked out; None: unsigned.
        self.signer = signer
        self.publisher = publisher
        self.metrics = metrics or WebhookMetrics()
        self.catalog = catalog
        self.github_topic = catalog.topic("github.events").name
        self.ci_topic = catalog.topic("ci.events").name
        self.deadletter_topic = catalog.topic("autodeploy.deadletter").name
        self._ready: tuple[float, bool] = (0.0, False)
        self._projections: dict[frozenset[str], json_bodies.Projection] = {}

    def _projection(self, event: str) -> json_bodies.Projection:
        """The GitHub payload cut down to what the mapping reads for `event`; one decoder per distinct path set."""
        paths = github_paths(event)
        projection = self._projections.get(paths)
        if projection is None:
            projection = self._projections[paths] = json_bodies.Projection(paths)
        return projection

    def enabled(self, endpoint: str) -> bool:
        return self._has_secret(endpoint) or endpoint in self.settings.allow_unsigned

    def _has_secret(self, endpoint: str) -> bool:
        settings = self.settings
        return bool(
            {
                "github": settings.github_secrets,
                "circleci": settings.circleci_secrets,
                "events": settings.events_tokens,
            }[endpoint]
        )

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes)
        routes = {
            "github": ("/webhooks/github", self.github),
            "circleci": ("/webhooks/circleci", self.circleci),
            "events": ("/events", self.events),
        }
        for endpoint, (path, live) in routes.items():
            handler = live
            if not self.enabled(endpoint):
                log.warning("endpoint disabled endpoint=%s path=%s: no secret configured", endpoint, path)
                handler = self._disabled
            elif endpoint in self.settings.allow_unsigned and not self._has_secret(endpoint):
                log.error("ACCEPTING UNSIGNED DELIVERIES endpoint=%s path=%s: anyone can publish", endpoint, path)
            app.router.add_post(path, self._answering_errors(endpoint, handler), name=endpoint)
        app.router.add_get("/healthz", self.healthz, name="healthz")
        app.router.add_get("/readyz", self.readyz, name="readyz")
        app.router.add_get("/metrics", self.metrics_page, name="metrics")
        return app

    # ----------------------------------------------------------------------------------------------------- routes

    async def github(self, request: web.Request) -> web.Response:
        received = datetime.now(UTC)
        body = await request.read()
        if self.settings.github_secrets and not signatures.github_signature_valid(
            self.settings.github_secrets, body, request.headers.get("X-Hub-Signature-256")
        ):
            raise Rejection(401, "signature", "missing or wrong X-Hub-Signature-256")
        content_type = request.content_type
        if content_type == "application/x-www-form-urlencoded":
            body = _form_payload(body)
        elif content_type != "application/json":
            raise Rejection(415, "media_type", "send application/json or application/x-www-form-urlencoded")
        event = request.headers.get("X-GitHub-Event", "")
        delivery = request.headers.get("X-GitHub-Delivery", "")
        if not event or not _valid_id(delivery):
            raise Rejection(400, "headers", "X-GitHub-Event and X-GitHub-Delivery are required")
        if event == "ping":
            zen = (await _json_object(body, json_bodies.loads)).get("zen")
            return _json({"pong": True, "zen": zen if isinstance(zen, str) else None})
        payload = await _json_object(body, self._projection(event).loads)
        try:
            attributes = github_attributes(event, payload)
        except UnmappableDelivery as e:
            raise Rejection(400, "malformed", str(e)) from e
        cloud_event = provider_event(attributes, delivery, body, received)
        return await self._store_one(cloud_event, self.github_topic, "github", request)

    async def circleci(self, request: web.Request) -> web.Response:
        received = datetime.now(UTC)
        body = await request.read()
        if self.settings.circleci_secrets and not signatures.circleci_signature_valid(
            self.settings.circleci_secrets, body, request.headers.get("circleci-signature")
        ):
            raise Rejection(401, "signature", "missing or wrong circleci-signature")
        if request.content_type != "application/json":
            raise Rejection(415, "media_type", "send application/json")
        payload = await _json_object(body, json_bodies.loads)
        delivery = payload.get("id")
        if not isinstance(delivery, str) or not _valid_id(delivery):
            raise Rejection(400, "malformed", "a CircleCI delivery needs a string `id`")
        if payload.get("type") == "ping":
            return _json({"pong": True})
        try:
            attributes = circleci_attributes(payload)
        except UnmappableDelivery as e:
            raise Rejection(400, "malformed", str(e)) from e
        if self.catalog.topic("ci.events").event_type(attributes.type) is None:
            # A CircleCI event type the contract does not know yet: kept, not published to consumers.
            reason = f"undeclared event type {attributes.type}"
            headers = deadletter_headers(reason, "webhooks", HttpDelivery(request.path, request.headers))
            record = Record(self.deadletter_topic, attributes.partitionkey.encode(), body, headers)
            await self._publish(record, "circleci", request)
            return _json({"stored": "deadletter", "reason": reason})
        cloud_event = provider_event(attributes, delivery, body, received)
        return await self._store_one(cloud_event, self.ci_topic, "circleci", request)

    async def events(self, request: web.Request) -> web.Response:
        if self.settings.events_tokens and not _bearer_valid(
            self.settings.events_tokens, request.headers.get("Authorization")
        ):
            raise Rejection(401, "signature", "missing or wrong bearer token")
        body = await request.read()
        headers = dict(request.headers)
        binary = any(k.lower().startswith("ce-") for k in headers)
        if not binary and request.content_type not in (inbound.STRUCTURED, inbound.BATCH):
            raise Rejection(
                415, "media_type", f"send {inbound.STRUCTURED}, {inbound.BATCH}, or binary mode with ce- headers"
            )
        try:
            parsed = await _maybe_offloaded(len(body), inbound.parse, headers, body)
            events = [inbound.checked(e, self.catalog, "ci.events") for e in parsed]
            batch = request.content_type == inbound.BATCH
            records = [_as_sent(e, self.ci_topic, headers, body, binary=binary, batch=batch) for e in events]
        except inbound.InvalidEvents as e:
            raise Rejection(400, "malformed", str(e)) from e
        kept = [r or self._record(e, self.ci_topic) for e, r in zip(events, records, strict=True)]
        return await self._store(events, self.ci_topic, "events", request, kept)

    async def _disabled(self, request: web.Request) -> web.Response:
        endpoint = request.match_info.route.name
        variable = {
            "github": "GITHUB_WEBHOOK_SECRETS",
            "circleci": "CIRCLECI_WEBHOOK_SECRETS",
            "events": "AUTODEPLOY_EVENTS_TOKENS",
        }.get(endpoint or "", "")
        raise Rejection(404, "disabled", f"endpoint not enabled: set {variable} (or AUTODEPLOY_ALLOW_UNSIGNED)")

    async def healthz(self, request: web.Request) -> web.Response:
        return _json({"status": "alive"})

    async def readyz(self, request: web.Request) -> web.Response:
        checked_at, ready = self._ready
        if time.monotonic() - checked_at > 1.0:
            ready = await asyncio.to_thread(self.publisher.reachable, 2.0)
            self._ready = (time.monotonic(), ready)
        if not ready:
            return _json({"status": "kafka unreachable"}, status=503, headers=_retry_after())
        return _json({"status": "ready"})

    async def metrics_page(self, request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(self.metrics.registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    # ------------------------------------------------------------------------------------------------ internals

    async def _store_one(
        self, event: BaseCloudEvent, topic: str, endpoint: str, request: web.Request, record: Record | None = None
    ) -> web.Response:
        """A webhook's one event: the hot path, without the lists and tasks of a batch."""
        ack = await self._publish(record or self._record(event, topic), endpoint, request)
        self.metrics.count_received(endpoint, event.get_type())
        stored = {"id": event.get_id(), "topic": ack.topic, "partition": ack.partition, "offset": ack.offset}
        return _json({"stored": [stored]})

    async def _store(
        self, events: list[BaseCloudEvent], topic: str, endpoint: str, request: web.Request, records: list[Record]
    ) -> web.Response:
        if len(events) == 1:
            return await self._store_one(events[0], topic, endpoint, request, records[0])
        acks: list[Acknowledged | BaseException] = await asyncio.gather(
            *(self._publish(r, endpoint, request) for r in records), return_exceptions=True
        )
        failure = next((a for a in acks if isinstance(a, BaseException)), None)
        if failure is not None:
            raise failure
        for event in events:
            self.metrics.count_received(endpoint, event.get_type())
        stored = [
            {"id": e.get_id(), "topic": a.topic, "partition": a.partition, "offset": a.offset}
            for e, a in zip(events, acks, strict=True)
            if isinstance(a, Acknowledged)
        ]
        return _json({"stored": stored})

    def _record(self, event: BaseCloudEvent, topic: str) -> Record:
        """The event's record, signed by this server unless its producer signed it (kept as it was sent: signing
        over it would vouch for what this server cannot check). The data bytes are never changed by signing."""
        if self.signer is None or event.get_extension(MATERIAL_ATTRIBUTE) is not None:
            return structured_record(event, topic)
        if isinstance(event.get_data(), bytes | bytearray):  # webhooks: the provider's bytes, as received
            return signed_record(event, topic, self.signer)
        record = structured_record(event, topic)  # /events: data the SDK parsed, signed as it is now written
        return Record(record.topic, record.key, signed_structured(record.value, self.signer), record.headers)

    async def _publish(self, record: Record, endpoint: str, request: web.Request) -> Acknowledged:
        try:
            ack = await self.publisher.publish(record, self.settings.publish_timeout_s)
        except PublishUnavailable as e:
            log.warning("publish failed endpoint=%s topic=%s error=%s", endpoint, record.topic, e)
            raise Rejection(503, "unavailable", f"not stored, retry later: {e}") from e
        except PublishRejected as e:
            log.error("publish refused endpoint=%s topic=%s error=%s", endpoint, record.topic, e)
            if e.too_large:
                raise Rejection(413, "too_large", str(e)) from e
            raise Rejection(503, "refused", str(e)) from e
        self.metrics.observe_durable_write(record.topic, time.monotonic() - request[STARTED])
        log.debug("stored endpoint=%s topic=%s partition=%s offset=%s", endpoint, ack.topic, ack.partition, ack.offset)
        return ack

    def _answering_errors(self, endpoint: str, handler: Handler) -> Handler:
        """Rejections become their status; wrapped per route rather than as middleware, which costs more per request."""

        async def answer(request: web.Request) -> web.StreamResponse:
            request[STARTED] = time.monotonic()
            try:
                return await handler(request)
            except Rejection as e:
                self.metrics.rejected.labels(endpoint, e.reason).inc()
                headers = _retry_after() if e.status == 503 else None
                return _json({"error": str(e)}, status=e.status, headers=headers)
            except web.HTTPRequestEntityTooLarge:
                self.metrics.rejected.labels(endpoint, "too_large").inc()
                limit = self.settings.max_body_bytes
                return _json({"error": f"body larger than {limit} bytes"}, status=413)

        return answer


def _as_sent(
    event: BaseCloudEvent, topic: str, headers: Mapping[str, str], body: bytes, *, binary: bool, batch: bool
) -> Record | None:
    """The record of a producer-signed event: the request's own bytes (the SDK parsed them and would write them
    anew, with a `time` it adds when there is none), its `partitionkey` added when missing (an unsigned extension).
    None for an unsigned event: this server signs it."""
    if event.get_extension(MATERIAL_ATTRIBUTE) is None:
        return None
    if batch:
        raise inbound.InvalidEvents(
            f"event {event.get_id()}: send signed events one per request (structured or binary mode): "
            "a batch's members are re-encoded"
        )
    key = inbound.partition_key(event) or ""
    if binary:
        kafka_headers = [
            (f"ce_{name[3:].lower()}", value.encode())
            for name, value in headers.items()
            if name.lower().startswith("ce-")
        ]
        if not any(name == "ce_partitionkey" for name, _ in kafka_headers):
            kafka_headers.append(("ce_partitionkey", key.encode()))
        content_type = headers.get("Content-Type")
        if content_type:
            kafka_headers.append(("content-type", content_type.encode()))
        return Record(topic, key.encode(), body, tuple(kafka_headers))
    try:
        sent = from_structured(body)
    except MalformedEvent as e:
        raise inbound.InvalidEvents(f"event {event.get_id()}: {e}") from e
    value = body if "partitionkey" in sent.attributes else with_member_structured(body, "partitionkey", key)
    return Record(topic, key.encode(), value, STRUCTURED_HEADERS)


def _json(body: Any, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, headers=headers, content_type="application/json")


def _retry_after() -> Mapping[str, str]:
    return {"Retry-After": str(RETRY_AFTER_S)}


def _valid_id(value: str) -> bool:
    return 0 < len(value) <= 256 and value.isprintable()


def _form_payload(body: bytes) -> bytes:
    try:
        fields = parse_qs(body.decode("utf-8"), strict_parsing=True)
    except (UnicodeDecodeError, ValueError) as e:
        raise Rejection(400, "malformed", "form body is not valid application/x-www-form-urlencoded") from e
    payload = fields.get("payload")
    if not payload or len(payload) != 1:
        raise Rejection(400, "malformed", "form body needs exactly one `payload` field")
    return payload[0].encode("utf-8")


async def _json_object(body: bytes, parse: Callable[[bytes], Any]) -> Mapping[str, Any]:
    """Strict JSON (UTF-8, no BOM, no NaN): the same bytes are later embedded verbatim in the CloudEvent."""
    try:
        payload = parse(body) if len(body) <= OFFLOAD_BYTES else await asyncio.to_thread(parse, body)
    except json_bodies.MalformedJson as e:
        raise Rejection(400, "malformed", f"body is not valid JSON: {e}") from e
    if not isinstance(payload, Mapping):
        raise Rejection(400, "malformed", "body must be a JSON object")
    return payload


async def _maybe_offloaded(size: int, func: Callable[..., Any], *args: Any) -> Any:
    if size > OFFLOAD_BYTES:
        return await asyncio.to_thread(func, *args)
    return func(*args)


def _bearer_valid(tokens: tuple[bytes, ...], header: str | None) -> bool:
    if not header or not header.startswith("Bearer "):
        return False
    given = header[len("Bearer ") :].strip().encode()
    found = False
    for token in tokens:
        found |= hmac.compare_digest(token, given)
    return found
