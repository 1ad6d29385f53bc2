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
exec bentolite serve /bundle --host 0.0.0.0 --port 3000 "$@"
