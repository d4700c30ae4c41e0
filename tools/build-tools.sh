#!/usr/bin/env bash
# Builds the Kubernetes test tools from Go modules into a cache outside the repo:
#   ${PYROLLOUTS_TOOLS_DIR:-~/.cache/pyrollouts/tools}/<tool>-<version>/<tool>
# Versions come from tools/versions.env (the one place they are pinned).
#
# Idempotent and resumable: a tool whose binary exists is not rebuilt; a binary is written to a
# temporary name and renamed only once the build succeeded, so an interrupted build leaves nothing
# half-made (the Go build cache keeps the finished packages, so a rerun resumes quickly).
# A failing step prints the command and the tail of its output, and exits non-zero.
#
# Usage: tools/build-tools.sh            build what is missing
#        tools/build-tools.sh --check    exit 0 if everything is built, 1 otherwise (builds nothing)
#        tools/build-tools.sh --print-dir
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=versions.env
source "$HERE/versions.env"

TOOLS_DIR="${PYROLLOUTS_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/pyrollouts/tools}"
K8S_TOOLS=(kube-apiserver kube-controller-manager kube-scheduler kubectl)
ALL_TOOLS=(etcd "${K8S_TOOLS[@]}" kwok helm tofu)
# Terraform providers, installed as a filesystem mirror that tofu's CLI config (tofu.rc) points at.
TF_PROVIDERS=(helm kubernetes)

version_of() {
    case "$1" in
        etcd) echo "$ETCD_VERSION" ;;
        kwok) echo "$KWOK_VERSION" ;;
        helm) echo "$HELM_VERSION" ;;
        tofu) echo "$OPENTOFU_VERSION" ;;
        *) echo "$KUBERNETES_VERSION" ;;
    esac
}
bin_of() { echo "$TOOLS_DIR/$1-$(version_of "$1")/$1"; }

# The mirror layout tofu expects: <mirror>/registry.opentofu.org/hashicorp/<name>/<version>/<os_arch>/
TF_MIRROR="$TOOLS_DIR/tofu-$OPENTOFU_VERSION/providers"
provider_version_of() {
    case "$1" in
        helm) echo "$TF_HELM_PROVIDER_VERSION" ;;
        kubernetes) echo "$TF_KUBERNETES_PROVIDER_VERSION" ;;
    esac
}
provider_bin_of() {
    local v
    v="$(provider_version_of "$1")"
    v="${v#v}"
    echo "$TF_MIRROR/registry.opentofu.org/hashicorp/$1/$v/linux_amd64/terraform-provider-$1_v$v"
}
# Why a provider could not be built: the tests read this file and fail with its text.
provider_failure_of() { echo "$TF_MIRROR/$1.unavailable"; }

missing=()
for t in "${ALL_TOOLS[@]}"; do
    [[ -x "$(bin_of "$t")" ]] || missing+=("$t")
done
missing_providers=()
for p in "${TF_PROVIDERS[@]}"; do
    # A provider the module proxy refused is recorded once; delete the .unavailable file to retry.
    [[ -x "$(provider_bin_of "$p")" || -f "$(provider_failure_of "$p")" ]] || missing_providers+=("$p")
done

