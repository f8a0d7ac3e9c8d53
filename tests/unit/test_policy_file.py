"""autodeploy.yaml: the file is read at the edge (adapters.policy_file), its document checked in the domain
(domain.policy_document), and every kind of mistake is an error that names its field."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from streams.adapters.policy_file import load_policies
from streams.config import REPO_ROOT, Settings
from streams.domain.environments import EnvironmentPolicy
from streams.domain.facts import CheckId, CheckKind
from streams.domain.policy import KubernetesTarget, ServicePolicy, normalise_repository
from streams.domain.policy_document import PolicyError, parse_duration, parse_policies

DEMO = REPO_ROOT / "autodeploy.yaml"

SHOP: dict[str, Any] = {
    "repository": "github.com/acme/shop",
    "branch": "main",
    "required_checks": [{"circleci": "build-test"}, {"github_actions": "lint"}],
    "image": "ghcr.io/acme/shop:{sha}",
    "kubernetes": {"namespace": "shop", "deployment": "shop", "container": "app"},
}


def doc(**changes: Any) -> dict[str, Any]:
    """A valid one-service document with `changes` applied to the service (a value of None removes the key)."""
    service = copy.deepcopy(SHOP)
    for key, value in changes.items():
        if value is None:
            service.pop(key, None)
        else:
            service[key] = value
    return {"services": {"shop": service}}


def test_the_demo_file_loads() -> None:
    policies = load_policies(DEMO)
    checks = (CheckId(CheckKind.CIRCLECI, "build-test"), CheckId(CheckKind.GITHUB_ACTIONS, "lint"))
    staging = KubernetesTarget("shop", "shop-staging", "app")
    shop, worker = policies.services
    assert shop == ServicePolicy(
        "shop",
        "github.com/acme/shop",
        "main",
        checks,
        "ghcr.io/acme/shop:{sha}",
        None,
        staging,
        "staging",
        timedelta(hours=2),
        promotion=shop.promotion,
    )
    [verify] = shop.promotion[0].verify
    assert verify.render(service="shop", environment="staging", namespace="shop", commit="c", image="i:c") == (
        'max(autodeploy_demo_error_ratio{namespace="shop", image="i:c"})'
    )
    assert shop.promotion == (
        EnvironmentPolicy("staging", staging, verify=(verify,)),
        EnvironmentPolicy(
            "production", KubernetesTarget("shop", "shop", "app"), after="staging", soak=timedelta(seconds=10)
        ),
    )
    assert worker == ServicePolicy(
        "shop-worker",
        "github.com/acme/shop",
        "main",
        checks,
        "ghcr.io/acme/shop-worker:{sha}",
        None,
        KubernetesTarget("shop", "shop-worker", "worker"),
        "production",
        timedelta(hours=2),
    )
    assert [s.name for s in policies.for_repository("github.com/acme/shop")] == ["shop", "shop-worker"]
    assert policies.service("shop").image_for("0123456789" * 4) == "ghcr.io/acme/shop:" + "0123456789" * 4


def test_the_settings_name_the_file() -> None:
    assert Settings.from_env({}).policy_path == DEMO
    assert Settings.from_env({"AUTODEPLOY_CONFIG": "/etc/autodeploy.yaml"}).policy_path == Path("/etc/autodeploy.yaml")


def test_defaults_and_the_other_image_source() -> None:
    [service] = parse_policies(
        doc(image=None, image_from_package="GHCR.io/Acme/Shop", required_checks=[{"check_run": "ci/unit"}]), "t"
    ).services
    assert (service.environment, service.readiness_ttl) == ("production", timedelta(hours=24))
    assert (service.image_template, service.image_from_package) == (None, "ghcr.io/acme/shop")
    assert service.image_for("a" * 40) is None


@pytest.mark.parametrize(
    ("document", "field", "problem"),
    [
        (None, "services", "is required"),
        ([], "", "must be a mapping"),
        ({"service": {}}, "service", "did you mean services?"),
        ({"services": {}}, "services", "at least one service"),
        ({"services": {"Shop": SHOP}}, "services.Shop", "[a-z0-9][a-z0-9-]*"),
        ({"services": {"shop_api": SHOP}}, "services.shop_api", "service names"),
        ({"services": {"shop": []}}, "services.shop", "must be a mapping"),
        (doc(imgae="x"), "services.shop.imgae", "did you mean image?"),
        (doc(repository=None), "services.shop.repository", "is required"),
        (doc(branch=None), "services.shop.branch", "is required"),
        (doc(required_checks=None), "services.shop.required_checks", "is required"),
        (doc(kubernetes=None), "services.shop.kubernetes", "is required"),
        (doc(repository="acme"), "services.shop.repository", "github.com/<owner>/<name>"),
        (doc(repository=42), "services.shop.repository", "github.com/<owner>/<name>"),
        (doc(branch="refs/heads/main"), "services.shop.branch", "without refs/heads/"),
        (doc(branch="feature..x"), "services.shop.branch", "a branch name"),
        (doc(branch=" main"), "services.shop.branch", "without surrounding spaces"),
        (doc(required_checks=[]), "services.shop.required_checks", "non-empty list"),
        (doc(required_checks={"circleci": "build"}), "services.shop.required_checks", "non-empty list"),
        (
            doc(required_checks=[{"circle": "build-test"}]),
            "services.shop.required_checks[0].circle",
            "must be one of circleci, github_actions, check_run, status, pipeline",
        ),
        (
            doc(required_checks=[{"circleci": "a"}, {"kind": "github_actions"}]),
            "services.shop.required_checks[1].kind",
            "must be one of",
        ),
        (doc(required_checks=["build-test"]), "services.shop.required_checks[0]", "one kind and its name"),
        (doc(required_checks=[{"circleci": "a", "status": "b"}]), "services.shop.required_checks[0]", "one kind"),
        (doc(required_checks=[{"status": ""}]), "services.shop.required_checks[0].status", "non-empty string"),
        (doc(required_checks=[{"status": 3}]), "services.shop.required_checks[0].status", "non-empty string"),
        (doc(required_checks=[{"status": "a"}, {"status": "a"}]), "services.shop.required_checks[1]", "repeats"),
        (doc(image=None), "services.shop.image", "exactly one of image and image_from_package"),
        (doc(image_from_package="ghcr.io/acme/shop"), "services.shop.image", "exactly one of"),
        (doc(image="ghcr.io/acme/shop:{commit}"), "services.shop.image", "only {sha} and {short_sha}"),
        (doc(image="ghcr.io/acme/shop:{sha!r}"), "services.shop.image", "without conversions"),
        (doc(image="ghcr.io/acme/shop:{sha:.7}"), "services.shop.image", "format specs"),
        (doc(image="ghcr.io/acme/shop:{sha"), "services.shop.image", "not a valid template"),
        (doc(image="ghcr.io/acme/shop:latest"), "services.shop.image", "must contain {sha}"),
        (doc(image="ghcr.io/Acme/shop:{sha}"), "services.shop.image", "must give an image"),
        (doc(image="shop:{sha}"), "services.shop.image", "registry first"),
        (doc(image="ghcr.io/acme/shop {sha}"), "services.shop.image", "must give an image"),
        (doc(image=None, image_from_package="ghcr.io/acme/shop:1"), "services.shop.image_from_package", "without tag"),
        (doc(image=None, image_from_package="acme/shop"), "services.shop.image_from_package", "without tag"),
        (doc(kubernetes={"namespace": "shop", "deployment": "shop"}), "services.shop.kubernetes.container", "required"),
        (
            doc(kubernetes={"namespace": "shop", "deployment": "shop", "container": "app", "replicas": 2}),
            "services.shop.kubernetes.replicas",
            "unknown key",
        ),
        (
            doc(kubernetes={"namespace": "Shop", "deployment": "shop", "container": "app"}),
            "services.shop.kubernetes.namespace",
            "DNS-1123",
        ),
        (
            doc(kubernetes={"namespace": "shop", "deployment": "shop.v2", "container": "app"}),
            "services.shop.kubernetes.deployment",
            "DNS-1123",
        ),
        (
            doc(kubernetes={"namespace": "shop", "deployment": "shop", "container": "-app"}),
            "services.shop.kubernetes.container",
            "DNS-1123",
        ),
        (
            doc(kubernetes={"namespace": "shop", "deployment": "a" * 64, "container": "app"}),
            "services.shop.kubernetes.deployment",
            "at most 63",
        ),
        (doc(environment="Prod Env"), "services.shop.environment", "a name such as production"),
        (doc(readiness_ttl="2 hours"), "services.shop.readiness_ttl", "90s, 15m, 2h or 1d"),
        (doc(readiness_ttl=7200), "services.shop.readiness_ttl", "90s, 15m, 2h or 1d"),
        (doc(readiness_ttl="0s"), "services.shop.readiness_ttl", "90s, 15m, 2h or 1d"),
        (
            {"services": {"shop": SHOP, "shop-copy": {**SHOP, "image": "ghcr.io/acme/copy:{sha}"}}},
            "services.shop-copy.kubernetes",
            "shop/shop, which service shop already deploys",
        ),
    ],
)
def test_wrong_documents_name_the_field(document: Any, field: str, problem: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policies(document, "autodeploy.yaml")
    assert caught.value.field == field
    assert problem in caught.value.problem
    assert str(caught.value).startswith(f"autodeploy.yaml: {field}: " if field else "autodeploy.yaml: ")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("2h", timedelta(hours=2)),
        ("1d", timedelta(days=1)),
        (" 36h ", timedelta(hours=36)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    [service] = parse_policies(doc(readiness_ttl=text), "t").services
    assert service.readiness_ttl == expected


@pytest.mark.parametrize("text", ["", "0m", "2", "h", "1.5h", "2H", "1h30m", "-1h", "1w", "01h", 2, None, True])
def test_malformed_durations(text: object) -> None:
    with pytest.raises(ValueError, match="90s, 15m, 2h or 1d"):
        parse_duration(text)


@pytest.mark.parametrize(
    "spelling",
    [
        "github.com/acme/shop",
        "GitHub.com/Acme/Shop",
        "acme/shop",
        "Acme/Shop",
        "https://github.com/acme/shop",
        "https://github.com/Acme/Shop.git",
        "https://github.com/acme/shop/",
        "git@github.com:acme/shop.git",
    ],
)
def test_repository_spellings(spelling: str) -> None:
    assert normalise_repository(spelling) == "github.com/acme/shop"
    [service] = parse_policies(doc(repository=spelling), "t").services
    assert service.repository == "github.com/acme/shop"


@pytest.mark.parametrize("spelling", ["acme", "github.com/acme", "", "../shop", "acme/..", "acme shop/x", None, 7])
def test_not_repositories(spelling: object) -> None:
    assert normalise_repository(spelling) is None


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "autodeploy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read the policy file"):
        load_policies(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="is not valid YAML"):
        load_policies(write(tmp_path, "services: [\n"))
    with pytest.raises(PolicyError, match=r"autodeploy\.yaml: services: is required"):
        load_policies(write(tmp_path, "# nothing yet\n"))
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(tmp_path)  # a directory
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(PolicyError, match="cannot read"):
        load_policies(binary)


def test_a_key_given_twice_is_an_error(tmp_path: Path) -> None:
    text = DEMO.read_text(encoding="utf-8")
    # The second `shop` would silently replace the first under a plain YAML loader.
    with pytest.raises(PolicyError, match="found the key 'shop' twice"):
        load_policies(write(tmp_path, text.replace("  shop-worker:", "  shop:")))
    with pytest.raises(PolicyError, match="found the key 'branch' twice"):
        load_policies(write(tmp_path, text.replace("    branch: main\n", "    branch: main\n    branch: dev\n", 1)))


def test_yaml_merge_keys_still_work(tmp_path: Path) -> None:
    text = """
