"""Checks deploy/: every kustomization renders, every object validates, and the manifests agree
with what `sluice serve` actually serves.

Usage: check_deploy.py SLUICE_BINARY   (run by scripts/test.sh with the virtualenv's python)

- Renders each kustomization with `kubectl kustomize` (Debian's kubernetes-client or newer).
- Core objects: `kubernetes-validate`, strict, Kubernetes 1.30. Custom resources (KEDA, Prometheus
  Operator, OpenShift, KServe): the JSON Schemas in deploy/schemas/ (see SOURCES.md).
- Every config in a rendered ConfigMap passes `sluice check`.
- The base config is served on loopback: the probes' paths, the ServiceMonitor's path, KEDA's
  /admin/scale and valueLocation, and every metric the Grafana dashboard queries are requested
  from the running gateway; ports in the Deployment, Services, Containerfile and config agree.
- Security: non-root, no fixed UID, read-only root filesystem, no privilege escalation, all
  capabilities dropped, RuntimeDefault seccomp; the admin port is not open to all.
"""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import jsonschema
import kubernetes_validate
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
from localnet import free_port  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DIRS = [
    "deploy/kubernetes/base",
    "deploy/kubernetes/overlays/production",
    "deploy/kubernetes/autoscaling/keda-metrics-api",
    "deploy/kubernetes/autoscaling/keda-prometheus",
    "deploy/kubernetes/autoscaling/hpa-prometheus-adapter",
    "deploy/openshift",
    "deploy/examples/vllm",
    "deploy/examples/mlserver",
    "deploy/examples/kserve",
]
CRDS = {
    ("keda.sh/v1alpha1", "ScaledObject"): "keda.sh_v1alpha1_scaledobject.json",
    ("keda.sh/v1alpha1", "TriggerAuthentication"): "keda.sh_v1alpha1_triggerauthentication.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitoring.coreos.com_v1_servicemonitor.json",
    ("route.openshift.io/v1", "Route"): "route.openshift.io_v1_route.json",
    ("serving.kserve.io/v1beta1", "InferenceService"): "serving.kserve.io_v1beta1_inferenceservice.json",
}
K8S_VERSION = "1.30.0"
failures = []


def fail(message):
    failures.append(message)
    print("FAIL:", message)


def render(directory):
    result = subprocess.run(["kubectl", "kustomize", os.path.join(ROOT, directory)], capture_output=True, text=True)
    if result.returncode != 0:
        fail(f"{directory}: kubectl kustomize failed: {result.stderr.strip()}")
        return []
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def validate(directory, docs):
    for doc in docs:
        key = (doc.get("apiVersion"), doc.get("kind"))
        name = f"{directory}: {key[1]} {doc.get('metadata', {}).get('name')}"
        if key in CRDS:
            schema = json.load(open(os.path.join(ROOT, "deploy/schemas", CRDS[key])))
            errors = list(jsonschema.Draft7Validator(schema).iter_errors(doc))
            for error in errors:
                fail(f"{name}: {'/'.join(str(p) for p in error.absolute_path)}: {error.message}")
        else:
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as error:
                fail(f"{name}: {error}")
            except Exception as error:  # an unknown kind has no schema: that is a failure too
                fail(f"{name}: cannot validate: {error}")


def find(docs, kind, name=None):
    return [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]


def configs_in(docs):
    return [d["data"]["sluice.yaml"] for d in find(docs, "ConfigMap") if d["metadata"]["name"].startswith("sluice-config")]


def sluice_check(sluice, directory, text):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(text)
    result = subprocess.run([sluice, "check", "--config", f.name], capture_output=True, text=True)
    os.unlink(f.name)
    if result.returncode != 0:
        fail(f"{directory}: the ConfigMap's sluice.yaml does not pass sluice check: {result.stdout}{result.stderr}")


def port_of(text):
    return int(text.rsplit(":", 1)[1])


CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "CustomResourceDefinition"}


def check_wiring(directory, docs):
    """Namespaced objects carry a namespace, and every Service selects pods this render makes."""
    for doc in docs:
        if doc["kind"] not in CLUSTER_SCOPED and not doc["metadata"].get("namespace"):
            fail(f"{directory}: {doc['kind']} {doc['metadata']['name']} has no namespace (it would land in the client's current one)")
    templates = [d["spec"]["template"]["metadata"].get("labels", {}) for d in docs if d["kind"] in ("Deployment", "StatefulSet")]
    if not templates:
        return
    for service in find(docs, "Service"):
        selector = service["spec"].get("selector", {})
        if service["metadata"]["name"] == "model-replicas" and not any(d["kind"] == "StatefulSet" for d in docs):
            continue  # the model pods come from the user's workload (the base alone)
        if not any(all(labels.get(k) == v for k, v in selector.items()) for labels in templates):
            fail(f"{directory}: Service {service['metadata']['name']} selects {selector}, which no pod template here carries")


