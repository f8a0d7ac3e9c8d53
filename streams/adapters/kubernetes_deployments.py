"""Deployments through the `kubernetes` client (AppsV1Api): read a rollout, change one image by compare-and-set, wait.

Compare-and-set is a strategic-merge patch that carries `metadata.resourceVersion`: the API server applies the patch
and then stores the result only if that version is still current, else 409 (the same optimistic concurrency as a PUT).
A JSON patch with a `test` op on /metadata/resourceVersion was tried first and rejected: when the test fails the
server answers 422 "the server rejected our request due to an error in our request", indistinguishable from a real
validation error, so a lost race would look like a permanent failure.

Least privilege: only get, watch and patch on apps/deployments are used (no list; the watch starts from a get).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

from kubernetes import client, watch

from streams.adapters.kubernetes_deployment_view import (
    ANNOTATION_PREFIX,
    DeploymentView,
    Rollout,
    check_image,
    view_of,
)
from streams.adapters.kubernetes_errors import (
    Conflict,
    Forbidden,
    Invalid,
    KubernetesError,
    NotFound,
    Permanent,
    Temporary,
    translated,
)

__all__ = [
    "ANNOTATION_PREFIX",
    "Conflict",
    "DeploymentView",
    "DeploymentsClient",
    "Forbidden",
    "Invalid",
    "KubernetesError",
    "NotFound",
    "Permanent",
    "Rollout",
    "Temporary",
    "check_image",
]

log = logging.getLogger(__name__)

_STRATEGIC_MERGE = "application/strategic-merge-patch+json"


class DeploymentsClient:
    def __init__(
        self, api_client: Any, *, request_timeout: float = 10.0, field_manager: str = "autodeploy-deploy-agent"
    ) -> None:
        self._apps = client.AppsV1Api(api_client)
        self._timeout = request_timeout
        self._field_manager = field_manager  # managedFields then name autodeploy as the writer of image/annotations

    def get(self, namespace: str, name: str, container: str) -> DeploymentView:
        with translated(f"get deployment {namespace}/{name}"):
            deployment = self._apps.read_namespaced_deployment(name, namespace, _request_timeout=self._timeout)
        return view_of(deployment, container)

    def set_image(
        self, view: DeploymentView, image: str, annotations: Mapping[str, str | None], *, dry_run: bool = False
    ) -> DeploymentView:
        """Set the container's image and autodeploy's annotations iff the Deployment is still at `view`'s version.

        Conflict when it changed meanwhile (even a status update changes the version: re-read and re-decide).
        With `dry_run` the API server validates and admits the change but stores nothing; the result is the would-be
        view (its resource_version is the current one, its generation the would-be one).
        """
        check_image(image)
        foreign = sorted(k for k in annotations if not k.startswith(ANNOTATION_PREFIX))
        if foreign:
            raise Invalid(f"annotations outside {ANNOTATION_PREFIX}: {', '.join(foreign)}", reason="Invalid")
        patch = {
            "metadata": {"resourceVersion": view.resource_version, "annotations": dict(annotations)},
            # Containers merge by name: the one entry changes only that container's image. The container is known to
            # exist because the view has it and the resourceVersion pins the object to what the view saw.
            "spec": {"template": {"spec": {"containers": [{"name": view.container, "image": image}]}}},
        }
        context = f"namespace={view.namespace} name={view.name} container={view.container}"
        started = time.monotonic()
        with translated(f"patch deployment {view.namespace}/{view.name}"):
            try:
                deployment = self._apps.patch_namespaced_deployment(
                    view.name,
                    view.namespace,
                    patch,
                    dry_run="All" if dry_run else None,
                    field_manager=self._field_manager,
                    _content_type=_STRATEGIC_MERGE,
                    _request_timeout=self._timeout,
                )
            except client.exceptions.ApiException as e:
                if e.status == 409:
                    log.info("image patch lost compare-and-set %s resource_version=%s", context, view.resource_version)
                raise
        result = view_of(deployment, view.container)
        log.info(
            "image patched %s image=%s previous_image=%s resource_version=%s dry_run=%s latency_ms=%.1f",
            context,
            image,
            view.image,
            result.resource_version,
            dry_run,
            (time.monotonic() - started) * 1000,
        )
        return result

    def annotate(self, view: DeploymentView, annotations: Mapping[str, str | None]) -> DeploymentView:
        """Set (None: remove) autodeploy's own annotations; metadata only, so no rollout starts.

        Not a compare-and-set: only the agent and `autodeploy unblock` write these keys, and the controller's status
        writes, which change the resourceVersion every few seconds during a rollout, would make one fail for nothing.
        """
        foreign = sorted(k for k in annotations if not k.startswith(ANNOTATION_PREFIX))
        if foreign:
            raise Invalid(f"annotations outside {ANNOTATION_PREFIX}: {', '.join(foreign)}", reason="Invalid")
        with translated(f"annotate deployment {view.namespace}/{view.name}"):
            deployment = self._apps.patch_namespaced_deployment(
                view.name,
                view.namespace,
                {"metadata": {"annotations": dict(annotations)}},
                field_manager=self._field_manager,
                _content_type=_STRATEGIC_MERGE,
                _request_timeout=self._timeout,
            )
        log.info("annotated namespace=%s name=%s annotations=%s", view.namespace, view.name, dict(annotations))
        return view_of(deployment, view.container)

    def rollback(
        self, view: DeploymentView, previous_image: str, annotations: Mapping[str, str | None]
    ) -> DeploymentView:
        """Put `previous_image` back, compare-and-set against the (failed) `view`.

        The controller keeps writing status while a rollout is stuck, so `view`'s resourceVersion is often stale by
        the time we act. On Conflict the Deployment is re-read; if only status moved (same generation, image and
        autodeploy annotations) the rollback is retried once on the fresh version, else the Conflict stands:
        someone else changed the spec and the decision must be re-made.
        """
        try:
            return self.set_image(view, previous_image, annotations)
        except Conflict:
            current = self.get(view.namespace, view.name, view.container)
            if (current.generation, current.image, dict(current.annotations)) != (
                view.generation,
                view.image,
                dict(view.annotations),
            ):
                log.warning(
                    "rollback refused: deployment changed namespace=%s name=%s image=%s generation=%d",
                    view.namespace,
                    view.name,
                    current.image,
                    current.generation,
                )
                raise
            return self.set_image(current, previous_image, annotations)

    def watch_rollout(
        self, namespace: str, name: str, container: str, *, timeout: float, poll: float = 0.5
    ) -> DeploymentView:
        """The first view whose rollout is "complete" or "failed" once the controller caught up with the spec.

        Temporary when `timeout` passes first. Watches the one Deployment (from a get's resourceVersion, so only get
        and watch are needed); when the watch is refused or breaks, falls back to polling every `poll` seconds.
        """
        deadline = time.monotonic() + timeout
        use_watch = True
        last: DeploymentView | None = None
        while True:
            try:
                last = self.get(namespace, name, container)
            except Temporary as e:  # an API server blip is not the rollout's fault: keep trying until the deadline
                log.warning("rollout read failed namespace=%s name=%s error=%s", namespace, name, e)
            else:
                if last.settled:
                    return last
                if use_watch:
                    try:
                        settled = self._watch(last, deadline)
                    except (Temporary, Forbidden) as e:
                        # Watch refused (no watch verb) or the stream broke: carry on by polling.
                        log.warning(
                            "rollout watch degraded to polling namespace=%s name=%s error=%s", namespace, name, e
                        )
                        use_watch = False
                    else:
                        if settled is not None:
                            return settled
                        if time.monotonic() < deadline:
                            continue  # the stream ended early (server timeout, expired version): re-read, re-watch
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise Temporary(f"rollout of {namespace}/{name} not settled after {timeout}s; last seen {last}")
            time.sleep(min(poll, remaining))

    def _watch(self, start: DeploymentView, deadline: float) -> DeploymentView | None:
        """Stream changes after `start` until settled (the view) or the stream ends (None)."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        what = f"watch deployment {start.namespace}/{start.name}"
        stream = watch.Watch()  # type: ignore[no-untyped-call]
        events: Any = None
        try:
            with translated(what):
                events = stream.stream(  # type: ignore[no-untyped-call]
                    self._apps.list_namespaced_deployment,
                    start.namespace,
                    field_selector=f"metadata.name={start.name}",
                    resource_version=start.resource_version,
                    # The server ends the stream at the deadline; the client read timeout only catches a dead server.
                    timeout_seconds=max(1, int(remaining + 0.999)),
                    _request_timeout=(self._timeout, remaining + self._timeout),
                )
                for event in events:
                    if event["type"] == "DELETED":
                        raise NotFound(f"{what}: deleted during the rollout", status=404, reason="NotFound")
                    if event["type"] not in ("ADDED", "MODIFIED"):
                        continue  # BOOKMARK
                    view = view_of(event["object"], start.container)
                    log.debug(
                        "rollout event namespace=%s name=%s generation=%d observed=%d updated=%d available=%d "
                        "rollout=%s",
                        view.namespace,
                        view.name,
                        view.generation,
                        view.observed_generation,
                        view.updated_replicas,
                        view.available_replicas,
                        view.rollout,
                    )
                    if view.settled:
                        return view
                    if time.monotonic() >= deadline:
                        return None
        except Permanent as e:
            if e.status == 410:  # our resourceVersion left the watch cache window: a fresh get restarts from now
                return None
            raise
        finally:
            if events is not None:
                events.close()  # releases the HTTP connection now rather than when the generator is collected
        return None
