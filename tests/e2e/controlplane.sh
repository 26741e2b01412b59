#!/usr/bin/env bash
# Real Kubernetes v1.20.2 control-plane binaries for the end-to-end tests.
#
#   tests/e2e/controlplane.sh build [release]   # install/build what is missing (no-op when cached)
#   tests/e2e/controlplane.sh bindir [release]  # print the directory holding the binaries
#
# release: 1.20.2 (default; MUSTER_E2E_K8S sets it too) or a minor built from Go modules,
# e.g. 1.36 (see "Current releases" at the end).
#
# Binaries end up in ${MUSTER_CACHE:-$HOME/.cache/muster}/k8s-1.20.2/bin/ (outside the repo):
#   kube-apiserver kube-controller-manager kube-scheduler kubectl   (built from source)
#   etcd -> /usr/bin/etcd                                           (Debian's etcd-server package)
#
# Where the source comes from
#   Debian bookworm has no kubernetes source package; bullseye has kubernetes 1.20.5+really1.20.2-1
#   (upstream v1.20.2). We add a deb-src entry for bullseye in
#   /etc/apt/sources.list.d/muster-bullseye-src.sources (deb822, same keyring as debian.sources).
#   On the package mirror reachable here only the .orig.tar.gz of that source package is served:
#   the .dsc and .debian.tar.xz answer 404, so a plain `apt-get source kubernetes` fails. We therefore
#   run `apt-get source --tar-only`, which fetches just the orig tarball (apt still checks it against
#   the checksums of the signed Sources index) and unpack it with tar. The orig tarball is the pristine
#   upstream v1.20.2 tree including vendor/; Debian's packaging patches are not needed to build.
#
# How it builds
#   With Debian bookworm's Go 1.19 (package golang-1.19-go, /usr/lib/go-1.19/bin/go), named
#   explicitly: the Go on PATH may be much newer (1.26 on the project's machines), and a newer Go
#   must not build this tree (reflect2's linkname into the runtime's map iterator, patched below for
#   the 1.18-1.21 layout, does not hold for Go 1.24's maps). Kubernetes 1.20's build scripts
#   (hack/lib/init.sh) export GO111MODULE=off and build in GOPATH mode against vendor/, which Go 1.19
#   still supports; the minimum version check in hack/lib/golang.sh only asks for >= go1.15. hack/lib/golang.sh also
#   creates its own GOPATH under _output/local/go; we still provide <cache>/go/src/k8s.io/kubernetes
#   as a symlink to the tree and build from there with GOPATH=<cache>/go, as documented in DESIGN.md.
#   CGO_ENABLED=0 gives static binaries and needs no C toolchain.
#
# Environment
#   MUSTER_CACHE       cache root (default $HOME/.cache/muster)
set -euo pipefail

K8S_VERSION=1.20.2
DEB_SRC_VERSION="1.20.5+really1.20.2-1"
CACHE="${MUSTER_CACHE:-$HOME/.cache/muster}"
ROOT="${CACHE}/k8s-${K8S_VERSION}"
BIN="${ROOT}/bin"
SRC_PARENT="${ROOT}/src"
TREE="${SRC_PARENT}/kubernetes-${K8S_VERSION}"
GOPATH_DIR="${ROOT}/go"
BUILT=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
WHAT="cmd/kube-scheduler cmd/kube-apiserver cmd/kube-controller-manager cmd/kubectl"
SOURCES_FILE=/etc/apt/sources.list.d/muster-bullseye-src.sources
# Source patches applied before building; recorded in ${BIN}/.muster-patches so that binaries
# built without them are rebuilt. See patch_reflect2.
# The Go that built them is recorded too: binaries built by another Go are rebuilt.
GO_DIR=/usr/lib/go-1.19/bin
PATCHES="reflect2-go118 go1.19"

