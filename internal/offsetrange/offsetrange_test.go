package offsetrange_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/wxterm/wxterm/internal/offsetrange"
)

func TestParse(t *testing.T) {
	for _, tt := range []struct {
		in      string
		want    map[int][2]int64
		wantErr string
	}{
		{"0:100-200,3:0-50", map[int][2]int64{0: {100, 200}, 3: {0, 50}}, ""},
		{" 1:5-5 , ", map[int][2]int64{1: {5, 5}}, ""},
		{"1:0-5,1:6-9", nil, "partition 1 given twice"},
		{"0:5-1", nil, "want partition:start-end"},
		{"x", nil, "want partition:start-end"},
		{"-1:0-1", nil, "want partition:start-end"},
		{"0:-1-2", nil, "want partition:start-end"},
		{" , ", nil, "want partition:start-end"},
	} {
		got, err := offsetrange.Parse(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Parse(%q): got %v, %v; want an error containing %q", tt.in, got, err, tt.wantErr)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Parse(%q): got %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestWindow(t *testing.T) {
	for _, tt := range []struct {
		from, to string
		wantErr  string
	}{
		{"2026-11-22T10:00:00Z", "2026-11-22T11:00:00Z", ""},
		{"2026-11-22T10:00:00Z", "", ""},
		{"", "2026-11-22T11:00:00Z", ""},
		{"yesterday", "", "-from: "},
		{"", "soon", "-to: "},
		{"2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z", "-to must be after -from"},
	} {
		start, end, err := offsetrange.Window(tt.from, tt.to, "-from", "-to")
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Window(%q, %q): got %v; want an error containing %q", tt.from, tt.to, err, tt.wantErr)
			}
			continue
		}
		if err != nil || start.IsZero() != (tt.from == "") || end.IsZero() != (tt.to == "") {
			t.Errorf("Window(%q, %q): got %v, %v, %v; want the times given", tt.from, tt.to, start, end, err)
		}
	}
}
