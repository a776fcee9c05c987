package merchants

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestReadFile(t *testing.T) {
	for _, tt := range []struct {
		body, wantDefault, wantErr string
	}{
		{`{"merchants":[{"mchid":"1","apiv3_key_file":"k","platform_cert_files":["c.pem"],"verification":"both","sub_mchids":["2"]}]}`, "1", ""},
		{`{"default":"2","merchants":[{"mchid":"1"},{"mchid":"2"}]}`, "2", ""},
		{`{"merchants":[{"mchid":"1"},{"mchid":"1"}]}`, "", "listed twice"},
		{`{"merchants":[{"mchid":""}]}`, "", "is empty"},
		{`{"merchants":[]}`, "", "lists no merchants"},
		{`{"merchants":[{"mchid":"1","apiv3_key":"secret"}]}`, "", "unknown field"},
	} {
		f, err := ReadFile(write(t, "m.json", tt.body))
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("%s: got %v; want an error containing %q", tt.body, err, tt.wantErr)
			}
			continue
		}
		if err != nil || f.Default != tt.wantDefault {
			t.Errorf("%s: got default %q, %v; want %q", tt.body, f.Default, err, tt.wantDefault)
		}
	}
}

func TestAPIv3Key(t *testing.T) {
	const key = "0123456789abcdef0123456789abcdef"
	t.Setenv("TEST_MERCHANTS_KEY", key+"\n")
	for _, tt := range []struct {
		e             Entry
		want, wantErr string
	}{
		{Entry{}, "", ""},
		{Entry{APIv3KeyFile: write(t, "k", key+"\n")}, key, ""},
		{Entry{APIv3KeyEnv: "TEST_MERCHANTS_KEY"}, key, ""},
		{Entry{apiV3Key: key}, key, ""},
		{Entry{APIv3KeyFile: write(t, "short", "secret-short")}, "", "is not 32 bytes"},
		{Entry{APIv3KeyEnv: "TEST_MERCHANTS_UNSET"}, "", "is not set"},
		{Entry{APIv3KeyFile: "k", APIv3KeyEnv: "TEST_MERCHANTS_KEY"}, "", "keep one"},
	} {
		got, err := tt.e.APIv3Key()
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || strings.Contains(err.Error(), "secret-short") {
				t.Errorf("%+v: got %v; want an error containing %q without the key", tt.e, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("%+v: got %q, %v; want %q", tt.e, got, err, tt.want)
		}
	}
}
