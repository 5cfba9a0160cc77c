"""A watcher restart loses no deletion: Secrets deleted while it was down are re-created."""

from __future__ import annotations

from certlc_dev.devenv.stack import ServiceProcess
from tests.e2e.harness import Stack, wait_for

LABEL = "kamaji.clastix.io/certificate_lifecycle_controller"
X509 = f"{LABEL}=x509"


def test_secrets_deleted_while_the_watcher_was_down_come_back(stack: Stack, tenant: str) -> None:
    before = stack.secrets(tenant)
    x509 = {
        name: secret["metadata"]["uid"]
        for name, secret in before.items()
        if (secret["metadata"].get("labels") or {}).get(LABEL) == "x509"
    }
    assert len(x509) == 4, sorted(before)
    (watcher,) = stack.services.by_name("watcher")
    watcher.kill()  # SIGKILL: nothing published on the way out
    assert watcher.stop() == -9  # (closes its log)

    stack.kubectl(
        "delete", "secret", "-n", "default", "-l", f"{X509},kamaji.clastix.io/name={tenant}"
    )
    assert not set(x509) & set(stack.secrets(tenant))

    restart(stack, watcher)

    def all_back() -> dict[str, dict[str, object]] | None:
        now = stack.secrets(tenant)
        return now if set(x509) <= set(now) else None

    back = wait_for(
        all_back,
        60,
        "the deleted x509 Secrets re-created after the restart",
    )
    assert all(back[name]["metadata"]["uid"] != uid for name, uid in x509.items())
    wait_for(lambda: stack.deployment_done(tenant), 60, "the rollout of the new Secrets")


def restart(stack: Stack, process: ServiceProcess) -> None:
    process.start()
    stack.services.wait_ready(60, [process])
