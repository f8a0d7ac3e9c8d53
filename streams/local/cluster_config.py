"""Files and command lines of the local control plane: PKI, token file, kubeconfig, and each component's argv."""

from __future__ import annotations

import secrets
import subprocess
from dataclasses import dataclass
from pathlib import Path

from streams.local.cluster_build import Binaries
from streams.local.processes import free_port

ADMIN_USER = "autodeploy-admin"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
SERVICE_CIDR = "10.0.0.0/24"
POD_CIDR = "10.244.0.0/16"
SA_ISSUER = "https://kubernetes.default.svc.cluster.local"
COMPONENTS = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok")


@dataclass(frozen=True)
class Ports:
    etcd_client: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int
    kwok: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*(free_port() for _ in range(6)))


@dataclass(frozen=True)
class Layout:
    """Where one cluster's runtime files live, under `state_dir()/cluster`."""

    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def etcd_data(self) -> Path:
        return self.root / "etcd"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubeconfig"

    @property
    def token_file(self) -> Path:
        return self.pki / "tokens.csv"

    @property
    def state(self) -> Path:
        return self.root / "cluster.json"

    def log(self, component: str) -> Path:
        return self.logs / f"{component}.log"


def _openssl(*args: str) -> None:
    done = subprocess.run(["openssl", *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"openssl {args[0]} failed: {done.stderr.strip()}")


def write_pki(pki: Path) -> None:
    """A CA, an apiserver serving cert for loopback, and the service-account signing key pair.

    Our own CA (instead of the apiserver's self-signed fallback) lets the kubeconfig verify TLS from the start.
    """
    pki.mkdir(parents=True, exist_ok=True)
    p = {
        name: str(pki / name)
        for name in (
            "ca.key",
            "ca.crt",
            "apiserver.key",
            "apiserver.csr",
            "apiserver.crt",
            "ext.cnf",
            "sa.key",
            "sa.pub",
        )
    }
    _openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p["ca.key"],
        "-out",
        p["ca.crt"],
        "-days",
        "3650",
        "-subj",
        "/CN=autodeploy-local-ca",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
    )
    _openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        p["apiserver.key"],
        "-out",
        p["apiserver.csr"],
        "-subj",
        "/CN=kube-apiserver",
    )
    Path(p["ext.cnf"]).write_text(
        "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,"
        "DNS:kubernetes.default.svc\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n"
        "keyUsage=critical,digitalSignature,keyEncipherment\n",
        encoding="ascii",
    )
    _openssl(
        "x509",
        "-req",
        "-in",
        p["apiserver.csr"],
        "-CA",
        p["ca.crt"],
        "-CAkey",
        p["ca.key"],
        "-CAcreateserial",
        "-out",
        p["apiserver.crt"],
        "-days",
        "3650",
        "-extfile",
        p["ext.cnf"],
    )
    _openssl("genrsa", "-out", p["sa.key"], "2048")
    _openssl("rsa", "-in", p["sa.key"], "-pubout", "-out", p["sa.pub"])


def write_token_file(path: Path) -> str:
    """Static token file (token,user,uid,"groups"); the admin is in system:masters, so RBAC lets it do anything."""
    token = secrets.token_hex(24)
    path.write_text(f'{token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n', encoding="ascii")
    path.chmod(0o600)
    return token


def kubeconfig_yaml(server: str, ca_file: Path, token: str, name: str = "autodeploy-local") -> str:
    return f"""apiVersion: v1
kind: Config
clusters:
- name: {name}
  cluster:
    server: {server}
    certificate-authority: {ca_file}
users:
- name: {ADMIN_USER}
  user:
    token: {token}
contexts:
- name: {name}
  context:
    cluster: {name}
    user: {ADMIN_USER}
current-context: {name}
"""


def argv(component: str, bins: Binaries, layout: Layout, ports: Ports) -> list[str]:
    """Command line of one component; flags follow kwokctl's binary runtime and envtest, all on 127.0.0.1."""
    pki, kc = layout.pki, str(layout.kubeconfig)
    client_auth = [
        f"--kubeconfig={kc}",
        f"--authentication-kubeconfig={kc}",
        f"--authorization-kubeconfig={kc}",
        "--leader-elect=false",
        "--bind-address=127.0.0.1",
    ]
    if component == "etcd":
        client, peer = f"http://127.0.0.1:{ports.etcd_client}", f"http://127.0.0.1:{ports.etcd_peer}"
        return [
            str(bins.etcd),
            "--name=local",
            f"--data-dir={layout.etcd_data}",
            f"--listen-client-urls={client}",
            f"--advertise-client-urls={client}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=local={peer}",
            "--unsafe-no-fsync=true",
            "--log-level=warn",
        ]
    if component == "kube-apiserver":
        return [
            str(bins.k8s),
            component,
            f"--etcd-servers=http://127.0.0.1:{ports.etcd_client}",
            "--bind-address=127.0.0.1",
            f"--secure-port={ports.apiserver}",
            "--advertise-address=127.0.0.1",
            # 'none' keeps a loopback address out of the `kubernetes` Endpoints object.
            "--endpoint-reconciler-type=none",
            f"--cert-dir={pki}",
            f"--tls-cert-file={pki / 'apiserver.crt'}",
            f"--tls-private-key-file={pki / 'apiserver.key'}",
            f"--client-ca-file={pki / 'ca.crt'}",
            f"--token-auth-file={layout.token_file}",
            "--authorization-mode=Node,RBAC",
            f"--service-account-issuer={SA_ISSUER}",
            f"--service-account-key-file={pki / 'sa.pub'}",
            f"--service-account-signing-key-file={pki / 'sa.key'}",
            f"--service-cluster-ip-range={SERVICE_CIDR}",
            "--allow-privileged=true",
            "--profiling=false",
        ]
    if component == "kube-controller-manager":
        return [
            str(bins.k8s),
            component,
            *client_auth,
            f"--secure-port={ports.controller_manager}",
            f"--service-account-private-key-file={pki / 'sa.key'}",
            f"--root-ca-file={pki / 'ca.crt'}",
            "--profiling=false",
        ]
    if component == "kube-scheduler":
        return [str(bins.k8s), component, *client_auth, f"--secure-port={ports.scheduler}", "--profiling=false"]
    if component == "kwok":
        return [
            str(bins.kwok),
            f"--kubeconfig={kc}",
            f"--config={bins.stages}",
            f"--manage-nodes-with-annotation-selector={KWOK_NODE_ANNOTATION}=fake",
            f"--cidr={POD_CIDR}",
            "--node-ip=10.244.0.1",
            "--node-lease-duration-seconds=40",
            f"--server-address=127.0.0.1:{ports.kwok}",
            f"--node-port={ports.kwok}",
        ]
    raise ValueError(f"unknown component {component!r}")


def node_manifest(name: str) -> dict[str, object]:
    """A fake node for kwok; untainted, so Deployments schedule onto it without tolerations."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {KWOK_NODE_ANNOTATION: "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "kubernetes.io/role": "agent",
            },
        },
        "status": {"allocatable": capacity, "capacity": capacity},
    }
