"""docs/configuration.md has a row for every setting the code reads, and none for a setting it does not read.

Environment variables: the string constants that streams/config.py reads from its environment mapping
(`env.get("X")`, `env["X"]`, or passed with the mapping to a helper such as `_float(env, "X", 5.0)`).
Policy-file keys: the keys the parser of autodeploy.yaml accepts (what `_mapping(...)` is given in
streams/domain/policy_document.py, the `*_KEYS` sets of streams/domain/policy_freeze.py) and the check kinds.
A row names its setting in backticks in its first cell: `AUTODEPLOY_X` for a variable, a dotted path such as
`services.<service>.kubernetes.namespace` for a key (its last part is the key).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

from streams.domain.facts import CheckKind

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "configuration.md"
_VARIABLE = re.compile(r"[A-Z][A-Z0-9_]*")
_ENV_NAMES = frozenset({"env", "environ"})


def _is_env(node: ast.expr) -> bool:
    if isinstance(node, ast.Name):
        return node.id in _ENV_NAMES
    return isinstance(node, ast.Attribute) and node.attr == "environ"


def _names(node: ast.expr) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _VARIABLE.fullmatch(node.value):
        return {node.value}
    return set()


def environment_variables(source: str) -> set[str]:
    """The environment variables a settings module reads (see the module docstring for the forms recognised)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr in {"get", "pop"} and _is_env(func.value) and node.args:
                found |= _names(node.args[0])
            elif any(_is_env(arg) for arg in node.args):
                for arg in node.args:
                    found |= _names(arg)
        elif isinstance(node, ast.Subscript) and _is_env(node.value):
            found |= _names(node.slice)
    return found


def _strings(node: ast.expr | None) -> set[str]:
    if isinstance(node, ast.Call) and node.args:  # frozenset({...}), tuple((...))
        return _strings(node.args[0])
    if isinstance(node, ast.Tuple | ast.List | ast.Set):
        return {e.value for e in node.elts if isinstance(e, ast.Constant) and isinstance(e.value, str)}
    return set()


def _constants(tree: ast.Module) -> dict[str, ast.expr | None]:
    found: dict[str, ast.expr | None] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            found[node.target.id] = node.value
        elif isinstance(node, ast.Assign):
            found.update({t.id: node.value for t in node.targets if isinstance(t, ast.Name)})
    return found


