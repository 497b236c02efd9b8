package modelship

import (
	"encoding/json"
	"fmt"
	"time"
)

// Durations in the API are strings in Go's notation ("1s", "500ms"), not
// nanosecond integers. These JSON methods keep the Go fields as
// time.Duration while the wire shows readable values.

// jsonDuration is a time.Duration that marshals as a string and accepts a
// string or a number of nanoseconds.
type jsonDuration time.Duration

func (d jsonDuration) MarshalJSON() ([]byte, error) {
	return json.Marshal(time.Duration(d).String())
}

func (d *jsonDuration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		v, err := time.ParseDuration(s)
		if err != nil {
			return fmt.Errorf("duration %q: %w", s, err)
		}
		*d = jsonDuration(v)
		return nil
	}
	var n int64
	if err := json.Unmarshal(b, &n); err != nil {
		return fmt.Errorf("duration %s is neither a string like \"1s\" nor a number", b)
	}
	*d = jsonDuration(n)
	return nil
}

// MarshalJSON writes durations as strings.
func (s ServiceSettings) MarshalJSON() ([]byte, error) {
	type plain ServiceSettings
	return json.Marshal(struct {
		plain
		RefreshPeriod  jsonDuration `json:"refreshPeriod"`
		ScoringTimeout jsonDuration `json:"scoringTimeout"`
		MaxQueueWait   jsonDuration `json:"maxQueueWait"`
	}{plain(s), jsonDuration(s.RefreshPeriod), jsonDuration(s.ScoringTimeout), jsonDuration(s.MaxQueueWait)})
}

// UnmarshalJSON reads durations as strings (or nanoseconds).
func (s *ServiceSettings) UnmarshalJSON(b []byte) error {
	type plain ServiceSettings
	aux := struct {
		*plain
		RefreshPeriod  jsonDuration `json:"refreshPeriod"`
		ScoringTimeout jsonDuration `json:"scoringTimeout"`
		MaxQueueWait   jsonDuration `json:"maxQueueWait"`
	}{plain: (*plain)(s)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	s.RefreshPeriod, s.ScoringTimeout, s.MaxQueueWait = time.Duration(aux.RefreshPeriod), time.Duration(aux.ScoringTimeout), time.Duration(aux.MaxQueueWait)
	return nil
}

// MarshalJSON writes durations as strings.
func (p LivenessProbeSettings) MarshalJSON() ([]byte, error) {
	type plain LivenessProbeSettings
	return json.Marshal(struct {
		plain
		Period       jsonDuration `json:"period"`
		InitialDelay jsonDuration `json:"initialDelay"`
		Timeout      jsonDuration `json:"timeout"`
	}{plain(p), jsonDuration(p.Period), jsonDuration(p.InitialDelay), jsonDuration(p.Timeout)})
}

// UnmarshalJSON reads durations as strings (or nanoseconds).
func (p *LivenessProbeSettings) UnmarshalJSON(b []byte) error {
	type plain LivenessProbeSettings
	aux := struct {
		*plain
		Period       jsonDuration `json:"period"`
		InitialDelay jsonDuration `json:"initialDelay"`
		Timeout      jsonDuration `json:"timeout"`
	}{plain: (*plain)(p)}
	if err := json.Unmarshal(b, &aux); err != nil {
		return err
	}
	p.Period, p.InitialDelay, p.Timeout = time.Duration(aux.Period), time.Duration(aux.InitialDelay), time.Duration(aux.Timeout)
	return nil
}
