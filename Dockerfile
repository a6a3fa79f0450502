# syntax=docker/dockerfile:1
#
# leitmotiv in a container: the web view on port 5000, the library in the volume
# /library.  Build with `docker build -t leitmotiv .` (or podman); README.md,
# section "Docker", has the build options and the scripts that run it.
#
# Build arguments:
#   BASE_IMAGE           image with Python 3.11+ (python3 -m venv must work) for both
#                        stages; the builder installs a C compiler if it has none
#   EXTRA_CA_CERTS       PEM text of extra CA certificates, for a network whose HTTPS
#                        goes through an intercepting proxy: pip trusts them while the
#                        builder downloads packages (the runtime image never uses them)
#   PIP_INDEX_URL        a package index (mirror) to use instead of PyPI
#   PIP_EXTRA_INDEX_URL  more package indexes, space-separated
#   PIP_TRUSTED_HOST     hosts to trust without HTTPS, space-separated
ARG BASE_IMAGE=python:3.11-slim-bookworm

FROM ${BASE_IMAGE} AS builder
ARG EXTRA_CA_CERTS=""
ARG PIP_INDEX_URL=""
ARG PIP_EXTRA_INDEX_URL=""
ARG PIP_TRUSTED_HOST=""
# pip's cache stays on: the wheel's build environment and the install then download
# NumPy and SciPy once; the builder stage is not part of the image.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 DEBIAN_FRONTEND=noninteractive

# The Cython kernels need a C compiler with OpenMP; slim Python images have none.
RUN if ! command -v cc >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends build-essential \
        && rm -rf /var/lib/apt/lists/*; \
    fi

# The extra certificates join the system bundle, one file each as
# update-ca-certificates expects, and pip is then told to use that bundle (pip's own
# would not know them).
RUN if [ -n "$EXTRA_CA_CERTS" ]; then \
        command -v update-ca-certificates >/dev/null \
            || { echo "EXTRA_CA_CERTS needs the ca-certificates package in the base image" >&2; exit 1; }; \
        mkdir -p /usr/local/share/ca-certificates \
        && printf '%s\n' "$EXTRA_CA_CERTS" | awk \
            '/-----BEGIN CERTIFICATE-----/ { n++ }; \
             n { print > ("/usr/local/share/ca-certificates/leitmotiv-build-" n ".crt") }' \
        && { ls /usr/local/share/ca-certificates/leitmotiv-build-*.crt >/dev/null 2>&1 \
             || { echo "EXTRA_CA_CERTS holds no PEM certificate" >&2; exit 1; }; } \
        && update-ca-certificates; \
    fi
RUN python3 -m venv /opt/leitmotiv

# Wheels of leitmotiv (the compiled extension inside) and of each first-party plugin,
# then one environment with them, their dependencies and the PostgreSQL driver.
# A pip option left empty must be unset, not passed on as an empty value.
COPY . /src
RUN [ -n "$PIP_INDEX_URL" ] || unset PIP_INDEX_URL; \
    [ -n "$PIP_EXTRA_INDEX_URL" ] || unset PIP_EXTRA_INDEX_URL; \
    [ -n "$PIP_TRUSTED_HOST" ] || unset PIP_TRUSTED_HOST; \
    if [ -f /etc/ssl/certs/ca-certificates.crt ]; then \
        export PIP_CERT=/etc/ssl/certs/ca-certificates.crt; \
    fi; \
    /opt/leitmotiv/bin/pip wheel --no-deps --wheel-dir /wheels /src /src/plugins/leitmotiv-* \
    && /opt/leitmotiv/bin/pip install /wheels/*.whl "leitmotiv[postgres]"

FROM ${BASE_IMAGE} AS runtime
ENV DEBIAN_FRONTEND=noninteractive
# The kernels are linked against the compiler's OpenMP runtime; a compiler-less
# base image lacks it.
RUN if ! ldconfig -p | grep -q 'libgomp\.so\.1 '; then \
        apt-get update && apt-get install -y --no-install-recommends libgomp1 \
        && rm -rf /var/lib/apt/lists/*; \
    fi \
    && useradd --create-home --uid 1000 --user-group leitmotiv \
    && mkdir /library && chown leitmotiv:leitmotiv /library
COPY --from=builder /opt/leitmotiv /opt/leitmotiv
ENV PATH=/opt/leitmotiv/bin:$PATH \
    LEITMOTIV_LIBRARY=/library \
    PYTHONUNBUFFERED=1
USER leitmotiv
# Fail the build, not the first run, if the kernels cannot load here.
RUN leitmotiv plugins
WORKDIR /library
VOLUME /library
EXPOSE 5000
ENTRYPOINT ["leitmotiv"]
CMD ["serve", "--host", "0.0.0.0", "--port", "5000"]
