#!/usr/bin/env bash
# modelship benchmarks (what `make bench` runs after `make setup build`).
#
# Runs, in one go on loopback, and rewrites BENCHMARKS.md with the results:
#   1. bench/ TestBench: the no-op Go handler (ceiling), serve-model replicas
#      directly (ONNX MLP via OIP and /score, trivial score.py), the same
#      models deployed on the real `modelship server` and scored through the
#      gateway with key auth (closed-loop max and vegeta open-loop at half
#      the max), deploy -> Healthy, autoscale reaction, idle RSS;
#   2. the component benchmarks of gateway/, modelserver/, modelserver/onnx,
#      modelserver/python and oip/;
#   3. the registry's 1 GiB folder register/download (e2e).
# Every step is bounded by `timeout`; the whole run takes about 5-10 minutes.
# A failed step is recorded in BENCHMARKS.md and makes the script exit 1
# after the file is written.
#
# Environment: MODELSHIP_BIN (default bin/modelship), BENCH_OUT (default
# BENCHMARKS.md), and the MODELSHIP_BENCH_* knobs documented in bench/bench_test.go.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BIN=$(realpath "${MODELSHIP_BIN:-$ROOT/bin/modelship}")
OUT=${BENCH_OUT:-$ROOT/BENCHMARKS.md}
GO=${GO:-go}
[ -x "$BIN" ] || { echo "bench: $BIN not found; run 'make build' (make bench does)" >&2; exit 1; }

