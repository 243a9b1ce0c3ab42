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
//!
//! Content is made as it is read ([`Content::reader`]), never held whole:
//! a 1 GiB file or a writer's stream costs the same memory as a small one.

use crate::limits::MAX_FILE_SIZE;

/// Node size of the on-disk B+tree.
pub const BT_NODE_SIZE: usize = 512;
/// Keys per node, at most.
pub const BT_MAX: usize = 31;
/// "RSBT"
pub const BT_MAGIC: u32 = 0x5442_5352;
/// Keys a generated tree may have.
pub const BT_MAX_KEYS: u64 = 50_000_000;

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

/// The shape of a generated B+tree: how many nodes each level has and where
/// each level starts, so any node can be written without building the tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BtreeLayout {
    keys: u64,
    fanout: u64,
    /// Nodes per level, leaves first.
    levels: Vec<u64>,
    /// Node number of each level's first node (the root is node 0).
    first: Vec<u64>,
}

impl BtreeLayout {
    /// The layout of a tree of `keys` keys with `fanout` per node.
    pub fn new(keys: u64, fanout: usize) -> Result<BtreeLayout, String> {
        if !(2..=BT_MAX).contains(&fanout) {
            return Err(format!("fanout {fanout} out of range (2..={BT_MAX})"));
        }
        if keys == 0 || keys > BT_MAX_KEYS {
            return Err(format!("{keys} keys out of range (1..={BT_MAX_KEYS})"));
        }
        let f = fanout as u64;
        let mut levels = vec![keys.div_ceil(f)];
        while let Some(&n) = levels.last()
            && n > 1
        {
            levels.push(n.div_ceil(f));
        }
        // Top-down numbering: root first, then each level below it.
        let mut first = vec![0u64; levels.len()];
        let mut n = 0u64;
        for (li, count) in levels.iter().enumerate().rev() {
            first[li] = n;
            n += count;
        }
        Ok(BtreeLayout {
            keys,
            fanout: f,
            levels,
            first,
        })
    }

    /// Nodes in the tree.
    pub fn nodes(&self) -> u64 {
        self.levels.iter().sum()
    }

    /// Bytes of the file.
    pub fn bytes(&self) -> u64 {
        self.nodes() * BT_NODE_SIZE as u64
    }

    /// Node number `n` (0 is the root) as the file holds it.
    fn node(&self, n: u64, b: &mut [u8; BT_NODE_SIZE]) {
        b.fill(0);
        let Some(li) = (0..self.levels.len())
            .find(|&li| self.first[li] <= n && n < self.first[li] + self.levels[li])
        else {
            return;
        };
        let i = n - self.first[li];
        let f = self.fanout;
        // Entry j of this node is child (or key) number lo + j of the level below.
        let lo = i * f;
        let (count, leaf) = if li == 0 {
            (self.keys.min(lo + f) - lo, true)
        } else {
            (self.levels[li - 1].min(lo + f) - lo, false)
        };
        // A node at level l (leaves: 0) starts with key number index * f^(l+1),
        // so child c one level down starts with key number c * f^l.
        let span = f.pow(li as u32);
        b[0..4].copy_from_slice(&BT_MAGIC.to_le_bytes());
        b[4..6].copy_from_slice(&(leaf as u16).to_le_bytes());
        b[6..8].copy_from_slice(&(count as u16).to_le_bytes());
        for j in 0..count as usize {
            let c = lo + j as u64;
            let (key, val) = if leaf {
                let k = btree_key(c);
                (k, btree_value(k) as u64)
            } else {
                (
                    btree_key(c * span),
                    (self.first[li - 1] + c) * BT_NODE_SIZE as u64,
                )
            };
            b[8 + 8 * j..16 + 8 * j].copy_from_slice(&key.to_le_bytes());
            let o = 8 + 8 * BT_MAX + 8 * j;
            b[o..o + 8].copy_from_slice(&val.to_le_bytes());
        }
    }
}

