package bench

import (
	"fmt"
	"os"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

type row struct {
	t Target
	r Result
}

type openRow struct {
	row
	rate int
}

// gatewayCmp is one model through the gateway against the same model on a
// replica called directly.
type gatewayCmp struct {
	name            string
	direct, gateway Result // closed loop
	// closed loop with as many clients as the replica takes at once
	directEq, gatewayEq Result
	clientsEq           int
	// CPU per request: the server process through the gateway, the
	// serve-model process directly
	serverCPU, replicaCPU time.Duration
	rate                  int // half the direct maximum
	dOpen, gOpen          Result
	lowRate               int // half the gateway's maximum, when lower than rate
	dLow, gLow            Result
	// the byte relay in front of the same replica (ONNX only): closed
	// loop, and open loop at rate
	relay, relayOpen Result
}

// report collects TestBench's numbers and renders them as Markdown.
type report struct {
	settings                              string
	perReplica                            int // Python workers / ONNX slots of a replica
	closed                                []row
	open                                  []openRow
	gateway                               []gatewayCmp
	deployONNX, deploySklearn             time.Duration
	onnxDeployErr                         string
	autoscale                             autoscaleResult
	serverEmptyMiB, serverOneSvcMiB       float64
	serverEndMiB                          float64
	serverIdleCPU                         float64 // share of one core
	onnxReplicaIdleMiB, onnxReplicaEndMiB float64
	// their split into anonymous and file-backed MiB
	onnxReplicaIdleParts, onnxReplicaEndParts string
	onnxReplicaEndIdle                        time.Duration // since its last request
	// telemetryOff/On: the trivial score.py through the gateway with
	// request telemetry and data collection off and on (issue 7).
	telemetryOff, telemetryOn Result
}

// firstLine is the first line of s that says what failed, without
// Markdown table breakers.
func firstLine(s string) string {
	for line := range strings.SplitSeq(s, "\n") {
		if strings.Contains(line, "error") || strings.Contains(line, "rror:") {
			s = line
			break
		}
	}
	s, _, _ = strings.Cut(s, "\n")
	return strings.NewReplacer("|", "/", "`", "'").Replace(strings.TrimSpace(s))
}

func runtimeCPUs() int { return runtime.NumCPU() }

func us(d time.Duration) string { return fmt.Sprintf("%.0f µs", float64(d)/1e3) }

func verdict(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func errCell(r Result) string {
	if r.Errors == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", r.Errors, r.FirstErr)
}

// flush writes the Markdown to MODELSHIP_BENCH_OUT (and the test log),
// also after a failure, with whatever was measured.
func (rep *report) flush(t *testing.T) {
	md := rep.markdown(t.Failed())
	t.Log("\n" + md)
	if out := os.Getenv("MODELSHIP_BENCH_OUT"); out != "" {
		if err := os.WriteFile(out, []byte(md), 0o644); err != nil {
			t.Error(err)
		}
	}
}

func (rep *report) find(name string) (Result, bool) {
	for _, r := range rep.closed {
		if r.t.Name == name {
			return r.r, true
		}
	}
	return Result{}, false
}

func (rep *report) findOpen(name string) (openRow, bool) {
	for _, r := range rep.open {
		if r.t.Name == name {
			return r, true
		}
	}
	return openRow{}, false
}

func (rep *report) markdown(failed bool) string {
	var b strings.Builder
	p := func(format string, a ...any) { fmt.Fprintf(&b, format, a...) }
	if failed {
		p("> **This run reported failures (see the test log and the rows marked failed / not measurable); the tables hold what was measured.**\n\n")
	}
	p("Settings: %s.\n\n", rep.settings)

	noop, _ := rep.find("no-op Go handler (ceiling)")
	if len(rep.closed) > 0 {
		p("### Maximum throughput (closed loop)\n\n")
		p("| target | req/s | vs no-op | p50 | p99 (worst round) | errors |\n|---|---:|---:|---:|---:|---|\n")
		for _, r := range rep.closed {
			p("| %s | %.0f | %.0f %% | %s | %s | %s |\n", r.t.Name, r.r.RPS(), 100*r.r.RPS()/noop.RPS(), us(r.r.P50), us(r.r.P99), errCell(r.r))
		}
		p("\n")
	}
	if len(rep.open) > 0 {
		p("### Latency at a fixed rate (open loop, vegeta)\n\n")
		p("| target | offered req/s | achieved req/s | p50 | p99 | errors |\n|---|---:|---:|---:|---:|---|\n")
		for _, r := range rep.open {
			p("| %s | %d | %.0f | %s | %s | %s |\n", r.t.Name, r.rate, r.r.RPS(), us(r.r.P50), us(r.r.P99), errCell(r.r))
		}
		p("\n")
	}

	p("### Replica targets (issue 3: ONNX runtime, score.py runtime)\n\n")
	p("| target | measured | verdict |\n|---|---|---|\n")
	if r, ok := rep.find("onnx OIP infer, direct"); ok {
		pct := 100 * r.RPS() / noop.RPS()
		p("| ONNX MLP 64→256→10 via OIP v2 ≥ 50 %% of the no-op handler's req/s | %.0f / %.0f req/s = %.0f %% | %s |\n", r.RPS(), noop.RPS(), pct, verdict(pct >= 50))
	}
	if r, ok := rep.find("score.py /score, direct"); ok {
		pct := 100 * r.RPS() / noop.RPS()
		floor := ""
		if f, ok := rep.find("HTTP + Python pipe floor"); ok {
			floor = fmt.Sprintf("; the floor (a bare handler passing each body to one of %d minimal Python processes over pipes, same run): %.0f req/s = %.0f %%", rep.perReplica, f.RPS(), 100*f.RPS()/noop.RPS())
		}
		p("| trivial score.py via /score ≥ 40 %% of the no-op handler's req/s | %.0f / %.0f req/s = %.0f %%%s | %s |\n", r.RPS(), noop.RPS(), pct, floor, verdict(pct >= 40))
	}
	if r, ok := rep.findOpen("score.py /score, direct"); ok {
		floor := ""
		if f, ok := rep.findOpen("HTTP + Python pipe floor"); ok {
			floor = fmt.Sprintf("; the floor above at half its own max: p99 %s at %d req/s", us(f.r.P99), f.rate)
		}
		p("| trivial score.py p99 ≤ 2 ms at half the max rate | p99 %s at %d req/s%s | %s |\n", us(r.r.P99), r.rate, floor, verdict(r.r.P99 <= 2*time.Millisecond && r.r.Errors == 0))
	}
	if rep.onnxReplicaIdleMiB > 0 {
		before, after := rep.onnxReplicaIdleMiB*1.048576 <= 50, rep.onnxReplicaEndMiB*1.048576 <= 50
		v := verdict(before && after)
		if before && !after {
			v = "**met** after warm-up, **not met** once it has served the load"
		}
		p("| idle replica serving the ONNX MLP ≤ 50 MB RSS | %.1f MiB (%.1f MB; %s) idle after warm-up; %.1f MiB (%.1f MB; %s) idle after all the load above (%.0f s after its last request; a replica gives memory back 30 s after its last request) | %s |\n",
			rep.onnxReplicaIdleMiB, rep.onnxReplicaIdleMiB*1.048576, rep.onnxReplicaIdleParts, rep.onnxReplicaEndMiB, rep.onnxReplicaEndMiB*1.048576, rep.onnxReplicaEndParts, rep.onnxReplicaEndIdle.Seconds(), v)
	}
	p("\n")

	if len(rep.gateway) > 0 {
		p("### Gateway (front end, key auth) vs the replica directly (issue 4)\n\n")
		p("| model | direct max req/s | gateway max req/s | gateway / direct | open-loop rate | direct p50 / p99 | gateway p50 / p99 | added p50 | added p99 |\n")
		p("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, g := range rep.gateway {
			line := func(rate int, d, gw Result) {
				p("| %s | %.0f | %.0f | %.0f %% | %d | %s / %s | %s / %s | %s | %s |\n", strings.TrimSuffix(g.name, ", direct"),
					g.direct.RPS(), g.gateway.RPS(), 100*g.gateway.RPS()/g.direct.RPS(), rate,
					us(d.P50), us(d.P99), us(gw.P50), us(gw.P99), us(gw.P50-d.P50), us(gw.P99-d.P99))
			}
			line(g.rate, g.dOpen, g.gOpen)
			if g.lowRate > 0 {
				line(g.lowRate, g.dLow, g.gLow)
			}
		}
		p("\nThe first row of each model is at half the *direct* maximum (the target's wording); when the gateway's own\n")
		p("maximum is lower than that rate, a second row is at half the *gateway's* maximum, where it is not saturated.\n\n")
		p("Closed loop with only as many clients as the replica serves at once (the gateway queues the rest), so\n")
		p("that the gateway's queueing does not count against it:\n\n")
		p("| model | clients | direct req/s | gateway req/s | gateway / direct | direct p50 / p99 | gateway p50 / p99 | added p50 | server CPU / req (gateway) | serve-model CPU / req (direct) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, g := range rep.gateway {
			p("| %s | %d | %.0f | %.0f | %.0f %% | %s / %s | %s / %s | %s | %s | %s |\n", strings.TrimSuffix(g.name, ", direct"), g.clientsEq,
				g.directEq.RPS(), g.gatewayEq.RPS(), 100*g.gatewayEq.RPS()/g.directEq.RPS(),
				us(g.directEq.P50), us(g.directEq.P99), us(g.gatewayEq.P50), us(g.gatewayEq.P99), us(g.gatewayEq.P50-g.directEq.P50),
				us(g.serverCPU), us(g.replicaCPU))
		}
		p("\nCPU per request is the process's user+system time over the run divided by the requests (10 ms tick\n")
		p("resolution over thousands of requests). The server's figure is what the front end costs per request; the\n")
		p("serve-model figure is the replica's Go side (for score.py the Python workers are extra).\n\n")
		p("| issue 4 target (trivial ONNX model) | measured | verdict |\n|---|---|---|\n")
		if i := slices.IndexFunc(rep.gateway, func(g gatewayCmp) bool { return strings.HasPrefix(g.name, "onnx") }); i >= 0 {
			g := rep.gateway[i]
			added50, added99 := g.gOpen.P50-g.dOpen.P50, g.gOpen.P99-g.dOpen.P99
			ratio := 100 * g.gateway.RPS() / g.direct.RPS()
			p("| front end added p50 ≤ 100 µs at half the max rate | %s at %d req/s", us(added50), g.rate)
			if g.lowRate > 0 {
				p("; %s at %d req/s (half the gateway's max)", us(g.gLow.P50-g.dLow.P50), g.lowRate)
			}
			if g.relay.Requests > 0 {
				p("; a byte relay (no HTTP at all) adds %s at the same rate", us(g.relayOpen.P50-g.dOpen.P50))
			}
			p(" | %s |\n", verdict(added50 <= 100*time.Microsecond))
			p("| front end added p99 ≤ 500 µs at half the max rate | %s at %d req/s", us(added99), g.rate)
			if g.lowRate > 0 {
				p("; %s at %d req/s (half the gateway's max)", us(g.gLow.P99-g.dLow.P99), g.lowRate)
			}
			p(" | %s |\n", verdict(added99 <= 500*time.Microsecond))
			p("| max req/s through the front end ≥ 80 %% of direct | %.0f %%", ratio)
			if g.relay.Requests > 0 {
				p("; a byte relay process (no HTTP, no routing, no auth) in front of the same replica: %.0f %% of direct, the floor of any proxy process on this machine", 100*g.relay.RPS()/g.direct.RPS())
			}
			p(" | %s |\n", verdict(ratio >= 80))
		} else {
			msg := firstLine(rep.onnxDeployErr)
			p("| front end added p50 ≤ 100 µs, p99 ≤ 500 µs, max ≥ 80 %% of direct | not measurable: the ONNX no-code deploy failed (`%s`) | **not met** (see the score.py rows above) |\n", msg)
		}
		if rep.deployONNX > 0 {
			p("| deploy → Healthy ≤ 1 s, ONNX model (no code) | %.2f s | %s |\n", rep.deployONNX.Seconds(), verdict(rep.deployONNX <= time.Second))
		} else if rep.onnxDeployErr != "" {
			p("| deploy → Healthy ≤ 1 s, ONNX model (no code) | deploy failed: `%s` | **not met** |\n", firstLine(rep.onnxDeployErr))
		}
		if rep.deploySklearn > 0 {
			p("| deploy → Healthy ≤ 3 s, scikit-learn score.py | %.2f s | %s |\n", rep.deploySklearn.Seconds(), verdict(rep.deploySklearn <= 3*time.Second))
		}
		if a := rep.autoscale; a.needed > 0 {
			reached := func(d time.Duration) string {
				if d < 0 {
					return "not reached in 15 s"
				}
				return fmt.Sprintf("%.2f s", d.Seconds())
			}
			p("| autoscale 1 → %d clients (target %d %%, refresh 1 s): %d replicas within 3 × refresh | desired count after %s, %d ready after %s (max desired %d, max ready %d) | %s |\n",
				a.clients, a.target, a.needed, reached(a.toDesired), a.needed, reached(a.toReady), a.maxDesired, a.maxReady,
				verdict(a.toReady >= 0 && a.toReady <= 3*time.Second))
			p("| … with no 5xx other than configured 503s | %d requests: %d × 503, %d other 5xx or transport errors | %s |\n",
				a.load.Requests, a.got503, a.other5xx, verdict(a.other5xx == 0))
		}
		if rep.serverOneSvcMiB > 0 {
			p("| control plane + front end idle RSS ≤ 60 MB (one service deployed: sklearn score.py) | %.1f MiB | %s |\n", rep.serverOneSvcMiB, verdict(rep.serverOneSvcMiB*1.048576 <= 60))
		}
		p("\n")
	}
	if rep.telemetryOff.Requests > 0 && rep.telemetryOn.Requests > 0 {
		ratio := rep.telemetryOn.RPS() / rep.telemetryOff.RPS()
		p("### Telemetry and data collection (issue 7)\n\n")
		p("The trivial score.py through the gateway, closed loop, interleaved rounds: one service with `appInsightsEnabled` and `dataCollection.storageEnabled` off, one with both on (request records at the gateway and the replica, model data collection on).\n\n")
		p("| issue 7 target | measured | verdict |\n|---|---|---|\n")
		p("| front-end throughput with telemetry and data collection on ≥ 90 %% of off | %.0f / %.0f req/s = %.0f %% | %s |\n\n",
			rep.telemetryOn.RPS(), rep.telemetryOff.RPS(), 100*ratio, verdict(ratio >= 0.9))
	}
	if rep.serverEmptyMiB > 0 {
		p("### Server memory\n\n| state | server RSS |\n|---|---:|\n")
		p("| started 3 s ago, no model, no service (issue 2: idle ≤ 40 MB → %s) | %.1f MiB |\n", strings.Trim(verdict(rep.serverEmptyMiB*1.048576 <= 40), "*"), rep.serverEmptyMiB)
		p("| one service deployed, idle | %.1f MiB |\n", rep.serverOneSvcMiB)
		if rep.serverEndMiB > 0 {
			p("| after all the load above, 4 services (autoscaled one included), idle 4 s | %.1f MiB (CPU while idle: %.1f %% of a core) |\n", rep.serverEndMiB, 100*rep.serverIdleCPU)
		}
		p("\nRSS is the server process only (`VmRSS`); replicas are separate processes.\n")
	}
	return b.String()
}
