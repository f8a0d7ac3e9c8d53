"""Settings read from the environment, in this one place, into frozen dataclasses.

No other module of `streams/` reads `os.environ` (a unit test holds it so); docs/configuration.md has a row for every
variable read here (another unit test holds that).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A setting is missing or malformed; the message names it."""


@dataclass(frozen=True)
class LocalSettings:
    """Where downloads, builds and the state of local services live, and the Java that runs the local broker."""

    cache_dir: Path  # $AUTODEPLOY_CACHE_DIR, else $XDG_CACHE_HOME/autodeploy, else ~/.cache/autodeploy
    state_dir: Path  # pid, address and data files of running local services; $AUTODEPLOY_STATE_DIR isolates tests
    java_home: Path | None  # None: `java` on PATH
    # `autodeploy kafka up` (and `up`, and the tests' broker) starts the local broker with SASL/SCRAM and ACLs, unless
    # AUTODEPLOY_KAFKA_SECURE says no: a value that is no clear "no" keeps it secured.
    kafka_secure: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LocalSettings:
        env = os.environ if env is None else env
        explicit_cache = env.get("AUTODEPLOY_CACHE_DIR")
        xdg = env.get("XDG_CACHE_HOME")
        base = Path(xdg) if xdg else Path.home() / ".cache"
        cache = Path(explicit_cache) if explicit_cache else base / "autodeploy"
        explicit_state = env.get("AUTODEPLOY_STATE_DIR")
        java_home = env.get("JAVA_HOME")
        return cls(
            cache_dir=cache,
            state_dir=Path(explicit_state) if explicit_state else cache / "state",
            java_home=Path(java_home) if java_home else None,
            kafka_secure=env.get("AUTODEPLOY_KAFKA_SECURE", "").strip().lower() not in ("0", "false", "no", "off"),
        )


