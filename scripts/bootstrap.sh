#!/usr/bin/env bash
# Prepares a fresh Debian machine for certlc: system tools through apt where they are missing,
# a virtual environment in .venv with the locked dependencies, and certlc installed editable.
# Idempotent and quick when nothing changed: a stamp records the lock file it installed.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"

python="${PYTHON:-python3.11}"
command -v "$python" >/dev/null 2>&1 || python=python3

apt_missing=()
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null 2>&1 || apt_missing+=(nats-server)
command -v kubectl >/dev/null 2>&1 || apt_missing+=(kubernetes-client)
command -v openssl >/dev/null 2>&1 || apt_missing+=(openssl)
# htpasswd: bcrypt hashes in deploy/nats-credentials.sh (tests/deploy runs it with each hasher).
command -v htpasswd >/dev/null 2>&1 || apt_missing+=(apache2-utils)
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || apt_missing+=(python3-venv)
# The image test (tests/image): build the image without a Docker engine or a registry, and run it.
command -v podman >/dev/null 2>&1 || apt_missing+=(podman)
command -v buildah >/dev/null 2>&1 || apt_missing+=(buildah)
command -v runc >/dev/null 2>&1 || apt_missing+=(runc)
[ -x /usr/sbin/debootstrap ] || command -v debootstrap >/dev/null 2>&1 || apt_missing+=(debootstrap)
# compose.yaml with podman-compose (tests/image), whose containers find each other by name
# through the CNI dnsname plugin.
command -v podman-compose >/dev/null 2>&1 || apt_missing+=(podman-compose)
[ -e /usr/lib/cni/dnsname ] || apt_missing+=(golang-github-containernetworking-plugin-dnsname)
# promtool (Debian ships it in package prometheus): tests of deploy/components/monitoring's rules.
command -v promtool >/dev/null 2>&1 || apt_missing+=(prometheus)
if [ "${#apt_missing[@]}" -gt 0 ]; then
    echo "bootstrap: installing with apt: ${apt_missing[*]}" >&2
    sudo_cmd=""
    [ "$(id -u)" -eq 0 ] || sudo_cmd="sudo"
    $sudo_cmd apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends \
        "${apt_missing[@]}" >/dev/null
fi

# pip, with the notes some machines' pip configuration prints about absent local indexes filtered
# out; its exit status is kept.
pip_quiet() {
    local log rc=0
    log="$(mktemp)"
    .venv/bin/python -m pip -q "$@" >"$log" 2>&1 || rc=$?
    [ "$rc" -eq 0 ] || cat "$log" >&2

    rm -f "$log"
    return "$rc"
}

if [ ! -x .venv/bin/python ]; then
    echo "bootstrap: creating .venv" >&2
    "$python" -m venv .venv
fi
stamp=.venv/.certlc-lock.sha256
want="$(sha256sum requirements.lock pyproject.toml dev/pyproject.toml | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing locked dependencies" >&2
    pip_quiet install --upgrade pip
    pip_quiet install --require-hashes -r requirements.lock
    pip_quiet install --no-deps -e . -e ./dev
    echo "$want" > "$stamp"
fi