/// Build the B+tree file: root at offset 0, nodes level by level.
pub fn btree(keys: u64, fanout: usize) -> Result<Vec<u8>, String> {
    let layout = BtreeLayout::new(keys, fanout)?;
    if layout.bytes() > MAX_FILE_SIZE {
        return Err(too_large(layout.bytes()));
    }
    let mut out = Vec::with_capacity(layout.bytes() as usize);
    let mut node = [0u8; BT_NODE_SIZE];
    for n in 0..layout.nodes() {
        layout.node(n, &mut node);
        out.extend_from_slice(&node);
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

/// What a file or a writer's stream holds (the table at the top).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Content {
    /// `zero`
    Zero,
    /// `pattern[:SEED]`
    Pattern(u8),
    /// `random:SEED`
    Random(u64),
    /// `text:STRING`
    Text(Vec<u8>),
    /// `frames:A,B,...`
    Frames(Vec<u32>),
    /// `btree:KEYS[:FAN]`
    Btree(BtreeLayout),
}

const CONTENT_KINDS: &str =
    "zero, pattern[:SEED], random:SEED, text:STRING, frames:LENS, btree:KEYS[:FANOUT]";

impl Content {
    /// Parse a content spec.
    pub fn parse(spec: &str) -> Result<Content, String> {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
        Ok(match kind {
            "zero" => Content::Zero,
            "pattern" if arg.is_empty() => Content::Pattern(7),
            "pattern" => Content::Pattern(
                arg.parse()
                    .map_err(|_| format!("pattern seed `{arg}` is not 0..=255"))?,
            ),
            "random" => Content::Random(
                arg.parse()
                    .map_err(|_| format!("random seed `{arg}` is not a number"))?,
            ),
            "text" if arg.is_empty() => return Err("text: needs a string".into()),
            "text" => Content::Text(arg.as_bytes().to_vec()),
            "frames" => {
                let lens: Vec<u32> = arg
                    .split(',')
                    .map(|s| {
                        s.trim()
                            .parse::<u32>()
                            .map_err(|_| format!("frames: `{s}` is not a length"))
                    })
                    .collect::<Result<_, _>>()?;
                Content::Frames(lens)
            }
            "btree" => {
                let (keys, fan) = arg.split_once(':').unwrap_or((arg, "31"));
                let keys: u64 = keys
                    .parse()
                    .map_err(|_| format!("btree: `{keys}` is not a key count"))?;
                let fan: usize = fan
                    .parse()
                    .map_err(|_| format!("btree: `{fan}` is not a fanout"))?;
                Content::Btree(BtreeLayout::new(keys, fan)?)
            }
            other => return Err(format!("unknown content `{other}` ({CONTENT_KINDS})")),
        })
    }

    /// Bytes it makes when asked for `size`: `size`, except that a btree
    /// decides its own and frames stop before the first one that would not fit.
    pub fn len(&self, size: u64) -> u64 {
        match self {
            Content::Btree(l) => l.bytes(),
            Content::Frames(lens) => {
                // Whole cycles fit as long as their sum does; then frame by frame.
                let cycle: u64 = lens.iter().map(|&l| 4 + l as u64).sum();
                let full = size / cycle * cycle;
                let mut n = full;
                for &l in lens {
                    if n + 4 + l as u64 > size {
                        break;
                    }
                    n += 4 + l as u64;
                }
                n
            }
            _ => size,
        }
    }

    /// Whether it is all zeroes (a file of it can be made sparse).
    pub fn is_zero(&self) -> bool {
        matches!(self, Content::Zero)
    }

    /// A reader of the [`Content::len`] bytes it makes for `size`, made as
    /// they are read: memory stays the same whatever the size.
    pub fn reader(&self, size: u64) -> ContentReader {
        ContentReader {
            len: self.len(size),
            content: self.clone(),
            pos: 0,
            random: match self {
                Content::Random(seed) => seed | 1,
                _ => 0,
            },
            word: [0; 8],
            frame: (0, 0, 0),
            node: None,
            node_buf: [0; BT_NODE_SIZE],
        }
    }
}

fn too_large(len: u64) -> String {
    format!(
        "it makes {}, more than the {} a file may hold",
        crate::limits::bytes(len),
        crate::limits::bytes(MAX_FILE_SIZE)
    )
}

/// The bytes of a [`Content`], generated as they are read.
#[derive(Clone, Debug)]
pub struct ContentReader {
    content: Content,
    /// Bytes produced so far.
    pos: u64,
    /// Bytes in all.
    len: u64,
    /// xorshift state (`random`).
    random: u64,
    /// The current random word.
    word: [u8; 8],
    /// `frames`: (frame number, index into the lengths, offset in the frame).
    frame: (u64, usize, u64),
    /// `btree`: the node in `node_buf`.
    node: Option<u64>,
    node_buf: [u8; BT_NODE_SIZE],
}

impl ContentReader {
    /// Bytes not read yet.
    pub fn remaining(&self) -> u64 {
        self.len - self.pos
    }
}

impl std::io::Read for ContentReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = (buf.len() as u64).min(self.remaining()) as usize;
        let out = &mut buf[..n];
        match &self.content {
            Content::Zero => out.fill(0),
            Content::Pattern(seed) => {
                for (i, b) in out.iter_mut().enumerate() {
                    *b = ((self.pos + i as u64) as u8)
                        .wrapping_mul(31)
                        .wrapping_add(*seed);
                }
            }
            Content::Random(_) => {
                for (i, b) in out.iter_mut().enumerate() {
                    let at = ((self.pos + i as u64) % 8) as usize;
                    if at == 0 {
                        self.word = xorshift(&mut self.random).to_le_bytes();
                    }
                    *b = self.word[at];
                }
            }
            Content::Text(t) => {
                for (i, b) in out.iter_mut().enumerate() {
                    *b = t[((self.pos + i as u64) % t.len() as u64) as usize];
                }
            }
            Content::Frames(lens) => {
                let (mut k, mut li, mut off) = self.frame;
                for b in out.iter_mut() {
                    let l = lens[li];
                    *b = if off < 4 {
                        l.to_le_bytes()[off as usize]
                    } else {
                        ((off - 4) as u8).wrapping_add(k as u8)
                    };
                    off += 1;
                    if off == 4 + l as u64 {
                        (k, li, off) = (k + 1, (li + 1) % lens.len(), 0);
                    }
                }
                self.frame = (k, li, off);
            }
            Content::Btree(layout) => {
                let mut done = 0;
                while done < n {
                    let at = self.pos + done as u64;
                    let node = at / BT_NODE_SIZE as u64;
                    if self.node != Some(node) {
                        layout.node(node, &mut self.node_buf);
                        self.node = Some(node);
                    }
                    let from = (at % BT_NODE_SIZE as u64) as usize;
                    let take = (BT_NODE_SIZE - from).min(n - done);
                    out[done..done + take].copy_from_slice(&self.node_buf[from..from + take]);
                    done += take;
                }
            }
        }
        self.pos += n as u64;
        Ok(n)
    }
}

