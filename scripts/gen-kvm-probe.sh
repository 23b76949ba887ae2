#!/usr/bin/env bash
# Assembles imagebuilder/src/host/kvm-probe.S (GNU binutils) and prints the two byte arrays that
# imagebuilder/src/host/kvm.rs embeds: the code at offset 0 and the reset vector at 0xfff0.
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)/imagebuilder/src/host/kvm-probe.S
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
as --64 -o "$tmp/probe.o" "$src"
ld -m elf_x86_64 -Ttext=0 -e 0 -o "$tmp/probe.elf" "$tmp/probe.o"
objcopy -O binary -j .text "$tmp/probe.elf" "$tmp/probe.bin"
python3 - "$tmp/probe.bin" <<'PY'
import sys
b = open(sys.argv[1], "rb").read()
assert len(b) == 0x10000, len(b)
end = max(i for i in range(0xfff0) if b[i]) + 1
def arr(name, data):
    print(f"const {name}: [u8; {len(data)}] = [")
    for i in range(0, len(data), 16):
        print("    " + " ".join(f"0x{x:02x}," for x in data[i:i + 16]))
    print("];")
arr("CODE", b[:end])
arr("RESET", b[0xfff0:0xfff5])
assert not any(b[end:0xfff0]) and not any(b[0xfff5:])
PY
