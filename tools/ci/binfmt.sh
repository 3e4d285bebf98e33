# Make foreign-architecture binaries runnable (sourced by tools/ci/*; not run directly).
#
# qemu-user-static registers its interpreters with the F (fix-binary) flag: the kernel opens
# the interpreter when it is registered, so it also works inside a chroot that does not contain
# it. In a container binfmt_misc is often not mounted: mount it (needs CAP_SYS_ADMIN), then
# enable the qemu entry. When that is impossible, say exactly why.

ci_qemu_name() { case "$1" in arm64) echo aarch64 ;; armhf) echo arm ;; *) echo "$1" ;; esac; }

ci_binfmt_ready() {
  local q; q=$(ci_qemu_name "$1")
  [ -x /usr/bin/qemu-$q-static ] || ci_die "qemu-user-static is not installed (apt-get install qemu-user-static binfmt-support)"
  command -v update-binfmts >/dev/null || ci_die "binfmt-support is not installed (apt-get install binfmt-support)"
  if [ ! -e /proc/sys/fs/binfmt_misc/register ]; then
    mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc 2>/dev/null ||
      ci_die "cannot mount binfmt_misc on /proc/sys/fs/binfmt_misc (no CAP_SYS_ADMIN in this container?); arm64 binaries cannot run"
  fi
  if [ ! -e /proc/sys/fs/binfmt_misc/qemu-$q ]; then
    update-binfmts --enable "qemu-$q" >/dev/null 2>&1 ||
      update-binfmts --import "qemu-$q" >/dev/null 2>&1 || true
  fi
  grep -qx enabled /proc/sys/fs/binfmt_misc/qemu-$q 2>/dev/null ||
    ci_die "binfmt_misc entry qemu-$q is not enabled (update-binfmts --enable qemu-$q failed)"
  grep -q '^flags:.*F' /proc/sys/fs/binfmt_misc/qemu-$q ||
    ci_die "binfmt_misc entry qemu-$q lacks the F flag; the interpreter would not be found inside a chroot"
}