log() { printf '[controlplane.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

have_all_binaries() {
  local b
  for b in "${BUILT[@]}" etcd; do
    [[ -x "${BIN}/${b}" ]] || return 1
  done
  patched_binaries
}

patched_binaries() {
  [[ "$(cat "${BIN}/.muster-patches" 2>/dev/null)" == "${PATCHES}" ]]
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi
}

APT_UPDATED=0
apt_update() {
  if [[ ${APT_UPDATED} -eq 0 ]]; then
    log "apt-get update"
    as_root apt-get update -q >/dev/null
    APT_UPDATED=1
  fi
}

install_packages() {
  local missing=()
  command -v etcd >/dev/null || missing+=(etcd-server)
  [[ -x ${GO_DIR}/go ]] || missing+=(golang-1.19-go)
  command -v rsync >/dev/null || missing+=(rsync)
  command -v dpkg-source >/dev/null || missing+=(dpkg-dev)
  command -v make >/dev/null || missing+=(make)
  command -v openssl >/dev/null || missing+=(openssl)   # used by controlplane.py for certs/keys
  command -v flock >/dev/null || missing+=(util-linux)
  if [[ ${#missing[@]} -gt 0 ]]; then
    apt_update
    log "apt-get install ${missing[*]}"
    # policy-rc.d (containers) keeps etcd-server's service from starting; we start etcd ourselves.
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
      "${missing[@]}" >/dev/null
  fi
}

ensure_deb_src() {
  if apt-cache showsrc kubernetes 2>/dev/null | grep -qx "Version: ${DEB_SRC_VERSION}"; then
    return 0
  fi
  if [[ ! -f ${SOURCES_FILE} ]]; then
    log "adding deb-src entry for bullseye (${SOURCES_FILE})"
    as_root tee "${SOURCES_FILE}" >/dev/null <<'EOF'
# Added by muster tests/e2e/controlplane.sh: source of Kubernetes 1.20.2 (package 'kubernetes').
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bullseye
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
  fi
  APT_UPDATED=0
  apt_update
  apt-cache showsrc kubernetes 2>/dev/null | grep -qx "Version: ${DEB_SRC_VERSION}" \
    || die "source package kubernetes=${DEB_SRC_VERSION} not found after adding ${SOURCES_FILE}"
}

fetch_source() {
  if [[ -f ${TREE}/.muster-unpacked ]]; then
    log "source tree present: ${TREE}"
    return 0
  fi
  mkdir -p "${SRC_PARENT}"
  local tarball="${SRC_PARENT}/kubernetes_${DEB_SRC_VERSION%-*}.orig.tar.gz"
  if [[ ! -f ${tarball} ]]; then
    ensure_deb_src
    log "apt-get source --tar-only kubernetes=${DEB_SRC_VERSION} (34 MB)"
    (cd "${SRC_PARENT}" && apt-get source -q --tar-only "kubernetes=${DEB_SRC_VERSION}" 2>&1 \
      | grep -v 'unsandboxed' >&2) || true
    [[ -f ${tarball} ]] || die "download of ${tarball} failed"
  fi
  log "unpacking $(basename "${tarball}")"
  rm -rf "${TREE}"
  tar -C "${SRC_PARENT}" -xzf "${tarball}"
  [[ -f ${TREE}/Makefile ]] || die "unexpected tarball layout (no ${TREE}/Makefile)"
  touch "${TREE}/.muster-unpacked"
}

# Kubernetes 1.20 vendors github.com/modern-go/reflect2 v1.0.1, which declares
# reflect.mapiterinit with its pre-Go-1.18 signature (returning the iterator). Built with
# Go >= 1.18 (bookworm has 1.19) json-iterator's map encoder then crashes: kube-apiserver dies
# with SIGSEGV (aeshashbody <- sortKeysMapEncoder <- objectmeta.GetObjectMeta) on the first
# custom resource created, e.g. a muster.dev Workload. reflect2 v1.0.2 fixed it with
# go_above_118.go/go_below_118.go and a full hiter struct; this makes the same change to the
# vendored copy (idempotent).
patch_reflect2() {
  local dir="${TREE}/vendor/github.com/modern-go/reflect2"
  [[ -f ${dir}/go_above_118.go ]] && return 0
  log "patching vendored reflect2 v1.0.1 for Go >= 1.18 (the change of reflect2 v1.0.2)"
  grep -q '^func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) \*hiter$' "${dir}/unsafe_link.go" \
    || die "unexpected ${dir}/unsafe_link.go: cannot patch reflect2"
  sed -i '/^\/\/ m escapes into the return value/,/^func mapiterinit/d' "${dir}/unsafe_link.go"
  sed -i '/^type hiter struct {/,/^}/d' "${dir}/unsafe_link.go"
  cat >>"${dir}/unsafe_link.go" <<'EOF'

// A hash iteration structure: the layout of the runtime's hiter (Go 1.12 through 1.21).
type hiter struct {
	key         unsafe.Pointer
	value       unsafe.Pointer
	t           unsafe.Pointer
	h           unsafe.Pointer
	buckets     unsafe.Pointer
	bptr        unsafe.Pointer
	overflow    *[]unsafe.Pointer
	oldoverflow *[]unsafe.Pointer
	startBucket uintptr
	offset      uint8
	wrapped     bool
	B           uint8
	i           uint8
	bucket      uintptr
	checkBucket uintptr
}
EOF
  sed -i '/^func (type2 \*UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {$/,/^}/d' \
    "${dir}/unsafe_map.go"
  cat >"${dir}/go_below_118.go" <<'EOF'
//go:build !go1.18
// +build !go1.18

package reflect2

import "unsafe"

// m escapes into the return value, but the caller of mapiterinit
// doesn't let the return value escape.
//go:noescape
//go:linkname mapiterinit reflect.mapiterinit
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer) (val *hiter)

func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
	return &UnsafeMapIterator{
		hiter:      mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj)),
		pKeyRType:  type2.pKeyRType,
		pElemRType: type2.pElemRType,
	}
}
EOF
  cat >"${dir}/go_above_118.go" <<'EOF'
//go:build go1.18
// +build go1.18

package reflect2

import "unsafe"

// m escapes into the return value, but the caller of mapiterinit
// doesn't let the return value escape.
//go:noescape
//go:linkname mapiterinit reflect.mapiterinit
func mapiterinit(rtype unsafe.Pointer, m unsafe.Pointer, it *hiter)

func (type2 *UnsafeMapType) UnsafeIterate(obj unsafe.Pointer) MapIterator {
	var it hiter
	mapiterinit(type2.rtype, *(*unsafe.Pointer)(obj), &it)
	return &UnsafeMapIterator{
		hiter:      &it,
		pKeyRType:  type2.pKeyRType,
		pElemRType: type2.pElemRType,
	}
}
EOF
}

