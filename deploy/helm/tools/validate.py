#!/usr/bin/python3
"""Validates a chart rendering (render.sh -output json) without a cluster.

  deploy/helm/tools/render.sh -chart CHART -f values.yaml -output json > r.json
  deploy/helm/tools/validate.py --chart CHART r.json [--promtool] [--external Kind/name]...

What it checks (and nothing more — see deploy/helm/README.md):

1. values.schema.json (JSON Schema draft-07, python3-jsonschema) against the
   merged values, as `helm install` does.
2. Every object against the OpenAPI models of the Kubernetes Python client
   (python3-kubernetes; its version is printed): every key must be a field of
   the model (attribute_map), every value of the model's type (openapi_types,
   recursively), every field the model marks as required present. Fields
   typed "object" are IntOrString; resource quantities may be numbers.
   autoscaling/v2 HorizontalPodAutoscaler is checked against the client's
   autoscaling/v2beta2 model (the same fields; the client predates v2).
   ServiceMonitor (monitoring.coreos.com/v1, a CRD) is checked against the
   hand-written subset of its schema below.
3. Rules the API server enforces that the models do not carry: enums of the
   fields this chart uses, name formats (DNS-1123/1035, IANA port names, label
   keys and values, env names), selector ⊆ template labels, unique names and
   ports, env value XOR valueFrom, extended resources (whole numbers, requests ==
   limits), ConfigMap size.
4. Chart-level consistency: Services, PDBs, NetworkPolicies, ServiceMonitors and
   HPAs select or target something rendered; named ports (probes, Services,
   NetworkPolicies, ServiceMonitors, Ingress) exist; referenced ConfigMaps,
   Secrets, PVCs, ServiceAccounts and volumes exist in the rendering or are
   declared external (EXTERNAL_REFS: values that name objects the user
   creates); $(VAR) references point at earlier env entries; requests ≤
   limits; terminationGracePeriodSeconds ≥ the SMOLLM_DRAIN_TIMEOUT_MS of the
   pod's containers plus preStop sleeps; a StatefulSet's serviceName is a
   rendered headless Service; PDB minAvailable below the replica floor; an
   HPA's target does not also set replicas.
5. Policy of this chart: non-root pods, memory limits and cpu/memory requests
   on every container, no image without a tag or with :latest.
6. With --promtool: every PromQL expression of the Grafana dashboards in
   ConfigMaps labelled grafana_dashboard parses (`promtool check rules`, with
   Grafana's $variables substituted).

Exit status: 0 valid, 1 problems found (listed), 3 a Debian package is missing.
"""
import argparse
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from decimal import Decimal

MISSING = []
try:
    import kubernetes
    import kubernetes.client as k8s
except ImportError:
    MISSING.append("python3-kubernetes")
try:
    import jsonschema
except ImportError:
    MISSING.append("python3-jsonschema")
try:
    import yaml
except ImportError:
    MISSING.append("python3-yaml")
if MISSING:
    sys.stderr.write(
        f"validate.py: missing Debian package(s) for {sys.executable}: {' '.join(MISSING)}\n"
        f"validate.py: install with: apt-get install -y --no-install-recommends {' '.join(MISSING)}\n")
    sys.exit(3)

# ------------------------------------------------------------------ models

