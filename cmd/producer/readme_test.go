package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// The README's producer table must list every flag the producer has.
func TestReadmeListsEveryProducerFlag(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	section := string(readme)
	if i := strings.Index(section, "### producer"); i >= 0 {
		section = section[i:]
	} else {
		t.Fatal("README has no producer settings section")
	}
	var help strings.Builder
	_ = runMain(t.Context(), []string{"-h"}, strings.NewReader(""), &help, &help)
	flags := regexp.MustCompile(`(?m)^  -([a-z-]+)`).FindAllStringSubmatch(help.String(), -1)
	if len(flags) < 10 {
		t.Fatalf("help lists %d flags: %s", len(flags), help.String())
	}
	for _, f := range flags {
		if !strings.Contains(section, "| `-"+f[1]+"` |") {
			t.Errorf("README's producer table lacks -%s", f[1])
		}
	}
}
