#!/usr/bin/env bash
# Build helm from the Go module proxy (nothing is downloaded from anywhere else) and cache it (`make helm`).
#
#   stack/kube/build-helm.sh               build if missing, then print the path of the cached binary
#   stack/kube/build-helm.sh --print-path  print where the binary is (or will be), build nothing
# Env: IOTPIPE_CACHE (~/.cache/iotpipe), IOTPIPE_HELM_VERSION (v3.22.0),
#      IOTPIPE_HELM_KUBE_MINOR (36: the Kubernetes 1.x that offline `helm template`/`helm lint` assume).
# Output: $IOTPIPE_CACHE/bin/helm-<version> plus a `helm` symlink next to it; a second run returns at once.
# helm's go.mod has no replace directives, so `go install <module>/cmd/helm@<version>` works from the proxy.
# -ldflags set what a release build sets: `helm version` reports the real tag, and offline rendering assumes
# Kubernetes 1.$IOTPIPE_HELM_KUBE_MINOR (the test apiserver's) instead of helm's built-in default of 1.20.
set -euo pipefail

HELM_VERSION="${IOTPIPE_HELM_VERSION:-v3.22.0}"
KUBE_MINOR="${IOTPIPE_HELM_KUBE_MINOR:-36}"
CACHE="${IOTPIPE_CACHE:-$HOME/.cache/iotpipe}"
BIN_DIR="$CACHE/bin"
TARGET="$BIN_DIR/helm-$HELM_VERSION"

case "${1:-}" in
  -h|--help) sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
  --print-path) echo "$TARGET"; exit 0 ;;
  "") ;;
  *) echo "build-helm.sh: unknown option $1 (try --help)" >&2; exit 2 ;;
esac

if [[ -x "$TARGET" ]]; then
  echo "$TARGET"
  exit 0
fi

command -v go >/dev/null || { echo "build-helm: 'go' is not on PATH (needed to build helm from the Go module proxy)" >&2; exit 1; }
mkdir -p "$BIN_DIR"
WORK="$(mktemp -d "$BIN_DIR/.helm-build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT

MOD="helm.sh/helm/v3"
LDFLAGS="-s -w -X $MOD/internal/version.version=$HELM_VERSION -X $MOD/internal/version.gitTreeState=clean"
LDFLAGS+=" -X $MOD/pkg/chartutil.k8sVersionMajor=1 -X $MOD/pkg/chartutil.k8sVersionMinor=$KUBE_MINOR"
LDFLAGS+=" -X $MOD/pkg/lint/rules.k8sVersionMajor=1 -X $MOD/pkg/lint/rules.k8sVersionMinor=$KUBE_MINOR"

START=$(date +%s)
echo "build-helm: $(date -u +%H:%M:%S) building helm $HELM_VERSION from the Go module proxy into $BIN_DIR (takes a few minutes once)" >&2
GOTOOLCHAIN=local GOBIN="$WORK" CGO_ENABLED=0 nice -n 10 go install -trimpath -ldflags "$LDFLAGS" "$MOD/cmd/helm@$HELM_VERSION"
mv "$WORK/helm" "$TARGET"
ln -sfn "helm-$HELM_VERSION" "$BIN_DIR/helm"
echo "build-helm: $("$TARGET" version --short) built in $(( $(date +%s) - START )) s" >&2
echo "$TARGET"
