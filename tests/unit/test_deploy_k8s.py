"""The Kubernetes manifests in deploy/k8s, checked without a cluster: every object against the
Kubernetes API's schemas (kubernetes-validate, strict), and what a schema cannot say: selectors
that match their pods, probes, resources, disruption budgets, single relays, secrets only from
the Secret, and the same commands docker-compose.yml runs."""
from __future__ import annotations

import copy
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
HTTP_SERVICES = {"gateway": 8080, "checkin": 8081, "snapshot": 8082, "export": 8083}
RELAYS = {"checkin-relay", "export-relay"}
WORKERS = {"snapshot-worker", "export-worker"}
SECRET_MOUNT = "/run/secrets/okrsnap"
# Values that must come from the Secret: never written in a manifest, never a plain env value.
SECRET_NAMES = re.compile(r"^OKRSNAP_(INTERNAL_SECRET|ACCESS_TOKEN_SECRET|DOWNLOAD_SECRET|EVENT_SIGNING_KEY|"
                          r"(\w+_)?DATABASE_URL|BROKER_URL|REDIS_URL)(_PREVIOUS)?$")

# What the API server insists on per kind (the fields a missing one makes it refuse the object).
REQUIRED = {
    ("v1", "Namespace"): [],
    ("v1", "ConfigMap"): [],
    ("v1", "PersistentVolumeClaim"): [("spec", "accessModes"), ("spec", "resources", "requests", "storage")],
    ("v1", "Service"): [("spec", "ports")],
    ("apps/v1", "Deployment"): [("spec", "selector", "matchLabels"), ("spec", "template", "metadata", "labels"),
                                ("spec", "template", "spec", "containers")],
    ("batch/v1", "Job"): [("spec", "template", "spec", "containers"), ("spec", "template", "spec", "restartPolicy")],
    ("policy/v1", "PodDisruptionBudget"): [("spec", "selector", "matchLabels")],
}
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")


def _objects() -> list[dict]:
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    objects = []
    for name in kustomization["resources"]:
        objects.extend(doc for doc in yaml.safe_load_all((K8S / name).read_text()) if doc)
    return objects


OBJECTS = _objects()


def _of(kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in OBJECTS if o["kind"] == kind}


def _dig(obj: dict, path: tuple):
    for key in path:
        if not isinstance(obj, dict) or key not in obj:
            return None
        obj = obj[key]
    return obj


def _containers(workload: dict) -> list[dict]:
    return workload["spec"]["template"]["spec"]["containers"]


