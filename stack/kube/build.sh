#!/usr/bin/env bash
# Build the Kubernetes test binaries from the Go module proxy only (no release downloads):
#   kube-apiserver and kubectl  from k8s.io/kubernetes v$IOTPIPE_K8S_VERSION (one throw-away module that
#                               `replace`s every staging module, derived from that version's own go.mod)
#   etcd                        from go.etcd.io/etcd/server/v3 v$IOTPIPE_ETCD_VERSION (its own module, so its
#                               dependency bumps cannot move the apiserver's etcd client)
# into $IOTPIPE_CACHE/bin/<name>-v<version> (default ~/.cache/iotpipe/bin). Cached: a binary that exists is not rebuilt.
#
# Env: IOTPIPE_CACHE, IOTPIPE_K8S_VERSION (1.36.3), IOTPIPE_ETCD_VERSION (3.6.16),
#      IOTPIPE_BUILD_JOBS (go build -p; default 1 on shared dev machines, all cores when CI=true).
# Usage: stack/kube/build.sh [--print-paths] [--help]
set -euo pipefail

K8S_VERSION="${IOTPIPE_K8S_VERSION:-1.36.3}"
ETCD_VERSION="${IOTPIPE_ETCD_VERSION:-3.6.16}"
CACHE="${IOTPIPE_CACHE:-$HOME/.cache/iotpipe}"
BIN="$CACHE/bin"
if [ "${CI:-}" = "true" ]; then DEFAULT_JOBS="$(nproc)"; else DEFAULT_JOBS=1; fi
JOBS="${IOTPIPE_BUILD_JOBS:-$DEFAULT_JOBS}"

APISERVER="$BIN/kube-apiserver-v$K8S_VERSION"
KUBECTL="$BIN/kubectl-v$K8S_VERSION"
ETCD="$BIN/etcd-v$ETCD_VERSION"

case "${1:-}" in
  -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --print-paths) printf '%s\n' "$APISERVER" "$KUBECTL" "$ETCD"; exit 0 ;;
  "") ;;
  *) echo "build.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

command -v go >/dev/null || { echo "build.sh: go is not on PATH (needs Go >= 1.25)" >&2; exit 1; }
export GOTOOLCHAIN=local GOFLAGS="-p=$JOBS -buildvcs=false"  # modules come from the Go toolchain's own GOPROXY
NICE=(nice -n 10)
mkdir -p "$BIN" "$CACHE/go"
# One build at a time per cache (parallel test sessions, several checkouts).
exec 9>"$CACHE/go/.kube-build.lock"
flock 9
log() { echo "[kube-tools $(date -u +%H:%M:%S)] $*"; }
START=$(date +%s)

build_k8s() {
  local work="$CACHE/go/k8s-v$K8S_VERSION" minor staging gomod
  minor="$(echo "$K8S_VERSION" | cut -d. -f2)"
  staging="v0.${K8S_VERSION#1.}"
  mkdir -p "$work" && cd "$work"
  [ -f go.mod ] || go mod init local/iotpipe-k8s-tools >/dev/null 2>&1
  log "resolving k8s.io/kubernetes v$K8S_VERSION (staging modules at $staging)"
  gomod="$(go mod download -json "k8s.io/kubernetes@v$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",\{0,1\}$/\1/p')"
  [ -f "$gomod" ] || { echo "build.sh: cannot download k8s.io/kubernetes@v$K8S_VERSION" >&2; exit 1; }
  # Every module the kubernetes go.mod maps to ./staging/... is published on the proxy at v0.<minor>.<patch>.
  local n=0 m
  for m in $(awk '$1 ~ /^k8s\.io\// && $2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
    go mod edit -replace="$m=$m@$staging"; n=$((n + 1))
  done
  [ "$n" -gt 0 ] || { echo "build.sh: found no staging replace lines in $gomod" >&2; exit 1; }
  log "replaced $n staging modules"
  # Non-staging replace lines of the kubernetes go.mod (module => module version) must be copied too.
  awk '$2 == "=>" && $3 !~ /^\./ && NF >= 4 {print $1 "=" $3 "@" $4}' "$gomod" | while read -r r; do
    go mod edit -replace="$r"
  done
  log "go get (downloads the module graph; first run only)"
  "${NICE[@]}" go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@v$K8S_VERSION"
  local ld="-s -w -X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
  ld="$ld -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
  ld="$ld -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
  ld="$ld -X k8s.io/client-go/pkg/version.gitMinor=$minor"
  if [ ! -x "$APISERVER" ]; then
    log "building kube-apiserver v$K8S_VERSION (go build -p $JOBS, nice 10)"
    "${NICE[@]}" go build -trimpath -ldflags "$ld" -o "$APISERVER.tmp" k8s.io/kubernetes/cmd/kube-apiserver
    mv "$APISERVER.tmp" "$APISERVER"
  fi
  if [ ! -x "$KUBECTL" ]; then
    log "building kubectl v$K8S_VERSION"
    "${NICE[@]}" go build -trimpath -ldflags "$ld" -o "$KUBECTL.tmp" k8s.io/kubernetes/cmd/kubectl
    mv "$KUBECTL.tmp" "$KUBECTL"
  fi
}

build_etcd() {
  local work="$CACHE/go/etcd-v$ETCD_VERSION"
  mkdir -p "$work" && cd "$work"
  [ -f go.mod ] || go mod init local/iotpipe-etcd >/dev/null 2>&1
  log "building etcd v$ETCD_VERSION"
  "${NICE[@]}" go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
  "${NICE[@]}" go build -trimpath -ldflags "-s -w" -o "$ETCD.tmp" go.etcd.io/etcd/server/v3
  mv "$ETCD.tmp" "$ETCD"
}

if [ -x "$APISERVER" ] && [ -x "$KUBECTL" ]; then log "cached: $APISERVER, $KUBECTL"; else build_k8s; fi
if [ -x "$ETCD" ]; then log "cached: $ETCD"; else build_etcd; fi
# (no `| head` here: with pipefail, SIGPIPE would fail a good build)
"$APISERVER" --version
"$KUBECTL" version --client
"$ETCD" --version
log "done in $(( $(date +%s) - START )) s: $BIN"