def check_security(directory, docs):
    for deployment in find(docs, "Deployment", "sluice"):
        pod = deployment["spec"]["template"]["spec"]
        context = pod.get("securityContext", {})
        if context.get("runAsNonRoot") is not True:
            fail(f"{directory}: the pod must run as non-root")
        if "runAsUser" in context:
            fail(f"{directory}: no fixed UID (OpenShift assigns one)")
        if context.get("seccompProfile", {}).get("type") != "RuntimeDefault":
            fail(f"{directory}: seccompProfile must be RuntimeDefault")
        for container in pod["containers"]:
            c = container.get("securityContext", {})
            if c.get("allowPrivilegeEscalation") is not False:
                fail(f"{directory}: {container['name']}: allowPrivilegeEscalation must be false")
            if c.get("readOnlyRootFilesystem") is not True:
                fail(f"{directory}: {container['name']}: the root filesystem must be read-only")
            if c.get("capabilities", {}).get("drop") != ["ALL"]:
                fail(f"{directory}: {container['name']}: all capabilities must be dropped")
            if c.get("privileged") or "runAsUser" in c:
                fail(f"{directory}: {container['name']}: not privileged, no fixed UID")
    for policy in find(docs, "NetworkPolicy", "sluice"):
        for rule in policy["spec"].get("ingress", []):
            ports = [p.get("port") for p in rule.get("ports", [])]
            if not ports or "admin" in ports or 9090 in ports:
                peers = rule.get("from") or []
                # Only named namespaces: an empty selector (or an ipBlock) would open it wider.
                if not peers or any(set(peer) != {"namespaceSelector"} or not peer["namespaceSelector"].get("matchLabels") for peer in peers):
                    fail(f"{directory}: the NetworkPolicy opens the admin port beyond named namespaces: {peers}")


