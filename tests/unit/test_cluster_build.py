"""Pure parts of the local control plane: go.mod generation, version stamps, kwok stages, component flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from streams.local import cluster_build, kwok_stages
from streams.local.cluster_build import Versions, etcd_go_mod, k8s_ldflags, kubernetes_go_mod
from streams.local.cluster_config import Layout, Ports, argv

UPSTREAM = """module k8s.io/kubernetes

go 1.26.0

require (
\tk8s.io/api v0.0.0
\tk8s.io/client-go v0.0.0
)

replace (
\tk8s.io/api => ./staging/src/k8s.io/api
\tk8s.io/client-go => ./staging/src/k8s.io/client-go
\tk8s.io/cri-streaming => ./staging/src/k8s.io/cri-streaming
)

replace github.com/example/fork => github.com/example/fork v1.2.3 // pinned
"""


def test_every_staging_module_is_replaced_by_its_published_version() -> None:
    text = kubernetes_go_mod("1.36.3", UPSTREAM)
    assert "require k8s.io/kubernetes v1.36.3" in text
    for name in ("k8s.io/api", "k8s.io/client-go", "k8s.io/cri-streaming"):
        assert f"\t{name} => {name} v0.36.3" in text
    assert "./staging" not in text
    assert "\tgithub.com/example/fork => github.com/example/fork v1.2.3" in text


def test_a_go_mod_without_staging_replaces_is_refused() -> None:
    with pytest.raises(ValueError, match="staging"):
        kubernetes_go_mod("1.36.3", "module k8s.io/kubernetes\n")


def test_etcd_wrapper_requires_the_server_module() -> None:
    assert "require go.etcd.io/etcd/server/v3 v3.6.16" in etcd_go_mod("3.6.16")


def test_ldflags_stamp_the_version() -> None:
    flags = k8s_ldflags("1.36.3")
    assert "-X k8s.io/component-base/version.gitVersion=v1.36.3" in flags
    assert "-X k8s.io/component-base/version.gitMinor=36" in flags
    assert flags.startswith("-s -w ")


def test_a_version_change_changes_the_cache_key() -> None:
    assert Versions().key() != Versions(kubernetes="1.35.4").key()
    assert Versions().key() == Versions().key()


def _default_stage(name: str) -> str:
    return f"kind: Stage\nmetadata:\n  name: {name}\nspec:\n  selector:\n    matchExpressions:\n    - key: '.x'\n"


def test_stage_file_narrows_pod_ready_and_adds_the_never_ready_stage() -> None:
    defaults = {name: _default_stage(name) for name in kwok_stages.DEFAULT_STAGE_ORDER}
    docs = kwok_stages.stages_yaml(defaults).split("---\n")
    assert len(docs) == len(defaults) + 1
    pod_ready = docs[kwok_stages.DEFAULT_STAGE_ORDER.index("pod-ready")]
    assert kwok_stages.MARKED_QUERY in pod_ready and "'NotIn'" in pod_ready
    assert kwok_stages.MARKED_QUERY not in docs[0]  # node stages untouched
    custom = docs[-1]
    assert "name: pod-running-never-ready" in custom
    assert f"- key: '{kwok_stages.MARKED_QUERY}'\n      operator: 'In'" in custom
    assert "phase: Running" in custom and 'status: "False"\n        type: Ready' in custom


def test_stage_file_needs_every_default() -> None:
    with pytest.raises(ValueError, match="pod-delete"):
        kwok_stages.stages_yaml({name: _default_stage(name) for name in kwok_stages.DEFAULT_STAGE_ORDER[:-1]})


def test_apiserver_runs_rbac_on_loopback(tmp_path: Path) -> None:
    bins = cluster_build.Binaries(root=tmp_path, versions=Versions())
    ports = Ports(1, 2, 3, 4, 5, 6)
    line = argv("kube-apiserver", bins, Layout(tmp_path), ports)
    assert line[:2] == [str(bins.k8s), "kube-apiserver"]
    assert "--authorization-mode=Node,RBAC" in line
    assert "--bind-address=127.0.0.1" in line and "--secure-port=3" in line
    assert argv("kwok", bins, Layout(tmp_path), ports)[0] == str(bins.kwok)
    with pytest.raises(ValueError, match="unknown"):
        argv("kubelet", bins, Layout(tmp_path), ports)
