"""The Dockerfile the manifests' image is built from, linted structurally (no Docker engine here to build it)."""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#")))
    found = []
    for line in joined.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), rest.strip()))
    return found


def stages(text: str) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage; the last one is the image that runs."""
    result: list[list[tuple[str, str]]] = []
    for instruction in instructions(text):
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def base_images(text: str) -> list[str]:
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.MULTILINE))
    images = []
    for word, rest in instructions(text):
        if word == "FROM":
            image = rest.split()[0]
            images.append(re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image))
    return images


def test_the_base_is_a_pinned_slim_python() -> None:
    images = base_images(DOCKERFILE.read_text())
    assert images, "no FROM"
    for image in images:
        assert "$" not in image, f"{image}: an ARG without a default"
        assert re.fullmatch(r"python:3\.\d+\.\d+-slim-[a-z]+(@sha256:[0-9a-f]{64})?", image), (
            f"{image}: pin an exact Python release on a slim Debian base"
        )


def test_the_running_stage_is_non_root() -> None:
    final = stages(DOCKERFILE.read_text())[-1]
    users = [rest for word, rest in final if word == "USER"]
    assert users, "the final stage never switches away from root"
    uid = users[-1].split(":")[0]
    # Numeric, so Kubernetes' runAsNonRoot can verify it; and the manifests run as this uid.
    assert uid.isdigit() and int(uid) > 0, users[-1]
    assert "runAsUser: 10001" in (ROOT / "k8s" / "base" / "webhooks" / "deployment.yaml").read_text()
    assert uid == "10001"
    after_user = final[[word for word, _ in final].index("USER") :]
    assert not [rest for word, rest in after_user if word == "RUN"], "RUN after USER runs as the app user: keep it"


def test_it_installs_the_package_and_runs_the_cli() -> None:
    text = DOCKERFILE.read_text()
    build, final = stages(text)[0], stages(text)[-1]
    assert any(word == "RUN" and "pip wheel" in rest and rest.rstrip().endswith(" .") for word, rest in build)
    assert any(word == "RUN" and "pip install" in rest and "--no-cache-dir" in rest for word, rest in final)
    assert ("ENTRYPOINT", '["autodeploy"]') in final
    # The installed package has no repository around it: the catalog must be named explicitly.
    assert re.search(r"AUTODEPLOY_TOPICS_CATALOG=(\S+)", text)


def test_no_secret_goes_into_the_image() -> None:
    text = DOCKERFILE.read_text()
    for word, rest in instructions(text):
        if word in ("ENV", "ARG"):
            for name in re.findall(r"(\w+)=", rest):
                assert not re.search(r"SECRET|TOKEN|PASSWORD|PRIVATE|CREDENTIAL|API_KEY", name), f"{word} {name}"
        if word in ("COPY", "ADD"):
            assert not re.search(r"\.env\b|\.pem\b|id_rsa|\.key\b|kubeconfig|\.netrc", rest, re.IGNORECASE), rest
        assert word != "ADD" or "://" not in rest, "ADD from a URL is unpinned and unverified"


def test_everything_copied_exists_and_is_not_ignored() -> None:
    ignored = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for ignore in (".git", ".venv", "tests"):
        assert ignore in ignored, f".dockerignore should keep {ignore} out of the build context"
    for word, rest in instructions(DOCKERFILE.read_text()):
        if word == "COPY" and "--from=" not in rest:
            for source in rest.split()[:-1]:
                assert (ROOT / source).exists(), source
                assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is ignored"


def test_the_image_installs_the_runtime_dependencies_only() -> None:
    """Extras (dev: pytest, testcontainers, ...; report: matplotlib) stay out of the production image."""
    installs = [
        rest for stage in stages(DOCKERFILE.read_text()) for word, rest in stage if word == "RUN" and "pip" in rest
    ]
    assert installs, "the Dockerfile installs nothing with pip"
    for command in installs:
        assert "[" not in command, f"{command}: installs an extra"
        assert "requirements" not in command, f"{command}: installs beside pyproject's dependencies"
