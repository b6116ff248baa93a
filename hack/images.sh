#!/usr/bin/env bash
# Build the project's images with docker (when an engine answers `docker info`) or buildah
# (rootful, vfs storage, chroot isolation: works where no container engine or cgroups are
# available). The Makefile's `base-image`, `images` and `test-images` targets call this.
#
#   hack/images.sh base                       bootstrap $LOCAL_BASE_IMAGE from Debian packages
#   hack/images.sh build [operator|runtime]   build the images (both by default)
#   hack/images.sh sizes                      print each image's name and size
#
# Settings (environment): IMAGE_REPO, IMAGE_TAG, BASE_IMAGE (empty: the Dockerfiles' default,
# the official slim Python image), IMAGE_BUILDER (docker|buildah, detected if empty),
# LOCAL_BASE_IMAGE, DEBIAN_SUITE, DEBIAN_SOURCES (a sources.list file; empty: Debian's
# default mirror), BUILDAH_STORAGE_DRIVER (vfs) and BUILDAH_ISOLATION (chroot).
set -euo pipefail
cd "$(dirname "$0")/.."

IMAGE_REPO=${IMAGE_REPO:-mlops-operator}
IMAGE_TAG=${IMAGE_TAG:-$(sed -n 's/^version = "\(.*\)"/\1/p' pyproject.toml)}
BASE_IMAGE=${BASE_IMAGE:-}
LOCAL_BASE_IMAGE=${LOCAL_BASE_IMAGE:-localhost/mlops-operator/python-base:3.11-bookworm}
DEBIAN_SUITE=${DEBIAN_SUITE:-bookworm}
DEBIAN_SOURCES=${DEBIAN_SOURCES-}
BUILDAH_STORAGE_DRIVER=${BUILDAH_STORAGE_DRIVER:-vfs}
export BUILDAH_ISOLATION=${BUILDAH_ISOLATION:-chroot}
TEMP_FILE=
TEMP_DIR=
trap 'rm -rf "$TEMP_FILE" "$TEMP_DIR"' EXIT

buildah() { command buildah --storage-driver "$BUILDAH_STORAGE_DRIVER" "$@"; }

say() { printf 'images: %s\n' "$*" >&2; }

builder() {
    if [[ -n ${IMAGE_BUILDER:-} ]]; then
        echo "$IMAGE_BUILDER"
    elif command -v docker >/dev/null && docker info >/dev/null 2>&1; then
        echo docker
    elif command -v buildah >/dev/null; then
        echo buildah
    else
        say "neither a Docker engine (docker info) nor buildah: apt-get install buildah"
        exit 1
    fi
}

# pip's settings for the build, handed over as build secrets (never a layer or a build
# argument, which the image history would keep): a pip.conf with the index-url,
# extra-index-url and trusted-host this machine's pip uses (PIP_* variables, else pip's
# configuration), and the CA bundle pip is told to trust (PIP_CERT or pip's `cert`), e.g. a
# proxy's. Local file:// indexes are left out: the build cannot see this machine's files.
pip_setting() {
    local key=$1 var value
    var=PIP_$(tr 'a-z-' 'A-Z_' <<<"$key")
    value=${!var:-}
    if [[ -z $value ]] && command -v python3 >/dev/null; then
        value=$(python3 -m pip config list 2>/dev/null |
            sed -n "s/^global\.$key='\(.*\)'\$/\1/p" | tail -n 1)
    fi
    echo "$value"
}

