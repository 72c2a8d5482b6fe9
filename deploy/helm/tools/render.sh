#!/usr/bin/env bash
# Renders a Helm chart like `helm template`, with deploy/helm/tools/render/main.go
# (text/template + sprig re-implementation of helm's engine; see its header for
# what it does and does not do). Installs nothing: it needs Debian's Go and two
# Go library packages, and says which are missing.
#
#   deploy/helm/tools/render.sh -chart deploy/helm/smollm-cluster -f values.yaml [-output json]
#
# The binary is cached in deploy/helm/tools/.bin/ (git-ignored), keyed by the
# source's hash and the Go version, so only the first run pays the compile.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
gopath=/usr/share/gocode
missing=()
command -v go >/dev/null 2>&1 || missing+=(golang-go)
[[ -d "$gopath/src/github.com/Masterminds/sprig" ]] || missing+=(golang-github-masterminds-sprig-dev)
[[ -d "$gopath/src/sigs.k8s.io/yaml" ]] || missing+=(golang-k8s-sigs-yaml-dev)
# A dependency of the sprig package, imported directly too.
[[ -d "$gopath/src/github.com/Masterminds/semver" ]] || missing+=(golang-github-masterminds-semver-dev)
if ((${#missing[@]} > 0)); then
  echo "render.sh: missing Debian package(s): ${missing[*]}" >&2
  echo "render.sh: install with: apt-get install -y --no-install-recommends ${missing[*]}" >&2
  exit 3
fi
src="$here/render/main.go"
key="$( (cat "$src"; go version) | sha256sum | cut -c1-16)"
bin="$here/.bin/render-$key"
if [[ ! -x "$bin" ]]; then
  mkdir -p "$here/.bin"
  tmp="$(mktemp "$here/.bin/build.XXXXXX")"
  # GOPATH mode against the Debian-packaged sources; a private build cache so
  # that a read-only or missing $HOME does not matter.
  if ! (cd "$here/render" && GO111MODULE=off GOPATH="$gopath" GOFLAGS= \
        GOCACHE="${GOCACHE:-$here/.bin/gocache}" go build -o "$tmp" main.go); then
    rm -f "$tmp"
    echo "render.sh: go build of $src failed" >&2
    exit 3
  fi
  mv -f "$tmp" "$bin"
  find "$here/.bin" -maxdepth 1 -name 'render-*' ! -name "render-$key" -delete
fi
exec "$bin" "$@"
