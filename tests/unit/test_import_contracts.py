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


BREACHES = {
    # name: (the module added to the copy, its text, the contract it breaks, the import the report must name)
    "domain imports kafka": (
        "domain/leaks_kafka.py",
        "import confluent_kafka\n",
        "domain-pure",
        "streams.domain.leaks_kafka -> confluent_kafka",
    ),
    "domain reads yaml": ("domain/reads_yaml.py", "import yaml\n", "domain-pure", "streams.domain.reads_yaml -> yaml"),
    "a process imports another inside a function": (
        "deploy/reaches_over.py",
        "def reach_over() -> object:\n    from streams.worker import helper\n    return helper\n",
        "processes-independent",
        "streams.deploy.reaches_over -> streams.worker.helper",
    ),
    "a process imports the edge": (
        "webhooks/reaches_up.py",
        "from streams.commands import worker_cmds\n",
        "edge-on-top",
        "streams.webhooks.reaches_up -> streams.commands.worker_cmds",
    ),
}


@pytest.mark.parametrize(("module", "text", "contract", "named"), BREACHES.values(), ids=BREACHES.keys())
def test_a_forbidden_import_breaks_its_contract(copy: Path, module: str, text: str, contract: str, named: str) -> None:
    (copy / "streams" / "worker" / "helper.py").write_text('"""A worker module."""\n')
    (copy / "streams" / module).write_text(text)
    result = lint_imports(copy)
    assert result.returncode != 0
    assert f"{contract_name(contract)} BROKEN" in result.stdout
    # Only the copy has this module: the copy was checked, not the installed package.
    assert named in result.stdout
