#!/usr/bin/env bash
# Runs every fuzz target for a short, bounded time (default 10s each):
# the config parsers, the OIP v2 decoder and the Python worker frame decoder.
set -euo pipefail
cd "$(dirname "$0")/.."
T="${1:-10s}"
run() { echo "fuzz $2 ($1) for $T"; go test -run '^$' -fuzz "^$2\$" -fuzztime "$T" "$1" 2>&1 | tail -1; }
run . FuzzParseDeploymentConfig
run . FuzzParseInferenceConfig
run ./oip FuzzDecodeInferRequest
run ./modelserver/python FuzzReadFrame
