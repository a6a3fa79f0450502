#!/usr/bin/env bash
# Start or stop the leitmotiv web view in a container.
#
#   scripts/server.sh --start    serve the library on http://127.0.0.1:5000/
#   scripts/server.sh --stop
#
# The photo folders added by scripts/add-images.sh are mounted read-only at their
# own paths, so the web view can offer the original files.
#
# Environment: CONTAINER_ENGINE (docker or podman; default docker), LEITMOTIV_IMAGE
# (default leitmotiv), LEITMOTIV_VOLUME (default leitmotiv-library),
# LEITMOTIV_CONTAINER (the container's name; default leitmotiv-server),
# LEITMOTIV_PORT (port on this machine; default 5000), LEITMOTIV_BIND (address on
# this machine; default 127.0.0.1, use 0.0.0.0 to serve the network),
# LEITMOTIV_DATABASE (a database URL, passed on when set).
set -euo pipefail

# shellcheck source=container-settings.sh
. "$(dirname "$0")/container-settings.sh"
name=${LEITMOTIV_CONTAINER:-leitmotiv-server}
port=${LEITMOTIV_PORT:-5000}
bind=${LEITMOTIV_BIND:-127.0.0.1}

start() {
    if [ -n "$("$engine" ps -q --filter "name=^$name\$")" ]; then
        echo "$name is already running: $0 --stop first" >&2
        exit 1
    fi
    # A container of that name that has ended (a crash, a reboot) is replaced.
    "$engine" rm -f "$name" >/dev/null 2>&1 || true
    local mounts=() folder
    while IFS= read -r folder; do
        if [ -d "$folder" ]; then
            mounts+=(-v "$folder:$folder:ro")
        elif [ -n "$folder" ]; then
            echo "note: $folder is gone; its photos are shown without their original files" >&2
        fi
    done < <("$engine" run --rm -v "$volume:/library" --entrypoint sh "$image" -c \
        'cat photo-folders.txt 2>/dev/null || true')
    local env=()
    if [ -n "${LEITMOTIV_DATABASE:-}" ]; then env=(-e LEITMOTIV_DATABASE); fi
    # --init: the server is not PID 1, so it ends on the SIGTERM of `stop` (a
    # process with PID 1 ignores it and would wait for the kill).
    # (The ${a[@]+"${a[@]}"} form: an empty array under set -u in older bash.)
    "$engine" run -d --init --name "$name" -p "$bind:$port:5000" -v "$volume:/library" \
        ${mounts[@]+"${mounts[@]}"} ${env[@]+"${env[@]}"} "$image" >/dev/null
    # Wait until it listens, so that a failure shows here and not in the browser.
    local waited
    for waited in $(seq 60); do
        if "$engine" logs "$name" 2>&1 | grep -q '^Serving '; then
            echo "leitmotiv serves on http://$bind:$port/ (stop it with $0 --stop)"
            return 0
        fi
        if [ -z "$("$engine" ps -q --filter "name=^$name\$")" ]; then break; fi
        sleep 1
    done
    echo "$name did not start serving within ${waited}s:" >&2
    "$engine" logs "$name" >&2 || true
    "$engine" rm -f "$name" >/dev/null 2>&1 || true
    exit 1
}

stop() {
    if [ -z "$("$engine" ps -aq --filter "name=^$name\$")" ]; then
        echo "$name is not running"
        return 0
    fi
    "$engine" stop --time 10 "$name" >/dev/null
    "$engine" rm -f "$name" >/dev/null 2>&1 || true
    echo "stopped $name"
}

case ${1:-} in
    --start) start ;;
    --stop) stop ;;
    *) echo "usage: $0 --start|--stop" >&2; exit 2 ;;
esac
