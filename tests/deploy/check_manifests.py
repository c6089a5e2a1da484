"""Static checks of the deployment files that no engine is needed for.

Usage: check_manifests.py   (compose files must already have passed `docker-compose config`)

Reads the compose files as `docker-compose config` resolves them (anchors and variables
expanded), the Kubernetes manifests and the Dockerfiles, and checks that what they promise
agrees: the port, the /health probes, read-only models, the config file being the same in
compose and Kubernetes, and the grace periods covering --shutdown-timeout.
"""

import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)


def compose(name):
    out = subprocess.run(["docker-compose", "-f", os.path.join(DEPLOY, name), "config"],
                         check=True, capture_output=True, text=True, env={**os.environ, "MODEL_DIR": "/data/m"})
    return yaml.safe_load(out.stdout)


def seconds(text):
    m = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text))
    return int(m.group(1) or 0) * 60 + int(m.group(2) or 0)


config = json.load(open(os.path.join(DEPLOY, "config", "vllm_config.json")))
shutdown_timeout = int(config["shutdown-timeout"])


def published_ports(svc):
    """`HOST:CONTAINER` for each published port, whichever form docker-compose printed."""
    return [f"{p.get('published')}:{p.get('target')}" if isinstance(p, dict) else str(p).split("/")[0]
            for p in svc.get("ports", [])]


