package gateway

import (
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/modelship/modelship/tracing"
)

// Status classes of the statistics and metric labels.
var classNames = [6]string{"other", "1xx", "2xx", "3xx", "4xx", "5xx"}

func classOf(status int) int {
	if c := status / 100; c >= 1 && c <= 5 {
		return c
	}
	return 0
}

// latencyBounds are the upper bounds of the in-memory latency histogram:
// 50 µs growing by 25 % per bucket up to about 2 minutes (67 buckets), so
// percentiles are within 12 % of the truth.
var latencyBounds = func() []time.Duration {
	var b []time.Duration
	for x := 50e-6; x < 150; x *= 1.25 {
		b = append(b, time.Duration(x*float64(time.Second)))
	}
	return b
}()

// versionState is the live state of one version that outlives route
// tables: its queue, replicas, counters and autoscaler memory. Counters
// are atomics; Prometheus children are resolved once here, so recording
// a request takes no lock.
type versionState struct {
	route, version string

	q      waitQueue
	queued atomic.Int64 // requests waiting for a slot

	mu       sync.Mutex // guards replicas (touched by Update only)
	replicas map[string]*replica

	byClass [6]atomic.Uint64
	latency []atomic.Uint64 // len(latencyBounds)+1
	latSum  atomic.Int64    // nanoseconds

	mirrorSent, mirrorDropped, mirrorFailed atomic.Uint64

	promCount [6]prometheus.Counter
	promDur   [6]prometheus.Observer
	promMir   [3]prometheus.Counter // sent, dropped, failed

	as autoscaleState
}

func (g *Gateway) newVersionState(route, version string) *versionState {
	st := &versionState{
		route:    route,
		version:  version,
		replicas: map[string]*replica{},
		latency:  make([]atomic.Uint64, len(latencyBounds)+1),
	}
	for i, c := range classNames {
		st.promCount[i] = g.metrics.requests.WithLabelValues(route, version, c)
		st.promDur[i] = g.metrics.duration.WithLabelValues(route, version, c)
	}
	for i, res := range []string{"sent", "dropped", "failed"} {
		st.promMir[i] = g.metrics.mirror.WithLabelValues(route, version, res)
	}
	return st
}

// record counts one finished request.
func (st *versionState) record(status int, d time.Duration) {
	c := classOf(status)
	st.byClass[c].Add(1)
	i := sort.Search(len(latencyBounds), func(i int) bool { return latencyBounds[i] >= d })
	st.latency[i].Add(1)
	st.latSum.Add(int64(d))
	st.promCount[c].Inc()
	st.promDur[c].Observe(d.Seconds())
}

// ReplicaStats is one replica in a VersionStats snapshot.
type ReplicaStats struct {
	ID       string `json:"id"`
	URL      string `json:"url"`
	Ready    bool   `json:"ready"`
	InFlight int64  `json:"inFlight"`
}

// LatencyBucket is one bucket of the latency histogram: the number of
// requests that took at most UpperBound and more than the previous bound.
// The last bucket's UpperBound is 0, meaning unbounded.
type LatencyBucket struct {
	UpperBound time.Duration `json:"upperBound"`
	Count      uint64        `json:"count"`
}

// VersionStats is a snapshot of one version's live statistics, counted
// since the version first appeared on this gateway. Requests counts
// scoring requests (live and mirrored) by status class ("2xx" ... "5xx",
// "other"); gateway-made answers (503 queue full, 504, 502) count as well,
// and 499 stands for callers that went away.
type VersionStats struct {
	Route         string            `json:"route"`
	Version       string            `json:"version"`
	Replicas      []ReplicaStats    `json:"replicas"`
	ReadyReplicas int               `json:"readyReplicas"`
	BusyReplicas  int               `json:"busyReplicas"`
	InFlight      int64             `json:"inFlight"`
	Queued        int64             `json:"queued"`
	Requests      map[string]uint64 `json:"requests"`
	Total         uint64            `json:"total"`
	MeanLatency   time.Duration     `json:"meanLatency"`
	P50           time.Duration     `json:"p50"`
	P95           time.Duration     `json:"p95"`
	P99           time.Duration     `json:"p99"`
	Latency       []LatencyBucket   `json:"latency"`
	MirrorSent    uint64            `json:"mirrorSent"`
	MirrorDropped uint64            `json:"mirrorDropped"`
	MirrorFailed  uint64            `json:"mirrorFailed"`
}

// Stats returns a snapshot of the statistics of version of route (a
// service's or endpoint's name), and false if the current table has no
// such version.
func (g *Gateway) Stats(route, version string) (VersionStats, bool) {
	r := g.table.Load().routes[route]
	if r == nil {
		return VersionStats{}, false
	}
	v := r.byName[version]
	if v == nil {
		return VersionStats{}, false
	}
	st := v.st
	s := VersionStats{
		Route:         route,
		Version:       version,
		ReadyReplicas: len(v.ready),
		Queued:        st.queued.Load(),
		Requests:      map[string]uint64{},
		MirrorSent:    st.mirrorSent.Load(),
		MirrorDropped: st.mirrorDropped.Load(),
		MirrorFailed:  st.mirrorFailed.Load(),
	}
	for _, ri := range v.all {
		rs := ReplicaStats{ID: ri.id, URL: ri.url, Ready: ri.ready}
		if ri.rep != nil {
			rs.InFlight = ri.rep.inflight.Load()
		}
		s.InFlight += rs.InFlight
		if ri.ready && rs.InFlight > 0 {
			s.BusyReplicas++
		}
		s.Replicas = append(s.Replicas, rs)
	}
	for i, name := range classNames {
		if n := st.byClass[i].Load(); n > 0 {
			s.Requests[name] = n
			s.Total += n
		}
	}
	counts := make([]uint64, len(st.latency))
	var n uint64
	for i := range st.latency {
		counts[i] = st.latency[i].Load()
		n += counts[i]
		if counts[i] > 0 {
			b := LatencyBucket{Count: counts[i]}
			if i < len(latencyBounds) {
				b.UpperBound = latencyBounds[i]
			}
			s.Latency = append(s.Latency, b)
		}
	}
	if n > 0 {
		s.MeanLatency = time.Duration(st.latSum.Load() / int64(n))
		s.P50 = quantile(counts, n, 0.50)
		s.P95 = quantile(counts, n, 0.95)
		s.P99 = quantile(counts, n, 0.99)
	}
	return s, true
}

