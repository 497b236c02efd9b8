package modelship_test

import (
	"testing"

	"github.com/modelship/modelship"
)

func TestRequestIDHeaders(t *testing.T) {
	for _, tc := range []struct {
		id, ms, client     string
		wantMS, wantClient string
	}{
		{"gen", "", "", "gen", ""},
		{"r1", "", "", "r1", ""},
		{"gen", "my-req-1", "", "my-req-1", "my-req-1"},
		{"gen", "", "client-1", "client-1", "client-1"},
		{"r1", "ms-1", "client-1", "ms-1", "client-1"},
	} {
		ms, client := modelship.RequestIDHeaders(tc.id, tc.ms, tc.client)
		if ms != tc.wantMS || client != tc.wantClient {
			t.Errorf("RequestIDHeaders(%q, %q, %q) = %q, %q; want %q, %q", tc.id, tc.ms, tc.client, ms, client, tc.wantMS, tc.wantClient)
		}
	}
}
