#!/usr/bin/env python3
"""Offline checks of the deployment artefacts: Dockerfile lint, Kubernetes manifests, CRDs.

- hadolint on the Dockerfile (no finding allowed), and every COPY source exists;
- every manifest under deploy/kubernetes/ against the Kubernetes JSON schemas shipped by
  kubernetes-validate, strict (unknown fields are errors), for the oldest and newest
  Kubernetes versions named below;
- ServiceMonitor and PrometheusRule (no schema in kubernetes-validate) against the shape of
  the Prometheus Operator's monitoring.coreos.com/v1 CRDs, written here as JSON Schema;
- each kustomization.yaml lists exactly the manifest files of its directory, and
  `kubectl kustomize` builds it (when kubectl is installed) into objects that validate too;
- the wiring: Service -> pods -> container port, ServiceMonitor -> Service port, job name as
  the alert rules expect, the exporter's probes on /-/healthy and /-/ready;
- every container meets the Pod Security "restricted" profile, is read-only, non-root, has
  resource requests and limits.

Prints PASS/FAIL per check and `N passed, M failed`; exits 1 on any failure.
"""

import re
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import kubernetes_validate
import yaml

REPO = Path(__file__).resolve().parents[2]
KUBE = REPO / "deploy" / "kubernetes"
KUBERNETES_VERSIONS = ["1.30.0", "1.37.0"]
EXPORTER_PORT = 9523

RESULTS = {"passed": 0, "failed": 0}


def check(ok, what, detail=""):
    if ok:
        RESULTS["passed"] += 1
        print(f"PASS {what}")
    else:
        RESULTS["failed"] += 1
        print(f"FAIL {what}" + (f"\n     {detail}" if detail else ""))
    return ok


def rel(path):
    return str(Path(path).relative_to(REPO))


# --- Prometheus Operator CRD shapes (monitoring.coreos.com/v1) -------------------------------

DURATION = {"type": "string",
            "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
ANY = {}
METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
ENDPOINT_FIELDS = [
    "authorization", "basicAuth", "bearerTokenFile", "bearerTokenSecret", "enableHttp2",
    "filterRunning", "followRedirects", "honorLabels", "honorTimestamps", "metricRelabelings",
    "noProxy", "oauth2", "params", "proxyConnectHeader", "proxyFromEnvironment", "proxyUrl",
    "relabelings", "targetPort", "tlsConfig", "trackTimestampsStaleness",
]
SERVICE_MONITOR_FIELDS = [
    "attachMetadata", "bodySizeLimit", "convertClassicHistogramsToNHCB", "fallbackScrapeProtocol",
    "jobLabel", "keepDroppedTargets", "labelLimit", "labelNameLengthLimit",
    "labelValueLengthLimit", "namespaceSelector", "nativeHistogramBucketLimit",
    "nativeHistogramMinBucketFactor", "podTargetLabels", "sampleLimit", "scrapeClass",
    "scrapeClassicHistograms", "scrapeProtocols", "selectorMechanism", "serviceDiscoveryRole",
    "targetLabels", "targetLimit",
]
SERVICE_MONITOR = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "ServiceMonitor"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["selector", "endpoints"],
            "additionalProperties": False,
            "properties": {
                **{name: ANY for name in SERVICE_MONITOR_FIELDS},
                "selector": {
                    "type": "object",
                    "additionalProperties": False,
                    "minProperties": 1,
                    "properties": {"matchLabels": STRING_MAP, "matchExpressions": {"type": "array"}},
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "additionalProperties": False,
                        "anyOf": [{"required": ["port"]}, {"required": ["targetPort"]}],
                        "properties": {
                            **{name: ANY for name in ENDPOINT_FIELDS},
                            "port": {"type": "string", "minLength": 1},
                            "path": {"type": "string", "pattern": "^/"},
                            "scheme": {"enum": ["http", "https", "HTTP", "HTTPS"]},
                            "interval": DURATION,
                            "scrapeTimeout": DURATION,
                        },
                    },
                },
            },
        },
    },
}
RULE = {
    "type": "object",
    "required": ["expr"],
    "additionalProperties": False,
    "oneOf": [{"required": ["alert"]}, {"required": ["record"]}],
    "properties": {
        "alert": {"type": "string", "minLength": 1},
        "record": {"type": "string", "pattern": r"^[a-zA-Z_:][a-zA-Z0-9_:]*$"},
        "expr": {"anyOf": [{"type": "string", "minLength": 1}, {"type": "integer"}]},
        "for": DURATION,
        "keep_firing_for": DURATION,
        "labels": STRING_MAP,
        "annotations": STRING_MAP,
    },
}
PROMETHEUS_RULE = {
    "type": "object",
    "required": ["apiVersion", "kind", "metadata", "spec"],
    "additionalProperties": False,
    "properties": {
        "apiVersion": {"const": "monitoring.coreos.com/v1"},
        "kind": {"const": "PrometheusRule"},
        "metadata": METADATA,
        "spec": {
            "type": "object",
            "required": ["groups"],
            "additionalProperties": False,
            "properties": {
                "groups": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "required": ["name", "rules"],
                        "additionalProperties": False,
                        "properties": {
                            "name": {"type": "string", "minLength": 1},
                            "interval": DURATION,
                            "query_offset": DURATION,
                            "limit": {"type": "integer"},
                            "partial_response_strategy": {"type": "string"},
                            "labels": STRING_MAP,
                            "rules": {"type": "array", "minItems": 1, "items": RULE},
                        },
                    },
                },
            },
        },
    },
}
CRD_SCHEMAS = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PROMETHEUS_RULE,
}


