// Command render renders a Helm 3 chart the way `helm template` does, for
// machines where the helm binary cannot be installed. It is a re-implementation
// of helm's template engine on Go's text/template and Masterminds/sprig v3 (the
// same two libraries helm uses), with helm's own functions and built-in objects
// added here. It is faithful enough for the smollm-cluster chart; the gaps are
// listed below and in deploy/helm/README.md.
//
// What it does like helm 3:
//   - Chart.yaml: apiVersion v2, name and a SemVer 2 version required;
//     kubeVersion constraint checked against --kube-version.
//   - values: values.yaml coalesced with the -f files (later files win, maps
//     merge deeply, a null in a user file deletes a chart default); numbers are
//     float64 as in helm (sigs.k8s.io/yaml), so `1000000` prints as 1e+06.
//   - templates: every file under templates/ parsed into one set named
//     "<chart>/templates/<path>"; files whose base name starts with "_" are
//     partials; missingkey=zero and "<no value>" erased; NOTES.txt rendered
//     apart; output split on "---" with helm's regular expression; empty
//     documents dropped; every document converted YAML→JSON with
//     sigs.k8s.io/yaml (what helm and kubectl send to the API server).
//   - functions: sprig's TxtFuncMap without env/expandenv, plus include, tpl,
//     required, toYaml, fromYaml, fromYamlArray, toJson, fromJson,
//     fromJsonArray, lookup (always empty, as in `helm template`).
//   - objects: .Values .Release (Name Namespace Service IsInstall IsUpgrade
//     Revision) .Chart (Chart.yaml with helm's Go field names: Name Version
//     AppVersion APIVersion ...) .Capabilities (KubeVersion.{Version,Major,
//     Minor,GitVersion}, APIVersions.Has, HelmVersion) .Template (Name
//     BasePath) .Files (Get GetBytes Glob AsConfig AsSecrets Lines; .helmignore
//     honoured for simple patterns).
//   - manifests ordered by helm's InstallOrder (kind), then by source path.
//
// Gaps (not implemented): subcharts/dependencies, toToml, --set flags, strict
// lint mode, post-renderers, .helmignore negations and "**" patterns,
// schema validation (done by validate.py on the merged values this tool
// outputs), and any check that needs a cluster (lookup returns empty).
//
// Usage:
//
//	render -chart DIR [-f values.yaml]... [-name RELEASE] [-namespace NS]
//	       [-kube-version 1.30.0] [-api-versions group/version]...
//	       [-output yaml|json] [-show-notes]
//
// -output json prints {"chart","release","values","manifests":[{"source",
// "hook","object"}],"notes"} — the objects exactly as the API server would
// receive them, and the merged values helm would validate against
// values.schema.json.
package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// KubeVersion mirrors helm's chartutil.KubeVersion.
type KubeVersion struct {
	Version    string
	Major      string
	Minor      string
	GitVersion string
}

func (k KubeVersion) String() string { return k.Version }

// VersionSet mirrors helm's chartutil.VersionSet.
type VersionSet []string

// Has is `.Capabilities.APIVersions.Has "apps/v1"` (or "apps/v1/Deployment").
func (v VersionSet) Has(apiVersion string) bool {
	for _, x := range v {
		if x == apiVersion {
			return true
		}
	}
	return false
}

// Capabilities mirrors helm's chartutil.Capabilities.
type Capabilities struct {
	KubeVersion KubeVersion
	APIVersions VersionSet
	HelmVersion map[string]interface{}
}

// Files mirrors helm's engine.files: the chart's non-template files.
type Files map[string][]byte

func (f Files) GetBytes(name string) []byte { return f[name] }
func (f Files) Get(name string) string     { return string(f[name]) }

// Glob matches like helm (gobwas/glob with '/' as separator: '*' stays within
// one path segment, '**' crosses segments).
func (f Files) Glob(pattern string) Files {
	re := globRegexp(pattern)
	out := Files{}
	for name, data := range f {
		if re.MatchString(name) {
			out[name] = data
		}
	}
	return out
}

