/**
 * The Helm chart (deploy/helm/smollm-cluster) and the Dockerfiles
 * (deploy/docker), checked as honestly as this machine allows: no helm binary,
 * no cluster, no Docker engine. What that means exactly is written in
 * deploy/helm/README.md ("What is verified here and what is not").
 *
 * - Every values file (values.yaml and ci/*.yaml) is rendered by
 *   deploy/helm/tools/render.sh (helm's template engine re-implemented on Go's
 *   text/template + sprig) and validated by deploy/helm/tools/validate.py
 *   (values.schema.json; the Kubernetes Python client's OpenAPI models; API
 *   server rules; chart-level consistency; the dashboard's PromQL via promtool).
 * - The validator is shown to catch broken objects (it is not vacuous).
 * - The rendered SMOLLM_* environment of every container is parsed by the
 *   services' own config loaders, and the parsed ports, addresses and prefixes
 *   are compared with the rendered Services, probes and headless DNS names.
 * - The CPU-trial rendering runs for real: its gateway, scheduler and worker
 *   containers' environments start the services as local processes, and the
 *   `helm test` hook's script passes against them.
 * - The Dockerfiles are checked statically against the repository.
 *
 * Needs Debian packages (CI installs them): golang-go
 * golang-github-masterminds-sprig-dev golang-k8s-sigs-yaml-dev
 * python3-kubernetes python3-jsonschema python3-yaml prometheus. Without them
 * every test here fails with a message naming what is missing.
 */
import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { SERVICE_ENTRY, startService, startTestRedis, type ServiceProcess, type TestRedis } from "@smollm/testkit";
import { makePki, type Pki } from "./pki.ts";

const ROOT = fileURLToPath(new URL("../..", import.meta.url));
const CHART = join(ROOT, "deploy/helm/smollm-cluster");
const TOOLS = join(ROOT, "deploy/helm/tools");
const DOCKER = join(ROOT, "deploy/docker");
const NAMESPACE = "llm";
const RELEASE = "smollm";
const CLUSTER_DOMAIN = "cluster.local";
const APT_PACKAGES = [
  "golang-go",
  "golang-github-masterminds-sprig-dev",
  "golang-k8s-sigs-yaml-dev",
  "python3-kubernetes",
  "python3-jsonschema",
  "python3-yaml",
  "prometheus",
] as const;

// ------------------------------------------------------------ k8s shapes

