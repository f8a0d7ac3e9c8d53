"""autodeploy's own view of Kubernetes API failures: what to retry, what to give up on, and lost compare-and-sets.

Callers never see `kubernetes.client.exceptions.ApiException` or urllib3 errors; `translated()` turns them into the
classes below (`raise ... from`, so the original stays on `__cause__`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import urllib3
from kubernetes.client.exceptions import ApiException

log = logging.getLogger(__name__)

# 408/429/5xx: the server (or something in front of it) is overloaded or restarting; the same request can succeed later.
_TEMPORARY_STATUSES = frozenset({408, 429})


class KubernetesError(RuntimeError):
    """A Kubernetes API call failed. `status`: the HTTP status when the server answered; `reason`: its Status reason."""

    def __init__(self, message: str, *, status: int | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason


class Temporary(KubernetesError):
    """Unreachable, timed out, 5xx or 429: retry with backoff."""


class Permanent(KubernetesError):
    """The server understood and refused (400/401/403/404/422): retrying the same request will not help."""


class Forbidden(Permanent):
    """403: RBAC does not allow this identity the verb in that namespace."""


class NotFound(Permanent):
    """404: the namespace or the Deployment does not exist."""


class Invalid(Permanent):
    """422/400, or refused before sending (unknown container, malformed image reference, foreign annotation)."""


class Conflict(KubernetesError):
    """409: the object changed since it was read; the compare-and-set lost. Re-read, re-decide, maybe try again."""


def _status_body(error: Any) -> tuple[str | None, str | None]:
    """(reason, message) from the `Status` object the API server sends with most errors."""
    try:
        body = json.loads(error.body or "")
    except (TypeError, ValueError):
        return None, None
    if not isinstance(body, dict):
        return None, None
    reason, message = body.get("reason"), body.get("message")
    return (reason if isinstance(reason, str) else None), (message if isinstance(message, str) else None)


def from_api_exception(error: Any, what: str) -> KubernetesError:
    """Classify an `ApiException` raised while doing `what` (e.g. "patch deployment shop/web")."""
    status = error.status if isinstance(error.status, int) else None
    reason, message = _status_body(error)
    reason = reason or (str(error.reason) if error.reason else None)
    text = f"{what}: {status} {reason or ''}: {message or error.reason or 'no message'}"
    kind: type[KubernetesError]
    if status is None or status == 0:
        kind = Temporary  # the client never got an HTTP answer
    elif status == 409:
        kind = Conflict
    elif status in _TEMPORARY_STATUSES or status >= 500:
        kind = Temporary
    elif status == 403:
        kind = Forbidden
    elif status == 404:
        kind = NotFound
    elif status in (400, 422):
        kind = Invalid
    else:
        kind = Permanent
    return kind(text, status=status, reason=reason)


@contextmanager
def translated(what: str) -> Iterator[None]:
    """Run a client call, raising only `KubernetesError` subclasses."""
    try:
        yield
    except ApiException as e:
        raise from_api_exception(e, what) from e
    except (urllib3.exceptions.HTTPError, OSError) as e:
        # Connection refused, TLS failures, read/connect timeouts (urllib3 wraps most of them in MaxRetryError).
        raise Temporary(f"{what}: API server unreachable: {e}") from e