def child_environment(overrides: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with `overrides`, for a child process (the services `autodeploy up` starts, the Go
    toolchain): children read their own settings, and tools need PATH, HOME and the like passed on as they are."""
    return {**os.environ, **(overrides or {})}


SECURITY_PROTOCOLS = ("PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL")
SASL_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")


@dataclass(frozen=True)
class KafkaSecurity:
    """How every Kafka client of this process authenticates: librdkafka (producers, consumers, admin) and aiokafka
    (under Faust) are both configured from this, so a process has one identity (its principal) on the broker.

    PLAINTEXT with no user is what an unsecured broker needs (the default). The password comes from
    KAFKA_SASL_PASSWORD or, better, from the file KAFKA_SASL_PASSWORD_FILE names (a mounted Secret); it is never
    part of repr, so it cannot reach a log line through a settings dump."""

    protocol: str = "PLAINTEXT"
    mechanism: str | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ca_location: Path | None = None  # CA bundle for SSL/SASL_SSL; None: the system's

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    @property
    def principal(self) -> str:
        """The broker's name for this identity, as ACLs and errors say it."""
        return f"User:{self.username}" if self.username else "User:ANONYMOUS"

    def librdkafka(self) -> dict[str, str]:
        """The entries of a confluent-kafka (librdkafka) client configuration."""
        config = {"security.protocol": self.protocol}
        if self.sasl:
            config["sasl.mechanism"] = self.mechanism or ""
            config["sasl.username"] = self.username or ""
            config["sasl.password"] = self.password or ""
        if self.ca_location is not None:
            config["ssl.ca.location"] = str(self.ca_location)
        return config

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KafkaSecurity:
        env = os.environ if env is None else env
        protocol = (env.get("KAFKA_SECURITY_PROTOCOL") or "PLAINTEXT").upper()
        if protocol not in SECURITY_PROTOCOLS:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL must be one of {', '.join(SECURITY_PROTOCOLS)}, got {protocol!r}"
            )
        username = env.get("KAFKA_SASL_USERNAME") or None
        password = env.get("KAFKA_SASL_PASSWORD") or None
        password_file = env.get("KAFKA_SASL_PASSWORD_FILE") or None
        ca = env.get("KAFKA_SSL_CA_LOCATION") or None
        mechanism = (env.get("KAFKA_SASL_MECHANISM") or "SCRAM-SHA-512").upper()
        if not protocol.startswith("SASL_"):
            if username or password or password_file:
                raise ConfigError(
                    f"KAFKA_SASL_USERNAME or a password is set but KAFKA_SECURITY_PROTOCOL is {protocol}; "
                    "set it to SASL_PLAINTEXT or SASL_SSL"
                )
            return cls(protocol=protocol, ca_location=Path(ca) if ca else None)
        if mechanism not in SASL_MECHANISMS:
            raise ConfigError(f"KAFKA_SASL_MECHANISM must be one of {', '.join(SASL_MECHANISMS)}, got {mechanism!r}")
        if password is not None and password_file is not None:
            raise ConfigError("set KAFKA_SASL_PASSWORD or KAFKA_SASL_PASSWORD_FILE, not both")
        if password_file is not None:
            try:
                password = Path(password_file).read_text(encoding="utf-8").strip()
            except OSError as e:
                raise ConfigError(f"KAFKA_SASL_PASSWORD_FILE {password_file}: {e.strerror}") from e
        if not username or not password:
            raise ConfigError(
                f"KAFKA_SECURITY_PROTOCOL={protocol} needs KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD "
                "(or KAFKA_SASL_PASSWORD_FILE)"
            )
        return cls(protocol, mechanism, username, password, Path(ca) if ca else None)


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str | None
    topics_catalog: Path
    topic_prefix: str
    policy_path: Path
    # The security this process's environment configures: PLAINTEXT when nothing is set (see brokers.py for the
    # local secured broker, whose credentials are used when none are configured).
    kafka_security: KafkaSecurity = field(default_factory=KafkaSecurity)
    kafka_security_configured: bool = False  # KAFKA_SECURITY_PROTOCOL is set: the environment decides

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            kafka_bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS") or None,
            kafka_security=KafkaSecurity.from_env(env),
            kafka_security_configured=bool(env.get("KAFKA_SECURITY_PROTOCOL")),
            topics_catalog=Path(env.get("AUTODEPLOY_TOPICS_CATALOG") or REPO_ROOT / "topics" / "catalog.yaml"),
            topic_prefix=env.get("AUTODEPLOY_TOPIC_PREFIX", ""),
            policy_path=Path(env.get("AUTODEPLOY_CONFIG") or REPO_ROOT / "autodeploy.yaml"),
        )


def _secrets(raw: str | None) -> tuple[bytes, ...]:
    return tuple(s.strip().encode() for s in (raw or "").split(",") if s.strip())


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError as e:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from e
    if value <= 0:
        raise ConfigError(f"{name} must be positive, got {raw!r}")
    return value


def _port(env: Mapping[str, str], name: str, default: int, *, zero_disables: bool) -> int:
    """A TCP port, 1 to 65535; where `zero_disables`, 0 too, meaning the endpoint is not served."""
    raw = env.get(name)
    if not raw:
        return default
    lowest = 0 if zero_disables else 1
    try:
        value = int(raw)
    except ValueError:
        value = -1
    if not lowest <= value <= 65535:
        off = " (0: not served)" if zero_disables else ""
        raise ConfigError(f"{name} must be a port from {lowest} to 65535{off}, got {raw!r}")
    return value


@dataclass(frozen=True)
class WebhookSettings:
    """The webhook server. Secrets are comma-separated so a new one can be added before the old one is removed."""

    github_secrets: tuple[bytes, ...] = field(repr=False)
    circleci_secrets: tuple[bytes, ...] = field(repr=False)
    events_tokens: tuple[bytes, ...] = field(repr=False)
    allow_unsigned: frozenset[str]
    publish_timeout_s: float
    max_body_bytes: int

    ENDPOINTS = ("github", "circleci", "events")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WebhookSettings:
        env = os.environ if env is None else env
        unsigned = frozenset(p.strip() for p in env.get("AUTODEPLOY_ALLOW_UNSIGNED", "").split(",") if p.strip())
        unknown = unsigned - set(cls.ENDPOINTS)
        if unknown:
            raise ConfigError(
                f"AUTODEPLOY_ALLOW_UNSIGNED names unknown endpoints {sorted(unknown)}; use {', '.join(cls.ENDPOINTS)}"
            )
        return cls(
            github_secrets=_secrets(env.get("GITHUB_WEBHOOK_SECRETS")),
            circleci_secrets=_secrets(env.get("CIRCLECI_WEBHOOK_SECRETS")),
            events_tokens=_secrets(env.get("AUTODEPLOY_EVENTS_TOKENS")),
            allow_unsigned=unsigned,
            publish_timeout_s=_float(env, "AUTODEPLOY_PUBLISH_TIMEOUT_S", 5.0),
            max_body_bytes=int(_float(env, "AUTODEPLOY_MAX_BODY_BYTES", 25 * 1024 * 1024)),
        )


