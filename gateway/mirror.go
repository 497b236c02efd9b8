package gateway

import (
	"context"
	"io"
	"net/http"
	"time"
)

// mirrorJob is one copy of a live request for a mirror version.
type mirrorJob struct {
	v        *version
	method   string
	rawQuery string
	header   http.Header
	body     []byte
}

// mirror draws, for each mirror version other than the one serving the
// request, whether this request is copied to it, and queues the copies
// without blocking: a full queue drops the copy and counts it. Only
// requests whose body is in memory can be copied; the others are counted
// as dropped. The copy shares the caller's body bytes, which nothing
// modifies.
func (g *Gateway) mirror(rt *route, live *version, r *http.Request, header http.Header, body []byte, replayable bool) {
	for _, m := range rt.mirrors {
		if m == live || g.rand() >= m.mirror {
			continue
		}
		if !replayable || g.closed.Load() {
			m.st.mirrorDropped.Add(1)
			m.st.promMir[1].Inc()
			continue
		}
		j := &mirrorJob{v: m, method: r.Method, rawQuery: r.URL.RawQuery, header: header.Clone(), body: body}
		select {
		case g.mirrorQ <- j:
		default:
			m.st.mirrorDropped.Add(1)
			m.st.promMir[1].Inc()
		}
	}
}

func (g *Gateway) mirrorWorker() {
	for {
		select {
		case <-g.ctx.Done():
			return
		case j := <-g.mirrorQ:
			g.sendMirror(j)
		}
	}
}

// sendMirror sends one copy through the mirror version's own queue and
// replicas, discards the response, and records it in the version's
// statistics (a mirror version is a shadow: its latency and errors are
// what mirroring is for).
func (g *Gateway) sendMirror(j *mirrorJob) {
	st := j.v.st
	start := time.Now()
	rep, v, aerr := g.acquire(g.ctx, j.v, start.Add(j.v.queueWait))
	if aerr != nil {
		st.mirrorDropped.Add(1)
		st.promMir[1].Inc()
		return
	}
	defer st.release(rep)
	ctx, cancel := context.WithTimeout(g.ctx, v.timeout)
	defer cancel()
	resp, err := g.transport.RoundTrip(newOutbound(ctx, j.method, rep, "/score", j.rawQuery, j.header, j.body, nil, int64(len(j.body))))
	if err != nil {
		st.mirrorFailed.Add(1)
		st.promMir[2].Inc()
		if g.ctx.Err() == nil {
			status := http.StatusBadGateway
			if ctx.Err() != nil {
				status = http.StatusGatewayTimeout
			}
			st.record(status, time.Since(start))
		}
		return
	}
	_, _ = io.Copy(io.Discard, resp.Body) // drain so the connection is reused
	resp.Body.Close()
	status := resp.StatusCode
	if status == http.StatusInternalServerError {
		status = http.StatusBadGateway
	}
	st.record(status, time.Since(start))
	st.mirrorSent.Add(1)
	st.promMir[0].Inc()
}
