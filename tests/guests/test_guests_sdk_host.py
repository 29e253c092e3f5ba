"""SDK library code (printf, command line) compiled for the host and checked there.

The guest SDK's formatter and cmdline parser are plain C with no hardware
access, so they run as a host program: printf is compared with glibc's
snprintf, the cmdline parser with the documented key=value rules.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from replayvm.guests import build

HARNESS = r"""
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sdk.h"

static struct hvm_start_info info = {.magic = XEN_HVM_START_MAGIC_VALUE};

const struct hvm_start_info *start_info(void) { return &info; }
void serial_putc(char c) { putchar(c); }

void panic(const char *fmt, ...)
{
    printf("PANIC\n");
    exit(3);
}

static int failures;

#define SAME(...)                                                        \
    do {                                                                 \
        char ours[128], libc[128];                                       \
        ksnprintf(ours, sizeof(ours), __VA_ARGS__);                      \
        snprintf(libc, sizeof(libc), __VA_ARGS__);                       \
        if (strcmp(ours, libc)) {                                        \
            printf("MISMATCH %s: [%s] != [%s]\n", #__VA_ARGS__, ours, libc); \
            failures++;                                                  \
        }                                                                \
    } while (0)

int main(int argc, char **argv)
{
    if (argc == 4) { /* argv: str|u64, command line, key */
        const char *v;
        size_t len;
        char buf[32];

        info.cmdline_paddr = (uint64_t)(uintptr_t)argv[2];
        if (!cmdline_get(argv[3], &v, &len)) {
            printf("absent\n");
        } else if (!strcmp(argv[1], "str")) {
            cmdline_get_str(argv[3], buf, sizeof(buf), "");
            printf("[%s]\n", buf);
        } else {
            printf("%llu\n", (unsigned long long)cmdline_get_u64(argv[3], 0));
        }
        return 0;
    }

    SAME("%d|%i|%d", 0, -42, 2147483647);
    SAME("%d", (int)-2147483648);
    SAME("[%5d][%-5d][%05d][%05d]", 42, 42, 42, -42);
    SAME("%u %u", 0u, 4294967295u);
    SAME("%x %X %08x %8x %-8x|", 0xbeefu, 0xbeefu, 0xbeefu, 0xbeefu, 0xbeefu);
    SAME("%lx %lu %ld %ld", 0xffffffffffffffffUL, 18446744073709551615UL,
         (long)-9223372036854775807L - 1, 123456789012L);
    SAME("%016lx %zu", 0x1234UL, (size_t)77);
    SAME("[%s][%10s][%-10s][%.2s][%.*s]", "str", "abc", "abc", "abc", 1, "xyz");
    SAME("[%c][%3c][%-3c]", 'A', 'B', 'C');
    SAME("100%% %p", (void *)0x1000);
    SAME("%*d|%-*d|", 6, 7, 6, 7);
    {
        char small[4];
        int n = ksnprintf(small, sizeof(small), "%s", "truncated");
        if (n != 9 || strcmp(small, "tru")) {
            printf("MISMATCH truncation: %d [%s]\n", n, small);
            failures++;
        }
    }
    printf(failures ? "FAILED\n" : "OK\n");
    return failures != 0;
}
"""


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Path:
    gcc = shutil.which("gcc")
    if gcc is None:
        pytest.skip("gcc is not on PATH")
    tmp = tmp_path_factory.mktemp("sdk-host")
    (tmp / "harness.c").write_text(HARNESS)
    exe = tmp / "harness"
    sources = [build.SDK_DIR / "printf.c", build.SDK_DIR / "cmdline.c", tmp / "harness.c"]
    subprocess.run(
        [gcc, "-O1", "-Wall", "-Wno-format", f"-I{build.SDK_DIR}", *map(str, sources), "-o", str(exe)],
        check=True,
        capture_output=True,
    )
    return exe


def run(exe: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(exe), *args], capture_output=True, text=True, check=False)


def test_sdk_printf_matches_libc_snprintf(harness: Path) -> None:
    proc = run(harness)
    assert proc.stdout == "OK\n"


@pytest.mark.parametrize(
    ("cmdline", "key", "expected"),
    [
        ("ticks=50", "ticks", "[50]"),
        ("  a=1   ticks=7  ", "ticks", "[7]"),
        ("ticks=1 ticks=2", "ticks", "[1]"),
        ("verbose", "verbose", "[]"),
        ("name=", "name", "[]"),
        ("name=a=b", "name", "[a=b]"),
        ("ticksx=5 xticks=6", "ticks", "absent"),
        ("", "ticks", "absent"),
    ],
)
def test_sdk_cmdline_string_lookup(harness: Path, cmdline: str, key: str, expected: str) -> None:
    assert run(harness, "str", cmdline, key).stdout == expected + "\n"


@pytest.mark.parametrize(
    ("cmdline", "expected"),
    [("n=50", "50"), ("n=0x20", "32"), ("n=0XfF", "255"), ("n=18446744073709551615", "18446744073709551615")],
)
def test_sdk_cmdline_number_lookup(harness: Path, cmdline: str, expected: str) -> None:
    assert run(harness, "u64", cmdline, "n").stdout == expected + "\n"


@pytest.mark.parametrize("cmdline", ["n=12ab", "n=", "n=0x", "n=18446744073709551616", "n=-1"])
def test_sdk_cmdline_rejects_a_malformed_number(harness: Path, cmdline: str) -> None:
    proc = run(harness, "u64", cmdline, "n")
    assert (proc.stdout, proc.returncode) == ("PANIC\n", 3)
