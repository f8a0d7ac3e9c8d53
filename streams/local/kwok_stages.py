"""kwok stage file: kwokctl's default node and pod stages, plus one that keeps marked pods Running but never Ready.

kwok applies a stage whose selector matches a resource; when several match it picks one at random (by weight,
`pkg/utils/lifecycle/lifecycle.go` Match), so the default pod-ready stage is narrowed to unmarked pods rather
than relying on order. Selector keys are gojq queries; `In` matches when any output equals a value, booleans
compared as "true"/"false" (`pkg/utils/expression/selector.go`).
"""

from __future__ import annotations

from collections.abc import Mapping

# A pod is "marked" when any container image has this tag, e.g. `registry.example/app:never-ready`.
UNREADY_IMAGE_TAG = "never-ready"
MARKED_QUERY = f'.spec.containers.[] | .image | endswith(":{UNREADY_IMAGE_TAG}")'
DEFAULT_STAGE_ORDER = ("node-initialize", "node-heartbeat-with-lease", "pod-ready", "pod-complete", "pod-delete")

_SELECTOR_HEAD = "  selector:\n    matchExpressions:\n"
_NOT_MARKED = f"""    - key: '{MARKED_QUERY}'
      operator: 'NotIn'
      values:
      - 'true'
"""

CUSTOM_STAGE = (
    """apiVersion: kwok.x-k8s.io/v1alpha1
kind: Stage
metadata:
  name: pod-running-never-ready
spec:
  resourceRef:
    apiGroup: v1
    kind: Pod
  selector:
    matchExpressions:
    - key: '.metadata.deletionTimestamp'
      operator: 'DoesNotExist'
    - key: '.status.phase'
      operator: 'In'
      values:
      - 'Pending'
"""
    + _NOT_MARKED.replace("'NotIn'", "'In'")
    + """  next:
    statusTemplate: |
      {{ $now := Now }}

      conditions:
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: Initialized
      - lastTransitionTime: {{ $now | Quote }}
        status: "True"
        type: PodScheduled
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: Ready
      - lastTransitionTime: {{ $now | Quote }}
        reason: ContainersNotReady
        status: "False"
        type: ContainersReady

      containerStatuses:
      {{ range .spec.containers }}
      - image: {{ .image | Quote }}
        name: {{ .name | Quote }}
        ready: false
        started: true
        restartCount: 0
        state:
          running:
            startedAt: {{ $now | Quote }}
      {{ end }}
      {{ $hostIPs := NodeIPsWith .spec.nodeName }}
      {{ with $hostIPs }}
      hostIP: {{ index . 0 | Quote }}
      hostIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      {{ $podIPs := PodIPsWith .spec.nodeName ( or .spec.hostNetwork false ) ( or .metadata.uid "" ) """
    """( or .metadata.name "" ) ( or .metadata.namespace "" ) }}
      {{ with $podIPs }}
      podIP: {{ index . 0 | Quote }}
      podIPs:
      {{ range . }}
      - ip: {{ . | Quote }}
      {{ end }}
      {{ end }}
      phase: Running
      startTime: {{ $now | Quote }}
"""
)


def exclude_marked(stage: str) -> str:
    """Add 'no container image is marked' as the first requirement of a stage's selector."""
    if _SELECTOR_HEAD not in stage:
        raise ValueError("stage has no `selector.matchExpressions` block in the expected layout")
    return stage.replace(_SELECTOR_HEAD, _SELECTOR_HEAD + _NOT_MARKED, 1)


def stages_yaml(defaults: Mapping[str, str]) -> str:
    """One multi-document stage file for `kwok --config`: the defaults (pod-ready narrowed) and the custom stage."""
    missing = [name for name in DEFAULT_STAGE_ORDER if name not in defaults]
    if missing:
        raise ValueError(f"missing default kwok stages: {', '.join(missing)}")
    docs = [exclude_marked(defaults[name]) if name == "pod-ready" else defaults[name] for name in DEFAULT_STAGE_ORDER]
    docs.append(CUSTOM_STAGE)
    return "---\n".join(doc if doc.endswith("\n") else doc + "\n" for doc in docs)
