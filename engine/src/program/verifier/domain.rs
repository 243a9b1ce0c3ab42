//! The verifier's abstract values: what a register or a stack slot may
//! hold on every path to an instruction (a range of numbers, a pointer into
//! a region at a range of offsets, a lookup result before its null check),
//! and how the states of two paths join.

use super::*;

/// Memory regions a pointer can point into (printed as `context`, `stack`,
/// `map value (map 0)`, `rodata 0`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Region {
    /// The program's read-only context.
    Ctx,
    /// The program's stack.
    Stack,
    /// A value of the object's map number `n`.
    MapValue(usize),
    /// The object's rodata region number `n`.
    Rodata(usize),
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Region::Ctx => f.write_str("context"),
            Region::Stack => f.write_str("stack"),
            Region::MapValue(m) => write!(f, "map value (map {m})"),
            Region::Rodata(r) => write!(f, "rodata {r}"),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Val {
    /// Never written on this path.
    Uninit,
    /// Paths disagree about what this is.
    Conflict,
    /// A number in [min, max] (unsigned).
    Scalar { min: u64, max: u64 },
    /// A pointer into `region` at an offset in [lo, hi].
    Ptr { region: Region, lo: i64, hi: i64 },
    /// A `bpf_map_lookup_elem` result before its null check; `id` ties copies together.
    ValueOrNull { map: usize, id: u32 },
    /// A map handle from a relocated `lddw`.
    MapHandle(usize),
}

impl Val {
    pub(super) fn unknown() -> Val {
        Val::Scalar {
            min: 0,
            max: u64::MAX,
        }
    }
    pub(super) fn konst(v: u64) -> Val {
        Val::Scalar { min: v, max: v }
    }
    pub(super) fn range(min: u64, max: u64) -> Val {
        Val::Scalar { min, max }
    }
    pub(super) fn is_pointer(&self) -> bool {
        matches!(
            self,
            Val::Ptr { .. } | Val::ValueOrNull { .. } | Val::MapHandle(_)
        )
    }
    /// A pointer, or a value that is a pointer on some path: its bytes must
    /// never be read as a number.
    pub(super) fn may_hold_pointer(&self) -> bool {
        self.is_pointer() || matches!(self, Val::Conflict)
    }
    pub(super) fn describe(&self) -> String {
        match self {
            Val::Uninit => "uninitialised".into(),
            Val::Conflict => "of unknown type (paths disagree)".into(),
            Val::Scalar { min, max } if min == max => format!("the scalar {min}"),
            Val::Scalar { min, max } => format!("a scalar in [{min}, {max}]"),
            Val::Ptr { region, lo, hi } if lo == hi => {
                format!("a {region} pointer at offset {lo}")
            }
            Val::Ptr { region, lo, hi } => {
                format!("a {region} pointer at offset [{lo}, {hi}]")
            }
            Val::ValueOrNull { map, .. } => format!("a map {map} value pointer that may be null"),
            Val::MapHandle(m) => format!("a handle to map {m}"),
        }
    }
    pub(super) fn join(&self, other: &Val) -> Val {
        if self == other {
            return self.clone();
        }
        match (self, other) {
            (Val::Scalar { min: a, max: b }, Val::Scalar { min: c, max: d }) => {
                Val::range(*a.min(c), *b.max(d))
            }
            (
                Val::Ptr {
                    region: r1,
                    lo: l1,
                    hi: h1,
                },
                Val::Ptr {
                    region: r2,
                    lo: l2,
                    hi: h2,
                },
            ) if r1 == r2 => Val::Ptr {
                region: *r1,
                lo: *l1.min(l2),
                hi: *h1.max(h2),
            },
            (Val::Uninit, _) | (_, Val::Uninit) => Val::Uninit,
            _ => Val::Conflict,
        }
    }
}

/// Eight bytes of stack.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Slot {
    /// A whole register stored here with an aligned 8-byte store.
    pub(super) spill: Option<Val>,
    /// Bit i set: byte i is initialised.
    pub(super) init: u8,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct State {
    pub(super) regs: [Val; 11],
    pub(super) stack: Vec<Slot>,
}

