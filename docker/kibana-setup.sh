#!/usr/bin/env bash
# One-shot Kibana objects of the compose deployment (service `kibana-setup`).
#
# Runs in the rasd image once Kibana is healthy, as `elastic` (importing saved
# objects needs Kibana privileges the rasd user does not have). It imports
# config/kibana/rasd.ndjson through Kibana's saved-objects API, overwriting:
# the data views <namespace>-articles* (time field published_at) and
# <namespace>-alerts* (created_at), the saved searches (latest articles, and a
# precise and a stemmed one per example rule) and the "rasd overview" dashboard.
# `rasd kibana setup` retries while Kibana still answers 503, so it is
# idempotent and safe to run on every `up`.
set -euo pipefail

: "${ELASTIC_PASSWORD:?ELASTIC_PASSWORD is not set}"
export RASD_KIBANA_URL="${RASD_KIBANA_URL:-http://kibana:5601}"
export RASD_KIBANA_USERNAME="${RASD_KIBANA_USERNAME:-elastic}"
export RASD_KIBANA_PASSWORD="$ELASTIC_PASSWORD"

exec rasd kibana setup
