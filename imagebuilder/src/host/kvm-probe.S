# The guest of the KVM probe (imagebuilder/src/host/kvm.rs): a 64 KiB BIOS image that goes from
# real mode through protected mode into long mode, then writes 1 to QEMU's isa-debug-exit port
# 0xf4, which ends QEMU with exit status (1 << 1) | 1 = 3. Long mode, because a KVM that cannot
# really run guests (nested virtualisation without support) may run real-mode code and hang at
# the first mode switch, as a Linux kernel does after "Probing EDD".
# QEMU maps the image below 4 GiB (the CPU starts at its offset 0xfff0) and at 0xf0000, where
# this code runs. Regenerate kvm.rs's bytes with scripts/gen-kvm-probe.sh.
        .set LOW, 0xf0000
        .code16
start:
        cli
        lgdtl   %cs:gdtr
        mov     %cr0, %eax
        or      $1, %eax                        # CR0.PE
        mov     %eax, %cr0
        ljmpl   $0x08, $(LOW + pm32)
        .code32
pm32:
        mov     $0x10, %eax
        mov     %eax, %ds
        mov     %eax, %es
        mov     %eax, %ss
        # Page tables at 0x1000 (PML4), 0x2000 (PDPT), 0x3000 (PD): the first 2 MiB, identity.
        mov     $0x1000, %edi
        xor     %eax, %eax
        mov     $(3 * 4096 / 4), %ecx
        rep stosl
        movl    $0x2003, 0x1000
        movl    $0x3003, 0x2000
        movl    $0x83, 0x3000
        mov     $0x1000, %eax
        mov     %eax, %cr3
        mov     %cr4, %eax
        or      $0x20, %eax                     # CR4.PAE
        mov     %eax, %cr4
        mov     $0xc0000080, %ecx               # EFER.LME
        rdmsr
        or      $0x100, %eax
        wrmsr
        mov     %cr0, %eax
        or      $0x80000000, %eax               # CR0.PG
        mov     %eax, %cr0
        ljmp    $0x18, $(LOW + lm64)
        .code64
lm64:
        mov     $1, %al
        out     %al, $0xf4
        hlt
        jmp     lm64
        .p2align 3
gdt:
        .quad   0
        .quad   0x00cf9a000000ffff              # 0x08: 32-bit code, flat
        .quad   0x00cf92000000ffff              # 0x10: data, flat
        .quad   0x00af9a000000ffff              # 0x18: 64-bit code
gdtr:
        .word   gdtr - gdt - 1
        .long   LOW + gdt
        .org    0xfff0                          # the reset vector
        .code16
        ljmp    $0xf000, $start
        .org    0x10000
