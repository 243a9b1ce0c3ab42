//! How fast the UI's model folds events, by event mix and history length.
//! Not a test: it prints a table.
//!
//! ```text
//! cargo bench -p ringside --bench fold
//! RINGSIDE_BENCH_HISTORY=10000,200000 cargo bench -p ringside --bench fold
//! RINGSIDE_BENCH_MIX=engine cargo bench -p ringside --bench fold   # some mixes
//! ```
//!
//! Each mix is a real capture (`benches/fixtures/`, see its README for how
//! each was made) replayed in a loop until the model has folded
//! `max(4 x history, 2M)` events, so the tables it keeps are full and
//! evicting, as in a long live session. Every round shifts the kernel
//! timestamps past the previous round and gives engine events fresh
//! allocations (a new engine instance each round, as a long demo has).
//! The rate counts only `Model::apply`: the items are built before timing.
//! The target (issue 13) is >= 2M events/s for every mix at every history.

use ringside_recordings::Item;
use ringside_tui::model::Model;
use std::sync::Arc;
use std::time::Instant;

/// The binary's allocator, so the bench measures what `ringside` does.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

const DEMO: &[u8] = include_bytes!("../tests/fixtures/demo.jsonl");

/// A named mix and one round of its items.
struct Mix {
    name: &'static str,
    round: Vec<Item>,
}

fn recording(name: &'static str, file: &str) -> Mix {
    let path = format!("{}/benches/fixtures/{file}", env!("CARGO_MANIFEST_DIR"));
    let (entries, _) =
        ringside_recordings::read_file(&path).unwrap_or_else(|e| panic!("fixture {path}: {e}"));
    Mix {
        name,
        round: entries.into_iter().map(|e| e.item).collect(),
    }
}

/// The kernel-time span of a round (its items' timestamps), so the next
/// round starts after it.
fn span(round: &[Item]) -> u64 {
    let ts = round.iter().filter_map(|it| match it {
        Item::Probe(ev) => Some(ev.header().ts_ns),
        _ => None,
    });
    let (lo, hi) = ts.fold((u64::MAX, 0), |(lo, hi), t| (lo.min(t), hi.max(t)));
    hi.saturating_sub(lo) + 1_000
}

/// `n` items: `round` repeated, each copy made fresh.
fn stream(round: &[Item], n: usize) -> Vec<Item> {
    let step = span(round);
    let mut out = Vec::with_capacity(n);
    let mut k = 0u64;
    while out.len() < n {
        for it in round {
            if out.len() == n {
                break;
            }
            out.push(match it {
                Item::Engine(rec) => Item::Engine(Arc::new((**rec).clone())),
                Item::Probe(ev) => {
                    let mut ev = ev.clone();
                    ev.header_mut().ts_ns += k * step;
                    Item::Probe(ev)
                }
                other => other.clone(),
            });
        }
        k += 1;
    }
    out
}

fn main() {
    let histories: Vec<usize> = std::env::var("RINGSIDE_BENCH_HISTORY")
        .ok()
        .map(|s| s.split(',').filter_map(|x| x.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![10_000, 200_000, 1_000_000]);
    let demo = ringside_tui::source::replay::load_jsonl(DEMO, "demo.jsonl").expect("demo fixture");
    let mut mixes = vec![
        recording("fio randread qd32", "fio-randread.rsrec"),
        recording("fio randread qd32 sqpoll", "fio-sqpoll.rsrec"),
        recording("tcp echo server (liburing)", "echo-server.rsrec"),
        Mix {
            name: "engine demo",
            round: demo,
        },
    ];
    // Engine and kernel events interleaved, as `ringside demo` with probes.
    let both = {
        let eng = &mixes[3].round;
        let fio = &mixes[0].round;
        let mut v = Vec::new();
        for i in 0..eng.len().max(fio.len()) {
            v.extend(eng.get(i).cloned());
            v.extend(fio.get(i).cloned());
        }
        v
    };
    mixes.push(Mix {
        name: "engine + fio interleaved",
        round: both,
    });
    println!("ringside UI model fold rate (Model::apply, events/s)");
    println!();
    print!("| mix | round (events) |");
    for h in &histories {
        print!(" history {h} |");
    }
    println!();
    println!("|---|---:|{}", "---:|".repeat(histories.len()));
    // RINGSIDE_BENCH_MIX=engine: only the mixes whose name contains it.
    let only = std::env::var("RINGSIDE_BENCH_MIX").unwrap_or_default();
    for m in mixes.iter().filter(|m| m.name.contains(only.as_str())) {
        print!("| {} | {} |", m.name, m.round.len());
        for &h in &histories {
            let n = (4 * h).max(2_000_000);
            let items = stream(&m.round, n);
            let mut model = Model::new(h);
            let t0 = Instant::now();
            for it in items {
                model.apply(it);
            }
            let dt = t0.elapsed().as_secs_f64();
            print!(" {:.2}M |", n as f64 / dt / 1e6);
            drop(model);
        }
        println!();
    }
    println!();
    println!("target: >= 2M events/s for every mix and history");
}
