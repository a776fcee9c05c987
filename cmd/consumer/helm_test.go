package main

// The Helm chart (deploy/helm/wxterm) and the consumer must not drift apart:
// these tests read the manifests scripts/helm.sh rendered with the default
// values and with ci/all-on-values.yaml, decode every document strictly into
// its Kubernetes API type, and check that the chart sets only settings the
// consumer reads (with values its flags accept), sets every required one, and
// deploys the consumer the way the issue asks. They also check the Grafana
// dashboard and the chart's alerts against the consumer's metric names.

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/wxterm/wxterm/internal/consumer"
)

// helmRenders are the files scripts/helm.sh writes, by name.
var helmRenders = []string{"default", "all-on", "certificates"}

// helmRender is one `helm template` output, decoded.
type helmRender struct {
	name            string
	deployments     []appsv1.Deployment
	configMaps      map[string]corev1.ConfigMap
	secrets         map[string]corev1.Secret
	services        []corev1.Service
	serviceAccounts []corev1.ServiceAccount
	pdbs            []policyv1.PodDisruptionBudget
	jobs            []batchv1.Job
	ingresses       []networkingv1.Ingress
	custom          map[string][]*unstructured.Unstructured // by kind: CRD instances
}

// count returns how many objects of kind the render holds.
func (r *helmRender) count(kind string) int {
	switch kind {
	case "Deployment":
		return len(r.deployments)
	case "ConfigMap":
		return len(r.configMaps)
	case "Secret":
		return len(r.secrets)
	case "Service":
		return len(r.services)
	case "ServiceAccount":
		return len(r.serviceAccounts)
	case "PodDisruptionBudget":
		return len(r.pdbs)
	case "Job":
		return len(r.jobs)
	case "Ingress":
		return len(r.ingresses)
	}
	return len(r.custom[kind])
}

// helmCRDKinds are the custom resources the chart may render, decoded into
// unstructured objects; any other apiVersion/kind fails the test, so a new
// template must be registered here.
var helmCRDKinds = map[string]string{
	"ServiceMonitor":        "monitoring.coreos.com/v1",
	"PrometheusRule":        "monitoring.coreos.com/v1",
	"ScaledObject":          "keda.sh/v1alpha1",
	"TriggerAuthentication": "keda.sh/v1alpha1",
}

// helmDir is where scripts/helm.sh rendered the chart.
func helmDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("WXTERM_TEST_HELM_DIR")
	if dir == "" {
		if ci, _ := strconv.ParseBool(os.Getenv("CI")); ci {
			t.Fatal("WXTERM_TEST_HELM_DIR is not set under CI: run scripts/helm.sh and export WXTERM_TEST_HELM_DIR=$PWD/.cache/helm (scripts/test.sh does)")
		}
		t.Skip("WXTERM_TEST_HELM_DIR is not set: run scripts/helm.sh, then WXTERM_TEST_HELM_DIR=$PWD/.cache/helm go test -run Helm ./cmd/consumer/")
	}
	return dir
}

// loadRender reads and strictly decodes <dir>/<name>.yaml.
func loadRender(t *testing.T, name string) *helmRender {
	t.Helper()
	path := filepath.Join(helmDir(t), name+".yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read the rendered chart (run scripts/helm.sh): %v", err)
	}
	r := &helmRender{name: name, configMaps: map[string]corev1.ConfigMap{}, secrets: map[string]corev1.Secret{},
		custom: map[string][]*unstructured.Unstructured{}}
	for i, doc := range splitHelmYAML(b) {
		if err := r.add(doc); err != nil {
			t.Fatalf("%s: document %d: %v\n%s", path, i, err, doc)
		}
	}
	return r
}

// splitHelmYAML splits a multi-document YAML stream, dropping documents that
// hold only comments and blank lines.
func splitHelmYAML(b []byte) [][]byte {
	var docs [][]byte
	for _, doc := range regexp.MustCompile(`(?m)^---[ \t]*$`).Split(string(b), -1) {
		empty := true
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(doc))
		}
	}
	return docs
}

// add decodes doc strictly (no unknown fields, no duplicate keys) into the
// type its apiVersion and kind name.
func (r *helmRender) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	strict := func(obj any) error { return yaml.UnmarshalStrict(doc, obj) }
	switch gvk := tm.APIVersion + " " + tm.Kind; gvk {
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		if err := strict(&o); err != nil {
			return err
		}
		r.deployments = append(r.deployments, o)
	case "v1 ConfigMap":
		var o corev1.ConfigMap
		if err := strict(&o); err != nil {
			return err
		}
		r.configMaps[o.Name] = o
	case "v1 Secret":
		var o corev1.Secret
		if err := strict(&o); err != nil {
			return err
		}
		r.secrets[o.Name] = o
	case "v1 Service":
		var o corev1.Service
		if err := strict(&o); err != nil {
			return err
		}
		r.services = append(r.services, o)
	case "v1 ServiceAccount":
		var o corev1.ServiceAccount
		if err := strict(&o); err != nil {
			return err
		}
		r.serviceAccounts = append(r.serviceAccounts, o)
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		if err := strict(&o); err != nil {
			return err
		}
		r.pdbs = append(r.pdbs, o)
	case "batch/v1 Job":
		var o batchv1.Job
		if err := strict(&o); err != nil {
			return err
		}
		r.jobs = append(r.jobs, o)
	case "networking.k8s.io/v1 Ingress":
		var o networkingv1.Ingress
		if err := strict(&o); err != nil {
			return err
		}
		r.ingresses = append(r.ingresses, o)
	default:
		if helmCRDKinds[tm.Kind] != tm.APIVersion {
			return fmt.Errorf("unexpected %s: add it to helm_test.go", gvk)
		}
		var m map[string]any
		if err := strict(&m); err != nil {
			return err
		}
		u := &unstructured.Unstructured{Object: m}
		if u.GetName() == "" {
			return fmt.Errorf("%s without metadata.name", gvk)
		}
		r.custom[tm.Kind] = append(r.custom[tm.Kind], u)
	}
	return nil
}

