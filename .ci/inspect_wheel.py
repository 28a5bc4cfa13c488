"""Inspect a built wheel without installing it: the tags in its name, the architecture of its
extension, the glibc symbol versions it needs, its shared-library dependencies, and its size.

    python .ci/inspect_wheel.py WHEEL EXPECTED_PLATFORM_TAG [MAX_MB]

Exit 1 naming every check that failed. The ELF checks apply the policy of the tag (manylinux:
NEEDED libraries in the whitelist, no GLIBC_ symbol version above the policy's; musllinux: NEEDED
only musl's libc and libz, no symbol versions at all, which musl does not have) and print the
facts behind it. `auditwheel show` judges the policy as a whole too (it must find the wheel
consistent with the expected tag or an older one of the same family), except for a musllinux
wheel that names musl's libc `libc.so` (zig does), which auditwheel cannot analyse off Alpine:
there the ELF checks are the verdict and say so, and .ci/musl-smoke loads the wheel on musl.
"""

from __future__ import annotations

import io
import re
import subprocess
import sys
import zipfile
from typing import Dict, List, Optional, Tuple

from elftools.elf.dynamic import DynamicSection
from elftools.elf.elffile import ELFFile
from elftools.elf.gnuversions import GNUVerNeedSection

# e_machine per architecture in a wheel's platform tag.
MACHINES: Dict[str, str] = {"x86_64": "EM_X86_64", "aarch64": "EM_AARCH64"}
# The libraries the manylinux2014 / musllinux_1_2 policies allow an extension to link against
# (auditwheel's policy files); anything else would have to be vendored into the wheel.
ALLOWED_GLIBC = {
    "libc.so.6",
    "libm.so.6",
    "libdl.so.2",
    "libpthread.so.0",
    "librt.so.1",
    "libgcc_s.so.1",
    "libutil.so.1",
    "libcrypt.so.1",
    "libnsl.so.1",
    "libstdc++.so.6",
    "ld-linux-x86-64.so.2",
    "ld-linux-aarch64.so.1",
}
# musllinux_1_x allows only musl's libc and libz (auditwheel's musllinux-policy.json); libc is
# `libc.musl-<arch>.so.1` (Alpine's name) or a bare `libc.so` (what zig links), which musl's
# loader resolves to itself. libgcc_s is NOT in the policy: Alpine has it only with `libgcc`.
ALLOWED_MUSL = {"libc.so", "libz.so.1"}
MUSL_LIBC_PREFIX = "libc.musl-"
MANYLINUX_GLIBC: Dict[str, Tuple[int, int]] = {"manylinux2014": (2, 17), "manylinux_2_17": (2, 17)}


def version_needs(elf: ELFFile) -> List[Tuple[str, str]]:
    """Every (library, symbol version) the dynamic symbols require (from .gnu.version_r)."""
    found: List[Tuple[str, str]] = []
    for section in elf.iter_sections():
        if not isinstance(section, GNUVerNeedSection):
            continue
        for verneed, auxiliaries in section.iter_versions():
            found += [(verneed.name, aux.name) for aux in auxiliaries]
    return found


def glibc_needs(needs: List[Tuple[str, str]]) -> List[Tuple[int, int]]:
    """The GLIBC_x.y versions among `needs`."""
    found: List[Tuple[int, int]] = []
    for _lib, version in needs:
        m = re.fullmatch(r"GLIBC_(\d+)\.(\d+)(?:\.\d+)?", version)
        if m:
            found.append((int(m.group(1)), int(m.group(2))))
    return found


def needed_libs(elf: ELFFile) -> List[str]:
    libs: List[str] = []
    for section in elf.iter_sections():
        if isinstance(section, DynamicSection):
            libs += [tag.needed for tag in section.iter_tags() if tag.entry.d_tag == "DT_NEEDED"]
    return libs


def auditwheel_tag(wheel: str) -> str:
    """The platform tag `auditwheel show` finds the wheel consistent with ("" if none)."""
    out = subprocess.run(["auditwheel", "show", wheel], capture_output=True, text=True, check=False)
    text = " ".join((out.stdout + out.stderr).split())
    print("  auditwheel:", text)
    m = re.search(r'consistent with the following platform tag: "([^"]+)"', text)
    return m.group(1) if m else ""


def tag_ok(found: str, expected: str) -> bool:
    """`found` is `expected` or an older tag of the same family and architecture (a wheel that
    needs glibc 2.5 is manylinux2014-compatible too)."""
    legacy = {
        "manylinux2014": "manylinux_2_17",
        "manylinux2010": "manylinux_2_12",
        "manylinux1": "manylinux_2_5",
    }
    for old, new in legacy.items():
        found = found.replace(old + "_", new + "_")
        expected = expected.replace(old + "_", new + "_")
    pattern = r"(manylinux|musllinux)_(\d+)_(\d+)_(\w+)"
    f, e = re.fullmatch(pattern, found), re.fullmatch(pattern, expected)
    if not f or not e:
        return False
    return (
        f.group(1) == e.group(1)
        and f.group(4) == e.group(4)
        and (int(f.group(2)), int(f.group(3))) <= (int(e.group(2)), int(e.group(3)))
    )


