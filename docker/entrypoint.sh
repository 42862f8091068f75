#!/bin/sh
# The container's entrypoint. It replaces itself with presence-gateway (exec), so that the
# container's stop signal reaches the gateway and its graceful shutdown runs. Arguments are
# presence-gateway's; arguments that start with a flag (or none) mean `serve` with those flags,
# so `docker run IMAGE --demo` works. Settings come from GATEWAY_* variables.
set -eu

case "${1:-}" in
  "" | -*) set -- serve "$@" ;;
esac

exec presence-gateway "$@"
