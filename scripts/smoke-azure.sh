#!/usr/bin/env bash
# Smoke test of a deployment: what should work after `azd up`, checked from
# the outside with nothing but `az login` (and curl). It prints one line per
# check (PASS, FAIL, or CHECK for what only a person can judge) and exits
# non-zero if any check failed.
#
#   scripts/smoke-azure.sh                      # the azd environment's app (azd env get-values)
#   scripts/smoke-azure.sh -g RG -n APP         # any app
#   scripts/smoke-azure.sh --local [URL]        # dry run against `dsr local` (default http://127.0.0.1:7071):
#                                               # the same HTTP checks with the printed function key,
#                                               # the Azure-only ones reported as skipped
#
# What it checks: the health probe; an access request submitted with a token
# (and the function key) that completes, and its export link, downloaded with
# plain HTTP; the webhook callback path reachable without a token but
# refusing an unsigned delivery; path tricks on the excluded paths
# (/api/webhooks/../requests, %2e%2e) with a forged principal answered 401;
# the sweeper's timer having run; Application Insights receiving traces.
# Environment: DSR_SMOKE_SUBJECT (default smoke-test@example.invalid) is the
# subject of the access request: use an address nobody has.
set -uo pipefail

local_mode=0
url="" rg="" app="" key="" token=""
subject=${DSR_SMOKE_SUBJECT:-smoke-test@example.invalid}
while [ $# -gt 0 ]; do
	case "$1" in
	--local)
		local_mode=1
		if [ $# -gt 1 ] && [[ "$2" == http* ]]; then url=$2; shift; fi
		;;
	-g) rg=$2; shift ;;
	-n) app=$2; shift ;;
	-h | --help)
		sed -n '2,20p' "$0"
		exit 0
		;;
	*)
		echo "smoke: unknown argument $1 (see --help)" >&2
		exit 2
		;;
	esac
	shift
done

failed=0
pass() { printf 'PASS  %s\n' "$*"; }
fail() { printf 'FAIL  %s\n' "$*"; failed=1; }
check() { printf 'CHECK %s\n' "$*"; }
skip() { printf 'SKIP  %s\n' "$*"; }

need() { command -v "$1" >/dev/null 2>&1 || { echo "smoke: $1 is required" >&2; exit 2; }; }
need curl

if [ $local_mode = 1 ]; then
	url=${url:-http://127.0.0.1:7071}
	root=$(cd "$(dirname "$0")/.." && pwd)
	key=${DSR_LOCAL_FUNCTION_KEY:-$(cat "$root/.local/function-key" 2>/dev/null)}
	[ -n "$key" ] || { echo "smoke: no function key (run make run, or set DSR_LOCAL_FUNCTION_KEY)" >&2; exit 2; }
else
	need az
	if [ -z "$app" ] && command -v azd >/dev/null 2>&1; then
		eval "$(azd env get-values 2>/dev/null | grep -E '^(AZURE_FUNCTION_APP_NAME|AZURE_RESOURCE_GROUP|DSR_AUTH_CLIENT_ID)=')"
		app=${AZURE_FUNCTION_APP_NAME:-} rg=${AZURE_RESOURCE_GROUP:-}
	fi
	[ -n "$app" ] && [ -n "$rg" ] || { echo "smoke: give -g RESOURCE_GROUP -n APP, or run inside the azd project" >&2; exit 2; }
	host=$(az functionapp show -g "$rg" -n "$app" --query defaultHostName -o tsv) || exit 2
	url="https://$host"
	key=$(az functionapp keys list -g "$rg" -n "$app" --query functionKeys.default -o tsv) || exit 2
	client=${DSR_AUTH_CLIENT_ID:-$(az webapp auth show -g "$rg" -n "$app" --query 'properties.identityProviders.azureActiveDirectory.registration.clientId' -o tsv 2>/dev/null)}
	if [ -n "$client" ]; then
		token=$(az account get-access-token --resource "api://$client" --query accessToken -o tsv 2>/dev/null) ||
			fail "no token for api://$client: assign yourself an app role (DSR.Admin, or DSR.Submit + DSR.Read + DSR.Export) on the app registration"
	else
		check "no app registration (DSR_AUTH_CLIENT_ID): the app runs in keys mode; calls carry the function key only"
	fi
fi
api="$url/api"
echo "smoke: $api"

# call METHOD PATH [BODY]: prints "status<TAB>content-type" and leaves the body in $tmp.
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
call() {
	local m=$1 p=$2 body=${3:-}
	local args=(-sS -o "$tmp" -w '%{http_code}\t%{content_type}' -X "$m" -H "x-functions-key: $key")
	[ -n "$token" ] && args+=(-H "Authorization: Bearer $token")
	[ -n "$body" ] && args+=(-H 'Content-Type: application/json' -d "$body")
	curl "${args[@]}" "$api$p"
}
field() { sed -nE "s/.*\"$1\":\"([^\"]*)\".*/\\1/p" "$tmp" | head -1; }

# 1. Health, anonymous.
code=$(curl -sS -o /dev/null -w '%{http_code}' "$api/health")
[ "$code" = 200 ] && pass "health answers 200" || fail "health answered $code"

# 2. An access request end to end, and its export link with plain HTTP.
res=$(call POST /requests "{\"type\":\"access\",\"subject\":{\"email\":\"$subject\"},\"note\":\"smoke test\"}")
id=$(field id)
if [ "${res%%$'\t'*}" = 202 ] && [ -n "$id" ]; then
	pass "access request accepted ($id)"
	state=""
	for _ in $(seq 1 90); do
		call GET "/requests/$id" >/dev/null
		state=$(field state)
		case "$state" in completed | failed | rejected | cancelled) break ;; esac
		sleep 2
	done
	if [ "$state" = completed ]; then
		pass "access request completed"
		res=$(call POST "/requests/$id/export-link")
		link=$(field url)
		if [ "${res%%$'\t'*}" = 200 ] && [ -n "$link" ]; then
			magic=$(curl -sS "$link" | head -c 2)
			[ "$magic" = PK ] && pass "export link downloads a ZIP with plain HTTP" || fail "export link did not download a ZIP"
		else
			fail "export-link answered ${res%%$'\t'*}"
		fi
	else
		fail "access request ended ${state:-unknown} (GET /api/requests/$id says why)"
	fi
