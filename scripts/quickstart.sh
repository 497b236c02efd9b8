#!/usr/bin/env bash
# modelship quick start (what `make run` runs after `make setup build`).
#
# Starts `modelship server` with its state under <repo>/.data/quickstart, then does
# what an Azure ML user does with `az ml model deploy`:
#   1. trains the diabetes Ridge model (examples/diabetes/train.py) and registers it,
#   2. deploys it with examples/diabetes/{inferenceconfig,deploymentconfig}.json,
#   3. gets the service key and scores examples/diabetes/sample-request.json,
#   4. deploys the ONNX digits model with no code and scores it,
# then prints what to try next and keeps the server running until Ctrl-C.
#
# Environment:
#   QUICKSTART_EXIT=1         stop the server and exit 0 after scoring (for CI-like checks)
#   QUICKSTART_LISTEN         control-plane address (default 127.0.0.1:8640)
#   QUICKSTART_GATEWAY        scoring gateway address (default 127.0.0.1:8641)
#   QUICKSTART_PYTHON         Python with scikit-learn for train.py (default /usr/bin/python3)
#   MODELSHIP_BIN             the modelship binary (default <repo>/bin/modelship)
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${MODELSHIP_BIN:-$ROOT/bin/modelship}
DATA_DIR=$ROOT/.data/quickstart
LISTEN=${QUICKSTART_LISTEN:-127.0.0.1:8640}
GATEWAY=${QUICKSTART_GATEWAY:-127.0.0.1:8641}
PY=${QUICKSTART_PYTHON:-/usr/bin/python3}
EX=$ROOT/examples
LOG=$DATA_DIR/server.log

if [ -t 1 ]; then B=$'\e[1m'; G=$'\e[32m'; R=$'\e[31m'; N=$'\e[0m'; else B= G= R= N=; fi
step() { printf '\n%s==> %s%s\n' "$B" "$*" "$N"; }
show() { printf '%s$ %s%s\n' "$B" "$*" "$N"; }          # print a command before running it
die() { printf '%squickstart: %s%s\n' "$R" "$*" "$N" >&2; exit 1; }

[ -x "$BIN" ] || die "$BIN not found; run 'make build' first (or 'make run', which builds it)"
command -v curl >/dev/null || die "curl is needed (apt-get install curl)"
"$PY" -c 'import sklearn, joblib, numpy' 2>/dev/null ||
  die "$PY cannot import scikit-learn, joblib and numpy; run 'make setup' (or set QUICKSTART_PYTHON)"

# A port is taken when something accepts a connection on it.
port_taken() { (exec 3<>"/dev/tcp/${1%:*}/${1##*:}") 2>/dev/null; }
for addr in "$LISTEN" "$GATEWAY"; do
  if port_taken "$addr"; then
    die "$addr is already in use (another modelship server, or another program).
  Stop it, or pick free addresses:  QUICKSTART_LISTEN=127.0.0.1:9640 QUICKSTART_GATEWAY=127.0.0.1:9641 make run"
  fi
done

mkdir -p "$DATA_DIR"
# Talk to this server only, whatever ~/.modelship/config.json or the environment say.
unset MODELSHIP_URL MODELSHIP_TOKEN MODELSHIP_CONFIG MODELSHIP_WORKSPACE
export MODELSHIP_DATA_DIR=$DATA_DIR

step "Starting modelship server (data dir $DATA_DIR, log $LOG)"
show "modelship server --data-dir $DATA_DIR --listen $LISTEN --gateway-listen $GATEWAY"
"$BIN" server --data-dir "$DATA_DIR" --listen "$LISTEN" --gateway-listen "$GATEWAY" >"$LOG" 2>&1 &
SERVER_PID=$!

stop_server() {
  if kill -0 "$SERVER_PID" 2>/dev/null; then
    echo "quickstart: stopping the server (pid $SERVER_PID) and its replicas"
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    wait "$SERVER_PID" 2>/dev/null || true
  fi
}
on_exit() {
  rc=$?
  stop_server
  if [ "$rc" != 0 ]; then
    echo "quickstart: failed (exit $rc); the server log is $LOG" >&2
    tail -n 20 "$LOG" >&2 2>/dev/null || true
  fi
}
trap on_exit EXIT
SERVING=0   # 1 once everything is deployed: Ctrl-C is then the normal way out
trap 'if [ "$SERVING" = 1 ]; then echo; exit 0; else exit 130; fi' INT
trap 'if [ "$SERVING" = 1 ]; then exit 0; else exit 143; fi' TERM

for _ in $(seq 1 100); do
  kill -0 "$SERVER_PID" 2>/dev/null || die "the server exited at start; see $LOG"
  curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 && [ -s "$DATA_DIR/admin-token" ] && break
  sleep 0.1
