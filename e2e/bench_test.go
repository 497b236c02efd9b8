package e2e

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/modelship/modelship"
	"github.com/modelship/modelship/client"
	"github.com/modelship/modelship/compute/kubernetes"
	"github.com/modelship/modelship/internal/k8snode"
	"github.com/modelship/modelship/internal/k8stest"
	"github.com/modelship/modelship/ociimage"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
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
	// Idle: 3 s after start (start-up-only pages are given back after 2 s,
	// internal/memtrim).
	time.Sleep(3 * time.Second)
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

// BenchmarkKubernetesTarget times the Kubernetes target's control-plane
// path against a real API server with KWOK nodes (issue 6: deploy -> all
// objects applied ≤ 1 s, deploy -> Healthy ≤ 5 s with KWOK): attach
// (validation + front-end install), deploy of a 2-replica service to
// Healthy, an update rolled out to Healthy, delete, detach.
func BenchmarkKubernetesTarget(b *testing.B) {
	if os.Getenv("MODELSHIP_BENCH") == "" {
		b.Skip("set MODELSHIP_BENCH=1 (make bench)")
	}
	c := k8stest.Start(b)
	c.AddNode(b, "bench-node-1", "16", "64Gi", 0)
	s := startServer(b, "")
	dir := b.TempDir()
	kc := filepath.Join(dir, "kubeconfig")
	if err := os.WriteFile(kc, c.Kubeconfig, 0o600); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "model.onnx"), []byte("not really onnx"), 0o644); err != nil {
		b.Fatal(err)
	}
	run := func(args ...string) {
		b.Helper()
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), "HOME="+s.home, "MODELSHIP_URL="+s.url, "MODELSHIP_TOKEN="+s.token)
		if out, err := cmd.CombinedOutput(); err != nil {
			b.Fatalf("modelship %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	run("model", "register", "-n", "m", "-p", filepath.Join(dir, "model.onnx"), "--model-framework", "Onnx")
	cl := client.New(s.url, s.token)
	waitHealthyK := func(name string, gen int64) {
		deadline := time.Now().Add(60 * time.Second)
		for {
			svc, err := cl.Services.Get(b.Context(), "default", name)
			if err == nil && svc.State == modelship.StateHealthy && svc.Generation >= gen {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("service %s not Healthy: %+v %v", name, svc, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := 0; i < b.N; i++ {
		start := time.Now()
		run("computetarget", "attach", "kubernetes", "-n", "kbench", "--kubeconfig", kc, "--namespace", "bench", "--image", "registry.example/modelship:bench")
		attach := time.Since(start)
		dc := filepath.Join(dir, "dc.json")
		os.WriteFile(dc, []byte(`{"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 0.5, "memoryInGB": 0.5}}`), 0o644)
		start = time.Now()
		run("model", "deploy", "-ct", "kbench", "-m", "m:1", "-n", "kbsvc", "-dc", dc, "--no-wait")
		accepted := time.Since(start)
		waitHealthyK("kbsvc", 1)
		deploy := time.Since(start)
		os.WriteFile(dc, []byte(`{"computeType": "aks", "numReplicas": 2, "containerResourceRequirements": {"cpu": 0.25, "memoryInGB": 0.5}}`), 0o644)
		start = time.Now()
		run("service", "update", "kbsvc", "-dc", dc, "--no-wait")
		waitHealthyK("kbsvc", 2)
		update := time.Since(start)
		start = time.Now()
		run("service", "delete", "kbsvc")
		del := time.Since(start)
		start = time.Now()
		run("computetarget", "detach", "kbench")
		detach := time.Since(start)
		b.ReportMetric(attach.Seconds()*1000, "attach-ms")
		b.ReportMetric(accepted.Seconds()*1000, "deploy-accepted-ms")
		b.ReportMetric(deploy.Seconds()*1000, "deploy-healthy-ms")
		b.ReportMetric(update.Seconds()*1000, "update-healthy-ms")
		b.ReportMetric(del.Seconds()*1000, "delete-ms")
		b.ReportMetric(detach.Seconds()*1000, "detach-ms")
	}
}

// BenchmarkRealNode (issue 8) on a real single-node cluster: node up,
// deploy -> Healthy of an ONNX service with 2 real pods, the in-cluster
// front end vs a direct call to a pod in the same run (sequential latency
// and closed-loop throughput with 8 clients), and a rolling update of the
// 2 replicas under light load.
func BenchmarkRealNode(b *testing.B) {
	if os.Getenv("MODELSHIP_BENCH") == "" {
		b.Skip("set MODELSHIP_BENCH=1 (make bench)")
	}
	ctx := b.Context()
	start := time.Now()
	n := k8snode.Start(b)
	up := time.Since(start)
	img, err := ociimage.Build(ctx, ociimage.Options{Binary: binPath})
	if err != nil {
		b.Fatal(err)
	}
	if err := n.LoadImage(ctx, realImage, img); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := startServer(b, "", "--listen", fmt.Sprintf("%s:%d", n.IP, port))
	dir := b.TempDir()
	run := func(args ...string) string {
		b.Helper()
		cmd := exec.Command(binPath, args...)
		cmd.Env = append(os.Environ(), "HOME="+s.home, "MODELSHIP_URL="+s.url, "MODELSHIP_TOKEN="+s.token)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("modelship %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("computetarget", "attach", "kubernetes", "-n", "node1", "--kubeconfig", n.KubeconfigPath, "--namespace", "bench", "--cluster-purpose", "DevTest",
		"--image", realImage, "--image-pull-policy", "Never")
	model, _ := os.ReadFile(filepath.Join("..", "examples", "onnx-digits", "model.onnx"))
	body, _ := os.ReadFile(filepath.Join("..", "examples", "onnx-digits", "sample-request.json"))
	os.WriteFile(filepath.Join(dir, "digits.onnx"), model, 0o644)
	run("model", "register", "-n", "digits", "-p", filepath.Join(dir, "digits.onnx"), "--model-framework", "Onnx")
	run("model", "register", "-n", "digits", "-p", filepath.Join(dir, "digits.onnx"), "--model-framework", "Onnx", "--description", "v2")
	dc := filepath.Join(dir, "dc.json")
	os.WriteFile(dc, []byte(`{"computeType": "aks", "numReplicas": 2, "authEnabled": false, "containerResourceRequirements": {"cpu": 0.1, "memoryInGB": 0.25}}`), 0o644)
	cl := client.New(s.url, s.token)
	waitHealthy := func(gen int64) {
		deadline := time.Now().Add(2 * time.Minute)
		for {
			svc, err := cl.Services.Get(ctx, "default", "digits")
			if err == nil && svc.State == modelship.StateHealthy && svc.Generation >= gen {
				return
			}
			if time.Now().After(deadline) {
				b.Fatalf("not Healthy: %+v %v", svc, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for i := 0; i < b.N; i++ {
		start = time.Now()
		run("model", "deploy", "-ct", "node1", "-m", "digits:1", "-n", "digits", "-dc", dc, "--no-wait")
		waitHealthy(1)
		deploy := time.Since(start)

		var fe string
		for deadline := time.Now().Add(time.Minute); ; {
			ct, err := cl.ComputeTargets.Get(ctx, "default", "node1")
			if err == nil && ct.Kubernetes.FrontEndURL != "" && ct.Kubernetes.FrontEndReady > 0 {
				fe = ct.Kubernetes.FrontEndURL
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("front end not ready")
			}
			time.Sleep(100 * time.Millisecond)
		}
		feURL := fe + "/api/v1/service/digits/score"
		for deadline := time.Now().Add(time.Minute); ; {
			if code, _ := post(feURL, "", string(body), nil); code == 200 {
				break
			}
			if time.Now().After(deadline) {
				b.Fatal("front end does not score")
			}
			time.Sleep(100 * time.Millisecond)
		}
		pods, err := n.Client.CoreV1().Pods("bench").List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelDeployment + "=" + kubernetes.LabelValue("default/digits")})
		if err != nil || len(pods.Items) == 0 {
			b.Fatalf("pods: %v", err)
		}
		podURL := "http://" + pods.Items[0].Status.PodIP + ":5001/score"
		seq := func(url string) time.Duration {
			const k = 1000
			t0 := time.Now()
			for range k {
				if code, out := post(url, "", string(body), nil); code != 200 {
					b.Fatalf("%s: %d %s", url, code, out)
				}
			}
			return time.Since(t0) / k
		}
		tput := func(url string) float64 {
			l := loadOn(url, "", string(body), 8)
			time.Sleep(3 * time.Second)
			ok, bad := l.stop()
			if bad != 0 {
				b.Fatalf("%s: %d failed: %v", url, bad, l.errs())
			}
			return float64(ok) / 3
		}
		seq(podURL)
		seq(feURL) // warm up
		direct, through := seq(podURL), seq(feURL)
		directRate, throughRate := tput(podURL), tput(feURL)

		l := loadOn(feURL, "", string(body), 2)
		time.Sleep(500 * time.Millisecond)
		start = time.Now()
		run("service", "update", "digits", "-m", "digits:2", "--no-wait")
		waitHealthy(2)
		roll := time.Since(start)
		time.Sleep(time.Second)
		ok, bad := l.stop()

		b.ReportMetric(up.Seconds(), "node-up-s")
		b.ReportMetric(deploy.Seconds(), "deploy-healthy-s")
		b.ReportMetric(float64(direct.Microseconds()), "direct-us/req")
		b.ReportMetric(float64(through.Microseconds()), "frontend-us/req")
		b.ReportMetric(float64(through-direct)/float64(time.Microsecond), "added-us/req")
		b.ReportMetric(directRate, "direct-req/s")
		b.ReportMetric(throughRate, "frontend-req/s")
		b.ReportMetric(100*throughRate/directRate, "frontend-%-of-direct")
		b.ReportMetric(roll.Seconds(), "rolling-update-s")
		b.ReportMetric(float64(ok), "update-ok")
		b.ReportMetric(float64(bad), "update-failed")
	}
}
