"""Build a test initramfs for Linux guests: a newc cpio written by this code.

The archive holds a static busybox, its applets as symlinks in /bin and
/sbin, the directories a minimal system mounts on, a ``/dev/console``
character device (the kernel opens it for init's stdin/stdout before any
devtmpfs exists) and an ``/init`` script. The format is the "new ASCII"
(``070701``) cpio the kernel unpacks (Documentation/driver-api/
early-userspace/buffer-format.rst): a 110-byte header of hex fields, the
NUL-terminated name padded to 4 bytes, the data padded to 4 bytes, and a
``TRAILER!!!`` entry. Every field is fixed (mtime 0, uid/gid 0, inodes
numbered in order), so the same inputs give the same bytes.

The default /init mounts proc and sys, prints ``/proc/cpuinfo``, ``uname
-a`` and an awk computation, runs a shell on the serial console, and ends
with ``reboot -f`` once the shell exits. Why reboot and not poweroff: the
rv-pc has no ACPI, so Linux has no way to power off and turns ``poweroff
-f`` into a halt ("reboot: System halted", then HLT with interrupts off,
which ReplayVM reports as "guest halted with interrupts disabled", status
4). ``reboot -f`` resets through the i8042 (0xFE to port 0x64): "reboot:
Restarting system", and ReplayVM stops with status 0, as ``qemu
-no-reboot`` exits. :data:`SHELL_INIT` (``replayvm demo --linux``) mounts
proc, sys and devtmpfs and runs an interactive shell with ttyS0 as its
controlling terminal, then resets the same way.

Usage::

    replayvm guests build-initramfs [--busybox PATH] [--init SCRIPT] -o OUT.cpio
    python -m replayvm.guests.initramfs --busybox PATH -o OUT.cpio [--init SCRIPT]
"""

from __future__ import annotations

import argparse
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

NEWC_MAGIC = b"070701"
TRAILER = "TRAILER!!!"

# Applets the default /init and an interactive test session use; all are in
# Debian's busybox-static. /bin/busybox dispatches on argv[0].
APPLETS = (
    "sh", "ash", "awk", "cat", "cp", "date", "dd", "df", "dmesg", "echo", "env", "false", "free", "grep",
    "halt", "head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mknod", "mount", "mv", "poweroff",
    "printf", "ps", "pwd", "reboot", "rm", "rmdir", "sed", "seq", "setsid", "sleep", "sort", "stat", "sync",
    "tail", "tee", "test", "time", "top", "touch", "tr", "true", "umount", "uname", "uptime", "wc",
    "cttyhack", "md5sum", "sha256sum", "expr", "which", "yes", "xargs", "od", "hexdump", "cut", "basename",
)  # fmt: skip
SBIN_APPLETS = frozenset({"halt", "poweroff", "reboot", "mknod", "mount", "umount"})

DIRECTORIES = ("bin", "sbin", "dev", "etc", "proc", "root", "sys", "tmp", "usr", "usr/bin", "usr/sbin")

TTY_MAJOR, CONSOLE_MINOR = 5, 1  # Documentation/admin-guide/devices.txt: /dev/console

DEFAULT_INIT = """\
#!/bin/sh
# ReplayVM test initramfs (replayvm/guests/initramfs.py).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
echo "== cpuinfo"
cat /proc/cpuinfo
echo "== uname"
uname -a
echo "== awk"
awk 'BEGIN { s = 0; for (i = 1; i <= 1000; i++) s += i * i; printf "sum of squares 1..1000 = %d\\n", s }'
echo "== shell (type exit to end)"
cd /root
/bin/sh
echo "== bye"
reboot -f
"""

# `replayvm demo --linux`: an interactive shell with a controlling terminal
# (cttyhack finds ttyS0 in /sys/class/tty/console/active), so job control
# works; `exit` or Ctrl-D ends it and init resets the machine.
SHELL_INIT = """\
#!/bin/sh
# ReplayVM demo initramfs (replayvm/guests/initramfs.py).
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
hostname -F /etc/hostname
echo
echo "ReplayVM: Linux $(uname -r) is up; this busybox shell is on ttyS0. 'exit' ends the session."
cd /root
setsid cttyhack sh
echo "== bye"
reboot -f
"""


@dataclass(frozen=True, slots=True)
class Entry:
    name: str  # path inside the archive, no leading slash
    mode: int  # st_mode: file type and permissions
    data: bytes = b""
    rdev: tuple[int, int] = (0, 0)


def _pad4(n: int) -> bytes:
    return b"\0" * (-n % 4)


def newc_entry(ino: int, entry: Entry) -> bytes:
    """One newc record: header, name, data (buffer-format.rst)."""
    name = entry.name.encode() + b"\0"
    nlink = 2 if stat.S_ISDIR(entry.mode) else 1
    fields = (
        ino, entry.mode, 0, 0, nlink, 0, len(entry.data), 0, 0, entry.rdev[0], entry.rdev[1], len(name), 0,
    )  # fmt: skip
    header = NEWC_MAGIC + b"".join(b"%08X" % f for f in fields)
    return header + name + _pad4(len(header) + len(name)) + entry.data + _pad4(len(entry.data))


def write_newc(entries: list[Entry]) -> bytes:
    """A complete archive: the entries in order, then the trailer, padded to 512 bytes."""
    out = bytearray()
    for ino, entry in enumerate(entries, start=1):
        out += newc_entry(ino, entry)
    out += newc_entry(0, Entry(TRAILER, 0))
    out += b"\0" * (-len(out) % 512)
    return bytes(out)


def initramfs_entries(busybox: bytes, init: str = DEFAULT_INIT) -> list[Entry]:
    entries = [Entry(d, stat.S_IFDIR | 0o755) for d in DIRECTORIES]
    entries.append(Entry("bin/busybox", stat.S_IFREG | 0o755, busybox))
    for applet in APPLETS:
        where = "sbin" if applet in SBIN_APPLETS else "bin"
        target = "busybox" if where == "bin" else "../bin/busybox"
        entries.append(Entry(f"{where}/{applet}", stat.S_IFLNK | 0o777, target.encode()))
    entries.append(Entry("dev/console", stat.S_IFCHR | 0o600, rdev=(TTY_MAJOR, CONSOLE_MINOR)))
    entries.append(Entry("etc/passwd", stat.S_IFREG | 0o644, b"root:x:0:0:root:/root:/bin/sh\n"))
    entries.append(Entry("etc/hostname", stat.S_IFREG | 0o644, b"replayvm\n"))
    entries.append(Entry("init", stat.S_IFREG | 0o755, init.encode()))
    return entries


def build_initramfs(busybox: bytes, init: str = DEFAULT_INIT) -> bytes:
    if busybox[:4] != b"\x7fELF":
        raise ValueError("the busybox binary is not an ELF executable")
    return write_newc(initramfs_entries(busybox, init))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m replayvm.guests.initramfs",
        description="Build a busybox initramfs (newc cpio) for Linux guests.",
    )
    p.add_argument("--busybox", required=True, metavar="PATH", help="a static busybox binary (Debian busybox-static)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.cpio")
    p.add_argument("--init", metavar="SCRIPT", help="/init script to use instead of the default")
    args = p.parse_args(argv)
    try:
        busybox = Path(args.busybox).read_bytes()
        init = Path(args.init).read_text() if args.init else DEFAULT_INIT
        data = build_initramfs(busybox, init)
        Path(args.output).write_bytes(data)
    except (OSError, ValueError) as e:
        print(f"initramfs: {e}", file=sys.stderr)
        return 2
    print(f"initramfs: wrote {args.output} ({len(data)} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