// helmFlagEnv maps each consumer flag's env var (WXTERM_<FLAG_NAME>, as ff
// derives it) to the flag name.
func helmFlagEnv() map[string]string {
	m := map[string]string{}
	newFlagSet(&config{}, io.Discard).VisitAll(func(f *flag.Flag) {
		m[envPrefix+"_"+strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(f.Name))] = f.Name
	})
	return m
}

// helmEnvVar is one env var a container gets, and where from.
type helmEnvVar struct {
	value     string // literal value (ConfigMap data or env value)
	literal   bool   // value is known (not from a Secret or the downward API)
	secretRef *corev1.SecretKeySelector
	source    string
}

// containerEnv resolves the env of c: envFrom ConfigMaps of the render, then
// env. Duplicates (one source silently overriding another) are errors.
func (r *helmRender) containerEnv(t *testing.T, c corev1.Container) map[string]helmEnvVar {
	t.Helper()
	env := map[string]helmEnvVar{}
	put := func(name string, v helmEnvVar) {
		if prev, dup := env[name]; dup {
			t.Errorf("%s: container %s: %s set by %s and by %s", r.name, c.Name, name, prev.source, v.source)
		}
		env[name] = v
	}
	for _, from := range c.EnvFrom {
		if from.Prefix != "" {
			t.Errorf("%s: container %s: envFrom prefix %q; want none", r.name, c.Name, from.Prefix)
		}
		switch {
		case from.ConfigMapRef != nil:
			cm, ok := r.configMaps[from.ConfigMapRef.Name]
			if !ok {
				t.Errorf("%s: container %s: envFrom ConfigMap %q is not in the render", r.name, c.Name, from.ConfigMapRef.Name)
				continue
			}
			for k, v := range cm.Data {
				put(k, helmEnvVar{value: v, literal: true, source: "ConfigMap " + cm.Name})
			}
		default:
			t.Errorf("%s: container %s: envFrom %+v: the chart passes settings only from its ConfigMap", r.name, c.Name, from)
		}
	}
	for _, e := range c.Env {
		v := helmEnvVar{value: e.Value, literal: e.ValueFrom == nil, source: "env"}
		if e.ValueFrom != nil {
			v.secretRef = e.ValueFrom.SecretKeyRef
		}
		put(e.Name, v)
	}
	return env
}

// helmPodContainer is one container of a pod template, with its pod and owner.
type helmPodContainer struct {
	owner string // Deployment/x or Job/y
	pod   corev1.PodSpec
	c     corev1.Container
	// component is the pod's app.kubernetes.io/component label.
	component string
}

// helmComponentNotify is the component label of the notification
// endpoint's pods (cmd/notify); every other pod runs the consumer.
const helmComponentNotify = "notify"

// podContainers returns the containers that run the consumer: the
// Deployment's and the replay Job's, not the notification endpoint's.
func (r *helmRender) podContainers() []helmPodContainer {
	var out []helmPodContainer
	for _, pc := range r.allPodContainers() {
		if pc.component != helmComponentNotify {
			out = append(out, pc)
		}
	}
	return out
}

// notifyContainers returns the containers of the notification endpoint.
func (r *helmRender) notifyContainers() []helmPodContainer {
	var out []helmPodContainer
	for _, pc := range r.allPodContainers() {
		if pc.component == helmComponentNotify {
			out = append(out, pc)
		}
	}
	return out
}

func (r *helmRender) allPodContainers() []helmPodContainer {
	var out []helmPodContainer
	for _, d := range r.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			out = append(out, helmPodContainer{"Deployment/" + d.Name, d.Spec.Template.Spec, c, d.Spec.Template.Labels[helmComponentLabel]})
		}
	}
	for _, j := range r.jobs {
		for _, c := range j.Spec.Template.Spec.Containers {
			out = append(out, helmPodContainer{"Job/" + j.Name, j.Spec.Template.Spec, c, j.Spec.Template.Labels[helmComponentLabel]})
		}
	}
	return out
}

// consumerDeployments returns the Deployments that run the consumer.
func (r *helmRender) consumerDeployments() []appsv1.Deployment {
	var out []appsv1.Deployment
	for _, d := range r.deployments {
		if d.Spec.Template.Labels[helmComponentLabel] != helmComponentNotify {
			out = append(out, d)
		}
	}
	return out
}

