#!/bin/sh
# Install one layer's part of requirements/lock.txt (heavy.txt, medium.txt or
# light.txt, written by lockfile.py split). Both Dockerfiles run it from a
# bind mount in their install steps, which supply the mounts it uses:
#   /var/cache/lockstep-pip   cache mount of downloaded wheels
#   /run/secrets/extra_ca     optional BuildKit secret: extra CAs for pip
#   /tmp                      tmpfs, so nothing written there reaches the layer
#
# Usage: sh install-layer.sh REQUIREMENTS_FILE
set -eu

requirements=$1
wheels=/var/cache/lockstep-pip

# pip replaces its CA list with PIP_CERT, so the extra CAs join the system ones.
if grep -qs 'BEGIN CERTIFICATE' /run/secrets/extra_ca; then
    cat /etc/ssl/certs/ca-certificates.crt /run/secrets/extra_ca >/tmp/ca.pem
    export PIP_CERT=/tmp/ca.pem
fi

# A plain wheel folder rather than pip's HTTP cache: pip caches only
# responses that carry caching headers, and some indexes, mirrors and proxies
# send none. Downloading first means a rebuild fetches only wheels the folder lacks.
pip download --no-cache-dir --require-hashes --no-deps --only-binary=:all: \
    --dest "$wheels" -r "$requirements"

touch /tmp/started
pip install --no-cache-dir --no-index --find-links "$wheels" \
    --require-hashes --no-deps --only-binary=:all: --no-compile -r "$requirements"

# pip compiles bytecode one file at a time; compileall -j 0 uses every CPU.
# It runs on the top-level entries this step created. Like pip's own compile
# step, it reports files that do not compile (tests written for other
# Python versions, say) without failing the build.
site=$(python -c 'import sysconfig; print(sysconfig.get_path("purelib"))')
find "$site" -mindepth 1 -maxdepth 1 -newer /tmp/started -exec python -m compileall -q -j 0 {} + \
    || echo "install-layer: some files did not compile (listed above); the modules still import from source."
