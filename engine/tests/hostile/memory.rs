//! Hostile programs: memory outside the program's regions: context, stack, map values, helpers' buffers.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    let arr = |body: &str| asm(&format!("{LOOKUP_ARR}{body}"));
    let hash = |body: &str| asm(&format!("{LOOKUP_HASH}{body}"));
    vec![
        // ---- memory -----------------------------------------------------------
        case(
            "read past the context",
            "memory",
            asm("ldxdw r0, [r1+60]\nexit"),
            no_at(0, "outside its 64 bytes"),
        ),
        case(
            "read before the context",
            "memory",
            asm("ldxb r0, [r1-1]\nexit"),
            no_at(0, "outside its 64 bytes"),
        ),
        case(
            "write the context",
            "memory",
            asm("stw [r1+8], 0\nmov64 r0, 0\nexit"),
            no_at(0, "read-only context"),
        ),
        case(
            "write the context through a copy",
            "memory",
            asm("mov64 r6, r1\nadd64 r6, 8\nstxw [r6+0], r6\nmov64 r0, 0\nexit"),
            no("read-only context"),
        ),
        case(
            "rs_read_buf into the context",
            "memory",
            asm(
                "mov64 r4, r1\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 8\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("read-only context"),
        ),
        case(
            "write below the stack",
            "memory",
            asm("stdw [r10-520], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "write above the stack",
            "memory",
            asm("stdw [r10+0], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "a write straddling r10",
            "memory",
            asm("stdw [r10-4], 1\nmov64 r0, 0\nexit"),
            no_at(0, "outside its 512 bytes"),
        ),
        case(
            "read uninitialised stack",
            "memory",
            asm("ldxdw r0, [r10-8]\nexit"),
            no_at(0, "uninitialised stack"),
        ),
        case(
            "read half-initialised stack",
            "memory",
            asm("stw [r10-8], 1\nldxdw r0, [r10-8]\nexit"),
            no_at(1, "uninitialised stack"),
        ),
        case(
            "a variable context offset without a bound",
            "memory",
            asm("ldxw r2, [r1+48]\nadd64 r1, r2\nldxb r0, [r1+0]\nexit"),
            no("pointer offset out of range"),
        ),
        case(
            "a variable context offset with a loose bound",
            "memory",
            asm("ldxw r2, [r1+48]\nand64 r2, 0xff\nadd64 r1, r2\nldxb r0, [r1+0]\nexit"),
            no("outside its 64 bytes"),
        ),
        case(
            "a variable context offset with a tight bound",
            "memory",
            asm("ldxw r2, [r1+48]\nand64 r2, 0x37\nadd64 r1, r2\nldxdw r0, [r1+0]\nexit"),
            Pass,
        ),
        with_map(
            "use a map value without a null check",
            "memory",
            arr("ldxdw r0, [r0+0]\nexit"),
            &[(3, 0)],
            no_at(6, "may be null"),
        ),
        with_map(
            "read past a map value",
            "memory",
            arr("jeq r0, 0, +2\nldxdw r0, [r0+4]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("outside its 8 bytes"),
        ),
        with_map(
            "write past a map value",
            "memory",
            hash("jeq r0, 0, +3\nstdw [r0+16], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 1)],
            no("outside its 16 bytes"),
        ),
        with_map(
            "write before a map value",
            "memory",
            hash("jeq r0, 0, +3\nstdw [r0-8], 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 1)],
            no("outside its 16 bytes"),
        ),
        with_map(
            "use a map value after checking another",
            "memory",
            asm(
                "stw [r10-4], 0\nldxw r8, [r1+8]\njeq r8, 0, +8\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r6, r0\nmov64 r7, r0\nja +12\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r6, r0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\nmov64 r7, r0\nmov64 r0, 0\njeq r6, 0, +1\nldxdw r0, [r7+0]\nexit",
            ),
            &[(5, 0), (13, 0), (19, 0)],
            no("may be null"),
        ),
        with_map(
            "a null check in 32 bits",
            "memory",
            arr("jeq32 r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("compares"),
        ),
        with_map(
            "read through the null branch",
            "memory",
            arr("jne r0, 0, +2\nldxdw r0, [r0+0]\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("which is the scalar 0"),
        ),
        with_map(
            "read through a map handle",
            "memory",
            asm("lddw r2, 0\nldxdw r0, [r2+0]\nexit"),
            &[(0, 0)],
            no("a handle to map 0"),
        ),
        with_map(
            "a map value as another map's key (too small)",
            "memory",
            arr(
                "jeq r0, 0, +7\nmov64 r2, r0\nadd64 r2, 4\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            &[(3, 0), (9, 1)],
            no("outside its 8 bytes"),
        ),
        with_map(
            "a map value as a key that fits",
            "memory",
            hash(
                "jeq r0, 0, +6\nmov64 r2, r0\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit\nmov64 r0, 0\nexit",
            ),
            &[(3, 1), (8, 1)],
            Pass,
        ),
        case(
            "rs_read_buf longer than its destination",
            "memory",
            asm(
                "mov64 r4, r10\nadd64 r4, -8\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 16\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "rs_read_buf with an unbounded length",
            "memory",
            asm(
                "ldxw r5, [r1+48]\nmov64 r4, r10\nadd64 r4, -64\nmov64 r2, 0\nmov64 r3, 0\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("must have a known bound"),
        ),
        case(
            "rs_read_buf into a variable stack offset",
            "memory",
            asm(
                "ldxw r2, [r1+48]\nand64 r2, 8\nmov64 r4, r10\nadd64 r4, -32\nadd64 r4, r2\nmov64 r2, 0\nmov64 r3, 0\nmov64 r5, 8\ncall 0x1004\nmov64 r0, 0\nexit",
            ),
            no("variable offset"),
        ),
        case(
            "rs_submit of a template on uninitialised stack",
            "memory",
            asm(
                "mov64 r2, r10\nadd64 r2, -40\nmov64 r3, 40\nmov64 r4, 0\ncall 0x1000\nmov64 r0, 0\nexit",
            ),
            no("uninitialised stack"),
        ),
        case(
            "rs_submit of a template past the stack",
            "memory",
            asm(
                "mov64 r2, r10\nadd64 r2, -8\nstdw [r10-8], 0\nmov64 r3, 40\nmov64 r4, 0\ncall 0x1000\nmov64 r0, 0\nexit",
            ),
            no("outside its 512 bytes"),
        ),
        case(
            "a number as a memory argument",
            "memory",
            asm(
                "mov64 r1, 4096\nmov64 r2, 8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("argument 1"),
        ),
        case(
            "printk's format size unbounded",
            "memory",
            asm(
                "ldxdw r2, [r1+0]\nstdw [r10-8], 0\nmov64 r1, r10\nadd64 r1, -8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("must have a known bound"),
        ),
        case(
            "the context argument must be the context itself",
            "memory",
            asm("add64 r1, 8\nmov64 r2, 0\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("must be the context pointer"),
        ),
        case(
            "the stack as the context argument",
            "memory",
            asm("mov64 r1, r10\nmov64 r2, 0\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("must be the context pointer"),
        ),
        case(
            "a number as the map argument",
            "memory",
            asm(
                "stw [r10-4], 0\nmov64 r2, r10\nadd64 r2, -4\nmov64 r1, 0\ncall 1\nmov64 r0, 0\nexit",
            ),
            no_at(4, "must be a map"),
        ),
    ]
}