const helmComponentLabel = "app.kubernetes.io/component"

// helmSecretFlags must never be set from a literal value or a ConfigMap.
var helmSecretFlags = []string{"kafka-sasl-username", "kafka-sasl-password", "redis-password", "apiv3-key"}

func TestHelmEnvIsConsumerFlags(t *testing.T) {
	flags := helmFlagEnv()
	for _, name := range helmRenders {
		t.Run(name, func(t *testing.T) {
			r := loadRender(t, name)
			pcs := r.podContainers()
			if len(pcs) == 0 {
				t.Fatal("got no containers; want the consumer")
			}
			for _, pc := range pcs {
				c := &config{}
				fs := newFlagSet(c, io.Discard)
				for env, v := range r.containerEnv(t, pc.c) {
					if !strings.HasPrefix(env, envPrefix+"_") {
						continue
					}
					flag, ok := flags[env]
					if !ok {
						t.Errorf("%s %s: got %s (from %s); want only env vars of consumer flags", pc.owner, pc.c.Name, env, v.source)
						continue
					}
					if slices.Contains(helmSecretFlags, flag) && v.secretRef == nil {
						t.Errorf("%s %s: %s from %s; want a secretKeyRef", pc.owner, pc.c.Name, env, v.source)
					}
					if !v.literal {
						continue
					}
					if err := fs.Set(flag, v.value); err != nil {
						t.Errorf("%s %s: %s=%q: got -%s rejecting it: %v", pc.owner, pc.c.Name, env, v.value, flag, err)
					}
				}
			}
		})
	}
}

// helmNotifyFlagEnv maps each cmd/notify flag's env var to the flag name,
// read from the flags cmd/notify prints (its flag set is in another main
// package).
func helmNotifyFlagEnv(t *testing.T) map[string]string {
	t.Helper()
	out, _ := exec.Command("go", "run", "../notify", "-h").CombinedOutput() // -h exits 0 or 2
	m := map[string]string{}
	for _, f := range regexp.MustCompile(`(?m)^  -([a-z0-9-]+)`).FindAllStringSubmatch(string(out), -1) {
		m[envPrefix+"_"+strings.ToUpper(strings.ReplaceAll(f[1], "-", "_"))] = f[1]
	}
	if len(m) < 10 {
		t.Fatalf("cmd/notify -h listed %d flags; want its flag set:\n%s", len(m), out)
	}
	return m
}

// The notification endpoint's env: only cmd/notify's flags, secrets from
// Secrets, every file in a read-only Secret mount, and the topic it writes
// the one the consumer reads (review of issue 14: it was not).
func TestHelmNotifyEnvIsNotifyFlags(t *testing.T) {
	flags := helmNotifyFlagEnv(t)
	r := loadRender(t, "all-on")
	pcs := r.notifyContainers()
	if len(pcs) != 1 {
		t.Fatalf("got %d notify containers; want 1", len(pcs))
	}
	pc := pcs[0]
	env := r.containerEnv(t, pc.c)
	for name, v := range env {
		if !strings.HasPrefix(name, envPrefix+"_") {
			continue
		}
		flag, ok := flags[name]
		if !ok {
			t.Errorf("%s: got %s (from %s); want only env vars of cmd/notify flags", pc.owner, name, v.source)
			continue
		}
		if slices.Contains(helmSecretFlags, flag) && v.secretRef == nil {
			t.Errorf("%s: %s from %s; want a secretKeyRef", pc.owner, name, v.source)
		}
		if strings.HasSuffix(name, "_FILE") {
			if err := helmMountedFile(pc, v.value); err != nil {
				t.Errorf("%s: %s: %v", pc.owner, name, err)
			}
		}
	}
	for _, name := range []string{"WXTERM_BROKERS", "WXTERM_NOTIFICATION_TOPIC", "WXTERM_MERCHANTS_FILE", "WXTERM_LISTEN_ADDR", "WXTERM_HTTP_ADDR"} {
		if v, ok := env[name]; !ok || v.literal && v.value == "" {
			t.Errorf("%s: got no %s; want it set", pc.owner, name)
		}
	}
	topic := env["WXTERM_NOTIFICATION_TOPIC"].value
	for _, c := range r.podContainers() {
		if got := r.containerEnv(t, c.c)["WXTERM_NOTIFICATION_TOPIC"].value; got != topic {
			t.Errorf("%s: WXTERM_NOTIFICATION_TOPIC %q; want %q, the topic notify writes", c.owner, got, topic)
		}
	}
	if len(r.ingresses) != 1 || len(r.ingresses[0].Spec.TLS) != 1 || r.ingresses[0].Spec.TLS[0].SecretName == "" {
		t.Errorf("got Ingresses %+v; want one with TLS", r.ingresses)
	}
}

