//! Content generators for files and stream writers, and the on-disk B+tree
//! that `btree_lookup` searches.
//!
//! | content            | bytes                                                        |
//! |--------------------|--------------------------------------------------------------|
//! | `zero`             | zeroes                                                       |
//! | `pattern[:SEED]`   | byte i = i * 31 + SEED (default 7)                           |
//! | `random:SEED`      | xorshift64* stream                                           |
//! | `text:STRING`      | STRING repeated                                              |
//! | `frames:A,B,...`   | length-prefixed messages (u32 LE length + body), cycled      |
//! | `btree:KEYS[:FAN]` | a B+tree of KEYS keys, FAN (<= 31) per node; size is its own |

/// Node size of the on-disk B+tree.
pub const BT_NODE_SIZE: usize = 512;
/// Keys per node, at most.
pub const BT_MAX: usize = 31;
/// "RSBT"
pub const BT_MAGIC: u32 = 0x5442_5352;

/// Key number `i` of a generated tree (even numbers from 10: odd keys miss).
pub fn btree_key(i: u64) -> u64 {
    10 + 2 * i
}

/// The value stored for `key`.
pub fn btree_value(key: u64) -> u32 {
    (key.wrapping_mul(3).wrapping_add(1)) as u32
}

/// Levels of a tree of `keys` keys with `fanout` per node.
pub fn btree_depth(keys: u64, fanout: usize) -> u32 {
    let mut nodes = keys.div_ceil(fanout as u64).max(1);
    let mut depth = 1;
    while nodes > 1 {
        nodes = nodes.div_ceil(fanout as u64);
        depth += 1;
    }
    depth
}

struct Node {
    leaf: bool,
    keys: Vec<u64>,
    /// Leaves: values; internal: child node numbers (later offsets).
    vals: Vec<u64>,
}

/// Build the B+tree file: root at offset 0, nodes level by level.
pub fn btree(keys: u64, fanout: usize) -> Result<Vec<u8>, String> {
    if !(2..=BT_MAX).contains(&fanout) {
        return Err(format!("fanout {fanout} out of range (2..={BT_MAX})"));
    }
    if keys == 0 || keys > 50_000_000 {
        return Err(format!("{keys} keys out of range (1..=50000000)"));
    }
    // Bottom-up: levels[0] = leaves.
    let mut levels: Vec<Vec<Node>> = Vec::new();
    let all: Vec<u64> = (0..keys).map(btree_key).collect();
    levels.push(
        all.chunks(fanout)
            .map(|c| Node {
                leaf: true,
                keys: c.to_vec(),
                vals: c.iter().map(|&k| btree_value(k) as u64).collect(),
            })
            .collect(),
    );
    while levels.last().expect("a level").len() > 1 {
        let below = levels.last().expect("a level");
        let firsts: Vec<u64> = below.iter().map(|n| n.keys[0]).collect();
        let level: Vec<Node> = firsts
            .chunks(fanout)
            .enumerate()
            .map(|(ci, c)| Node {
                leaf: false,
                keys: c.to_vec(),
                vals: (0..c.len()).map(|j| (ci * fanout + j) as u64).collect(),
            })
            .collect();
        levels.push(level);
    }
    // Top-down numbering: root first.
    let mut first_of_level = vec![0u64; levels.len()];
    let mut n = 0u64;
    for (li, level) in levels.iter().enumerate().rev() {
        first_of_level[li] = n;
        n += level.len() as u64;
    }
    let mut out = vec![0u8; n as usize * BT_NODE_SIZE];
    for (li, level) in levels.iter().enumerate() {
        for (i, node) in level.iter().enumerate() {
            let at = (first_of_level[li] + i as u64) as usize * BT_NODE_SIZE;
            let b = &mut out[at..at + BT_NODE_SIZE];
            b[0..4].copy_from_slice(&BT_MAGIC.to_le_bytes());
            b[4..6].copy_from_slice(&(node.leaf as u16).to_le_bytes());
            b[6..8].copy_from_slice(&(node.keys.len() as u16).to_le_bytes());
            for (j, k) in node.keys.iter().enumerate() {
                b[8 + 8 * j..16 + 8 * j].copy_from_slice(&k.to_le_bytes());
            }
            for (j, v) in node.vals.iter().enumerate() {
                let v = if node.leaf {
                    *v
                } else {
                    (first_of_level[li - 1] + v) * BT_NODE_SIZE as u64
                };
                let o = 8 + 8 * BT_MAX + 8 * j;
                b[o..o + 8].copy_from_slice(&v.to_le_bytes());
            }
        }
    }
    Ok(out)
}

