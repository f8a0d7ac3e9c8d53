"""What the deploy agent sees of a Deployment: one container's image, replica counts, the rollout's state."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from streams.adapters.kubernetes_errors import Invalid

ANNOTATION_PREFIX = "autodeploy.dev/"
Rollout = Literal["complete", "progressing", "failed"]

# The API server only checks that a template's image is non-empty: "UPPER CASE:bad tag" and " padded " are accepted,
# and pods would then fail to pull (InvalidImageName). So references are checked here, with the grammar of
# github.com/distribution/reference (lowercase path components, optional registry host[:port], tag, digest).
_PATH_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_DOMAIN = (
    r"(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])"
)
_IMAGE_REFERENCE = re.compile(
    rf"(?:{_DOMAIN}(?::[0-9]+)?/)?{_PATH_COMPONENT}(?:/{_PATH_COMPONENT})*"
    r"(?::[\w][\w.-]{0,127})?"
    r"(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?"
)


@dataclass(frozen=True)
class DeploymentView:
    """What the deploy agent needs to decide, read from one version of a Deployment."""

    namespace: str
    name: str
    container: str
    image: str  # the target container's current image
    resource_version: str
    generation: int
    observed_generation: int
    replicas: int  # desired (spec.replicas)
    total_replicas: int  # status.replicas: pods of every ReplicaSet, old ones still terminating included
    updated_replicas: int
    ready_replicas: int
    available_replicas: int
    unavailable_replicas: int
    progressing: str | None  # status of the Progressing condition: "True", "False" or None
    progressing_reason: str | None  # "NewReplicaSetAvailable", "ReplicaSetUpdated", "ProgressDeadlineExceeded", ...
    annotations: Mapping[str, str]  # only autodeploy's own (prefix "autodeploy.dev/")
    rollout: Rollout

    @property
    def settled(self) -> bool:
        """The controller has seen the latest spec and the rollout has finished, one way or the other."""
        return self.rollout != "progressing"


def derive_rollout(
    *,
    generation: int,
    observed_generation: int,
    replicas: int,
    total_replicas: int,
    updated_replicas: int,
    available_replicas: int,
    progressing_reason: str | None,
) -> Rollout:
    """`kubectl rollout status` semantics; a status the controller wrote for an older spec proves nothing."""
    if observed_generation < generation:
        # Conditions may still describe the previous template (even a ProgressDeadlineExceeded that the patch cures).
        return "progressing"
    if progressing_reason == "ProgressDeadlineExceeded":
        return "failed"
    if updated_replicas == replicas and available_replicas == replicas and total_replicas == updated_replicas:
        return "complete"
    return "progressing"


def view_of(deployment: Any, container: str) -> DeploymentView:
    """The view of one `V1Deployment`; Invalid when it has no container named `container`."""
    meta, spec, status = deployment.metadata, deployment.spec, deployment.status
    images = {c.name: c.image for c in spec.template.spec.containers}
    if container not in images:
        raise Invalid(f"container {container} not in deployment {meta.namespace}/{meta.name}", reason="Invalid")
    progressing = next((c for c in (status and status.conditions) or [] if c.type == "Progressing"), None)
    counts = {
        "generation": meta.generation or 0,
        "observed_generation": (status and status.observed_generation) or 0,
        # spec.replicas is defaulted to 1 by the API server; None only in hand-built objects.
        "replicas": 1 if spec.replicas is None else spec.replicas,
        "total_replicas": (status and status.replicas) or 0,
        "updated_replicas": (status and status.updated_replicas) or 0,
        "available_replicas": (status and status.available_replicas) or 0,
    }
    reason = progressing.reason if progressing else None
    return DeploymentView(
        namespace=meta.namespace,
        name=meta.name,
        container=container,
        image=images[container] or "",
        resource_version=meta.resource_version,
        ready_replicas=(status and status.ready_replicas) or 0,
        unavailable_replicas=(status and status.unavailable_replicas) or 0,
        progressing=progressing.status if progressing else None,
        progressing_reason=reason,
        annotations=MappingProxyType(
            {k: v for k, v in (meta.annotations or {}).items() if k.startswith(ANNOTATION_PREFIX)}
        ),
        rollout=derive_rollout(progressing_reason=reason, **counts),
        **counts,
    )


def check_image(image: str) -> None:
    if not _IMAGE_REFERENCE.fullmatch(image):
        raise Invalid(f"image {image!r} is not a valid image reference", reason="Invalid")