build_binaries() {
  patch_reflect2
  mkdir -p "${GOPATH_DIR}/src/k8s.io"
  ln -sfn "${TREE}" "${GOPATH_DIR}/src/k8s.io/kubernetes"
  log "building ${WHAT} with $("${GO_DIR}/go" version | cut -d' ' -f3) (5-8 min on 2 cores; log: ${ROOT}/build.log)"
  local start=${SECONDS}
  # build.log gets everything; the terminal gets make's "+++" progress lines and errors.
  if ! (
    cd "${GOPATH_DIR}/src/k8s.io/kubernetes"
    PATH="${GO_DIR}:${PATH}" GOTOOLCHAIN=local GOROOT='' \
      GOPATH="${GOPATH_DIR}" CGO_ENABLED=0 GO111MODULE=off GOFLAGS='' \
      make WHAT="${WHAT}" 2>&1
  ) | tee "${ROOT}/build.log" | { grep --line-buffered -E '^\+\+\+|rror' >&2 || true; }; then
    die "make failed; see ${ROOT}/build.log"
  fi
  log "build took $((SECONDS - start)) s"
  mkdir -p "${BIN}"
  local b out="${TREE}/_output/bin"
  for b in "${BUILT[@]}"; do
    [[ -x ${out}/${b} ]] || die "make finished but ${out}/${b} is missing; see ${ROOT}/build.log"
    cp -f "${out}/${b}" "${BIN}/${b}.tmp" && mv -f "${BIN}/${b}.tmp" "${BIN}/${b}"
  done
  echo "${PATCHES}" >"${BIN}/.muster-patches"
}

link_etcd() {
  local etcd
  etcd=$(command -v etcd) || die "etcd not found (package etcd-server)"
  ln -sfn "${etcd}" "${BIN}/etcd"
}

cmd_build() {
  if have_all_binaries; then
    log "binaries present in ${BIN}"
    return 0
  fi
  mkdir -p "${ROOT}"
  # Serialise concurrent builds (e.g. two test sessions starting at once).
  exec 9>"${ROOT}/.build.lock"
  flock -w 1800 9 || die "timed out waiting for ${ROOT}/.build.lock"
  if have_all_binaries; then
    log "binaries present in ${BIN} (built by a concurrent run)"
    return 0
  fi
  install_packages
  local b need_build=0
  for b in "${BUILT[@]}"; do [[ -x ${BIN}/${b} ]] || need_build=1; done
  patched_binaries || need_build=1
  if [[ ${need_build} -eq 1 ]]; then
    fetch_source
    build_binaries
  fi
  mkdir -p "${BIN}"
  link_etcd
  have_all_binaries || die "binaries still missing in ${BIN}"
  log "done: ${BIN}"
  ls -l "${BIN}" >&2
}

