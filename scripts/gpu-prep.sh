#!/bin/sh
# gpu-prep.sh: run HERE (Debian), before sending the tree to a GPU machine
# that has no package registry.  Extracts the headers and static libraries
# kvmm needs and that machine lacks (liburing, libnuma, xxhash, Check) from
# Debian's packages into .gpu-deps/ (git-ignored).  mk/config.mk picks them up
# automatically when the folder exists.  See docs/testing.md.
set -eu
cd "$(dirname "$0")/.."
dest=.gpu-deps
pkgs="liburing-dev libnuma-dev libxxhash-dev check libsubunit-dev"
rm -rf "$dest"
mkdir -p "$dest/debs"
(cd "$dest/debs" && apt-get download $pkgs >/dev/null 2>&1) || {
	apt-get update -qq && (cd "$dest/debs" && apt-get download $pkgs >/dev/null)
}
for d in "$dest"/debs/*.deb; do
	dpkg-deb -x "$d" "$dest"
done
rm -rf "$dest/debs" "$dest/usr/share"
# Keep only the static archives, so the GPU machine links them in and needs
# no shared library it does not have.  libnuma is the exception: its archive
# uses initial-exec TLS, which cannot go into libkvmm.so, and the GPU
# machine has libnuma.so.1 anyway; only its header is carried.
find "$dest/usr/lib" -name '*.so' -delete
rm -f "$dest/usr/lib/x86_64-linux-gnu/libnuma.a"
echo "gpu-prep: $(du -sh "$dest" | cut -f1) in $dest:"
find "$dest/usr/lib" -name '*.a' | sed 's/^/  /'