@dataclass(frozen=True)
class WorkerSettings:
    """The readiness worker (a Faust app). Its id names its consumer group, changelog and internal topics."""

    app_id: str
    store: str  # "rocksdb://" in production; "memory://" where restarts may rebuild from the changelog
    datadir: Path
    web_host: str
    web_port: int  # 0: not served, like AUTODEPLOY_WORKER_WEB=0
    web_enabled: bool  # Faust's web server: /metrics, the lag export and what `autodeploy why` asks
    block_cache_bytes: int
    cache_commits: int  # commits whose states stay decoded in memory (the rest are read back from RocksDB)
    tick_interval_s: float
    # Static group membership (a StatefulSet pod name): a restarted worker takes its partitions back at once instead
    # of waiting for its old session to time out, and no rebalance moves them elsewhere meanwhile.
    instance_id: str | None
    # The time-ordered merge of the co-partitioned inputs (streams/worker/merge.py): how long a partition that is not
    # caught up may hold the others, and the clock skew allowed between the brokers' (LogAppendTime) clocks.
    ordered_merge: bool = True
    merge_idle_ms: int = 250
    merge_skew_ms: int = 20
    # Fault injection for tests: exit as kill -9 would, once a batch's states are on the changelog and before it
    # publishes anything (the window that the outbox covers).
    exit_before_publish: bool = False
    # A partition's table read from its changelog in bulk (librdkafka, RocksDB write batches) before Faust's recovery,
    # which replays the rest (streams/worker/changelog_restore.py); off, Faust replays it all.
    bulk_restore: bool = True

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WorkerSettings:
        env = os.environ if env is None else env
        web_port = _port(env, "AUTODEPLOY_WORKER_PORT", 6066, zero_disables=True)
        return cls(
            app_id=env.get("AUTODEPLOY_WORKER_ID", "autodeploy-readiness"),
            store=env.get("AUTODEPLOY_WORKER_STORE", "rocksdb://"),
            datadir=Path(env.get("AUTODEPLOY_WORKER_DATADIR") or LocalSettings.from_env(env).state_dir / "worker"),
            web_host=env.get("AUTODEPLOY_WORKER_HOST", "127.0.0.1"),
            web_port=web_port,
            web_enabled=env.get("AUTODEPLOY_WORKER_WEB", "1") != "0" and web_port != 0,
            # RocksDB's default is 2 GiB per partition; a worker owns several partitions.
            block_cache_bytes=int(_float(env, "AUTODEPLOY_WORKER_BLOCK_CACHE_BYTES", 16 * 1024 * 1024)),
            cache_commits=int(_float(env, "AUTODEPLOY_WORKER_CACHE_COMMITS", 50_000)),
            tick_interval_s=_float(env, "AUTODEPLOY_WORKER_TICK_S", 5.0),
            instance_id=env.get("AUTODEPLOY_WORKER_INSTANCE_ID") or None,
            ordered_merge=env.get("AUTODEPLOY_WORKER_ORDERED_MERGE", "1") != "0",
            merge_idle_ms=int(_float(env, "AUTODEPLOY_WORKER_MERGE_IDLE_MS", 250)),
            merge_skew_ms=int(_float(env, "AUTODEPLOY_WORKER_MERGE_SKEW_MS", 20)),
            exit_before_publish=env.get("AUTODEPLOY_WORKER_EXIT_BEFORE_PUBLISH") == "1",
            bulk_restore=env.get("AUTODEPLOY_WORKER_BULK_RESTORE", "1") != "0",
        )


