"""deploy/kubernetes validated offline (no cluster, no Helm here): rendered with `kubectl kustomize`, every
object checked against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields fail), the
references between objects resolved, and the Dagster instance checked against Dagster's own config schema
with the K8sRunLauncher's. `make validate-deploy` runs these and test_deploy.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from dagster._config import process_config
from dagster._core.instance.config import dagster_instance_config

from export_pipeline.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "kubernetes"
# The oldest Kubernetes we support and the newest schemas kubernetes-validate ships.
VERSIONS = ["1.30.0", kubernetes_validate.latest_version()]
SECRET = "export-pipeline-secrets"
TLS_SECRET = "exports-tls"  # the Ingress certificate (cert-manager or your own), see docs/production.md


def env_file(path: Path) -> dict[str, str]:
    lines = path.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if line and not line.startswith("#"))


def environment() -> dict[str, str]:
    """What a pod sees: the env ConfigMap plus the Secret's documented keys."""
    return {**env_file(K8S / "env.properties"), **env_file(K8S / "secrets.example.env")}


@pytest.fixture(scope="module")
def objects() -> list[dict]:
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("kubectl is needed to render deploy/kubernetes (kustomize is built in)")
        pytest.skip("kubectl is not installed")
    rendered = subprocess.run([kubectl, "kustomize", str(K8S)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def by_kind(objects: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_specs(objects: list[dict]) -> dict[str, dict]:
    return {name: d["spec"]["template"]["spec"] for name, d in by_kind(objects, "Deployment").items()}


def test_the_base_renders_every_component(objects):
    names = {(o["kind"], o["metadata"]["name"]) for o in objects}
    assert {("Deployment", "dagster-webserver"), ("Deployment", "dagster-daemon"), ("Deployment", "user-code"),
            ("Deployment", "api"), ("Service", "dagster-webserver"), ("Service", "user-code"), ("Service", "api"),
            ("Ingress", "api"), ("PodDisruptionBudget", "api"), ("HorizontalPodAutoscaler", "api"),
            ("ConfigMap", "dagster-instance"), ("ConfigMap", "export-pipeline-env")} <= names
    assert not by_kind(objects, "Secret"), "secrets are referenced, never rendered from the repository"
    assert {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"} == {"export-pipeline"}
    images = {c["image"] for spec in pod_specs(objects).values() for c in spec["containers"]}
    assert images == {"registry.example.com/export-pipeline:0.1.0"}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_is_valid_against_the_kubernetes_schemas(objects, version):
    for document in objects:
        kubernetes_validate.validate(document, version, strict=True)


def test_a_wrong_field_is_caught_by_the_schema_check(objects):
    deployment = yaml.safe_load(yaml.safe_dump(by_kind(objects, "Deployment")["api"]))
    deployment["spec"]["template"]["spec"]["containers"][0]["resources"]["limit"] = {"memory": "1Gi"}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def test_references_between_objects_resolve(objects):
    config_maps = by_kind(objects, "ConfigMap")
    deployments = by_kind(objects, "Deployment")
    accounts = set(by_kind(objects, "ServiceAccount"))
    for name, spec in pod_specs(objects).items():
        assert spec["serviceAccountName"] in accounts, name
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in config_maps, name
                else:
                    assert source["secretRef"]["name"] == SECRET, name
            for mount in container.get("volumeMounts", []):
                config_map = config_maps[volumes[mount["name"]]["configMap"]["name"]]
                assert mount["subPath"] in config_map["data"], (name, mount)
    for name, service in by_kind(objects, "Service").items():
        targets = [d for d in deployments.values()
                   if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(targets) == 1, name
        ports = {p["name"] for c in targets[0]["spec"]["template"]["spec"]["containers"] for p in c.get("ports", [])}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= ports, name
    ingress = by_kind(objects, "Ingress")["api"]["spec"]
    assert {path["backend"]["service"]["name"] for rule in ingress["rules"] for path in rule["http"]["paths"]} == {"api"}
    assert {tls["secretName"] for tls in ingress["tls"]} == {TLS_SECRET}
    assert by_kind(objects, "HorizontalPodAutoscaler")["api"]["spec"]["scaleTargetRef"]["name"] in deployments
    workspace = yaml.safe_load(config_maps["dagster-instance"]["data"]["workspace.yaml"])["load_from"][0]["grpc_server"]
    user_code = by_kind(objects, "Service")[workspace["host"]]
    assert workspace["port"] in [p["port"] for p in user_code["spec"]["ports"]]


def test_the_instance_launches_runs_as_jobs_with_the_deployments_settings(objects):
    config_maps = by_kind(objects, "ConfigMap")
    launcher = yaml.safe_load(config_maps["dagster-instance"]["data"]["dagster.yaml"])["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("dagster_k8s", "K8sRunLauncher")
    config = launcher["config"]
    assert config["instance_config_map"] == "dagster-instance"
    assert config["service_account_name"] in by_kind(objects, "ServiceAccount")
    assert set(config["env_config_maps"]) <= set(config_maps) and config["env_secrets"] == [SECRET]
    mounts = {m["mountPath"] for spec in pod_specs(objects).values() for c in spec["containers"]
              for m in c.get("volumeMounts", []) if m["subPath"] == "dagster.yaml"}
    assert mounts == {f"{config['dagster_home']}/dagster.yaml"}
    resources = config["run_k8s_config"]["container_config"]["resources"]
    assert resources["requests"]["memory"] and resources["limits"]["memory"]


def test_the_instance_and_the_pods_environment_are_valid_production_config(tmp_path, monkeypatch):
    from dagster_k8s import K8sRunLauncher

    for name, value in environment().items():
        monkeypatch.setenv(name, value)
    shutil.copyfile(K8S / "dagster.yaml", tmp_path / "dagster.yaml")
    validated, _ = dagster_instance_config(str(tmp_path))
    launcher = validated["run_launcher"]["config"]
    assert process_config(K8sRunLauncher.config_type(), launcher).success
    broken = {**launcher, "job_namespce": "typo"}
    assert not process_config(K8sRunLauncher.config_type(), broken).success
    used = set(re.findall(r"env: (\w+)", (K8S / "dagster.yaml").read_text()))
    assert used <= set(environment())
    # and the same environment makes our settings a production one: a ClickHouse server, S3, Postgres
    settings = Settings(_env_file=None)
    assert (settings.clickhouse_url.split(":")[0], settings.storage_url.split(":")[0],
            settings.database_url.split(":")[0]) == ("https", "s3", "postgresql")

