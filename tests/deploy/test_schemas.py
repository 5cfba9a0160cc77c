"""Every rendered object validates, offline and strictly (no unknown field), against the
Kubernetes 1.30 OpenAPI schemas shipped in the `kubernetes-validate` package."""

from __future__ import annotations

from typing import Any

import pytest

from tests.deploy.manifests import OVERLAYS, overlay, render

kubernetes_validate: Any = pytest.importorskip(
    "kubernetes_validate",
    reason="kubernetes-validate is not installed (dev dependency kubernetes-validate==1.37.0)",
)

KUBERNETES_VERSION = "1.30.0"


def invalid(objects: tuple[dict[str, Any], ...]) -> list[str]:
    problems = []
    for obj in objects:
        where = f"{obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        try:
            validated = kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            problems.append(f"{where}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            problems.append(f"{where}: no schema: {exc.message}")
        else:
            assert validated == "1.30", f"{where} validated against {validated}"
    return problems


@pytest.mark.parametrize("name", OVERLAYS)
def test_overlay_objects_are_valid_kubernetes_1_30(name: str) -> None:
    objects = overlay(name)
    assert objects
    assert invalid(objects) == []


def test_crds_are_valid_kubernetes_1_30() -> None:
    objects = render("crds")
    assert {obj["kind"] for obj in objects} == {"CustomResourceDefinition"}
    assert invalid(objects) == []


def test_the_validator_rejects_what_the_api_server_would() -> None:
    """The check is real: an unknown field and a wrong type are reported."""
    deployment = next(o for o in overlay("default") if o["kind"] == "Deployment")
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 1}}
    wrong = {**deployment, "spec": {**deployment["spec"], "replicas": "one"}}
    assert len(invalid((typo,))) == 1
    assert len(invalid((wrong,))) == 1