else
	fail "submitting an access request answered ${res%%$'\t'*}: $(head -c 300 "$tmp")"
fi

# 3. The webhook callback path is excluded from App Service Authentication
# (no token) but the app refuses an unsigned delivery: the answer must come
# from the app (problem+json), not from the platform.
res=$(curl -sS -o "$tmp" -w '%{http_code}\t%{content_type}' -X POST -H 'Content-Type: application/json' -d '{}' \
	"$api/webhooks/smoke/r0000000000000000000000000000")
case "$res" in
4??$'\t'application/problem+json*) pass "webhook path reaches the app without a token and refuses an unsigned call (${res%%$'\t'*})" ;;
*) fail "webhook path answered $res: expected the app's 4xx problem+json" ;;
esac

# 4. Path tricks on the excluded paths with a forged principal and no
# token (and no function key) must not reach a protected function; a
# redirect to the cleaned path is followed (with the same headers).
forged=$(printf '{"auth_typ":"aad","claims":[{"typ":"roles","val":"DSR.Admin"}]}' | base64 | tr -d '\n')
for p in "/webhooks/../requests" "/webhooks/%2e%2e/requests" "/webhooks/%2E%2E/requests" "/health/../requests"; do
	code=$(curl -sS -L --max-redirs 3 --path-as-is -o /dev/null -w '%{http_code}' -H "X-MS-CLIENT-PRINCIPAL: $forged" -H 'X-MS-CLIENT-PRINCIPAL-NAME: attacker' "$api$p")
	case "$code" in
	401 | 403 | 404) pass "path trick $p with a forged principal answered $code" ;;
	*) fail "path trick $p with a forged principal answered $code (want 401)" ;;
	esac
done

# 5 and 6. The sweeper's timer and Application Insights (Azure only).
if [ $local_mode = 1 ]; then
	skip "sweeper timer and Application Insights: Azure only (dsr local runs the sweeper on its own schedule)"
else
	ai=$(az monitor app-insights component show -g "$rg" --query '[0].name' -o tsv 2>/dev/null)
	if [ -n "$ai" ]; then
		n=$(az monitor app-insights query -g "$rg" --app "$ai" --analytics-query 'traces | where timestamp > ago(1h) | count' \
			--query 'tables[0].rows[0][0]' -o tsv 2>/dev/null)
		[ "${n:-0}" -gt 0 ] 2>/dev/null && pass "Application Insights received $n traces in the last hour" ||
			fail "Application Insights shows no traces in the last hour (az extension add -n application-insights, or check the portal)"
		s=$(az monitor app-insights query -g "$rg" --app "$ai" --analytics-query 'traces | where timestamp > ago(1h) and message has "sweep done" | count' \
			--query 'tables[0].rows[0][0]' -o tsv 2>/dev/null)
		[ "${s:-0}" -gt 0 ] 2>/dev/null && pass "the sweeper ran ($s sweeps in the last hour)" ||
			check "no 'sweep done' trace in the last hour: the timer runs every 5 minutes; look again after a few minutes"
	else
		check "Application Insights not found in $rg: check traces and the sweeper ('sweep done') in the portal"
	fi
fi

check "by hand: the audit container's retention policy (docs/deploy.md, 'Lock the audit retention policy')"
[ $failed = 0 ] && echo "smoke: all checks passed" || echo "smoke: some checks FAILED"
exit $failed
