package gateway

import (
	"context"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// replica is the live state of one replica; it outlives route tables so
// that its in-flight count stays right across swaps.
type replica struct {
	id           string
	scheme, host string
	inflight     atomic.Int64
	suspectUntil atomic.Int64 // unix nanoseconds
}

func (r *replica) suspect(now int64) bool { return r.suspectUntil.Load() > now }

// tryAcquire takes a request slot on the ready replica with the fewest
// outstanding requests that is below the version's concurrency limit,
// avoiding suspect replicas (ones that just refused a connection): while
// any healthy replica exists the request waits for it rather than going to
// a suspect one; suspects are used only when every replica is suspect. It
// is lock-free:
// a compare-and-swap on the chosen replica's counter, retried a few times
// if another request won the race. It returns nil when every replica is
// at its limit (or there is none).
func (v *version) tryAcquire() *replica {
	n := len(v.ready)
	if n == 0 {
		return nil
	}
	now := time.Now().UnixNano()
	for range 8 {
		start := 0
		if n > 1 {
			start = rand.IntN(n) // spread ties without shared state
		}
		var best, bestSuspect *replica
		bestLoad, bestSuspectLoad := v.maxConc, v.maxConc
		healthy := false
		for i := range n {
			r := v.ready[(start+i)%n]
			suspect := r.suspect(now)
			healthy = healthy || !suspect
			l := r.inflight.Load()
			if l >= v.maxConc {
				continue
			}
			if suspect {
				if l < bestSuspectLoad {
					bestSuspect, bestSuspectLoad = r, l
				}
				continue
			}
			if l < bestLoad {
				best, bestLoad = r, l
			}
		}
		if best == nil && !healthy {
			best, bestLoad = bestSuspect, bestSuspectLoad
		}
		if best == nil {
			return nil
		}
		if best.inflight.CompareAndSwap(bestLoad, bestLoad+1) {
			return best
		}
	}
	return nil
}

// release gives back a slot taken by tryAcquire and wakes one waiter.
func (st *versionState) release(r *replica) {
	r.inflight.Add(-1)
	st.q.notifyOne()
}

// waitQueue is the FIFO of requests waiting for a slot on a version. The
// fast path (nobody waiting) costs one atomic load.
type waitQueue struct {
	n       atomic.Int64 // waiters, read without the lock
	mu      sync.Mutex
	waiters []chan struct{}
}

func (q *waitQueue) add() chan struct{} {
	ch := make(chan struct{}, 1)
	q.mu.Lock()
	q.waiters = append(q.waiters, ch)
	q.n.Add(1)
	q.mu.Unlock()
	return ch
}

// remove takes ch out of the queue; it reports false if ch was already
// woken (popped), in which case the caller owns a wake-up it must pass on
// if it does not use it.
func (q *waitQueue) remove(ch chan struct{}) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, c := range q.waiters {
		if c == ch {
			q.waiters = append(q.waiters[:i], q.waiters[i+1:]...)
			q.n.Add(-1)
			return true
		}
	}
	return false
}

func (q *waitQueue) notifyOne() {
	if q.n.Load() == 0 {
		return
	}
	q.mu.Lock()
	if len(q.waiters) > 0 {
		ch := q.waiters[0]
		q.waiters[0] = nil
		q.waiters = q.waiters[1:]
		q.n.Add(-1)
		ch <- struct{}{}
	}
	q.mu.Unlock()
}

func (q *waitQueue) notifyAll() {
	q.mu.Lock()
	for _, ch := range q.waiters {
		ch <- struct{}{}
	}
	q.n.Add(-int64(len(q.waiters)))
	q.waiters = nil
	q.mu.Unlock()
}

// Reasons acquire fails.
type acquireError struct {
	noReplicas bool // no ready replica during the whole wait
	canceled   bool // the caller went away
}

// acquire returns a replica slot for version v, waiting up to v.queueWait
// (from start) in the version's FIFO when every replica is at its limit or
// none is ready. Each attempt uses the version as found in the current
// table, so replicas published while waiting are used at once; if the
// version has left the table, the replicas it had when the request was
// routed are used (the control plane drains them before stopping them).
func (g *Gateway) acquire(ctx context.Context, v *version, deadline time.Time) (*replica, *version, *acquireError) {
	st := v.st
	cur := g.currentVersion(v)
	if st.q.n.Load() == 0 {
		if r := cur.tryAcquire(); r != nil {
			return r, cur, nil
		}
	}
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	st.queued.Add(1)
	defer st.queued.Add(-1)
	sawReady := len(cur.ready) > 0
	for {
		ch := st.q.add()
		// Retry after joining the queue: a slot freed between the failed
		// attempt and add would otherwise wake nobody.
		cur = g.currentVersion(v)
		sawReady = sawReady || len(cur.ready) > 0
		if r := cur.tryAcquire(); r != nil {
			if !st.q.remove(ch) {
				st.q.notifyOne() // pass on the wake-up we were given
			}
			return r, cur, nil
		}
		wait := time.Until(deadline)
		if wait <= 0 {
			if !st.q.remove(ch) {
				st.q.notifyOne()
			}
			return nil, cur, &acquireError{noReplicas: !sawReady}
		}
		if timer == nil {
			timer = time.NewTimer(wait)
		} else {
			timer.Reset(wait)
		}
		select {
		case <-ch:
		case <-timer.C:
		case <-ctx.Done():
			if !st.q.remove(ch) {
				st.q.notifyOne()
			}
			return nil, cur, &acquireError{canceled: true}
		}
	}
}

// currentVersion returns v as found in the current table, or v itself if
// it is no longer there.
func (g *Gateway) currentVersion(v *version) *version {
	if r := g.table.Load().routes[v.route.name]; r != nil {
		if cv := r.byName[v.name]; cv != nil && cv.st == v.st {
			return cv
		}
	}
	return v
}