// helmMountedFile checks that path lies in a read-only mount of a Secret volume
// and, when the volume lists items, is one of them.
func helmMountedFile(pc helmPodContainer, path string) error {
	for _, m := range pc.c.VolumeMounts {
		rel, err := filepath.Rel(m.MountPath, path)
		if err != nil || strings.HasPrefix(rel, "..") || rel == "." {
			continue
		}
		if !m.ReadOnly {
			return fmt.Errorf("mount %s of %s is writable; want readOnly", m.MountPath, path)
		}
		i := slices.IndexFunc(pc.pod.Volumes, func(v corev1.Volume) bool { return v.Name == m.Name })
		if i < 0 {
			return fmt.Errorf("mount %s names volume %q, which the pod lacks", m.MountPath, m.Name)
		}
		sv := pc.pod.Volumes[i].Secret
		if sv == nil {
			return fmt.Errorf("%s is on volume %q, not a Secret", path, m.Name)
		}
		if len(sv.Items) > 0 && !slices.ContainsFunc(sv.Items, func(k corev1.KeyToPath) bool { return k.Path == rel }) {
			return fmt.Errorf("%s: Secret volume %q has no item with path %q", path, m.Name, rel)
		}
		return nil
	}
	return fmt.Errorf("%s is not under any volume mount", path)
}

func TestHelmRequiredEnv(t *testing.T) {
	merchantFlags := []string{"WXTERM_MCHID", "WXTERM_MCH_CERT_SERIAL", "WXTERM_MCH_PRIVATE_KEY_FILE",
		"WXTERM_WECHATPAY_PUBLIC_KEY_ID", "WXTERM_WECHATPAY_PUBLIC_KEY_FILE"}
	for _, tc := range []struct {
		render       string
		wantMerchant string // "file": WXTERM_MERCHANTS_FILE; "flags": the five -mch… settings
	}{
		{"default", "flags"},
		{"all-on", "file"},
	} {
		t.Run(tc.render, func(t *testing.T) {
			r := loadRender(t, tc.render)
			for _, pc := range r.podContainers() {
				env := r.containerEnv(t, pc.c)
				set := func(name string) bool {
					v, ok := env[name]
					return ok && (!v.literal || v.value != "")
				}
				for _, name := range []string{"WXTERM_BROKERS", "WXTERM_REDIS_ADDRS"} {
					if !set(name) {
						t.Errorf("%s: got no %s; want it set", pc.owner, name)
					}
				}
				var want []string
				switch tc.wantMerchant {
				case "file":
					want = []string{"WXTERM_MERCHANTS_FILE"}
					// The consumer refuses -mchid with -merchants-file.
					for _, name := range merchantFlags {
						if set(name) {
							t.Errorf("%s: got %s with WXTERM_MERCHANTS_FILE; want the merchants file alone", pc.owner, name)
						}
					}
				case "flags":
					want = merchantFlags
					if set("WXTERM_MERCHANTS_FILE") {
						t.Errorf("%s: got WXTERM_MERCHANTS_FILE with -mchid; want one of them", pc.owner)
					}
				}
				for _, name := range want {
					if !set(name) {
						t.Errorf("%s: got no %s; want it set", pc.owner, name)
					}
				}
				// Every file setting points into a mounted Secret.
				for name, v := range env {
					if !strings.HasPrefix(name, "WXTERM_") || !strings.HasSuffix(name, "_FILE") {
						continue
					}
					if !v.literal || !filepath.IsAbs(v.value) {
						t.Errorf("%s: %s=%q; want an absolute path", pc.owner, name, v.value)
						continue
					}
					if err := helmMountedFile(pc, v.value); err != nil {
						t.Errorf("%s: %s: %v", pc.owner, name, err)
					}
				}
			}
		})
	}
}

func TestHelmKinds(t *testing.T) {
	for _, tc := range []struct {
		render string
		want   map[string]int
	}{
		{"default", map[string]int{"Deployment": 1, "ConfigMap": 1, "Service": 1, "ServiceAccount": 1,
			"PodDisruptionBudget": 1, "Secret": 0, "Job": 0, "ServiceMonitor": 0, "PrometheusRule": 0,
			"ScaledObject": 0, "TriggerAuthentication": 0, "Ingress": 0}},
		// notify on: its Deployment, Service, PodDisruptionBudget (2 replicas) and Ingress.
		{"all-on", map[string]int{"Deployment": 2, "ConfigMap": 1, "Service": 2, "ServiceAccount": 1,
			"PodDisruptionBudget": 2, "Secret": 1, "Job": 1, "ServiceMonitor": 1, "PrometheusRule": 1,
			"ScaledObject": 1, "TriggerAuthentication": 1, "Ingress": 1}},
	} {
		t.Run(tc.render, func(t *testing.T) {
			r := loadRender(t, tc.render)
			for kind, want := range tc.want {
				if got := r.count(kind); got != want {
					t.Errorf("got %d %s; want %d", got, kind, want)
				}
			}
		})
	}
}

// helmShutdownTimeout is the -shutdown-timeout the container runs with.
func helmShutdownTimeout(t *testing.T, env map[string]helmEnvVar) time.Duration {
	t.Helper()
	s := newFlagSet(&config{}, io.Discard).Lookup("shutdown-timeout").DefValue
	if v, ok := env["WXTERM_SHUTDOWN_TIMEOUT"]; ok {
		s = v.value
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		t.Fatalf("shutdown timeout %q: %v", s, err)
	}
	return d
}

