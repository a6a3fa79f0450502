#!/usr/bin/env bash
# Add folders of photos to the library of the leitmotiv container, then index it.
#
#   scripts/add-images.sh /path/to/photos [/more/photos ...]
#
# Each folder is mounted read-only at its own absolute path, so the library records
# the photos under the paths they have on this machine; the folder is also noted in
# the library (photo-folders.txt in the volume) so that scripts/server.sh mounts it
# again and the web view can offer the original files.
#
# Environment: CONTAINER_ENGINE (docker or podman; default docker), LEITMOTIV_IMAGE
# (default leitmotiv), LEITMOTIV_VOLUME (the library's volume; default
# leitmotiv-library), LEITMOTIV_DATABASE (a database URL, passed on when set).
#
# Exit status: that of `leitmotiv add-directory` (1 when some photos could not be
# added: they are listed by `failures`; the rest is still indexed), or of
# `leitmotiv build-index` when that fails.
set -euo pipefail

if [ $# -eq 0 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
    echo "usage: $0 /path/to/photos [/more/photos ...]" >&2
    exit 2
fi

# shellcheck source=container-settings.sh
. "$(dirname "$0")/container-settings.sh"

mounts=()
folders=()
for folder in "$@"; do
    if [ ! -d "$folder" ]; then
        echo "$0: $folder is not a folder" >&2
        exit 2
    fi
    folder=$(cd "$folder" && pwd -P)
    case $folder in
        *$'\n'* | *:*) echo "$0: cannot mount $folder: its name holds a newline or a colon" >&2
                       exit 2 ;;
    esac
    mounts+=(-v "$folder:$folder:ro")
    folders+=("$folder")
done

run=("$engine" run --rm -v "$volume:/library")
if [ -n "${LEITMOTIV_DATABASE:-}" ]; then run+=(-e LEITMOTIV_DATABASE); fi
# A terminal gets the progress bars.
if [ -t 0 ] && [ -t 1 ]; then run+=(-it); fi

# Note the folders first (once each), so that an interrupted run is served too.
printf '%s\n' "${folders[@]}" | "$engine" run --rm -i -v "$volume:/library" \
    --entrypoint sh "$image" -c \
    'touch photo-folders.txt && sort -u -o photo-folders.txt photo-folders.txt -'

status=0
"${run[@]}" "${mounts[@]}" "$image" add-directory "${folders[@]}" || status=$?
# 1 means some photos failed and the others went in: index those all the same.
if [ "$status" -gt 1 ]; then exit "$status"; fi
"${run[@]}" "$image" build-index
exit "$status"