@dataclass(frozen=True)
class DeployAgentSettings:
    """The deploy agent (`autodeploy deploy-agent`): its consumer group and how it talks to Kubernetes."""

    group_id: str
    kubeconfig: Path | None  # None: the in-cluster service account
    dry_run: bool
    rollout_timeout_s: float
    request_timeout_s: float
    publish_timeout_s: float
    metrics_port: int = 9102  # /metrics; 0: not served
    metrics_host: str = "0.0.0.0"  # noqa: S104 - Prometheus scrapes the pod from outside
    # Where environments' verify queries are asked (None: not set, and every verification is inconclusive).
    prometheus_url: str | None = None
    verify_interval_s: float = 10.0  # how often each verify query is asked during its window

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DeployAgentSettings:
        env = os.environ if env is None else env
        kubeconfig = env.get("KUBECONFIG", "").split(os.pathsep)[0]
        return cls(
            group_id=env.get("AUTODEPLOY_DEPLOY_GROUP") or "autodeploy-deploy-agent",
            kubeconfig=Path(kubeconfig) if kubeconfig else None,
            dry_run=env.get("AUTODEPLOY_DEPLOY_DRY_RUN", "").lower() in ("1", "true", "yes"),
            rollout_timeout_s=_float(env, "AUTODEPLOY_ROLLOUT_TIMEOUT_S", 600.0),
            request_timeout_s=_float(env, "AUTODEPLOY_K8S_REQUEST_TIMEOUT_S", 10.0),
            publish_timeout_s=_float(env, "AUTODEPLOY_PUBLISH_TIMEOUT_S", 10.0),
            metrics_port=_port(env, "AUTODEPLOY_DEPLOY_METRICS_PORT", 9102, zero_disables=True),
            metrics_host=env.get("AUTODEPLOY_DEPLOY_METRICS_HOST") or "0.0.0.0",  # noqa: S104 - see above
            prometheus_url=env.get("PROMETHEUS_URL") or None,
            verify_interval_s=_float(env, "AUTODEPLOY_VERIFY_INTERVAL_S", 10.0),
        )


@dataclass(frozen=True)
class LagSettings:
    """Consumer lag (`autodeploy lag`, `autodeploy lag-exporter`, and inside the worker)."""

    groups: tuple[str, ...]  # autodeploy's own groups first, then AUTODEPLOY_LAG_GROUPS
    interval_s: float  # how often offsets are read
    stall_after_s: float  # lag > 0 and the committed offset unmoved this long: stalled
    host: str
    port: int  # the lag exporter's /metrics
    in_worker: bool  # the worker exports lag too (AUTODEPLOY_WORKER_LAG=0 turns it off)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> LagSettings:
        env = os.environ if env is None else env
        own = (WorkerSettings.from_env(env).app_id, DeployAgentSettings.from_env(env).group_id)
        extra = tuple(g.strip() for g in env.get("AUTODEPLOY_LAG_GROUPS", "").split(",") if g.strip())
        return cls(
            groups=tuple(dict.fromkeys((*own, *extra))),
            interval_s=_float(env, "AUTODEPLOY_LAG_INTERVAL_S", 10.0),
            stall_after_s=_float(env, "AUTODEPLOY_LAG_STALL_S", 60.0),
            host=env.get("AUTODEPLOY_LAG_EXPORTER_HOST", "127.0.0.1"),
            port=_port(env, "AUTODEPLOY_LAG_EXPORTER_PORT", 9103, zero_disables=False),
            in_worker=env.get("AUTODEPLOY_WORKER_LAG", "1") != "0",
        )