# apiVersion/kind → model class of the Kubernetes Python client.
MODELS = {
    ("v1", "Service"): "V1Service",
    ("v1", "ConfigMap"): "V1ConfigMap",
    ("v1", "Secret"): "V1Secret",
    ("v1", "ServiceAccount"): "V1ServiceAccount",
    ("v1", "Pod"): "V1Pod",
    ("v1", "PersistentVolumeClaim"): "V1PersistentVolumeClaim",
    ("apps/v1", "Deployment"): "V1Deployment",
    ("apps/v1", "StatefulSet"): "V1StatefulSet",
    ("policy/v1", "PodDisruptionBudget"): "V1PodDisruptionBudget",
    ("networking.k8s.io/v1", "NetworkPolicy"): "V1NetworkPolicy",
    ("networking.k8s.io/v1", "Ingress"): "V1Ingress",
    ("autoscaling/v2beta2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
    # The client (Kubernetes 1.22 models) has no autoscaling/v2; v2 is v2beta2 made GA
    # with the same fields, so v2 objects are checked against the v2beta2 model.
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "V2beta2HorizontalPodAutoscaler",
}

# A hand-written subset of the ServiceMonitor CRD schema (prometheus-operator
# monitoring.coreos.com/v1): the fields a chart sets, unknown fields refused.
_SELECTOR = {"type": "object", "additionalProperties": False, "properties": {
    "matchLabels": {"type": "object", "additionalProperties": {"type": "string"}},
    "matchExpressions": {"type": "array", "items": {"type": "object", "required": ["key", "operator"], "additionalProperties": False,
                         "properties": {"key": {"type": "string"}, "operator": {"enum": ["In", "NotIn", "Exists", "DoesNotExist"]},
                                        "values": {"type": "array", "items": {"type": "string"}}}}}}}
_RELABEL = {"type": "array", "items": {"type": "object", "additionalProperties": False, "properties": {
    "sourceLabels": {"type": "array", "items": {"type": "string"}}, "separator": {"type": "string"},
    "targetLabel": {"type": "string"}, "regex": {"type": "string"}, "modulus": {"type": "integer"},
    "replacement": {"type": "string"},
    "action": {"enum": ["replace", "Replace", "keep", "Keep", "drop", "Drop", "hashmod", "HashMod", "labelmap", "LabelMap",
                        "labeldrop", "LabelDrop", "labelkeep", "LabelKeep", "lowercase", "Lowercase", "uppercase", "Uppercase",
                        "keepequal", "KeepEqual", "dropequal", "DropEqual"]}}}}
_DURATION = {"type": "string", "pattern": r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$"}
SERVICE_MONITOR_SCHEMA = {
    "type": "object", "required": ["apiVersion", "kind", "metadata", "spec"],
    "properties": {
        "spec": {"type": "object", "additionalProperties": False, "required": ["selector", "endpoints"], "properties": {
            "jobLabel": {"type": "string"},
            "targetLabels": {"type": "array", "items": {"type": "string"}},
            "podTargetLabels": {"type": "array", "items": {"type": "string"}},
            "selector": _SELECTOR,
            "namespaceSelector": {"type": "object", "additionalProperties": False, "properties": {
                "any": {"type": "boolean"}, "matchNames": {"type": "array", "items": {"type": "string"}}}},
            "sampleLimit": {"type": "integer", "minimum": 0},
            "endpoints": {"type": "array", "minItems": 1, "items": {"type": "object", "additionalProperties": False, "properties": {
                "port": {"type": "string"}, "targetPort": {"type": ["string", "integer"]}, "path": {"type": "string", "pattern": "^/"},
                "scheme": {"enum": ["http", "https"]}, "params": {"type": "object"}, "interval": _DURATION,
                "scrapeTimeout": _DURATION, "honorLabels": {"type": "boolean"}, "honorTimestamps": {"type": "boolean"},
                "relabelings": _RELABEL, "metricRelabelings": _RELABEL, "tlsConfig": {"type": "object"},
                "bearerTokenSecret": {"type": "object"}, "authorization": {"type": "object"},
                "followRedirects": {"type": "boolean"}, "enableHttp2": {"type": "boolean"}}}}}},
    },
}
CRD_SCHEMAS = {("monitoring.coreos.com/v1", "ServiceMonitor"): SERVICE_MONITOR_SCHEMA}

# Enums the API server enforces on fields this chart sets (the models carry none).
ENUMS = {
    ("V1Container", "image_pull_policy"): {"Always", "IfNotPresent", "Never"},
    ("V1ContainerPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1ServicePort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1NetworkPolicyPort", "protocol"): {"TCP", "UDP", "SCTP"},
    ("V1PodSpec", "restart_policy"): {"Always", "OnFailure", "Never"},
    ("V1ServiceSpec", "type"): {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"},
    ("V1Toleration", "operator"): {"Exists", "Equal"},
    ("V1Toleration", "effect"): {"NoSchedule", "PreferNoSchedule", "NoExecute", ""},
    ("V1StatefulSetSpec", "pod_management_policy"): {"OrderedReady", "Parallel"},
    ("V1StatefulSetUpdateStrategy", "type"): {"RollingUpdate", "OnDelete"},
    ("V1DeploymentStrategy", "type"): {"RollingUpdate", "Recreate"},
    ("V1HTTPIngressPath", "path_type"): {"Exact", "Prefix", "ImplementationSpecific"},
    ("V1SeccompProfile", "type"): {"RuntimeDefault", "Unconfined", "Localhost"},
    ("V2beta2MetricSpec", "type"): {"Resource", "Pods", "Object", "External", "ContainerResource"},
    ("V2beta2MetricTarget", "type"): {"Utilization", "Value", "AverageValue"},
    ("V2beta2HPAScalingPolicy", "type"): {"Pods", "Percent"},
    ("V2beta2HPAScalingRules", "select_policy"): {"Max", "Min", "Disabled"},
    ("V1LabelSelectorRequirement", "operator"): {"In", "NotIn", "Exists", "DoesNotExist"},
    ("V1ObjectFieldSelector", "field_path"): {
        "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", "spec.serviceAccountName",
        "status.hostIP", "status.podIP", "status.podIPs"},
}
ENUM_LISTS = {
    ("V1NetworkPolicySpec", "policy_types"): {"Ingress", "Egress"},
    ("V1PersistentVolumeClaimSpec", "access_modes"): {"ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany", "ReadWriteOncePod"},
    ("V1Capabilities", "drop"): None,  # any capability name
}

# Values that name objects the user creates outside the chart, by kind.
EXTERNAL_REFS = [
    ("Secret", "redis.external.existingSecret.name"),
    ("Secret", "gateway.apiKeys.existingSecret"),
    ("Secret", "gateway.ingress.tlsSecretName"),
    ("Secret", "model.hf.tokenSecret.name"),
    ("Secret", "tls.gateway.existingSecret"),
    ("Secret", "tls.internal.existingSecret"),
    ("Secret", "imagePullSecrets[*].name"),
    ("PersistentVolumeClaim", "model.pvc.claimName"),
    ("ServiceAccount", "serviceAccount.name"),  # only when serviceAccount.create is false
]

DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
LABEL_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
QUANTITY = re.compile(r"^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$")
VAR_REF = re.compile(r"\$\(([^)]*)\)")


class Problems:
    def __init__(self):
        self.items = []

    def add(self, where, message):
        self.items.append(f"{where}: {message}")


P = Problems()

# --------------------------------------------------------- structural check

_required_cache = {}


def required_fields(cls):
    """Fields whose setter refuses None (the models' own 'required')."""
    if cls not in _required_cache:
        src = inspect.getsource(cls)
        _required_cache[cls] = set(re.findall(
            r"if self\.local_vars_configuration\.client_side_validation and (\w+) is None:", src))
    return _required_cache[cls]


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


QUANTITY_MAPS = {("V1ResourceRequirements", "limits"), ("V1ResourceRequirements", "requests")}
QUANTITY_FIELDS = {("V1EmptyDirVolumeSource", "size_limit")}


def check_quantity(where, v):
    if is_int(v) or isinstance(v, float):
        return
    if not isinstance(v, str) or not QUANTITY.match(v):
        P.add(where, f"not a Kubernetes quantity: {v!r}")
        return
    try:
        parse_quantity(v)
    except ValueError as e:
        P.add(where, str(e))


def check_type(where, typ, value, owner=None, attr=None):
    """Checks `value` (decoded JSON) against a python-client type string."""
    if value is None:
        return  # null = unset, as the API server reads it
    m = re.fullmatch(r"list\[(.+)\]", typ)
    if m:
        if not isinstance(value, list):
            P.add(where, f"expected a list ({typ}), got {type(value).__name__}")
            return
        allowed = ENUM_LISTS.get((owner, attr), False)
        for i, item in enumerate(value):
            if allowed and item not in allowed:
                P.add(f"{where}[{i}]", f"{item!r} is not one of {sorted(allowed)}")
            check_type(f"{where}[{i}]", m.group(1), item)
        return
    m = re.fullmatch(r"dict\(str, (.+)\)", typ)
    if m:
        if not isinstance(value, dict):
            P.add(where, f"expected a map ({typ}), got {type(value).__name__}")
            return
        for k, v in value.items():
            if (owner, attr) in QUANTITY_MAPS:
                check_quantity(f"{where}.{k}", v)
            else:
                check_type(f"{where}.{k}", m.group(1), v)
        return
    if typ == "str":
        if (owner, attr) in QUANTITY_FIELDS:
            check_quantity(where, value)
        elif not isinstance(value, str):
            P.add(where, f"expected a string, got {type(value).__name__} {value!r}")
        elif (owner, attr) in ENUMS and value not in ENUMS[(owner, attr)]:
            P.add(where, f"{value!r} is not one of {sorted(ENUMS[(owner, attr)])}")
        return
    if typ == "int":
        if not is_int(value):
            P.add(where, f"expected an integer, got {type(value).__name__} {value!r}")
        return
    if typ == "float":
        if not (is_int(value) or isinstance(value, float)):
            P.add(where, f"expected a number, got {type(value).__name__} {value!r}")
        return
    if typ == "bool":
        if not isinstance(value, bool):
            P.add(where, f"expected a boolean, got {type(value).__name__} {value!r}")
        return
    if typ == "object":  # IntOrString in the core models
        if not (is_int(value) or isinstance(value, str)):
            P.add(where, f"expected an integer or a string, got {type(value).__name__}")
        return
    if typ in ("datetime", "date"):
        if not isinstance(value, str):
            P.add(where, "expected a timestamp string")
        return
    cls = getattr(k8s, typ, None)
    if cls is None:
        P.add(where, f"no model {typ} in the kubernetes client")
        return
    check_model(where, cls, value)


def check_model(where, cls, value):
    if not isinstance(value, dict):
        P.add(where, f"expected an object ({cls.__name__}), got {type(value).__name__}")
        return
    by_json = {j: py for py, j in cls.attribute_map.items()}
    for key, v in value.items():
        if key not in by_json:
            P.add(f"{where}.{key}", f"unknown field (not in {cls.__name__})")
            continue
        py = by_json[key]
        check_type(f"{where}.{key}", cls.openapi_types[py], v, cls.__name__, py)
    for py in required_fields(cls):
        j = cls.attribute_map[py]
        if value.get(j) is None:
            P.add(where, f"missing required field {j} ({cls.__name__})")


# ------------------------------------------------------------- quantities

_SUFFIX = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60,
           "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"), "": 1,
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18}


def parse_quantity(q):
    if is_int(q) or isinstance(q, float):
        return Decimal(str(q))
    m = re.fullmatch(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|[eE][+-]?[0-9]+)?", q)
    if not m:
        raise ValueError(f"not a Kubernetes quantity: {q!r}")
    number, suffix = Decimal(m.group(1)), m.group(2) or ""
    if suffix[:1] in ("e", "E"):
        return number * (Decimal(10) ** int(suffix[1:]))
    return number * Decimal(_SUFFIX[suffix])


# ----------------------------------------------------------- helpers

def meta(obj):
    return obj.get("metadata") or {}


def name_of(obj):
    return meta(obj).get("name", "")


def ident(m):
    o = m["object"]
    return f"{o.get('kind')}/{name_of(o)}"


def labels_match(selector, labels):
    """matchLabels/matchExpressions (or a Service's plain map) against labels."""
    if selector is None:
        return False
    if "matchLabels" in selector or "matchExpressions" in selector:
        ml = selector.get("matchLabels") or {}
        exprs = selector.get("matchExpressions") or []
    else:
        ml, exprs = selector, []
    if not ml and not exprs:
        return True
    if any(labels.get(k) != v for k, v in ml.items()):
        return False
    for e in exprs:
        has, val = e["key"] in labels, labels.get(e["key"])
        op, vals = e["operator"], e.get("values") or []
        if (op == "In" and val not in vals) or (op == "NotIn" and has and val in vals) \
                or (op == "Exists" and not has) or (op == "DoesNotExist" and has):
            return False
    return True


def values_at(values, path):
    """Values at a dotted path; "[*]" iterates a list."""
    cur = [values]
    for part in re.findall(r"[^.\[\]]+|\[\*\]", path):
        nxt = []
        for c in cur:
            if part == "[*]":
                nxt.extend(c if isinstance(c, list) else [])
            elif isinstance(c, dict) and part in c:
                nxt.append(c[part])
        cur = nxt
    return [v for v in cur if isinstance(v, str) and v]


class Workload:
    """A pod template (Deployment, StatefulSet) or a Pod, with where it came from."""

    def __init__(self, m, pod_meta, pod_spec, replicas):
        self.m, self.obj = m, m["object"]
        self.labels = (pod_meta or {}).get("labels") or {}
        self.spec = pod_spec or {}
        self.replicas = replicas

    def containers(self, init=True):
        out = list(self.spec.get("containers") or [])
        if init:
            out += self.spec.get("initContainers") or []
        return out

    def port_names(self):
        return {p.get("name") for c in self.containers(False) for p in c.get("ports") or [] if p.get("name")}

    def port_numbers(self):
        return {p.get("containerPort") for c in self.containers(False) for p in c.get("ports") or []}


def workloads(manifests):
    out = []
    for m in manifests:
        o = m["object"]
        kind, spec = o.get("kind"), o.get("spec") or {}
        if kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet", "Job"):
            t = spec.get("template") or {}
            out.append(Workload(m, t.get("metadata"), t.get("spec"), spec.get("replicas", 1)))
        elif kind == "Pod":
            out.append(Workload(m, meta(o), spec, 1))
    return out


# ------------------------------------------------------- semantic checks

def check_names_and_labels(m):
    o, where = m["object"], ident(m)
    md = meta(o)
    name = md.get("name")
    if not name:
        P.add(where, "metadata.name is missing")
        return
    if o.get("kind") == "Service":
        if len(name) > 63 or not DNS1035_LABEL.match(name):
            P.add(where, "a Service name must be a DNS-1035 label (lowercase, starts with a letter, ≤ 63)")
    elif len(name) > 253 or not DNS1123_SUBDOMAIN.match(name):
        P.add(where, "name must be a DNS-1123 subdomain")
    if o.get("kind") == "StatefulSet" and len(name) > 52:
        P.add(where, "StatefulSet name longer than 52: its pods' controller-revision-hash label would exceed 63")
    if o.get("kind") in ("Deployment", "Pod") and len(name) > 63:
        P.add(where, "name longer than 63: pod host names would be truncated")
    check_labels(f"{where}.metadata.labels", md.get("labels"))
    ann = md.get("annotations") or {}
    if sum(len(k) + len(str(v)) for k, v in ann.items()) > 256 * 1024:
        P.add(where, "annotations exceed 256 KiB")


def check_label_key(where, key):
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not DNS1123_SUBDOMAIN.match(prefix)):
        P.add(where, f"label key prefix {prefix!r} is not a DNS subdomain")
    if len(name) > 63 or not LABEL_NAME.match(name):
        P.add(where, f"label key {key!r} is invalid")


