#!/usr/bin/env bash
# Creates the NATS credentials of certlc in namespace certlc-system (or $NAMESPACE), keys watcher,
# lifecycle, issuer, rollout, external in both Secrets:
#
# - certlc-nats-credentials: one random password per certlc NATS user, for the clients. Each
#   certlc Deployment mounts its own key as a read-only file (CERTLC_NATS_PASSWORD_FILE).
# - certlc-nats-server-auth: a bcrypt hash (cost 11) of each password, for the server of
#   deploy/nats, which reads them as CERTLC_<USER>_PASSWORD: it never holds a plaintext password.
#   Each value is double-quoted ("$2b$11$..."): nats-server reads an environment variable's value
#   as configuration, where a bare $2b$... would be taken for a variable reference.
#
# An existing Secret is left untouched. If only certlc-nats-credentials exists (an installation
# from before the server Secret), the hashes are made from its passwords. To rotate every
# password, delete both Secrets, run this again, then restart NATS; the services read the file
# again when they reconnect. Passwords are hex: safe in a file, a URL or a config variable.
#
# Hashing needs htpasswd (Debian package apache2-utils) or python3 with the bcrypt module; the
# passwords reach either one on stdin, never on a command line.
#
#   deploy/nats-credentials.sh                 # before `kubectl apply -k deploy/overlays/...`
#   deploy/nats-credentials.sh --print external   # show one password (e.g. for tooling)
set -euo pipefail

namespace="${NAMESPACE:-certlc-system}"
name=certlc-nats-credentials
server_name=certlc-nats-server-auth
users=(watcher lifecycle issuer rollout external)
cost=11

if [ "${1:-}" = "--print" ]; then
    key="${2:?usage: $0 --print <watcher|lifecycle|issuer|rollout|external>}"
    kubectl get secret -n "$namespace" "$name" -o "jsonpath={.data.${key}}" | base64 -d
    echo
    exit 0
fi

exists() {
    kubectl get secret -n "$namespace" "$1" >/dev/null 2>&1
}

have_client=false
have_server=false
exists "$name" && have_client=true
exists "$server_name" && have_server=true

if $have_client && $have_server; then
    echo "secrets $namespace/$name and $namespace/$server_name exist: left as they are" >&2
    exit 0
fi
if $have_server; then
    echo "error: secret $namespace/$server_name exists without $namespace/$name: its hashes" \
        "match no known password; delete it and run this again" >&2
    exit 1
fi

if command -v htpasswd >/dev/null 2>&1; then
    hasher=htpasswd
elif python3 -c 'import bcrypt' >/dev/null 2>&1; then
    hasher=python3
else
    echo "error: no bcrypt hasher: install htpasswd (Debian/Ubuntu: apt-get install" \
        "apache2-utils) or the Python bcrypt module for python3 (apt-get install python3-bcrypt," \
        "or pip install bcrypt)" >&2
    exit 1
fi

# The bcrypt hash of the password read on stdin.
bcrypt_hash() {
    if [ "$hasher" = htpasswd ]; then
        # -i: the password from stdin; output "certlc:<hash>" and an empty line.
        htpasswd -niBC "$cost" certlc | sed -n '1s/^certlc://p'
    else
        python3 -c 'import sys, bcrypt
print(bcrypt.hashpw(sys.stdin.buffer.read(), bcrypt.gensalt(int(sys.argv[1]))).decode())' "$cost"
    fi
}

umask 077
workdir="$(mktemp -d)"
trap 'rm -rf "$workdir"' EXIT
envfile="$workdir/passwords.env"
hashfile="$workdir/hashes.env"

if $have_client; then
    echo "secret $namespace/$name exists: hashing its passwords for $server_name" >&2
else
    kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
fi

for user in "${users[@]}"; do
    if $have_client; then
        password="$(kubectl get secret -n "$namespace" "$name" -o "jsonpath={.data.${user}}" |
            base64 -d)"
        if [ -z "$password" ]; then
            echo "error: secret $namespace/$name has no key $user" >&2
            exit 1
        fi
    else
        # 32 random bytes, hex: no character that would need escaping anywhere.
        password="$(od -An -N32 -tx1 /dev/urandom | tr -d ' \n')"
        printf '%s=%s\n' "$user" "$password" >>"$envfile"
    fi
    hash="$(printf '%s' "$password" | bcrypt_hash)"
    if [[ ! "$hash" =~ ^\$2[aby]\$[0-9]{2}\$.{53}$ ]]; then
        echo "error: $hasher did not return a bcrypt hash" >&2
        exit 1
    fi
    printf '%s="%s"\n' "$user" "$hash" >>"$hashfile"
done

if ! $have_client; then
    kubectl create secret generic "$name" -n "$namespace" --from-env-file="$envfile" >/dev/null
    echo "secret $namespace/$name created with passwords for: ${users[*]}" >&2
fi
kubectl create secret generic "$server_name" -n "$namespace" --from-env-file="$hashfile" >/dev/null
echo "secret $namespace/$server_name created with their bcrypt hashes ($hasher)" >&2