func TestHelmDeployment(t *testing.T) {
	for _, tc := range []struct {
		render    string
		wantGrace int64 // 0: anything above the shutdown timeout
	}{
		{"default", 35}, // computed: 20s + 15s margin
		{"all-on", 60},  // set explicitly, above 45s
	} {
		t.Run(tc.render, func(t *testing.T) {
			r := loadRender(t, tc.render)
			ds := r.consumerDeployments()
			if len(ds) != 1 {
				t.Fatalf("got %d consumer Deployments; want 1", len(ds))
			}
			d := ds[0]
			pod := d.Spec.Template.Spec
			if len(pod.Containers) != 1 {
				t.Fatalf("got %d containers; want 1", len(pod.Containers))
			}
			c := pod.Containers[0]
			env := r.containerEnv(t, c)

			if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
				t.Errorf("got pod securityContext %+v; want runAsNonRoot: true", sc)
			}
			checkHelmHardening(t, c)

			addr := env["WXTERM_HTTP_ADDR"].value
			_, port, _ := strings.Cut(addr, ":")
			i := slices.IndexFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.Name == "http" })
			if i < 0 || strconv.Itoa(int(c.Ports[i].ContainerPort)) != port {
				t.Errorf("container ports %+v; want one named http on WXTERM_HTTP_ADDR %q", c.Ports, addr)
			}
			for _, p := range []struct {
				kind  string
				probe *corev1.Probe
				path  string
			}{{"liveness", c.LivenessProbe, "/healthz"}, {"readiness", c.ReadinessProbe, "/readyz"}} {
				if p.probe == nil || p.probe.HTTPGet == nil {
					t.Errorf("%s probe %+v; want httpGet %s", p.kind, p.probe, p.path)
					continue
				}
				if g := p.probe.HTTPGet; g.Path != p.path || g.Port.String() != "http" {
					t.Errorf("%s probe: got GET %s on port %s; want %s on port http", p.kind, g.Path, g.Port.String(), p.path)
				}
			}

			grace := pod.TerminationGracePeriodSeconds
			shutdown := helmShutdownTimeout(t, env)
			if grace == nil || time.Duration(*grace)*time.Second <= shutdown {
				t.Errorf("terminationGracePeriodSeconds %v; want more than the shutdown timeout %s", helmPtr(grace), shutdown)
			} else if tc.wantGrace != 0 && *grace != tc.wantGrace {
				t.Errorf("got terminationGracePeriodSeconds %d; want %d", *grace, tc.wantGrace)
			}

			if pod.AutomountServiceAccountToken == nil || *pod.AutomountServiceAccountToken {
				t.Errorf("automountServiceAccountToken %s; want false: the consumer never calls the Kubernetes API", helmPtr(pod.AutomountServiceAccountToken))
			}
			if sa := pod.ServiceAccountName; !slices.ContainsFunc(r.serviceAccounts, func(s corev1.ServiceAccount) bool { return s.Name == sa }) {
				t.Errorf("serviceAccountName %q is not a rendered ServiceAccount", sa)
			}
			sel, err := metav1.LabelSelectorAsMap(d.Spec.Selector)
			if err != nil || !helmSubset(sel, d.Spec.Template.Labels) {
				t.Errorf("Deployment selector %v does not select its pod labels %v", d.Spec.Selector, d.Spec.Template.Labels)
			}
		})
	}
}

// checkHelmHardening: non-root, read-only root filesystem, no
// privilege escalation, requests and limits for CPU and memory.
func checkHelmHardening(t *testing.T, c corev1.Container) {
	t.Helper()
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	for _, f := range []struct {
		name string
		got  *bool
		want bool
	}{
		{"readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem, true},
		{"runAsNonRoot", sc.RunAsNonRoot, true},
		{"allowPrivilegeEscalation", sc.AllowPrivilegeEscalation, false},
	} {
		if f.got == nil || *f.got != f.want {
			t.Errorf("container %s: got securityContext.%s %s; want %t", c.Name, f.name, helmPtr(f.got), f.want)
		}
	}
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, lim := c.Resources.Requests[res], c.Resources.Limits[res]
		if req.IsZero() || lim.IsZero() {
			t.Errorf("container %s %s: got request %s, limit %s; want both", c.Name, res, req.String(), lim.String())
		} else if req.Cmp(lim) > 0 {
			t.Errorf("container %s %s: got request %s above limit %s", c.Name, res, req.String(), lim.String())
		}
	}
}

