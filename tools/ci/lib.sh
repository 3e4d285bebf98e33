# Shared helpers for the clean-root CI checks (sourced by tools/ci/*; not run directly).
#
# A check works on a throw-away copy of a pristine Debian root: the pristine root is built once
# with debootstrap and kept as a tarball in $HEADSET_CI_CACHE (default /var/cache/headset-ci);
# every run unpacks it fresh into a scratch directory, copies in the host's network set-up
# (apt sources, CA bundle, pip configuration: read at run time, never stored in the repository),
# mounts /proc, /sys, /dev, /dev/pts and /dev/shm, and removes all of it on exit, failed or not.

HEADSET_CI_CACHE=${HEADSET_CI_CACHE:-/var/cache/headset-ci}
HEADSET_CI_SUITE=${HEADSET_CI_SUITE:-bookworm}

ci_say() { printf '==> [%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
ci_die() { echo "${0##*/}: $*" >&2; exit 1; }

# The Debian mirror the host's apt uses (first deb URI serving $HEADSET_CI_SUITE), so the roots
# are built from the same place apt on this machine already reaches. HEADSET_CI_MIRROR overrides.
ci_host_mirror() {
  if [ -n "${HEADSET_CI_MIRROR:-}" ]; then echo "$HEADSET_CI_MIRROR"; return; fi
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    uri=$(awk -v suite="$HEADSET_CI_SUITE" '
      /^[[:space:]]*$/ { if (types ~ /(^| )deb( |$)/ && suites ~ "(^| )" suite "( |$)" && uris != "") { print uris; exit } types=suites=uris=""; next }
      /^Types:/  { sub(/^Types:[[:space:]]*/, "");  types=$0 }
      /^Suites:/ { sub(/^Suites:[[:space:]]*/, ""); suites=$0 }
      /^URIs:/   { sub(/^URIs:[[:space:]]*/, "");   split($0, u, " "); uris=u[1] }
      END { if (types ~ /(^| )deb( |$)/ && suites ~ "(^| )" suite "( |$)" && uris != "") print uris }
    ' "$f" | head -n1)
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    uri=$(awk -v suite="$HEADSET_CI_SUITE" '$1 == "deb" { i = 2; if ($2 ~ /^\[/) { while ($i !~ /\]$/) i++; i++ } if ($(i+1) == suite) { print $i; exit } }' "$f")
    [ -n "$uri" ] && { echo "$uri"; return; }
  done
  ci_die "no deb source for $HEADSET_CI_SUITE in the host's apt sources; set HEADSET_CI_MIRROR"
}

# Path of the pristine root tarball for an architecture.
ci_tarball() { echo "$HEADSET_CI_CACHE/$HEADSET_CI_SUITE-$1.tar.zst"; }

# --- a fresh root for one run -------------------------------------------------------------
#
# ci_enter_namespace "$@": re-run the calling script in private mount and PID namespaces, so
# every mount it makes and every process started in the root (brokers, databases, the demo)
# end with it, even if the script itself is killed.
ci_enter_namespace() {
  if [ -z "${HEADSET_CI_IN_NS:-}" ]; then
    command -v unshare >/dev/null || ci_die "unshare (util-linux) is needed"
    HEADSET_CI_IN_NS=1 exec unshare --mount --propagation private --pid --fork --kill-child -- "$0" "$@"
  fi
}

# ci_unpack ARCH: unpack the cached pristine root (building it first if missing) into a new
# scratch directory; sets CI_WORK (removed on exit) and CI_ROOT.
ci_unpack() {
  local arch=$1 tarball
  tarball=$(ci_tarball "$arch")
  [ -s "$tarball" ] || "$(dirname "${BASH_SOURCE[0]}")/build-root" "$arch"
  mkdir -p "$HEADSET_CI_CACHE"
  ci_remove_stale
  CI_WORK=$(mktemp -d "$HEADSET_CI_CACHE/run-$arch.XXXXXX")
  exec 9>"$CI_WORK.lock"
  flock 9
  CI_ROOT=$CI_WORK/root
  trap ci_cleanup EXIT
  trap 'exit 130' INT TERM
  mkdir "$CI_ROOT"
  ci_say "unpacking $tarball"
  zstd -q -d -c "$tarball" | tar -C "$CI_ROOT" --numeric-owner --xattrs --xattrs-include='*' -xf -
}

# Remove scratch roots of runs that were killed (their lock is free; their mounts, in a private
# namespace, ended with them).
ci_remove_stale() {
  local d
  for d in "$HEADSET_CI_CACHE"/run-*.lock; do
    [ -e "$d" ] || continue
    if flock -n "$d" true; then rm -rf --one-file-system "${d%.lock}"; rm -f "$d"; fi
  done
}

# Unmount everything under the root (deepest first), then remove the scratch directory.
ci_cleanup() {
  local rc=$? m
  [ -n "${CI_WORK:-}" ] && [ -d "$CI_WORK" ] || return $rc
  for m in $(awk -v w="$CI_WORK/" 'index($2, w) == 1 {print $2}' /proc/mounts | sort -r); do
    umount "$m" 2>/dev/null || umount -l "$m" || true
  done
  if awk -v w="$CI_WORK/" 'index($2, w) == 1 {found=1} END {exit !found}' /proc/mounts; then
    echo "${0##*/}: mounts left under $CI_WORK; not removing it" >&2
  elif [ -n "${HEADSET_CI_KEEP:-}" ]; then
    echo "${0##*/}: kept $CI_WORK (HEADSET_CI_KEEP)" >&2
  else
    rm -rf --one-file-system "$CI_WORK"
    rm -f "$CI_WORK.lock"
  fi
  return $rc
}

# ci_mount: /proc (of this PID namespace), /sys, /dev, /dev/pts, /dev/shm inside the root.
ci_mount() {
  mount -t proc proc "$CI_ROOT/proc"
  mount --rbind /sys "$CI_ROOT/sys"
  mount --make-rslave "$CI_ROOT/sys"
  mount --bind /dev "$CI_ROOT/dev"
  mkdir -p "$CI_ROOT/dev/pts" "$CI_ROOT/dev/shm"
  mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$CI_ROOT/dev/pts" 2>/dev/null ||
    mount --bind /dev/pts "$CI_ROOT/dev/pts"
  mount -t tmpfs -o mode=1777,nosuid,nodev shm "$CI_ROOT/dev/shm"
}

# ci_download_caches ARCH USER HOME: keep what apt and pip download between runs, outside the
# root: $HEADSET_CI_CACHE/apt-ARCH on the root's /var/cache/apt/archives, and pip-ARCH-USER on
# USER's ~/.cache/pip. Only downloads are kept (the root itself is fresh each time); an empty
# cache directory is a cold run. HEADSET_CI_NO_DOWNLOAD_CACHE=1 turns this off.
ci_download_caches() {
  local arch=$1 user=$2 home=$3 uid gid
  [ -z "${HEADSET_CI_NO_DOWNLOAD_CACHE:-}" ] || return 0
  mkdir -p "$HEADSET_CI_CACHE/apt-$arch" "$CI_ROOT/var/cache/apt/archives"
  mount --bind "$HEADSET_CI_CACHE/apt-$arch" "$CI_ROOT/var/cache/apt/archives"
  uid=$(chroot "$CI_ROOT" id -u "$user"); gid=$(chroot "$CI_ROOT" id -g "$user")
  mkdir -p "$HEADSET_CI_CACHE/pip-$arch-$user" "$CI_ROOT$home/.cache/pip"
  chown "$uid:$gid" "$HEADSET_CI_CACHE/pip-$arch-$user" "$CI_ROOT$home/.cache" "$CI_ROOT$home/.cache/pip"
  mount --bind "$HEADSET_CI_CACHE/pip-$arch-$user" "$CI_ROOT$home/.cache/pip"
}

# ci_host_network: what apt and pip need to reach the registries the way the host does,
# copied at run time: DNS, apt sources and their network settings (Acquire::*), the CA
# bundle and the local CAs it is built from, and the pip configuration files.
ci_host_network() {
  local r=$CI_ROOT f key
  cp -L /etc/resolv.conf "$r/etc/resolv.conf"
  printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t%s\n' "$(hostname)" >"$r/etc/hosts"
  hostname >"$r/etc/hostname"
  # apt sources as the host has them
  [ -f /etc/apt/sources.list ] && cp /etc/apt/sources.list "$r/etc/apt/sources.list" || rm -f "$r/etc/apt/sources.list"
  rm -f "$r/etc/apt/sources.list.d/"*
  for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] && cp "$f" "$r/etc/apt/sources.list.d/"
  done
  for key in $(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
               grep -oE '(signed-by=|Signed-By:[[:space:]]*)/[^] ]+' | sed -E 's/^(signed-by=|Signed-By:[[:space:]]*)//' | sort -u); do
    [ -f "$key" ] && [ ! -e "$r$key" ] && install -D -m 0644 "$key" "$r$key"
  done
  for f in /etc/apt/apt.conf /etc/apt/apt.conf.d/*; do
    [ -f "$f" ] && grep -q '^[[:space:]]*Acquire' "$f" && cp "$f" "$r$f"
  done
  # CAs: the bundle, and the local CAs update-ca-certificates rebuilds it from
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$r/etc/ssl/certs/ca-certificates.crt"
  if [ -d /usr/local/share/ca-certificates ]; then
    mkdir -p "$r/usr/local/share/ca-certificates"
    cp -a /usr/local/share/ca-certificates/. "$r/usr/local/share/ca-certificates/"
  fi
  # pip configuration (the PIP_* variables are passed by ci_env)
  [ -f /etc/pip.conf ] && cp /etc/pip.conf "$r/etc/pip.conf"
  if [ -d /etc/xdg/pip ]; then mkdir -p "$r/etc/xdg"; cp -a /etc/xdg/pip "$r/etc/xdg/"; fi
  return 0
}

# ci_env: the environment a login shell in the root gets: a clean one, plus the host's PIP_*
# and proxy variables (the network set-up), plus CI.
ci_env() {
  local v
  echo "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
  echo "LANG=C.UTF-8"
  echo "TERM=dumb"
  [ -n "${CI:-}" ] && echo "CI=$CI"
  for v in $(compgen -e); do
    case "$v" in
      PIP_*)
        # a local path the root does not have (a host-only wheel directory) would only add warnings
        case "${!v}" in /*) [ -e "$CI_ROOT${!v}" ] || continue ;; esac
        echo "$v=${!v}" ;;
      http_proxy|https_proxy|no_proxy|HTTP_PROXY|HTTPS_PROXY|NO_PROXY) echo "$v=${!v}" ;;
    esac
  done
}

# ci_clone SRC DEST_IN_ROOT OWNER: a git clone of SRC's committed HEAD (not its work tree).
ci_clone() {
  local src=$1 dest=$CI_ROOT$2 owner=$3
  git clone -q --no-hardlinks "$src" "$dest"
  git -C "$dest" checkout -q --detach "$(git -C "$src" rev-parse HEAD)"
  chroot "$CI_ROOT" chown -R "$owner:$owner" "$2"
}

# ci_as USER CMD...: run CMD in the root as USER (a login-like clean environment).
ci_as() {
  local user=$1; shift
  local home
  home=$(chroot "$CI_ROOT" getent passwd "$user" | cut -d: -f6)
  mapfile -t envs < <(ci_env)
  chroot "$CI_ROOT" /usr/sbin/runuser -u "$user" -- /usr/bin/env -i "${envs[@]}" \
    HOME="$home" USER="$user" LOGNAME="$user" SHELL=/bin/bash "$@"
}

# ci_host_packages PKG...: install the host tools the checks need (apt), if missing.
ci_host_packages() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  ci_say "apt (host): installing ${missing[*]}"
  apt-get update -q >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
}
