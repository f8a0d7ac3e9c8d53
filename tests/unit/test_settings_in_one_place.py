"""The environment is read in streams/config.py only: every other module takes its settings from there."""

from __future__ import annotations

import ast
from pathlib import Path

from streams.commands import demo_cmds
from streams.config import DemoSettings, LocalSettings, WhySettings, child_environment

STREAMS = Path(__file__).resolve().parents[2] / "streams"
_READERS = frozenset({"environ", "environb", "getenv", "getenvb"})


def environment_reads(source: str) -> list[str]:
    """Where a module's source touches the process environment: `os.environ`, `os.getenv(...)`, or their names
    imported from os (`line: what`)."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in _READERS:
            found.append(f"{node.lineno}: .{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module == "os":
            found.extend(f"{node.lineno}: from os import {a.name}" for a in node.names if a.name in _READERS)
    return sorted(found, key=lambda where: int(where.split(":")[0]))


def test_no_module_but_config_reads_the_environment() -> None:
    offenders = {
        str(path.relative_to(STREAMS.parent)): reads
        for path in sorted(STREAMS.rglob("*.py"))
        if path != STREAMS / "config.py" and (reads := environment_reads(path.read_text(encoding="utf-8")))
    }
    assert not offenders, f"read the environment in streams/config.py (a settings dataclass) instead: {offenders}"


def test_the_scan_finds_each_way_of_reading() -> None:
    source = "import os\nfrom os import getenv\na = os.environ.get('A')\nb = os.getenv('B')\nc = dict(os.environ)\n"
    assert environment_reads(source) == ["2: from os import getenv", "3: .environ", "4: .getenv", "5: .environ"]


def test_local_paths() -> None:
    assert LocalSettings.from_env({"AUTODEPLOY_CACHE_DIR": "/c"}).state_dir == Path("/c/state")
    xdg = LocalSettings.from_env({"XDG_CACHE_HOME": "/x", "AUTODEPLOY_STATE_DIR": "/s"})
    assert (xdg.cache_dir, xdg.state_dir, xdg.java_home) == (Path("/x/autodeploy"), Path("/s"), None)
    assert LocalSettings.from_env({}).cache_dir == Path.home() / ".cache" / "autodeploy"
    assert LocalSettings.from_env({"JAVA_HOME": "/opt/jdk"}).java_home == Path("/opt/jdk")


def test_demo_signs_with_the_first_configured_secret_else_the_stored_one() -> None:
    settings = DemoSettings.from_env({"GITHUB_WEBHOOK_SECRETS": " new , old"})
    assert (settings.github_secret, settings.circleci_secret) == (b"new", None)
    stored = {"circleci_secret": "from-up"}
    assert demo_cmds._secret(settings.circleci_secret, "CIRCLECI_WEBHOOK_SECRETS", stored, "circleci_secret") == (
        b"from-up"
    )
    assert demo_cmds._secret(settings.github_secret, "GITHUB_WEBHOOK_SECRETS", stored, "github_secret") == b"new"
    assert "new" not in repr(settings)


def test_why_asks_the_configured_worker() -> None:
    assert WhySettings.from_env({}).worker_url == "http://127.0.0.1:6066"
    assert WhySettings.from_env({"AUTODEPLOY_WORKER_URL": "http://w:1"}).worker_url == "http://w:1"


def test_a_child_environment_is_this_one_with_overrides() -> None:
    env = child_environment({"AUTODEPLOY_WORKER_PORT": "7000"})
    assert env["AUTODEPLOY_WORKER_PORT"] == "7000"
    assert "PATH" in env
