package modelserver_test

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// loadResult is the outcome of one or more load runs.
type loadResult struct {
	requests  int
	elapsed   time.Duration
	p50, p99  time.Duration
	latencies []time.Duration // sorted
}

// add merges another run into r.
func (r *loadResult) add(o loadResult) {
	r.requests += o.requests
	r.elapsed += o.elapsed
	r.latencies = append(r.latencies, o.latencies...)
	slices.Sort(r.latencies)
	r.p50 = r.latencies[len(r.latencies)*50/100]
	r.p99 = r.latencies[len(r.latencies)*99/100]
}

// rps returns the requests per second of the run.
func (r loadResult) rps() float64 { return float64(r.requests) / r.elapsed.Seconds() }

// String formats the result for logs.
func (r loadResult) String() string {
	return fmt.Sprintf("%d requests in %v: %.0f req/s, p50 %v, p99 %v", r.requests, r.elapsed.Round(time.Millisecond),
		r.rps(), r.p50, r.p99)
}

// runLoad sends n copies of the raw HTTP/1.1 request req to addr over
// conns keep-alive connections, each client sending its next request when
// the previous answer arrived (a closed loop). With rate > 0 the clients
// together send rate requests per second instead, each on a fixed
// schedule; latency counts from the actual send, so the client's own
// timer lateness is not charged to the server. It stops early at
// maxTime.
// Every answer must have status 200. The client is a minimal HTTP/1.1
// reader so that the load generator costs little CPU next to the server.
func runLoad(addr string, req []byte, conns, n int, rate float64, maxTime time.Duration) (loadResult, error) {
	var (
		next     atomic.Int64
		mu       sync.Mutex
		lats     = make([]time.Duration, 0, n)
		firstErr error
		wg       sync.WaitGroup
	)
	deadline := time.Now().Add(maxTime)
	start := time.Now()
	var interval time.Duration
	if rate > 0 {
		interval = time.Duration(float64(conns) / rate * float64(time.Second))
	}
	for i := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			offset := interval * time.Duration(i) / time.Duration(conns)
			local, err := clientLoop(addr, req, &next, int64(n), start.Add(offset), interval, deadline)
			mu.Lock()
			defer mu.Unlock()
			lats = append(lats, local...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if firstErr != nil {
		return loadResult{}, firstErr
	}
	if len(lats) == 0 {
		return loadResult{}, errors.New("no request completed")
	}
	slices.Sort(lats)
	return loadResult{
		requests:  len(lats),
		elapsed:   elapsed,
		p50:       lats[len(lats)*50/100],
		p99:       lats[len(lats)*99/100],
		latencies: lats,
	}, nil
}

// clientLoop is one client on its own connection: closed-loop when
// interval is 0, else sending at first, first+interval, ...
func clientLoop(addr string, req []byte, next *atomic.Int64, n int64, first time.Time, interval time.Duration,
	deadline time.Time) ([]time.Duration, error) {
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	br := bufio.NewReaderSize(conn, 64<<10)
	var lats []time.Duration
	scheduled := first
	for next.Add(1) <= n {
		t0 := time.Now()
		if t0.After(deadline) {
			break
		}
		if interval > 0 {
			time.Sleep(time.Until(scheduled))
			scheduled = scheduled.Add(interval)
			t0 = time.Now()
		}
		if _, err := conn.Write(req); err != nil {
			return lats, err
		}
		status, err := readResponse(br)
		if err != nil {
			return lats, err
		}
		if status != 200 {
			return lats, fmt.Errorf("status %d", status)
		}
		lats = append(lats, time.Since(t0))
	}
	return lats, nil
}

// readResponse reads one HTTP/1.1 response with a Content-Length and
// discards its body.
func readResponse(br *bufio.Reader) (int, error) {
	line, err := br.ReadSlice('\n')
	if err != nil {
		return 0, err
	}
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.1 ")) {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	status, err := strconv.Atoi(string(line[9:12]))
	if err != nil {
		return 0, fmt.Errorf("bad status line %q", line)
	}
	length := -1
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return 0, err
		}
		if len(line) <= 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && bytes.EqualFold(k, []byte("Content-Length")) {
			length, err = strconv.Atoi(string(bytes.TrimSpace(v)))
			if err != nil {
				return 0, fmt.Errorf("bad Content-Length %q", v)
			}
		}
	}
	if length < 0 {
		return 0, errors.New("response without Content-Length")
	}
	if _, err := br.Discard(length); err != nil {
		return 0, fmt.Errorf("reading body: %w", err)
	}
	return status, nil
}

// rawPost returns a raw keep-alive HTTP/1.1 POST request.
func rawPost(path, contentType string, body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n",
		path, contentType, len(body))
	b.Write(body)
	return b.Bytes()
}