func globRegexp(pattern string) *regexp.Regexp {
	var b strings.Builder
	b.WriteString("^")
	for i := 0; i < len(pattern); i++ {
		c := pattern[i]
		switch {
		case c == '*' && i+1 < len(pattern) && pattern[i+1] == '*':
			b.WriteString(".*")
			i++
		case c == '*':
			b.WriteString("[^/]*")
		case c == '?':
			b.WriteString("[^/]")
		default:
			b.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

// AsConfig is helm's: a YAML map of base name → content, for ConfigMap data.
func (f Files) AsConfig() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = string(data)
	}
	return toYAML(m)
}

// AsSecrets is helm's: a YAML map of base name → base64 content.
func (f Files) AsSecrets() string {
	m := map[string]string{}
	for name, data := range f {
		m[path.Base(name)] = base64.StdEncoding.EncodeToString(data)
	}
	return toYAML(m)
}

func (f Files) Lines(name string) []string {
	s := string(f[name])
	if s == "" {
		return []string{}
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

func toYAML(v interface{}) string {
	data, err := yaml.Marshal(v)
	if err != nil {
		return ""
	}
	return strings.TrimSuffix(string(data), "\n")
}

func fromYAML(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := yaml.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromYAMLArray(s string) []interface{} {
	a := []interface{}{}
	if err := yaml.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

func toJSON(v interface{}) string {
	data, err := json.Marshal(v)
	if err != nil {
		return ""
	}
	return string(data)
}

func fromJSON(s string) map[string]interface{} {
	m := map[string]interface{}{}
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		m["Error"] = err.Error()
	}
	return m
}

func fromJSONArray(s string) []interface{} {
	a := []interface{}{}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		a = []interface{}{err.Error()}
	}
	return a
}

// ---------------------------------------------------------------- values

func readYAMLMap(file string) (map[string]interface{}, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	m := map[string]interface{}{}
	if err := yaml.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	if m == nil {
		m = map[string]interface{}{}
	}
	return m, nil
}

// mergeMaps is helm's cli/values.mergeMaps: b wins, maps merge deeply.
func mergeMaps(a, b map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(a))
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if vm, ok := v.(map[string]interface{}); ok {
			if bv, ok := out[k]; ok {
				if bm, ok := bv.(map[string]interface{}); ok {
					out[k] = mergeMaps(bm, vm)
					continue
				}
			}
		}
		out[k] = v
	}
	return out
}

// coalesce is helm's chartutil.coalesceTablesFullKey for one chart: user
// values win; a user null deletes the chart default; maps merge deeply.
func coalesce(user, defaults map[string]interface{}) map[string]interface{} {
	out := make(map[string]interface{}, len(user))
	for k, v := range user {
		out[k] = v
	}
	for k, dv := range defaults {
		uv, present := out[k]
		if !present {
			out[k] = dv
			continue
		}
		if uv == nil {
			delete(out, k)
			continue
		}
		um, uok := uv.(map[string]interface{})
		dm, dok := dv.(map[string]interface{})
		if uok && dok {
			out[k] = coalesce(um, dm)
		} else if uok != dok && dv != nil {
			fmt.Fprintf(os.Stderr, "warning: value %q: user value and chart default differ in kind (table vs not); user value wins\n", k)
		}
	}
	return out
}

// ---------------------------------------------------------------- chart

// chartFieldNames maps Chart.yaml keys to the Go field names of helm's
// chart.Metadata, which is what templates see under .Chart.
var chartFieldNames = map[string]string{
	"name": "Name", "home": "Home", "sources": "Sources", "version": "Version",
	"description": "Description", "keywords": "Keywords", "maintainers": "Maintainers",
	"icon": "Icon", "apiVersion": "APIVersion", "condition": "Condition", "tags": "Tags",
	"appVersion": "AppVersion", "deprecated": "Deprecated", "annotations": "Annotations",
	"kubeVersion": "KubeVersion", "dependencies": "Dependencies", "type": "Type",
}

func loadChartMetadata(dir string) (map[string]interface{}, error) {
	raw, err := readYAMLMap(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	meta := map[string]interface{}{}
	for k, v := range raw {
		name, ok := chartFieldNames[k]
		if !ok {
			return nil, fmt.Errorf("Chart.yaml: unknown field %q", k)
		}
		meta[name] = v
	}
	// helm's Metadata.Validate
	if meta["APIVersion"] != "v2" {
		return nil, errors.New("Chart.yaml: apiVersion must be v2 (Helm 3)")
	}
	if s, _ := meta["Name"].(string); s == "" {
		return nil, errors.New("Chart.yaml: name is required")
	}
	version, _ := meta["Version"].(string)
	if _, err := semver.StrictNewVersion(version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %v", version, err)
	}
	if t, ok := meta["Type"].(string); ok && t != "application" && t != "library" {
		return nil, fmt.Errorf("Chart.yaml: type must be application or library, got %q", t)
	}
	if _, ok := meta["AppVersion"]; ok {
		if _, isString := meta["AppVersion"].(string); !isString {
			return nil, errors.New("Chart.yaml: appVersion must be a string (quote it)")
		}
	}
	if deps, ok := meta["Dependencies"].([]interface{}); ok && len(deps) > 0 {
		return nil, errors.New("Chart.yaml: dependencies are not supported by this renderer")
	}
	return meta, nil
}

// helmignore reads the simple patterns of .helmignore (no negation, no "**").
func helmignore(dir string) (func(rel string, isDir bool) bool, error) {
	var patterns []string
	data, err := os.ReadFile(filepath.Join(dir, ".helmignore"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if strings.HasPrefix(line, "!") || strings.Contains(line, "**") {
			return nil, fmt.Errorf(".helmignore: pattern %q is not supported by this renderer", line)
		}
		patterns = append(patterns, line)
	}
	return func(rel string, isDir bool) bool {
		for _, p := range patterns {
			dirOnly := strings.HasSuffix(p, "/")
			p = strings.TrimSuffix(p, "/")
			if dirOnly && !isDir {
				continue
			}
			target := path.Base(rel)
			if strings.Contains(strings.TrimPrefix(p, "/"), "/") {
				target = rel
			}
			if ok, _ := path.Match(strings.TrimPrefix(p, "/"), target); ok {
				return true
			}
		}
		return false
	}, nil
}

type chartFiles struct {
	templates map[string]string // "templates/x.yaml" → text
	files     Files             // the rest (what .Files sees)
}

func loadChartFiles(dir string) (*chartFiles, error) {
	ignored, err := helmignore(dir)
	if err != nil {
		return nil, err
	}
	cf := &chartFiles{templates: map[string]string{}, files: Files{}}
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			return nil
		}
		if ignored(rel, d.IsDir()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if rel == "charts" {
				return errors.New("charts/ (subcharts) is not supported by this renderer")
			}
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		switch {
		case strings.HasPrefix(rel, "templates/"):
			cf.templates[rel] = string(data)
		case rel == "Chart.yaml" || rel == "values.yaml" || rel == "values.schema.json" || rel == "Chart.lock" || rel == "requirements.yaml":
		default:
			cf.files[rel] = data
		}
		return nil
	})
	return cf, err
}

// ---------------------------------------------------------------- engine

const recursionMax = 1000

type rendered struct {
	Source string                 `json:"source"`
	Hook   []string               `json:"hook,omitempty"`
	Object map[string]interface{} `json:"object"`
	text   string
	kind   string
}

func funcMap(root **template.Template) template.FuncMap {
	f := sprig.TxtFuncMap()
	delete(f, "env")
	delete(f, "expandenv")
	included := map[string]int{}
	f["include"] = func(name string, data interface{}) (string, error) {
		if included[name] > recursionMax {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		included[name]++
		defer func() { included[name]-- }()
		var buf strings.Builder
		if err := (*root).ExecuteTemplate(&buf, name, data); err != nil {
			return "", err
		}
		return buf.String(), nil
	}
	f["tpl"] = func(text string, vals interface{}) (string, error) {
		clone, err := (*root).Clone()
		if err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		name := "tpl"
		if m, ok := vals.(map[string]interface{}); ok {
			if t, ok := m["Template"].(map[string]interface{}); ok {
				if n, ok := t["Name"].(string); ok {
					name = n
				}
			}
		}
		t, err := clone.New(name).Parse(text)
		if err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		var buf strings.Builder
		if err := t.Execute(&buf, vals); err != nil {
			return "", fmt.Errorf("tpl: %w", err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	f["required"] = func(msg string, val interface{}) (interface{}, error) {
		if val == nil {
			return val, errors.New(msg)
		}
		if s, ok := val.(string); ok && s == "" {
			return val, errors.New(msg)
		}
		return val, nil
	}
	f["toYaml"] = toYAML
	f["fromYaml"] = fromYAML
	f["fromYamlArray"] = fromYAMLArray
	f["toJson"] = toJSON
	f["fromJson"] = fromJSON
	f["fromJsonArray"] = fromJSONArray
	f["toToml"] = func(interface{}) (string, error) {
		return "", errors.New("toToml is not implemented by this renderer")
	}
	f["lookup"] = func(apiVersion, kind, namespace, name string) (map[string]interface{}, error) {
		return map[string]interface{}{}, nil
	}
	return f
}

// helm's releaseutil.SplitManifests separator.
var sep = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

// helm's releaseutil.InstallOrder.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList",
	"RoleBinding", "RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController",
	"ReplicaSet", "Deployment", "HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob",
	"IngressClass", "Ingress", "APIService",
}

func kindRank(kind string) int {
	for i, k := range installOrder {
		if k == kind {
			return i
		}
	}
	return len(installOrder)
}

func parseKubeVersion(v string) (KubeVersion, error) {
	sv, err := semver.NewVersion(v)
	if err != nil {
		return KubeVersion{}, fmt.Errorf("-kube-version %q: %w", v, err)
	}
	return KubeVersion{
		Version:    "v" + sv.String(),
		Major:      fmt.Sprint(sv.Major()),
		Minor:      fmt.Sprint(sv.Minor()),
		GitVersion: "v" + sv.String(),
	}, nil
}

// defaultAPIVersions are the built-in group/versions of Kubernetes 1.30 that
// `helm template` (without a cluster) reports.
var defaultAPIVersions = []string{
	"v1", "admissionregistration.k8s.io/v1", "apiextensions.k8s.io/v1", "apiregistration.k8s.io/v1",
	"apps/v1", "authentication.k8s.io/v1", "authorization.k8s.io/v1", "autoscaling/v1", "autoscaling/v2",
	"batch/v1", "certificates.k8s.io/v1", "coordination.k8s.io/v1", "discovery.k8s.io/v1",
	"events.k8s.io/v1", "flowcontrol.apiserver.k8s.io/v1", "networking.k8s.io/v1", "node.k8s.io/v1",
	"policy/v1", "rbac.authorization.k8s.io/v1", "scheduling.k8s.io/v1", "storage.k8s.io/v1",
}

type options struct {
	chartDir    string
	valueFiles  []string
	release     string
	namespace   string
	kubeVersion string
	apiVersions []string
	output      string
	showNotes   bool
}

type result struct {
	Chart     map[string]interface{} `json:"chart"`
	Release   map[string]interface{} `json:"release"`
	Values    map[string]interface{} `json:"values"`
	Manifests []*rendered            `json:"manifests"`
	Notes     string                 `json:"notes"`
}

func render(o options) (*result, error) {
	meta, err := loadChartMetadata(o.chartDir)
	if err != nil {
		return nil, err
	}
	chartName := meta["Name"].(string)
	kv, err := parseKubeVersion(o.kubeVersion)
	if err != nil {
		return nil, err
	}
	if c, ok := meta["KubeVersion"].(string); ok && c != "" {
		constraint, err := semver.NewConstraint(c)
		if err != nil {
			return nil, fmt.Errorf("Chart.yaml: kubeVersion %q: %w", c, err)
		}
		v, _ := semver.NewVersion(kv.Version)
		if !constraint.Check(v) {
			return nil, fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", c, kv.Version)
		}
	}
	defaults, err := readYAMLMap(filepath.Join(o.chartDir, "values.yaml"))
	if err != nil {
		return nil, err
	}
	user := map[string]interface{}{}
	for _, f := range o.valueFiles {
		m, err := readYAMLMap(f)
		if err != nil {
			return nil, err
		}
		user = mergeMaps(user, m)
	}
	values := coalesce(user, defaults)

	cf, err := loadChartFiles(o.chartDir)
	if err != nil {
		return nil, err
	}
	release := map[string]interface{}{
		"Name": o.release, "Namespace": o.namespace, "Service": "Helm",
		"IsInstall": true, "IsUpgrade": false, "Revision": 1,
	}
	caps := Capabilities{
		KubeVersion: kv,
		APIVersions: append(append(VersionSet{}, defaultAPIVersions...), o.apiVersions...),
		HelmVersion: map[string]interface{}{"Version": "v3.15.0", "GitCommit": "", "GitTreeState": "", "GoVersion": "go1.22"},
	}

	var root *template.Template
	root = template.New("gotpl").Option("missingkey=zero")
	root.Funcs(funcMap(&root))
	names := make([]string, 0, len(cf.templates))
	for rel := range cf.templates {
		names = append(names, rel)
	}
	sort.Strings(names)
	for _, rel := range names {
		full := chartName + "/" + rel
		if _, err := root.New(full).Parse(cf.templates[rel]); err != nil {
			return nil, fmt.Errorf("parse error in %s", strings.TrimPrefix(err.Error(), "template: "))
		}
	}

	res := &result{Chart: meta, Release: release, Values: values}
	for _, rel := range names {
		full := chartName + "/" + rel
		base := path.Base(rel)
		if strings.HasPrefix(base, "_") {
			continue
		}
		top := map[string]interface{}{
			"Values": values, "Release": release, "Chart": meta, "Capabilities": caps,
			"Files":    cf.files,
			"Template": map[string]interface{}{"Name": full, "BasePath": chartName + "/templates"},
		}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, full, top); err != nil {
			return nil, fmt.Errorf("execution error: %s", strings.TrimPrefix(err.Error(), "template: "))
		}
		out := strings.ReplaceAll(buf.String(), "<no value>", "")
		if base == "NOTES.txt" {
			res.Notes = out
			continue
		}
		ext := path.Ext(base)
		if ext != ".yaml" && ext != ".yml" {
			continue // helm installs only YAML files from templates/
		}
		for _, doc := range sep.Split(out, -1) {
			if strings.TrimSpace(doc) == "" {
				continue
			}
			js, err := yaml.YAMLToJSON([]byte(doc))
			if err != nil {
				return nil, fmt.Errorf("%s: error converting YAML to JSON: %v\n%s", full, err, doc)
			}
			var obj interface{}
			if err := json.Unmarshal(js, &obj); err != nil {
				return nil, fmt.Errorf("%s: %v", full, err)
			}
			if obj == nil {
				continue // a document with only comments
			}
			m, ok := obj.(map[string]interface{})
			if !ok {
				return nil, fmt.Errorf("%s: a document is not a mapping:\n%s", full, doc)
			}
			kind, _ := m["kind"].(string)
			if kind == "" || m["apiVersion"] == nil {
				return nil, fmt.Errorf("%s: a document has no kind or apiVersion:\n%s", full, doc)
			}
			r := &rendered{Source: full, Object: m, text: strings.TrimSpace(doc), kind: kind}
			if md, ok := m["metadata"].(map[string]interface{}); ok {
				if an, ok := md["annotations"].(map[string]interface{}); ok {
					if h, ok := an["helm.sh/hook"].(string); ok {
						for _, x := range strings.Split(h, ",") {
							r.Hook = append(r.Hook, strings.TrimSpace(x))
						}
					}
				}
			}
			res.Manifests = append(res.Manifests, r)
		}
	}
	sort.SliceStable(res.Manifests, func(i, j int) bool {
		a, b := res.Manifests[i], res.Manifests[j]
		if (a.Hook == nil) != (b.Hook == nil) {
			return a.Hook == nil
		}
		return kindRank(a.kind) < kindRank(b.kind)
	})
	return res, nil
}

func main() {
	var o options
	var files, apis multiFlag
	flag.StringVar(&o.chartDir, "chart", "", "chart directory (required)")
	flag.Var(&files, "f", "values file (repeatable; later files win)")
	flag.StringVar(&o.release, "name", "smollm", "release name")
	flag.StringVar(&o.namespace, "namespace", "default", "release namespace")
	flag.StringVar(&o.kubeVersion, "kube-version", "1.30.0", "Kubernetes version for .Capabilities")
	flag.Var(&apis, "api-versions", "extra API version for .Capabilities.APIVersions (repeatable)")
	flag.StringVar(&o.output, "output", "yaml", "yaml (like helm template) or json")
	flag.BoolVar(&o.showNotes, "show-notes", false, "print NOTES.txt after the manifests (yaml output)")
	flag.Parse()
	if o.chartDir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: render -chart DIR [-f values.yaml]... [-name R] [-namespace NS] [-output yaml|json]")
		os.Exit(2)
	}
	o.valueFiles, o.apiVersions = files, apis
	res, err := render(o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	switch o.output {
	case "json":
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", " ")
		if err := enc.Encode(res); err != nil {
			fmt.Fprintln(os.Stderr, "Error:", err)
			os.Exit(1)
		}
	case "yaml":
		var b strings.Builder
		for _, m := range res.Manifests {
			fmt.Fprintf(&b, "---\n# Source: %s\n%s\n", m.Source, m.text)
		}
		if o.showNotes {
			fmt.Fprintf(&b, "\nNOTES:\n%s\n", res.Notes)
		}
		os.Stdout.WriteString(b.String())
	default:
		fmt.Fprintln(os.Stderr, "-output must be yaml or json")
		os.Exit(2)
	}
}