def mounts(svc):
    """(source, target, read_only) of each volume, from the short or the long syntax (Compose
    v1 prints the short one, v2 the long one)."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((str(v.get("source")), v.get("target"), bool(v.get("read_only"))))
        else:
            parts = str(v).split(":")
            out.append((parts[0], parts[1], parts[2:3] == ["ro"]))
    return out


def check_ferrum_service(name, svc, published):
    check(svc.get("image", "").startswith("ferrum"), f"{name}: image")
    env = svc.get("environment", {})
    check(env.get("MODEL_NAME", "").startswith("/models/"), f"{name}: MODEL_NAME under /models")
    vols = mounts(svc)
    check(any(t.startswith("/models/") and ro for _, t, ro in vols),
          f"{name}: model folder mounted read-only under /models")
    check(any(src.endswith("/config") and t == "/config" for src, t, _ in vols),
          f"{name}: ./config mounted at /config")
    check(svc.get("command") == ["--config", "/config/vllm_config.json"], f"{name}: --config")
    check(svc.get("restart") in ("always", "unless-stopped"), f"{name}: restart policy")
    hc = svc.get("healthcheck", {})
    check(any("/health" in str(t) for t in hc.get("test", [])), f"{name}: healthcheck on /health")
    check(seconds(svc.get("stop_grace_period", "10s")) > shutdown_timeout,
          f"{name}: stop_grace_period must exceed --shutdown-timeout {shutdown_timeout}s")
    devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
    check(any("gpu" in d.get("capabilities", []) for d in devices), f"{name}: GPU reservation")
    ports = published_ports(svc)
    if published:
        check("8000:8000" in ports, f"{name}: ports 8000:8000")
    else:
        check(not ports, f"{name}: a replica behind nginx publishes no port")


single = compose("docker-compose.yml")
check(list(single["services"]) == ["ferrum"], "docker-compose.yml: one service")
check_ferrum_service("docker-compose.yml ferrum", single["services"]["ferrum"], published=True)

replicas = compose("docker-compose.replicas.yml")
names = sorted(replicas["services"])
check(names == ["ferrum-1", "ferrum-2", "nginx"], f"replicas: services {names}")
for n in ("ferrum-1", "ferrum-2"):
    check_ferrum_service(f"replicas {n}", replicas["services"][n], published=False)
ngx = replicas["services"]["nginx"]
check(any(src.endswith("/nginx/nginx.conf") and t == "/etc/nginx/nginx.conf" and ro for src, t, ro in mounts(ngx)),
      "nginx mounts nginx.conf read-only")
check("8000:80" in published_ports(ngx), "nginx publishes 8000")
nginx_conf = open(os.path.join(DEPLOY, "nginx", "nginx.conf")).read()
for n in ("ferrum-1", "ferrum-2"):
    check(re.search(rf"server {n}:8000 max_fails=\d+ fail_timeout=\d+s;", nginx_conf) is not None,
          f"nginx.conf upstream {n} with passive health checks (max_fails, fail_timeout)")
    check(ngx.get("depends_on", {}).get(n, {}).get("condition") == "service_healthy",
          f"nginx waits for {n} to be healthy")

directives = dict(re.findall(r"^\s*(proxy_\w+|zone|keepalive)\s+([^;]*);", nginx_conf, re.M))
next_upstream = directives.get("proxy_next_upstream", "").split()
for case in ("error", "timeout", "http_503", "non_idempotent"):
    check(case in next_upstream, f"nginx.conf proxy_next_upstream retries on {case}")
check(directives.get("proxy_buffering") == "off", "nginx.conf proxy_buffering off (SSE)")
check(seconds(directives.get("proxy_read_timeout", "60s")) >= 300, "nginx.conf long proxy_read_timeout")
check(directives.get("proxy_http_version") == "1.1", "nginx.conf HTTP/1.1 upstream")
check("zone" in directives, "nginx.conf upstream zone (failure state shared by workers)")

# Kubernetes.
k8s = os.path.join(DEPLOY, "k8s")
docs = {}
for f in sorted(os.listdir(k8s)):
    if f.endswith(".yaml"):
        for d in yaml.safe_load_all(open(os.path.join(k8s, f))):
            if d:
                docs.setdefault(d.get("kind", f), []).append((f, d))
kust = docs["Kustomization"][0][1]
for r in kust["resources"]:
    check(os.path.exists(os.path.join(k8s, r)), f"kustomization resource {r} exists")
for kind in ("Deployment", "Service", "ConfigMap", "PersistentVolumeClaim", "HorizontalPodAutoscaler"):
    check(kind in docs, f"k8s: a {kind}")
dep = docs["Deployment"][0][1]
pod = dep["spec"]["template"]["spec"]
c = pod["containers"][0]
check(dep["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
      "Deployment selector matches its pods")
svc = docs["Service"][0][1]
check(svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
      "Service selects the Deployment's pods")
port_names = {p.get("name"): p["containerPort"] for p in c["ports"]}
check(port_names.get("http") == 8000, "container port http = 8000")
for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
    get = c.get(probe, {}).get("httpGet", {})
    check(get.get("path") == "/health" and get.get("port") in ("http", 8000), f"{probe} on /health")
args = c.get("args", [])
k8s_timeout = int(args[args.index("--shutdown-timeout") + 1]) if "--shutdown-timeout" in args else shutdown_timeout
pre_stop = c.get("lifecycle", {}).get("preStop", {}).get("exec", {}).get("command", [])
pre_stop_s = int(pre_stop[-1]) if pre_stop[:1] == ["sleep"] else 0
grace = pod.get("terminationGracePeriodSeconds", 30)
check(grace >= pre_stop_s + k8s_timeout + 5,
      f"terminationGracePeriodSeconds {grace} < preStop {pre_stop_s} + --shutdown-timeout {k8s_timeout} + 5")
live = c["livenessProbe"]
check(live["periodSeconds"] * live["failureThreshold"] > k8s_timeout,
      "liveness must not kill a pod that is draining")
# A Service named ferrum would inject FERRUM_PORT=tcp://..., which Ferrum reads as --port.
if any(d["metadata"]["name"].upper().replace("-", "_").startswith("FERRUM") for _, d in docs["Service"]):
    check(pod.get("enableServiceLinks") is False, "enableServiceLinks: false (FERRUM_* service env)")
check(c["resources"]["limits"].get("nvidia.com/gpu") == 1, "one GPU per pod")
mounts = {m["name"]: m for m in c["volumeMounts"]}
check(mounts["models"]["mountPath"] == "/models" and mounts["models"].get("readOnly"), "models read-only at /models")
env = {e["name"]: e.get("value") for e in c["env"]}
check(str(env.get("MODEL_NAME", "")).startswith("/models/"), "MODEL_NAME under /models")
cm = docs["ConfigMap"][0][1]
check(json.loads(cm["data"]["vllm_config.json"]) == config,
      "k8s ConfigMap vllm_config.json differs from deploy/config/vllm_config.json")
hpa = docs["HorizontalPodAutoscaler"][0][1]
metric = hpa["spec"]["metrics"][0]["pods"]["metric"]["name"]
check(hpa["spec"]["scaleTargetRef"]["name"] == dep["metadata"]["name"], "HPA targets the Deployment")
adapter = yaml.safe_load(open(os.path.join(k8s, "prometheus-adapter-values.yaml")))
rule = adapter["rules"]["custom"][0]
check(rule["name"]["as"] == metric and "vllm:num_requests_waiting" in rule["seriesQuery"],
      "prometheus-adapter exposes vllm:num_requests_waiting under the HPA's metric name")

# Dockerfiles.
for name in ("Dockerfile.cuda", "Dockerfile.cpu"):
    text = open(os.path.join(ROOT, "docker", name)).read()
    stages = re.findall(r"^FROM (\S+)", text, re.M)
    check(len(stages) >= 2, f"{name}: multi-stage")
    final = text[text.rindex("\nFROM "):]
    check('ENTRYPOINT ["ferrum", "serve"]' in final, f"{name}: ENTRYPOINT")
    check(re.search(r"^EXPOSE 8000$", final, re.M) is not None, f"{name}: EXPOSE 8000")
    check(re.search(r'^VOLUME \["/models"\]$', final, re.M) is not None, f"{name}: /models volume")
    check(re.search(r"^HEALTHCHECK .*\n.*/health", final, re.M) is not None, f"{name}: HEALTHCHECK /health")
    user = re.findall(r"^USER (\S+)", final, re.M)
    check(user and user[-1] not in ("root", "0"), f"{name}: non-root user")
    check("FERRUM_HOST=0.0.0.0" in final, f"{name}: listens on every interface")
cuda = open(os.path.join(ROOT, "docker", "Dockerfile.cuda")).read()
check(re.search(r"^FROM nvidia/cuda:\$\{CUDA_VERSION\}-runtime-", cuda, re.M) is not None,
      "Dockerfile.cuda: NVIDIA CUDA runtime base")
check(os.path.exists(os.path.join(ROOT, ".dockerignore")), ".dockerignore")

if failures:
    print("deploy manifest checks failed:\n  " + "\n  ".join(failures))
    sys.exit(1)
print("deploy manifests: compose, nginx, k8s and Dockerfiles agree")
