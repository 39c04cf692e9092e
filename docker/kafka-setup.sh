#!/usr/bin/env bash
# One-shot Kafka security setup of the compose deployment (service `kafka-setup`).
#
# Runs in the Kafka image as the broker's `admin` user (SASL PLAIN over TLS),
# and is idempotent, so it runs on every `docker compose up`. It first refuses
# any password that is empty, a known placeholder or shorter than 16 characters
# (secret-checks.sh). Then it:
#   1. creates or updates the SCRAM-SHA-512 credentials of RASD_KAFKA_USERNAME;
#   2. grants that user, on the topics and consumer groups whose names start
#      with "<namespace>.", what the pipeline does (read, write, create, delete,
#      describe), and describing the cluster; nothing else: no other topic, no
#      ACL or user changes.
# No password is ever on a command line: the admin's login and rasd's
# credentials go to the tools in private files (mode 0600, in a tmpfs).
set -euo pipefail

: "${KAFKA_ADMIN_PASSWORD:?KAFKA_ADMIN_PASSWORD is not set}"
: "${RASD_KAFKA_USERNAME:?RASD_KAFKA_USERNAME is not set}"
: "${RASD_KAFKA_PASSWORD:?RASD_KAFKA_PASSWORD is not set}"
RASD_NAMESPACE="${RASD_NAMESPACE:-rasd}"
BOOTSTRAP="${KAFKA_BOOTSTRAP:-kafka:9092}"
CA="${KAFKA_CA_CERT:-/certs/ca/ca.crt}"
BIN=/opt/kafka/bin

die() { echo "kafka-setup: $*" >&2; exit 1; }

[[ "$RASD_NAMESPACE" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
    || die "RASD_NAMESPACE must match ^[a-z0-9][a-z0-9_-]*\$, got '$RASD_NAMESPACE'"
[[ "$RASD_KAFKA_USERNAME" =~ ^[A-Za-z0-9_.@-]+$ ]] \
    || die "RASD_KAFKA_USERNAME may use letters, digits and _ . @ - only"
[[ "$RASD_KAFKA_USERNAME" != admin ]] || die "RASD_KAFKA_USERNAME must not be the broker's admin"
# shellcheck source=secret-checks.sh
source "$(dirname "$0")/secret-checks.sh"
for var in KAFKA_ADMIN_PASSWORD RASD_KAFKA_PASSWORD; do
    check_secret "$var"
done

# JAAS and SCRAM values are double-quoted: escape backslashes and quotes.
quote() {
    local s=${1//\\/\\\\}
    printf '%s' "${s//\"/\\\"}"
}

umask 077
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
printf '%s\n' security.protocol=SASL_SSL sasl.mechanism=PLAIN \
    ssl.truststore.type=PEM "ssl.truststore.location=$CA" >"$work/admin.properties"
printf 'sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required username="admin" password="%s";\n' \
    "$(quote "$KAFKA_ADMIN_PASSWORD")" >>"$work/admin.properties"
printf 'SCRAM-SHA-512=[iterations=8192,password=%s]\n' "$RASD_KAFKA_PASSWORD" >"$work/scram.properties"

echo "kafka-setup: SCRAM-SHA-512 user $RASD_KAFKA_USERNAME"
"$BIN/kafka-configs.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$work/admin.properties" \
    --alter --entity-type users --entity-name "$RASD_KAFKA_USERNAME" \
    --add-config-file "$work/scram.properties"

acl() {  # acl RESOURCE-OPTIONS... -- OPERATIONS...
    "$BIN/kafka-acls.sh" --bootstrap-server "$BOOTSTRAP" --command-config "$work/admin.properties" \
        --add --allow-principal "User:$RASD_KAFKA_USERNAME" "$@"
}
prefix="${RASD_NAMESPACE}."
echo "kafka-setup: ACLs of User:$RASD_KAFKA_USERNAME on topics and groups $prefix*"
acl --resource-pattern-type prefixed --topic "$prefix" \
    --operation Read --operation Write --operation Create --operation Delete \
    --operation Describe --operation DescribeConfigs
acl --resource-pattern-type prefixed --group "$prefix" \
    --operation Read --operation Describe --operation Delete
acl --resource-pattern-type prefixed --transactional-id "$prefix" \
    --operation Write --operation Describe
acl --cluster --operation Describe
echo "kafka-setup: done"
