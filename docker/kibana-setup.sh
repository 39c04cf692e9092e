#!/usr/bin/env bash
# One-shot Kibana objects of the compose deployment (service `kibana-setup`).
#
# Runs in the Kibana image (it has bash and curl) once Kibana is healthy, and
# is idempotent: it puts two data views, so that Discover opens on rasd's data
# without any clicking:
#   <namespace>-articles  (time field first_seen, set for every article)
#   <namespace>-alerts    (time field created_at)
set -euo pipefail

KIBANA_URL="${KIBANA_URL:-http://kibana:5601}"
: "${ELASTIC_PASSWORD:?ELASTIC_PASSWORD is not set}"
RASD_NAMESPACE="${RASD_NAMESPACE:-rasd}"

die() { echo "kibana-setup: $*" >&2; exit 1; }

[[ "$RASD_NAMESPACE" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
    || die "RASD_NAMESPACE must match ^[a-z0-9][a-z0-9_-]*\$, got '$RASD_NAMESPACE'"

quote() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

umask 077
auth=$(mktemp)
answer=$(mktemp)
trap 'rm -f "$auth" "$answer"' EXIT
printf 'user = "elastic:%s"\n' "$(quote "$ELASTIC_PASSWORD")" >"$auth"

data_view() {  # data_view TITLE NAME TIME_FIELD
    local title=$1 name=$2 time_field=$3
    echo "kibana-setup: data view $title"
    # The answer (the whole data view) is shown only when Kibana refuses.
    if ! curl --silent --show-error --fail-with-body --config "$auth" -X POST \
        -H 'Content-Type: application/json' -H 'kbn-xsrf: rasd' \
        "$KIBANA_URL/api/data_views/data_view" --data-binary "{
  \"override\": true,
  \"data_view\": {\"id\": \"$title\", \"title\": \"$title\", \"name\": \"$name\",
                  \"timeFieldName\": \"$time_field\"}
}" --output "$answer"; then
        cat "$answer" >&2
        echo >&2
        die "could not put the data view $title"
    fi
}

data_view "${RASD_NAMESPACE}-articles" "rasd articles (${RASD_NAMESPACE})" first_seen
data_view "${RASD_NAMESPACE}-alerts" "rasd alerts (${RASD_NAMESPACE})" created_at
echo "kibana-setup: done"
