package main

// The chart's operator Jobs (status-job.yaml, redrive-job.yaml): rendered
// from ci/operators-values.yaml by scripts/helm.sh (review of issue 15: the
// chart had only the replay Job).

import (
	"slices"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

func TestHelmOperatorJobs(t *testing.T) {
	r := loadRender(t, "operators")
	jobs := map[string]batchv1.Job{}
	for _, j := range r.jobs {
		jobs[j.Labels["app.kubernetes.io/component"]] = j
	}
	if len(r.jobs) != 2 || len(jobs) != 2 {
		t.Fatalf("got %d Jobs (%v); want the status and redrive Jobs", len(r.jobs), jobs)
	}
	d := r.deployments[0]
	for _, c := range []struct {
		name string
		args []string
		env  map[string]string // literal env the Job must give (its own and the consumer's ConfigMap)
	}{
		{"status", []string{"-json", "-query", "C-1001", "C-1002/req-7"}, map[string]string{
			"WXTERM_REDIS_ADDRS": "redis:6379", "WXTERM_MCHID": "1900000001",
		}},
		{"redrive", nil, map[string]string{
			"WXTERM_EXECUTE": "true", "WXTERM_FROM": "2026-01-01T00:00:00Z", "WXTERM_TO": "2026-01-02T00:00:00Z",
			"WXTERM_ERROR_CONTAINS": "unknown field", "WXTERM_BY": "oncall@example",
			"WXTERM_REQUEST_TOPIC": "contract-termination.requested", "WXTERM_DLQ_TOPIC": "contract-termination.dlq",
			"WXTERM_NOTIFICATION_TOPIC": "contract-termination.notifications",
		}},
	} {
		j, ok := jobs[c.name]
		if !ok {
			t.Errorf("no %s Job", c.name)
			continue
		}
		pod := j.Spec.Template.Spec
		ct := pod.Containers[0]
		checkHelmHardening(t, ct)
		if sc := pod.SecurityContext; sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot {
			t.Errorf("%s pod securityContext %+v; want runAsNonRoot: true", c.name, sc)
		}
		if pod.RestartPolicy != corev1.RestartPolicyNever {
			t.Errorf("%s: got restartPolicy %q; want Never", c.name, pod.RestartPolicy)
		}
		if want := []string{"/" + c.name}; !slices.Equal(ct.Command, want) {
			t.Errorf("%s: got command %v; want %v (the image's binary)", c.name, ct.Command, want)
		}
		if !slices.Equal(ct.Args, c.args) {
			t.Errorf("%s: got args %q; want %q", c.name, ct.Args, c.args)
		}
		if ct.Image != d.Spec.Template.Spec.Containers[0].Image {
			t.Errorf("%s image %s; want the consumer's %s", c.name, ct.Image, d.Spec.Template.Spec.Containers[0].Image)
		}
		if helmSubset(d.Spec.Selector.MatchLabels, j.Spec.Template.Labels) {
			t.Errorf("the Deployment selector %v matches the %s pods %v", d.Spec.Selector.MatchLabels, c.name, j.Spec.Template.Labels)
		}
		env := r.containerEnv(t, ct)
		for k, want := range c.env {
			if got := env[k]; !got.literal || got.value != want {
				t.Errorf("%s: %s = %q (%s); want %q", c.name, k, got.value, got.source, want)
			}
		}
		if c.name == "redrive" {
			if _, ok := env["WXTERM_OFFSETS"]; ok {
				t.Error("redrive: got WXTERM_OFFSETS with WXTERM_FROM; want one range")
			}
		}
		// The merchant's key reaches /status -query as it reaches the consumer.
		if c.name == "status" && len(ct.VolumeMounts) == 0 {
			t.Error("status: no volume mounts; want the merchant's key files")
		}
	}
}

func TestHelmOperatorJobsOffByDefault(t *testing.T) {
	for _, name := range []string{"default", "all-on"} {
		for _, j := range loadRender(t, name).jobs {
			if c := j.Labels["app.kubernetes.io/component"]; c == "status" || c == "redrive" {
				t.Errorf("%s render: got the %s Job; want it only when enabled", name, c)
			}
		}
	}
}
