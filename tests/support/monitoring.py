"""The queries autodeploy's dashboards and alerts run: collected from k8s/ (Grafana dashboard JSON, inline or in a
ConfigMap, and PrometheusRules)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from streams.config import REPO_ROOT


@dataclass
class Monitoring:
    dashboard_queries: list[tuple[str, str]] = field(default_factory=list)  # (where, expr)
    rule_groups: list[dict[str, Any]] = field(default_factory=list)  # PrometheusRule spec.groups, as Prometheus reads
    sources: list[Path] = field(default_factory=list)

    def alerts(self) -> list[dict[str, Any]]:
        return [r for g in self.rule_groups for r in g.get("rules", []) if "alert" in r]


def _exprs(node: Any, where: str) -> Iterator[tuple[str, str]]:
    if isinstance(node, dict):
        title = node.get("title")
        here = f"{where} / {title}" if isinstance(title, str) else where
        for key, value in node.items():
            if key == "expr" and isinstance(value, str) and value.strip():
                yield here, value
            else:
                yield from _exprs(value, here)
    elif isinstance(node, list):
        for item in node:
            yield from _exprs(item, where)


def _dashboard(doc: Any) -> bool:
    return isinstance(doc, dict) and isinstance(doc.get("panels"), list)


def _add(found: Monitoring, doc: Any, path: Path) -> None:
    if _dashboard(doc):
        found.dashboard_queries.extend(_exprs(doc["panels"], path.name))
        found.sources.append(path)
    elif isinstance(doc, dict) and doc.get("kind") == "PrometheusRule":
        found.rule_groups.extend(doc.get("spec", {}).get("groups", []))
        found.sources.append(path)
    elif isinstance(doc, dict) and doc.get("kind") == "ConfigMap":
        for name, text in (doc.get("data") or {}).items():
            if name.endswith(".json"):
                inner = json.loads(text)
                if _dashboard(inner):
                    found.dashboard_queries.extend(_exprs(inner["panels"], f"{path.name}:{name}"))
                    found.sources.append(path)


def collect(root: Path) -> Monitoring:
    found = Monitoring()
    for path in sorted(root.rglob("*")):
        if path.suffix == ".json":
            _add(found, json.loads(path.read_text()), path)
        elif path.suffix in (".yaml", ".yml"):
            for doc in yaml.safe_load_all(path.read_text()):
                _add(found, doc, path)
    return found


def autodeploy_monitoring() -> Monitoring:
    """The one dashboard and the one rule set in k8s/ (the test has no stand-ins: a missing file is an error)."""
    found = collect(REPO_ROOT / "k8s")
    if not found.dashboard_queries or not found.rule_groups:
        raise FileNotFoundError(f"k8s/ lacks a Grafana dashboard or a PrometheusRule (found: {found.sources})")
    return found


_GRAFANA_RANGES = re.compile(r"\$\{?__(rate_interval|interval|range)\}?")
_GRAFANA_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")


def grafana_to_promql(expr: str, range_: str = "5m") -> str:
    """Grafana's built-in ranges become `range_`; a template variable (`$group`, `${group}`) matches anything."""
    expr = _GRAFANA_RANGES.sub(range_, expr)
    return _GRAFANA_VARIABLE.sub(".*", expr)


def comparisons_as_bool(expr: str) -> str:
    """`a > 1` filters to the series that fire now; `a > bool 1` keeps every series (0 or 1), so a query that
    returns nothing means its metrics are missing, not that the alert is quiet. Label matchers are left alone."""
    out, i, braces, quote = [], 0, 0, ""
    while i < len(expr):
        c = expr[i]
        if quote:
            out.append(c)
            if c == "\\":
                out.append(expr[i + 1])
                i += 1
            elif c == quote:
                quote = ""
        elif c in "\"'`":
            quote = c
            out.append(c)
        elif c == "{":
            braces += 1
            out.append(c)
        elif c == "}":
            braces -= 1
            out.append(c)
        elif braces == 0 and (op := _comparison(expr, i)):
            rest = expr[i + len(op) :]
            out.append(op if rest.lstrip().startswith("bool") else f"{op} bool")
            i += len(op)
            continue
        else:
            out.append(c)
        i += 1
    return "".join(out)


def _comparison(expr: str, i: int) -> str:
    for op in ("==", "!=", ">=", "<=", ">", "<"):
        if expr.startswith(op, i):
            return op
    return ""


def prometheus_rule_file(groups: list[dict[str, Any]], path: Path, for_: str | None = None) -> Path:
    """The PrometheusRule's groups as a Prometheus rule file; `for_` replaces every alert's `for` (tests cannot wait
    the production windows)."""
    rules = []
    for group in groups:
        copy = {**group, "rules": [dict(r) for r in group.get("rules", [])]}
        for rule in copy["rules"]:
            if for_ is not None and "alert" in rule:
                rule["for"] = for_
        rules.append(copy)
    path.write_text(yaml.safe_dump({"groups": rules}, sort_keys=False))
    return path
