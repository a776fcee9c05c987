package main

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The README's Layout table names every package under cmd/ and internal/, so
// a new reader finds each one's purpose there (issue 11's review found
// eleven missing).
func TestReadmeLayoutNamesEveryPackage(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	s := string(readme)
	start := strings.Index(s, "\n## Layout\n")
	if start < 0 {
		t.Fatal("README has no Layout section")
	}
	section := s[start+1:]
	if end := strings.Index(section, "\n#"); end >= 0 {
		section = section[:end]
	}
	var table strings.Builder
	for _, line := range strings.Split(section, "\n") {
		if strings.HasPrefix(line, "| ") {
			first := strings.SplitN(line, "|", 3)[1] // the path column
			table.WriteString(first)
		}
	}
	named := map[string]bool{}
	for _, m := range regexp.MustCompile("`([^`]+)`").FindAllStringSubmatch(table.String(), -1) {
		named[m[1]] = true
	}
	for _, root := range []string{"cmd", "internal"} {
		dirs, err := fs.Glob(os.DirFS("../.."), root+"/*")
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range dirs {
			if gos, _ := filepath.Glob(filepath.Join("../..", d, "*.go")); len(gos) == 0 {
				continue
			}
			if !named[d] {
				t.Errorf("README Layout table lacks `%s`", d)
			}
		}
	}
}
