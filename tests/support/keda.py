"""The replica counts KEDA and the HorizontalPodAutoscaler it creates would give the worker StatefulSet, computed from
k8s/base/worker/scaledobject.yaml and a consumer group's real offsets. No KEDA controller runs where the tests run
(no Docker; the cached control plane has no KEDA operator), so the fault suite does its arithmetic here and steps
worker processes to the counts; whatever the manifest says, the tests follow.

KEDA's kafka scaler (kedacore/keda pkg/scalers/kafka_scaler.go; https://keda.sh/docs/2.13/scalers/apache-kafka/):
with no `topic`, the topics are those the group has committed offsets on, every partition of them; a partition's
lag is its end offset minus the group's commit (no commit: the end offset with `offsetResetPolicy: earliest`, 1 with
`latest`); the metric is the lags' sum, cut to `partitions x lagThreshold` unless `allowIdleConsumers` (to the
partitions with lag with `limitToPartitionsWithLag`). The metric's target is an AverageValue of `lagThreshold`.

The HPA (https://kubernetes.io/docs/tasks/run-application/horizontal-pod-autoscale/#algorithm-details and
pkg/controller/podautoscaler/horizontal.go): every sync period (15 s) desired = ceil(metric / lagThreshold) unless
metric / (lagThreshold x current) is within the 10 % tolerance of 1; then the stabilization windows (a scale-down
takes the highest recommendation of its window, a scale-up the lowest of its own), then the rate policies (Pods or
Percent per period, counted from the replicas at the period's start), then minReplicaCount..maxReplicaCount.
`behavior.scaleUp` left out means the controller's default: no window, the larger of +4 pods and +100 % per 15 s."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.config import REPO_ROOT

SCALED_OBJECT = REPO_ROOT / "k8s" / "base" / "worker" / "scaledobject.yaml"
SYNC_PERIOD_S = 15.0  # kube-controller-manager --horizontal-pod-autoscaler-sync-period
TOLERANCE = 0.1  # --horizontal-pod-autoscaler-tolerance

TopicPartition = tuple[str, int]


@dataclass(frozen=True)
class Policy:
    kind: str  # "Pods" or "Percent"
    value: int
    period_s: float


@dataclass(frozen=True)
class Rules:
    window_s: float
    policies: tuple[Policy, ...]
    select: str = "Max"  # Max, Min or Disabled

    @classmethod
    def parse(cls, spec: Mapping[str, Any] | None, default: Rules) -> Rules:
        if not spec:
            return default
        policies = tuple(
            Policy(p["type"], int(p["value"]), float(p["periodSeconds"])) for p in spec.get("policies", [])
        )
        return cls(
            float(spec.get("stabilizationWindowSeconds", default.window_s)),
            policies or default.policies,
            spec.get("selectPolicy", default.select),
        )


DEFAULT_UP = Rules(0.0, (Policy("Pods", 4, 15.0), Policy("Percent", 100, 15.0)))
DEFAULT_DOWN = Rules(300.0, (Policy("Percent", 100, 15.0),))


@dataclass(frozen=True)
class Scaling:
    """A ScaledObject with one kafka trigger, as KEDA hands it to the HPA."""

    target: str
    min_replicas: int
    max_replicas: int
    group: str
    lag_threshold: int
    allow_idle_consumers: bool
    limit_to_partitions_with_lag: bool
    offset_reset_earliest: bool
    up: Rules
    down: Rules

    @classmethod
    def load(cls, path: Path = SCALED_OBJECT) -> Scaling:
        spec = yaml.safe_load(path.read_text())["spec"]
        (trigger,) = [t for t in spec["triggers"] if t["type"] == "kafka"]
        meta = trigger["metadata"]
        behavior = spec.get("advanced", {}).get("horizontalPodAutoscalerConfig", {}).get("behavior", {})

        def flag(name: str) -> bool:
            return str(meta.get(name, "false")).lower() == "true"

        return cls(
            target=spec["scaleTargetRef"]["name"],
            min_replicas=int(spec.get("minReplicaCount", 0)),
            max_replicas=int(spec.get("maxReplicaCount", 100)),
            group=meta["consumerGroup"],
            lag_threshold=int(meta.get("lagThreshold", 10)),
            allow_idle_consumers=flag("allowIdleConsumers"),
            limit_to_partitions_with_lag=flag("limitToPartitionsWithLag"),
            offset_reset_earliest=meta.get("offsetResetPolicy", "latest") == "earliest",
            up=Rules.parse(behavior.get("scaleUp"), DEFAULT_UP),
            down=Rules.parse(behavior.get("scaleDown"), DEFAULT_DOWN),
        )

    def metric(self, ends: Mapping[TopicPartition, int], committed: Mapping[TopicPartition, int]) -> int:
        """The kafka scaler's metric: `ends` holds every partition of the topics the group has commits on."""
        total = with_lag = 0
        for tp, end in ends.items():
            # No commit yet: where the group would start reading, as offsetResetPolicy says.
            unread = end if self.offset_reset_earliest else 1
            lag = end - committed[tp] if tp in committed else unread
            total += lag
            with_lag += lag > 0
        if not self.allow_idle_consumers or self.limit_to_partitions_with_lag:
            bound = with_lag if self.limit_to_partitions_with_lag and with_lag else len(ends)
            if total // self.lag_threshold > bound:
                total = bound * self.lag_threshold
        return total


