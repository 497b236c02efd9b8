package modelserver

import (
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics holds the server's Prometheus metrics. Observers for the common
// case (a route answering 200) are resolved once, so the hot path does no
// label lookup.
type metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	handler  http.Handler
	routes   map[string]*routeObservers
}

// routeObservers are the pre-resolved metrics of one route.
type routeObservers struct {
	latency prometheus.Observer
	ok      prometheus.Counter
}

// newMetrics registers the server's metrics on reg. The busy-worker and
// queue-length gauges read rt.Busy at scrape time.
func newMetrics(reg *prometheus.Registry, rt Runtime) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: "requests_total",
			Help: "HTTP requests served, by route and status code.",
		}, []string{"route", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: "request_duration_seconds",
			Help:    "Time to serve an HTTP request, by route.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"route"}),
		handler: promhttp.HandlerFor(reg, promhttp.HandlerOpts{}),
		routes:  make(map[string]*routeObservers, numRouteLabels),
	}
	busy := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "modelship", Subsystem: "modelserver", Name: "busy_workers",
		Help: "Requests the runtime is processing now.",
	}, func() float64 { active, _ := rt.Busy(); return float64(active) })
	queued := prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: "modelship", Subsystem: "modelserver", Name: "queue_length",
		Help: "Requests waiting for a free runtime worker.",
	}, func() float64 { _, q := rt.Busy(); return float64(q) })
	reg.MustRegister(m.requests, m.latency, busy, queued)

	for _, r := range []string{routeHealth, routeScore, routeSwagger, routeMetrics, routeV2, routeV2Live,
		routeV2Ready, routeModelMeta, routeModelReady, routeModelInfer, routeNotFound} {
		m.routes[r] = &routeObservers{
			latency: m.latency.WithLabelValues(r),
			ok:      m.requests.WithLabelValues(r, "200"),
		}
	}
	return m
}

// observe records one request.
func (m *metrics) observe(route string, status int, d time.Duration) {
	rm := m.routes[route]
	rm.latency.Observe(d.Seconds())
	if status == http.StatusOK {
		rm.ok.Inc()
		return
	}
	m.requests.WithLabelValues(route, strconv.Itoa(status)).Inc()
}

// serve answers GET /metrics. The status is reported as 200: the
// Prometheus handler writes its own errors.
func (m *metrics) serve(w http.ResponseWriter, r *http.Request) int {
	m.handler.ServeHTTP(w, r)
	return http.StatusOK
}
