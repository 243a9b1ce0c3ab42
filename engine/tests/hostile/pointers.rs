//! Hostile programs: pointers never leave the program: not in maps, results, helper arguments.

use super::*;

/// The cases of this class.
pub(crate) fn cases() -> Vec<Case> {
    let arr = |body: &str| asm(&format!("{LOOKUP_ARR}{body}"));
    vec![
        // ---- pointers never leave the program -------------------------------
        case(
            "return the stack pointer",
            "pointer leak",
            asm("mov64 r0, r10\nexit"),
            no_at(1, "returns r0"),
        ),
        case(
            "return the context pointer",
            "pointer leak",
            asm("mov64 r0, r1\nexit"),
            no_at(1, "returns r0"),
        ),
        case(
            "return a pointer plus an offset",
            "pointer leak",
            asm("mov64 r0, r10\nadd64 r0, -8\nexit"),
            no("returns r0"),
        ),
        with_map(
            "return a map value pointer",
            "pointer leak",
            arr("jeq r0, 0, +1\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("returns r0"),
        ),
        with_map(
            "return a map handle",
            "pointer leak",
            asm("lddw r0, 0\nexit"),
            &[(0, 0)],
            no("returns r0"),
        ),
        with_map(
            "store a pointer in a map value",
            "pointer leak",
            arr("jeq r0, 0, +2\nstxdw [r0+0], r10\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("stores a pointer"),
        ),
        with_map(
            "store a map value pointer in itself",
            "pointer leak",
            arr("jeq r0, 0, +2\nstxdw [r0+0], r0\nexit\nmov64 r0, 0\nexit"),
            &[(3, 0)],
            no("stores a pointer"),
        ),
        case(
            "pass a pointer as rs_emit's user_data",
            "pointer leak",
            asm("mov64 r2, r10\nmov64 r3, 0\nmov64 r4, 0\ncall 0x1003\nmov64 r0, 0\nexit"),
            no_at(3, "pointers may not leave"),
        ),
        case(
            "pass a pointer as rs_set_res's result",
            "pointer leak",
            asm("mov64 r2, r1\ncall 0x1005\nmov64 r0, 0\nexit"),
            no("pointers may not leave"),
        ),
        case(
            "pass a pointer to bpf_trace_printk as a %p argument",
            "pointer leak",
            asm(
                "stw [r10-4], 0x7025\nmov64 r1, r10\nadd64 r1, -4\nmov64 r2, 4\nmov64 r3, r10\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("pointers may not leave"),
        ),
        with_map(
            "a pointer as a map update's flags",
            "pointer leak",
            asm(
                "stw [r10-4], 0\nstdw [r10-16], 0\nmov64 r2, r10\nadd64 r2, -4\nmov64 r3, r10\nadd64 r3, -16\nmov64 r4, r10\nlddw r1, 0\ncall 2\nmov64 r0, 0\nexit",
            ),
            &[(7, 0)],
            no("pointers may not leave"),
        ),
        case(
            "multiply a pointer",
            "pointer leak",
            asm("mov64 r2, r1\nmul64 r2, 2\nmov64 r0, 0\nexit"),
            no_at(1, "pointer arithmetic"),
        ),
        case(
            "xor a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nxor64 r2, 1\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "shift a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nrsh64 r2, 12\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "and a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nand64 r2, 0xfff\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "negate a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nneg64 r2\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "32-bit move of a pointer",
            "pointer leak",
            asm("mov32 r0, r10\nexit"),
            no("32-bit move"),
        ),
        case(
            "32-bit add to a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nadd32 r2, 8\nmov64 r0, 0\nexit"),
            no("32-bit arithmetic on a pointer"),
        ),
        case(
            "scalar minus a pointer",
            "pointer leak",
            asm("mov64 r2, 0\nsub64 r2, r10\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "pointer plus a pointer",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, r1\nmov64 r0, 0\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "stack pointer minus context pointer",
            "pointer leak",
            asm("mov64 r2, r10\nsub64 r2, r1\nmov64 r0, r2\nexit"),
            no("pointer arithmetic"),
        ),
        case(
            "stack minus stack is a distance",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, -16\nmov64 r0, r10\nsub64 r0, r2\nexit"),
            Pass,
        ),
        with_map(
            "two map values' distance",
            "pointer leak",
            asm(&format!(
                "{LOOKUP_ARR}jeq r0, 0, +9\nmov64 r6, r0\nmov64 r2, r10\nadd64 r2, -4\nlddw r1, 0\ncall 1\njeq r0, 0, +2\nsub64 r6, r0\nmov64 r0, r6\nexit"
            )),
            &[(3, 0), (10, 0)],
            no("pointer arithmetic"),
        ),
        case(
            "compare a pointer with a number",
            "pointer leak",
            asm("jgt r1, 4096, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no_at(0, "compares"),
        ),
        case(
            "compare the low half of a pointer with 0",
            "pointer leak",
            asm("jeq32 r1, 0, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no_at(0, "compares"),
        ),
        case(
            "compare two pointers' low halves",
            "pointer leak",
            asm("mov64 r2, r10\nadd64 r2, -8\njgt32 r10, r2, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "compare the stack with the context",
            "pointer leak",
            asm("jgt r10, r1, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "jset on a pointer",
            "pointer leak",
            asm("jset r10, 0x1000, +1\nmov64 r0, 0\nmov64 r0, 1\nexit"),
            no("compares"),
        ),
        case(
            "read a spilled pointer's low half",
            "pointer leak",
            asm("stxdw [r10-8], r10\nldxw r0, [r10-8]\nexit"),
            no_at(1, "part of a spilled pointer"),
        ),
        case(
            "overwrite a byte of a spilled pointer, read it whole",
            "pointer leak",
            asm("stxdw [r10-8], r10\nstb [r10-8], 0\nldxdw r0, [r10-8]\nexit"),
            no_at(1, "overwrites part of the pointer"),
        ),
        case(
            "a variable-offset store that may hit a spilled pointer",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nldxw r2, [r1+8]\nand64 r2, 15\nmov64 r3, r10\nadd64 r3, -16\nadd64 r3, r2\nstb [r3+0], 0\nldxdw r0, [r10-8]\nexit",
            ),
            no_at(6, "variable stack offset"),
        ),
        case(
            "a pointer spilled on one path, a number on the other",
            "pointer leak",
            asm(
                "ldxw r2, [r1+8]\njeq r2, 0, +2\nstxdw [r10-8], r10\nja +2\nstw [r10-8], 0\nstw [r10-4], 0\nldxw r0, [r10-8]\nexit",
            ),
            no("spilled pointer"),
        ),
        case(
            "rs_read_buf over part of a spilled pointer",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nldxw r5, [r1+8]\nand64 r5, 7\nadd64 r5, 1\nmov64 r4, r10\nadd64 r4, -8\nmov64 r2, 0\nmov64 r3, 0\ncall 0x1004\nldxdw r0, [r10-8]\nexit",
            ),
            no_at(8, "overwrite part of the pointer"),
        ),
        with_map(
            "a spilled pointer as a map key",
            "pointer leak",
            asm(
                "stxdw [r10-8], r10\nmov64 r2, r10\nadd64 r2, -8\nlddw r1, 0\ncall 1\nmov64 r0, 0\nexit",
            ),
            &[(3, 1)],
            no("spilled pointer"),
        ),
        case(
            "a spilled pointer as bpf_trace_printk's format",
            "pointer leak",
            asm(
                "stxdw [r10-8], r1\nmov64 r1, r10\nadd64 r1, -8\nmov64 r2, 8\nmov64 r3, 0\nmov64 r4, 0\nmov64 r5, 0\ncall 6\nmov64 r0, 0\nexit",
            ),
            no("spilled pointer"),
        ),
        case(
            "a pointer spilled at a misaligned offset",
            "pointer leak",
            asm("stxdw [r10-12], r10\nmov64 r0, 0\nexit"),
            no("aligned 8-byte store"),
        ),
        case(
            "a spilled pointer restored whole is fine",
            "pointer leak",
            asm("stxdw [r10-8], r10\nldxdw r2, [r10-8]\nstdw [r2-16], 3\nldxdw r0, [r10-16]\nexit"),
            Pass,
        ),
    ]
}