@dataclass
class Autoscaler:
    """The HPA controller's loop for one target, on a clock the caller gives (seconds; a test runs it faster)."""

    scaling: Scaling
    replicas: int
    recommendations: list[tuple[float, int]] = field(default_factory=list)
    ups: list[tuple[float, int]] = field(default_factory=list)  # (when, pods added)
    downs: list[tuple[float, int]] = field(default_factory=list)  # (when, pods removed)

    def recommend(self, metric: int) -> int:
        """The replica calculator for an external AverageValue metric."""
        threshold = self.scaling.lag_threshold
        if abs(1.0 - metric / (threshold * self.replicas)) <= TOLERANCE:
            return self.replicas
        return math.ceil(metric / threshold)

    def sync(self, metric: int, now: float) -> int:
        """One sync period: the new replica count (also kept as `replicas`)."""
        desired = self._stabilized(self.recommend(metric), now)
        desired = self._rate_limited(desired, now)
        if desired > self.replicas:
            self.ups.append((now, desired - self.replicas))
        elif desired < self.replicas:
            self.downs.append((now, self.replicas - desired))
        self.replicas = desired
        return desired

    def _stabilized(self, desired: int, now: float) -> int:
        up = down = desired
        for at, recommended in self.recommendations:
            if at > now - self.scaling.up.window_s:
                up = min(up, recommended)
            if at > now - self.scaling.down.window_s:
                down = max(down, recommended)
        longest = max(self.scaling.up.window_s, self.scaling.down.window_s)
        self.recommendations = [(at, r) for at, r in self.recommendations if at > now - longest]
        self.recommendations.append((now, desired))
        return min(max(self.replicas, up), down)

    def _changed_within(self, events: list[tuple[float, int]], period_s: float, now: float) -> int:
        return sum(n for at, n in events if at > now - period_s)

    def _period_start(self, policy: Policy, now: float) -> int:
        added = self._changed_within(self.ups, policy.period_s, now)
        return self.replicas - added + self._changed_within(self.downs, policy.period_s, now)

    def _rate_limited(self, desired: int, now: float) -> int:
        s = self.scaling
        if desired > self.replicas:
            limits = [
                self._period_start(p, now) + p.value
                if p.kind == "Pods"
                else math.ceil(self._period_start(p, now) * (1 + p.value / 100))
                for p in s.up.policies
            ]
            limit = self.replicas if s.up.select == "Disabled" else (min if s.up.select == "Min" else max)(limits)
            return min(desired, s.max_replicas, max(limit, self.replicas))
        if desired < self.replicas:
            limits = [
                self._period_start(p, now) - p.value
                if p.kind == "Pods"
                else int(self._period_start(p, now) * (1 - p.value / 100))
                for p in s.down.policies
            ]
            limit = self.replicas if s.down.select == "Disabled" else (max if s.down.select == "Min" else min)(limits)
            return max(desired, s.min_replicas, min(limit, self.replicas))
        return min(max(desired, s.min_replicas), s.max_replicas)
