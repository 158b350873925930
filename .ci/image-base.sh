#!/usr/bin/env bash
# A local Python base image for the Dockerfile, on a machine that reaches no container registry:
# a Debian bookworm root filesystem made by debootstrap from the machine's own configured Debian
# mirror, with Python 3.11, imported into podman. Prints the image name, for
#   podman build --build-arg PYTHON_IMAGE=<it> .
# The root filesystem is cached as a tarball (and the imported image kept by podman), keyed by
# the suite and package list, so only the first run on a machine pays for debootstrap.
set -euo pipefail
export CONTAINERS_CONF="${CONTAINERS_CONF:-$(cd "$(dirname "$0")" && pwd)/containers.conf}"

SUITE=bookworm
PACKAGES=python3,python3-venv,python3-pip,python-is-python3,ca-certificates
CACHE=${AUTOGLUE_CI_CACHE:-/var/cache/autoglue-ci}
key=$(printf '%s %s v1' "$SUITE" "$PACKAGES" | sha256sum | cut -c1-12)
image=localhost/autoglue-python-base:$key

if podman image exists "$image"; then
  echo "$image"
  exit 0
fi

# The first Debian archive the machine's apt uses (deb822 .sources or one-line format).
mirror() {
  local files=(/etc/apt/sources.list.d/*.sources /etc/apt/sources.list /etc/apt/sources.list.d/*.list)
  local uri
  uri=$(grep -hsE '^URIs:' "${files[@]}" | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  [ -n "$uri" ] || uri=$(grep -hsE '^deb ' "${files[@]}" | awk '{print $2}' | grep -E '/debian/?$' | head -1 || true)
  [ -n "$uri" ] || { echo "image-base: no Debian archive in the apt sources" >&2; exit 1; }
  echo "$uri"
}

tarball=$CACHE/python-base-$key.tar
if [ ! -s "$tarball" ]; then
  mkdir -p "$CACHE"
  root=$(mktemp -d /var/tmp/autoglue-base.XXXXXX)
  trap 'rm -rf "$root"' EXIT
  debootstrap --variant=minbase --include="$PACKAGES" "$SUITE" "$root" "$(mirror)" >&2
  # As Debian's official images do: no downloaded .deb files or package caches are kept after an
  # install (each `apt-get install` layer would otherwise carry them, about 86 MB here).
  cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'CONF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
CONF
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/cache/apt/*.bin "$root"/var/lib/apt/lists/*
  tar -C "$root" --numeric-owner -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
fi

podman import --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$tarball" "$image" >&2
echo "$image"
