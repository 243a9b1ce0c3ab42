//! The control-flow graph of a program: successors, where instructions
//! start, and a topological order that refuses loops.

use super::*;

/// Successors of instruction `i` in the control-flow graph (targets may be
/// out of range; callers check).
pub fn successors(code: &[u8], i: usize) -> Vec<usize> {
    let ins = Insn::decode(code, i);
    match ins.class() {
        CLS_JMP | CLS_JMP32 => {
            let op = ins.opc & 0xf0;
            let t = (i as i64 + 1 + ins.off as i64).max(0) as usize;
            match op {
                JMP_EXIT => vec![],
                JMP_CALL => vec![i + 1],
                JMP_JA => vec![t],
                _ => vec![i + 1, t],
            }
        }
        CLS_LD if ins.opc == 0x18 => vec![i + 2],
        _ => vec![i + 1],
    }
}

/// Indexes where instructions start (an `lddw` takes two slots).
pub fn insn_starts(code: &[u8]) -> Vec<usize> {
    let n = code.len() / 8;
    let mut v = Vec::with_capacity(n);
    let mut j = 0;
    while j < n {
        v.push(j);
        j += if Insn::decode(code, j).opc == 0x18 {
            2
        } else {
            1
        };
    }
    v
}

/// Reverse postorder of the instructions reachable from 0, rejecting cycles:
/// a program without loops always terminates. (Backward jumps are fine:
/// clang shares tail blocks; only a path back to itself is a loop.)
pub fn topological_order(code: &[u8]) -> Result<Vec<usize>, VerifyError> {
    const WHITE: u8 = 0;
    const GREY: u8 = 1;
    const BLACK: u8 = 2;
    let n = code.len() / 8;
    if n == 0 {
        return err(0, Rejection::Empty);
    }
    let mut color = vec![WHITE; n];
    let mut post = Vec::with_capacity(n);
    // Iterative DFS: (insn, next successor to visit).
    let mut stack: Vec<(usize, usize)> = vec![(0, 0)];
    color[0] = GREY;
    while let Some(&mut (i, ref mut k)) = stack.last_mut() {
        let succ = successors(code, i);
        if *k < succ.len() {
            let t = succ[*k];
            *k += 1;
            if t >= n {
                return err(i, Rejection::FallsOffEnd);
            }
            match color[t] {
                WHITE => {
                    color[t] = GREY;
                    stack.push((t, 0));
                }
                GREY => {
                    return err(i, Rejection::Loop { from: i, to: t });
                }
                _ => {}
            }
        } else {
            color[i] = BLACK;
            post.push(i);
            stack.pop();
        }
    }
    post.reverse();
    Ok(post)
}
