#!/usr/bin/env bash
# Builds koppel/koppel:<version> from this checkout with no registry: a release build on the
# host, then an image FROM scratch holding the binary, its shared libraries and CA certificates.
# Prints the image tag on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$repo/target}"

(cd "$repo" && cargo build --release --locked -p koppel >&2)
binary="$target_dir/release/koppel"
version="$("$binary" --version | awk '{print $2}')"
tag="koppel/koppel:${version}"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
mkdir -p "$context/rootfs/usr/local/bin" "$context/rootfs/etc/ssl/certs" "$context/rootfs/tmp"
cp "$binary" "$context/rootfs/usr/local/bin/koppel"
# The dynamic loader and every library ldd names, at the same paths as on the host.
for library in $(ldd "$binary" | awk '/=>/ {print $3} /^\t\// {print $1}'); do
  mkdir -p "$context/rootfs$(dirname "$library")"
  cp -L "$library" "$context/rootfs$library"
done
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  cp -L /etc/ssl/certs/ca-certificates.crt "$context/rootfs/etc/ssl/certs/"
fi
cp "$here/Dockerfile" "$context/Dockerfile"
docker build --quiet --tag "$tag" "$context" >&2
echo "built $tag" >&2
echo "$tag"