done
curl -fsS "http://$LISTEN/healthz" >/dev/null 2>&1 || die "the server did not answer on $LISTEN within 10 s; see $LOG"
export MODELSHIP_URL=http://$LISTEN
MODELSHIP_TOKEN=$(cat "$DATA_DIR/admin-token"); export MODELSHIP_TOKEN
# ms runs the CLI, printing the command first (arguments with spaces in quotes).
ms() {
  local a line="modelship"
  for a in "$@"; do case $a in *' '*) line+=" '$a'" ;; *) line+=" $a" ;; esac; done
  show "$line"
  "$BIN" "$@"
}
json_field() { sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" | head -n 1; }
echo "${G}server ready:${N} API http://$LISTEN, gateway http://$GATEWAY"

ms computetarget list

# ---------------------------------------------------------------- diabetes (score.py)
step "Training the diabetes model (examples/diabetes/train.py)"
if "$BIN" model show diabetes -o json >/dev/null 2>&1; then
  echo "diabetes is already registered; reusing it:"
  ms model list -n diabetes
else
  MODEL_PKL=$DATA_DIR/sklearn_regression_model.pkl
  show "$PY examples/diabetes/train.py -o $MODEL_PKL"
  "$PY" "$EX/diabetes/train.py" -o "$MODEL_PKL"
  SKLEARN_VERSION=$("$PY" -c 'import sklearn; print(sklearn.__version__)')
  step "Registering it"
  ms model register -n diabetes -p "$MODEL_PKL" --model-framework ScikitLearn \
    --model-framework-version "$SKLEARN_VERSION" --tag example=diabetes \
    --description "Ridge regression on the scikit-learn diabetes data set"
fi

step "Deploying it with Azure's inferenceconfig.json and deploymentconfig.json"
cd "$EX/diabetes"
ms model deploy -n diabetes-svc -m diabetes -ic inferenceconfig.json -dc deploymentconfig.json \
  --overwrite --show-output

step "The service"
ms service list
ms service get-keys diabetes-svc
KEY=$("$BIN" service get-keys diabetes-svc -o json | json_field primaryKey)
URI=$("$BIN" service show diabetes-svc -o json | json_field scoringUri)
[ -n "$KEY" ] && [ -n "$URI" ] || die "could not read the key or the scoring URI of diabetes-svc"

step "Scoring examples/diabetes/sample-request.json through the gateway"
show "curl -H \"Authorization: Bearer \$KEY\" -H 'Content-Type: application/json' -d @sample-request.json $URI"
ANSWER=$(curl -sS --fail-with-body -H "Authorization: Bearer $KEY" -H 'Content-Type: application/json' \
  -d @sample-request.json "$URI") || die "scoring failed: $ANSWER"
echo "${G}predictions:${N} $ANSWER"

# ---------------------------------------------------------------- digits (ONNX, no code)
step "Deploying the ONNX digits model with no code (examples/onnx-digits/model.onnx)"
cd "$EX/onnx-digits"
if "$BIN" model show digits -o json >/dev/null 2>&1; then
  echo "digits is already registered; reusing it"
else
  ms model register -n digits -p model.onnx --model-framework Onnx --tag example=digits \
    --description "LogisticRegression on load_digits, written as ONNX (Gemm + Softmax)"
fi
ms model deploy -n digits-svc -m digits -dc deploymentconfig.json --overwrite --show-output >/dev/null
DKEY=$("$BIN" service get-keys digits-svc -o json | json_field primaryKey)
DURI=$("$BIN" service show digits-svc -o json | json_field scoringUri)
[ -n "$DKEY" ] && [ -n "$DURI" ] || die "could not read the key or the scoring URI of digits-svc"

step "Scoring two 8x8 digit images (Azure-style /score)"
show "curl -H \"Authorization: Bearer \$DKEY\" -H 'Content-Type: application/json' -d @sample-request.json $DURI"
ANSWER=$(curl -sS --fail-with-body -H "Authorization: Bearer $DKEY" -H 'Content-Type: application/json' \
  -d @sample-request.json "$DURI") || die "scoring failed: $ANSWER"
echo "${G}answer:${N} $ANSWER"

# ---------------------------------------------------------------- next steps
step "Done: two services are running"
"$BIN" service list

if [ "${QUICKSTART_EXIT:-0}" = 1 ]; then
  echo "QUICKSTART_EXIT=1: stopping the server"
  exit 0
fi

REL=${DATA_DIR#"$ROOT"/}
cat <<EOF

${B}Try next${N}, in another terminal at $ROOT:

  export MODELSHIP_DATA_DIR=\$PWD/$REL     # lets the CLI find this server and its admin token
  bin/modelship service show diabetes-svc
  bin/modelship service get-logs diabetes-svc --tail 20
  KEY=\$(bin/modelship service get-keys diabetes-svc -o json | sed -n 's/.*"primaryKey": *"\\([^"]*\\)".*/\\1/p')
  curl -H "Authorization: Bearer \$KEY" -H 'Content-Type: application/json' \\
       -d @examples/diabetes/sample-request.json $URI
  curl -H "Authorization: Bearer \$KEY" ${URI%/score}/swagger.json
  bin/modelship service regen-key diabetes-svc --key Primary
  bin/modelship service update diabetes-svc --num-replicas 2 --autoscale-enabled=false --show-output
  bin/modelship service delete digits-svc
  # Run one replica yourself, as Azure's azmlinfsrv, and call Open Inference Protocol v2:
  bin/modelship serve-model --model-dir examples/onnx-digits --model-name digits --port 5001 &
  curl -d @examples/onnx-digits/sample-infer.json 127.0.0.1:5001/v2/models/digits/infer

The server log is $LOG. Press Ctrl-C to stop the server (services come back at the next start).
EOF

# Keep the server in the foreground until Ctrl-C (or until it exits on its own).
SERVING=1
wait "$SERVER_PID" && rc=0 || rc=$?
SERVING=0
die "the server stopped on its own (exit $rc); see $LOG"
