# Settings shared by add-images.sh and server.sh (sourced, not run).
#
# CONTAINER_ENGINE  docker or podman (default docker)
# LEITMOTIV_IMAGE   the image built from the Dockerfile (default leitmotiv)
# LEITMOTIV_VOLUME  the volume holding the library (default leitmotiv-library)
engine=${CONTAINER_ENGINE:-docker}
image=${LEITMOTIV_IMAGE:-leitmotiv}
volume=${LEITMOTIV_VOLUME:-leitmotiv-library}

if ! command -v "$engine" >/dev/null; then
    echo "$0: the container engine '$engine' is not installed; set CONTAINER_ENGINE to docker or podman" >&2
    exit 2
fi