case "${1:-}" in
    --print-dir) echo "$TOOLS_DIR"; exit 0 ;;
    --check)
        if ((${#missing[@]})); then echo "tools: missing: ${missing[*]}" >&2; exit 1; fi
        exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--check|--print-dir]" >&2; exit 2 ;;
esac

# The fast path: `make test` calls this every time, so once everything is built it must cost nothing.
if ((${#missing[@]} == 0 && ${#missing_providers[@]} == 0)); then
    echo "tools: all built in $TOOLS_DIR (versions from tools/versions.env)"
    exit 0
fi

command -v go >/dev/null || { echo "tools: 'go' is not on PATH; install Go >= 1.26" >&2; exit 1; }
# Static binaries, the installed Go only (a toolchain download would be a surprise on a fresh machine),
# and two parallel compiles: the machine has two cores shared with others.
export CGO_ENABLED=0 GOTOOLCHAIN=local GOFLAGS="${GOFLAGS:--buildvcs=false}"
BUILD_FLAGS=(-p 2 -trimpath)
mkdir -p "$TOOLS_DIR"
# One build at a time: two runs at once would rewrite the same go.mod files and compile everything
# twice on a 2-core machine. A second run waits for the first, then starts over and so builds only
# what is still missing.
if [[ -z "${PYROLLOUTS_TOOLS_LOCKED:-}" ]]; then
    exec 9>"$TOOLS_DIR/.build.lock"
    if ! flock -n 9; then
        echo "tools: another build is running (lock $TOOLS_DIR/.build.lock); waiting for it"
        flock 9
        PYROLLOUTS_TOOLS_LOCKED=1 exec bash "$0" "$@"
    fi
fi
LOG_DIR="$TOOLS_DIR/logs"
mkdir -p "$LOG_DIR"
TIMES="$TOOLS_DIR/build-times.tsv"

# Runs a command with its output in a log file; on failure shows the command and the log's tail.
run() {
    local log="$LOG_DIR/$STEP.log"
    echo "  \$ $*" >>"$log"
    if ! "$@" >>"$log" 2>&1; then
        echo "tools: FAILED in step '$STEP' (cwd $(pwd)):" >&2
        echo "  \$ $*" >&2
        echo "---- last 60 lines of $log ----" >&2
        tail -n 60 "$log" >&2
        exit 1
    fi
}

# Writes tools/k8s/go.mod for KUBERNETES_VERSION: k8s.io/kubernetes replaces its staging modules
# (k8s.io/api, k8s.io/client-go, ...) with local paths, which mean nothing outside its repository,
# so this module replaces each with its published v0.<minor>.<patch> release (a replace only: some,
# such as k8s.io/sample-cli-plugin, are not published, and are not needed unless required).
ensure_k8s_module() {
    local dir="$HERE/k8s"
    if grep -Eq "k8s.io/kubernetes $KUBERNETES_VERSION( |$)" "$dir/go.mod" 2>/dev/null && [[ -s "$dir/go.sum" ]]; then
        return
    fi
    STEP=k8s-module
    : >"$LOG_DIR/$STEP.log"
    echo "tools: writing tools/k8s/go.mod for k8s.io/kubernetes $KUBERNETES_VERSION"
    local staging_version="v0.${KUBERNETES_VERSION#v1.}"
    cd "$dir"
    rm -f go.mod go.sum
    run go mod init pyrollouts.local/tools/k8s
    run go mod edit -go=1.26.0
    local gomod
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBERNETES_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
    [[ -f "$gomod" ]] || { echo "tools: could not download k8s.io/kubernetes@$KUBERNETES_VERSION" >&2; exit 1; }
    local edits=(-require="k8s.io/kubernetes@$KUBERNETES_VERSION")
    local m
    for m in $(awk '$2 == "=>" && $3 ~ /^\.\/staging\// {print $1}' "$gomod"); do
        edits+=(-replace="$m=$m@$staging_version")
    done
    run go mod edit "${edits[@]}"
    local t
    for t in "${K8S_TOOLS[@]}"; do
        run go get -tool "k8s.io/kubernetes/cmd/$t@$KUBERNETES_VERSION"
    done
    run go mod tidy
    cd - >/dev/null
}

# etcd's server module has no main package of its own (the repository root's does, and that module
# replaces its siblings with local paths); tools/etcd/main.go calls etcdmain.Main like the root one.
ensure_etcd_module() {
    local dir="$HERE/etcd"
    if grep -Eq "go.etcd.io/etcd/server/v3 $ETCD_VERSION( |$)" "$dir/go.mod" 2>/dev/null && [[ -s "$dir/go.sum" ]]; then
        return
    fi
    STEP=etcd-module
    : >"$LOG_DIR/$STEP.log"
    echo "tools: writing tools/etcd/go.mod for go.etcd.io/etcd/server/v3 $ETCD_VERSION"
    cd "$dir"
    rm -f go.mod go.sum
    run go mod init pyrollouts.local/tools/etcd
    run go mod edit -go=1.26.0
    run go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
    run go mod tidy
    cd - >/dev/null
}

# OpenTofu's go.mod replaces github.com/hashicorp/hcl/v2 with its own fork, so `go install pkg@version`
# refuses it: this module requires OpenTofu and copies that replace (read from the released go.mod).
ensure_tofu_module() {
    local dir="$HERE/tofu"
    if grep -Eq "github.com/opentofu/opentofu $OPENTOFU_VERSION( |$)" "$dir/go.mod" 2>/dev/null && [[ -s "$dir/go.sum" ]]; then
        return
    fi
    STEP=tofu-module
    : >"$LOG_DIR/$STEP.log"
    echo "tools: writing tools/tofu/go.mod for github.com/opentofu/opentofu $OPENTOFU_VERSION"
    mkdir -p "$dir"
    cd "$dir"
    rm -f go.mod go.sum
    run go mod init pyrollouts.local/tools/tofu
    local gomod
    gomod="$(go mod download -json "github.com/opentofu/opentofu@$OPENTOFU_VERSION" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
    [[ -f "$gomod" ]] || { echo "tools: could not download github.com/opentofu/opentofu@$OPENTOFU_VERSION" >&2; exit 1; }
    run go mod edit -go="$(awk '$1 == "go" {print $2; exit}' "$gomod")"
    local edits=(-require="github.com/opentofu/opentofu@$OPENTOFU_VERSION")
    local r
    while read -r r; do
        edits+=(-replace="$r")
    done < <(awk '$1 == "replace" && $3 == "=>" {print $2 "=" $4 "@" $5} $1 == "replace" && $4 == "=>" {print $2 "@" $3 "=" $5 "@" $6}' "$gomod")
    run go mod edit "${edits[@]}"
    run go get -tool "github.com/opentofu/opentofu/cmd/tofu@$OPENTOFU_VERSION"
    run go mod tidy
    cd - >/dev/null
}

# tofu's CLI config: providers come only from the mirror, so `tofu init` works offline.
write_tofu_rc() {
    local rc="$TOOLS_DIR/tofu-$OPENTOFU_VERSION/tofu.rc"
    mkdir -p "$TF_MIRROR"
    cat >"$rc.tmp" <<RC
# Written by tools/build-tools.sh: use with TF_CLI_CONFIG_FILE=$rc
provider_installation {
  filesystem_mirror {
    path    = "$TF_MIRROR"
    include = ["registry.opentofu.org/hashicorp/*"]
  }
}
RC
    mv -f "$rc.tmp" "$rc"
}

# A provider's releases carry its own main package at the module root; the binary is named as the
# mirror wants it. A module version the proxy does not serve is recorded with the proxy's answer.
build_provider() {
    local p="$1" version out tmp module gobin
    version="$(provider_version_of "$p")"
    out="$(provider_bin_of "$p")"
    tmp="$out.partial.$$"
    module="github.com/hashicorp/terraform-provider-$p"
    STEP="build-provider-$p"
    : >"$LOG_DIR/$STEP.log"
    mkdir -p "$(dirname "$out")"
    local answer
    if ! answer="$(cd "$TOOLS_DIR" && go mod download -json "$module@$version" 2>&1)" \
            || grep -q '"Error"' <<<"$answer"; then
        {
            echo "terraform-provider-$p $version cannot be built from the Go module proxy:"
            echo "  \$ go mod download -json $module@$version"
            sed 's/^/  /' <<<"$answer"
            echo "  (The providers' go.mod names the module without a /v2 suffix, so the go command"
            echo "  cannot fetch their v2.x tags by version at all; this proxy serves only the versions"
            echo "  \`go list -m -versions $module\` lists.)"
        } >"$(provider_failure_of "$p")"
        echo "tools: provider $p $version NOT built (reason in $(provider_failure_of "$p"))" >&2
        return 0
    fi
    gobin="$(mktemp -d)"
    run env GOBIN="$gobin" go install "${BUILD_FLAGS[@]}" -ldflags "-s -w" "$module@$version"
    mv "$gobin/terraform-provider-$p" "$tmp"
    rm -rf "$gobin"
    mv -f "$tmp" "$out"
}

build_tool() {
    local t="$1" version out tmp
    version="$(version_of "$t")"
    out="$(bin_of "$t")"
    tmp="$out.partial.$$"
    mkdir -p "$(dirname "$out")"
    case "$t" in
        etcd) ensure_etcd_module ;;
        kube-*|kubectl) ensure_k8s_module ;;
        tofu) ensure_tofu_module ;;
    esac
    STEP="build-$t"
    : >"$LOG_DIR/$STEP.log"
    case "$t" in
        etcd)
            cd "$HERE/etcd"
            run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w" -o "$tmp" .
            cd - >/dev/null ;;
        kube-*|kubectl)
            local minor="${KUBERNETES_VERSION#v1.}"
            minor="${minor%%.*}"
            local ld="-s -w"
            local pkg
            # Both packages carry version variables (client-go's for clients, component-base's for servers).
            for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
                ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
                ld+=" -X $pkg.gitTreeState=clean"
            done
            cd "$HERE/k8s"
            run go build "${BUILD_FLAGS[@]}" -ldflags "$ld" -o "$tmp" "k8s.io/kubernetes/cmd/$t"
            cd - >/dev/null ;;
        kwok)
            # No replace directives in kwok's go.mod, so `go install pkg@version` builds it as released.
            local gobin
            gobin="$(mktemp -d)"
            run env GOBIN="$gobin" go install "${BUILD_FLAGS[@]}" -ldflags "-s -w" \
                "sigs.k8s.io/kwok/cmd/kwok@$version"
            mv "$gobin/kwok" "$tmp"
            rm -rf "$gobin" ;;
        helm)
            local gobin
            gobin="$(mktemp -d)"
            run env GOBIN="$gobin" go install "${BUILD_FLAGS[@]}" \
                -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$version" \
                "helm.sh/helm/v3/cmd/helm@$version"
            mv "$gobin/helm" "$tmp"
            rm -rf "$gobin" ;;
        tofu)
            cd "$HERE/tofu"
            # dev=no: a release build (tofu version prints the plain version, no -dev suffix).
            run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
                -o "$tmp" github.com/opentofu/opentofu/cmd/tofu
            cd - >/dev/null
            write_tofu_rc ;;
    esac
    mv -f "$tmp" "$out"
}

