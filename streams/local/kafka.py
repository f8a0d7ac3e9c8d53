"""A real single-node Apache Kafka broker (KRaft, combined broker+controller) from Maven Central jars.

No Docker engine and no Kafka package exist on these machines; Java and Maven do. The jars are resolved once with
`mvn` into the user cache; the broker's data, log, pid and address live in the state directory, so `down` stops
exactly the process `up` started.
"""

from __future__ import annotations

import base64
import logging
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

from streams.config import LocalSettings
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


class KafkaStartError(processes.ServiceStartError):
    """The broker could not be resolved, formatted or started."""


@dataclass(frozen=True)
class BrokerInfo:
    bootstrap_servers: str
    pid: int
    version: str
    log_path: Path
    data_dir: Path


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


def metadata_ok(bootstrap: str, timeout: float = 2.0) -> bool:
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
    )


def up(port: int | None = None, version: str = KAFKA_VERSION, out: TextIO = sys.stderr) -> BrokerInfo:
    """Start the broker (or return the one already running) and wait until it answers metadata requests."""
    running = status()
    if running is not None:
        return running
    libs = ensure_jars(version, out)
    work = _state_file().parent
    data = work / "data"
    previous = processes.read_state(_state_file()) or {}
    # A restart keeps the data; a new port each time would only confuse clients that remembered the old one.
    port = port or _reuse(previous.get("port")) or processes.free_port()
    controller_port = _reuse(previous.get("controller_port")) or processes.free_port()
    work.mkdir(parents=True, exist_ok=True)
    props = work / "server.properties"
    template = (_files() / "server.properties").read_text(encoding="utf-8")
    props.write_text(template.format(port=port, controller_port=controller_port, data_dir=data), encoding="utf-8")
    if not (data / "meta.properties").exists():
        _format(libs, work, props)
    log_path = work / "broker.log"
    log_path.write_bytes(b"")
    proc = processes.start([*_jvm(libs, work), "kafka.Kafka", str(props)], log_path)
    bootstrap = f"127.0.0.1:{port}"
    info = BrokerInfo(bootstrap, proc.pid, version, log_path, data)
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
        },
    )
    _wait_ready(proc, info)
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


def _format(libs: Path, work: Path, props: Path) -> None:
    cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
    # `--cluster-id=` form: a base64url id may start with "-", which the tool would read as an option.
    argv = [*_jvm(libs, work), "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}", "-c", str(props)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise KafkaStartError(f"formatting KRaft storage failed:\n{(result.stdout + result.stderr)[-4000:]}")


def _wait_ready(proc: subprocess.Popen[bytes], info: BrokerInfo) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            _clear()
            raise KafkaStartError(
                f"Kafka broker exited with code {proc.returncode} during start; last lines of {info.log_path}:\n"
                + processes.tail(info.log_path)
            )
        if metadata_ok(info.bootstrap_servers):
            log.info("kafka broker up bootstrap=%s pid=%s", info.bootstrap_servers, info.pid)
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
