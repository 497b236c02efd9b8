#!/usr/bin/env bash
# The fault suite: each scenario prints one line
#   FAULT <scenario> sent=N failed=N bound=... PASS|FAIL
# Loopback only, bounded in time. Exits non-zero if any scenario fails.
set -euo pipefail
cd "$(dirname "$0")/.."
MODELSHIP_FAULTS=1 go test -count=1 -timeout 10m -run 'TestFault' -v ./e2e 2>&1 | tee /tmp/modelship-faults.log | grep -E '^(FAULT|--- FAIL|ok|FAIL|panic)'
