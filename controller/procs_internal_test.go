package controller

import "testing"

func TestReplicaProcs(t *testing.T) {
	for _, tc := range []struct {
		cpu, limit float64
		want       int
	}{
		{0.1, 0, 1},
		{1, 0, 1},
		{1.5, 0, 2},
		{0.5, 3, 3},
		{2, 2.2, 3},
		{4, 0, 4},
	} {
		if got := replicaProcs(tc.cpu, tc.limit); got != tc.want {
			t.Errorf("replicaProcs(%g, %g) = %d, want %d", tc.cpu, tc.limit, got, tc.want)
		}
	}
}
