//! The shape of the source tree (docs/architecture.md): no module uses
//! another that uses it back, at any level of any crate, and no source
//! file grows past 1,200 lines. Read from the files themselves, so a move
//! that brings back a circle fails here with the files that make it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The longest a hand-written source file may be.
const MAX_LINES: usize = 1200;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// Every crate's `src/` in the workspace (nested crates included).
fn crate_sources(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<PathBuf> = rd.flatten().map(|e| e.path()).collect();
    entries.sort();
    for p in entries {
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if !p.is_dir() || name.starts_with('.') || name == "target" {
            continue;
        }
        if p.join("Cargo.toml").exists() && p.join("src").is_dir() {
            out.push(p.join("src"));
        }
        crate_sources(&p, out);
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The module path of a file under `src` (`model/chains.rs` ->
/// `["model", "chains"]`; `lib.rs`, `main.rs` -> `[]`).
fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .iter()
        .map(|c| c.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts
}

/// The code of a file without comments, string literals and its unit
/// tests (what follows `#[cfg(test)]`): test modules use what they test.
fn code_of(text: &str) -> String {
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'r'
            && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_'))
            && matches!(b.get(i + 1), Some(b'#' | b'"'))
        {
            // A raw string: r"..." or r#"..."#, quotes inside.
            let hashes = b[i + 1..].iter().take_while(|&&c| c == b'#').count();
            if b.get(i + 1 + hashes) != Some(&b'"') {
                out.push('r');
                i += 1;
                continue;
            }
            let close = format!("\"{}", "#".repeat(hashes));
            let body = i + 2 + hashes;
            i = text[body..]
                .find(&close)
                .map_or(b.len(), |k| body + k + close.len());
            out.push_str("\"\"");
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && b.get(i + 2) == Some(&b'\'') {
            // A char literal ('"'); lifetimes have no closing quote there.
            i += 3;
        } else if b[i] == b'\'' && b.get(i + 1) == Some(&b'\\') && b.get(i + 3) == Some(&b'\'') {
            i += 4; // '\"', '\n'
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(b: &[u8], mut i: usize) -> (String, usize) {
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    (String::from_utf8_lossy(&b[start..i]).into_owned(), i)
}

/// The paths a file names from `crate::`, `super::` and `self::`, as
/// module paths from the crate root (`use crate::{a::X, b}` names both
/// `a::X` and `b`; a brace group one level deep is enough for this tree).
fn referenced(module: &[String], code: &str) -> Vec<Vec<String>> {
    let b = code.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let boundary = i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        let (word, end) = ident_at(b, i);
        if word.is_empty() {
            i += 1;
            continue;
        }
        if !boundary || !matches!(word.as_str(), "crate" | "super" | "self") {
            i = end;
            continue;
        }
        // The module this path starts from.
        let mut base: Vec<String> = match word.as_str() {
            "crate" => Vec::new(),
            // A `foo.rs` file is module foo: `super` is foo's parent, as for
            // `foo/mod.rs`.
            _ => {
                let mut m = module.to_vec();
                if word == "super" {
                    m.pop();
                }
                m
            }
        };
        let mut j = end;
        let mut segs: Vec<String> = Vec::new();
        let mut group = Vec::new();
        while b.get(j) == Some(&b':') && b.get(j + 1) == Some(&b':') {
            j += 2;
            if b.get(j) == Some(&b'{') {
                // One brace group: each item's leading path.
                let close = code[j..].find('}').map_or(b.len(), |k| j + k);
                for item in code[j + 1..close].split(',') {
                    let item: Vec<String> = item
                        .split("::")
                        .map(|s| s.trim().to_string())
                        .take_while(|s| {
                            !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_')
                        })
                        .collect();
                    group.push(item);
                }
                j = close;
                break;
            }
            let (seg, e) = ident_at(b, j);
            if seg.is_empty() {
                break;
            }
            if seg == "super" && segs.is_empty() {
                base.pop();
            } else {
                segs.push(seg);
            }
            j = e;
        }
        if group.is_empty() {
            group.push(Vec::new());
        }
        for g in group {
            let mut p = base.clone();
            p.extend(segs.iter().cloned());
            p.extend(g);
            out.push(p);
        }
        i = j.max(end);
    }
    out
}

/// An edge between two sibling modules, with the file that makes it.
type Edges = BTreeMap<(Vec<String>, String, String), BTreeSet<String>>;

/// Module use, lifted to siblings: `a::x` using `b::y` is `a` using `b`
/// under their common parent. A module using its parent or a child is
/// not an edge.
fn sibling_edges(src: &Path) -> Edges {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    files.retain(|f| {
        let name = f.file_name().unwrap().to_string_lossy();
        name != "tests.rs" && !f.components().any(|c| c.as_os_str() == "tests")
    });
    let modules: BTreeSet<Vec<String>> = files.iter().map(|f| module_of(src, f)).collect();
    let mut edges = Edges::new();
    for f in &files {
        let from = module_of(src, f);
        let code = code_of(&std::fs::read_to_string(f).unwrap());
        for path in referenced(&from, &code) {
            // The longest prefix that is a module.
            let to = (0..=path.len())
                .rev()
                .map(|n| path[..n].to_vec())
                .find(|p| modules.contains(p))
                .unwrap_or_default();
            let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
            if common == from.len() || common == to.len() {
                continue; // parent or child
            }
            let rel = f.strip_prefix(src).unwrap().display().to_string();
            edges
                .entry((
                    from[..common].to_vec(),
                    from[common].clone(),
                    to[common].clone(),
                ))
                .or_default()
                .insert(rel);
        }
    }
    edges
}

/// Circles among siblings: each as the modules in order, with the files
/// of each step.
fn circles(edges: &Edges) -> Vec<String> {
    let mut by_parent: BTreeMap<&Vec<String>, BTreeMap<&String, Vec<&String>>> = BTreeMap::new();
    for (parent, a, b) in edges.keys() {
        by_parent
            .entry(parent)
            .or_default()
            .entry(a)
            .or_default()
            .push(b);
    }
    let mut found = Vec::new();
    for (parent, graph) in by_parent {
        // Depth-first search with a path stack: the first back edge from
        // each start is a circle.
        let mut reported = BTreeSet::new();
        for &start in graph.keys() {
            let mut stack = vec![(start, 0usize)];
            let mut on_path = vec![start];
            while let Some((node, next)) = stack.last_mut() {
                let outs = graph.get(node).map(Vec::as_slice).unwrap_or(&[]);
                if *next >= outs.len() {
                    stack.pop();
                    on_path.pop();
                    continue;
                }
                let to = outs[*next];
                *next += 1;
                if let Some(k) = on_path.iter().position(|m| *m == to) {
                    let mut cycle: Vec<&String> = on_path[k..].to_vec();
                    let mut key = cycle.clone();
                    key.sort();
                    if reported.insert(key) {
                        cycle.push(to);
                        let steps: Vec<String> = cycle
                            .windows(2)
                            .map(|w| {
                                let files = &edges[&(parent.clone(), w[0].clone(), w[1].clone())];
                                format!(
                                    "{} -> {} ({})",
                                    w[0],
                                    w[1],
                                    files.iter().cloned().collect::<Vec<_>>().join(", ")
                                )
                            })
                            .collect();
                        found.push(format!(
                            "in {}: {}",
                            if parent.is_empty() {
                                "the crate root".into()
                            } else {
                                parent.join("::")
                            },
                            steps.join("; ")
                        ));
                    }
                } else if on_path.len() < 64 {
                    on_path.push(to);
                    stack.push((to, 0));
                }
            }
        }
    }
    found
}

#[test]
fn no_module_uses_another_that_uses_it_back() {
    let mut srcs = Vec::new();
    crate_sources(&workspace(), &mut srcs);
    assert!(
        srcs.len() >= 6,
        "found only {} crates: {srcs:?}",
        srcs.len()
    );
    let mut problems = Vec::new();
    for src in &srcs {
        for c in circles(&sibling_edges(src)) {
            problems.push(format!(
                "{}: {c}",
                src.strip_prefix(workspace()).unwrap().display()
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "modules that use each other in a circle:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_circle_check_finds_a_circle() {
    // The check itself, on a tree made here: a <-> b under the root, and
    // c::x -> c::y -> c::x one level down.
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path();
    std::fs::create_dir_all(src.join("c")).unwrap();
    let w = |p: &str, t: &str| std::fs::write(src.join(p), t).unwrap();
    w("lib.rs", "mod a; mod b; mod c;");
    w(
        "a.rs",
        "use crate::b::B; // crate::c in a comment\npub struct A;",
    );
    w("b.rs", "use crate::{a::A, c};\npub struct B;");
    w("c/mod.rs", "mod x; mod y; pub use x::X;");
    w("c/x.rs", "use super::y::Y;\npub struct X;");
    w("c/y.rs", "pub struct Y; fn f() -> super::x::X { todo!() }");
    let found = circles(&sibling_edges(src));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].contains("a -> b (a.rs); b -> a (b.rs)"),
        "{found:#?}"
    );
    assert!(
        found[1].starts_with("in c: x -> y (c/x.rs); y -> x (c/y.rs)"),
        "{found:#?}"
    );
    // Without the back edges there is none.
    w("b.rs", "pub struct B; // use crate::a::A;");
    w("c/y.rs", "pub struct Y; const S: &str = \"super::x::X\";");
    assert_eq!(circles(&sibling_edges(src)), Vec::<String>::new());
}

#[test]
fn no_source_file_is_longer_than_1200_lines() {
    let out = std::process::Command::new("git")
        .args(["ls-files", "*.rs", "*.c", "*.h"])
        .current_dir(workspace())
        .output()
        .expect("git ls-files");
    if !out.status.success() {
        panic!(
            "git ls-files failed (not a git checkout?): {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let mut long = Vec::new();
    for f in String::from_utf8_lossy(&out.stdout).lines() {
        let text = std::fs::read_to_string(workspace().join(f)).unwrap_or_default();
        // Generated headers (vmlinux.h-like) say so in their first lines.
        if text.lines().take(5).any(|l| l.contains("DO NOT EDIT")) {
            continue;
        }
        let n = text.lines().count();
        if n > MAX_LINES {
            long.push(format!("{f}: {n} lines"));
        }
    }
    assert!(
        long.is_empty(),
        "source files over {MAX_LINES} lines (split them by job):\n{}",
        long.join("\n")
    );
}
