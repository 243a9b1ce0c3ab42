//! `--headless`: the event stream as JSON Lines, then a summary line; for
//! the engine ([`spawn_printer`]) and for kernel probes ([`JsonLines`]).

use ringside_engine::event::{EventRecord, Subscription};
use ringside_recordings::Item;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;

/// Print every event of `sub` on stdout, one JSON object per line, until the
/// engine drops its end. Returns the number of events printed.
pub fn spawn_printer(sub: Subscription) -> JoinHandle<std::io::Result<u64>> {
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = std::io::BufWriter::new(stdout.lock());
        let mut n = 0u64;
        for rec in sub.iter() {
            print_event(&mut out, &rec)?;
            n += 1;
        }
        let dropped = sub.dropped.load(Ordering::Relaxed);
        if dropped > 0 {
            print_item(
                &mut out,
                &Item::Lost {
                    queue: "engine".into(),
                    count: dropped,
                },
            )?;
        }
        out.flush()?;
        Ok(n)
    })
}

/// One event as one line.
pub fn print_event(out: &mut impl Write, rec: &Arc<EventRecord>) -> std::io::Result<()> {
    print_item(out, &Item::Engine(rec.clone()))
}

/// One item as one line, in the schema `export --format jsonl` writes
/// (one writer for both, so `lost` has one shape).
pub fn print_item(out: &mut impl Write, item: &Item) -> std::io::Result<()> {
    serde_json::to_writer(&mut *out, &ringside_recordings::export::item_json(item))?;
    out.write_all(b"\n")
}

/// A probe trace's lines ([`ringside_probes::trace`]) as JSON Lines,
/// buffered, flushed whenever the trace says its lines should reach the
/// reader.
pub struct JsonLines<W: Write>(std::io::BufWriter<W>);

impl<W: Write> JsonLines<W> {
    /// Lines to `out`.
    pub fn new(out: W) -> Self {
        JsonLines(std::io::BufWriter::with_capacity(1 << 16, out))
    }
}

impl<W: Write> ringside_probes::trace::TraceSink for JsonLines<W> {
    fn line(&mut self, line: &ringside_probes::trace::TraceLine<'_>) -> std::io::Result<()> {
        serde_json::to_writer(&mut self.0, line)?;
        self.0.write_all(b"\n")
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Plain text: one line per finished chain (what a terminal without the UI shows).
pub fn spawn_plain(sub: Subscription) -> JoinHandle<std::io::Result<u64>> {
    use ringside_engine::event::Event;
    use std::collections::HashMap;
    std::thread::spawn(move || {
        let stdout = std::io::stdout();
        let mut out = stdout.lock();
        let mut names: HashMap<u64, (u64, String)> = HashMap::new();
        let mut n = 0u64;
        for rec in sub.iter() {
            n += 1;
            match &rec.event {
                Event::ChainCreated {
                    chain,
                    user_data,
                    driven_by,
                    steps,
                    ..
                } => {
                    names.insert(
                        *chain,
                        (*user_data, format!("{driven_by:?}, {} steps", steps.len())),
                    );
                }
                Event::ChainFinished {
                    chain,
                    outcome,
                    res,
                    steps,
                } => {
                    let (ud, what) = names.remove(chain).unwrap_or_default();
                    writeln!(
                        out,
                        "chain {chain:>3} (user_data {ud:>4}, {what}): {outcome:?}, res {res}, {steps} steps in the end"
                    )?;
                }
                _ => {}
            }
        }
        Ok(n)
    })
}