func helmPtr[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

func helmSubset(sub, of map[string]string) bool {
	for k, v := range sub {
		if of[k] != v {
			return false
		}
	}
	return len(sub) > 0
}

func TestHelmSecretRefs(t *testing.T) {
	for _, tc := range []struct {
		render        string
		wantSecretEnv map[string]string // env var → Secret name
		wantVolumes   map[string]string // volume → Secret name
	}{
		{"default", map[string]string{}, map[string]string{"merchant": "wxterm-merchant"}},
		{"all-on",
			map[string]string{"WXTERM_KAFKA_SASL_USERNAME": "wxterm", "WXTERM_KAFKA_SASL_PASSWORD": "wxterm", "WXTERM_REDIS_PASSWORD": "wxterm-redis"},
			map[string]string{"merchants": "wxterm-merchants", "kafka-tls": "wxterm-kafka-tls", "redis-tls": "wxterm-redis-tls"}},
	} {
		t.Run(tc.render, func(t *testing.T) {
			r := loadRender(t, tc.render)
			for _, pc := range r.podContainers() {
				env := r.containerEnv(t, pc.c)
				for name, secret := range tc.wantSecretEnv {
					ref := env[name].secretRef
					if ref == nil || ref.Name != secret {
						t.Errorf("%s: %s from %+v; want a secretKeyRef to Secret %s", pc.owner, name, ref, secret)
					}
				}
				for name, v := range env {
					if v.secretRef == nil {
						continue
					}
					// A Secret the chart made must hold the key; others are existingSecrets.
					if s, ok := r.secrets[v.secretRef.Name]; ok {
						if _, has := s.Data[v.secretRef.Key]; !has {
							t.Errorf("%s: %s: chart Secret %s has no key %q", pc.owner, name, s.Name, v.secretRef.Key)
						}
					}
				}
				for vol, secret := range tc.wantVolumes {
					i := slices.IndexFunc(pc.pod.Volumes, func(v corev1.Volume) bool { return v.Name == vol })
					if i < 0 || pc.pod.Volumes[i].Secret == nil || pc.pod.Volumes[i].Secret.SecretName != secret {
						t.Errorf("%s: volume %s; want Secret %s", pc.owner, vol, secret)
						continue
					}
					sv := pc.pod.Volumes[i].Secret
					if s, ok := r.secrets[sv.SecretName]; ok {
						for _, it := range sv.Items {
							if _, has := s.Data[it.Key]; !has {
								t.Errorf("%s: volume %s: chart Secret %s has no key %q", pc.owner, vol, s.Name, it.Key)
							}
						}
					}
				}
			}
		})
	}
}

func TestHelmReplayJob(t *testing.T) {
	r := loadRender(t, "all-on")
	if len(r.jobs) != 1 {
		t.Fatalf("got %d Jobs; want the replay Job", len(r.jobs))
	}
	j := r.jobs[0]
	if sc := j.Spec.Template.Spec.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
		t.Errorf("replay pod securityContext %+v; want runAsNonRoot: true", sc)
	}
	checkHelmHardening(t, j.Spec.Template.Spec.Containers[0])
	if got := j.Spec.Template.Spec.RestartPolicy; got != corev1.RestartPolicyNever {
		t.Errorf("got restartPolicy %q; want Never", got)
	}
	env := r.containerEnv(t, j.Spec.Template.Spec.Containers[0])
	for _, tc := range []struct{ env, want string }{
		{"WXTERM_REPLAY", "true"},
		{"WXTERM_REPLAY_FROM", "2026-01-01T00:00:00Z"},
		{"WXTERM_REPLAY_TO", "2026-01-02T00:00:00Z"},
		{"WXTERM_REPLAY_DRY_RUN", "false"},
		{"WXTERM_REPLAY_REEMIT", "true"},
	} {
		if got := env[tc.env]; !got.literal || got.value != tc.want {
			t.Errorf("%s: got %q; want %q", tc.env, got.value, tc.want)
		}
	}
	if _, ok := env["WXTERM_REPLAY_OFFSETS"]; ok {
		t.Error("got WXTERM_REPLAY_OFFSETS with WXTERM_REPLAY_FROM; want one range")
	}
	d := r.consumerDeployments()[0]
	if helmSubset(d.Spec.Selector.MatchLabels, j.Spec.Template.Labels) {
		t.Errorf("the Deployment selector %v matches the replay pods %v", d.Spec.Selector.MatchLabels, j.Spec.Template.Labels)
	}
	if c := j.Spec.Template.Spec.Containers[0]; c.Image != d.Spec.Template.Spec.Containers[0].Image {
		t.Errorf("replay image %s; want the consumer's %s", c.Image, d.Spec.Template.Spec.Containers[0].Image)
	}
}

