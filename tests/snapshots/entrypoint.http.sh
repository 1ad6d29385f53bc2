#!/bin/sh
# Entrypoint of a bentolite HTTP server image.
#   docker run IMAGE              start it
#   docker run IMAGE --opt ...    start it with extra options
#   docker run IMAGE CMD ...      run CMD instead (a shell, for instance)
set -e
case "${1:-}" in
    "" | -*) ;;
    *) exec "$@" ;;
esac
# The port: --port, else BENTOLITE_PORT, else PORT (as Cloud Run and Heroku set it), else 3000.
port="${BENTOLITE_PORT:-${PORT:-3000}}"
previous=""
for arg in "$@"; do
    case "$previous" in --port) port="$arg" ;; esac
    case "$arg" in --port=*) port="${arg#--port=}" ;; esac
    previous="$arg"
done
# The HEALTHCHECK reads the port here; a user who cannot write it gets the variables' port.
echo "$port" 2>/dev/null >/run/bentolite/port || true
exec bentolite serve /bundle --host "${BENTOLITE_HOST:-0.0.0.0}" --port "$port" "$@"