echo "tools: building ${missing[*]} into $TOOLS_DIR ($(go version | awk '{print $3}'); logs in $LOG_DIR)"
total_start=$SECONDS
i=0
for t in "${missing[@]}"; do
    i=$((i + 1))
    echo "tools: [$i/${#missing[@]}] $t $(version_of "$t") ..."
    start=$SECONDS
    build_tool "$t"
    took=$((SECONDS - start))
    printf '%s\t%s\t%s\t%s\n' "$t" "$(version_of "$t")" "$took" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$TIMES"
    echo "tools: [$i/${#missing[@]}] $t built in ${took}s -> $(bin_of "$t")"
done
for p in "${missing_providers[@]}"; do
    echo "tools: provider $p $(provider_version_of "$p") ..."
    start=$SECONDS
    write_tofu_rc
    build_provider "$p"
    if [[ -x "$(provider_bin_of "$p")" ]]; then
        took=$((SECONDS - start))
        printf '%s\t%s\t%s\t%s\n' "terraform-provider-$p" "$(provider_version_of "$p")" "$took" \
            "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$TIMES"
        echo "tools: provider $p built in ${took}s -> $(provider_bin_of "$p")"
    fi
done
echo "tools: done in $((SECONDS - total_start))s (per-tool times appended to $TIMES)"
