# Sourced by es-setup.sh and kafka-setup.sh: refuse a secret that is a known
# placeholder or shorter than 16 characters, so that a copied .env.example, or
# an old .env with its "change-me" values, never runs with a published password.
#   check_secret VARIABLE_NAME
check_secret() {
    local name=$1 value=${!1:-}
    local lower=${value,,}
    [[ -n "$value" ]] || { echo "$0: $name is empty: set it in .env" >&2; exit 1; }
    case "$lower" in
        *change-me*|*changeme*|*change_me*|*password*|*secret*|*example*|*placeholder*|*xxxx*)
            echo "$0: $name is a placeholder: set a random one in .env (openssl rand -hex 24)" >&2
            exit 1 ;;
    esac
    (( ${#value} >= 16 )) \
        || { echo "$0: $name has ${#value} characters; at least 16 are needed" >&2; exit 1; }
}
