package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
)

// rssKB returns VmRSS and VmHWM (peak) of a process in KiB.
func rssKB(pid int) (rss, hwm int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		v, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = v
		case "VmHWM:":
			hwm = v
		}
	}
	return rss, hwm
}

// BenchmarkRegistryLargeFolder registers and downloads a folder model of
// MODELSHIP_BENCH_MB megabytes (default 1024) through the real server over
// loopback, and reports throughput each way and the server's memory.
//
//	go test ./e2e -run '^$' -bench RegistryLargeFolder -benchtime 1x
func BenchmarkRegistryLargeFolder(b *testing.B) {
	mb := 1024
	if v, err := strconv.Atoi(os.Getenv("MODELSHIP_BENCH_MB")); err == nil && v > 0 {
		mb = v
	}
	dir := b.TempDir()
	folder := filepath.Join(dir, "model")
	const files = 8
	per := int64(mb) << 20 / files
	chunk := make([]byte, 1<<20)
	rand.Read(chunk)
	for i := range files {
		if err := os.MkdirAll(folder, 0o755); err != nil {
			b.Fatal(err)
		}
		f, err := os.Create(filepath.Join(folder, fmt.Sprintf("shard-%d.bin", i)))
		if err != nil {
			b.Fatal(err)
		}
		for w := int64(0); w < per; w += int64(len(chunk)) {
			chunk[0] = byte(i) // shards differ
			f.Write(chunk)
		}
		f.Close()
	}
	total := per * files
	s := startServer(b, "")
	pid := s.cmd.Process.Pid
	idleRSS, _ := rssKB(pid)
	c := client.New(s.url, s.token)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		mv, err := c.Models.Register(b.Context(), "default", client.RegisterOptions{Name: "big", Path: folder})
		if err != nil {
			b.Fatal(err)
		}
		up := time.Since(start)
		_, regPeak := rssKB(pid)
		start = time.Now()
		_, body, err := c.Models.Open(b.Context(), "default", modelship.ModelRef{Name: "big", Version: mv.Version})
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, body)
		body.Close()
		if err != nil || n < total {
			b.Fatalf("downloaded %d bytes: %v", n, err)
		}
		down := time.Since(start)
		_, peak := rssKB(pid)
		b.ReportMetric(float64(total)/up.Seconds()/1e6, "upload-MB/s")
		b.ReportMetric(float64(total)/down.Seconds()/1e6, "download-MB/s")
		b.ReportMetric(float64(idleRSS)/1024, "idle-RSS-MiB")
		b.ReportMetric(float64(regPeak-idleRSS)/1024, "upload-RSS-growth-MiB")
		b.ReportMetric(float64(peak-idleRSS)/1024, "peak-RSS-growth-MiB")
	}
}