def validate_object(obj, where):
    """Schema validation of one object; returns True when valid."""
    key = (obj.get("apiVersion"), obj.get("kind"))
    name = f"{where}: {obj.get('kind')}/{(obj.get('metadata') or {}).get('name')}"
    if key in CRD_SCHEMAS:
        errors = sorted(jsonschema.Draft202012Validator(CRD_SCHEMAS[key]).iter_errors(obj),
                        key=lambda e: list(e.path))
        detail = "; ".join(f"{'.'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}"
                           for e in errors[:5])
        extra = []
        if key[1] == "PrometheusRule" and not errors:
            names = [g["name"] for g in obj["spec"]["groups"]]
            if len(names) != len(set(names)):
                extra.append(f"duplicate group names {names}")
        return check(not errors and not extra,
                     f"{name} has the shape of the Prometheus Operator CRD",
                     detail or "; ".join(extra))
    ok = True
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            ok = check(False, f"{name} is valid for Kubernetes {version} (strict)",
                       f"{'.'.join(map(str, error.path))}: {error.message[:300]}")
            continue
        except kubernetes_validate.SchemaNotFoundError:
            ok = check(False, f"{name}: Kubernetes {version} has a schema for it")
            continue
        check(True, f"{name} is valid for Kubernetes {version} (strict)")
    return ok


def load_documents(path):
    with open(path, encoding="utf-8") as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


# --- the checks ------------------------------------------------------------------------------

def check_dockerfile():
    print("== Dockerfile")
    hadolint = shutil.which("hadolint")
    if not check(hadolint is not None, "hadolint is installed"):
        return
    version = subprocess.run([hadolint, "--version"], capture_output=True, text=True).stdout.strip()
    done = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], capture_output=True, text=True)
    check(done.returncode == 0 and not done.stdout.strip(),
          f"hadolint finds nothing in the Dockerfile ({version})",
          (done.stdout + done.stderr).strip())
    text = (REPO / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)
    for line in text.splitlines():
        words = line.split()
        if words and words[0].upper() == "COPY" and not any(w.startswith("--from") for w in words):
            for source in words[1:-1]:
                check((REPO / source).exists(), f"COPY source {source} exists")


def kustomization_dirs():
    return sorted(p.parent for p in KUBE.rglob("kustomization.yaml"))


def check_kustomizations():
    print("== kustomizations")
    for directory in kustomization_dirs():
        kustomization = yaml.safe_load((directory / "kustomization.yaml").read_text())
        listed = kustomization.get("resources") or []
        files = [r for r in listed if not (directory / r).is_dir()]
        present = sorted(p.name for p in directory.glob("*.yaml") if p.name != "kustomization.yaml")
        check(sorted(files) == present,
              f"{rel(directory)}/kustomization.yaml lists exactly its manifest files",
              f"listed {sorted(files)}, present {present}")
        for resource in listed:
            check((directory / resource).exists(), f"{rel(directory)}: resource {resource} exists")