// quantile interpolates linearly inside the bucket holding rank q·n.
func quantile(counts []uint64, n uint64, q float64) time.Duration {
	rank := q * float64(n)
	var cum float64
	for i, c := range counts {
		if c == 0 {
			continue
		}
		if cum+float64(c) >= rank {
			lo := time.Duration(0)
			if i > 0 {
				lo = latencyBounds[i-1]
			}
			if i >= len(latencyBounds) {
				return lo
			}
			hi := latencyBounds[i]
			frac := (rank - cum) / float64(c)
			return lo + time.Duration(frac*float64(hi-lo))
		}
		cum += float64(c)
	}
	return latencyBounds[len(latencyBounds)-1]
}

// metrics are the gateway's Prometheus metrics, registered on the injected
// registry. Gauges are computed at scrape time from the live state, so
// they cost nothing per request.
type metrics struct {
	g            *Gateway
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	mirror       *prometheus.CounterVec
	authFailures *prometheus.CounterVec
	scale        *prometheus.CounterVec

	inflightDesc, busyDesc, readyDesc, queuedDesc, replicaDesc, desiredDesc *prometheus.Desc
}

func newMetrics(g *Gateway) *metrics {
	lv := []string{"route", "version"}
	m := &metrics{
		g: g,
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelship_gateway_requests_total",
			Help: "Scoring requests by route, version and status class.",
		}, []string{"route", "version", "class"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "modelship_gateway_request_duration_seconds",
			Help:    "Scoring request latency at the front end (queue + replica), by route, version and status class.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120},
		}, []string{"route", "version", "class"}),
		mirror: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelship_gateway_mirror_requests_total",
			Help: "Mirrored request copies by route, target version and result (sent, dropped, failed).",
		}, []string{"route", "version", "result"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelship_gateway_auth_failures_total",
			Help: "Requests refused with 401 by route.",
		}, []string{"route"}),
		scale: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "modelship_gateway_autoscale_decisions_total",
			Help: "Autoscaler decisions that changed the replica count, by route, version and direction.",
		}, []string{"route", "version", "direction"}),
		inflightDesc: prometheus.NewDesc("modelship_gateway_inflight_requests", "Requests being served by the replicas of a version.", lv, nil),
		busyDesc:     prometheus.NewDesc("modelship_gateway_busy_replicas", "Ready replicas with at least one request in flight.", lv, nil),
		readyDesc:    prometheus.NewDesc("modelship_gateway_ready_replicas", "Ready replicas of a version.", lv, nil),
		queuedDesc:   prometheus.NewDesc("modelship_gateway_queued_requests", "Requests waiting for a free replica.", lv, nil),
		replicaDesc:  prometheus.NewDesc("modelship_gateway_replica_inflight_requests", "Requests in flight per replica.", []string{"route", "version", "replica"}, nil),
		desiredDesc:  prometheus.NewDesc("modelship_gateway_autoscale_desired_replicas", "The autoscaler's last desired replica count.", lv, nil),
	}
	cs := append([]prometheus.Collector{m.requests, m.duration, m.mirror, m.authFailures, m.scale, m}, g.telem.collectors()...)
	if g.tracer != nil {
		cs = append(cs, tracing.DroppedCollector("gateway"))
	}
	for _, c := range cs {
		if err := g.registry.Register(c); err != nil {
			g.log.Error("gateway: registering metrics", "err", err)
		}
	}
	return m
}

// Describe implements prometheus.Collector for the scrape-time gauges.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{m.inflightDesc, m.busyDesc, m.readyDesc, m.queuedDesc, m.replicaDesc, m.desiredDesc} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	t := m.g.table.Load()
	names := make([]string, 0, len(t.routes))
	for n := range t.routes {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		for _, v := range t.routes[n].versions {
			var inflight int64
			busy := 0
			for _, ri := range v.all {
				if ri.rep == nil {
					continue
				}
				l := ri.rep.inflight.Load()
				inflight += l
				if ri.ready && l > 0 {
					busy++
				}
				ch <- prometheus.MustNewConstMetric(m.replicaDesc, prometheus.GaugeValue, float64(l), n, v.name, ri.id)
			}
			ch <- prometheus.MustNewConstMetric(m.inflightDesc, prometheus.GaugeValue, float64(inflight), n, v.name)
			ch <- prometheus.MustNewConstMetric(m.busyDesc, prometheus.GaugeValue, float64(busy), n, v.name)
			ch <- prometheus.MustNewConstMetric(m.readyDesc, prometheus.GaugeValue, float64(len(v.ready)), n, v.name)
			ch <- prometheus.MustNewConstMetric(m.queuedDesc, prometheus.GaugeValue, float64(v.st.queued.Load()), n, v.name)
			if v.autoscale != nil {
				if s, ok := v.st.as.snapshot(); ok {
					ch <- prometheus.MustNewConstMetric(m.desiredDesc, prometheus.GaugeValue, float64(s.Desired), n, v.name)
				}
			}
		}
	}
}