pip_secrets() {
    local conf=$1 cert=$2 key word kept found
    printf '[global]\n' >"$conf"
    for key in index-url extra-index-url trusted-host; do
        kept=()
        for word in $(pip_setting "$key"); do
            [[ $word == file:* ]] || kept+=("$word")
        done
        if ((${#kept[@]})); then
            printf '%s = %s\n' "$key" "${kept[*]}" >>"$conf"
        fi
    done
    found=$(pip_setting cert)
    if [[ -n $found && -f $found ]]; then
        cp "$found" "$cert"
        printf 'cert = /run/secrets/pip-cert\n' >>"$conf"
    fi
}

image_name() { echo "$IMAGE_REPO/$1:$IMAGE_TAG"; }

build_one() {
    local engine=$1 image=$2 secrets=$3 start args
    args=(-f "images/$image/Dockerfile" --build-arg "VERSION=$IMAGE_TAG"
        --secret "id=pip.conf,src=$secrets/pip.conf" --secret "id=pip-cert,src=$secrets/pip-cert"
        -t "$(image_name "$image")")
    [[ -z $BASE_IMAGE ]] || args+=(--build-arg "BASE_IMAGE=$BASE_IMAGE")
    say "building $(image_name "$image") with $engine${BASE_IMAGE:+ on $BASE_IMAGE}"
    start=$(date +%s)
    if [[ $engine == docker ]]; then
        DOCKER_BUILDKIT=1 docker build "${args[@]}" .
    else
        buildah build --layers "${args[@]}" . || {
            [[ -n $BASE_IMAGE ]] || say "no registry reachable? build on a base bootstrapped" \
                "from Debian packages: make images BASE_IMAGE=$LOCAL_BASE_IMAGE"
            return 1
        }
    fi
    say "built $(image_name "$image") in $(($(date +%s) - start)) s"
}

build() {
    local engine secrets images=("$@")
    ((${#images[@]})) || images=(operator runtime)
    engine=$(builder)
    # One fixed place for the secrets: buildah's layer cache keys on the secret's source path,
    # so a fresh temporary directory would rebuild every RUN that mounts them.
    secrets=${TMPDIR:-/tmp}/mlops-operator-images.$(id -u)
    rm -rf "$secrets"
    mkdir -m 700 "$secrets"
    TEMP_DIR=$secrets
    touch "$secrets/pip-cert"
    pip_secrets "$secrets/pip.conf" "$secrets/pip-cert"
    for image in "${images[@]}"; do
        build_one "$engine" "$image" "$secrets"
    done
    sizes "${images[@]}"
}

sizes() {
    local images=("$@") engine
    ((${#images[@]})) || images=(operator runtime)
    engine=$(builder)
    for image in "${images[@]}"; do
        if [[ $engine == docker ]]; then
            docker image ls --format '{{.Repository}}:{{.Tag}}  {{.Size}}' "$(image_name "$image")"
        else
            buildah images --format '{{.Name}}:{{.Tag}}  {{.Size}}' "$(image_name "$image")"
        fi
    done
}

# A Debian base with the distribution's python3 (3.11 on bookworm, as pyproject's
# requires-python wants) and venv, from Debian's packages through mmdebstrap: for machines
# where no registry serves the official Python image. Documentation and locales are left out.
base() {
    local engine tarball container start
    engine=$(builder)
    if { [[ $engine == docker ]] && docker image inspect "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; } ||
        { [[ $engine == buildah ]] && buildah inspect --type image "$LOCAL_BASE_IMAGE" >/dev/null 2>&1; }; then
        say "$LOCAL_BASE_IMAGE is there (remove it to bootstrap it again)"
        return
    fi
    command -v mmdebstrap >/dev/null || { say "mmdebstrap is missing: apt-get install mmdebstrap"; exit 1; }
    start=$(date +%s)
    tarball=$(mktemp --suffix .tar)
    TEMP_FILE=$tarball
    # shellcheck disable=SC2086  # DEBIAN_SOURCES is one file name or nothing
    mmdebstrap --quiet --variant=minbase --include=python3,python3-venv,ca-certificates \
        --aptopt='Acquire::Check-Valid-Until "false"' \
        --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
        --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
        "$DEBIAN_SUITE" "$tarball" $DEBIAN_SOURCES
    if [[ $engine == docker ]]; then
        docker import --change 'CMD ["python3"]' --change 'ENV LANG=C.UTF-8' "$tarball" "$LOCAL_BASE_IMAGE"
    else
        container=$(buildah from scratch)
        buildah add --quiet "$container" "$tarball" /
        buildah config --cmd python3 --env LANG=C.UTF-8 \
            --label org.opencontainers.image.description="Debian $DEBIAN_SUITE with python3, bootstrapped by mmdebstrap" \
            "$container"
        buildah commit --quiet --rm "$container" "$LOCAL_BASE_IMAGE" >/dev/null
    fi
    say "bootstrapped $LOCAL_BASE_IMAGE in $(($(date +%s) - start)) s"
}

command=${1:-build}
shift || true
case $command in
base) base ;;
build) build "$@" ;;
sizes) sizes "$@" ;;
*)
    say "unknown command $command (base, build, sizes)"
    exit 2
    ;;
esac