common: &common
  repository: acme/shop
  branch: main
  required_checks: [{circleci: build-test}]
services:
  shop:
    <<: *common
    image: ghcr.io/acme/shop:{short_sha}
    kubernetes: {namespace: shop, deployment: shop, container: app}
"""
    document = yaml.safe_load(text)
    del document["common"]  # an anchor holder is not a policy key: plain documents only carry `services`
    [service] = parse_policies(document, "t").services
    assert service.image_for("abcdef0123" * 4) == "ghcr.io/acme/shop:abcdef0"
    with pytest.raises(PolicyError, match="common: unknown key"):
        load_policies(write(tmp_path, text))


def test_the_file_read_service_by_service_gives_what_the_whole_document_gives(tmp_path: Path) -> None:
    # load_policies walks the file (streams.domain.policy_document.PolicyBuilder); parse_policies takes it whole.
    freeze = "freeze:\n  - {name: weekend, weekly: 'Fri 18:00 - Mon 08:00', timezone: Europe/Berlin}\n"
    services = DEMO.read_text(encoding="utf-8").split("\nservices:\n", 1)[1]
    own = "    freeze: [{name: night, weekly: 'Mon 22:00 - Tue 06:00'}]\n"
    for text in (freeze + "services:\n" + services + own, "services:\n" + services + own + freeze):
        walked = load_policies(write(tmp_path, text))
        assert walked == parse_policies(yaml.safe_load(text), "t")
        assert [w.name for w in walked.service("shop").freeze] == ["weekend"]
        assert [w.name for w in walked.service("shop-worker").freeze] == ["weekend", "night"]


def test_equal_parts_of_services_are_one_object_and_cannot_change(tmp_path: Path) -> None:
    policies = load_policies(DEMO)
    shop, worker = policies.services
    assert shop.required_checks is worker.required_checks
    assert shop.repository is worker.repository
    assert shop.readiness_ttl is worker.readiness_ttl
    with pytest.raises(AttributeError):
        shop.branch = "dev"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        shop.target.container = "x"  # type: ignore[misc]
    assert not hasattr(shop, "__dict__")  # slots: 20,000 services must stay small (docs/performance.md)
    assert worker.branch == "main"
    assert worker.target.container == "worker"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("services: {}\n", "services: must map at least one service name to its policy"),
        ("services:\n", "services: must map at least one service name to its policy"),
        ("services: [shop]\n", "services: must map at least one service name to its policy"),
        ("freeze: []\n", "services: is required"),
        ("- services\n", "must be a mapping with services"),
        ("servics: {}\n", "servics: unknown key \\(did you mean services\\?\\)"),
        ("services:\n  Shop: {}\n", "services.Shop: service names must match"),
    ],
)
def test_a_walked_file_names_the_field(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        load_policies(write(tmp_path, text))


def test_services_merged_from_an_anchored_service(tmp_path: Path) -> None:
    text = """
services:
  shop: &shop
    repository: acme/shop
    branch: main
    required_checks: [{circleci: build-test}]
    image: ghcr.io/acme/shop:{sha}
    kubernetes: {namespace: shop, deployment: shop, container: app}
  shop-worker:
    <<: *shop
    image: ghcr.io/acme/shop-worker:{sha}
    kubernetes: {namespace: shop, deployment: worker, container: app}
"""
    policies = load_policies(write(tmp_path, text))
    assert policies == parse_policies(yaml.safe_load(text), "t")
    assert [s.name for s in policies.for_repository("github.com/acme/shop")] == ["shop", "shop-worker"]