def get(url, token=None):
    request = urllib.request.Request(url, headers={"authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(request, timeout=3) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def check_served(sluice, docs, keda_docs, dashboard):
    """Serves the base config on loopback and requests what the manifests point at."""
    text = configs_in(docs)[0]
    config = yaml.safe_load(text)
    data_port, admin_port = port_of(config["listen"]), port_of(config["admin"]["listen"])
    deployment = find(docs, "Deployment", "sluice")[0]
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    if ports != {"http": data_port, "admin": admin_port}:
        fail(f"container ports {ports} differ from the config's listen {data_port} and admin {admin_port}")
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "config")
    if container["args"] != ["serve", "--config", f"{mount}/sluice.yaml"]:
        fail(f"the container's args {container['args']} do not serve the mounted config")
    grace = pod["terminationGracePeriodSeconds"]
    pause = int(container["lifecycle"]["preStop"]["exec"]["command"][-1])
    shutdown = int(str(config.get("shutdown", {}).get("grace", "30s")).rstrip("s"))
    if grace <= pause + shutdown:
        fail(f"terminationGracePeriodSeconds {grace} must exceed the preStop pause {pause} + shutdown.grace {shutdown}")
    for service in find(docs, "Service"):
        for port in service["spec"]["ports"]:
            if service["metadata"]["name"].startswith("sluice") and port["targetPort"] not in ports:
                fail(f"Service {service['metadata']['name']} targets port {port['targetPort']}, not a container port")
    admin_service_port = find(docs, "Service", "sluice-admin")[0]["spec"]["ports"][0]["port"]

    # Containerfile: two stages, the static stdlib, a numeric non-root user, the same ports and command.
    containerfile = open(os.path.join(ROOT, "Containerfile")).read()
    if len(re.findall(r"^FROM ", containerfile, re.M)) != 2:
        fail("Containerfile: expected a build stage and a runtime stage")
    # SwiftPM refuses to build when a target's directory is missing, test targets included.
    for directory in ("Sources", "Tests"):
        if not re.search(rf"^COPY {directory} ", containerfile, re.M):
            fail(f"Containerfile: {directory}/ must be copied into the build stage")
    ignored = open(os.path.join(ROOT, ".containerignore")).read().split()
    if "Tests" in ignored or "Sources" in ignored:
        fail(".containerignore must not leave out Sources or Tests")
    if "--static-swift-stdlib" not in containerfile:
        fail("Containerfile: the binary must link the Swift runtime statically")
    user = re.search(r"^USER (\d+)", containerfile, re.M)
    if not user or user.group(1) == "0":
        fail("Containerfile: USER must be a numeric non-root UID")
    exposed = sorted(int(p) for p in re.search(r"^EXPOSE (.+)$", containerfile, re.M).group(1).split())
    if exposed != sorted([data_port, admin_port]):
        fail(f"Containerfile: EXPOSE {exposed} differs from the config's ports")
    entry = json.loads(re.search(r"^ENTRYPOINT (.+)$", containerfile, re.M).group(1))
    command = json.loads(re.search(r"^CMD (.+)$", containerfile, re.M).group(1))
    if entry[-1].split("/")[-1] != "sluice" or command != container["args"]:
        fail(f"Containerfile: ENTRYPOINT {entry} CMD {command} differ from the Deployment's {container['args']}")

    # Serve it on loopback, the parts that need the cluster (the pods' DNS records, their
    # health checks) replaced by one local address that nothing needs to answer.
    local = dict(config)
    local["pools"] = [dict(pool, replicas=["127.0.0.1:9"]) for pool in config["pools"]]
    for pool in local["pools"]:
        pool.pop("discovery", None)
        if isinstance(pool.get("health"), dict):
            pool["health"] = {k: v for k, v in pool["health"].items() if k != "check"}
    local["listen"] = f"127.0.0.1:{free_port()}"
    local["admin"] = dict(config["admin"], listen=f"127.0.0.1:{free_port()}")
    workdir = tempfile.mkdtemp()
    path = os.path.join(workdir, "sluice.yaml")
    with open(path, "w") as f:
        yaml.safe_dump(local, f)
    env = dict(os.environ, SLUICE_ADMIN_TOKEN="deploy-check-token", SLUICE_KEYS_TEAM_A="sk-deploy-check")
    process = subprocess.Popen([sluice, "serve", "--config", path], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    admin = f"http://{local['admin']['listen']}"
    try:
        for _ in range(100):
            try:
                if get(admin + "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.1)
        for probe in ("livenessProbe", "readinessProbe"):
            spec = container[probe]["httpGet"]
            if spec["port"] != "admin":
                fail(f"{probe} must use the admin port")
            status, _ = get(admin + spec["path"])
            if status != 200:
                fail(f"{probe} {spec['path']} answered {status}")
        monitor = find(docs, "ServiceMonitor")[0]["spec"]["endpoints"][0]
        status, metrics = get(admin + monitor["path"])
        if status != 200 or monitor["port"] != "admin":
            fail(f"ServiceMonitor {monitor} does not reach /metrics ({status})")
        used = set(re.findall(r"sluice_[a-z_]+", json.dumps(dashboard)))
        exported = set(re.findall(r"^(sluice_[a-z_]+)", metrics, re.M))
        for name in sorted(used):
            if name not in exported and name.removesuffix("_bucket") + "_bucket" not in exported:
                fail(f"the Grafana dashboard queries {name}, which /metrics does not export")
        for scaled in find(keda_docs, "ScaledObject"):
            for trigger in scaled["spec"]["triggers"]:
                if trigger["type"] != "metrics-api":
                    continue
                url = trigger["metadata"]["url"]
                match = re.match(r"http://sluice-admin\.[a-z-]+\.svc\.cluster\.local:(\d+)(/.*)$", url)
                if not match or int(match.group(1)) != admin_service_port:
                    fail(f"KEDA url {url} does not name the admin Service's port {admin_service_port}")
                    continue
                if get(admin + match.group(2))[0] != 401:
                    fail("/admin/scale must refuse a request without the token")
                status, body = get(admin + match.group(2), token="deploy-check-token")
                value = json.loads(body) if status == 200 else None
                for part in trigger["metadata"]["valueLocation"].split("."):
                    value = value.get(part) if isinstance(value, dict) else None
                if not isinstance(value, int):
                    fail(f"KEDA valueLocation {trigger['metadata']['valueLocation']} is not a number in /admin/scale ({status}: {body[:200]})")
    finally:
        process.terminate()
        process.wait(timeout=10)
        shutil.rmtree(workdir)


def main():
    sluice = sys.argv[1]
    rendered = {}
    for directory in DIRS:
        docs = render(directory)
        rendered[directory] = docs
        validate(directory, docs)
        for text in configs_in(docs):
            sluice_check(sluice, directory, text)
        check_security(directory, docs)
        check_wiring(directory, docs)
        print(f"{directory}: {len(docs)} objects rendered and validated")
    dashboard = json.load(open(os.path.join(ROOT, "deploy/grafana/sluice-dashboard.json")))
    check_served(sluice, rendered["deploy/kubernetes/base"], rendered["deploy/kubernetes/autoscaling/keda-metrics-api"], dashboard)
    # Every example's KEDA valueLocation names a scaled pool of its own config.
    for directory, docs in rendered.items():
        if not configs_in(docs):
            continue  # applied beside the base (autoscaling/*): checked against its config above
        names = {p["name"] for text in configs_in(docs) for p in yaml.safe_load(text)["pools"] if "scaling" in p}
        for scaled in find(docs, "ScaledObject"):
            for trigger in scaled["spec"]["triggers"]:
                location = trigger["metadata"].get("valueLocation")
                if location and location.split(".")[1] not in names:
                    fail(f"{directory}: valueLocation {location} names no scaled pool of its config ({sorted(names)})")
    if failures:
        print(f"{len(failures)} deploy checks failed")
        sys.exit(1)
    print("deploy checks ok")


if __name__ == "__main__":
    main()
