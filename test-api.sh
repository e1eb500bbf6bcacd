#!/usr/bin/env bash
# The original project's API test script (curl + jq), against a running stack: `make dev`, then
# `make test-api` (or ./test-api.sh). Follows the README's examples; exits non-zero if any check
# fails. IPS_URL (default http://localhost:8080) picks the API, IPS_TOKEN adds a bearer token,
# IPS_WAIT_SECONDS bounds the wait for a task to finish (default 120).
set -uo pipefail

BASE="${IPS_URL:-http://localhost:8080}"
BASE="${BASE%/}"
API="$BASE/api/v1/tasks"
WAIT="${IPS_WAIT_SECONDS:-120}"
PASS=0
FAIL=0
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT

for tool in curl jq; do
  command -v "$tool" >/dev/null || { echo "test-api.sh needs $tool" >&2; exit 2; }
done

AUTH=()
if [ -n "${IPS_TOKEN:-}" ]; then AUTH=(-H "Authorization: Bearer ${IPS_TOKEN}"); fi

# req METHOD URL [BODY] [extra curl args...] -> sets CODE, BODY ($TMP/body), HEADERS ($TMP/headers)
req() {
  local method="$1" url="$2" data="${3-}"
  shift 3 2>/dev/null || shift $#
  local args=(-sS -X "$method" -o "$TMP/body" -D "$TMP/headers" -w '%{http_code}' "${AUTH[@]}")
  if [ -n "$data" ]; then args+=(-H "Content-Type: application/json" --data-binary "$data"); fi
  CODE="$(curl "${args[@]}" "$@" "$url" 2>"$TMP/curl-err")" || CODE="000"
  BODY="$(cat "$TMP/body" 2>/dev/null || true)"
}

ok() { PASS=$((PASS + 1)); printf '  ok    %s\n' "$1"; }
bad() { FAIL=$((FAIL + 1)); printf '  FAIL  %s\n        got HTTP %s: %s\n' "$1" "$CODE" "${BODY:0:400}"; }

# check NAME EXPECTED_CODES JQ_FILTER: the status is one of EXPECTED_CODES (space-separated) and
# the jq filter (run on the body) is true.
check() {
  local name="$1" codes="$2" filter="${3:-true}"
  if [[ " $codes " == *" $CODE "* ]] && jq -e "$filter" >/dev/null 2>&1 <<<"$BODY"; then
    ok "$name"
  else
    bad "$name"
  fi
}

ENVELOPE='(.error | type == "string") and (.details | type == "string") and (.details | length > 0)'
TASK_ID_RE='^task-[0-9]{8}-[0-9]{6}-[0-9a-f]{8}$'
TS_RE='^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]+)?Z$'

echo "IPS API checks against $BASE"

echo "== health"
req GET "$BASE/healthz"
check "GET /healthz is 200" "200" '.status == "ok"'
req GET "$BASE/readyz"
check "GET /readyz is 200 (Temporal answers)" "200"

