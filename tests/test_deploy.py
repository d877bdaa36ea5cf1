"""The deployment files, checked offline: every Kubernetes manifest against the API schemas
(kubernetes-validate bundles them), the compose file's shape, and the Dockerfile's promises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
MANIFESTS = sorted((DEPLOY / "k8s").glob("*.yaml"))
COFFER_COMMANDS = {"serve", "worker", "beat", "migrate"}


def _documents(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text()) if document]


def _commands(document: dict[str, Any]) -> list[list[str]]:
    spec = document["spec"]
    pod = spec["template"]["spec"] if "template" in spec else spec
    return [container["command"] for container in pod.get("containers", [])]


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda path: path.name)
def test_each_manifest_validates_against_the_kubernetes_schema(path: Path) -> None:
    documents = _documents(path)
    assert documents
    for document in documents:
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_the_manifests_run_every_part_and_beat_exactly_once() -> None:
    documents = [document for path in MANIFESTS for document in _documents(path)]
    deployments = {d["metadata"]["name"]: d for d in documents if d["kind"] == "Deployment"}
    assert set(deployments) == {"coffer-api", "coffer-worker", "coffer-beat", "coffer-flower"}
    assert deployments["coffer-beat"]["spec"]["replicas"] == 1
    assert deployments["coffer-beat"]["spec"]["strategy"]["type"] == "Recreate"
    verbs = {
        command[3]
        for document in documents
        if document["kind"] in ("Deployment", "Job")
        for command in _commands(document)
        if command[:3] == ["python", "-m", "coffer"]
    }
    assert verbs == COFFER_COMMANDS


def test_compose_runs_migrations_first_and_the_scaled_parts() -> None:
    services = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert {"postgres", "redis", "migrate", "api", "worker", "beat", "flower"} <= set(services)
    for name in ("api", "worker", "beat", "flower"):
        assert services[name]["depends_on"]["migrate"]["condition"] == (
            "service_completed_successfully"
        )
        assert services[name]["environment"]["COFFER_BROKER_URL"].startswith("redis://")


def test_the_image_installs_the_hash_pinned_lock_and_runs_unprivileged() -> None:
    dockerfile = (DEPLOY / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile
    assert "requirements/app.lock" in dockerfile
    assert dockerfile.count("FROM ") == 2
    assert "USER coffer" in dockerfile
    assert "HEALTHCHECK" in dockerfile