WORK=$(mktemp -d "${TMPDIR:-/tmp}/modelship-bench.XXXXXX")
STEP_PID=
cleanup() {
  # Stop the step still running (Ctrl-C, a kill of this script); the test
  # binaries kill their servers and replicas (t.Cleanup, Pdeathsig).
  if [ -n "$STEP_PID" ] && kill -0 "$STEP_PID" 2>/dev/null; then
    kill -TERM "$STEP_PID" 2>/dev/null
    wait "$STEP_PID" 2>/dev/null
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

FAILED=()
# step NAME SECONDS CMD...: runs CMD with a time bound, output in $WORK/NAME.log.
step() {
  local name=$1 secs=$2; shift 2
  echo "bench: [$(date +%T)] $name: $*"
  timeout --kill-after=15 "$secs" "$@" >"$WORK/$name.log" 2>&1 &
  STEP_PID=$!
  local rc=0
  wait "$STEP_PID" || rc=$?
  if [ "$rc" = 0 ]; then
    echo "bench: [$(date +%T)] $name: ok"
  else
    echo "bench: [$(date +%T)] $name: FAILED (exit $rc); last lines:" >&2
    tail -n 15 "$WORK/$name.log" >&2
    FAILED+=("$name")
  fi
  STEP_PID=
}

START=$(date +%s)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
export MODELSHIP_BIN=$BIN MODELSHIP_TEST_BINARY=$BIN

step e2e 600 env MODELSHIP_BENCH=1 MODELSHIP_BENCH_OUT="$WORK/e2e.md" \
  "$GO" test -count=1 -run '^TestBench$' -v -timeout 9m ./bench
step kubernetes 300 env MODELSHIP_BENCH=1 "$GO" test -count=1 -run '^$' -bench 'KubernetesTarget' -benchtime 1x -timeout 5m ./e2e
step realnode 600 env MODELSHIP_BENCH=1 "$GO" test -count=1 -run '^$' -bench 'RealNode' -benchtime 1x -timeout 10m ./e2e
step gateway-select 180 "$GO" test -count=1 -run '^$' -bench 'Select' -cpu 1,2 -benchtime 200000x ./gateway
step gateway-proxy 180 "$GO" test -count=1 -run '^$' -bench 'BenchmarkProxy$' -benchmem -benchtime 3000x ./gateway
step gateway-overhead 180 "$GO" test -count=1 -run '^$' -bench 'Overhead' -benchtime 1x ./gateway
step modelserver-loopback 300 "$GO" test -count=1 -run '^$' -bench 'Loopback' -benchtime 20000x ./modelserver
step onnx 180 "$GO" test -count=1 -run '^$' -bench 'MLPOverhead|MLP$' -benchmem -count 2 ./modelserver/onnx
step oip 180 "$GO" test -count=1 -run '^$' -bench 'Decode|Append' -benchmem ./oip
step python 180 "$GO" test -count=1 -run '^$' -bench 'PipeFloor|TrivialScore$|SklearnOneRow' -benchtime 1s ./modelserver/python
step registry 300 "$GO" test -count=1 -run '^$' -bench 'RegistryLargeFolder' -benchtime 1x -timeout 5m ./e2e

LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
ELAPSED=$(( $(date +%s) - START ))

# bench_lines NAME: the benchmark result lines of a step's log (or its tail
# when it failed).
bench_lines() {
  local log=$WORK/$1.log
  if grep -qE '^Benchmark' "$log"; then
    grep -E '^(Benchmark|goos|goarch|cpu:|pkg:)' "$log" | grep -vE '^(goos|goarch|pkg):'
  else
    echo "(no benchmark output; last lines of the log)"
    tail -n 20 "$log"
  fi
}
section() { # section NAME TITLE COMMAND
  printf '\n### %s\n\n```\n%s\n%s\n```\n' "$2" "$3" "$(bench_lines "$1")"
}

CPU_MODEL=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -n 1)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD 2>/dev/null || COMMIT="$COMMIT (with uncommitted changes in the work tree)"
{
  cat <<HDR
# modelship benchmarks

Written by \`make bench\` (scripts/bench.sh); do not edit by hand: re-run it. Everything runs on loopback on
one machine, load generator included, so absolute numbers depend on the machine and on what else runs on it;
**compare rows of the same run** (the ratios), not runs.

| | |
|---|---|
| command | \`make bench\` (= \`make setup build && bash scripts/bench.sh\`) |
| date | $(date -u '+%Y-%m-%d %H:%M UTC') |
| git commit | $COMMIT |
| CPU | ${CPU_MODEL:-unknown}, $(nproc) cores |
| load average (1/5/15 min) | before: $LOAD_BEFORE; after: $LOAD_AFTER |
| Go | $("$GO" version | cut -d' ' -f3-) |
| Python | $(/usr/bin/python3 --version 2>&1) (/usr/bin/python3) |
| run time | ${ELAPSED} s |
HDR
  if [ ${#FAILED[@]} -gt 0 ]; then
    printf '| **failed steps** | %s (see below) |\n' "${FAILED[*]}"
  fi
  if awk -v n="$(nproc)" -v a="${LOAD_BEFORE%% *}" -v b="${LOAD_AFTER%% *}" 'BEGIN { exit !(a > n || b > n) }'; then
    printf '\n> **The machine was busy** (1-minute load average above its %s cores before or after the run): other\n' "$(nproc)"
    printf '> work competed for the CPU, so latencies (p99 above all) and absolute rates are inflated and noisy.\n'
  fi

  cat <<'TXT'

## End to end: ceiling, replica, gateway (bench/, one run)

`MODELSHIP_BENCH=1 go test -count=1 -run '^TestBench$' -v ./bench` — the no-op handler and the replicas are
child processes (`serve-model`; the no-op handler is the test binary re-executed), the server is a real
`modelship server` with a local compute target; services are deployed with `model deploy` (key auth on)
and scored on `/api/v1/service/<name>/score` with `Authorization: Bearer <key>`. Closed loop = N clients,
each sending as soon as the previous answer arrived (max throughput); open loop = vegeta at a fixed rate
(latency under a load the server can take). Request bodies: the MLP's 1×64 FP32 row (OIP v2 or Azure
`{"data": [[...]]}`), `{"data":[[1,2,3,4]]}` for the trivial score.py. The no-op handler answers the ONNX
replica's own OIP response.

TXT
  if [ -s "$WORK/e2e.md" ]; then cat "$WORK/e2e.md"; else
    echo '**TestBench wrote no results**; last lines of its log:'; echo; echo '```'; tail -n 30 "$WORK/e2e.log"; echo '```'
  fi
  if grep -q -- '--- FAIL' "$WORK/e2e.log"; then
    printf '\nTest failures reported by this run:\n\n```\n%s\n```\n' "$(grep -E '^\s+bench_test.go:[0-9]+: .*(failed|FAIL)' "$WORK/e2e.log" | cut -c1-400 | head -n 10)"
  fi

  printf '\n## Registry: 1 GiB folder model (issue 2)\n'
  section registry "Register and download 1 GiB over loopback, server RSS" \
    "go test -count=1 -run '^\$' -bench RegistryLargeFolder -benchtime 1x ./e2e"
  awk '/BenchmarkRegistryLargeFolder/ {
      for (i = 1; i < NF; i++) v[$(i+1)] = $i
      up = v["upload-MB/s"]; down = v["download-MB/s"]; g = v["peak-RSS-growth-MiB"]; idle = v["idle-RSS-MiB"]
      printf "\n| issue 2 target | measured | verdict |\n|---|---|---|\n"
      printf "| register ≥ 300 MB/s | %s MB/s | **%s** |\n", up, (up >= 300 ? "met" : "not met")
      printf "| download ≥ 300 MB/s | %s MB/s | **%s** |\n", down, (down >= 300 ? "met" : "not met")
      printf "| server RSS growth < 64 MB during it | %s MiB peak growth | **%s** |\n", g, (g * 1.048576 < 64 ? "met" : "not met")
      printf "| idle server RSS ≤ 40 MB | %s MiB | **%s** |\n", idle, (idle * 1.048576 <= 40 ? "met" : "not met")
    }' "$WORK/registry.log"

  printf '\n## Kubernetes target on a real API server with KWOK nodes (issue 6)\n'
  section kubernetes "attach, deploy (2 replicas) to Healthy, update to Healthy, delete, detach (each a CLI call against the server)" \
    "MODELSHIP_BENCH=1 go test -count=1 -run '^\$' -bench KubernetesTarget -benchtime 1x ./e2e"
  awk '/^BenchmarkKubernetesTarget/ {
      for (i = 1; i < NF; i++) v[$(i+1)] = $i
      acc = v["deploy-accepted-ms"]; h = v["deploy-healthy-ms"]
      printf "\n| issue 6 target | measured | verdict |\n|---|---|---|\n"
      printf "| deploy request -> all Kubernetes objects applied ≤ 1 s | %s ms (the CLI call returns after the objects are applied) | **%s** |\n", acc, (acc <= 1000 ? "met" : "not met")
      printf "| deploy -> Healthy ≤ 5 s with KWOK | %s ms | **%s** |\n", h, (h <= 5000 ? "met" : "not met")
    }' "$WORK/kubernetes.log"

  printf '\n## Kubernetes on a real single-node cluster (issue 8; needs root)\n'
  section realnode "node up, deploy -> Healthy (ONNX, 2 real pods), in-cluster front end vs a direct pod call, rolling update under light load" \
    "MODELSHIP_BENCH=1 go test -count=1 -run '^\$' -bench RealNode -benchtime 1x ./e2e"
  awk '/^BenchmarkRealNode/ {
      for (i = 1; i < NF; i++) v[$(i+1)] = $i
      h = v["deploy-healthy-s"]; r = v["rolling-update-s"]; f = v["update-failed"]
      printf "\n| issue 8 | measured | verdict |\n|---|---|---|\n"
      printf "| deploy -> Healthy (ONNX service) ≤ 5 s | %s s | **%s** |\n", h, (h <= 5 ? "met" : "not met")
      printf "| rolling update of 2 replicas ≤ 10 s with zero failures | %s s, %s failed | **%s** |\n", r, f, (r <= 10 && f == 0 ? "met" : "not met")
      printf "| front-end overhead in-cluster vs a direct pod call (same run) | +%s µs per sequential request (%s vs %s µs); %s %% of the direct throughput with 8 clients (%s vs %s req/s) | reported |\n", v["added-us/req"], v["frontend-us/req"], v["direct-us/req"], v["frontend-%-of-direct"], v["frontend-req/s"], v["direct-req/s"]
    }' "$WORK/realnode.log"

  printf '\n## Component benchmarks (this run)\n\nEach package'"'"'s own Go benchmarks, run from bench.sh with the command shown.\n'
  section gateway-select "gateway: selection path (issue 5: ≤ 5 µs p50 with 6 versions)" \
    "go test -run '^\$' -bench Select -cpu 1,2 -benchtime 200000x ./gateway"
  section gateway-proxy "gateway: one sequential client, direct vs through the gateway (in-process replica)" \
    "go test -run '^\$' -bench 'BenchmarkProxy\$' -benchmem -benchtime 3000x ./gateway"
  section gateway-overhead "gateway: max rate and added latency at half the lower max (in-process replica returning a constant)" \
    "go test -run '^\$' -bench Overhead -benchtime 1x ./gateway"
  section modelserver-loopback "modelserver: replica HTTP server in-process (no-op handler, ONNX MLP, trivial score.py, canned runtime)" \
    "go test -run '^\$' -bench Loopback -benchtime 20000x ./modelserver"
  section onnx "modelserver/onnx: bare onnxruntime_go vs Runtime.Infer (issue 3: overhead ≤ 10 %)" \
    "go test -run '^\$' -bench 'MLPOverhead|MLP\$' -benchmem -count 2 ./modelserver/onnx"
  section oip "oip: OIP v2 JSON decode/encode vs encoding/json" \
    "go test -run '^\$' -bench 'Decode|Append' -benchmem ./oip"
  section python "modelserver/python: worker round trip (issue 3: ≤ 30 µs) and the bare pipe floor" \
    "go test -run '^\$' -bench 'PipeFloor|TrivialScore\$|SklearnOneRow' -benchtime 1s ./modelserver/python"

  echo
  cat "$ROOT/bench/history.md"
} >"$OUT.tmp" && mv "$OUT.tmp" "$OUT"

echo "bench: wrote $OUT in ${ELAPSED} s (load average before $LOAD_BEFORE, after $LOAD_AFTER)"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "bench: failed steps: ${FAILED[*]}" >&2
  exit 1
fi
