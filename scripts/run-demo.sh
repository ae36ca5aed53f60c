#!/usr/bin/env bash
# What `make run` runs after scripts/setup-host.sh: a demo VM "demo" from the tiny template
# (created and started if absent), then `vmdeck serve`, with the address and credentials printed.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
VMDECK=.venv/bin/vmdeck
HOST="${VMDECK_HOST:-127.0.0.1}"
PORT="${VMDECK_PORT:-8470}"

say() { printf '\033[1m[run]\033[0m %s\n' "$*"; }

bash scripts/fetch-web-assets.sh

state=""
if shown="$("$VMDECK" show demo --json 2>/dev/null)"; then
    state="$(printf '%s' "$shown" | .venv/bin/python -c 'import json,sys; print(json.load(sys.stdin)["state"])')"
fi
if [ -z "$state" ]; then
    say "creating the demo VM 'demo' from the tiny template"
    "$VMDECK" create demo --template tiny --start --wait
elif [ "$state" = "shut off" ] || [ "$state" = "crashed" ]; then
    say "starting the demo VM 'demo'"
    "$VMDECK" start demo --wait
else
    say "demo VM 'demo' is $state"
fi

say "open http://$HOST:$PORT/ and sign in as 'admin'"
if [ -n "${VMDECK_ADMIN_PASSWORD:-}" ]; then
    say "password: the one in VMDECK_ADMIN_PASSWORD"
else
    say "password: printed below on the first start (a one-time password; later starts keep the account)"
    say "missed it? as root: $VMDECK user passwd admin   (prints a new password; --password-stdin to choose one)"
fi
exec "$VMDECK" serve --host "$HOST" --port "$PORT"
