package main

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseTasks(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want map[string]float64
		err  string
	}{
		{"inpaint=1,colorize=0.5", map[string]float64{"inpaint": 1, "colorize": 0.5}, ""},
		{" contrastive ", map[string]float64{"contrastive": 1}, ""},
		{"inpaint=x", nil, `weight "x" is not a number`},
		{",", nil, "empty"},
	} {
		got, err := parseTasks(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseTasks(%q): err = %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseTasks(%q) = %v, %v; want %v", tc.in, got, err, tc.want)
		}
	}
}
