package main

// The chart's notification endpoint and the consumer that must read what it
// writes.

import "testing"

// Regression (review of issue 14): with notify.enabled the chart deploys cmd/notify, which
// answers WeChat Pay 200 once a notification is in notify.topic, but it never
// tells the consumer to read that topic: the consumer's ConfigMap has no
// WXTERM_NOTIFICATION_TOPIC, and the consumer's default is "" (not read). So
// every user-initiated termination is acknowledged to WeChat Pay (no retry)
// and never reaches the result stream or the dedupe store; intents for those
// contracts still cost a refused terminate call. Nothing in CI sees it:
// ci/all-on-values.yaml leaves notify.enabled off, so the notify templates
// are never rendered nor checked by these tests.
func TestHelmNotifyFeedsTheConsumer(t *testing.T) {
	r := loadRender(t, "all-on")
	var topic string
	for _, d := range r.deployments {
		for _, c := range d.Spec.Template.Spec.Containers {
			if c.Name != "notify" {
				continue
			}
			for _, e := range c.Env {
				if e.Name == "WXTERM_NOTIFICATION_TOPIC" {
					topic = e.Value
				}
			}
		}
	}
	if topic == "" {
		t.Fatal("the all-on render has no notify Deployment writing a notification topic: ci/all-on-values.yaml does not enable notify, so its templates go unchecked")
	}
	for name, cm := range r.configMaps {
		if _, ok := cm.Data["WXTERM_REQUEST_TOPIC"]; !ok {
			continue // not the consumer's settings
		}
		if got := cm.Data["WXTERM_NOTIFICATION_TOPIC"]; got != topic {
			t.Errorf("consumer ConfigMap %s: WXTERM_NOTIFICATION_TOPIC %q; want %q, the topic notify writes", name, got, topic)
		}
	}
}