func TestHelmSelectorsAndCRDs(t *testing.T) {
	for _, name := range helmRenders {
		t.Run(name, func(t *testing.T) {
			r := loadRender(t, name)
			d := r.consumerDeployments()[0]
			// selects names the Deployments whose pods sel selects: each
			// Service and PodDisruptionBudget must select exactly the pods of
			// its own component (consumer or notify).
			selects := func(sel map[string]string) []string {
				var names []string
				for _, d := range r.deployments {
					if helmSubset(sel, d.Spec.Template.Labels) {
						names = append(names, d.Spec.Template.Labels[helmComponentLabel])
					}
				}
				return names
			}
			for _, s := range r.services {
				if got := selects(s.Spec.Selector); len(got) != 1 || got[0] != s.Labels[helmComponentLabel] && s.Labels[helmComponentLabel] != "" {
					t.Errorf("Service %s (component %q) selector %v selects the pods of %v; want its own component's alone", s.Name, s.Labels[helmComponentLabel], s.Spec.Selector, got)
				}
				if !slices.ContainsFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == "http" && p.TargetPort.String() == "http" }) {
					t.Errorf("Service %s ports %+v; want http → targetPort http", s.Name, s.Spec.Ports)
				}
			}
			for _, p := range r.pdbs {
				if got := selects(p.Spec.Selector.MatchLabels); len(got) != 1 || got[0] != p.Spec.Selector.MatchLabels[helmComponentLabel] {
					t.Errorf("PodDisruptionBudget %s selector %v selects the pods of %v; want one component's", p.Name, p.Spec.Selector.MatchLabels, got)
				}
				if (p.Spec.MinAvailable == nil) == (p.Spec.MaxUnavailable == nil) {
					t.Errorf("PodDisruptionBudget %s: want exactly one of minAvailable and maxUnavailable", p.Name)
				}
			}
			env := r.containerEnv(t, d.Spec.Template.Spec.Containers[0])

			for _, sm := range r.custom["ServiceMonitor"] {
				// It scrapes the Service of every component that runs (the
				// consumer's and, when enabled, the notification endpoint's).
				var sel metav1.LabelSelector
				if raw, ok, _ := unstructured.NestedMap(sm.Object, "spec", "selector"); ok {
					if err := runtime.DefaultUnstructuredConverter.FromUnstructured(raw, &sel); err != nil {
						t.Fatalf("ServiceMonitor selector: %v", err)
					}
				}
				ls, err := metav1.LabelSelectorAsSelector(&sel)
				if err != nil {
					t.Fatalf("ServiceMonitor selector: %v", err)
				}
				var scraped, running []string
				for _, s := range r.services {
					if ls.Matches(labels.Set(s.Labels)) {
						scraped = append(scraped, s.Labels[helmComponentLabel])
					}
				}
				for _, d := range r.deployments {
					running = append(running, d.Spec.Template.Labels[helmComponentLabel])
				}
				slices.Sort(scraped)
				slices.Sort(running)
				if !slices.Equal(scraped, running) {
					t.Errorf("ServiceMonitor selector %v scrapes the Services of %v; want those of %v", sel, scraped, running)
				}
				eps, _, _ := unstructured.NestedSlice(sm.Object, "spec", "endpoints")
				if len(eps) != 1 {
					t.Fatalf("ServiceMonitor: got %d endpoints; want 1", len(eps))
				}
				ep, _ := eps[0].(map[string]any)
				if ep["port"] != "http" || ep["path"] != "/metrics" {
					t.Errorf("ServiceMonitor endpoint %v; want port http, path /metrics", ep)
				}
			}

			for _, so := range r.custom["ScaledObject"] {
				if d.Spec.Replicas != nil {
					t.Errorf("Deployment replicas %d with a ScaledObject; want it unset (KEDA owns it)", *d.Spec.Replicas)
				}
				target, _, _ := unstructured.NestedString(so.Object, "spec", "scaleTargetRef", "name")
				if target != d.Name {
					t.Errorf("ScaledObject scaleTargetRef.name %q; want the Deployment %q", target, d.Name)
				}
				triggers, _, _ := unstructured.NestedSlice(so.Object, "spec", "triggers")
				if len(triggers) != 1 {
					t.Fatalf("ScaledObject: got %d triggers; want 1", len(triggers))
				}
				tr, _ := triggers[0].(map[string]any)
				meta, _, _ := unstructured.NestedStringMap(tr, "metadata")
				if tr["type"] != "kafka" {
					t.Errorf("ScaledObject trigger type %v; want kafka", tr["type"])
				}
				for _, tc := range []struct{ key, env string }{
					{"bootstrapServers", "WXTERM_BROKERS"}, {"consumerGroup", "WXTERM_GROUP"}, {"topic", "WXTERM_REQUEST_TOPIC"},
				} {
					if got, want := meta[tc.key], env[tc.env].value; got != want || got == "" {
						t.Errorf("ScaledObject trigger %s %q; want the consumer's %s %q", tc.key, got, tc.env, want)
					}
				}
				if _, err := strconv.Atoi(meta["lagThreshold"]); err != nil {
					t.Errorf("ScaledObject lagThreshold %q; want a number", meta["lagThreshold"])
				}
				if ref, ok, _ := unstructured.NestedString(tr, "authenticationRef", "name"); ok &&
					!slices.ContainsFunc(r.custom["TriggerAuthentication"], func(u *unstructured.Unstructured) bool { return u.GetName() == ref }) {
					t.Errorf("ScaledObject authenticationRef %q is not a rendered TriggerAuthentication", ref)
				}
			}

			for _, pr := range r.custom["PrometheusRule"] {
				groups, _, _ := unstructured.NestedSlice(pr.Object, "spec", "groups")
				for _, g := range groups {
					rules, _, _ := unstructured.NestedSlice(g.(map[string]any), "rules")
					for _, rule := range rules {
						rm := rule.(map[string]any)
						expr, _ := rm["expr"].(string)
						if err := checkHelmPromQL(expr); err != nil {
							t.Errorf("PrometheusRule %v: %v", rm["alert"], err)
						}
					}
				}
			}
		})
	}
}

