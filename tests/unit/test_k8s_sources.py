"""The manifests in k8s/ run real `autodeploy` commands with settings the code reads (no cluster, no kustomize)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml

from streams.adapters.key_directory_file import load_key_directory
from streams.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "k8s"
# Commands and settings a manifest may name before the code has them (none now).
PENDING_COMMANDS: set[str] = set()
PENDING_SETTINGS: set[str] = set()


def documents() -> Iterator[dict[str, Any]]:
    for path in sorted(K8S.rglob("*.yaml")):
        if path.name != "kustomization.yaml" and "config" not in path.parts:
            yield from (d for d in yaml.safe_load_all(path.read_text()) if d)


def containers() -> Iterator[dict[str, Any]]:
    for document in documents():
        template = document.get("spec", {}).get("template", {})
        yield from template.get("spec", {}).get("containers", [])


def settings_named() -> set[str]:
    """Environment variable names the manifests set, in containers and in the generated ConfigMap."""
    names = {env["name"] for container in containers() for env in container.get("env", [])}
    for kustomization in K8S.rglob("kustomization.yaml"):
        for generator in yaml.safe_load(kustomization.read_text()).get("configMapGenerator", []):
            names |= {literal.split("=", 1)[0] for literal in generator.get("literals", [])}
    return names


def test_every_container_runs_a_real_command_with_real_flags() -> None:
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
    seen = set()
    for container in containers():
        assert container["image"] == "ghcr.io/autodeploy/autodeploy", "overlays set the tag"
        args = container["args"]
        seen.add(args[0])
        if args[0] in PENDING_COMMANDS and args[0] not in commands:
            continue
        parser.parse_args(args)  # exits (SystemExit) on an unknown command or flag
    assert seen == {"webhooks", "worker", "deploy-agent", "lag-exporter", "board"}


def test_every_setting_is_one_the_code_reads() -> None:
    source = "\n".join(path.read_text() for path in (ROOT / "streams").rglob("*.py"))
    unknown = {name for name in settings_named() if f'"{name}"' not in source} - PENDING_SETTINGS
    assert unknown == set()
    assert "AUTODEPLOY_WORKER_INSTANCE_ID" in settings_named()


def test_secrets_are_only_referenced() -> None:
    assert not [d for d in documents() if d["kind"] == "Secret"]
    for container in containers():
        for env in container.get("env", []):
            if re.search(r"SECRET|TOKEN|PASSWORD", env["name"]):
                assert "value" not in env, env["name"]
                assert set(env["valueFrom"]) == {"secretKeyRef"}, env["name"]


def test_every_pod_is_locked_down() -> None:
    for document in documents():
        pod = document.get("spec", {}).get("template", {}).get("spec")
        if pod is None:
            continue
        assert pod["securityContext"]["runAsNonRoot"] is True, document["metadata"]["name"]
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False
            assert context["readOnlyRootFilesystem"] is True
            assert context["capabilities"] == {"drop": ["ALL"]}
            assert "memory" in container["resources"]["limits"]
            assert container.get("readinessProbe") and container.get("livenessProbe"), container["name"]


def test_each_process_is_its_own_principal_on_the_broker() -> None:
    """One Secret per process, as topics/acls.yaml has one principal per process; the protocol for all in the
    ConfigMap."""
    secrets = {}
    for container in containers():
        env = [e for e in container.get("env", []) if e["name"].startswith("KAFKA_SASL_")]
        refs = {e["name"]: e["valueFrom"]["secretKeyRef"]["name"] for e in env}
        assert set(refs) == {"KAFKA_SASL_USERNAME", "KAFKA_SASL_PASSWORD"}, container["name"]
        assert len(set(refs.values())) == 1, container["name"]
        secrets[container["args"][0]] = next(iter(refs.values()))
    processes = ("webhooks", "worker", "deploy-agent", "lag-exporter", "board")
    assert secrets == {c: f"autodeploy-kafka-{c}" for c in processes}
    assert {"KAFKA_SECURITY_PROTOCOL", "KAFKA_SASL_MECHANISM"} <= settings_named()


def _pod_of(command: str) -> dict[str, Any]:
    for document in documents():
        pod = document.get("spec", {}).get("template", {}).get("spec")
        if pod and pod["containers"][0]["args"][0] == command:
            return dict(pod)
    raise AssertionError(f"no pod runs {command}")


def test_each_signing_process_mounts_its_own_key_and_the_verifiers_the_directory() -> None:
    board = _pod_of("board")["containers"][0]
    assert "AUTODEPLOY_SIGNING_KEY" not in {e["name"] for e in board["env"]}, "the board signs nothing"
    assert "/etc/autodeploy-keys" in {m["mountPath"] for m in board["volumeMounts"]}, "it shows verified events only"
    for command in ("webhooks", "worker", "deploy-agent"):
        pod = _pod_of(command)
        container = pod["containers"][0]
        env = {e["name"]: e for e in container["env"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        key_file = Path(env["AUTODEPLOY_SIGNING_KEY"]["value"])
        secret = volumes[mounts[str(key_file.parent)]]["secret"]
        assert secret["secretName"] == f"autodeploy-signing-{command}"
        assert secret["defaultMode"] & 0o007 == 0, "a private key readable by others"
        assert env["AUTODEPLOY_SIGNING_KEY_ID"]["valueFrom"]["secretKeyRef"]["name"] == f"autodeploy-signing-{command}"
        verifies = command != "webhooks"
        assert ("/etc/autodeploy-keys" in mounts) is verifies, command
        if verifies:
            assert volumes[mounts["/etc/autodeploy-keys"]]["configMap"]["name"] == "autodeploy-keys"
    assert "AUTODEPLOY_KEY_DIRECTORY" in settings_named()


def test_the_shipped_key_directory_is_one_the_verifiers_load() -> None:
    kustomization = yaml.safe_load((K8S / "base" / "kustomization.yaml").read_text())
    generator = next(g for g in kustomization["configMapGenerator"] if g["name"] == "autodeploy-keys")
    assert generator["options"]["disableNameSuffixHash"] is True, (
        "verifiers reload in place; a new name needs a rollout"
    )
    (entry,) = generator["files"]
    name, _, source = entry.partition("=")
    literal = "AUTODEPLOY_KEY_DIRECTORY=/etc/autodeploy-keys/" + name
    assert literal in next(g for g in kustomization["configMapGenerator"] if g["name"] == "autodeploy-env")["literals"]
    trust = load_key_directory(K8S / "base" / source)
    assert len(trust.keys) == 0  # fails closed until an operator lists the keys