def check_files():
    print("== manifests (each file)")
    objects = {}
    for path in sorted(KUBE.rglob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        try:
            documents = load_documents(path)
        except yaml.YAMLError as error:
            check(False, f"{rel(path)} is YAML", str(error))
            continue
        check(len(documents) >= 1, f"{rel(path)} holds an object")
        for obj in documents:
            validate_object(obj, rel(path))
        objects[path] = documents
    return objects


def kustomize_builds():
    print("== kustomize build")
    kubectl = shutil.which("kubectl")
    builds = {}
    if kubectl is None:
        print("SKIP kubectl is not installed: the kustomizations were checked file by file only")
        return builds
    for directory in kustomization_dirs():
        done = subprocess.run([kubectl, "kustomize", str(directory)], capture_output=True, text=True)
        if not check(done.returncode == 0, f"kubectl kustomize {rel(directory)} builds",
                     done.stderr.strip()):
            continue
        objects = [o for o in yaml.safe_load_all(done.stdout) if o]
        builds[directory.name] = objects
        for obj in objects:
            validate_object(obj, f"kustomize {rel(directory)}")
    return builds


def containers_of(deployment):
    spec = deployment["spec"]["template"]["spec"]
    return spec, spec.get("initContainers", []) + spec.get("containers", [])


def check_workload(variant, objects):
    """Wiring and security of one variant (sidecar / standalone), as one set of objects."""
    print(f"== {variant}: wiring and security")
    by_kind = {}
    for obj in objects:
        by_kind.setdefault(obj["kind"], []).append(obj)
    deployments = by_kind.get("Deployment", [])
    services = by_kind.get("Service", [])
    if not check(len(deployments) == 1 and len(services) == 1,
                 f"{variant}: one Deployment and one Service"):
        return
    deployment, service = deployments[0], services[0]
    pod, containers = containers_of(deployment)
    labels = deployment["spec"]["template"]["metadata"].get("labels", {})
    selector = service["spec"].get("selector", {})
    check(selector and all(labels.get(k) == v for k, v in selector.items()),
          f"{variant}: the Service selects the Deployment's pods",
          f"selector {selector}, pod labels {labels}")
    check(all(labels.get(k) == v for k, v in
              deployment["spec"]["selector"].get("matchLabels", {}).items()),
          f"{variant}: the Deployment's selector matches its pod template")
    check(re.fullmatch(r".*cms.*xmpp.*", service["metadata"]["name"]) is not None,
          f"{variant}: the Service name (the Prometheus job) matches the mixin's default selector job=~\".*cms.*xmpp.*\"")

    exporter = [c for c in containers if c["name"] == "cms-xmpp-exporter"]
    if not check(len(exporter) == 1, f"{variant}: a container named cms-xmpp-exporter"):
        return
    exporter = exporter[0]
    ports = {p.get("name"): p["containerPort"] for p in exporter.get("ports", [])}
    check(ports.get("metrics") == EXPORTER_PORT,
          f"{variant}: the exporter's port `metrics` is {EXPORTER_PORT}")
    service_ports = {p.get("name"): p for p in service["spec"]["ports"]}
    check("metrics" in service_ports and service_ports["metrics"].get("targetPort") in ("metrics", EXPORTER_PORT),
          f"{variant}: the Service's port `metrics` targets the exporter's port")
    for probe, path in (("livenessProbe", "/-/healthy"), ("readinessProbe", "/-/ready")):
        get = (exporter.get(probe) or {}).get("httpGet") or {}
        check(get.get("path") == path and get.get("port") in ("metrics", EXPORTER_PORT),
              f"{variant}: the exporter's {probe} is GET {path} on the metrics port")
    mounts = {m["mountPath"]: m for m in exporter.get("volumeMounts", [])}
    check("/etc/cms-xmpp-exporter" in mounts,
          f"{variant}: the config is mounted at the image's /etc/cms-xmpp-exporter")
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    config_volume = volumes.get(mounts.get("/etc/cms-xmpp-exporter", {}).get("name"), {})
    configmaps = {c["metadata"]["name"]: c for c in by_kind.get("ConfigMap", [])}
    configmap = configmaps.get((config_volume.get("configMap") or {}).get("name"))
    check(configmap is not None and "config.yaml" in configmap.get("data", {}),
          f"{variant}: the config volume is a ConfigMap of this variant with a config.yaml key")
    secret_mounts = [m for m in exporter.get("volumeMounts", [])
                     if "secret" in volumes.get(m["name"], {})]
    secrets = {s["metadata"]["name"]: s for s in by_kind.get("Secret", [])}
    check(len(secret_mounts) == 1 and all(m.get("readOnly") and "subPath" not in m for m in secret_mounts),
          f"{variant}: the Secret is mounted read-only as a directory (no subPath, so updates arrive)")
    if configmap is not None and secret_mounts:
        config = yaml.safe_load(configmap["data"]["config.yaml"])
        mount = secret_mounts[0]["mountPath"].rstrip("/")
        secret = secrets.get(volumes[secret_mounts[0]["name"]]["secret"]["secretName"], {})
        keys = set((secret.get("stringData") or {}).keys()) | set((secret.get("data") or {}).keys())
        for target in config.get("targets", []):
            path = target.get("secret_file", "")
            check(path.startswith(mount + "/") and path[len(mount) + 1:] in keys,
                  f"{variant}: target {target.get('name')}'s secret_file {path} is a key of the mounted Secret",
                  f"mount {mount}, keys {sorted(keys)}")

    for container in containers:
        name = f"{variant}: container {container['name']}"
        context = container.get("securityContext") or {}
        pod_context = pod.get("securityContext") or {}
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        run_as_user = context.get("runAsUser", pod_context.get("runAsUser"))
        seccomp = (context.get("seccompProfile") or pod_context.get("seccompProfile") or {}).get("type")
        problems = []
        if run_as_non_root is not True:
            problems.append("runAsNonRoot is not true")
        if not isinstance(run_as_user, int) or run_as_user == 0:
            problems.append("no numeric non-root runAsUser")
        if context.get("allowPrivilegeEscalation") is not False:
            problems.append("allowPrivilegeEscalation is not false")
        if (context.get("capabilities") or {}).get("drop") != ["ALL"]:
            problems.append("capabilities.drop is not [ALL]")
        if (context.get("capabilities") or {}).get("add"):
            problems.append("capabilities are added")
        if seccomp != "RuntimeDefault":
            problems.append("seccompProfile is not RuntimeDefault")
        if context.get("readOnlyRootFilesystem") is not True:
            problems.append("readOnlyRootFilesystem is not true")
        if context.get("privileged"):
            problems.append("privileged")
        check(not problems, f"{name} meets Pod Security 'restricted', read-only root",
              ", ".join(problems))
        resources = container.get("resources") or {}
        check(all(resources.get(kind, {}).get("memory") for kind in ("requests", "limits"))
              and resources.get("requests", {}).get("cpu"),
              f"{name} has cpu/memory requests and a memory limit")
    check(exporter.get("securityContext", {}).get("runAsUser",
          pod.get("securityContext", {}).get("runAsUser")) == 65532,
          f"{variant}: the exporter runs as the image's user 65532")


def check_monitoring(objects_by_variant, monitoring):
    print("== ServiceMonitor -> Services")
    monitors = [o for o in monitoring if o["kind"] == "ServiceMonitor"]
    if not check(len(monitors) == 1, "monitoring: one ServiceMonitor"):
        return
    monitor = monitors[0]
    match = monitor["spec"]["selector"].get("matchLabels", {})
    ports = {e.get("port") for e in monitor["spec"]["endpoints"]}
    for variant, objects in objects_by_variant.items():
        for service in (o for o in objects if o["kind"] == "Service"):
            labels = service["metadata"].get("labels", {})
            check(all(labels.get(k) == v for k, v in match.items()),
                  f"the ServiceMonitor selects the {variant} Service")
            names = {p.get("name") for p in service["spec"]["ports"]}
            check(ports <= names, f"the ServiceMonitor's endpoint ports {sorted(ports)} exist on the {variant} Service")


def main():
    check_dockerfile()
    check_kustomizations()
    files = check_files()
    builds = kustomize_builds()

    def variant_objects(name):
        if name in builds:
            return builds[name]
        return [o for path, docs in files.items() if path.parent.name == name for o in docs]

    variants = {name: variant_objects(name) for name in ("sidecar", "standalone")}
    for name, objects in variants.items():
        check_workload(name, objects)
        if name in builds:
            images = [c["image"] for o in objects if o["kind"] == "Deployment"
                      for c in containers_of(o)[1] if c["name"] == "cms-xmpp-exporter"]
            check(images and all(":" in i and i != "cms-xmpp-exporter" for i in images),
                  f"{name}: kustomize sets the exporter image with a tag ({', '.join(images)})")
    check_monitoring(variants, variant_objects("monitoring"))

    print(f"{RESULTS['passed']} passed, {RESULTS['failed']} failed")
    return 1 if RESULTS["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
