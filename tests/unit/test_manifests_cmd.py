"""`autodeploy manifests` resolves its target before building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.commands.manifests_cmds import K8S_DIR, kustomization_dir
from streams.local import k8s_tools


def test_names_resolve_to_the_kustomizations_in_k8s() -> None:
    assert kustomization_dir("prod") == K8S_DIR / "overlays" / "prod"
    assert kustomization_dir("base") == K8S_DIR / "base"
    assert kustomization_dir(str(K8S_DIR / "overlays" / "dev")) == K8S_DIR / "overlays" / "dev"


def test_an_unknown_target_names_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="base, dev, prod"):
        kustomization_dir(str(tmp_path))


def test_a_version_change_is_a_new_cache_entry(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AUTODEPLOY_CACHE_DIR", str(tmp_path))
    assert (
        k8s_tools.kustomize_path() == tmp_path / "k8s-tools" / f"kustomize-v{k8s_tools.KUSTOMIZE_VERSION}" / "kustomize"
    )
    assert "keda-2.21.0" in k8s_tools.crds_dir().name
    monkeypatch.setattr(k8s_tools, "KUSTOMIZE_VERSION", "9.9.9")
    assert "kustomize-v9.9.9" in str(k8s_tools.kustomize_path())
