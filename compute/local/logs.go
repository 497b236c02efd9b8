package local

import (
	"bufio"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/modelship/modelship/modelserver"
)

// ring keeps the last n lines.
type ring struct {
	mu    sync.Mutex
	lines []string
	next  int
	full  bool
}

func newRing(n int) *ring { return &ring{lines: make([]string, n)} }

func (r *ring) add(line string) {
	r.mu.Lock()
	r.lines[r.next] = line
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
}

// tail returns the last n lines (all when n <= 0), oldest first.
func (r *ring) tail(n int) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var all []string
	if r.full {
		all = append(append(all, r.lines[r.next:]...), r.lines[:r.next]...)
	} else {
		all = append(all, r.lines[:r.next]...)
	}
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}

// replicaLog collects a replica's output: every line to the ring and the
// log file, and the lines before the replica first became ready to init.
type replicaLog struct {
	all  *ring
	init *ring

	mu       sync.Mutex
	initDone bool
	file     *os.File
}

func newReplicaLog(path string) *replicaLog {
	l := &replicaLog{all: newRing(5000), init: newRing(2000)}
	if path != "" {
		if f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600); err == nil {
			l.file = f
		}
	}
	return l
}

// readyLine is how serve-model's "runtime ready" log line reads (slog text).
var readyLine = `msg="` + modelserver.RuntimeReadyMessage + `"`

func (l *replicaLog) line(s string) {
	l.all.add(s)
	l.mu.Lock()
	if !l.initDone {
		l.init.add(s)
		// The startup section ends with serve-model's own "runtime
		// ready" line: the output is ordered, the probe is not.
		if strings.Contains(s, readyLine) {
			l.initDone = true
		}
	}
	if l.file != nil {
		l.file.WriteString(s + "\n")
	}
	l.mu.Unlock()
}

// markReady is called when the replica answers its readiness probe. The
// startup section normally ends at serve-model's "runtime ready" line
// (which the probe may overtake); a replica that never writes one has its
// section end 2 s after it is ready.
func (l *replicaLog) markReady() {
	l.mu.Lock()
	init := l.init
	l.mu.Unlock()
	time.AfterFunc(2*time.Second, func() {
		l.mu.Lock()
		if l.init == init { // not restarted meanwhile
			l.initDone = true
		}
		l.mu.Unlock()
	})
}

// restartInit starts a new init section (after a restart).
func (l *replicaLog) restartInit() {
	l.mu.Lock()
	l.initDone = false
	l.init = newRing(2000)
	l.mu.Unlock()
}

func (l *replicaLog) initTail(n int) []string {
	l.mu.Lock()
	r := l.init
	l.mu.Unlock()
	return r.tail(n)
}

// consume reads lines from r until EOF.
func (l *replicaLog) consume(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l.line(sc.Text())
	}
}

func (l *replicaLog) close() {
	l.mu.Lock()
	if l.file != nil {
		l.file.Close()
		l.file = nil
	}
	l.mu.Unlock()
}