# --------------------------------------------------------------------------------------------
# Current releases (1.36, ...), built as Go module dependencies
#
# tests/e2e/k8s/<minor>/go.mod requires k8s.io/kubernetes v<version> and pins its staging modules
# (k8s.io/api, ...) to the matching v0.<minor>.<patch> with replace lines, as out-of-tree
# scheduler plugins do; go.sum makes the build reproducible (-mod=readonly). The Go on PATH
# builds them (1.36 needs go >= 1.26.0; GOTOOLCHAIN=local: never download another toolchain).
# etcd is built from go.etcd.io/etcd/server/v3 in the same module graph. Output:
#   ${CACHE}/k8s-<version>/bin/{kube-apiserver,kube-controller-manager,kube-scheduler,kubectl,etcd}
# with a stamp of go.mod, go.sum, the Go version and the flags below: a change rebuilds.
MODULE_BUILDS="$(cd "$(dirname "$0")" && pwd)/k8s"

module_version() {  # the k8s.io/kubernetes version a minor's go.mod requires
  sed -n 's/^[[:space:]]*k8s\.io\/kubernetes v\([0-9.]*\)$/\1/p' "${MODULE_BUILDS}/$1/go.mod"
}

module_stamp() {
  local dir="${MODULE_BUILDS}/$1"
  printf '%s %s %s' "$(cat "${dir}/go.mod" "${dir}/go.sum" | sha256sum | cut -c1-16)" \
    "$(go version | cut -d' ' -f3)" "static-trimpath-v1"
}

cmd_build_module() {
  local minor=$1 version root bin b
  [[ -f "${MODULE_BUILDS}/${minor}/go.mod" ]] || die "no ${MODULE_BUILDS}/${minor}/go.mod"
  command -v go >/dev/null || die "no Go on PATH (Kubernetes ${minor} needs Go >= 1.26)"
  version=$(module_version "${minor}")
  root="${CACHE}/k8s-${version}"
  bin="${root}/bin"
  if [[ "$(cat "${bin}/.muster-stamp" 2>/dev/null)" == "$(module_stamp "${minor}")" ]]; then
    log "binaries present in ${bin}"
    return 0
  fi
  mkdir -p "${root}"
  exec 9>"${root}/.build.lock"
  flock -w 3600 9 || die "timed out waiting for ${root}/.build.lock"
  if [[ "$(cat "${bin}/.muster-stamp" 2>/dev/null)" == "$(module_stamp "${minor}")" ]]; then
    log "binaries present in ${bin} (built by a concurrent run)"
    return 0
  fi
  local pkg=k8s.io/component-base/version client=k8s.io/client-go/pkg/version flags="" key value
  for key in gitVersion:v${version} gitMajor:${version%%.*} gitMinor:${minor#*.} \
      gitTreeState:clean buildDate:1970-01-01T00:00:00Z; do
    value=${key#*:}; key=${key%%:*}
    flags+=" -X '${pkg}.${key}=${value}' -X '${client}.${key}=${value}'"
  done
  log "building Kubernetes v${version} and etcd with $(go version | cut -d' ' -f3) (first time: about 10 min on 2 CPUs)"
  rm -rf "${bin}.tmp" && mkdir -p "${bin}.tmp"
  local started=${SECONDS}
  (
    cd "${MODULE_BUILDS}/${minor}"
    export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0
    go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "all=${flags} -s -w" \
      -o "${bin}.tmp/" k8s.io/kubernetes/cmd/kube-apiserver \
      k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kube-scheduler \
      k8s.io/kubernetes/cmd/kubectl
    go build -trimpath -ldflags "-s -w" -o "${bin}.tmp/etcd" go.etcd.io/etcd/server/v3
  ) >"${root}/build.log" 2>&1 || { tail -30 "${root}/build.log" >&2; die "build failed, see ${root}/build.log"; }
  rm -rf "${bin}" && mv "${bin}.tmp" "${bin}"
  for b in "${BUILT[@]}" etcd; do [[ -x "${bin}/${b}" ]] || die "${bin}/${b} missing after the build"; done
  module_stamp "${minor}" >"${bin}/.muster-stamp"
  log "done in $(( (SECONDS - started) / 60 )) min: ${bin}"
}

# Which release: 1.20.2 (the default, Debian's source and Go 1.19) or a minor with a go.mod
# under tests/e2e/k8s/ (e.g. 1.36).
RELEASE="${2:-${MUSTER_E2E_K8S:-${K8S_VERSION}}}"
case "${1:-}:${RELEASE}" in
  build:"${K8S_VERSION}") cmd_build ;;
  bindir:"${K8S_VERSION}") echo "${BIN}" ;;
  build:*) cmd_build_module "${RELEASE}" ;;
  bindir:*) echo "${CACHE}/k8s-$(module_version "${RELEASE}")/bin" ;;
  *)
    echo "usage: $0 build|bindir [1.20.2|<minor under tests/e2e/k8s/>]" >&2
    exit 2
    ;;
esac
