#!/usr/bin/env bash
# One-shot security setup of the compose deployment (service `es-setup`).
#
# Runs in the Elasticsearch image (it has bash and curl) as the `elastic`
# superuser, over HTTPS (trusting the deployment's CA, ES_CA_CERT), and is
# idempotent, so it runs on every `docker compose up`. It first refuses any
# password that is empty, a known placeholder or shorter than 16 characters
# (secret-checks.sh). Then it:
#   1. sets the password of the built-in `kibana_system` user (Kibana's own
#      connection to Elasticsearch) to KIBANA_PASSWORD;
#   2. puts the role `<namespace>_pipeline`: cluster `monitor` (the client's
#      product check) and `manage_index_templates` (`rasd index create`, and
#      every worker at start), and all privileges on the indices, aliases and
#      templates `<namespace>-*`, nothing else;
#   3. creates or updates the user RASD_ES_USERNAME with RASD_ES_PASSWORD and
#      that role: the rasd services never use the superuser.
# Changing a password in .env and running `docker compose up -d` again applies
# it (except ELASTIC_PASSWORD, which only seeds the first start; see
# docs/deploy.md).
set -euo pipefail

ES_URL="${ES_URL:-https://elasticsearch:9200}"
ES_CA_CERT="${ES_CA_CERT:-/certs/ca/ca.crt}"
: "${ELASTIC_PASSWORD:?ELASTIC_PASSWORD is not set}"
: "${KIBANA_PASSWORD:?KIBANA_PASSWORD is not set}"
: "${RASD_ES_USERNAME:?RASD_ES_USERNAME is not set}"
: "${RASD_ES_PASSWORD:?RASD_ES_PASSWORD is not set}"
RASD_NAMESPACE="${RASD_NAMESPACE:-rasd}"

die() { echo "es-setup: $*" >&2; exit 1; }

# Same rule as rasd's own setting (pipeline/settings.py).
[[ "$RASD_NAMESPACE" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
    || die "RASD_NAMESPACE must match ^[a-z0-9][a-z0-9_-]*\$, got '$RASD_NAMESPACE'"
[[ "$RASD_ES_USERNAME" =~ ^[A-Za-z0-9_.@-]+$ ]] \
    || die "RASD_ES_USERNAME may use letters, digits and _ . @ - only"
# shellcheck source=secret-checks.sh
source "$(dirname "$0")/secret-checks.sh"
for var in ELASTIC_PASSWORD KIBANA_PASSWORD RASD_ES_PASSWORD; do
    check_secret "$var"
done

# Escape a value for a double-quoted JSON string or curl config string.
quote() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

# The superuser's credentials go to curl in a private config file, and request
# bodies (which hold passwords) on its stdin, never on a command line that `ps`
# would show. Responses are printed: none holds a secret.
umask 077
auth=$(mktemp)
trap 'rm -f "$auth"' EXIT
printf 'user = "elastic:%s"\n' "$(quote "$ELASTIC_PASSWORD")" >"$auth"

es() {  # es METHOD PATH [JSON BODY]; the body goes on stdin (printf is a builtin)
    local method=$1 path=$2 body=${3:-}
    printf '%s' "$body" | curl --silent --show-error --fail-with-body --config "$auth" \
        --cacert "$ES_CA_CERT" -X "$method" -H 'Content-Type: application/json' \
        "$ES_URL$path" ${body:+--data-binary @-}
    echo
}

echo "es-setup: waiting for Elasticsearch at $ES_URL"
for _ in $(seq 1 60); do
    if es GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null 2>&1; then
        break
    fi
    sleep 2
done
es GET '/_cluster/health?wait_for_status=yellow&timeout=5s' >/dev/null \
    || die "Elasticsearch is not reachable with the elastic user (is ELASTIC_PASSWORD the one it first started with?)"

echo "es-setup: kibana_system password"
es POST /_security/user/kibana_system/_password \
    "{\"password\": \"$(quote "$KIBANA_PASSWORD")\"}"

role="${RASD_NAMESPACE}_pipeline"
echo "es-setup: role $role on ${RASD_NAMESPACE}-*"
es PUT "/_security/role/$role" "{
  \"cluster\": [\"monitor\", \"manage_index_templates\"],
  \"indices\": [{\"names\": [\"${RASD_NAMESPACE}-*\"], \"privileges\": [\"all\"]}],
  \"metadata\": {\"managed_by\": \"rasd es-setup\"}
}"

if [[ "$RASD_ES_USERNAME" == "elastic" ]]; then
    echo "es-setup: warning: RASD_ES_USERNAME=elastic, the rasd services run as the superuser" >&2
else
    echo "es-setup: user $RASD_ES_USERNAME with role $role"
    es PUT "/_security/user/$RASD_ES_USERNAME" "{
  \"password\": \"$(quote "$RASD_ES_PASSWORD")\",
  \"roles\": [\"$role\"],
  \"full_name\": \"rasd pipeline ($RASD_NAMESPACE)\"
}"
fi
echo "es-setup: done"
