#!/usr/bin/env bash
# Builds the Kubernetes test tools from Go modules into a cache outside the repo:
#   ${PYROLLOUTS_TOOLS_DIR:-~/.cache/pyrollouts/tools}/<tool>-<version>/<tool>
# Versions come from tools/versions.env (the one place they are pinned).
#
# Idempotent and resumable: a tool whose binary exists is not rebuilt; a binary is written to a
# temporary name and renamed only once the build succeeded, so an interrupted build leaves nothing
# half-made (the Go build cache keeps the finished packages, so a rerun resumes quickly). Tools built
# with linker flags (helm, kubectl, kube-*) carry a `<tool>.build` key beside the binary naming how it
# was built: a binary whose key differs from the script's (an older build) is rebuilt once.
#
# The Terraform providers (hashicorp/helm 2.x, hashicorp/kubernetes 2.x) are built from their release
# source tarballs (sha256 pinned in versions.env), found in $PYROLLOUTS_TF_PROVIDER_SOURCES, else in
# a shared/terraform-providers folder beside or above the checkout, else /work/shared/terraform-providers.
# The Gateway API CRDs (config/crd/standard/ of the sigs.k8s.io/gateway-api module, its
# CustomResourceDefinitions only) are downloaded, not built, into <tools>/gateway-api-<version>/crds/.
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
ALL_TOOLS=(etcd "${K8S_TOOLS[@]}" kwok helm tofu kubectl-argo-rollouts rollouts-controller)
# Terraform providers, installed as a filesystem mirror that tofu's CLI config (tofu.rc) points at.
TF_PROVIDERS=(helm kubernetes)

version_of() {
    case "$1" in
        etcd) echo "$ETCD_VERSION" ;;
        kwok) echo "$KWOK_VERSION" ;;
        helm) echo "$HELM_VERSION" ;;
        tofu) echo "$OPENTOFU_VERSION" ;;
        kubectl-argo-rollouts|rollouts-controller) echo "$ARGO_ROLLOUTS_VERSION" ;;
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
provider_sha256_of() {
    case "$1" in
        helm) echo "$TF_HELM_PROVIDER_SHA256" ;;
        kubernetes) echo "$TF_KUBERNETES_PROVIDER_SHA256" ;;
    esac
}
provider_tarball_name() { echo "terraform-provider-$1-$(provider_version_of "$1").src.tar.gz"; }

# The Gateway API CRDs: a folder of YAML files, complete once its .complete marker exists.
GATEWAY_API_CRDS="$TOOLS_DIR/gateway-api-$GATEWAY_API_VERSION/crds"
gateway_api_ready() { [[ -f "$GATEWAY_API_CRDS/.complete" ]]; }

# The folder that holds the provider source tarballs, or nothing.
provider_sources_dir() {
    if [[ -n "${PYROLLOUTS_TF_PROVIDER_SOURCES:-}" ]]; then
        echo "$PYROLLOUTS_TF_PROVIDER_SOURCES"
        return
    fi
    local d
    d="$(cd "$HERE/.." && pwd)"
    while :; do
        if [[ -d "$d/shared/terraform-providers" ]]; then
            echo "$d/shared/terraform-providers"
            return
        fi
        [[ "$d" == / ]] && break
        d="$(dirname "$d")"
    done
    [[ -d /work/shared/terraform-providers ]] && echo /work/shared/terraform-providers
    return 0
}

# How a tool is built, as far as its binary shows it (written to <tool>.build beside the binary).
# Bump rev when the flags change: existing binaries are then rebuilt once.
build_key_of() {
    case "$1" in
        helm) echo "rev=2 helm $HELM_VERSION ldflags: -s -w, -X internal/version.{version,metadata=,gitTreeState=clean}, -X {pkg/chartutil,pkg/lint/rules}.k8sVersion{Major,Minor} from its k8s.io/client-go" ;;
        kube-*|kubectl) echo "rev=2 $1 $KUBERNETES_VERSION ldflags: -s -w, -X {client-go/pkg,component-base}/version.{gitVersion,gitMajor,gitMinor,gitTreeState=clean,buildDate=release time}" ;;
        *) echo "" ;;
    esac
}
build_key_file() { echo "$(bin_of "$1").build"; }
up_to_date() {
    local t="$1" key
    [[ -x "$(bin_of "$t")" ]] || return 1
    key="$(build_key_of "$t")"
    [[ -z "$key" ]] && return 0
    [[ "$(cat "$(build_key_file "$t")" 2>/dev/null)" == "$key" ]]
}

missing=()
for t in "${ALL_TOOLS[@]}"; do
    up_to_date "$t" || missing+=("$t")