def policy_keys(*parser_sources: str, policy_freeze_source: str) -> set[str]:
    """The keys the policy parsers accept: the required and optional keys of every `mapping(value, field, required,
    optional)` call (literal or a module constant) and the `*_KEYS` constants of the freeze parser."""
    keys: set[str] = set()
    for source in parser_sources:
        tree = ast.parse(source)
        constants = _constants(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "mapping":
                for arg in node.args[2:4]:
                    resolved = constants.get(arg.id) if isinstance(arg, ast.Name) else arg
                    if isinstance(arg, ast.IfExp):  # `OPTIONAL if contexts else ()`: both sides count
                        resolved = constants.get(arg.body.id) if isinstance(arg.body, ast.Name) else arg.body
                    assert _strings(resolved), f"line {node.lineno}: cannot read the keys of {ast.unparse(arg)}"
                    keys |= _strings(resolved)
    for name, value in _constants(ast.parse(policy_freeze_source)).items():
        if name.endswith("_KEYS"):
            keys |= _strings(value)
    return keys


def documented(markdown: str) -> tuple[set[str], set[str]]:
    """(variables, policy keys) named by the rows of the document's tables."""
    variables: set[str] = set()
    keys: set[str] = set()
    for line in markdown.splitlines():
        match = re.match(r"\|\s*`([^`]+)`", line)
        if match is None:
            continue
        name = match[1]
        if _VARIABLE.fullmatch(name):
            variables.add(name)
        else:
            keys.add(re.sub(r"\[\]$", "", name.split(".")[-1]))
    return variables, keys


def differences(read: set[str], rows: set[str], what: str) -> list[str]:
    """What to fix: settings read without a row, and rows for settings not read."""
    problems = [f"{what} {name} is read by the code but has no row in docs/configuration.md" for name in read - rows]
    problems += [
        f"{what} {name} has a row in docs/configuration.md but the code does not read it" for name in rows - read
    ]
    return sorted(problems)


def _read() -> tuple[set[str], set[str]]:
    domain = ROOT / "streams" / "domain"
    variables = environment_variables((ROOT / "streams" / "config.py").read_text(encoding="utf-8"))
    keys = policy_keys(
        (domain / "policy_document.py").read_text(encoding="utf-8"),
        (domain / "policy_environments.py").read_text(encoding="utf-8"),
        policy_freeze_source=(domain / "policy_freeze.py").read_text(encoding="utf-8"),
    )
    return variables, keys | {kind.value for kind in CheckKind}


def test_every_setting_has_a_row_and_every_row_a_setting() -> None:
    variables, keys = _read()
    rows_variables, rows_keys = documented(DOC.read_text(encoding="utf-8"))
    problems = differences(variables, rows_variables, "environment variable")
    problems += differences(keys, rows_keys, "policy key")
    assert not problems, "\n".join(problems)


def test_the_extraction_sees_the_settings_it_should() -> None:
    variables, keys = _read()
    assert {"KAFKA_BOOTSTRAP_SERVERS", "AUTODEPLOY_WORKER_TICK_S", "AUTODEPLOY_DEPLOY_DRY_RUN"} <= variables
    assert {"AUTODEPLOY_WORKER_WEB", "AUTODEPLOY_WORKER_URL", "AUTODEPLOY_STATE_DIR"} <= variables
    assert {"services", "freeze", "readiness_ttl", "namespace", "weekly", "timezone", "from", "circleci"} <= keys


def test_a_new_variable_without_a_row_is_reported() -> None:
    source = (ROOT / "streams" / "config.py").read_text(encoding="utf-8")
    source += '\n\ndef new(env):\n    return env.get("AUTODEPLOY_NEW"), env["AUTODEPLOY_OTHER"]\n'
    source += 'def port(env):\n    return _port(env, "AUTODEPLOY_P", 1, zero_disables=False)\n'
    rows, _ = documented(DOC.read_text(encoding="utf-8"))
    assert differences(environment_variables(source), rows, "environment variable") == [
        f"environment variable {name} is read by the code but has no row in docs/configuration.md"
        for name in ("AUTODEPLOY_NEW", "AUTODEPLOY_OTHER", "AUTODEPLOY_P")
    ]


def test_a_row_for_a_setting_not_read_is_reported() -> None:
    variables, keys = _read()
    rows_variables, rows_keys = documented("| `AUTODEPLOY_GONE` | x |\n| `services.<service>.colour` | x |\n")
    assert "environment variable AUTODEPLOY_GONE has a row in docs/configuration.md but the code does not read it" in (
        differences(variables, rows_variables, "environment variable")
    )
    assert "policy key colour has a row in docs/configuration.md but the code does not read it" in (
        differences(keys, rows_keys, "policy key")
    )


def test_a_new_policy_key_without_a_row_is_reported() -> None:
    domain = ROOT / "streams" / "domain"
    source = (domain / "policy_document.py").read_text(encoding="utf-8")
    source = source.replace("_SERVICE_OPTIONAL: Final = (\n", '_SERVICE_OPTIONAL: Final = (\n    "canary",\n')
    keys = policy_keys(
        source,
        (domain / "policy_environments.py").read_text(encoding="utf-8"),
        policy_freeze_source=(domain / "policy_freeze.py").read_text(encoding="utf-8"),
    )
    _, rows = documented(DOC.read_text(encoding="utf-8"))
    assert differences(keys | {k.value for k in CheckKind}, rows, "policy key") == [
        "policy key canary is read by the code but has no row in docs/configuration.md"
    ]