/// Generate `size` bytes of `spec` (a btree decides its own size), in
/// memory: at most [`MAX_FILE_SIZE`].
pub fn generate(spec: &str, size: u64) -> Result<Vec<u8>, String> {
    let c = Content::parse(spec)?;
    if c.len(size) > MAX_FILE_SIZE {
        return Err(too_large(c.len(size)));
    }
    let mut v = Vec::with_capacity(c.len(size) as usize);
    std::io::Read::read_to_end(&mut c.reader(size), &mut v).map_err(|e| e.to_string())?;
    Ok(v)
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

    // ---- reference generators: what content was before it was streamed.

    struct Node {
        leaf: bool,
        keys: Vec<u64>,
        /// Leaves: values; internal: child node numbers (later offsets).
        vals: Vec<u64>,
    }

    /// The tree as it was built before it was streamed: whole levels in memory.
    fn reference_btree(keys: u64, fanout: usize) -> Result<Vec<u8>, String> {
        if !(2..=BT_MAX).contains(&fanout) {
            return Err(format!("fanout {fanout} out of range (2..={BT_MAX})"));
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

    fn reference(spec: &str, size: usize) -> Vec<u8> {
        let (kind, arg) = spec.split_once(':').unwrap_or((spec, ""));
        match kind {
            "zero" => vec![0; size],
            "pattern" => {
                let seed: u8 = if arg.is_empty() {
                    7
                } else {
                    arg.parse().unwrap()
                };
                (0..size)
                    .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
                    .collect()
            }
            "random" => {
                let mut s: u64 = arg.parse::<u64>().unwrap() | 1;
                let mut v = Vec::new();
                while v.len() < size {
                    v.extend_from_slice(&xorshift(&mut s).to_le_bytes());
                }
                v.truncate(size);
                v
            }
            "text" => arg.bytes().cycle().take(size).collect(),
            "frames" => {
                let lens: Vec<u32> = arg.split(',').map(|s| s.parse().unwrap()).collect();
                let mut v = Vec::new();
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
            _ => unreachable!(),
        }
    }

    /// Read all of `r` in pieces of `piece` bytes.
    fn read_in(mut r: ContentReader, piece: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = vec![0u8; piece];
        loop {
            let n = std::io::Read::read(&mut r, &mut buf).unwrap();
            if n == 0 {
                return out;
            }
            out.extend_from_slice(&buf[..n]);
        }
    }

    #[test]
    fn streamed_content_is_the_content_it_always_was() {
        let specs = [
            "zero",
            "pattern",
            "pattern:200",
            "random:12345",
            "text:hello, world",
            "frames:3,5",
            "frames:100,3000,37,1",
            "frames:0",
            "frames:70000",
        ];
        for spec in specs {
            for size in [0usize, 1, 7, 8, 9, 511, 4096, 70_003] {
                let want = reference(spec, size);
                let c = Content::parse(spec).unwrap();
                assert_eq!(c.len(size as u64), want.len() as u64, "{spec} {size}");
                for piece in [1, 3, 8, 512, 65536] {
                    assert_eq!(
                        read_in(c.reader(size as u64), piece),
                        want,
                        "{spec} {size} {piece}"
                    );
                }
            }
        }
    }

    #[test]
    fn streamed_btree_is_the_tree_it_always_was() {
        for (keys, fan) in [
            (1u64, 31usize),
            (2, 2),
            (31, 31),
            (32, 31),
            (100, 4),
            (1000, 31),
            (4096, 4),
            (5000, 2),
        ] {
            let want = reference_btree(keys, fan).unwrap();
            assert_eq!(btree(keys, fan).unwrap(), want, "{keys} {fan}");
            let c = Content::parse(&format!("btree:{keys}:{fan}")).unwrap();
            assert_eq!(c.len(0), want.len() as u64);
            assert_eq!(read_in(c.reader(0), 300), want, "{keys} {fan}");
        }
    }

    #[test]
    fn a_tree_too_large_for_a_file_is_refused_before_it_is_built() {
        // 50M keys at fanout 2: about 25 GB of nodes.
        let e = btree(50_000_000, 2).unwrap_err();
        assert!(e.contains("more than the 1 GiB a file may hold"), "{e}");
        let e = generate("zero", 1 << 40).unwrap_err();
        assert!(e.contains("1024 GiB"), "{e}");
    }
}