echo "== create (README example)"
req POST "$API" '{"images": ["nginx:latest", "redis:7"], "batchSize": 10}'
check "POST /api/v1/tasks is 201 with the README's fields" "201" "
  (.taskId | test(\"$TASK_ID_RE\")) and .status == \"pending\"
  and .images == [\"nginx:latest\", \"redis:7\"] and .batchSize == 10
  and (.createdAt | test(\"$TS_RE\"))"
TASK_ID="$(jq -r '.taskId // empty' <<<"$BODY" 2>/dev/null)"
if grep -qi "^location: /api/v1/tasks/$TASK_ID" "$TMP/headers"; then ok "Location header names the task"; else bad "Location header names the task"; fi
echo "Task created: $TASK_ID"

echo "== create with a node selector"
req POST "$API" '{"images": ["busybox:latest"], "batchSize": 50, "nodeSelector": {"pool": "compute"}}'
check "POST with nodeSelector is 201" "201" '.nodeSelector == {"pool": "compute"}'
SEL_ID="$(jq -r '.taskId // empty' <<<"$BODY" 2>/dev/null)"

echo "== get"
req GET "$API/$TASK_ID"
check "GET /api/v1/tasks/{id} has the README's fields" "200" "
  .taskId == \"$TASK_ID\" and (.status | IN(\"pending\", \"running\", \"completed\", \"failed\", \"cancelled\"))
  and .images == [\"nginx:latest\", \"redis:7\"] and .batchSize == 10
  and (.progress | has(\"totalNodes\") and has(\"completedNodes\") and has(\"failedNodes\")
       and has(\"currentBatch\") and has(\"totalBatches\") and has(\"percentage\"))
  and (.failedNodeDetails | type == \"array\") and (.createdAt | test(\"$TS_RE\"))"

echo "== list"
req GET "$API"
check "GET /api/v1/tasks: {tasks, total, limit 10, offset 0}" "200" '
  (.tasks | type == "array") and (.total | type == "number") and .limit == 10 and .offset == 0
  and ([.tasks[] | has("taskId") and has("status") and has("images") and has("progress")
        and has("createdAt")] | all)'
found=0
for _ in $(seq 1 20); do
  req GET "$API?limit=100"
  [ "$CODE" = 200 ] || break
  if jq -e --arg id "$TASK_ID" '[.tasks[].taskId] | index($id) != null' >/dev/null 2>&1 <<<"$BODY"; then found=1; break; fi
  sleep 0.5
done
if [ "$found" = 1 ]; then ok "the new task is listed"; else bad "the new task is listed"; fi
req GET "$API?status=running&limit=20&offset=0"
check "GET ?status=running&limit=20&offset=0 filters" "200" \
  '.limit == 20 and .offset == 0 and ([.tasks[].status == "running"] | all)'
req GET "$API?limit=1&offset=0"
check "GET ?limit=1 pages" "200" '.limit == 1 and (.tasks | length) <= 1'

echo "== cancel"
req DELETE "$API/$TASK_ID"
case "$CODE" in
  200) check "DELETE is 200 cancelled" "200" \
         ".taskId == \"$TASK_ID\" and .status == \"cancelled\" and .message == \"Task cancelled successfully\"" ;;
  202) check "DELETE is 202 cancelling (not confirmed in 5 s)" "202" '.status == "cancelling"' ;;
  409) check "DELETE of a task that already finished is 409 with its status" "409" \
         "$ENVELOPE and (.status | IN(\"completed\", \"failed\", \"cancelled\"))" ;;
  *) bad "DELETE /api/v1/tasks/{id}" ;;
esac
if [ "$CODE" = 200 ]; then
  req GET "$API/$TASK_ID"
  check "a cancelled task reads as cancelled" "200" '.status == "cancelled"'
  req DELETE "$API/$TASK_ID"
  check "cancelling it again is 409 with status cancelled" "409" "$ENVELOPE and .status == \"cancelled\""
fi

echo "== a task runs to completion"
final=""
deadline=$((SECONDS + WAIT))
while [ $SECONDS -lt $deadline ]; do
  req GET "$API/$SEL_ID"
  [ "$CODE" = 200 ] || break
  final="$(jq -r '.status // empty' <<<"$BODY" 2>/dev/null)"
  case "$final" in completed|failed|cancelled) break ;; esac
  sleep 1
done
check "the nodeSelector task completes within ${WAIT}s" "200" \
  '.status == "completed" and (.finishedAt | type == "string") and .progress.percentage >= 0'

echo "== idempotency"
KEY="test-api-$(date +%s)-$RANDOM"
req POST "$API" '{"images": ["busybox:latest"], "batchSize": 5}' -H "Idempotency-Key: $KEY"
check "POST with Idempotency-Key is 201" "201"
IDEM_ID="$(jq -r '.taskId // empty' <<<"$BODY" 2>/dev/null)"
req POST "$API" '{"images": ["busybox:latest"], "batchSize": 5}' -H "Idempotency-Key: $KEY"
check "the same key and body again is 200 with the same task" "200" ".taskId == \"$IDEM_ID\""
req POST "$API" '{"images": ["busybox:latest"], "batchSize": 6}' -H "Idempotency-Key: $KEY"
check "the same key with another body is 409" "409" "$ENVELOPE"

echo "== bad input"
req POST "$API" '{"images": ["nginx:latest"], "batchSize": 0}'
check "batchSize 0 is 400 naming batchSize" "400" "$ENVELOPE and (.details | test(\"batchSize\"))"
req POST "$API" '{"images": [], "batchSize": 10}'
check "no images is 400 naming images" "400" "$ENVELOPE and (.details | test(\"images\"))"
req POST "$API" '{"images": ["Not A Valid/Image"], "batchSize": 10}'
check "a bad image reference is 400" "400" "$ENVELOPE and (.details | test(\"images\"))"
req POST "$API" '{"images": ["nginx"], "batchSize": 1, "nodeSelector": {"bad key!": "x"}}'
check "a bad label key is 400" "400" "$ENVELOPE and (.details | test(\"nodeSelector\"))"
req POST "$API" '{"images": ["nginx:latest"], "batchSize": '
check "malformed JSON is 400" "400" "$ENVELOPE"
req GET "$API?status=bogus"
check "an unknown status filter is 400" "400" "$ENVELOPE and (.details | test(\"status\"))"
req GET "$API?limit=101"
check "limit 101 is 400" "400" "$ENVELOPE and (.details | test(\"limit\"))"
req GET "$API?offset=-1"
check "a negative offset is 400" "400" "$ENVELOPE and (.details | test(\"offset\"))"
req GET "$API/task-20000101-000000-00000000"
check "an unknown task is 404 with taskId" "404" "$ENVELOPE and .taskId == \"task-20000101-000000-00000000\""
req DELETE "$API/task-20000101-000000-00000000"
check "cancelling an unknown task is 404" "404" "$ENVELOPE"

# Leave nothing running behind us.
req DELETE "$API/$IDEM_ID" >/dev/null

echo
echo "passed: $PASS, failed: $FAIL"
[ "$FAIL" -eq 0 ]
