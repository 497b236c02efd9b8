// Package bench holds modelship's end-to-end benchmarks: a loopback load
// generator (closed-loop max throughput and vegeta-driven fixed-rate open
// loop) and the tests that drive the real binary with it. The tests run only
// with MODELSHIP_BENCH=1; scripts/bench.sh (`make bench`) runs them and
// writes BENCHMARKS.md.
package bench

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

// Target is one HTTP request to repeat.
type Target struct {
	Name   string
	URL    string
	Body   []byte
	Header http.Header
}

// Result summarizes one load run.
type Result struct {
	Requests int
	Errors   int // transport errors and non-2xx answers
	Codes    map[int]int
	Elapsed  time.Duration
	P50, P99 time.Duration
	FirstErr string
}

// RPS is the completed requests per second.
func (r Result) RPS() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Requests) / r.Elapsed.Seconds()
}

func (r Result) String() string {
	return fmt.Sprintf("%d req in %v: %.0f req/s, p50 %v, p99 %v, errors %d %v",
		r.Requests, r.Elapsed.Round(time.Millisecond), r.RPS(), r.P50, r.P99, r.Errors, r.Codes)
}

// newTransport is a keep-alive transport with room for conns idle
// connections to one host.
func newTransport(conns int) *http.Transport {
	return &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		MaxConnsPerHost:     conns,
		IdleConnTimeout:     30 * time.Second,
		DisableCompression:  true,
	}
}

// ClosedLoop runs workers clients that each send a request as soon as the
// previous one is answered, until maxRequests are sent in total, maxTime has
// passed or ctx is done, whichever comes first. Latencies are exact.
func ClosedLoop(ctx context.Context, t Target, workers, maxRequests int, maxTime time.Duration) Result {
	tr := newTransport(workers)
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	ctx, cancel := context.WithTimeout(ctx, maxTime)
	defer cancel()

	var (
		sent     atomic.Int64
		mu       sync.Mutex
		lats     = make([]time.Duration, 0, min(maxRequests, 1<<20))
		codes    = map[int]int{}
		errs     int
		firstErr string
		wg       sync.WaitGroup
	)
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, 1024)
			localCodes := map[int]int{}
			localErrs := 0
			var localFirst string
			for ctx.Err() == nil && sent.Add(1) <= int64(maxRequests) {
				code, d, err := do(ctx, client, t)
				if ctx.Err() != nil && err != nil {
					break // cut off by the time bound, not a failure
				}
				local = append(local, d)
				localCodes[code]++
				if err != nil || code < 200 || code > 299 {
					localErrs++
					if localFirst == "" {
						localFirst = fmt.Sprintf("status %d: %v", code, err)
					}
				}
			}
			mu.Lock()
			lats = append(lats, local...)
			for c, n := range localCodes {
				codes[c] += n
			}
			errs += localErrs
			if firstErr == "" {
				firstErr = localFirst
			}
			mu.Unlock()
		}()
	}
	wg.Wait()
	res := Result{Requests: len(lats), Errors: errs, Codes: codes, Elapsed: time.Since(start), FirstErr: firstErr}
	res.P50, res.P99 = quantiles(lats)
	return res
}

// do sends one request and drains the answer.
func do(ctx context.Context, client *http.Client, t Target) (int, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(t.Body))
	if err != nil {
		return 0, 0, err
	}
	for k, v := range t.Header {
		req.Header[k] = v
	}
	start := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		return 0, time.Since(start), err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode, time.Since(start), err
}

func quantiles(lats []time.Duration) (p50, p99 time.Duration) {
	if len(lats) == 0 {
		return 0, 0
	}
	slices.Sort(lats)
	at := func(q float64) time.Duration { return lats[min(int(q*float64(len(lats))), len(lats)-1)] }
	return at(0.50), at(0.99)
}

// OpenLoop sends requests at a fixed rate for d with vegeta, whatever the
// answers' latency (open loop: a slow server does not slow the sender, so
// queueing shows in the latencies). Latencies are vegeta's estimates.
func OpenLoop(ctx context.Context, t Target, rate int, d time.Duration) Result {
	// vegeta's own client would leave its keep-alive connections open
	// after the run, and the server keeps a goroutine and buffers for each
	// (the idle-memory rows after the load would count them): own the
	// transport and close them at the end.
	tr := newTransport(256)
	defer tr.CloseIdleConnections()
	atk := vegeta.NewAttacker(
		vegeta.Workers(8),
		vegeta.MaxWorkers(256),
		vegeta.Client(&http.Client{Transport: tr, Timeout: 30 * time.Second}),
	)
	vt := vegeta.Target{Method: http.MethodPost, URL: t.URL, Body: t.Body, Header: t.Header}
	var m vegeta.Metrics
	results := atk.Attack(vegeta.NewStaticTargeter(vt), vegeta.Rate{Freq: rate, Per: time.Second}, d, t.Name)
	stop := context.AfterFunc(ctx, func() { atk.Stop() })
	defer stop()
	res := Result{Codes: map[int]int{}}
	for r := range results {
		m.Add(r)
		res.Codes[int(r.Code)]++
		if r.Error != "" || r.Code < 200 || r.Code > 299 {
			res.Errors++
			if res.FirstErr == "" {
				res.FirstErr = fmt.Sprintf("status %d: %s", r.Code, r.Error)
			}
		}
	}
	m.Close()
	res.Requests = int(m.Requests)
	res.Elapsed = m.Duration + m.Wait
	res.P50, res.P99 = m.Latencies.P50, m.Latencies.P99
	return res
}
