"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) from Maven Central jars.

No Docker engine and no Kafka package exist on these machines; Java and Maven do. The jars are resolved once with
`mvn` into the user cache; the broker's data, log, pid and address live in the state directory, so `down` stops
exactly the process `up` started.
"""

from __future__ import annotations

import base64
import logging
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, TextIO

from confluent_kafka.admin import AdminClient

from streams.config import KafkaSecurity, LocalSettings
from streams.local import processes
from streams.local.cache import cache_dir, state_dir

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.3.1"
# Kafka 4.3 still logs through slf4j 1.7, so the 1.x binding (log4j-slf4j-impl, not -slf4j2-impl).
LOG4J_VERSION = "2.25.4"
DEPENDENCY_PLUGIN = "org.apache.maven.plugins:maven-dependency-plugin:3.8.1"
START_TIMEOUT_S = 90.0
JVM_OPTS = (
    "-Xms256m",
    "-Xmx1g",
    "-XX:+UseSerialGC",
    "-XX:TieredStopAtLevel=1",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


_quiet = logging.getLogger(__name__ + ".probe")
_quiet.setLevel(logging.CRITICAL)


# The secured broker's identities. One SCRAM user per autodeploy process (each gets its own principal, and the ACLs of
# topics/acls.yaml name them), an admin for `topics apply`, and the broker's own inter-broker user.
ROLES = ("admin", "webhooks", "worker", "deploy-agent", "lag-exporter", "approver", "board")
BROKER_USER = "autodeploy-broker"
CONTROLLER_USER = "controller"  # the controller listener's SASL/PLAIN user (see security.properties)
MECHANISM = "SCRAM-SHA-512"


def username(role: str) -> str:
    return f"autodeploy-{role}"


SUPER_USERS = (f"User:{username('admin')}", f"User:{BROKER_USER}", f"User:{CONTROLLER_USER}")


class KafkaStartError(processes.ServiceStartError):
    """The broker could not be resolved, formatted or started."""


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap_servers: str
    pid: int
    version: str
    log_path: Path
    data_dir: Path
    secure: bool = False  # SASL/SCRAM and ACLs: clients need credentials(role)


def libs_dir(version: str = KAFKA_VERSION) -> Path:
    return cache_dir() / "kafka" / version / "libs"


def _files() -> Path:
    return Path(str(resources.files("streams.local") / "kafka_files"))


def ensure_jars(version: str = KAFKA_VERSION, out: TextIO = sys.stderr) -> Path:
    """Resolve the broker's jars once; a completed download is marked so a broken one is redone."""
    libs = libs_dir(version)
    marker = libs / ".complete"
    if marker.exists():
        return libs
    mvn = shutil.which("mvn")
    if mvn is None:
        raise KafkaStartError("Maven (`mvn`) is not on PATH; it is needed once to download the Kafka jars")
    work = libs.parent / "resolve"
    shutil.rmtree(work, ignore_errors=True)
    shutil.rmtree(libs, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(_files() / "pom.xml", work / "pom.xml")
    print(f"autodeploy: downloading Apache Kafka {version} from Maven Central into {libs} (once)", file=out, flush=True)
    argv = [
        mvn,
        "-B",
        "-f",
        str(work / "pom.xml"),
        f"{DEPENDENCY_PLUGIN}:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={libs}",
        f"-Dkafka.version={version}",
        f"-Dlog4j.version={LOG4J_VERSION}",
    ]
    started = time.monotonic()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen: list[str] = []
    for line in proc.stdout:
        seen.append(line.rstrip())
        if line.startswith("Downloaded from") and line.rstrip().endswith(".jar)"):
            print(f"  {line.split(': ', 1)[-1].strip()}", file=out, flush=True)
    if proc.wait() != 0:
        raise KafkaStartError("mvn could not resolve the Kafka jars:\n" + "\n".join(seen[-30:]))
    jars = sorted(libs.glob("*.jar"))
    marker.write_text(f"{len(jars)} jars in {time.monotonic() - started:.1f}s\n", encoding="utf-8")
    print(f"autodeploy: {len(jars)} jars ready ({time.monotonic() - started:.1f}s)", file=out, flush=True)
    return libs


def _state_file() -> Path:
    return state_dir() / "kafka" / "broker.json"


def _java() -> str:
    home = LocalSettings.from_env().java_home
    java = home / "bin" / "java" if home else shutil.which("java")
    if java is None or not Path(java).exists():
        raise KafkaStartError("Java is not installed (no JAVA_HOME and no `java` on PATH); Kafka needs Java 17+")
    return str(java)


def _jvm(libs: Path, work: Path) -> list[str]:
    return [
        _java(),
        *JVM_OPTS,
        f"-Dlog4j2.configurationFile={_files() / 'log4j2.properties'}",
        f"-Dkafka.logs.dir={work / 'logs'}",
        "-cp",
        f"{libs}/*",
    ]


def metadata_ok(bootstrap: str, timeout: float = 2.0, security: KafkaSecurity | None = None) -> bool:
    """A broker is up when it answers a metadata request, not when its port is open."""
    host, _, port = bootstrap.split(",", 1)[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError:
        return False  # not listening yet: don't let librdkafka log a connection error per attempt
    config: dict[str, Any] = {
        "bootstrap.servers": bootstrap,
        "socket.timeout.ms": int(timeout * 1000),
        "logger": _quiet,
        **(security or KafkaSecurity()).librdkafka(),
    }
    admin = AdminClient(config)
    try:
        admin.list_topics(timeout=timeout)
    except Exception:  # noqa: BLE001 - any failure means "not up yet"
        return False
    return True


def status() -> BrokerInfo | None:
    """The broker this state directory started, if its process is still alive."""
    state = processes.read_state(_state_file())
    if state is None or "pid" not in state or not processes.alive(int(state["pid"])):
        return None
    return BrokerInfo(
        bootstrap_servers=state["bootstrap_servers"],
        pid=int(state["pid"]),
        version=state["version"],
        log_path=Path(state["log_path"]),
        data_dir=Path(state["data_dir"]),
        secure=bool(state.get("secure", False)),
    )


def _secrets_dir() -> Path:
    return _state_file().parent / "secrets"


def password_file(role: str) -> Path:
    """The file holding `role`'s password on the secured local broker (mode 0600): KAFKA_SASL_PASSWORD_FILE."""
    return _secrets_dir() / f"{role}.password"


def credentials(role: str) -> KafkaSecurity:
    """`role`'s identity on the running secured local broker (PLAINTEXT when the local broker is not secured)."""
    running = status()
    if running is None or not running.secure:
        return KafkaSecurity()
    return KafkaSecurity("SASL_PLAINTEXT", MECHANISM, username(role), _read_password(role))


def client_environment(role: str) -> dict[str, str]:
    """The environment a child process needs to be `role` on the secured local broker: the password by file, so it is
    in no process's environment or argv."""
    if not (status() or _no_broker()).secure:
        return {}
    return {
        "KAFKA_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "KAFKA_SASL_MECHANISM": MECHANISM,
        "KAFKA_SASL_USERNAME": username(role),
        "KAFKA_SASL_PASSWORD_FILE": str(password_file(role)),
    }


def _no_broker() -> BrokerInfo:
    raise KafkaStartError("no local broker runs: `autodeploy kafka up` first")


def _read_password(role: str) -> str:
    try:
        return password_file(role).read_text(encoding="utf-8").strip()
    except OSError as e:
        raise KafkaStartError(f"the secured local broker has no password for {role} ({password_file(role)})") from e


def _passwords() -> dict[str, str]:
    """The secured broker's passwords, generated once per state directory (its SCRAM users are formatted into the
    metadata with them), each in a file of mode 0600 in a directory of mode 0700."""
    folder = _secrets_dir()
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    found = {}
    for role in (*ROLES, "broker", "controller"):
        path = password_file(role)
        if not path.exists():
            _write_private(path, secrets.token_urlsafe(24))
        found[role] = path.read_text(encoding="utf-8").strip()
    return found


def _write_private(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
    path.chmod(0o600)


def _security_block(passwords: dict[str, str]) -> str:
    template = (_files() / "security.properties").read_text(encoding="utf-8")
    return template.format(
        broker_user=BROKER_USER,
        broker_password=passwords["broker"],
        controller_user=CONTROLLER_USER,
        controller_password=passwords["controller"],
        super_users=";".join(SUPER_USERS),
    )


def up(
    port: int | None = None, version: str = KAFKA_VERSION, out: TextIO = sys.stderr, secure: bool | None = None
) -> BrokerInfo:
    """Start the broker (or return the one already running) and wait until it answers metadata requests.

    `secure` (default: AUTODEPLOY_KAFKA_SECURE, itself on unless set to 0): SASL/SCRAM on the client listener,
    SASL/PLAIN on the controller's, and the StandardAuthorizer denying what no ACL allows; credentials(role) are the
    clients' identities. False: PLAINTEXT, no authorizer."""
    secure = LocalSettings.from_env().kafka_secure if secure is None else secure
    running = status()
    if running is not None:
        if running.secure != secure:
            mode, keep = (
                ("with SASL and ACLs", "without --insecure and AUTODEPLOY_KAFKA_SECURE=0")
                if running.secure
                else ("without SASL", "with --insecure (or AUTODEPLOY_KAFKA_SECURE=0)")
            )
            raise KafkaStartError(
                f"the local broker runs {mode}; `autodeploy kafka down` first to switch, or run this {keep} to "
                "use it as it is"
            )
        return running
    libs = ensure_jars(version, out)
    work = _state_file().parent
    data = work / "data"
    previous = processes.read_state(_state_file()) or {}
    if (data / "meta.properties").exists() and bool(previous.get("secure", False)) != secure:
        # SCRAM users are written at format time: a broker switching modes starts from fresh storage.
        print(
            f"autodeploy: the local broker's data was formatted {'with' if previous.get('secure') else 'without'} "
            f"SASL; formatting it anew {'with' if secure else 'without'} (its topics are recreated by `topics apply`)",
            file=out,
            flush=True,
        )
        shutil.rmtree(data)
    # A restart keeps the data; a new port each time would only confuse clients that remembered the old one.
    port = port or _reuse(previous.get("port")) or processes.free_port()
    controller_port = _reuse(previous.get("controller_port")) or processes.free_port()
    work.mkdir(parents=True, exist_ok=True)
    props = work / "server.properties"
    template = (_files() / "server.properties").read_text(encoding="utf-8")
    passwords = _passwords() if secure else {}
    _write_private(
        props,
        template.format(
            port=port,
            controller_port=controller_port,
            data_dir=data,
            client_listener="SASL_PLAINTEXT" if secure else "PLAINTEXT",
            controller_protocol="SASL_PLAINTEXT" if secure else "PLAINTEXT",
            security=_security_block(passwords) if secure else "",
        ),
    )
    if not (data / "meta.properties").exists():
        _format(libs, work, props, passwords)
    log_path = work / "broker.log"
    log_path.write_bytes(b"")
    proc = processes.start([*_jvm(libs, work), "kafka.Kafka", str(props)], log_path)
    bootstrap = f"127.0.0.1:{port}"
    info = BrokerInfo(bootstrap, proc.pid, version, log_path, data, secure)
    processes.write_state(
        _state_file(),
        {
            "pid": proc.pid,
            "bootstrap_servers": bootstrap,
            "port": port,
            "controller_port": controller_port,
            "version": version,
            "log_path": str(log_path),
            "data_dir": str(data),
            "secure": secure,
        },
    )
    _wait_ready(proc, info, credentials("admin") if secure else None)
    return info


def _reuse(port: object) -> int | None:
    if not isinstance(port, int):
        return None
    try:
        with socket.socket() as sock:
            # As the JVM does: a port in TIME_WAIT from the previous run is free to listen on again.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", port))
    except OSError:
        return None
    return port


def _format(libs: Path, work: Path, props: Path, passwords: dict[str, str]) -> None:
    """Format the KRaft storage; with `passwords` (secured), with a SCRAM user per role and the broker's own.

    The passwords are on the tool's argv for the second it runs (KRaft takes SCRAM users at format time only from
    there); its output is shown on failure with them blanked out."""
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    users = {username(role): passwords[role] for role in ROLES if role in passwords}
    if passwords:
        users[BROKER_USER] = passwords["broker"]
    scram = [f"--add-scram={MECHANISM}=[name={name},password={password}]" for name, password in users.items()]
    # `--cluster-id=` form: a base64url id may start with "-", which the tool would read as an option.
    argv = [
        *_jvm(libs, work),
        "kafka.tools.StorageTool",
        "format",
        f"--cluster-id={cluster_id}",
        "-c",
        str(props),
        *scram,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        shown = (result.stdout + result.stderr)[-4000:]
        for password in passwords.values():
            shown = shown.replace(password, "<password>")
        raise KafkaStartError(f"formatting KRaft storage failed:\n{shown}")


def _wait_ready(proc: subprocess.Popen[bytes], info: BrokerInfo, security: KafkaSecurity | None) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _clear()
            raise KafkaStartError(
                f"Kafka broker exited with code {proc.returncode} during start; last lines of {info.log_path}:\n"
                + processes.tail(info.log_path)
            )
        if metadata_ok(info.bootstrap_servers, security=security):
            log.info("kafka broker up bootstrap=%s pid=%s secure=%s", info.bootstrap_servers, info.pid, info.secure)
            return
        time.sleep(0.3)
    processes.stop(proc.pid)
    _clear()
    raise KafkaStartError(
        f"Kafka broker did not answer metadata requests within {START_TIMEOUT_S:.0f}s; last lines of "
        f"{info.log_path}:\n" + processes.tail(info.log_path)
    )


def _clear() -> None:
    state = processes.read_state(_state_file())
    if state is not None:
        # Keep the ports for the next start, drop the pid so nobody stops a recycled one.
        state.pop("pid", None)
        processes.write_state(_state_file(), state)


def down() -> bool:
    """Stop the broker this state directory started; False when none was running."""
    running = status()
    _clear()
    if running is None:
        return False
    processes.stop(running.pid)
    return True