pub(super) const NSLOTS: usize = (STACK_SIZE / 8) as usize;

impl State {
    pub(super) fn entry() -> State {
        let mut regs: [Val; 11] = std::array::from_fn(|_| Val::Uninit);
        regs[1] = Val::Ptr {
            region: Region::Ctx,
            lo: 0,
            hi: 0,
        };
        regs[10] = Val::Ptr {
            region: Region::Stack,
            lo: 0,
            hi: 0,
        };
        State {
            regs,
            stack: vec![
                Slot {
                    spill: None,
                    init: 0
                };
                NSLOTS
            ],
        }
    }

    /// The state that covers both. Lookup results of different lookups that
    /// meet get a fresh id (allocated from `next_id`): a null check on the
    /// joined value says nothing about either lookup alone, but copies that
    /// were the same value on both paths stay tied to each other.
    pub(super) fn join(&self, other: &State, next_id: &mut u32) -> State {
        let mut fresh: Vec<((u32, u32), u32)> = Vec::new();
        let mut jv = |a: &Val, b: &Val| -> Val {
            match (a, b) {
                (Val::ValueOrNull { map: m1, id: i1 }, Val::ValueOrNull { map: m2, id: i2 })
                    if m1 == m2 && i1 != i2 =>
                {
                    let id = match fresh.iter().find(|(k, _)| *k == (*i1, *i2)) {
                        Some((_, id)) => *id,
                        None => {
                            let id = *next_id;
                            *next_id += 1;
                            fresh.push(((*i1, *i2), id));
                            id
                        }
                    };
                    Val::ValueOrNull { map: *m1, id }
                }
                _ => a.join(b),
            }
        };
        let regs = std::array::from_fn(|i| jv(&self.regs[i], &other.regs[i]));
        let stack = self
            .stack
            .iter()
            .zip(&other.stack)
            .map(|(a, b)| Slot {
                spill: match (&a.spill, &b.spill) {
                    (Some(x), Some(y)) => Some(jv(x, y)),
                    // A pointer on one path and plain bytes on the other: the
                    // slot may hold a pointer, so its bytes may not be read as data.
                    (Some(x), None) | (None, Some(x)) if x.may_hold_pointer() => {
                        Some(Val::Conflict)
                    }
                    _ => None,
                },
                init: a.init & b.init,
            })
            .collect();
        State { regs, stack }
    }

    /// Apply a null-check outcome to every copy of lookup `id`.
    pub(super) fn refine_null(&mut self, id: u32, is_null: bool) {
        let fix = |v: &mut Val| {
            if let Val::ValueOrNull { map, id: vid } = *v
                && vid == id
            {
                *v = if is_null {
                    Val::konst(0)
                } else {
                    Val::Ptr {
                        region: Region::MapValue(map),
                        lo: 0,
                        hi: 0,
                    }
                };
            }
        };
        for r in self.regs.iter_mut() {
            fix(r);
        }
        for s in self.stack.iter_mut() {
            if let Some(v) = s.spill.as_mut() {
                fix(v);
            }
        }
    }
}

pub(super) fn slot_index(off: i64) -> usize {
    ((off + STACK_SIZE) / 8) as usize
}

/// An unsigned range read as two's-complement: None when it straddles the sign.
pub(super) fn signed_range(min: u64, max: u64) -> Option<(i128, i128)> {
    let top = i64::MAX as u64;
    if max <= top || min > top {
        Some((min as i64 as i128, max as i64 as i128))
    } else {
        None
    }
}

pub(super) fn ptr_add(region: Region, lo: i64, hi: i64, add_lo: i128, add_hi: i128) -> Option<Val> {
    const LIMIT: i128 = 1 << 29;
    let nlo = lo as i128 + add_lo;
    let nhi = hi as i128 + add_hi;
    if nlo < -LIMIT || nhi > LIMIT {
        return None;
    }
    Some(Val::Ptr {
        region,
        lo: nlo as i64,
        hi: nhi as i64,
    })
}
