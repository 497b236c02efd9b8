package modelship

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSettingsDurationsAreStrings(t *testing.T) {
	s := DefaultServiceSettings(ComputeTypeAKS)
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"scoringTimeout":"1m0s"`, `"maxQueueWait":"500ms"`, `"refreshPeriod":"1s"`, `"period":"10s"`, `"initialDelay":"5m10s"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
	var back ServiceSettings
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.ScoringTimeout != time.Minute || back.Liveness.InitialDelay != 310*time.Second || back.CPU != s.CPU || back.AuthMode != s.AuthMode {
		t.Fatalf("round trip: %+v", back)
	}
	// Records written with nanoseconds still load.
	var old ServiceSettings
	if err := json.Unmarshal([]byte(`{"scoringTimeout": 60000000000, "liveness": {"period": 10000000000}}`), &old); err != nil || old.ScoringTimeout != time.Minute || old.Liveness.Period != 10*time.Second {
		t.Fatalf("nanoseconds: %+v %v", old, err)
	}
}
