"""Building and running the certlc image without a Docker engine or a registry: Debian's
podman, buildah and debootstrap.

- `base_image()`: a local stand-in for `python:3.11-slim-bookworm`, made with
  `debootstrap --variant=minbase bookworm` (python3, python3-venv, python-is-python3) and
  committed with buildah. The mirror is the one apt is configured with on this machine
  (`apt_mirror()`). It is cached in a private container storage under the user's cache
  directory, tagged with a hash of its recipe: it is built once per recipe.
- `build_image()`: `buildah bud -f deploy/Dockerfile --build-arg PYTHON_IMAGE=<base>`, with the
  host's CA bundle as the build secret `build-ca`, which the Dockerfile mounts read-only into
  its pip steps (pip behind a TLS-intercepting proxy); it is never copied into the image.
- `environment()`: a private containers.conf (`CONTAINERS_CONF`: runc, since crun refuses
  hybrid cgroups; explicit `default_ulimits`, since raising limits is not permitted here;
  cgroupfs) and storage.conf (`CONTAINERS_STORAGE_CONF`).
- `unavailable()`: why podman cannot run containers here, or None.
- `nats_image()` and `compose_unavailable()`: for running compose.yaml with podman-compose.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv", "python-is-python3")
# Removed from the base after debootstrap, as the python:*-slim images do: apt's package lists
# and downloaded archives, documentation, manual pages, translations. The stdlib's bytecode
# stays (start-up on a read-only root filesystem).
BASE_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BASE_CONFIG = (
    "--env",
    "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "--env",
    "LANG=C.UTF-8",
    "--cmd",
    "python3",
)
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=4096:4096", "nproc=4096:4096"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""
BUILD_CA_TARGET = "/run/secrets/build-ca"
HOST_CA_BUNDLES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")
TOOLS = ("podman", "buildah", "debootstrap")


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "certlc" / "image-test"


def recipe_hash() -> str:
    recipe = repr((SUITE, "minbase", BASE_PACKAGES, BASE_PRUNE, BASE_CONFIG))
    return hashlib.sha256(recipe.encode()).hexdigest()[:12]


def base_tag() -> str:
    return f"localhost/certlc-test-base:{SUITE}-{recipe_hash()}"


def environment() -> dict[str, str]:
    """os.environ with the private containers.conf and storage.conf (written on first use)."""
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    conf = root / "containers.conf"
    storage = root / "storage.conf"
    conf.write_text(CONTAINERS_CONF)
    storage.write_text(
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{root / "storage"}"\n'
        f'runroot = "{root / "run"}"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf), "CONTAINERS_STORAGE_CONF": str(storage)}


def run(
    *args: str,
    timeout: float = 300,
    check: bool = True,
    input_bytes: bytes | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        list(args),
        env={**environment(), **(extra_env or {})},
        capture_output=True,
        text=input_bytes is None,
        input=input_bytes,
        timeout=timeout,
        check=False,
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(args[:3])} ... exited {result.returncode}:\n"
            f"{_text(result.stdout)[-3000:]}\n{_text(result.stderr)[-3000:]}"
        )
    return result


def _text(value: str | bytes | None) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value or ""


def missing_tools() -> list[str]:
    return [tool for tool in TOOLS if shutil.which(tool) is None and not _in_sbin(tool)]


def _in_sbin(tool: str) -> bool:
    return any(os.access(f"{d}/{tool}", os.X_OK) for d in ("/usr/sbin", "/sbin"))


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found:
        return found
    for directory in ("/usr/sbin", "/sbin"):
        if os.access(f"{directory}/{name}", os.X_OK):
            return f"{directory}/{name}"
    raise FileNotFoundError(name)


def apt_mirror(etc: Path = Path("/etc/apt")) -> str | None:
    """The Debian archive apt uses here (a `deb` entry with component main, not the security
    archive), from sources.list and sources.list.d (one-line and deb822 formats)."""
    entries: list[tuple[list[str], list[str], list[str], bool]] = []  # uris, suites, comps, on
    files = [etc / "sources.list"] if (etc / "sources.list").is_file() else []
    if (etc / "sources.list.d").is_dir():
        files += sorted((etc / "sources.list.d").iterdir())
    for path in files:
        if path.suffix == ".list" or path.name == "sources.list":
            for line in path.read_text().splitlines():
                words = re.sub(r"\[[^]]*\]", "", line.split("#", 1)[0]).split()
                if len(words) >= 4 and words[0] == "deb":
                    entries.append(([words[1]], [words[2]], words[3:], True))
        elif path.suffix == ".sources":
            for stanza in re.split(r"\n\s*\n", path.read_text()):
                fields: dict[str, str] = {}
                for line in stanza.splitlines():
                    if line.startswith("#") or ":" not in line:
                        continue
                    key, _, value = line.partition(":")
                    fields[key.strip().lower()] = value.strip()
                if "deb" not in fields.get("types", "").split():
                    continue
                enabled = fields.get("enabled", "yes").lower() != "no"
                entries.append(
                    (
                        fields.get("uris", "").split(),
                        fields.get("suites", "").split(),
                        fields.get("components", "").split(),
                        enabled,
                    )
                )
    candidates = [
        (uri, suites)
        for uris, suites, components, enabled in entries
        if enabled and "main" in components
        for uri in uris
        if not any("security" in s for s in suites) and uri.startswith(("http", "file:", "ftp"))
    ]
    for uri, suites in candidates:  # one that serves the suite we build, else any Debian one
        if SUITE in suites:
            return uri
    for uri, _ in candidates:
        if "debian" in uri:
            return uri
    return None


def image_exists(tag: str) -> bool:
    return run(_tool("podman"), "image", "exists", tag, check=False).returncode == 0


@contextlib.contextmanager
def _locked(name: str) -> Iterator[None]:
    cache_dir().mkdir(parents=True, exist_ok=True)
    with (cache_dir() / f"{name}.lock").open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        yield


def base_image() -> str:
    """The cached base image's tag; built (about 1-2 minutes) when its recipe changed."""
    tag = base_tag()
    with _locked("base"):
        if image_exists(tag):
            return tag
        mirror = apt_mirror()
        if mirror is None:
            raise RuntimeError("no Debian archive found in apt's sources for debootstrap")
        with tempfile.TemporaryDirectory(dir=cache_dir(), prefix="rootfs-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            run(
                _tool("debootstrap"),
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                mirror,
                timeout=900,
            )
            for relative in BASE_PRUNE:
                target = rootfs / relative
                if target.is_dir():
                    for child in target.iterdir():
                        if child.is_dir() and not child.is_symlink():
                            shutil.rmtree(child)
                        else:
                            child.unlink()
            buildah = _tool("buildah")
            container = run(buildah, "from", "scratch").stdout.strip()
            try:
                mount = run(buildah, "mount", container).stdout.strip()
                tar = subprocess.run(
                    ["tar", "-C", str(rootfs), "-cf", "-", "."],
                    capture_output=True,
                    check=True,
                    timeout=300,
                )
                subprocess.run(
                    ["tar", "-C", mount, "-xf", "-"], input=tar.stdout, check=True, timeout=300
                )
                run(buildah, "umount", container)
                run(buildah, "config", *BASE_CONFIG, container)
                run(buildah, "commit", "--quiet", container, tag)
            finally:
                run(buildah, "rm", container, check=False)
    return tag