def _env(container: dict) -> dict[str, str]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def test_every_file_of_the_folder_is_applied_and_every_object_has_what_the_api_requires():
    listed = set(yaml.safe_load((K8S / "kustomization.yaml").read_text())["resources"])
    assert listed == {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    seen = set()
    for obj in OBJECTS:
        key = (obj.get("apiVersion"), obj.get("kind"))
        assert key in REQUIRED, f"unexpected or misspelt apiVersion/kind {key}"
        name = obj["metadata"]["name"]
        assert DNS_LABEL.match(name), name
        assert (obj["kind"], name) not in seen, f"{obj['kind']} {name} twice"
        seen.add((obj["kind"], name))
        for path in REQUIRED[key]:
            assert _dig(obj, path), f"{obj['kind']} {name} lacks {'.'.join(path)}"
        assert obj["metadata"].get("labels", {}).get("app.kubernetes.io/part-of") == "okrsnap", name


def test_selectors_match_their_pods_and_services_reach_a_declared_port():
    deployments = _of("Deployment")
    for name, deployment in deployments.items():
        selector = deployment["spec"]["selector"]["matchLabels"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selector.items() <= labels.items(), name
    for name, service in _of("Service").items():
        pods = [d for d in deployments.values()
                if service["spec"]["selector"].items() <= d["spec"]["template"]["metadata"]["labels"].items()]
        assert len(pods) == 1, f"Service {name} selects {len(pods)} Deployments"
        ports = {p["name"] for c in _containers(pods[0]) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in ports, f"Service {name} targets an undeclared port {port['targetPort']}"


def test_each_process_of_docker_compose_runs_here_with_the_same_command():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    # okrsnap's own processes: the services of compose built from its image
    expected = {name: svc["command"] for name, svc in compose.items() if svc.get("image") == "okrsnap:local"}
    workloads = {**_of("Deployment"), **_of("Job")}
    assert set(workloads) == set(expected), "docker-compose.yml and deploy/k8s run different processes"
    for name, workload in workloads.items():
        (container,) = _containers(workload)
        assert container["command"] == expected[name], name
        assert container["image"] == "okrsnap", name


def test_http_services_probe_healthz_and_readyz_and_listen_where_their_url_says():
    config = _of("ConfigMap")["okrsnap-config"]["data"]
    for name, port in HTTP_SERVICES.items():
        (container,) = _containers(_of("Deployment")[name])
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports["http"] == port and _env(container)["OKRSNAP_BIND"] == f"0.0.0.0:{port}", name
        assert config[f"OKRSNAP_{name.upper()}_URL"] == f"http://{name}:{port}"
        assert _of("Service")[name]["spec"]["ports"][0]["port"] == port
        for probe, path in (("startupProbe", "/healthz"), ("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")):
            assert container[probe]["httpGet"] == {"path": path, "port": "http"}, (name, probe)


def test_relays_and_workers_are_probed_by_their_heartbeat_file_which_also_says_ready():
    for name in RELAYS | WORKERS:
        (container,) = _containers(_of("Deployment")[name])
        heartbeat = _env(container)["OKRSNAP_HEARTBEAT_FILE"]
        for probe, mode in (("startupProbe", "file"), ("livenessProbe", "file"), ("readinessProbe", "ready")):
            command = container[probe]["exec"]["command"]
            assert command[:5] == ["python", "-m", "shared.healthcheck", mode, heartbeat], (name, probe)


def test_relays_run_once_and_are_replaced_not_rolled():
    for name, deployment in _of("Deployment").items():
        if name in RELAYS:
            assert deployment["spec"]["replicas"] == 1, name
            assert deployment["spec"]["strategy"] == {"type": "Recreate"}, name
        else:
            assert deployment["spec"]["replicas"] >= 2, f"{name} should survive losing a pod"


def test_every_deployment_has_resources_metrics_and_a_disruption_budget():
    budgets = _of("PodDisruptionBudget")
    metrics_port = int(_of("ConfigMap")["okrsnap-config"]["data"]["OKRSNAP_METRICS_PORT"])
    for name, deployment in _of("Deployment").items():
        template = deployment["spec"]["template"]
        (container,) = template["spec"]["containers"]
        requests = container["resources"]["requests"]
        assert requests.get("cpu") and requests.get("memory") and container["resources"]["limits"].get("memory"), name
        covering = [b for b in budgets.values()
                    if b["spec"]["selector"]["matchLabels"].items() <= template["metadata"]["labels"].items()]
        assert len(covering) == 1, f"{name}: {len(covering)} PodDisruptionBudgets"
        spec = covering[0]["spec"]
        # minAvailable equal to the replicas would block every node drain.
        assert spec.get("maxUnavailable", 0) >= 1 or spec.get("minAvailable", 0) < deployment["spec"]["replicas"], name
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        annotations = template["metadata"]["annotations"]
        assert ports["metrics"] == metrics_port == int(annotations["prometheus.io/port"]), name
        assert annotations["prometheus.io/scrape"] == "true", name


def test_pods_run_unprivileged():
    for name, workload in {**_of("Deployment"), **_of("Job")}.items():
        pod = workload["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001, name
        for container in pod["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False and context["capabilities"]["drop"] == ["ALL"], name


def test_secrets_come_only_from_the_secret_as_files():
    config = _of("ConfigMap")["okrsnap-config"]["data"]
    readme_keys = set(re.findall(r"--from-literal=([a-z-]+)=", (K8S / "README.md").read_text()))
    file_keys = set()
    for key, value in config.items():
        assert not SECRET_NAMES.match(key), f"{key} is a secret: name it with {key}_FILE"
        if key.endswith("_FILE"):
            assert SECRET_NAMES.match(key[:-5]), key
            assert value.startswith(SECRET_MOUNT + "/"), key
            file_keys.add(value.rsplit("/", 1)[1])
    for name, workload in {**_of("Deployment"), **_of("Job")}.items():
        pod = workload["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        (container,) = pod["containers"]
        mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
        secret_volume = volumes[mounts[SECRET_MOUNT]["name"]]
        assert secret_volume["secret"]["secretName"] == "okrsnap-secrets" and mounts[SECRET_MOUNT]["readOnly"], name
        assert {"configMapRef": {"name": "okrsnap-config"}} in container["envFrom"], name
        for key, value in _env(container).items():
            assert not SECRET_NAMES.match(key), f"{name} sets the secret {key} in its environment"
            if key.endswith("_FILE") and value.startswith(SECRET_MOUNT + "/"):
                assert SECRET_NAMES.match(key[:-5]), key
                file_keys.add(value.rsplit("/", 1)[1])
    assert file_keys <= readme_keys, f"the README's Secret lacks {file_keys - readme_keys}"
    assert readme_keys <= file_keys, f"the README's Secret has keys nothing reads: {readme_keys - file_keys}"


def test_exports_are_shared_by_the_export_service_and_its_worker():
    claim = _of("PersistentVolumeClaim")["okrsnap-exports"]
    assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
    export_dir = _of("ConfigMap")["okrsnap-config"]["data"]["OKRSNAP_EXPORT_DIR"]
    for name in ("export", "export-worker"):
        pod = _of("Deployment")[name]["spec"]["template"]["spec"]
        claimed = {v["name"] for v in pod["volumes"] if v.get("persistentVolumeClaim", {}).get("claimName") == "okrsnap-exports"}
        assert any(m["mountPath"] == export_dir and m["name"] in claimed for m in pod["containers"][0]["volumeMounts"]), name


def test_every_object_is_valid_against_the_kubernetes_schema_unknown_fields_refused():
    """kubernetes-validate ships the API's JSON schemas (no cluster, no download): a misspelt
    field or a wrong type anywhere in a pod template fails here."""
    from kubernetes_validate.utils import latest_version, validate

    version = latest_version()
    for obj in OBJECTS:
        validate(obj, version, strict=True)
    broken = copy.deepcopy(_of("Deployment")["gateway"])
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["paht"] = "/readyz"
    with pytest.raises(Exception, match="paht"):
        validate(broken, version, strict=True)
