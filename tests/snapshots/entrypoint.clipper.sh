#!/bin/sh
# Entrypoint of a bentolite Clipper model container serving API predict_clipper.
#   docker run IMAGE              start it
#   docker run IMAGE --opt ...    start it with extra options
#   docker run IMAGE CMD ...      run CMD instead (a shell, for instance)
set -e
case "${1:-}" in
    "" | -*) ;;
    *) exec "$@" ;;
esac
exec python -m bentolite.clipper /model --api predict_clipper "$@"
