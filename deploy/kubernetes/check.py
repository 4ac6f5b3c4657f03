#!/usr/bin/env python3
"""Offline checks of the Kubernetes manifests in this directory.

For machines without a cluster or kubeconform: parses every manifest with
PyYAML and checks what a typo would silently break.

- every document has apiVersion, kind and metadata.name; (kind, name) unique;
- field names and scalar types against the Kubernetes API models of the
  `kubernetes` Python client, when it is installed (pip install kubernetes);
  skipped with a note otherwise;
- kustomization.yaml lists every manifest but secret.yaml;
- the Deployment: 3 replicas, rolling update maxUnavailable 0 / maxSurge 1,
  selector = pod labels, startup and liveness probes on /health, readiness
  on /ready, probe ports that exist, LINA_NODE_ID from the pod name, a
  preStop sleep, terminationGracePeriodSeconds above preStop + Lina's
  shutdown budget, readiness timeout above 2 x health.timeout, a startup
  budget above Lina's start-up waits, non-root and read-only root;
- every secretKeyRef names the Secret of secret.yaml and a key it has;
- every configMap volume names the ConfigMap and keys it has, every
  volumeMount a volume, and --config points at the mounted file;
- the ConfigMap's config.yaml is cluster mode and holds no secret;
- the Service and the PodDisruptionBudget select the pods, and the
  Service's targetPort names a container port.

With --lina-server PATH (a lina-server binary, e.g. target/debug/lina-server)
it also runs `lina-server check-config` on the ConfigMap's config.yaml with
the Secret's variables: once with secret.yaml's placeholders, which must be
refused, and once with made-up valid values, which must pass.

Exit status 0 when every check passes, 1 otherwise.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
LABELS_KEY = ("app.kubernetes.io/name", "app.kubernetes.io/component")

problems: list[str] = []
notes: list[str] = []


def problem(where: str, message: str) -> None:
    problems.append(f"{where}: {message}")


# ------------------------------------------------------------------ helpers

UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "\u00b5s": 1e-6,
    "\u03bcs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
}


def go_duration(text: str) -> float:
    """Seconds of a Go duration string (30s, 1h30m, 500ms), as Lina reads it."""
    text = str(text).strip()
    if text == "0":
        return 0.0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|\u03bcs|ms|s|m|h|d)", text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise ValueError(f"{text!r} is not a duration")
    return sum(float(n) * UNITS[u] for n, u in parts)


def dig(tree, *path, default=None):
    for key in path:
        if isinstance(tree, dict) and key in tree:
            tree = tree[key]
        else:
            return default
    return tree


def load() -> dict[str, list[dict]]:
    docs: dict[str, list[dict]] = {}
    for path in sorted(HERE.glob("*.yaml")):
        with path.open(encoding="utf-8") as f:
            try:
                docs[path.name] = [d for d in yaml.safe_load_all(f) if d is not None]
            except yaml.YAMLError as e:
                problem(path.name, f"not valid YAML: {e}")
    return docs


# ------------------------------------------------------------------ schema

MODELS = {
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "Service"): "V1Service",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
}


def check_schema(where: str, doc: dict) -> None:
    try:
        from kubernetes import client  # type: ignore
    except ImportError:
        if "schema" not in " ".join(notes):
            notes.append(
                "schema check skipped: the kubernetes Python package is not installed "
                "(pip install kubernetes)"
            )
        return
    name = MODELS.get((doc.get("apiVersion"), doc.get("kind")))
    if name is None:
        problem(where, f"no model known for {doc.get('apiVersion')} {doc.get('kind')}")
        return

    def walk(value, type_name: str, path: str) -> None:
        # Older clients write list[X] / dict(str, X), newer List[X] / Dict[str, X].
        if type_name.lower().startswith("list["):
            if not isinstance(value, list):
                problem(where, f"{path}: expected a list")
                return
            for i, item in enumerate(value):
                walk(item, type_name[5:-1], f"{path}[{i}]")
        elif type_name.lower().startswith(("dict(", "dict[")):
            if not isinstance(value, dict):
                problem(where, f"{path}: expected a map")
                return
            inner = type_name[type_name.index(",") + 1 : -1].strip()
            for k, v in value.items():
                walk(v, inner, f"{path}.{k}")
        elif type_name == "str":
            if not isinstance(value, str):
                problem(where, f"{path}: expected a string, got {value!r}")
        elif type_name == "int":
            if not isinstance(value, int) or isinstance(value, bool):
                problem(where, f"{path}: expected an integer, got {value!r}")
        elif type_name == "bool":
            if not isinstance(value, bool):
                problem(where, f"{path}: expected true or false, got {value!r}")
        elif type_name in ("float",):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                problem(where, f"{path}: expected a number, got {value!r}")
        elif type_name in ("object", "datetime", "date", "bytes"):
            pass  # IntOrString, Quantity, timestamps: any scalar
        else:
            cls = getattr(client.models, type_name, None)
            if cls is None:
                notes.append(f"schema: unknown model {type_name} at {where} {path}")
                return
            if not isinstance(value, dict):
                problem(where, f"{path}: expected a map ({type_name})")
                return
            by_json = {json: attr for attr, json in cls.attribute_map.items()}
            for key, child in value.items():
                attr = by_json.get(key)
                if attr is None:
                    problem(where, f"{path}.{key}: unknown field of {type_name}")
                    continue
                walk(child, cls.openapi_types[attr], f"{path}.{key}")

    walk(doc, name, doc.get("kind", "?"))


# ------------------------------------------------------------------ checks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--lina-server",
        metavar="PATH",
        help="also run PATH check-config on the ConfigMap's config.yaml",
    )
    args = parser.parse_args()

    files = load()
    by_kind: dict[str, list[tuple[str, dict]]] = {}
    seen: set[tuple[str, str]] = set()
    for fname, docs in files.items():
        for doc in docs:
            if fname == "kustomization.yaml":
                continue
            where = fname
            for key in ("apiVersion", "kind"):
                if not doc.get(key):
                    problem(where, f"missing {key}")
            name = dig(doc, "metadata", "name")
            if not name:
                problem(where, "missing metadata.name")
            ident = (doc.get("kind"), name)
            if ident in seen:
                problem(where, f"{ident[0]} {ident[1]} defined twice")
            seen.add(ident)
            by_kind.setdefault(doc.get("kind"), []).append((where, doc))
            check_schema(where, doc)

    # kustomization: everything but the Secret.
    kust = files.get("kustomization.yaml", [{}])[0]
    resources = set(kust.get("resources", []))
    expected = {f for f in files if f not in ("kustomization.yaml", "secret.yaml")}
    if resources != expected:
        problem("kustomization.yaml", f"resources {sorted(resources)} should be {sorted(expected)}")

    def one(kind: str) -> tuple[str, dict]:
        items = by_kind.get(kind, [])
        if len(items) != 1:
            problem("*", f"expected exactly one {kind}, found {len(items)}")
            return ("?", {})
        return items[0]

    dep_file, dep = one("Deployment")
    cm_file, cm = one("ConfigMap")
    sec_file, sec = one("Secret")
    svc_file, svc = one("Service")
    pdb_file, pdb = one("PodDisruptionBudget")

    # ---------------------------------------------------------- ConfigMap config
    config = {}
    raw_config = dig(cm, "data", "config.yaml")
    if not isinstance(raw_config, str):
        problem(cm_file, "data.config.yaml is missing")
    else:
        try:
            config = yaml.safe_load(raw_config) or {}
        except yaml.YAMLError as e:
            problem(cm_file, f"data.config.yaml is not valid YAML: {e}")
    if dig(config, "cluster", "enabled") is not True:
        problem(cm_file, "config.yaml: cluster.enabled must be true")
    for path in (("jwt", "secret"), ("database", "default", "link"), ("cluster", "redis", "password")):
        if dig(config, *path) not in (None, ""):
            problem(cm_file, f"config.yaml: {'.'.join(path)} is a secret: set it from the Secret, not here")

    def seconds(path: tuple[str, ...], default: str) -> float:
        try:
            return go_duration(dig(config, *path, default=default))
        except ValueError as e:
            problem(cm_file, f"config.yaml: {'.'.join(path)}: {e}")
            return go_duration(default)

    shutdown = seconds(("shutdown", "timeout"), "30s")
    lease = seconds(("cluster", "election", "lease"), "30s")
    health = seconds(("health", "timeout"), "5s")
    connect = seconds(("cluster", "redis", "connectTimeout"), "3s")

    # ---------------------------------------------------------- Deployment
    spec = dep.get("spec", {})
    pod = dig(spec, "template", "spec", default={})
    labels = dig(spec, "template", "metadata", "labels", default={})
    if spec.get("replicas") != 3:
        problem(dep_file, f"spec.replicas is {spec.get('replicas')}, expected 3")
    rolling = dig(spec, "strategy", "rollingUpdate", default={})
    if dig(spec, "strategy", "type") != "RollingUpdate" or rolling.get("maxUnavailable") != 0 or rolling.get("maxSurge") != 1:
        problem(dep_file, "strategy must be RollingUpdate with maxUnavailable 0 and maxSurge 1")
    selector = dig(spec, "selector", "matchLabels", default={})
    if not selector or any(labels.get(k) != v for k, v in selector.items()):
        problem(dep_file, f"selector {selector} does not match the pod labels {labels}")
    for key in LABELS_KEY:
        if key not in labels:
            problem(dep_file, f"pod label {key} missing")
    if pod.get("enableServiceLinks") is not False:
        problem(dep_file, "enableServiceLinks must be false (service links add LINA_* variables)")
    psc = pod.get("securityContext", {})
    if psc.get("runAsNonRoot") is not True:
        problem(dep_file, "pod securityContext.runAsNonRoot must be true")

    containers = pod.get("containers", [])
    if len(containers) != 1:
        problem(dep_file, f"expected one container, found {len(containers)}")
    c = containers[0] if containers else {}
    port_names = {p.get("name"): p.get("containerPort") for p in c.get("ports", [])}
    if port_names.get("http") != 9120:
        problem(dep_file, "container port http must be 9120")

    def probe(name: str, path: str) -> dict:
        p = c.get(name)
        if not p:
            problem(dep_file, f"{name} missing")
            return {}
        got = dig(p, "httpGet", "path")
        if got != path:
            problem(dep_file, f"{name} path is {got}, expected {path}")
        port = dig(p, "httpGet", "port")
        if port not in port_names and port not in port_names.values():
            problem(dep_file, f"{name} port {port} is not a container port")
        return p

    startup = probe("startupProbe", "/health")
    probe("livenessProbe", "/health")
    readiness = probe("readinessProbe", "/ready")
    if readiness and readiness.get("timeoutSeconds", 1) <= 2 * health:
        problem(dep_file, f"readinessProbe.timeoutSeconds must exceed 2 x health.timeout ({2 * health:g}s): /ready checks the database, then Redis")
    if startup:
        budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
        # Redis wait, database connect, migrations lock, plugin-sync lock.
        needed = 10 * connect + 10 + 120 + 30
        if budget < needed:
            problem(dep_file, f"startupProbe allows {budget}s; start-up may take {needed:g}s (Redis wait, database connect, migrations and plugin-sync locks)")

    pre_stop = dig(c, "lifecycle", "preStop", "exec", "command", default=[])
    sleep = 0.0
    if len(pre_stop) == 2 and pre_stop[0] == "sleep":
        sleep = float(pre_stop[1])
    else:
        problem(dep_file, f"lifecycle.preStop should be exec [sleep, N], found {pre_stop}")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    needed = sleep + 1.5 * shutdown + 5 + lease
    if grace < needed:
        problem(dep_file, f"terminationGracePeriodSeconds {grace} is below preStop {sleep:g}s + 1.5 x shutdown.timeout + 5s + lease = {needed:g}s")
    if grace <= shutdown:
        problem(dep_file, "terminationGracePeriodSeconds must exceed shutdown.timeout")

    csc = c.get("securityContext", {})
    if csc.get("readOnlyRootFilesystem") is not True:
        problem(dep_file, "readOnlyRootFilesystem must be true")
    if csc.get("allowPrivilegeEscalation") is not False:
        problem(dep_file, "allowPrivilegeEscalation must be false")
    if "ALL" not in dig(csc, "capabilities", "drop", default=[]):
        problem(dep_file, "capabilities must drop ALL")
    if not dig(c, "resources", "requests") or not dig(c, "resources", "limits", "memory"):
        problem(dep_file, "resources need requests and a memory limit")

    env = {e.get("name"): e for e in c.get("env", [])}
    if dig(env.get("LINA_NODE_ID", {}), "valueFrom", "fieldRef", "fieldPath") != "metadata.name":
        problem(dep_file, "LINA_NODE_ID must come from the pod name (fieldRef metadata.name)")
    secret_name = dig(sec, "metadata", "name")
    secret_keys = set(dig(sec, "stringData", default={}) or {}) | set(dig(sec, "data", default={}) or {})
    secret_env = {}
    for name, e in env.items():
        ref = dig(e, "valueFrom", "secretKeyRef")
        if ref:
            if ref.get("name") != secret_name:
                problem(dep_file, f"env {name}: Secret {ref.get('name')} is not defined here ({secret_name})")
            elif ref.get("key") not in secret_keys:
                problem(dep_file, f"env {name}: key {ref.get('key')} is not in Secret {secret_name}")
            else:
                secret_env[name] = ref.get("key")
    for name in ("LINA_JWT__SECRET", "LINA_CLUSTER__REDIS__PASSWORD", "LINA_DATABASE__DEFAULT__LINK"):
        if name not in secret_env:
            problem(dep_file, f"env {name} must come from the Secret")
    for ef in c.get("envFrom", []):
        ref = ef.get("secretRef") or ef.get("configMapRef")
        if ref and ref.get("name") not in (secret_name, dig(cm, "metadata", "name")):
            problem(dep_file, f"envFrom names {ref.get('name')}, which is not defined here")

    volumes = {v.get("name"): v for v in pod.get("volumes", [])}
    config_path = None
    for m in c.get("volumeMounts", []):
        v = volumes.get(m.get("name"))
        if v is None:
            problem(dep_file, f"volumeMount {m.get('name')} has no volume")
            continue
        if "configMap" in v:
            ref = v["configMap"]
            if ref.get("name") != dig(cm, "metadata", "name"):
                problem(dep_file, f"volume {m['name']}: ConfigMap {ref.get('name')} is not defined here")
            items = ref.get("items") or [{"key": k, "path": k} for k in (cm.get("data") or {})]
            for item in items:
                if item.get("key") not in (cm.get("data") or {}):
                    problem(dep_file, f"volume {m['name']}: key {item.get('key')} is not in ConfigMap")
                if item.get("key") == "config.yaml":
                    config_path = f"{m.get('mountPath', '').rstrip('/')}/{item.get('path')}"
    cmdline = list(c.get("command", [])) + list(c.get("args", []))
    if "--config" not in cmdline:
        problem(dep_file, "args must pass --config")
    else:
        given = cmdline[cmdline.index("--config") + 1] if cmdline.index("--config") + 1 < len(cmdline) else None
        if given != config_path:
            problem(dep_file, f"--config {given} is not the mounted config.yaml ({config_path})")

    # ---------------------------------------------------------- Service, PDB
    svc_sel = dig(svc, "spec", "selector", default={})
    if not svc_sel or any(labels.get(k) != v for k, v in svc_sel.items()):
        problem(svc_file, f"selector {svc_sel} does not select the pods ({labels})")
    for p in dig(svc, "spec", "ports", default=[]):
        tp = p.get("targetPort")
        if tp not in port_names and tp not in port_names.values():
            problem(svc_file, f"targetPort {tp} is not a container port")
    pdb_sel = dig(pdb, "spec", "selector", "matchLabels", default={})
    if not pdb_sel or any(labels.get(k) != v for k, v in pdb_sel.items()):
        problem(pdb_file, f"selector {pdb_sel} does not select the pods")

    # ---------------------------------------------------------- lina-server check-config
    if args.lina_server and raw_config:
        run_check_config(args.lina_server, raw_config, sec, secret_env)

    for n in notes:
        print(f"note: {n}")
    if problems:
        for p in problems:
            print(f"FAIL {p}")
        print(f"{len(problems)} problem(s)")
        return 1
    docs = sum(len(d) for f, d in files.items() if f != "kustomization.yaml")
    print(f"ok: {docs} manifests in {len(files)} files checked")
    return 0


def run_check_config(binary: str, raw_config: str, sec: dict, secret_env: dict[str, str]) -> None:
    values = dict(dig(sec, "stringData", default={}) or {})
    base = {k: v for k, v in os.environ.items() if not k.upper().startswith("LINA_") and k != "RUST_LOG"}
    base["LINA_NODE_ID"] = "lina-0123456789-abcde"
    valid = {
        "jwt-secret": "k8s-check-0123456789abcdefghijklmnop",
        "redis-password": "k8s-check-redis",
        "database-link": "pgsql:lina:k8s-check@tcp(postgres:5432)/lina?sslmode=disable",
    }
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(raw_config)
        path = f.name
    try:
        for label, source, want in (("placeholders", values, "refused"), ("valid values", valid, "accepted")):
            env = dict(base)
            for var, key in secret_env.items():
                env[var] = source.get(key, "")
            run = subprocess.run(
                [binary, "check-config", "--config", path],
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
            )
            ok = run.returncode == 0
            print(f"lina-server check-config with the Secret's {label}: exit {run.returncode}")
            for line in run.stderr.strip().splitlines():
                print(f"  {line}")
            if (want == "accepted") != ok:
                problem("configmap.yaml", f"check-config with the Secret's {label} should be {want}")
            if want == "accepted" and ok and "warning" in run.stderr:
                problem("configmap.yaml", "check-config printed warnings")
    finally:
        os.unlink(path)


if __name__ == "__main__":
    sys.exit(main())
