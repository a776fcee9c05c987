package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
)

// The chart's redrive Job (deploy/helm/wxterm/templates/redrive-job.yaml)
// sets WXTERM_* variables of its own: each must name a flag of this command,
// or ff ignores it and the Job runs without the setting (a dry run where
// execute was meant, the whole topic where a range was).
func TestHelmRedriveJobEnvNamesFlags(t *testing.T) {
	b, err := os.ReadFile("../../deploy/helm/wxterm/templates/redrive-job.yaml")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`"(`+envPrefix+`_[A-Z_]+)"`).FindAllStringSubmatch(string(b), -1)
	if len(names) < 7 {
		t.Fatalf("found %d WXTERM_* names in the template; want the 7 settings", len(names))
	}
	fs := newFlagSet(&config{}, io.Discard)
	for _, m := range names {
		flag := strings.ReplaceAll(strings.ToLower(strings.TrimPrefix(m[1], envPrefix+"_")), "_", "-")
		if fs.Lookup(flag) == nil {
			t.Errorf("redrive-job.yaml sets %s; redrive has no -%s", m[1], flag)
		}
	}
}