def inspect(wheel: str, platform_tag: str, max_mb: Optional[float]) -> List[str]:
    errors: List[str] = []
    name = wheel.rsplit("/", 1)[-1]
    if "-cp38-abi3-" not in name:
        errors.append(f"{name}: not tagged cp38-abi3")
    if platform_tag not in name[: -len(".whl")].rsplit("-", 1)[-1].split("."):
        errors.append(f"{name}: platform tag is not {platform_tag}")
    arch = next((a for a in MACHINES if platform_tag.endswith(a)), None)
    if arch is None:
        errors.append(f"unknown architecture in {platform_tag}")
        return errors
    size_mb = 0.0
    with zipfile.ZipFile(wheel) as zf:
        size_mb = sum(i.compress_size for i in zf.infolist()) / 1e6
        sos = [i for i in zf.infolist() if i.filename.endswith(".so")]
        if len(sos) != 1:
            errors.append(f"expected one extension module, found {[i.filename for i in sos]}")
            return errors
        info = sos[0]
        elf = ELFFile(io.BytesIO(zf.read(info)))
        machine = elf["e_machine"]
        libs = needed_libs(elf)
        needs = version_needs(elf)
        glibc = glibc_needs(needs)
        elf_class, elf_type = elf.elfclass, elf["e_type"]
        has_symtab = elf.get_section_by_name(".symtab") is not None
    newest = max(glibc) if glibc else None
    print(
        f"  {info.filename}: {info.file_size / 1e6:.1f} MB ({info.compress_size / 1e6:.1f} MB compressed), "
        f"{machine}, NEEDED {libs}, newest GLIBC {'.'.join(map(str, newest)) if newest else 'none'}, "
        f"symtab {'present' if has_symtab else 'stripped'}; wheel {size_mb:.1f} MB"
    )
    if machine != MACHINES[arch]:
        errors.append(f"{info.filename}: machine {machine}, expected {MACHINES[arch]}")
    if (elf_class, elf_type) != (64, "ET_DYN"):
        errors.append(f"{info.filename}: ELF{elf_class} {elf_type}, expected a 64-bit shared object")
    musl = platform_tag.startswith("musllinux")
    if musl:
        musl_libc = f"{MUSL_LIBC_PREFIX}{arch}.so.1"
        print(f"  musllinux policy: NEEDED within {sorted(ALLOWED_MUSL | {musl_libc})}, no symbol versions")
        if needs:
            # musl has no symbol versioning: any version need (GLIBC_*, GCC_*) means the
            # extension was linked against glibc or libgcc_s and will not resolve on Alpine.
            errors.append(f"{info.filename}: a musl build needs symbol versions {sorted(set(needs))}")
        bad = [lib for lib in libs if lib not in ALLOWED_MUSL and lib != musl_libc]
        if not any(lib in (musl_libc, "libc.so") for lib in libs):
            errors.append(f"{info.filename}: not linked against musl libc ({libs})")
    else:
        policy = next((p for p in MANYLINUX_GLIBC if platform_tag.startswith(p)), None)
        if policy is None:
            errors.append(f"no glibc limit known for {platform_tag}")
        elif newest is not None and newest > MANYLINUX_GLIBC[policy]:
            errors.append(
                f"{info.filename}: needs GLIBC_{newest[0]}.{newest[1]} > "
                f"{'.'.join(map(str, MANYLINUX_GLIBC[policy]))} ({policy})"
            )
        bad = [lib for lib in libs if lib not in ALLOWED_GLIBC]
    if bad:
        errors.append(f"{info.filename}: links libraries outside the policy: {bad}")
    if has_symtab:
        errors.append(f"{info.filename}: not stripped")
    if musl and "libc.so" in libs:
        # auditwheel recognises musl only by Alpine's soname; it looks a bare `libc.so` up in
        # the host's library paths and stops at the first non-ELF file (on a glibc host,
        # glibc's libc.so linker script), with or without Debian's `musl` installed.
        print("  auditwheel: not run (NEEDED libc.so, which it cannot analyse off Alpine);")
        print("  the musllinux checks above are the verdict, .ci/musl-smoke loads it on musl")
    else:
        found = auditwheel_tag(wheel)
        if not tag_ok(found, platform_tag):
            errors.append(
                f"{name}: auditwheel finds it consistent with {found or 'no tag'}, not {platform_tag}"
            )
    if max_mb is not None and size_mb > max_mb:
        errors.append(f"{name}: {size_mb:.1f} MB > {max_mb} MB")
    return errors


def main() -> int:
    if len(sys.argv) not in (3, 4):
        print(__doc__, file=sys.stderr)
        return 2
    max_mb = float(sys.argv[3]) if len(sys.argv) == 4 else None
    errors = inspect(sys.argv[1], sys.argv[2], max_mb)
    for e in errors:
        print(f"  FAIL {e}", file=sys.stderr)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
