"""Environments a commit is promoted through, and the gates of each. Pure data, no I/O.

A service lists its environments in order (staging, then production). The first takes the commits that are ready by
the readiness rules; each later one takes a commit once every gate of that environment holds:

- `after`: the commit completed its rollout in an earlier environment (and passed that environment's verification,
  when it has one);
- `soak`: it stayed there that long, counted from the rollout's completion, without being rolled back;
- `approval`: a person approved the commit for this environment.

`verify` is not a gate into its environment but a check after the rollout there: the deploy agent evaluates the
queries over the window and rolls back when one fails. A commit rolled back (or failing verification) in an
environment is rejected for every later one.
"""

from __future__ import annotations

import math
import operator
import string
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Final

__all__ = [
    "QUERY_FIELDS",
    "Comparison",
    "EnvironmentPolicy",
    "Inconclusive",
    "KubernetesTarget",
    "VerifyCheck",
]

# What a verify query may name: $service, $environment, $namespace, $commit and $image (string.Template's `$`,
# because PromQL's own braces would clash with str.format's).
QUERY_FIELDS: Final = frozenset({"service", "environment", "namespace", "commit", "image"})


# Slots: a policy file may hold 20,000 services (docs/performance.md, the policy's memory).
@dataclass(frozen=True, slots=True)
class KubernetesTarget:
    namespace: str
    deployment: str
    container: str
    context: str | None = None  # a kubeconfig context: another cluster (None: the agent's own)


class Inconclusive(StrEnum):
    """What a verify check does when Prometheus cannot answer (unreachable, a query error, no series)."""

    HOLD = "hold"  # keep asking until the window's end, then hold the commit there: neither passed nor rolled back
    FAIL = "fail"  # count it as failed: roll back


_OPERATORS: Final[Mapping[str, Callable[[float, float], bool]]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    ">": operator.gt,
}


@dataclass(frozen=True, slots=True)
class Comparison:
    """`< 0.05`: what every value of the query's answer must satisfy."""

    operator: str
    threshold: float

    @classmethod
    def parse(cls, text: str) -> Comparison:
        stripped = text.strip()
        for symbol in _OPERATORS:  # two-character operators first: "<=" is not "<" then "=0.05"
            if stripped.startswith(symbol):
                number = stripped[len(symbol) :].strip()
                try:
                    threshold = float(number)
                except ValueError:
                    break
                if math.isfinite(threshold):
                    return cls(symbol, threshold)
                break
        raise ValueError(f"must be a comparison such as '< 0.05' or '>= 0.99' ({', '.join(_OPERATORS)}), got {text!r}")

    def holds(self, value: float) -> bool:
        """NaN (0/0 in PromQL: no traffic) satisfies nothing: a check that cannot tell never passes."""
        return not math.isnan(value) and _OPERATORS[self.operator](value, self.threshold)

    def __str__(self) -> str:
        return f"{self.operator} {self.threshold:g}"


@dataclass(frozen=True, slots=True)
class VerifyCheck:
    name: str
    query: str  # PromQL; $service, $environment, $namespace, $commit and $image are filled in
    condition: Comparison
    window: timedelta  # evaluated from the rollout's completion until this much later
    inconclusive: Inconclusive = Inconclusive.HOLD

    def render(self, **fields: str) -> str:
        """The query for one rollout; a field not given stays as written (the policy's parser refuses unknown ones)."""
        return string.Template(self.query).safe_substitute(fields)


@dataclass(frozen=True, slots=True)
class EnvironmentPolicy:
    name: str
    target: KubernetesTarget
    after: str | None = None  # the earlier environment whose completed (and verified) rollout is required
    soak: timedelta | None = None  # how long the commit must have run in `after`, from its rollout's completion
    approval: bool = False  # a person must approve the commit for this environment
    verify: tuple[VerifyCheck, ...] = ()

    @property
    def gated(self) -> bool:
        """Whether anything but the readiness rules holds a commit back from this environment."""
        return self.after is not None or self.approval

    @property
    def verify_window(self) -> timedelta:
        return max((check.window for check in self.verify), default=timedelta(0))
