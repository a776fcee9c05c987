package main

import (
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/wxterm/wxterm/event"
	"github.com/wxterm/wxterm/internal/wxapi"
	"github.com/wxterm/wxterm/schemas"
)

// The API list is defined once, as event.APIs; what cannot import it (the
// WeChat Pay routes, the intent schema, the Helm chart's values and the
// -allowed-apis default) must say the same, in the same order; every
// WeChat Pay route is an API of the list and every API has a route.
func TestAPIListIsDefinedOnce(t *testing.T) {
	want := make([]string, len(event.APIs))
	for i, a := range event.APIs {
		want[i] = string(a)
		if !wxapi.API(a).Valid() {
			t.Errorf("api %s has no WeChat Pay route", a)
		}
	}
	routes := wxapi.APIs()
	if len(routes) == 0 {
		t.Fatal("wxapi.APIs: no routes")
	}
	for _, a := range routes {
		if !slices.Contains(event.APIs, event.API(a)) {
			t.Errorf("WeChat Pay route %s: not in event.APIs", a)
		}
	}

	b, err := fs.ReadFile(schemas.FS, schemas.IntentV1)
	if err != nil {
		t.Fatal(err)
	}
	var schema struct {
		Properties struct {
			API struct {
				Enum []string `json:"enum"`
			} `json:"api"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(b, &schema); err != nil {
		t.Fatal(err)
	}
	if got := schema.Properties.API.Enum; !slices.Equal(got, want) {
		t.Errorf("%s api enum: got %v; want %v", schemas.IntentV1, got, want)
	}

	b, err = os.ReadFile("../../deploy/helm/wxterm/values.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Config struct {
			AllowedAPIs string `json:"allowedApis"`
		} `json:"config"`
	}
	if err := yaml.Unmarshal(b, &values); err != nil {
		t.Fatal(err)
	}
	if got := values.Config.AllowedAPIs; got != strings.Join(want, ",") {
		t.Errorf("Helm values config.allowedApis: got %q; want %q", got, strings.Join(want, ","))
	}

	if got := newFlagSet(&config{}, io.Discard).Lookup("allowed-apis").DefValue; got != strings.Join(want, ",") {
		t.Errorf("-allowed-apis default: got %q; want %q", got, strings.Join(want, ","))
	}
}
