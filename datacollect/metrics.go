package datacollect

import "github.com/prometheus/client_golang/prometheus"

// Collectors returns the Writer's Prometheus metrics, read from its
// counters at scrape time:
//
//	modelship_modelserver_datacollect_records_total      collect() calls written
//	modelship_modelserver_datacollect_rows_total         CSV rows written
//	modelship_modelserver_datacollect_requests_total     request/response lines written
//	modelship_modelserver_datacollect_dropped_total{reason="queue_full"|"write_error"|"closed"}
//	modelship_modelserver_datacollect_flushes_total      fsync rounds
func (w *Writer) Collectors() []prometheus.Collector {
	counter := func(name, help string, labels prometheus.Labels, f func() uint64) prometheus.Collector {
		return prometheus.NewCounterFunc(prometheus.CounterOpts{
			Namespace: "modelship", Subsystem: "modelserver", Name: name, Help: help, ConstLabels: labels,
		}, func() float64 { return float64(f()) })
	}
	const dropHelp = "Collected records dropped: queue full (scoring never waits), write errors, or after shutdown."
	return []prometheus.Collector{
		counter("datacollect_records_total", "ModelDataCollector.collect calls written to CSV.", nil, w.records.Load),
		counter("datacollect_rows_total", "ModelDataCollector rows written to CSV.", nil, w.rows.Load),
		counter("datacollect_requests_total", "Sampled request/response payloads written.", nil, w.requests.Load),
		counter("datacollect_dropped_total", dropHelp, prometheus.Labels{"reason": "queue_full"}, w.dropFull.Load),
		counter("datacollect_dropped_total", dropHelp, prometheus.Labels{"reason": "write_error"}, w.dropError.Load),
		counter("datacollect_dropped_total", dropHelp, prometheus.Labels{"reason": "closed"}, w.dropClose.Load),
		counter("datacollect_flushes_total", "Batches of collected data fsynced.", nil, w.flushes.Load),
	}
}