interface EnvVar {
  name: string;
  value?: string;
  valueFrom?: { secretKeyRef?: { name: string; key: string }; fieldRef?: { fieldPath: string } };
}
interface Port {
  name?: string;
  containerPort: number;
}
interface Probe {
  httpGet?: { path: string; port: string | number; scheme?: string };
  periodSeconds?: number;
  failureThreshold?: number;
}
interface Container {
  name: string;
  image: string;
  command?: string[];
  workingDir?: string;
  env?: EnvVar[];
  ports?: Port[];
  livenessProbe?: Probe;
  readinessProbe?: Probe;
  startupProbe?: Probe;
  resources?: { requests?: Record<string, string | number>; limits?: Record<string, string | number> };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean }[];
}
interface PodSpec {
  containers: Container[];
  initContainers?: Container[];
  terminationGracePeriodSeconds?: number;
  securityContext?: { runAsUser?: number; runAsNonRoot?: boolean };
  tolerations?: { key?: string }[];
  volumes?: { name: string; persistentVolumeClaim?: { claimName: string; readOnly?: boolean }; secret?: { secretName: string } }[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  spec?: Record<string, unknown>;
  data?: Record<string, string>;
}
interface Manifest {
  source: string;
  hook?: string[];
  object: K8sObject;
}
interface Rendering {
  values: Record<string, unknown>;
  manifests: Manifest[];
  notes: string;
  json: string;
}

// ------------------------------------------------------------ prerequisites

let missingCache: string[] | undefined;
function missingPackages(): string[] {
  if (missingCache) return missingCache;
  const missing: string[] = [];
  if (spawnSync("go", ["version"]).status !== 0) missing.push("golang-go");
  if (!existsSync("/usr/share/gocode/src/github.com/Masterminds/sprig")) missing.push("golang-github-masterminds-sprig-dev");
  if (!existsSync("/usr/share/gocode/src/sigs.k8s.io/yaml")) missing.push("golang-k8s-sigs-yaml-dev");
  const python = [["kubernetes", "python3-kubernetes"], ["jsonschema", "python3-jsonschema"], ["yaml", "python3-yaml"]] as const;
  for (const [module, pkg] of python) {
    // validate.py runs under Debian's interpreter (its shebang), where these packages install.
    if (spawnSync("/usr/bin/python3", ["-c", `import ${module}`]).status !== 0) missing.push(pkg);
  }
  if (spawnSync("promtool", ["--version"]).status !== 0) missing.push("prometheus");
  missingCache = missing;
  return missing;
}

/** Throws, naming the Debian packages to install, when a tool is missing. */
function requireTools(): void {
  const missing = missingPackages();
  if (missing.length > 0) {
    throw new Error(
      `the Helm chart checks need Debian packages that are not installed: ${missing.join(" ")}\n` +
        `  apt-get install -y --no-install-recommends ${APT_PACKAGES.join(" ")}`,
    );
  }
}

// ------------------------------------------------------------ render + validate

const VALUES_FILES: readonly string[] = [
  "values.yaml",
  ...readdirSync(join(CHART, "ci"))
    .filter((f) => f.endsWith(".yaml"))
    .sort()
    .map((f) => `ci/${f}`),
];

function renderRaw(valuesFiles: readonly string[]): ReturnType<typeof spawnSync> {
  requireTools();
  const args = ["-chart", CHART, "-name", RELEASE, "-namespace", NAMESPACE, "-output", "json"];
  for (const f of valuesFiles) args.push("-f", f);
  return spawnSync(join(TOOLS, "render.sh"), args, { encoding: "utf8", maxBuffer: 64 << 20 });
}

const renderings = new Map<string, Rendering>();
/** Renders the chart with one values file (relative to the chart; values.yaml = defaults only). */
function render(valuesFile: string): Rendering {
  const cached = renderings.get(valuesFile);
  if (cached) return cached;
  const r = renderRaw(valuesFile === "values.yaml" ? [] : [join(CHART, valuesFile)]);
  assert.equal(r.status, 0, `render.sh failed for ${valuesFile}:\n${String(r.stderr)}`);
  const json = String(r.stdout);
  const parsed = JSON.parse(json) as Omit<Rendering, "json">;
  const out = { ...parsed, json };
  renderings.set(valuesFile, out);
  return out;
}

function validate(json: string, extra: readonly string[] = []): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(join(TOOLS, "validate.py"), ["--chart", CHART, "-", ...extra], { input: json, encoding: "utf8" });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function objects(r: Rendering, kind: string): K8sObject[] {
  return r.manifests.filter((m) => m.object.kind === kind && !m.hook).map((m) => m.object);
}
function component(r: Rendering, kind: string, name: string): K8sObject[] {
  return objects(r, kind).filter((o) => o.metadata.labels?.["app.kubernetes.io/component"] === name);
}
function one<T>(items: readonly T[], what: string): T {
  assert.equal(items.length, 1, `expected exactly one ${what}, got ${items.length}`);
  return items[0] as T;
}
function podSpec(o: K8sObject): PodSpec {
  const template = (o.spec?.["template"] ?? {}) as { spec?: PodSpec };
  assert.ok(template.spec, `${o.kind}/${o.metadata.name} has no pod template`);
  return template.spec;
}
function mainContainer(o: K8sObject): Container {
  return podSpec(o).containers[0] as Container;
}
function env(c: Container, name: string): EnvVar | undefined {
  return c.env?.find((e) => e.name === name);
}
function portNumber(c: Container, name: string): number {
  const p = c.ports?.find((x) => x.name === name);
  assert.ok(p, `container ${c.name} has no port named ${name}`);
  return p.containerPort;
}

// ------------------------------------------------------------ the chart renders and validates

describe("helm chart: every values file renders and validates", () => {
  for (const file of VALUES_FILES) {
    test(`${file}: rendered like helm template, valid against values.schema.json, the k8s models and the chart rules`, () => {
      const r = render(file);
      assert.ok(r.manifests.length > 0);
      const v = validate(r.json, ["--promtool"]);
      assert.equal(v.status, 0, `validate.py found problems in ${file}:\n${v.stderr}${v.stdout}`);
      const summary = JSON.parse(v.stdout) as { problems: string[]; promtool: boolean; dashboard_exprs: number };
      assert.deepEqual(summary.problems, []);
      assert.ok(r.notes.includes(`helm test ${RELEASE}`), "NOTES.txt renders and names the test command");
    });
  }
});

describe("helm chart: key facts", () => {
  test("workers: a StatefulSet requesting nvidia.com/gpu, tolerating the GPU taint, with a headless Service", () => {
    const r = render("values.yaml");
    const sts = one(component(r, "StatefulSet", "worker"), "worker StatefulSet");
    const c = mainContainer(sts);
    assert.equal(c.resources?.requests?.["nvidia.com/gpu"], "1");
    assert.equal(c.resources?.limits?.["nvidia.com/gpu"], "1");
    assert.equal(env(c, "SMOLLM_GPU")?.value, "cuda");
    assert.ok(podSpec(sts).tolerations?.some((t) => t.key === "nvidia.com/gpu"));
    const svc = one(objects(r, "Service").filter((s) => s.metadata.name === sts.spec?.["serviceName"]), "headless Service");
    assert.equal(svc.spec?.["clusterIP"], "None");
    assert.equal(svc.spec?.["publishNotReadyAddresses"], true);
    // The model is pulled by node-llama-cpp's CLI into the volume the worker reads.
    const init = one(podSpec(sts).initContainers ?? [], "init container");
    assert.deepEqual(init.command?.slice(0, 6), ["npx", "--no", "node-llama-cpp", "pull", "--dir", "/models"]);
    assert.equal(init.command?.at(-1), env(c, "SMOLLM_MODEL")?.value);
    assert.ok(c.volumeMounts?.some((m) => m.name === "models" && m.mountPath === env(c, "SMOLLM_MODELS_DIR")?.value));
  });

  test("two pools: two StatefulSets with different context sizes, slots and headless Services", () => {
    const r = render("ci/values-two-pools.yaml");
    const pools = component(r, "StatefulSet", "worker");
    assert.equal(pools.length, 2);
    const byPool = new Map(pools.map((s) => [s.metadata.labels?.["smollm.io/pool"], mainContainer(s)]));
    assert.equal(env(byPool.get("long") as Container, "SMOLLM_CONTEXT_SIZE")?.value, "32768");
    assert.equal(env(byPool.get("short") as Container, "SMOLLM_CONTEXT_SIZE")?.value, "4096");
    assert.equal(env(byPool.get("long") as Container, "SMOLLM_SLOTS")?.value, "4");
    assert.equal(env(byPool.get("short") as Container, "SMOLLM_SLOTS")?.value, "16");
    assert.equal(env(byPool.get("short") as Container, "SMOLLM_FLASH_ATTENTION")?.value, "false");
    assert.notEqual(pools[0]?.spec?.["serviceName"], pools[1]?.spec?.["serviceName"]);
    // The long pool keeps its model on a per-pod PVC, the short one in an emptyDir.
    const long = pools.find((s) => s.metadata.labels?.["smollm.io/pool"] === "long");
    assert.ok(Array.isArray(long?.spec?.["volumeClaimTemplates"]));
    assert.equal(component(r, "ServiceMonitor", "worker").length, 1);
  });

  test("gateway: an HPA on its Deployment, a PDB on its pods, HTTP and gRPC on its Service", () => {
    const r = render("values.yaml");
    const gw = one(component(r, "Deployment", "gateway"), "gateway Deployment");
    const hpa = one(component(r, "HorizontalPodAutoscaler", "gateway"), "gateway HPA");
    assert.equal(hpa.apiVersion, "autoscaling/v2");
    assert.deepEqual(hpa.spec?.["scaleTargetRef"], { apiVersion: "apps/v1", kind: "Deployment", name: gw.metadata.name });
    assert.equal(gw.spec?.["replicas"], undefined, "the HPA owns the replica count");
    const pdb = one(component(r, "PodDisruptionBudget", "gateway"), "gateway PDB");
    const selector = (pdb.spec?.["selector"] as { matchLabels: Record<string, string> }).matchLabels;
    const podLabels = ((gw.spec?.["template"] as { metadata: { labels: Record<string, string> } }).metadata.labels);
    for (const [k, v] of Object.entries(selector)) assert.equal(podLabels[k], v);
    // The Service carries the OpenAI HTTP API and the public gRPC API.
    const svc = one(component(r, "Service", "gateway"), "gateway Service");
    assert.deepEqual((svc.spec?.["ports"] as { name: string }[]).map((p) => p.name), ["http", "grpc"]);
  });

  test("every service: liveness on /healthz, readiness on /readyz, on a declared port; workers wait on /readyz at startup", () => {
    for (const file of VALUES_FILES) {
      const r = render(file);
      for (const name of ["gateway", "scheduler", "worker"]) {
        const workloads = [...component(r, "Deployment", name), ...component(r, "StatefulSet", name)];
        assert.ok(workloads.length > 0, `${file}: no ${name}`);
        for (const w of workloads) {
          const c = mainContainer(w);
          assert.equal(c.livenessProbe?.httpGet?.path, "/healthz", `${file} ${name}`);
          assert.equal(c.readinessProbe?.httpGet?.path, "/readyz", `${file} ${name}`);
          const port = name === "gateway" ? "http" : "ops";
          assert.equal(c.livenessProbe?.httpGet?.port, port);
          assert.equal(c.readinessProbe?.httpGet?.port, port);
          if (name === "worker") {
            assert.equal(c.startupProbe?.httpGet?.path, "/readyz");
            assert.ok((c.startupProbe?.periodSeconds ?? 0) * (c.startupProbe?.failureThreshold ?? 0) >= 60);
          }
          const drain = Number(env(c, "SMOLLM_DRAIN_TIMEOUT_MS")?.value);
          assert.ok((podSpec(w).terminationGracePeriodSeconds ?? 30) * 1000 > drain, `${file} ${w.metadata.name}: grace ≤ drain`);
        }
      }
    }
  });

  test("external Redis from an existing Secret, model from an existing claim: nothing pulled, no Redis rendered", () => {
    const r = render("ci/values-external-redis.yaml");
    assert.equal(component(r, "Deployment", "redis").length, 0);
    for (const o of [...component(r, "Deployment", "scheduler"), ...component(r, "StatefulSet", "worker")]) {
      const c = mainContainer(o);
      assert.deepEqual(env(c, "SMOLLM_REDIS_URL")?.valueFrom, { secretKeyRef: { name: "smollm-redis", key: "url" } });
      assert.equal(env(c, "SMOLLM_MODEL")?.value, "/models/SmolLM3-3B-Q4_K_M.gguf");
      assert.equal(podSpec(o).initContainers, undefined);
      const models = podSpec(o).volumes?.find((v) => v.name === "models");
      assert.deepEqual(models?.persistentVolumeClaim, { claimName: "smollm-models", readOnly: true });
    }
    const gw = mainContainer(one(component(r, "Deployment", "gateway"), "gateway"));
    assert.equal(env(gw, "SMOLLM_API_KEYS_FILE")?.value, "/etc/smollm/api-keys/api-keys");
    assert.deepEqual(env(gw, "SMOLLM_REDIS_URL")?.valueFrom, { secretKeyRef: { name: "smollm-redis", key: "url" } });
    assert.match(r.notes, /Authorization: Bearer/);
    assert.match(render("values.yaml").notes, /NOT authenticated/);
  });

  test("the Grafana dashboard queries only metrics the services export, covering the issue's list", () => {
    const r = render("values.yaml");
    const cm = one(objects(r, "ConfigMap").filter((o) => o.metadata.labels?.["grafana_dashboard"] === "1"), "dashboard ConfigMap");
    const dashboard = JSON.parse(Object.values(cm.data ?? {})[0] ?? "{}") as { panels: { targets?: { expr: string }[] }[] };
    const exprs = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    const exported = new Set<string>();
    for (const service of ["gateway", "scheduler", "worker"]) {
      const source = readFileSync(join(ROOT, `services/${service}/src/metrics.ts`), "utf8");
      for (const m of source.matchAll(/name: "(smollm_[a-z_]+)"/g)) exported.add(m[1] ?? "");
    }
    const used = new Set(exprs.flatMap((e) => [...e.matchAll(/\b(smollm_(?:gateway|scheduler|worker)_[a-z_]+)/g)].map((m) => (m[1] ?? "").replace(/_(bucket|sum|count)$/, ""))));
    for (const name of used) assert.ok(exported.has(name), `dashboard queries ${name}, which no services/*/src/metrics.ts exports`);
    for (const needed of [
      "smollm_gateway_time_to_first_token_seconds",
      "smollm_gateway_inter_token_latency_seconds",
      "smollm_gateway_requests_total",
      "smollm_worker_active_slots",
      "smollm_worker_queued_requests",
      "smollm_worker_decode_batch_sequences",
      "smollm_worker_cached_prompt_tokens_total",
      "smollm_scheduler_prefix_hit_tokens_total",
      "smollm_scheduler_routing_decisions_total",
    ]) {
      assert.ok(used.has(needed), `the dashboard has no panel for ${needed}`);
    }
    assert.ok(exprs.some((e) => e.includes("by (outcome)")), "routing decisions by outcome");
  });

  test("template guards: an external Redis without URL and a grace period shorter than the drain are refused", () => {
    const dir = mkdtempSync(join(tmpdir(), "helm-values-"));
    try {
      const noUrl = join(dir, "no-url.yaml");
      writeFileSync(noUrl, "redis:\n  mode: external\n");
      const r1 = renderRaw([noUrl]);
      assert.equal(r1.status, 1);
      assert.match(String(r1.stderr), /redis\.mode=external needs redis\.external\.url or redis\.external\.existingSecret\.name/);
      const short = join(dir, "short-grace.yaml");
      writeFileSync(short, "gateway:\n  terminationGracePeriodSeconds: 10\n");
      const r2 = renderRaw([short]);
      assert.equal(r2.status, 1);
      assert.match(String(r2.stderr), /terminationGracePeriodSeconds=10 is shorter than its drain timeout/);
      const dup = join(dir, "dup.yaml");
      writeFileSync(dup, "workerPools:\n  - name: a\n  - name: a\n");
      assert.match(String(renderRaw([dup]).stderr), /the name "a" is used twice/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe("helm chart: render.sh behaves like helm's engine on a probe chart", () => {
  test("values coalescing, built-in objects, helm's functions, partials, NOTES, document splitting, install order", () => {
    const dir = mkdtempSync(join(tmpdir(), "helm-probe-"));
    try {
      const chart = join(dir, "probe");
      const w = (path: string, text: string): void => {
        mkdirSync(dirname(join(chart, path)), { recursive: true });
        writeFileSync(join(chart, path), text);
      };
      w("Chart.yaml", 'apiVersion: v2\nname: probe\nversion: 1.2.3\nappVersion: "9.9"\n');
      w("values.yaml", "keep: 1\ndrop: 2\nnested:\n  a: 1\n  b: 2\nbig: 1000000\ntext: '{{ .Release.Name }}-x'\n");
      w("files/a.txt", "A\n");
      w("files/sub/b.txt", "B\n");
      w("templates/_helpers.tpl", '{{- define "probe.name" -}}{{ .Chart.Name }}-{{ .Release.Name }}{{- end -}}\n');
      w("templates/NOTES.txt", "notes for {{ .Release.Name }}\n");
      w("templates/hook.yaml", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: t\n  annotations:\n    helm.sh/hook: test\nspec:\n  containers: []\n");
      w("templates/all.yaml", [
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata:",
        "  name: {{ include \"probe.name\" . }}",
        "  annotations:",
        "    keep: {{ .Values.keep | quote }}",
        "    drop: {{ hasKey .Values \"drop\" | quote }}",
        "    nested: {{ .Values.nested | toYaml | quote }}",
        "    big: {{ .Values.big | quote }}",
        "    bigInt: {{ .Values.big | int64 | quote }}",
        "    tpl: {{ tpl .Values.text . | quote }}",
        "    ns: {{ .Release.Namespace }}",
        "    app: {{ .Chart.AppVersion | quote }}",
        "    template: {{ .Template.Name }}",
        "    hpa: {{ .Capabilities.APIVersions.Has \"autoscaling/v2\" | quote }}",
        "    kube: {{ .Capabilities.KubeVersion.Version }}",
        "    lookup: {{ lookup \"v1\" \"Secret\" \"ns\" \"s\" | len | quote }}",
        "    file: {{ .Files.Get \"files/a.txt\" | trim }}",
        "    glob: {{ .Files.Glob \"files/**.txt\" | len | quote }}",
        "    missing: \"{{ .Values.nope }}\"",
        "---",
        "# only a comment",
        "---",
        "apiVersion: v1",
        "kind: Service",
        "metadata:",
        "  name: svc",
        "",
      ].join("\n"));
      const override = join(dir, "override.yaml");
      writeFileSync(override, "drop: null\nnested:\n  b: 3\n");
      requireTools();
      const r = spawnSync(join(TOOLS, "render.sh"), ["-chart", chart, "-f", override, "-name", "rel", "-namespace", "ns1", "-output", "json"], { encoding: "utf8" });
      assert.equal(r.status, 0, String(r.stderr));
      const out = JSON.parse(String(r.stdout)) as Omit<Rendering, "json">;
      assert.deepEqual(out.manifests.map((m) => `${m.object.kind}${m.hook ? "(hook)" : ""}`), ["Service", "Deployment", "Pod(hook)"]);
      const deploy = out.manifests[1]?.object as K8sObject;
      assert.equal(deploy.metadata.name, "probe-rel");
      assert.deepEqual(deploy.metadata.annotations, {
        keep: "1",
        drop: "false", // a null in a user file deletes the chart default
        nested: "a: 1\nb: 3", // maps merge deeply; toYaml without the final newline
        big: "1e+06", // numbers are float64, as in helm
        bigInt: "1000000",
        tpl: "rel-x",
        ns: "ns1",
        app: "9.9",
        template: "probe/templates/all.yaml",
        hpa: "true",
        kube: "v1.30.0",
        lookup: "0",
        file: "A",
        glob: "2",
        missing: "", // missingkey=zero and "<no value>" erased
      });
      assert.equal(out.notes.trim(), "notes for rel");
      // required and fail stop the rendering with their message.
      w("templates/req.yaml", '{{ required "need .Values.must" .Values.must }}\n');
      const bad = spawnSync(join(TOOLS, "render.sh"), ["-chart", chart], { encoding: "utf8" });
      assert.equal(bad.status, 1);
      assert.match(String(bad.stderr), /need \.Values\.must/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

// ------------------------------------------------------------ the validator is not vacuous

describe("helm chart: validate.py catches broken renderings", () => {
  type Mutation = [label: string, expected: RegExp, mutate: (r: { values: Record<string, any>; manifests: Manifest[] }) => void];
  const worker = (r: { manifests: Manifest[] }): K8sObject =>
    r.manifests.find((m) => m.object.kind === "StatefulSet")?.object as K8sObject;
  const mutations: Mutation[] = [
    ["an unknown field", /imagePullPolicyy: unknown field \(not in V1Container\)/, (r) => {
      (mainContainer(worker(r)) as unknown as Record<string, unknown>)["imagePullPolicyy"] = "Always";
    }],
    ["an integer env value", /env\[\d+\]\.value: expected a string, got int/, (r) => {
      (mainContainer(worker(r)).env as unknown as Record<string, unknown>[])[5] = { name: "SMOLLM_SLOTS", value: 8 };
    }],
    ["a probe on an undeclared port", /readinessProbe\.httpGet\.port 'metrics' is not a named port/, (r) => {
      const p = mainContainer(worker(r)).readinessProbe;
      if (p?.httpGet) p.httpGet.port = "metrics";
    }],
    ["GPU requests different from limits", /extended resource nvidia\.com\/gpu: requests must equal limits/, (r) => {
      const res = mainContainer(worker(r)).resources;
      if (res?.requests) res.requests["nvidia.com/gpu"] = "2";
    }],
    ["a $(VAR) before its definition", /refers to \$\(POD_NAME\), which is not an earlier env entry/, (r) => {
      mainContainer(worker(r)).env?.unshift({ name: "EARLY", value: "$(POD_NAME)" });
    }],
    ["a Secret nobody creates", /Secret 'nope' is neither rendered nor declared external/, (r) => {
      mainContainer(worker(r)).env?.push({ name: "X", valueFrom: { secretKeyRef: { name: "nope", key: "k" } } });
    }],
    ["a grace period shorter than the drain", /terminationGracePeriodSeconds 10 < drain timeout/, (r) => {
      podSpec(worker(r)).terminationGracePeriodSeconds = 10;
    }],
    ["a values key the schema does not know", /Additional properties are not allowed \('replica' was unexpected\)/, (r) => {
      (r.values["gateway"] as Record<string, unknown>)["replica"] = 3;
    }],
    ["a dashboard expression that does not parse", /promtool check rules failed/, (r) => {
      const cm = r.manifests.find((m) => m.object.kind === "ConfigMap" && m.object.metadata.labels?.["grafana_dashboard"]);
      if (cm?.object.data) cm.object.data = { "d.json": JSON.stringify({ panels: [{ targets: [{ expr: "sum(rate(x[5m])" }] }] }) };
    }],
  ];
  for (const [label, expected, mutate] of mutations) {
    test(label, () => {
      const r = JSON.parse(render("values.yaml").json) as { values: Record<string, any>; manifests: Manifest[] };
      mutate(r);
      const v = validate(JSON.stringify(r), ["--promtool"]);
      assert.equal(v.status, 1, `validate.py accepted ${label}:\n${v.stdout}`);
      assert.match(v.stderr, expected);
    });
  }
});

// ------------------------------------------------------------ chart ↔ the services' own configuration

/** Expands a container's env like the kubelet: fieldRefs, $(VAR) of earlier entries; Secrets → placeholders. */
function expandEnv(c: Container, pod: string, overrides: Record<string, string | undefined> = {}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    let value: string | undefined = e.value;
    if (e.valueFrom?.fieldRef) value = { "metadata.name": pod, "metadata.namespace": NAMESPACE }[e.valueFrom.fieldRef.fieldPath];
    if (e.valueFrom?.secretKeyRef) value = "redis://redis.example:6379/0";
    if (value === undefined) continue;
    out[e.name] = value.replace(/\$\(([^)]+)\)/g, (m, n: string) => out[n] ?? m);
  }
  for (const [k, v] of Object.entries(overrides)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return out;
}

/** SMOLLM_FOO_BAR=v → --foo-bar=v, so that a variable the service does not read is an "unknown flag" error. */
function asFlags(vars: Record<string, string>, exempt: ReadonlySet<string>): string[] {
  return Object.entries(vars)
    .filter(([k]) => k.startsWith("SMOLLM_") && !exempt.has(k))
    .map(([k, v]) => `--${k.slice("SMOLLM_".length).toLowerCase().replaceAll("_", "-")}=${v}`);
}

// Read elsewhere than config.ts, checked below.
const NOT_CONFIG = new Set(["SMOLLM_MODEL_CACHE_DIR"]);

/** The name every internal certificate carries in ci/values-cpu-trial-tls.yaml. */
const INTERNAL_NAME = "smollm-internal";
let pkiCache: Pki | undefined;
/** One CA and identity for the chart tests' TLS files (removed at exit). */
function chartPki(): Pki {
  if (pkiCache === undefined) {
    const pki = makePki([INTERNAL_NAME]);
    process.once("exit", () => rmSync(pki.dir, { recursive: true, force: true }));
    pkiCache = pki;
  }
  return pkiCache;
}

/**
 * The TLS files the chart points a container at (SMOLLM_TLS_* / SMOLLM_MTLS_*),
 * checked to lie in a volume mounted from a Secret, and swapped for local
 * files by their Secret key (tls.crt, tls.key, ca.crt) so that the config
 * loaders, which insist on readable files, accept them.
 */
function localTlsFiles(o: K8sObject, c: Container): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of c.env ?? []) {
    if (!/^SMOLLM_M?TLS_(CA|CERT|KEY)$/.test(e.name)) continue;
    const path = e.value ?? "";
    const mount = c.volumeMounts?.find((m) => m.mountPath === dirname(path));
    assert.ok(mount, `${c.name}: ${e.name}=${path} is not in a mounted volume`);
    const secret = podSpec(o).volumes?.find((v) => v.name === mount.name)?.secret;
    assert.ok(secret, `${c.name}: ${e.name} is not mounted from a Secret`);
    const pki = chartPki();
    const file = ({ "tls.crt": pki.cert, "tls.key": pki.key, "ca.crt": pki.ca } as Record<string, string>)[basename(path)];
    assert.ok(file, `${c.name}: ${e.name} names Secret key ${basename(path)}, not tls.crt / tls.key / ca.crt`);
    out[e.name] = file;
  }
  return out;
}

describe("helm chart: the services accept what the chart sets, and it is consistent", () => {
  test("SMOLLM_MODEL_CACHE_DIR is read by packages/gguf", () => {
    assert.match(readFileSync(join(ROOT, "packages/gguf/src/model-cache.ts"), "utf8"), /SMOLLM_MODEL_CACHE_DIR/);
  });

  for (const file of VALUES_FILES) {
    test(`${file}: config loaders parse every container's environment; ports, addresses and prefixes line up`, async () => {
      const gatewayConfig = await import("../../services/gateway/src/config.ts");
      const schedulerConfig = await import("../../services/scheduler/src/config.ts");
      const workerConfig = await import("../../services/worker/src/config.ts");
      const r = render(file);
      const svcDns = (name: string): string => `${name}.${NAMESPACE}.svc.${CLUSTER_DOMAIN}`;

      const tls = r.values["tls"] as { gateway: { enabled: boolean }; internal: { enabled: boolean; serverName: string } };
      const sDeploy = one(component(r, "Deployment", "scheduler"), "scheduler");
      const sc = mainContainer(sDeploy);
      const sched = schedulerConfig.loadSchedulerConfig({ argv: asFlags(expandEnv(sc, "sched-0", localTlsFiles(sDeploy, sc)), NOT_CONFIG), env: {} });
      assert.equal(sched.mtls !== undefined, tls.internal.enabled, "scheduler: mutual TLS as tls.internal says");
      assert.equal(sched.host, "0.0.0.0");
      assert.equal(sched.grpcPort, portNumber(sc, "grpc"));
      assert.equal(sched.opsPort, portNumber(sc, "ops"));
      assert.equal(sched.schedulerId, "sched-0");
      assert.ok(sc.volumeMounts?.some((m) => m.mountPath === sched.modelsDir));
      const sSvc = one(component(r, "Service", "scheduler"), "scheduler Service");
      const sSvcGrpc = (sSvc.spec?.["ports"] as { name: string; port: number; targetPort: string }[]).find((p) => p.name === "grpc");
      assert.equal(sSvcGrpc?.targetPort, "grpc");

      const gDeploy = one(component(r, "Deployment", "gateway"), "gateway");
      const gc = mainContainer(gDeploy);
      const gw = gatewayConfig.loadConfig({ argv: asFlags(expandEnv(gc, "gw-0", localTlsFiles(gDeploy, gc)), NOT_CONFIG), env: {} });
      assert.equal(gw.tls !== undefined, tls.gateway.enabled, "gateway: HTTPS as tls.gateway says");
      assert.equal(gw.mtls !== undefined, tls.internal.enabled, "gateway: mutual TLS as tls.internal says");
      assert.equal(gw.mtlsServerName, tls.internal.serverName === "" ? undefined : tls.internal.serverName);
      for (const probe of [gc.livenessProbe, gc.readinessProbe]) {
        assert.equal(probe?.httpGet?.scheme ?? "HTTP", tls.gateway.enabled ? "HTTPS" : "HTTP", "the gateway's probes speak its scheme");
      }
      for (const sm of component(r, "ServiceMonitor", "gateway")) {
        const ep = (sm.spec?.["endpoints"] as { scheme?: string }[])[0];
        assert.equal(ep?.scheme ?? "http", tls.gateway.enabled ? "https" : "http", "Prometheus scrapes the gateway in its scheme");
      }
      assert.equal(gw.host, "0.0.0.0");
      assert.equal(gw.port, portNumber(gc, "http"));
      const grpcEnabled = (r.values["gateway"] as { grpc: { enabled: boolean } }).grpc.enabled;
      assert.equal(gw.grpcPort, grpcEnabled ? portNumber(gc, "grpc") : -1, "the public gRPC API listens on the declared port");
      assert.equal(gw.schedulerAddress, `${svcDns(sSvc.metadata.name)}:${String(sSvcGrpc?.port)}`);
      assert.equal(gw.modelId, (r.values["model"] as { id: string }).id);
      // Per-key limits are shared through the cluster's Redis, under the cluster's prefix.
      assert.equal(gw.redisUrl, sched.redisUrl);
      assert.equal(gw.redisPrefix, sched.redisPrefix);
      const apiKeys = (r.values["gateway"] as { apiKeys: { enabled: boolean; key: string } }).apiKeys;
      assert.equal(gw.apiKeysFile, apiKeys.enabled ? `/etc/smollm/api-keys/${apiKeys.key}` : undefined);

      for (const sts of component(r, "StatefulSet", "worker")) {
        const wc = mainContainer(sts);
        const pod = `${sts.metadata.name}-0`;
        const w = workerConfig.loadConfig({ argv: asFlags(expandEnv(wc, pod, localTlsFiles(sts, wc)), NOT_CONFIG), env: {} });
        assert.equal(w.mtls !== undefined, tls.internal.enabled, "worker: mutual TLS as tls.internal says");
        assert.equal(w.kvPeerServerName, tls.internal.serverName === "" ? undefined : tls.internal.serverName);
        assert.equal(w.host, "0.0.0.0");
        assert.equal(w.grpcPort, portNumber(wc, "grpc"));
        assert.equal(w.opsPort, portNumber(wc, "ops"));
        assert.equal(w.workerId, pod);
        // The address gateways dial: the pod's DNS name under its headless Service.
        assert.equal(w.advertiseAddress, `${pod}.${svcDns(String(sts.spec?.["serviceName"]))}:${String(w.grpcPort)}`);
        assert.equal(w.redisPrefix, sched.redisPrefix, "workers and scheduler share one key prefix");
        assert.equal(w.redisUrl, sched.redisUrl);
        assert.equal(w.model, sched.model, "the scheduler tokenizes with the workers' model");
        assert.ok(wc.volumeMounts?.some((m) => m.mountPath === w.modelsDir));
        assert.ok((podSpec(sts).terminationGracePeriodSeconds ?? 30) * 1000 > w.drainTimeoutMs);
      }
    });
  }
});

// ------------------------------------------------------------ the CPU trial, run for real

describe("helm chart: the CPU-trial containers run and pass the helm test hook", () => {
  for (const file of ["ci/values-cpu-trial.yaml", "ci/values-cpu-trial-tls.yaml"]) {
  test(`${file}: gateway, scheduler and worker started from their rendered environment answer the test pod's script`, async () => {
    const r = render(file);
    const redis: TestRedis = await startTestRedis();
    const started: ServiceProcess[] = [];
    // What a pod has and a local process does not: its own network namespace
    // (→ free ports on 127.0.0.1), cluster DNS, the /models volume, Redis.
    const local = {
      SMOLLM_HOST: "127.0.0.1",
      SMOLLM_REDIS_URL: redis.url,
      SMOLLM_MODELS_DIR: join(ROOT, ".cache/models"),
      SMOLLM_MODEL_CACHE_DIR: undefined,
    };
    try {
      const sDeploy = one(component(r, "Deployment", "scheduler"), "scheduler");
      const sc = mainContainer(sDeploy);
      const scheduler = await startService("scheduler", {
        env: expandEnv(sc, "sched-0", { ...local, ...localTlsFiles(sDeploy, sc), SMOLLM_GRPC_PORT: "0", SMOLLM_OPS_PORT: "0" }),
      });
      started.push(scheduler);
      const sts = one(component(r, "StatefulSet", "worker"), "worker");
      const wc = mainContainer(sts);
      assert.equal(env(wc, "SMOLLM_GPU")?.value, "false");
      started.push(
        await startService("worker", {
          env: expandEnv(wc, "worker-0", {
            ...local,
            ...localTlsFiles(sts, wc),
            SMOLLM_GRPC_PORT: "0",
            SMOLLM_OPS_PORT: "0",
            SMOLLM_ADVERTISE_ADDRESS: "127.0.0.1",
          }),
        }),
      );
      const gDeploy = one(component(r, "Deployment", "gateway"), "gateway");
      const gc = mainContainer(gDeploy);
      const gatewayTls = env(gc, "SMOLLM_TLS_CERT") !== undefined;
      const gateway = await startService("gateway", {
        env: expandEnv(gc, "gw-0", {
          ...local,
          ...localTlsFiles(gDeploy, gc),
          SMOLLM_PORT: "0",
          SMOLLM_GRPC_PORT: "0",
          SMOLLM_SCHEDULER_ADDRESS: `127.0.0.1:${String(scheduler.ready["grpc_port"])}`,
        }),
      });
      started.push(gateway);

      const hook = r.manifests.find((m) => m.hook?.includes("test"));
      assert.ok(hook, "a helm test hook Pod is rendered");
      const tc = (hook.object.spec?.["containers"] as Container[])[0] as Container;
      const command = tc.command ?? [];
      assert.equal(command[0], "node");
      // The pod dials the gateway's Service by name; here, a name the test certificate carries.
      const gatewayUrl = `${gatewayTls ? "https://localhost" : "http://127.0.0.1"}:${String(gateway.ready["http_port"])}`;
      assert.equal(env(tc, "GATEWAY_URL")?.value?.startsWith(gatewayTls ? "https://" : "http://"), true, "the hook dials the gateway's scheme");
      if (gatewayTls) assert.equal(env(tc, "NODE_EXTRA_CA_CERTS")?.value, "/etc/smollm/tls/ca.crt");
      const testEnv = expandEnv(tc, "test", {
        GATEWAY_URL: gatewayUrl,
        ...(gatewayTls ? { NODE_EXTRA_CA_CERTS: chartPki().ca } : {}),
      });
      const child = spawn(process.execPath, command.slice(1), { cwd: ROOT, env: { PATH: process.env["PATH"] ?? "", ...testEnv } });
      let output = "";
      child.stdout.on("data", (d: Buffer) => (output += d.toString()));
      child.stderr.on("data", (d: Buffer) => (output += d.toString()));
      const code = await new Promise<number | null>((resolve) => child.on("exit", resolve));
      assert.equal(code, 0, `the helm test script failed:\n${output}`);
      assert.match(output, /GET \/v1\/models: SmolLM3-3B/);
      assert.match(output, /POST \/v1\/chat\/completions: \d+ tokens/);
    } finally {
      for (const p of started.reverse()) await p.stop(5_000);
      await redis.stop();
    }
  });
  }
});

// ------------------------------------------------------------ Dockerfiles

interface Instruction {
  op: string;
  args: string;
  stage: number;
}
function parseDockerfile(text: string): { instructions: Instruction[]; stages: (string | undefined)[] } {
  const lines = text.split("\n").filter((l) => !/^\s*#/.test(l));
  const logical: string[] = [];
  let cur = "";
  for (const line of lines) {
    if (line.endsWith("\\")) cur += line.slice(0, -1) + " ";
    else {
      cur += line;
      if (cur.trim()) logical.push(cur.trim());
      cur = "";
    }
  }
  const instructions: Instruction[] = [];
  const stages: (string | undefined)[] = [];
  for (const l of logical) {
    const sp = l.indexOf(" ");
    const op = l.slice(0, sp).toUpperCase();
    const args = l.slice(sp + 1).trim();
    if (op === "FROM") stages.push(/\s+AS\s+(\S+)$/i.exec(args)?.[1]);
    instructions.push({ op, args, stage: stages.length - 1 });
  }
  return { instructions, stages };
}

/** @smollm/* workspaces a service imports, transitively (by scanning `from "…"` and `import("…")`). */
function workspaceClosure(start: string): Set<string> {
  const dirs = new Map<string, string>();
  for (const base of ["packages", "services"]) {
    for (const d of readdirSync(join(ROOT, base))) {
      const pkg = join(ROOT, base, d, "package.json");
      if (existsSync(pkg)) dirs.set((JSON.parse(readFileSync(pkg, "utf8")) as { name: string }).name, `${base}/${d}`);
    }
  }
  const sources = (dir: string): string[] =>
    readdirSync(join(ROOT, dir)).flatMap((n) => {
      const p = join(ROOT, dir, n);
      if (statSync(p).isDirectory()) return sources(join(dir, n));
      return n.endsWith(".ts") && !n.endsWith(".test.ts") ? [p] : [];
    });
  const seen = new Set<string>([start]);
  const todo = [start];
  while (todo.length > 0) {
    const dir = todo.pop() as string;
    for (const file of sources(join(dir, "src"))) {
      for (const m of readFileSync(file, "utf8").matchAll(/(?:from |import\()"(@smollm\/[a-z-]+)/g)) {
        const target = dirs.get(m[1] ?? "");
        if (target && !seen.has(target)) {
          seen.add(target);
          todo.push(target);
        }
      }
    }
  }
  return seen;
}

function importsPackage(dirs: Iterable<string>, pkg: string): boolean {
  const re = new RegExp(`(?:from |import\\()"${pkg.replace("/", "\\/")}["/]`);
  const scan = (dir: string): boolean =>
    readdirSync(dir).some((n) => {
      const p = join(dir, n);
      if (statSync(p).isDirectory()) return scan(p);
      return n.endsWith(".ts") && !n.endsWith(".test.ts") && re.test(readFileSync(p, "utf8"));
    });
  return [...dirs].some((d) => scan(join(ROOT, d, "src")));
}

describe("Dockerfiles (static: no Docker engine here)", () => {
  const images = { gateway: "gateway", scheduler: "scheduler", worker: "worker", "worker-cuda": "worker" } as const;
  const values = readFileSync(join(CHART, "values.yaml"), "utf8");
  const lock = JSON.parse(readFileSync(join(ROOT, "package-lock.json"), "utf8")) as {
    packages: Record<string, {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
      dev?: boolean;
      version?: string;
      os?: string[];
    }>;
  };

  for (const [image, service] of Object.entries(images)) {
    test(`Dockerfile.${image}: sources exist, runs ${service}'s entry as a non-root user, copies the workspaces it imports`, () => {
      const text = readFileSync(join(DOCKER, `Dockerfile.${image}`), "utf8");
      const { instructions, stages } = parseDockerfile(text);
      const last = stages.length - 1;
      assert.ok(!instructions.some((i) => i.op === "HEALTHCHECK"), "no HEALTHCHECK: Kubernetes probes do that");
      const copied = new Set<string>();
      const ignored = readFileSync(join(DOCKER, `Dockerfile.${image}.dockerignore`), "utf8")
        .split("\n")
        .map((l) => l.trim())
        .filter((l) => l !== "" && !l.startsWith("#") && !l.includes("*.") && !l.startsWith("!"));
      for (const i of instructions.filter((x) => x.op === "COPY")) {
        const parts = i.args.split(/\s+/);
        const from = parts.find((p) => p.startsWith("--from="))?.slice("--from=".length);
        const srcs = parts.filter((p) => !p.startsWith("--")).slice(0, -1);
        if (from) {
          assert.ok(stages.includes(from), `COPY --from=${from}: no such stage`);
          continue;
        }
        for (const s of srcs) {
          if (s === ".") continue;
          assert.ok(existsSync(join(ROOT, s)), `COPY ${s}: not in the repository`);
          const hit = ignored.find((p) => s === p || s.startsWith(`${p}/`) || s.split("/").includes(p.replace(/^\*\*\//, "")));
          assert.equal(hit, undefined, `COPY ${s}: excluded from the build context by ${image}'s .dockerignore (${String(hit)})`);
          if (i.stage === last) copied.add(s.replace(/\/$/, ""));
        }
      }
      // The entry point is the one the tests run (node --import tsx <entry>).
      const entry = instructions.filter((i) => i.op === "ENTRYPOINT" && i.stage === last).at(-1);
      assert.ok(entry, "an ENTRYPOINT in the final stage");
      assert.deepEqual(JSON.parse(entry.args), ["node", "--import", "tsx", SERVICE_ENTRY[service]]);
      assert.ok(existsSync(join(ROOT, SERVICE_ENTRY[service])));
      // Non-root, and the uid the chart runs pods as.
      const user = instructions.filter((i) => i.op === "USER" && i.stage === last).at(-1)?.args ?? "";
      const uid = Number(user.split(":")[0]);
      assert.ok(Number.isInteger(uid) && uid > 0, `USER ${user} is not a non-root uid`);
      assert.match(values, new RegExp(`runAsUser: ${uid}\\n`), "values.yaml runs pods as the image's uid");
      assert.equal(instructions.filter((i) => i.op === "WORKDIR" && i.stage === last).at(-1)?.args, "/app", "the chart's init container runs in /app");
      // Every workspace the service imports (and only those) is in the image.
      const closure = workspaceClosure(`services/${service}`);
      const workspaces = [...copied].filter((c) => c.startsWith("packages/") || c.startsWith("services/"));
      assert.deepEqual(workspaces.sort(), [...closure].sort());
      // tsx and its whole dependency closure survive `npm prune --omit=dev`.
      const kept = /mv ((?:node_modules\/\S+ )+)\/keep\//.exec(text)?.[1]?.trim().split(" ") ?? [];
      const need = new Set<string>();
      const walk = (name: string): void => {
        const entryLock = lock.packages[`node_modules/${name}`];
        // Images are Linux: packages for other systems (fsevents) are never installed there.
        if (!entryLock || need.has(name) || (entryLock.os && !entryLock.os.includes("linux"))) return;
        if (entryLock.dev) need.add(name);
        for (const d of Object.keys({ ...entryLock.dependencies, ...entryLock.optionalDependencies })) walk(d);
      };
      walk("tsx");
      for (const name of need) {
        const top = name.startsWith("@") ? name.split("/")[0] : name;
        assert.ok(kept.includes(`node_modules/${top ?? ""}`), `tsx needs ${name}, which npm prune --omit=dev would remove`);
      }
      assert.ok(need.has("tsx") && need.has("esbuild"));
      // The gateway image drops llama.cpp: nothing it imports may load it.
      if (image === "gateway") assert.ok(!importsPackage(closure, "node-llama-cpp"));
      // The chart's default image names and ports are this image's.
      const exposed = instructions.filter((i) => i.op === "EXPOSE").flatMap((i) => i.args.split(/\s+/).map(Number));
      const expected = { gateway: [8080, 50050], scheduler: [50051, 9091], worker: [50061, 9461], "worker-cuda": [50061, 9461] }[image];
      assert.deepEqual(exposed, expected);
      const allValues = VALUES_FILES.map((f) => readFileSync(join(CHART, f), "utf8")).join("\n");
      assert.match(allValues, new RegExp(`repository: smollm-${image}\\n`), `no values file uses the smollm-${image} image`);
    });
  }

  test("Dockerfile.worker-cuda: a CUDA runtime base of the CUDA major node-llama-cpp's prebuilt binary links", () => {
    const text = readFileSync(join(DOCKER, "Dockerfile.worker-cuda"), "utf8");
    const base = /ARG CUDA_IMAGE=nvidia\/cuda:(\d+)\.[\d.]+-runtime-\S+/.exec(text);
    assert.ok(base, "CUDA_IMAGE is an nvidia/cuda:<version>-runtime image");
    const lib = join(ROOT, "node_modules/@node-llama-cpp/linux-x64-cuda/bins/linux-x64-cuda/libggml-cuda.so");
    const binary = readFileSync(lib).toString("latin1");
    assert.ok(binary.includes(`libcudart.so.${base[1] ?? ""}`), `libggml-cuda.so does not link libcudart.so.${base[1] ?? ""}`);
    assert.ok(binary.includes(`libcublas.so.${base[1] ?? ""}`));
    const nlc = lock.packages["node_modules/node-llama-cpp"]?.version;
    assert.equal(lock.packages["node_modules/@node-llama-cpp/linux-x64-cuda"]?.version, nlc);
  });

  test("the per-Dockerfile ignore files are identical and keep node_modules, .git and caches out", () => {
    const files = readdirSync(DOCKER).filter((f) => f.endsWith(".dockerignore"));
    assert.deepEqual(files.sort(), Object.keys(images).map((i) => `Dockerfile.${i}.dockerignore`).sort());
    const texts = files.map((f) => readFileSync(join(DOCKER, f), "utf8"));
    for (const t of texts) assert.equal(t, texts[0]);
    for (const pattern of ["**/node_modules", ".git", "**/.cache"]) assert.ok(texts[0]?.split("\n").includes(pattern), pattern);
    assert.equal(relative(ROOT, dirname(join(DOCKER, files[0] ?? ""))), "deploy/docker");
  });
});
