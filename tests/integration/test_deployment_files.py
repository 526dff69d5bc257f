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


#: what infra/compose.env.example asks the operator to fill in (compose refuses to start without)
REQUIRED_COMPOSE_VALUES = {
    "MINIO_ROOT_PASSWORD": "test-minio-password-0123456789",
    "ELASTIC_PASSWORD": "test-elastic-password-0123456789",
    "OLOGIES_AUDIT_KEY": "test-audit-key-0123456789abcdef0123456789",
}


def compose_config(cli: list[str], env_file: Path) -> subprocess.CompletedProcess[str]:
    """``docker compose config`` with ``env_file`` only: the required values are taken out of this
    process's environment (which compose would prefer to the file)."""
    env = {k: v for k, v in os.environ.items() if k not in REQUIRED_COMPOSE_VALUES}
    return subprocess.run([*cli, "-f", str(INFRA / "compose.yml"), "--env-file", str(env_file), "config", "--format", "json"],
                          capture_output=True, text=True, timeout=60, env=env)  # fmt: skip


def filled_env_file(tmp_path: Path) -> Path:
    text = (INFRA / "compose.env.example").read_text()
    for name, value in REQUIRED_COMPOSE_VALUES.items():
        text, count = re.subn(rf"^{name}=$", f"{name}={value}", text, flags=re.M)
        assert count == 1, f"compose.env.example should have an empty {name}= to fill in"
    path = tmp_path / "compose.env"
    path.write_text(text)
    return path


def test_docker_compose_config_accepts_the_compose_file(tmp_path):
    cli = compose_cli()
    if cli is None:
        pytest.skip("docker compose is not installed (run infra/install-compose.sh; no engine is needed)")
    done = compose_config(cli, filled_env_file(tmp_path))
    assert done.returncode == 0, done.stderr
    import json

    services = json.loads(done.stdout)["services"]
    values = REQUIRED_COMPOSE_VALUES
    assert services["minio"]["environment"]["MINIO_ROOT_PASSWORD"] == values["MINIO_ROOT_PASSWORD"]
    assert services["elasticsearch"]["environment"]["ELASTIC_PASSWORD"] == values["ELASTIC_PASSWORD"]
    apps = [name for name in services if name.startswith("app-")]
    assert len(apps) >= 2
    for name in apps:
        app = services[name]
        assert app["depends_on"]["init"]["condition"] == "service_completed_successfully"
        assert app["user"] == "10001:10001" and app["read_only"] is True
        assert "/readyz" in " ".join(app["healthcheck"]["test"])
        assert all(p["host_ip"] == "127.0.0.1" for p in app["ports"])
        assert app["environment"]["OLOGIES_S3_SECRET_KEY"] == values["MINIO_ROOT_PASSWORD"]
        assert app["environment"]["OLOGIES_ES_PASSWORD"] == values["ELASTIC_PASSWORD"]
        assert app["environment"]["OLOGIES_AUDIT_KEY"] == values["OLOGIES_AUDIT_KEY"]
    assert services["init"]["command"] == ["init"]
    for backend in ("minio", "elasticsearch"):
        assert "healthcheck" in services[backend] and not services[backend].get("ports")
        tag = services[backend]["image"].rsplit(":", 1)[-1]
        assert re.search(r"[0-9]", tag) and tag != "latest", "pin the image version"
    assert services["elasticsearch"]["environment"]["xpack.security.enabled"] == "true"


@pytest.mark.parametrize("missing", sorted(REQUIRED_COMPOSE_VALUES))
def test_docker_compose_config_refuses_an_unfilled_env_file(tmp_path, missing):
    """An .env copied from the example and not filled in (or with one value left empty) stops
    compose, naming the value, instead of running with published default passwords."""
    cli = compose_cli()
    if cli is None:
        pytest.skip("docker compose is not installed (run infra/install-compose.sh; no engine is needed)")
    done = compose_config(cli, INFRA / "compose.env.example")
    assert done.returncode != 0 and "change-me" not in done.stdout
    one_empty = filled_env_file(tmp_path)
    one_empty.write_text(re.sub(rf"^{missing}=.*$", f"{missing}=", one_empty.read_text(), flags=re.M))
    done = compose_config(cli, one_empty)
    assert done.returncode != 0, f"compose config accepted an empty {missing}"
    assert missing in done.stderr, done.stderr


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


def test_kubernetes_spool_holds_a_few_of_the_largest_uploads():
    """An upload is spooled (its body, then its prepared DICOM copy: about twice the body); over
    the emptyDir's sizeLimit the kubelet evicts the pod with every upload in flight on it."""
    docs = {d["kind"]: d for d in k8s_documents()}
    pod = docs["Deployment"]["spec"]["template"]["spec"]
    [container] = pod["containers"]
    spool_dir = docs["ConfigMap"]["data"]["OLOGIES_SPOOL_DIR"]
    [mount] = [m for m in container["volumeMounts"] if m["mountPath"] == spool_dir]
    [volume] = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    limit = volume["emptyDir"]["sizeLimit"]
    assert limit.endswith("Gi")
    size = int(limit[:-2]) * 2**30
    limits = {k.removeprefix("OLOGIES_").lower(): v for k, v in docs["ConfigMap"]["data"].items()
              if k.startswith("OLOGIES_MAX_")}  # fmt: skip
    settings = Settings(_env_file=None, **limits)
    largest = max(settings.max_upload_bytes, settings.max_video_bytes, settings.max_file_bytes)
    assert 3 * 2 * largest <= size, f"three of the largest uploads ({largest} bytes) do not fit the {limit} spool"
