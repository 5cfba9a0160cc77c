"""deploy/Dockerfile, read statically (no Docker engine here): two stages, a runtime stage with
only the builder's venv, a non-root user, hash-checked installs, and a build context
(.dockerignore) that holds what the COPY lines need and nothing else of note."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field

from packaging.requirements import Requirement
from packaging.version import Version

from tests.deploy.manifests import DEPLOY, REPO, SERVICES

DOCKERFILE = DEPLOY / "Dockerfile"


@dataclass
class Stage:
    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]


def instructions() -> list[tuple[str, str]]:
    """(KEYWORD, arguments) with continuation lines joined and comments dropped."""
    logical: list[str] = []
    pending = ""
    for line in DOCKERFILE.read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    return [(text.split(None, 1)[0].upper(), text.split(None, 1)[1]) for text in logical]


def stages() -> tuple[dict[str, str], list[Stage]]:
    args: dict[str, str] = {}
    found: list[Stage] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            words = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
            name = words[2] if len(words) > 2 and words[1].upper() == "AS" else ""
            found.append(Stage(base, name))
        elif not found and keyword == "ARG":
            key, _, value = rest.partition("=")
            args[key] = value
        else:
            found[-1].instructions.append((keyword, rest))
    return args, found


def test_two_stages_and_a_slim_python_runtime() -> None:
    _, (builder, runtime) = stages()
    assert builder.name == "builder"
    assert runtime.base.startswith("python:3.11-slim")
    assert builder.base == runtime.base  # the venv's interpreter path is the same in both
    with (REPO / "pyproject.toml").open("rb") as fh:
        assert ">=3.11" in tomllib.load(fh)["project"]["requires-python"]


def test_runtime_gets_only_the_venv_and_runs_as_10001() -> None:
    _, (_, runtime) = stages()
    assert runtime.all("COPY") == ["--from=builder /opt/certlc /opt/certlc"]
    assert runtime.all("ADD") == []
    assert runtime.all("USER") == ["10001:10001"]
    assert [kw for kw, _ in runtime.instructions][-1] in ("CMD", "EXPOSE")
    assert runtime.all("ENTRYPOINT") == []  # each Deployment/compose service picks its command
    env = " ".join(runtime.all("ENV"))
    assert "PATH=/opt/certlc/bin:" in env
    for run in runtime.all("RUN"):
        assert "apt-get install" not in run
        assert "pip install" not in run
        assert "useradd" in run or "uninstall" in run
    (user_setup,) = runtime.all("RUN")
    assert "--uid 10001" in user_setup
    assert "--gid 10001" in user_setup
    assert "pip uninstall" in user_setup  # no pip at run time
    assert runtime.all("EXPOSE") == ["8080"]


def test_builder_installs_hash_checked_runtime_dependencies_only() -> None:
    _, (builder, _) = stages()
    runs = " ".join(" ".join(run.split()) for run in builder.all("RUN"))
    (install,) = [cmd for cmd in runs.split("&&") if "-c /tmp/constraints.txt" in cmd]
    assert "--require-hashes" in install.split()
    assert "--only-binary=:all:" in install.split()
    assert "--no-compile" in install.split()  # bytecode: the start-up modules only, below
    assert "cp requirements.lock /tmp/constraints.txt" in runs
    assert "--no-build-isolation" in runs  # the build backend is the hash-pinned one
    assert "python -m venv --without-pip /opt/certlc" in runs
    for service in SERVICES:
        assert f"/opt/certlc/bin/certlc-{service}" in runs
    assert '! /opt/certlc/bin/python -c "import pytest"' in runs  # dev tools stay out
    assert "--invalidation-mode unchecked-hash -i /tmp/startup-modules.txt" in runs


def test_sdist_only_packages_are_built_from_the_locked_sdist() -> None:
    """nkeys is published as an sdist only: the download is checked against the lock's hash
    (`pip download --require-hashes`), and the wheel built from it is installed by its own hash;
    only those packages leave the constraints."""
    _, (builder, _) = stages()
    sdist_only = [a for a in builder.all("ARG") if a.startswith("SDIST_ONLY=")]
    assert sdist_only == ['SDIST_ONLY="nkeys"']
    lock = (REPO / "requirements.lock").read_text()
    block = re.search(r"^nkeys==\S+ \\\n((?:\s+--hash=sha256:\w+ ?\\?\n)+)", lock, re.M)
    assert block, "nkeys is pinned with hashes in the lock"
    runs = " ".join(" ".join(run.split()) for run in builder.all("RUN"))
    assert "pip download --no-deps --no-binary=:all: --require-hashes -r /tmp/sdists.txt" in runs
    assert "pip wheel --no-deps --no-build-isolation --no-index" in runs
    assert "--hash=sha256:$(sha256sum" in runs


def test_every_pip_step_may_use_the_build_ca_secret_and_nothing_stores_it() -> None:
    _, (builder, runtime) = stages()
    for run in builder.all("RUN"):
        if "pip " in run:
            assert run.startswith("--mount=type=secret,id=build-ca "), run
            assert "export PIP_CERT=/run/secrets/build-ca" in run
    assert not any("build-ca" in run for run in runtime.all("RUN"))
    assert all("build-ca" not in env for env in builder.all("ENV") + runtime.all("ENV"))


def test_no_module_imports_the_asyncio_kubernetes_client() -> None:
    """The Dockerfile removes kubernetes.aio from the image: nothing may need it."""
    offenders = [
        str(path.relative_to(REPO))
        for top in ("libs", "services")
        for path in (REPO / top).rglob("*.py")
        if re.search(r"\bkubernetes\.aio\b|from kubernetes import aio\b", path.read_text())
    ]
    assert offenders == []
    assert 'rm -r "${site}/kubernetes/aio"' in DOCKERFILE.read_text()


def test_build_requirements_are_pinned_with_hashes_and_fit_pyproject() -> None:
    text = (DEPLOY / "build-requirements.txt").read_text()
    blocks = [b for b in re.split(r"\n(?=\S)", text) if b.strip() and not b.startswith("#")]
    pins = {}
    for block in blocks:
        requirement = Requirement(block.split("\\")[0].strip())
        (spec,) = requirement.specifier
        assert spec.operator == "=="
        assert re.search(r"--hash=sha256:[0-9a-f]{64}", block), requirement.name
        pins[requirement.name] = Version(spec.version)
    assert set(pins) == {"pip", "setuptools"}
    with (REPO / "pyproject.toml").open("rb") as fh:
        (backend,) = tomllib.load(fh)["build-system"]["requires"]
    wanted = Requirement(backend)
    assert wanted.name == "setuptools"
    assert wanted.specifier.contains(pins["setuptools"])


def _dockerignore_regex(pattern: str) -> re.Pattern[str]:
    """Docker's .dockerignore matching: `**` any depth, `*` and `?` within one path element."""
    out = ""
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out += "(?:.*/)?"
            i += 3
        elif pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def context_files() -> list[str]:
    """Files that .dockerignore lets into the build context (the last matching rule wins; a
    rule matching a directory matches everything below it)."""
    rules = [
        (line.startswith("!"), _dockerignore_regex(line.lstrip("!").strip("/")))
        for line in (line.strip() for line in (REPO / ".dockerignore").read_text().splitlines())
        if line and not line.startswith("#")
    ]
    included = []
    for path in REPO.rglob("*"):
        if not path.is_file() or ".git" in path.parts or ".venv" in path.parts:
            continue
        relative = path.relative_to(REPO).as_posix()
        parts = relative.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        keep = True
        for negate, regex in rules:
            if any(regex.fullmatch(prefix) for prefix in prefixes):
                keep = negate
        if keep:
            included.append(relative)
    return included


def test_context_holds_what_copy_needs_and_no_local_state() -> None:
    _, (builder, _) = stages()
    included = context_files()
    for copy in builder.all("COPY"):
        *sources, _ = copy.split()
        for source in sources:
            if source.endswith("*"):  # optional files (README.md*)
                continue
            assert any(p == source or p.startswith(source.rstrip("/") + "/") for p in included), (
                f"COPY {source}: excluded by .dockerignore or missing"
            )
    assert "libs/contracts/subjects.py" in included
    assert "requirements.lock" in included
    for unwanted in ("tests/", "docs/", ".demo/", "compose.yaml", "deploy/base/"):
        assert not any(p.startswith(unwanted) for p in included), unwanted
    assert not any("__pycache__" in p or p.endswith(".pyc") for p in included)
