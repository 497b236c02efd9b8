package gateway

import (
	"context"
	"math"
	"sync"
	"time"
)

// Autoscaler defaults for unset AutoscaleSettings fields (spec §1.1).
const (
	DefaultRefreshPeriod     = time.Second
	DefaultTargetUtilization = 70
	DefaultScaleDownDelay    = 60 * time.Second
	DefaultMinReplicas       = 1
	DefaultMaxReplicas       = 10
)

// ScaleStatus is the autoscaler's last decision for a version.
type ScaleStatus struct {
	Route   string `json:"route"`
	Version string `json:"version"`
	// Replicas is the number of replicas in the route table at the
	// decision.
	Replicas int `json:"replicas"`
	// Busy is the mean demand over the refresh period, in replicas: busy
	// replicas plus queued requests divided by the per-replica limit.
	Busy float64 `json:"busy"`
	// Utilization is Busy / Replicas, in percent.
	Utilization float64 `json:"utilization"`
	// Desired is ceil(Busy / target) clamped to min..max.
	Desired int `json:"desired"`
	// Requested is the replica count last asked of the Scaler.
	Requested int       `json:"requested"`
	Action    string    `json:"action"` // "up", "down" or "hold"
	Reason    string    `json:"reason"`
	At        time.Time `json:"at"`
	Err       string    `json:"error,omitempty"`
}

// autoscaleState is a version's autoscaler memory. The autoscaler loop is
// its only writer; ScaleStatus reads under mu.
type autoscaleState struct {
	mu          sync.Mutex
	sum         float64
	samples     int
	periodStart time.Time
	lowSince    time.Time // zero while utilization is at or above target
	lowDesired  int       // the highest desired count seen while low
	requested   int       // 0 until the first decision
	status      ScaleStatus
	has         bool
}

func (a *autoscaleState) snapshot() (ScaleStatus, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.status, a.has
}

// ScaleStatus returns the autoscaler's last decision for version of route,
// and false if there is none (no autoscaling, or no decision yet).
func (g *Gateway) ScaleStatus(route, version string) (ScaleStatus, bool) {
	r := g.table.Load().routes[route]
	if r == nil || r.byName[version] == nil {
		return ScaleStatus{}, false
	}
	return r.byName[version].st.as.snapshot()
}

func (g *Gateway) autoscaleLoop() {
	tk := time.NewTicker(g.cfg.AutoscaleInterval)
	defer tk.Stop()
	for {
		select {
		case <-g.ctx.Done():
			return
		case <-tk.C:
			g.autoscaleTick(g.ctx, g.now())
		}
	}
}

// autoscaleTick samples every autoscaled version and decides for those
// whose refresh period has passed. Sampling: each tick adds the version's
// current demand (busy replicas, plus queued requests in replicas); a
// decision uses the mean over the period, which is steadier than a single
// sample and, unlike the maximum, does not react to one burst.
func (g *Gateway) autoscaleTick(ctx context.Context, now time.Time) {
	t := g.table.Load()
	for _, r := range t.routes {
		for _, v := range r.versions {
			if v.autoscale == nil {
				continue
			}
			busy := 0
			for _, rep := range v.ready {
				if rep.inflight.Load() > 0 {
					busy++
				}
			}
			demand := float64(busy) + math.Ceil(float64(v.st.queued.Load())/float64(v.maxConc))
			a := &v.st.as
			a.mu.Lock()
			if a.periodStart.IsZero() {
				// Each sample stands for the interval before it.
				a.periodStart = now.Add(-g.sampleInterval())
			}
			a.sum += demand
			a.samples++
			refresh := v.autoscale.RefreshPeriod
			if refresh <= 0 {
				refresh = DefaultRefreshPeriod
			}
			due := now.Sub(a.periodStart) >= refresh
			a.mu.Unlock()
			if due {
				g.decide(ctx, r, v, now)
			}
		}
	}
}