def host_ca_bundle() -> str | None:
    for path in HOST_CA_BUNDLES:
        if Path(path).is_file():
            return path
    return None


def build_image(tag: str, base: str) -> None:
    """`buildah bud` of deploy/Dockerfile on `base` (the previous image of `tag` removed)."""
    args = [
        _tool("buildah"),
        "bud",
        "--quiet",
        "--layers=false",
        "--network",
        "host",
        "--build-arg",
        f"PYTHON_IMAGE={base}",
        "-f",
        str(REPO / "deploy" / "Dockerfile"),
        "-t",
        tag,
    ]
    bundle = host_ca_bundle()
    if bundle:
        args += ["--secret", f"id=build-ca,src={bundle}"]
    run(*args, str(REPO), timeout=900)


def image_size(tag: str) -> int:
    return int(run(_tool("podman"), "image", "inspect", "--format", "{{.Size}}", tag).stdout)


def unavailable() -> str | None:
    """Why the image test cannot run here, or None when podman can run a container."""
    missing = missing_tools()
    if missing:
        return f"{', '.join(missing)} not installed (scripts/bootstrap.sh installs them with apt)"
    try:
        probe = run(
            _tool("podman"),
            "info",
            "--format",
            "{{.Host.OCIRuntime.Name}}",
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"podman info failed: {exc}"
    if probe.returncode != 0:
        return f"podman cannot work here: {_text(probe.stderr).strip()[-500:]}"
    return None


def podman() -> str:
    return _tool("podman")


def nats_image(base: str) -> str:
    """A local nats-server image: `base` with this machine's nats-server binary (a static Go
    build) as entrypoint, standing in for the public `nats` image compose.yaml names, which no
    registry here serves. Cached, keyed by the base and the binary."""
    binary = Path(_tool("nats-server")).resolve()
    digest = hashlib.sha256(base.encode() + WGET_SCRIPT.encode() + binary.read_bytes())
    tag = f"localhost/certlc-test-nats:{digest.hexdigest()[:12]}"
    with _locked("nats"):
        if image_exists(tag):
            return tag
        buildah = _tool("buildah")
        container = run(buildah, "from", "--pull=never", base).stdout.strip()
        try:
            run(buildah, "copy", container, str(binary), "/usr/local/bin/nats-server")
            # compose.yaml's healthcheck runs `wget -q -O /dev/null URL`, as the public image
            # (busybox) has it; the base has python, not wget.
            wget = tempfile.NamedTemporaryFile("w", suffix=".py", delete=False)  # noqa: SIM115
            with wget:
                wget.write(WGET_SCRIPT)
            try:
                run(buildah, "copy", "--chmod", "0755", container, wget.name, "/usr/local/bin/wget")
            finally:
                os.unlink(wget.name)
            run(buildah, "config", "--entrypoint", '["/usr/local/bin/nats-server"]', container)
            run(buildah, "config", "--cmd", "[]", container)
            run(buildah, "commit", "--quiet", container, tag)
        finally:
            run(buildah, "rm", container, check=False)
    return tag


WGET_SCRIPT = """\
#!/usr/bin/python3
# `wget -q -O /dev/null URL`: exit 0 when URL answers 2xx, else 1.
import sys, urllib.request
try:
    urllib.request.urlopen(sys.argv[-1], timeout=5)
except Exception:
    sys.exit(1)
"""


def compose_unavailable() -> str | None:
    """Why podman-compose cannot run compose.yaml here, or None."""
    if shutil.which("podman-compose") is None:
        return "podman-compose not installed (scripts/bootstrap.sh installs it with apt)"
    if not any(Path(d, "dnsname").exists() for d in CNI_PLUGIN_DIRS):
        return (
            "the CNI dnsname plugin is missing: containers could not resolve each other's names "
            "(scripts/bootstrap.sh installs golang-github-containernetworking-plugin-dnsname)"
        )
    return None


# Where podman's CNI backend looks for plugins (Debian: /usr/lib/cni).
CNI_PLUGIN_DIRS = ("/usr/lib/cni", "/usr/libexec/cni", "/opt/cni/bin")