done
missing_providers=()
for p in "${TF_PROVIDERS[@]}"; do
    [[ -x "$(provider_bin_of "$p")" ]] || missing_providers+=("$p")
done
missing_data=()
gateway_api_ready || missing_data+=(gateway-api-crds)

case "${1:-}" in
    --print-dir) echo "$TOOLS_DIR"; exit 0 ;;
    --check)
        if ((${#missing[@]} + ${#missing_providers[@]} + ${#missing_data[@]})); then
            echo "tools: missing: ${missing[*]} ${missing_providers[*]/#/terraform-provider-} ${missing_data[*]}" >&2
            exit 1
        fi
        exit 0 ;;
    "") ;;
    *) echo "usage: $0 [--check|--print-dir]" >&2; exit 2 ;;
esac

# The fast path: `make test` calls this every time, so once everything is built it must cost nothing.
if ((${#missing[@]} == 0 && ${#missing_providers[@]} == 0 && ${#missing_data[@]} == 0)); then
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
  direct {
    exclude = ["registry.opentofu.org/hashicorp/*"]
  }
}
RC
    mv -f "$rc.tmp" "$rc"
}

# A provider from its release source tarball: checked against the pinned sha256, extracted under
# $TOOLS_DIR/src, built with `go build` (its dependencies come from the Go module proxy) and the
# linker flags of upstream's release builds. No tarball: the reason is written to
# <mirror>/<name>.unavailable (the tests fail with it) and the other tools are still built.
build_provider() {
    local p="$1" version out tmp srcdir tarball want got work
    version="$(provider_version_of "$p")"
    out="$(provider_bin_of "$p")"
    tmp="$out.partial.$$"
    STEP="build-provider-$p"
    : >"$LOG_DIR/$STEP.log"
    srcdir="$(provider_sources_dir)"
    tarball="$srcdir/$(provider_tarball_name "$p")"
    if [[ -z "$srcdir" || ! -f "$tarball" ]]; then
        {
            echo "terraform-provider-$p $version: its source tarball $(provider_tarball_name "$p") was not found."
            echo "  Looked in \$PYROLLOUTS_TF_PROVIDER_SOURCES, in shared/terraform-providers beside or above"
            echo "  $(cd "$HERE/.." && pwd), and in /work/shared/terraform-providers."
            echo "  Put the tarball there (or set PYROLLOUTS_TF_PROVIDER_SOURCES) and run make tools again."
        } >"$(provider_failure_of "$p")"
        echo "tools: provider $p $version NOT built (reason in $(provider_failure_of "$p"))" >&2
        return 0
    fi
    want="$(provider_sha256_of "$p")"
    got="$(sha256sum "$tarball" | awk '{print $1}')"
    if [[ "$got" != "$want" ]]; then
        echo "tools: $tarball has sha256 $got, tools/versions.env pins $want: refusing to build it" >&2
        exit 1
    fi
    rm -f "$(provider_failure_of "$p")"
    work="$TOOLS_DIR/src/terraform-provider-$p-$version"
    rm -rf "$work"
    mkdir -p "$work" "$(dirname "$out")"
    run tar -xzf "$tarball" -C "$work"
    cd "$work"
    run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X main.version=${version#v} -X main.Version=${version#v}" \
        -o "$tmp" .
    cd - >/dev/null
    rm -rf "$work"
    mv -f "$tmp" "$out"
}

# The module's standard-channel CRDs, copied (CustomResourceDefinitions only: the folder also holds
# a ValidatingAdmissionPolicy) into a temporary folder renamed into place once complete.
fetch_gateway_api_crds() {
    STEP=gateway-api-crds
    : >"$LOG_DIR/$STEP.log"
    local json src tmp f
    json="$(cd "$TOOLS_DIR" && go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" 2>&1 || true)"
    echo "$json" >>"$LOG_DIR/$STEP.log"
    src="$(sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p' <<<"$json")"
    if grep -q '"Error"' <<<"$json" || [[ ! -d "$src/config/crd/standard" ]]; then
        echo "tools: could not download sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION:" >&2
        echo "$json" >&2
        exit 1
    fi
    tmp="$GATEWAY_API_CRDS.partial.$$"
    rm -rf "$tmp" "$GATEWAY_API_CRDS"
    mkdir -p "$tmp"
    for f in "$src"/config/crd/standard/*.yaml; do
        grep -q '^kind: CustomResourceDefinition$' "$f" && cp "$f" "$tmp/"
    done
    ls "$tmp"/*httproutes.yaml >/dev/null 2>&1 || { echo "tools: no HTTPRoute CRD in $src/config/crd/standard" >&2; exit 1; }
    chmod -R u+w "$tmp"
    touch "$tmp/.complete"
    mv "$tmp" "$GATEWAY_API_CRDS"
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
            # As upstream's hack/lib/version.sh: the build date is the release's (the module's time).
            local when
            when="$(cd "$HERE/k8s" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' \
                "k8s.io/kubernetes@$KUBERNETES_VERSION")"
            local ld="-s -w"
            local pkg
            # Both packages carry version variables (client-go's for clients, component-base's for servers).
            for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
                ld+=" -X $pkg.gitVersion=$KUBERNETES_VERSION -X $pkg.gitMajor=1 -X $pkg.gitMinor=$minor"
                ld+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=$when"
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
            # As helm's Makefile: the version, and the Kubernetes version `helm template` and `helm
            # lint` assume (else v1.20.0, and a chart with kubeVersion >=1.27 fails without
            # --kube-version): 1.<minor> of the k8s.io/client-go that helm's go.mod requires.
            local gomod client_go k8s_minor gobin
            gomod="$(go mod download -json "helm.sh/helm/v3@$version" | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')"
            client_go="$(awk '$1 == "k8s.io/client-go" {print $2; exit}' "$gomod")"
            k8s_minor="$(cut -d. -f2 <<<"$client_go")"
            [[ "$k8s_minor" =~ ^[0-9]+$ ]] || { echo "tools: no k8s.io/client-go version in $gomod" >&2; exit 1; }
            local h=helm.sh/helm/v3 ld="-s -w -X helm.sh/helm/v3/internal/version.version=$version"
            ld+=" -X $h/internal/version.metadata= -X $h/internal/version.gitTreeState=clean"
            local pkg
            for pkg in pkg/chartutil pkg/lint/rules; do
                ld+=" -X $h/$pkg.k8sVersionMajor=1 -X $h/$pkg.k8sVersionMinor=$k8s_minor"
            done
            gobin="$(mktemp -d)"
            run env GOBIN="$gobin" go install "${BUILD_FLAGS[@]}" -ldflags "$ld" "$h/cmd/helm@$version"
            mv "$gobin/helm" "$tmp"
            rm -rf "$gobin" ;;
        kubectl-argo-rollouts|rollouts-controller)
            # Its go.mod has replace directives, so `go install pkg@version` refuses it: build inside
            # a copy of the released module (its own go.mod and go.sum, as upstream builds it).
            # rollouts-controller is Argo's own controller (cmd/rollouts-controller of the same
            # module): the side-by-side tests run it next to our operator on the same control plane.
            local src
            src="$(go mod download -json "github.com/argoproj/argo-rollouts@$version" | sed -n 's/^\s*"Dir": "\(.*\)",$/\1/p')"
            [[ -d "$src" ]] || { echo "tools: could not download github.com/argoproj/argo-rollouts@$version" >&2; exit 1; }
            local work
            work="$(mktemp -d)"
            cp -r "$src/." "$work/"
            chmod -R u+w "$work"
            cd "$work"
            local v=github.com/argoproj/argo-rollouts/utils/version
            run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X $v.version=${version#v} -X $v.gitTreeState=clean" \
                -o "$tmp" "./cmd/$t"
            cd - >/dev/null
            rm -rf "$work" ;;
        tofu)
            cd "$HERE/tofu"
            # dev=no: a release build (tofu version prints the plain version, no -dev suffix).
            run go build "${BUILD_FLAGS[@]}" -ldflags "-s -w -X github.com/opentofu/opentofu/version.dev=no" \
                -o "$tmp" github.com/opentofu/opentofu/cmd/tofu
            cd - >/dev/null
            write_tofu_rc ;;
    esac
    mv -f "$tmp" "$out"
    local key
    key="$(build_key_of "$t")"
    if [[ -n "$key" ]]; then echo "$key" >"$(build_key_file "$t")"; else rm -f "$(build_key_file "$t")"; fi
}

((${#missing[@]})) && echo "tools: building ${missing[*]} into $TOOLS_DIR ($(go version | awk '{print $3}'); logs in $LOG_DIR)"
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
for d in "${missing_data[@]}"; do
    echo "tools: $d $GATEWAY_API_VERSION ..."
    start=$SECONDS
    fetch_gateway_api_crds
    took=$((SECONDS - start))
    printf '%s\t%s\t%s\t%s\n' "$d" "$GATEWAY_API_VERSION" "$took" "$(date -u +%Y-%m-%dT%H:%M:%SZ)" >>"$TIMES"
    echo "tools: $d fetched in ${took}s -> $GATEWAY_API_CRDS"
done
echo "tools: done in $((SECONDS - total_start))s (per-tool times appended to $TIMES)"
