#!/bin/sh
# Runs one of the Procfile's process types, so the image, the Procfile, app.json and the
# compose file can never disagree on a command:
#   entrypoint.sh web|worker|beat|flower     exec that Procfile line
#   entrypoint.sh --print <type>            print the line (used by the tests)
#   entrypoint.sh <anything else> [args]    exec it (e.g. hitl-bridge check)
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
procfile="${PROCFILE:-$here/Procfile}"

line() {
  sed -n "s/^$1:[[:space:]]*//p" "$procfile" | head -n 1
}

if [ "${1:-}" = "--print" ]; then
  line "${2:?usage: entrypoint.sh --print <process type>}"
  exit 0
fi

type="${1:-web}"
cmd=$(line "$type")
if [ -n "$cmd" ]; then
  shift $(( $# > 0 ? 1 : 0 ))
  # The Procfile line is trusted configuration: let the shell expand ${PORT:-...} in it.
  eval "exec $cmd"
fi
exec "$@"
