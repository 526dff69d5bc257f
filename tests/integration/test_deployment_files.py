"""The deployment files in infra/: the compose file is accepted by ``docker compose config``, the
Kubernetes manifests render with ``kubectl kustomize``, and both name only real settings, probe
the right endpoints and run the app as a non-root user. No server or Docker engine is needed;
a missing docker compose or kubectl skips only the test that runs it, and infra/test.sh (CI)
installs Compose first, so there it runs."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from repository.settings import Settings

INFRA = Path(__file__).resolve().parents[2] / "infra"
SETTINGS = {f"OLOGIES_{name.upper()}" for name in Settings.model_fields}


def compose_cli() -> list[str] | None:
    """``OLOGIES_TEST_COMPOSE`` (set by infra/test.sh from infra/install-compose.sh), else the
    docker CLI's compose plugin if it is here."""
    if named := os.environ.get("OLOGIES_TEST_COMPOSE"):
        return shlex.split(named)
    if shutil.which("docker"):
        probe = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
        if probe.returncode == 0:
            return ["docker", "compose"]
    return None


def k8s_documents() -> list[dict]:
    docs: list[dict] = []
    for path in sorted((INFRA / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_docker_compose_config_accepts_the_compose_file():
    cli = compose_cli()
    if cli is None:
        pytest.skip("docker compose is not installed (run infra/install-compose.sh; no engine is needed)")
    done = subprocess.run([*cli, "-f", str(INFRA / "compose.yml"), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    import json

    services = json.loads(done.stdout)["services"]
    apps = [name for name in services if name.startswith("app-")]
    assert len(apps) >= 2
    for name in apps:
        app = services[name]
        assert app["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert app["user"] == "10001:10001" and app["read_only"] is True
        assert "/readyz" in " ".join(app["healthcheck"]["test"])
        assert all(p["host_ip"] == "127.0.0.1" for p in app["ports"])
    assert services["init"]["command"] == ["init"]
    for backend in ("minio", "elasticsearch"):
        assert "healthcheck" in services[backend] and not services[backend].get("ports")
        tag = services[backend]["image"].rsplit(":", 1)[-1]
        assert re.search(r"[0-9]", tag) and tag != "latest", "pin the image version"
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"


def test_compose_file_names_only_real_settings():
    compose = yaml.safe_load((INFRA / "compose.yml").read_text())
    names = set(compose["x-app"]["environment"])
    assert names <= SETTINGS, names - SETTINGS


def test_kubernetes_manifests_render_with_kustomize():
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed")
    done = subprocess.run(["kubectl", "kustomize", str(INFRA / "k8s")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    kinds = {d["kind"] for d in yaml.safe_load_all(done.stdout) if d}
    assert {"Deployment", "Service", "ConfigMap", "Job", "Namespace", "PodDisruptionBudget"} <= kinds
    assert "Secret" not in kinds, "apply -k would create, or overwrite the real Secret with, the placeholders"


def test_kustomization_leaves_the_example_secret_out():
    """The operator creates the real Secret; the example's placeholders are refused by the app."""
    kustomization = yaml.safe_load((INFRA / "k8s" / "kustomization.yaml").read_text())
    assert "secret.example.yaml" not in kustomization["resources"]
    [secret] = [d for d in yaml.safe_load_all((INFRA / "k8s" / "secret.example.yaml").read_text()) if d]
    for name, value in secret["stringData"].items():
        setting = name.removeprefix("OLOGIES_").lower()
        if setting in {"session_secret", "audit_key", "s3_secret_key", "es_password"}:
            with pytest.raises(ValueError, match=name):
                Settings(_env_file=None, **{setting: value})


def test_kubernetes_deployment_probes_and_settings():
    docs = {d["kind"]: d for d in k8s_documents()}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["args"][:3] == ["serve", "--host", "0.0.0.0"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert docs["Deployment"]["spec"]["replicas"] >= 2
    sources = {ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]}
    assert sources == {docs["ConfigMap"]["metadata"]["name"], docs["Secret"]["metadata"]["name"]}
    names = set(docs["ConfigMap"]["data"]) | set(docs["Secret"]["stringData"])
    assert names <= SETTINGS, names - SETTINGS
    assert docs["Job"]["spec"]["template"]["spec"]["containers"][0]["args"][0] == "init"


def test_dockerfile_runs_ologies_serve_as_a_non_root_user():
    text = (INFRA / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    assert stages[-1] == "python:3.11-slim"
    assert re.search(r"^USER 10001", text, re.M)
    assert '"ologies[all]"' in text
    assert 'ENTRYPOINT ["ologies"]' in text and 'CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]' in text
