#!/usr/bin/env bash
# Creates Secret certlc-nats-credentials in namespace certlc-system (or $NAMESPACE): one random
# password per certlc NATS user (keys watcher, lifecycle, issuer, rollout, external). The NATS
# server of deploy/nats reads them as CERTLC_<USER>_PASSWORD; each certlc Deployment mounts its
# own key as a read-only file (CERTLC_NATS_PASSWORD_FILE). An existing Secret is left untouched
# (delete it first to rotate every password, then restart NATS; the services read the file
# again when they reconnect). Passwords are hex: safe in a file, a URL or a config variable.
#
#   deploy/nats-credentials.sh                 # before `kubectl apply -k deploy/overlays/...`
#   deploy/nats-credentials.sh --print external   # show one password (e.g. for tooling)
set -euo pipefail

namespace="${NAMESPACE:-certlc-system}"
name=certlc-nats-credentials
users=(watcher lifecycle issuer rollout external)

if [ "${1:-}" = "--print" ]; then
    key="${2:?usage: $0 --print <watcher|lifecycle|issuer|rollout|external>}"
    kubectl get secret -n "$namespace" "$name" -o "jsonpath={.data.${key}}" | base64 -d
    echo
    exit 0
fi

if kubectl get secret -n "$namespace" "$name" >/dev/null 2>&1; then
    echo "secret $namespace/$name exists: left as it is" >&2
    exit 0
fi

kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null

umask 077
envfile="$(mktemp)"
trap 'rm -f "$envfile"' EXIT
for user in "${users[@]}"; do
    # 32 random bytes, hex: no character that would need escaping anywhere.
    printf '%s=%s\n' "$user" "$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')" >>"$envfile"
done
kubectl create secret generic "$name" -n "$namespace" --from-env-file="$envfile" >/dev/null
echo "secret $namespace/$name created with passwords for: ${users[*]}" >&2
