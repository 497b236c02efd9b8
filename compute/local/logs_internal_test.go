package local

import (
	"strings"
	"testing"
)

// The startup section ends at serve-model's "runtime ready" line, even when
// the readiness probe answers before the output carrying init()'s lines
// has been read.
func TestReplicaLogInitEndsAtReadyLine(t *testing.T) {
	l := newReplicaLog("")
	l.line(`level=INFO msg=serving addr=http://127.0.0.1:1`)
	l.markReady() // the probe wins the race
	l.line(`00000000-0000-0000-0000-000000000000: init done`)
	l.line(`level=INFO msg="runtime ready" runtime=python took=70ms`)
	l.line(`abc: a request's print`)
	got := strings.Join(l.initTail(0), "\n")
	if !strings.Contains(got, "init done") || !strings.Contains(got, "runtime ready") || strings.Contains(got, "a request's print") {
		t.Errorf("init section:\n%s", got)
	}
}