def check_labels(where, labels):
    for k, v in (labels or {}).items():
        check_label_key(where, k)
        if not isinstance(v, str) or len(v) > 63 or not LABEL_VALUE.match(v):
            P.add(f"{where}.{k}", f"label value {v!r} is invalid (≤ 63, alphanumerics, '-', '_', '.')")


def check_selector_labels(where, sel):
    if sel:
        check_labels(where, sel.get("matchLabels") if "matchLabels" in sel or "matchExpressions" in sel else sel)


def iana_port_name(n):
    return (isinstance(n, str) and 1 <= len(n) <= 15 and re.fullmatch(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?", n)
            and "--" not in n and re.search(r"[a-z]", n))


def exists(kind, name, index, external):
    return (kind, name) in index or (kind, name) in external


def check_workload(w, index, external):
    where = ident(w.m)
    spec = w.spec
    kind = w.obj.get("kind")
    check_labels(f"{where}.template.labels", w.labels)
    if kind in ("Deployment", "StatefulSet", "ReplicaSet", "DaemonSet"):
        sel = (w.obj.get("spec") or {}).get("selector")
        if not sel:
            P.add(where, "spec.selector is required")
        elif not labels_match(sel, w.labels):
            P.add(where, "spec.selector does not match the pod template's labels")
        check_selector_labels(f"{where}.spec.selector", sel)
        if spec.get("restartPolicy", "Always") != "Always":
            P.add(where, "a workload's pods must have restartPolicy Always")
        strat = (w.obj.get("spec") or {}).get("strategy") or {}
        if strat.get("type") == "Recreate" and strat.get("rollingUpdate"):
            P.add(where, "strategy.rollingUpdate may not be set with type Recreate")
    check_labels(f"{where}.nodeSelector", spec.get("nodeSelector"))

    # volumes
    volumes = {}
    for v in spec.get("volumes") or []:
        n = v.get("name")
        if n in volumes:
            P.add(where, f"volume {n!r} declared twice")
        if not n or len(n) > 63 or not DNS1123_LABEL.match(n):
            P.add(where, f"volume name {n!r} is not a DNS label")
        volumes[n] = v
        sources = [k for k in v if k != "name"]
        if len(sources) != 1:
            P.add(where, f"volume {n!r} must have exactly one source, has {sources}")
        if "configMap" in v and not v["configMap"].get("optional") and not exists("ConfigMap", v["configMap"].get("name"), index, external):
            P.add(where, f"volume {n!r}: ConfigMap {v['configMap'].get('name')!r} is neither rendered nor declared external")
        if "secret" in v and not v["secret"].get("optional") and not exists("Secret", v["secret"].get("secretName"), index, external):
            P.add(where, f"volume {n!r}: Secret {v['secret'].get('secretName')!r} is neither rendered nor declared external")
        if "persistentVolumeClaim" in v and not exists("PersistentVolumeClaim", v["persistentVolumeClaim"].get("claimName"), index, external):
            P.add(where, f"volume {n!r}: PVC {v['persistentVolumeClaim'].get('claimName')!r} is neither rendered nor declared external")
    claim_templates = set()
    if kind == "StatefulSet":
        for t in (w.obj.get("spec") or {}).get("volumeClaimTemplates") or []:
            n = meta(t).get("name")
            if n in claim_templates or n in volumes:
                P.add(where, f"volumeClaimTemplate {n!r} clashes with another volume")
            claim_templates.add(n)
            requests = ((t.get("spec") or {}).get("resources") or {}).get("requests") or {}
            if "storage" not in requests:
                P.add(where, f"volumeClaimTemplate {n!r} requests no storage")

    sa = spec.get("serviceAccountName")
    if sa and sa != "default" and not exists("ServiceAccount", sa, index, external):
        P.add(where, f"ServiceAccount {sa!r} is neither rendered nor declared external")
    for s in spec.get("imagePullSecrets") or []:
        if not exists("Secret", s.get("name"), index, external):
            P.add(where, f"imagePullSecret {s.get('name')!r} is neither rendered nor declared external")

    # security policy
    psc = spec.get("securityContext") or {}

    names = set()
    drain_ms = 0
    pre_stop_s = 0
    for c in w.containers():
        cw = f"{where}/{c.get('name')}"
        n = c.get("name")
        if n in names:
            P.add(cw, "container name used twice in the pod")
        names.add(n)
        if not n or len(n) > 63 or not DNS1123_LABEL.match(n):
            P.add(cw, "container name is not a DNS label")
        image = c.get("image") or ""
        last = image.rsplit("/", 1)[-1]
        if "@" not in image and (":" not in last or last.endswith(":latest")):
            P.add(cw, f"image {image!r} has no tag or uses :latest")
        csc = c.get("securityContext") or {}
        if not (csc.get("runAsNonRoot", psc.get("runAsNonRoot")) is True):
            P.add(cw, "runAsNonRoot is not true (pod or container securityContext)")
        uid = csc.get("runAsUser", psc.get("runAsUser"))
        if uid == 0:
            P.add(cw, "runs as uid 0")

        # ports
        pnames, pnums = set(), set()
        for p in c.get("ports") or []:
            pn = p.get("name")
            if pn is not None:
                if not iana_port_name(pn):
                    P.add(cw, f"port name {pn!r} is not an IANA service name (≤ 15, a-z0-9 and '-', a letter)")
                if pn in pnames:
                    P.add(cw, f"port name {pn!r} used twice")
                pnames.add(pn)
            key = (p.get("containerPort"), p.get("protocol", "TCP"))
            if key in pnums:
                P.add(cw, f"containerPort {key} declared twice")
            pnums.add(key)
            if not (is_int(p.get("containerPort")) and 1 <= p["containerPort"] <= 65535):
                P.add(cw, f"containerPort {p.get('containerPort')!r} out of range")

        # probes
        for probe_name in ("livenessProbe", "readinessProbe", "startupProbe"):
            probe = c.get(probe_name)
            if not probe:
                continue
            handlers = [k for k in ("httpGet", "tcpSocket", "exec", "grpc") if k in probe]
            if len(handlers) != 1:
                P.add(cw, f"{probe_name} must have exactly one handler, has {handlers}")
            for h in ("httpGet", "tcpSocket"):
                if h in probe:
                    port = probe[h].get("port")
                    if isinstance(port, str) and port not in pnames:
                        P.add(cw, f"{probe_name}.{h}.port {port!r} is not a named port of the container")
                    if is_int(port) and port not in {x[0] for x in pnums}:
                        P.add(cw, f"{probe_name}.{h}.port {port} is not a containerPort of the container")
            if "httpGet" in probe and not str(probe["httpGet"].get("path", "/")).startswith("/"):
                P.add(cw, f"{probe_name}.httpGet.path must start with /")
            if probe_name in ("livenessProbe", "startupProbe") and probe.get("successThreshold", 1) != 1:
                P.add(cw, f"{probe_name}.successThreshold must be 1")
        if c in (spec.get("initContainers") or []):
            for probe_name in ("livenessProbe", "readinessProbe", "startupProbe", "lifecycle"):
                if probe_name in c:
                    P.add(cw, f"an init container may not have {probe_name}")

        # env
        defined = []
        for e in c.get("env") or []:
            en = e.get("name", "")
            if not ENV_NAME.match(en):
                P.add(cw, f"env name {en!r} is invalid")
            if en in defined:
                P.add(cw, f"env {en!r} set twice")
            if ("value" in e) == ("valueFrom" in e) and not ("value" not in e and "valueFrom" not in e):
                P.add(cw, f"env {en!r} has both value and valueFrom")
            if "value" in e:
                for ref in VAR_REF.findall(str(e["value"])):
                    if ref not in defined:
                        P.add(cw, f"env {en!r} refers to $({ref}), which is not an earlier env entry (it would stay literal)")
            vf = e.get("valueFrom") or {}
            if len(vf) > 1:
                P.add(cw, f"env {en!r}: valueFrom must have one source")
            if "secretKeyRef" in vf and not vf["secretKeyRef"].get("optional") and not exists("Secret", vf["secretKeyRef"].get("name"), index, external):
                P.add(cw, f"env {en!r}: Secret {vf['secretKeyRef'].get('name')!r} is neither rendered nor declared external")
            if "configMapKeyRef" in vf and not vf["configMapKeyRef"].get("optional") and not exists("ConfigMap", vf["configMapKeyRef"].get("name"), index, external):
                P.add(cw, f"env {en!r}: ConfigMap {vf['configMapKeyRef'].get('name')!r} is neither rendered nor declared external")
            defined.append(en)
            if en == "SMOLLM_DRAIN_TIMEOUT_MS" and "value" in e:
                drain_ms = max(drain_ms, int(e["value"]))
        for ef in c.get("envFrom") or []:
            if "secretRef" in ef and not exists("Secret", ef["secretRef"].get("name"), index, external):
                P.add(cw, f"envFrom Secret {ef['secretRef'].get('name')!r} is neither rendered nor declared external")
            if "configMapRef" in ef and not exists("ConfigMap", ef["configMapRef"].get("name"), index, external):
                P.add(cw, f"envFrom ConfigMap {ef['configMapRef'].get('name')!r} is neither rendered nor declared external")
        cmd = (((c.get("lifecycle") or {}).get("preStop") or {}).get("exec") or {}).get("command") or []
        if len(cmd) == 2 and cmd[0] == "sleep" and str(cmd[1]).isdigit():
            pre_stop_s = max(pre_stop_s, int(cmd[1]))

        # volume mounts
        paths = set()
        for vm in c.get("volumeMounts") or []:
            if vm.get("name") not in volumes and vm.get("name") not in claim_templates:
                P.add(cw, f"volumeMount {vm.get('name')!r} refers to no volume of the pod")
            if vm.get("mountPath") in paths:
                P.add(cw, f"mountPath {vm.get('mountPath')!r} used twice")
            paths.add(vm.get("mountPath"))
            if not str(vm.get("mountPath", "")).startswith("/"):
                P.add(cw, "mountPath must be absolute")

        # resources
        res = c.get("resources") or {}
        req, lim = res.get("requests") or {}, res.get("limits") or {}
        if "memory" not in lim:
            P.add(cw, "no memory limit")
        if "memory" not in req or "cpu" not in req:
            P.add(cw, "no cpu and memory requests")
        for r, q in req.items():
            if r in lim:
                try:
                    if parse_quantity(q) > parse_quantity(lim[r]):
                        P.add(cw, f"requests.{r} ({q}) exceeds limits.{r} ({lim[r]})")
                except ValueError:
                    pass
        for r in set(req) | set(lim):
            if "/" in r and not r.split("/")[0].endswith("kubernetes.io"):
                if r not in lim:
                    P.add(cw, f"extended resource {r} must be set in limits")
                elif r in req and parse_quantity(req[r]) != parse_quantity(lim[r]):
                    P.add(cw, f"extended resource {r}: requests must equal limits")
                for q in (req.get(r), lim.get(r)):
                    if q is not None and parse_quantity(q) != int(parse_quantity(q)):
                        P.add(cw, f"extended resource {r} must be a whole number, got {q}")

    grace = spec.get("terminationGracePeriodSeconds", 30)
    if drain_ms and grace * 1000 < drain_ms + pre_stop_s * 1000:
        P.add(where, f"terminationGracePeriodSeconds {grace} < drain timeout {drain_ms} ms + preStop {pre_stop_s} s")


def check_services(manifests, wls, index):
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "Service":
            continue
        where, spec = ident(m), o.get("spec") or {}
        sel = spec.get("selector")
        ports = spec.get("ports") or []
        names = [p.get("name") for p in ports]
        if len(ports) > 1 and (None in names or len(set(names)) != len(names)):
            P.add(where, "with several ports every port needs a unique name")
        for p in ports:
            if p.get("name") and not iana_port_name(p["name"]) and not DNS1123_LABEL.match(p["name"]):
                P.add(where, f"port name {p['name']!r} is invalid")
        check_labels(f"{where}.spec.selector", sel)
        if not sel:
            continue
        targets = [w for w in wls if labels_match(sel, w.labels) and not w.m.get("hook")]
        if not targets:
            P.add(where, f"selector {sel} matches no rendered pod template")
        for w in targets:
            for p in ports:
                tp = p.get("targetPort", p.get("port"))
                if isinstance(tp, str) and tp not in w.port_names():
                    P.add(where, f"targetPort {tp!r} is not a named port of {ident(w.m)}")
                if is_int(tp) and tp not in w.port_numbers():
                    P.add(where, f"targetPort {tp} is not a containerPort of {ident(w.m)}")
        kinds = {w.obj.get("kind") for w in targets}
        if len({ident(w.m) for w in targets}) > 1 and "StatefulSet" in kinds:
            P.add(where, "selects pods of several workloads including a StatefulSet")


def check_statefulsets(manifests, wls, index):
    for w in wls:
        if w.obj.get("kind") != "StatefulSet":
            continue
        where = ident(w.m)
        svc_name = (w.obj.get("spec") or {}).get("serviceName")
        svc = index.get(("Service", svc_name))
        if svc is None:
            P.add(where, f"serviceName {svc_name!r} is not a rendered Service")
            continue
        sspec = svc.get("spec") or {}
        if sspec.get("clusterIP") != "None":
            P.add(where, f"serviceName {svc_name!r} is not headless (clusterIP: None)")
        if not labels_match(sspec.get("selector") or {"__none__": "x"}, w.labels):
            P.add(where, f"Service {svc_name!r} does not select this StatefulSet's pods")


def check_hpas(manifests, wls, index):
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "HorizontalPodAutoscaler":
            continue
        where, spec = ident(m), o.get("spec") or {}
        ref = spec.get("scaleTargetRef") or {}
        target = index.get((ref.get("kind"), ref.get("name")))
        if target is None:
            P.add(where, f"scaleTargetRef {ref.get('kind')}/{ref.get('name')} is not rendered")
            continue
        if (target.get("apiVersion") != ref.get("apiVersion")):
            P.add(where, f"scaleTargetRef apiVersion {ref.get('apiVersion')} != target's {target.get('apiVersion')}")
        if "replicas" in (target.get("spec") or {}):
            P.add(where, f"target {ref.get('name')} sets spec.replicas: every helm upgrade would fight the HPA")
        if spec.get("minReplicas", 1) > spec.get("maxReplicas", 0):
            P.add(where, "minReplicas > maxReplicas")
        tw = [w for w in wls if w.obj is target]
        for metric in spec.get("metrics") or []:
            r = metric.get("resource") or {}
            if metric.get("type") == "Resource" and (r.get("target") or {}).get("type") == "Utilization":
                for w in tw:
                    for c in w.containers(False):
                        if r.get("name") not in ((c.get("resources") or {}).get("requests") or {}):
                            P.add(where, f"{r.get('name')} utilization needs {r.get('name')} requests on container {c.get('name')}")


def replica_floor(w, manifests):
    for m in manifests:
        o = m["object"]
        if o.get("kind") == "HorizontalPodAutoscaler":
            ref = (o.get("spec") or {}).get("scaleTargetRef") or {}
            if ref.get("kind") == w.obj.get("kind") and ref.get("name") == name_of(w.obj):
                return (o.get("spec") or {}).get("minReplicas", 1)
    return w.replicas


def check_pdbs(manifests, wls):
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "PodDisruptionBudget":
            continue
        where, spec = ident(m), o.get("spec") or {}
        if ("minAvailable" in spec) == ("maxUnavailable" in spec):
            P.add(where, "set exactly one of minAvailable and maxUnavailable")
        check_selector_labels(f"{where}.spec.selector", spec.get("selector"))
        targets = [w for w in wls if labels_match(spec.get("selector"), w.labels) and not w.m.get("hook")]
        if not targets:
            P.add(where, "selector matches no rendered pod template")
        ma = spec.get("minAvailable")
        if is_int(ma):
            floor = sum(replica_floor(w, manifests) for w in targets)
            if ma >= floor:
                P.add(where, f"minAvailable {ma} ≥ the {floor} pods it covers: no pod could ever be evicted (node drains block)")


def check_network_policies(manifests, wls):
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "NetworkPolicy":
            continue
        where, spec = ident(m), o.get("spec") or {}
        check_selector_labels(f"{where}.spec.podSelector", spec.get("podSelector"))
        selected = [w for w in wls if labels_match(spec.get("podSelector"), w.labels)]
        if not selected:
            P.add(where, "podSelector matches no rendered pod template")
        for i, rule in enumerate(spec.get("ingress") or []):
            for p in rule.get("ports") or []:
                port = p.get("port")
                for w in selected:
                    if isinstance(port, str) and port not in w.port_names():
                        P.add(where, f"ingress[{i}] port {port!r} is not a named port of {ident(w.m)}")
            for peer in rule.get("from") or []:
                if "podSelector" in peer and "namespaceSelector" not in peer:
                    if not any(labels_match(peer["podSelector"], w.labels) for w in wls):
                        P.add(where, f"ingress[{i}] podSelector {peer['podSelector']} matches no rendered pod")


def check_service_monitors(manifests, namespace):
    services = [m["object"] for m in manifests if m["object"].get("kind") == "Service"]
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "ServiceMonitor":
            continue
        where, spec = ident(m), o.get("spec") or {}
        targets = [s for s in services if labels_match(spec.get("selector"), meta(s).get("labels") or {})]
        if not targets:
            P.add(where, "selector matches no rendered Service (by the Services' own labels)")
        ns = spec.get("namespaceSelector") or {}
        if not ns.get("any") and ns.get("matchNames") and namespace not in ns["matchNames"]:
            P.add(where, f"namespaceSelector does not include the release namespace {namespace}")
        for e in spec.get("endpoints") or []:
            for s in targets:
                if e.get("port") and e["port"] not in {p.get("name") for p in (s.get("spec") or {}).get("ports") or []}:
                    P.add(where, f"endpoint port {e['port']!r} is not a port name of Service {name_of(s)}")
        for e in spec.get("endpoints") or []:
            if e.get("scheme", "http") not in ("http", "https"):
                P.add(where, f"endpoint scheme {e.get('scheme')!r} is neither http nor https")
            if e.get("tlsConfig") and e.get("scheme") != "https":
                P.add(where, "endpoint tlsConfig without scheme https")
        for tl in spec.get("targetLabels") or []:
            for s in targets:
                if tl not in (meta(s).get("labels") or {}):
                    P.add(where, f"targetLabel {tl!r} is not a label of Service {name_of(s)}")


def check_ingresses(manifests, index):
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "Ingress":
            continue
        where = ident(m)
        for rule in (o.get("spec") or {}).get("rules") or []:
            for p in ((rule.get("http") or {}).get("paths")) or []:
                svc = ((p.get("backend") or {}).get("service")) or {}
                s = index.get(("Service", svc.get("name")))
                if s is None:
                    P.add(where, f"backend Service {svc.get('name')!r} is not rendered")
                    continue
                port = svc.get("port") or {}
                ports = (s.get("spec") or {}).get("ports") or []
                if "name" in port and port["name"] not in {x.get("name") for x in ports}:
                    P.add(where, f"backend port {port['name']!r} is not a port of Service {svc.get('name')}")
                if "number" in port and port["number"] not in {x.get("port") for x in ports}:
                    P.add(where, f"backend port {port['number']} is not a port of Service {svc.get('name')}")


def check_configmaps(manifests):
    for m in manifests:
        o = m["object"]
        if o.get("kind") not in ("ConfigMap", "Secret"):
            continue
        size = 0
        for section in ("data", "binaryData", "stringData"):
            for k, v in (o.get(section) or {}).items():
                if not CONFIG_KEY.match(k):
                    P.add(ident(m), f"{section} key {k!r} is invalid")
                size += len(k) + len(str(v).encode())
        if size > 1024 * 1024:
            P.add(ident(m), f"data is {size} bytes, over the 1 MiB object limit")


def check_hooks(manifests):
    known = {"pre-install", "post-install", "pre-delete", "post-delete", "pre-upgrade", "post-upgrade",
             "pre-rollback", "post-rollback", "test", "test-success"}
    for m in manifests:
        for h in m.get("hook") or []:
            if h not in known:
                P.add(ident(m), f"unknown helm hook {h!r}")


def check_dashboards(manifests, use_promtool):
    exprs = []
    for m in manifests:
        o = m["object"]
        if o.get("kind") != "ConfigMap" or "grafana_dashboard" not in (meta(o).get("labels") or {}):
            continue
        for key, text in (o.get("data") or {}).items():
            try:
                dash = json.loads(text)
            except json.JSONDecodeError as e:
                P.add(ident(m), f"{key} is not JSON: {e}")
                continue
            stack = list(dash.get("panels") or [])
            while stack:
                p = stack.pop()
                stack.extend(p.get("panels") or [])
                for t in p.get("targets") or []:
                    if t.get("expr"):
                        exprs.append((f"{ident(m)} {key} panel {p.get('title')!r}", t["expr"]))
    if not use_promtool or not exprs:
        return len(exprs)
    promtool = shutil.which("promtool")
    if promtool is None:
        sys.stderr.write("validate.py: --promtool needs promtool: apt-get install -y --no-install-recommends prometheus\n")
        sys.exit(3)
    rules = []
    for i, (_, e) in enumerate(exprs):
        e = re.sub(r"\$__(rate_interval|interval|range)", "5m", e)
        e = re.sub(r"\$\{?\w+\}?", ".*", e)
        rules.append({"record": f"dashboard:expr_{i}", "expr": e})
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
        path = f.name
    try:
        r = subprocess.run([promtool, "check", "rules", path], capture_output=True, text=True)
        if r.returncode != 0:
            P.add("dashboards", f"promtool check rules failed:\n{r.stdout}{r.stderr}")
    finally:
        os.unlink(path)
    return len(exprs)


# ------------------------------------------------------------------ main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("rendered", help="output of render.sh -output json ('-' = stdin)")
    ap.add_argument("--chart", required=True, help="chart directory (for values.schema.json)")
    ap.add_argument("--external", action="append", default=[], metavar="Kind/name",
                    help="an object created outside the chart (in addition to EXTERNAL_REFS)")
    ap.add_argument("--promtool", action="store_true", help="check the dashboards' PromQL with promtool")
    args = ap.parse_args()
    data = json.load(sys.stdin if args.rendered == "-" else open(args.rendered))
    manifests, values = data["manifests"], data["values"]
    namespace = data["release"]["Namespace"]

    # 1. values.schema.json
    schema_path = os.path.join(args.chart, "values.schema.json")
    if os.path.exists(schema_path):
        schema = json.load(open(schema_path))
        jsonschema.Draft7Validator.check_schema(schema)
        for e in sorted(jsonschema.Draft7Validator(schema).iter_errors(values), key=lambda e: list(e.path)):
            P.add("values " + "/".join(str(x) for x in e.path), e.message)

    # 2. structure against the models / CRD schemas
    index = {}
    for m in manifests:
        o = m["object"]
        key = (o.get("kind"), name_of(o))
        if key in index:
            P.add(ident(m), "rendered twice (same kind and name)")
        index[key] = o
        api = (o.get("apiVersion"), o.get("kind"))
        if api in MODELS:
            check_model(ident(m), getattr(k8s, MODELS[api]), o)
        elif api in CRD_SCHEMAS:
            for e in jsonschema.Draft7Validator(CRD_SCHEMAS[api]).iter_errors(o):
                P.add(ident(m) + " " + "/".join(str(x) for x in e.path), e.message)
            check_model(ident(m) + ".metadata", k8s.V1ObjectMeta, o.get("metadata"))
        else:
            P.add(ident(m), f"no model or schema for {api[0]} {api[1]}: cannot be validated")
        if meta(o).get("namespace") not in (None, namespace):
            P.add(ident(m), "sets a namespace other than the release's")
        check_names_and_labels(m)

    # 3-5. semantics and consistency
    external = set()
    for kind, path in EXTERNAL_REFS:
        if path == "serviceAccount.name" and (values.get("serviceAccount") or {}).get("create", True):
            continue
        external.update((kind, v) for v in values_at(values, path))
    for x in args.external:
        kind, _, name = x.partition("/")
        external.add((kind, name))
    wls = workloads(manifests)
    for w in wls:
        check_workload(w, index, external)
    check_services(manifests, wls, index)
    check_statefulsets(manifests, wls, index)
    check_hpas(manifests, wls, index)
    check_pdbs(manifests, wls)
    check_network_policies(manifests, wls)
    check_service_monitors(manifests, namespace)
    check_ingresses(manifests, index)
    check_configmaps(manifests)
    check_hooks(manifests)
    n_exprs = check_dashboards(manifests, args.promtool)

    kinds = sorted({f"{m['object'].get('kind')}" for m in manifests})
    summary = {
        "objects": len(manifests), "kinds": kinds, "problems": P.items,
        "kubernetes_client": kubernetes.__version__, "jsonschema": getattr(jsonschema, "__version__", "?"),
        "externals": sorted(f"{k}/{n}" for k, n in external), "dashboard_exprs": n_exprs,
        "promtool": bool(args.promtool),
    }
    print(json.dumps(summary, indent=1))
    if P.items:
        sys.stderr.write(f"validate.py: {len(P.items)} problem(s):\n  " + "\n  ".join(P.items) + "\n")
        sys.exit(1)


if __name__ == "__main__":
    import warnings
    warnings.simplefilter("ignore", DeprecationWarning)
    main()