/// Look a key up in a tree built by [`btree`], the plain way (for tests and
/// the pread baseline): returns the value and the node offsets visited.
pub fn btree_search(file: &[u8], key: u64) -> (Option<u32>, Vec<u64>) {
    let mut off = 0u64;
    let mut path = Vec::new();
    loop {
        path.push(off);
        let at = off as usize;
        let Some(b) = file.get(at..at + BT_NODE_SIZE) else {
            return (None, path);
        };
        let leaf = u16::from_le_bytes([b[4], b[5]]) != 0;
        let n = u16::from_le_bytes([b[6], b[7]]) as usize;
        let key_at = |j: usize| u64::from_le_bytes(b[8 + 8 * j..16 + 8 * j].try_into().expect("8"));
        let val_at = |j: usize| {
            let o = 8 + 8 * BT_MAX + 8 * j;
            u64::from_le_bytes(b[o..o + 8].try_into().expect("8"))
        };
        let mut idx = 0;
        let mut found = None;
        for j in 0..n.min(BT_MAX) {
            if key_at(j) <= key {
                idx = j;
                if key_at(j) == key {
                    found = Some(j);
                }
            }
        }
        if leaf {
            return (found.map(|j| val_at(j) as u32), path);
        }
        off = val_at(idx);
    }
}

fn xorshift(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// Generate `size` bytes of `spec` (a btree decides its own size).
pub fn generate(spec: &str, size: u64) -> Result<Vec<u8>, String> {
    let size = usize::try_from(size).map_err(|_| format!("size {size} is too large"))?;
    let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
    Ok(match kind {
        "zero" => vec![0; size],
        "pattern" => {
            let seed: u8 = if arg.is_empty() {
                7
            } else {
                arg.parse()
                    .map_err(|_| format!("pattern seed `{arg}` is not 0..=255"))?
            };
            (0..size)
                .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                .collect()
        }
        "random" => {
            let mut s: u64 = arg
                .parse()
                .map_err(|_| format!("random seed `{arg}` is not a number"))?;
            s |= 1;
            let mut v = Vec::with_capacity(size + 8);
            while v.len() < size {
                v.extend_from_slice(&xorshift(&mut s).to_le_bytes());
            }
            v.truncate(size);
            v
        }
        "text" => {
            if arg.is_empty() {
                return Err("text: needs a string".into());
            }
            arg.bytes().cycle().take(size).collect()
        }
        "frames" => {
            let lens: Vec<u32> = arg
                .split(',')
                .map(|s| {
                    s.trim()
                        .parse::<u32>()
                        .map_err(|_| format!("frames: `{s}` is not a length"))
                })
                .collect::<Result<_, _>>()?;
            if lens.is_empty() {
                return Err("frames: needs lengths".into());
            }
            let mut v = Vec::with_capacity(size);
            let mut k = 0u8;
            for &l in lens.iter().cycle() {
                if v.len() + 4 + l as usize > size {
                    break;
                }
                v.extend_from_slice(&l.to_le_bytes());
                v.extend((0..l).map(|i| (i as u8).wrapping_add(k)));
                k = k.wrapping_add(1);
            }
            v
        }
        "btree" => {
            let (keys, fan) = arg.split_once(':').unwrap_or((arg, "31"));
            let keys: u64 = keys
                .parse()
                .map_err(|_| format!("btree: `{keys}` is not a key count"))?;
            let fan: usize = fan
                .parse()
                .map_err(|_| format!("btree: `{fan}` is not a fanout"))?;
            btree(keys, fan)?
        }
        other => {
            return Err(format!(
                "unknown content `{other}` (zero, pattern[:SEED], random:SEED, text:STRING, frames:LENS, btree:KEYS[:FANOUT])"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn btree_finds_every_key_and_misses_others() {
        for (keys, fan) in [(1u64, 31usize), (100, 4), (1000, 31), (4096, 4)] {
            let t = btree(keys, fan).unwrap();
            let depth = btree_depth(keys, fan);
            for i in (0..keys).step_by(7) {
                let k = btree_key(i);
                let (v, path) = btree_search(&t, k);
                assert_eq!(v, Some(btree_value(k)), "keys {keys} fan {fan} key {k}");
                assert_eq!(path.len() as u32, depth);
                assert_eq!(btree_search(&t, k + 1).0, None);
            }
        }
    }

    #[test]
    fn depth_grows_with_keys() {
        assert_eq!(btree_depth(31, 31), 1);
        assert_eq!(btree_depth(32, 31), 2);
        assert_eq!(btree_depth(4 * 4 * 4, 4), 3);
        assert_eq!(btree_depth(4096, 4), 6);
    }

    #[test]
    fn frames_are_length_prefixed() {
        let v = generate("frames:3,5", 100).unwrap();
        assert_eq!(&v[0..4], &3u32.to_le_bytes());
        assert_eq!(&v[7..11], &5u32.to_le_bytes());
        assert!(generate("nope", 1).unwrap_err().contains("unknown content"));
    }
}