@dataclass(frozen=True)
class DemoSettings:
    """`autodeploy demo`: the secrets it signs with when set (the first of each list), else the ones `up` stored."""

    github_secret: bytes | None = field(repr=False)
    circleci_secret: bytes | None = field(repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> DemoSettings:
        env = os.environ if env is None else env
        github = _secrets(env.get("GITHUB_WEBHOOK_SECRETS"))
        circleci = _secrets(env.get("CIRCLECI_WEBHOOK_SECRETS"))
        return cls(github_secret=github[0] if github else None, circleci_secret=circleci[0] if circleci else None)


@dataclass(frozen=True)
class WhySettings:
    """`autodeploy why`: the running worker it asks."""

    worker_url: str

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> WhySettings:
        env = os.environ if env is None else env
        return cls(worker_url=env.get("AUTODEPLOY_WORKER_URL") or "http://127.0.0.1:6066")


@dataclass(frozen=True)
class BoardSettings:
    """`autodeploy board`: where it listens, the worker it asks about waiting commits, how much it keeps."""

    host: str
    port: int
    worker_url: str
    retain: int  # decisions and outcomes kept for the timeline and commit pages (the oldest leave first)
    explain_interval_s: float  # how often the worker is asked what waiting commits miss

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> BoardSettings:
        env = os.environ if env is None else env
        retain = int(_float(env, "AUTODEPLOY_BOARD_RETAIN", 50_000))
        if retain < 1:
            raise ConfigError(f"AUTODEPLOY_BOARD_RETAIN must be at least 1, got {retain}")
        return cls(
            host=env.get("AUTODEPLOY_BOARD_HOST") or "127.0.0.1",
            port=_port(env, "AUTODEPLOY_BOARD_PORT", 8090, zero_disables=False),
            worker_url=env.get("AUTODEPLOY_WORKER_URL") or "http://127.0.0.1:6066",
            retain=retain,
            explain_interval_s=_float(env, "AUTODEPLOY_BOARD_EXPLAIN_INTERVAL_S", 2.0),
        )


@dataclass(frozen=True)
class KeySettings:
    """Who signs and whom a process trusts (docs/security.md#signed-events): this process's signing key (a PEM
    private key file, never its contents here) and the key directory file its verifiers reload when it changes.

    Without a directory a verifier has nothing to check against, and without a key a producer publishes events no
    verifier accepts: the processes refuse to start either way, unless AUTODEPLOY_INSECURE_NO_SIGNATURES=1 says the
    pipeline runs without signatures on purpose (logged as an error).
    """

    signing_key: Path | None  # PEM (PKCS#8) private key: Ed25519 (or ECDSA P-256)
    signing_key_id: str  # the DSSE keyid its signatures carry; default: the file's name without its suffix
    directory: Path | None
    insecure_no_signatures: bool = False
    reload_interval_s: float = 1.0  # how often a verifier looks at the directory file's mtime

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> KeySettings:
        env = os.environ if env is None else env
        key = env.get("AUTODEPLOY_SIGNING_KEY") or None
        directory = env.get("AUTODEPLOY_KEY_DIRECTORY") or None
        key_id = env.get("AUTODEPLOY_SIGNING_KEY_ID") or (Path(key).stem if key else "")
        insecure = env.get("AUTODEPLOY_INSECURE_NO_SIGNATURES", "").lower() in ("1", "true", "yes")
        return cls(
            signing_key=Path(key) if key else None,
            signing_key_id=key_id,
            directory=Path(directory) if directory else None,
            insecure_no_signatures=insecure,
            reload_interval_s=_float(env, "AUTODEPLOY_KEY_DIRECTORY_RELOAD_S", 1.0),
        )

    def check(self, *, signs: bool, verifies: bool) -> None:
        """ConfigError unless a process that `signs` has a key and one that `verifies` has a directory (or the
        pipeline runs without signatures on purpose)."""
        if self.insecure_no_signatures:
            return
        if signs and self.signing_key is None:
            raise ConfigError(
                "no signing key: set AUTODEPLOY_SIGNING_KEY to a private key file (`autodeploy keys generate`), "
                "or AUTODEPLOY_INSECURE_NO_SIGNATURES=1 to publish unsigned events"
            )
        if verifies and self.directory is None:
            raise ConfigError(
                "no key directory: set AUTODEPLOY_KEY_DIRECTORY to the key directory file, "
                "or AUTODEPLOY_INSECURE_NO_SIGNATURES=1 to accept unsigned events"
            )
