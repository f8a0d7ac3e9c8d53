"""The import contracts in .importlinter hold on this tree, and each one fails when broken (checked on a copy)."""

from __future__ import annotations

import configparser
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streams.config import REPO_ROOT

CONTRACTS = REPO_ROOT / ".importlinter"
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def contract_name(contract_id: str) -> str:
    config = configparser.ConfigParser()
    config.read(CONTRACTS)
    return config[f"importlinter:contract:{contract_id}"]["name"]


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """lint-imports on the `streams` package under `root`: PYTHONPATH puts it ahead of the editable install, whose
    finder only answers for what the path does not hold."""
    env = {**os.environ, "PYTHONPATH": str(root), "COLUMNS": "1000"}  # one line per contract, names unbroken
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / ".importlinter")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    shutil.copytree(REPO_ROOT / "streams", tmp_path / "streams", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(CONTRACTS, tmp_path / ".importlinter")
    return tmp_path


def test_the_tree_keeps_every_contract() -> None:
    result = lint_imports(REPO_ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


def test_an_unchanged_copy_keeps_them_too(copy: Path) -> None:
    result = lint_imports(copy)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_domain_importing_kafka_breaks_the_domain_contract(copy: Path) -> None:
    (copy / "streams" / "domain" / "leaks_kafka.py").write_text("import confluent_kafka\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{contract_name('domain-pure')} BROKEN" in result.stdout
    # Only the copy has this module: the copy was checked, not the installed package.
    assert "streams.domain.leaks_kafka -> confluent_kafka" in result.stdout


def test_the_domain_reading_yaml_breaks_the_domain_contract(copy: Path) -> None:
    (copy / "streams" / "domain" / "reads_yaml.py").write_text("import yaml\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{contract_name('domain-pure')} BROKEN" in result.stdout
    assert "streams.domain.reads_yaml -> yaml" in result.stdout


def test_a_process_importing_another_inside_a_function_breaks_their_independence(copy: Path) -> None:
    leak = "def reach_over() -> object:\n    from streams.worker import helper\n    return helper\n"
    (copy / "streams" / "worker" / "helper.py").write_text('"""A worker module."""\n')
    (copy / "streams" / "deploy" / "reaches_over.py").write_text(leak)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{contract_name('processes-independent')} BROKEN" in result.stdout
    assert "streams.deploy.reaches_over -> streams.worker.helper" in result.stdout


def test_a_process_importing_the_edge_breaks_the_layers(copy: Path) -> None:
    (copy / "streams" / "webhooks" / "reaches_up.py").write_text("from streams.commands import worker_cmds\n")
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{contract_name('edge-on-top')} BROKEN" in result.stdout
    assert "streams.webhooks.reaches_up -> streams.commands.worker_cmds" in result.stdout