// helmMetrics are the metric names the dashboard and the alerts may use
// (wxterm_ready is registered by main, the others by consumer.NewMetrics).
var helmMetrics = []string{
	"wxterm_intents_consumed_total", "wxterm_outcomes_total", "wxterm_wechat_call_duration_seconds", "wxterm_stage_duration_seconds",
	"wxterm_retries_total", "wxterm_dedupe_hits_total", "wxterm_in_flight", "wxterm_commit_lag",
	"wxterm_dead_letters_total", "wxterm_ready", "wxterm_systemic_fault", "wxterm_held", "wxterm_output_fault",
	"wxterm_outputs_reduced_total",
}

var helmMetricName = regexp.MustCompile(`\bwxterm_[a-z0-9_]+`)

// checkHelmPromQL: expr names at least one metric, and each is a consumer
// metric (or a histogram's _bucket, _sum, _count series).
func checkHelmPromQL(expr string) error {
	names := helmMetricName.FindAllString(expr, -1)
	if len(names) == 0 {
		return fmt.Errorf("expr %q names no wxterm_ metric", expr)
	}
	for _, n := range names {
		base := n
		for _, suffix := range []string{"_bucket", "_sum", "_count"} {
			if b, ok := strings.CutSuffix(n, suffix); ok && (b == "wxterm_wechat_call_duration_seconds" || b == "wxterm_stage_duration_seconds") {
				base = b
			}
		}
		if !slices.Contains(helmMetrics, base) {
			return fmt.Errorf("expr %q names %s; want one of %v", expr, n, helmMetrics)
		}
	}
	return nil
}

// helmRegisterer keeps what NewMetrics registers.
type helmRegisterer struct{ cs []prometheus.Collector }

func (r *helmRegisterer) Register(c prometheus.Collector) error {
	r.cs = append(r.cs, c)
	return nil
}
func (r *helmRegisterer) MustRegister(cs ...prometheus.Collector) { r.cs = append(r.cs, cs...) }
func (r *helmRegisterer) Unregister(prometheus.Collector) bool    { return false }

func TestHelmMetricNamesExist(t *testing.T) {
	reg := &helmRegisterer{}
	consumer.NewMetrics(reg)
	registered := map[string]bool{"wxterm_ready": true} // main's GaugeFunc over Consumer.Ready
	fq := regexp.MustCompile(`fqName: "([^"]+)"`)
	for _, c := range reg.cs {
		ch := make(chan *prometheus.Desc, 16)
		go func() { c.Describe(ch); close(ch) }()
		for d := range ch {
			if m := fq.FindStringSubmatch(d.String()); m != nil {
				registered[m[1]] = true
			}
		}
	}
	for _, m := range helmMetrics {
		if !registered[m] {
			t.Errorf("dashboard/alert metric %s: got no such metric from consumer.NewMetrics; want it registered", m)
		}
	}
}

// helmGrafanaPanel is the part of a Grafana panel the test reads.
type helmGrafanaPanel struct {
	ID      int                `json:"id"`
	Type    string             `json:"type"`
	Title   string             `json:"title"`
	Panels  []helmGrafanaPanel `json:"panels"`
	Targets []struct {
		Expr  string `json:"expr"`
		RefID string `json:"refId"`
	} `json:"targets"`
}

func TestGrafanaDashboard(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "deploy", "grafana-dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		UID           string             `json:"uid"`
		Title         string             `json:"title"`
		SchemaVersion int                `json:"schemaVersion"`
		Panels        []helmGrafanaPanel `json:"panels"`
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&dash); err != nil {
		t.Fatalf("deploy/grafana-dashboard.json: %v", err)
	}
	if dash.UID == "" || dash.Title == "" || dash.SchemaVersion < 36 {
		t.Errorf("got uid %q, title %q, schemaVersion %d; want a uid, a title and schemaVersion ≥ 36", dash.UID, dash.Title, dash.SchemaVersion)
	}
	used := map[string]bool{}
	ids := map[int]string{}
	var walk func([]helmGrafanaPanel)
	walk = func(ps []helmGrafanaPanel) {
		for _, p := range ps {
			if prev, dup := ids[p.ID]; dup || p.ID == 0 {
				t.Errorf("panel %q: id %d (also %q); want unique non-zero ids", p.Title, p.ID, prev)
			}
			ids[p.ID] = p.Title
			walk(p.Panels)
			if p.Type == "row" {
				continue
			}
			if len(p.Targets) == 0 {
				t.Errorf("panel %q: got no targets; want a query", p.Title)
			}
			for _, tg := range p.Targets {
				if err := checkHelmPromQL(tg.Expr); err != nil {
					t.Errorf("panel %q: %v", p.Title, err)
				}
				for _, n := range helmMetricName.FindAllString(tg.Expr, -1) {
					used[strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_count")] = true
				}
			}
		}
	}
	walk(dash.Panels)
	for _, m := range helmMetrics {
		if !used[m] {
			t.Errorf("got no panel on %s; want every consumer metric charted", m)
		}
	}
}