// decide applies the algorithm of spec §3.5: utilization = busy /
// replicas; desired = ceil(busy / target) within min..max. Up at once;
// down only once utilization has stayed below target for ScaleDownDelay,
// to the highest count desired during that window.
func (g *Gateway) decide(ctx context.Context, r *route, v *version, now time.Time) {
	s := v.autoscale
	target := float64(s.TargetUtilization)
	if target <= 0 || target > 100 {
		target = DefaultTargetUtilization
	}
	minR, maxR := s.MinReplicas, s.MaxReplicas
	if minR <= 0 {
		minR = DefaultMinReplicas
	}
	if maxR <= 0 {
		maxR = DefaultMaxReplicas
	}
	maxR = max(maxR, minR)
	delay := s.ScaleDownDelay
	if delay <= 0 {
		delay = DefaultScaleDownDelay
	}

	a := &v.st.as
	a.mu.Lock()
	busy := 0.0
	if a.samples > 0 {
		busy = a.sum / float64(a.samples)
	}
	a.sum, a.samples, a.periodStart = 0, 0, now
	replicas := len(v.all)
	util := 0.0
	switch {
	case replicas > 0:
		util = 100 * busy / float64(replicas)
	case busy > 0:
		util = math.Inf(1)
	}
	desired := int(math.Ceil(busy/(target/100) - 1e-9))
	desired = min(max(desired, minR), maxR)
	if a.requested == 0 {
		a.requested = replicas
	}
	st := ScaleStatus{
		Route: r.name, Version: v.name, Replicas: replicas, Busy: busy,
		Utilization: util, Desired: desired, Action: "hold", At: now,
	}
	n := 0
	switch {
	case desired > a.requested:
		a.lowSince = time.Time{}
		n = desired
		st.Action, st.Reason = "up", "utilization above target or below minimum replicas"
	case util < target && desired < a.requested:
		if a.lowSince.IsZero() {
			a.lowSince, a.lowDesired = now, desired
		}
		a.lowDesired = max(a.lowDesired, desired)
		if now.Sub(a.lowSince) >= delay {
			n = a.lowDesired
			a.lowSince = now // a further step down waits a full delay again
			a.lowDesired = desired
			st.Action, st.Reason = "down", "utilization below target for the scale-down delay"
		} else {
			st.Reason = "utilization below target; waiting for the scale-down delay"
		}
	default:
		a.lowSince = time.Time{}
		st.Reason = "utilization at target"
	}
	a.mu.Unlock()

	if n != 0 {
		var err error
		if g.cfg.Scaler != nil {
			sctx, cancel := context.WithTimeout(ctx, g.cfg.ScalerTimeout)
			err = g.cfg.Scaler.SetReplicas(sctx, r.workspace, r.name, v.name, n)
			cancel()
		}
		if err != nil {
			st.Err = err.Error()
			g.log.Error("gateway: autoscaler could not set replicas", "route", r.name, "version", v.name, "replicas", n, "err", err)
		} else {
			a.mu.Lock()
			a.requested = n
			a.mu.Unlock()
			g.metrics.scale.WithLabelValues(r.name, v.name, st.Action).Inc()
			g.log.Info("gateway: autoscale", "route", r.name, "version", v.name, "action", st.Action,
				"from", replicas, "to", n, "busy", busy, "utilization", util, "target", target)
		}
	} else {
		g.log.Debug("gateway: autoscale hold", "route", r.name, "version", v.name, "replicas", replicas, "busy", busy, "utilization", util, "desired", desired)
	}
	a.mu.Lock()
	st.Requested = a.requested
	a.status, a.has = st, true
	a.mu.Unlock()
}

// sampleInterval is the autoscaler's sampling interval, also when its loop
// is disabled (tests drive autoscaleTick themselves at that pace).
func (g *Gateway) sampleInterval() time.Duration {
	if g.cfg.AutoscaleInterval > 0 {
		return g.cfg.AutoscaleInterval
	}
	return DefaultAutoscaleInterval
}
