//! The Rings view: every ring, engine-owned or probed, with its counters.

use super::*;

/// A probed ring's second line: owner thread, setup flags, registered
/// files and buffers (`  tid 812 · SQPOLL DEFER_TASKRUN · files 1/1
/// /tmp/x · bufs 8×4 KiB`), cut to `width`.
fn ring_setup_line(r: &crate::model::RingRow, width: u16) -> String {
    let mut parts = vec![format!(
        "tid {}",
        r.owner_tid.map_or("?".into(), |t| t.to_string())
    )];
    let flags = r.flag_names();
    parts.push(if flags.is_empty() {
        "no setup flags".into()
    } else {
        flags
    });
    if let Some(t) = r.sq_thread {
        parts.push(format!("sq thread {t}"));
    }
    match r.file_slots {
        Some(n) if n > 0 || !r.files.is_empty() => {
            let mut s = format!("files {}/{n}", r.files.len());
            if !r.files.is_empty() {
                s.push(' ');
                s.push_str(&r.files.join(", "));
            }
            parts.push(s);
        }
        Some(_) => parts.push("no files".into()),
        None => {}
    }
    match r.buffer_slots {
        Some(n) if n > 0 => {
            let lens = &r.buffer_lens;
            let size = match lens.first() {
                Some(&l) if lens.iter().all(|&x| x == l) => format!("×{}", fmt_bytes(l)),
                Some(_) => format!(", {} total", fmt_bytes(lens.iter().sum())),
                None => String::new(),
            };
            parts.push(format!("bufs {}/{n}{size}", lens.len()));
        }
        Some(_) => parts.push("no bufs".into()),
        None => {}
    }
    if let Some(o) = r.fill.and_then(|f| f.cq_overflow).filter(|&o| o > 0) {
        parts.push(format!("{o} CQEs in overflow"));
    }
    let line = format!("{:<9} {}", "", parts.join(" · "));
    let w = width as usize;
    if line.chars().count() > w {
        let mut s: String = line.chars().take(w.saturating_sub(1)).collect();
        s.push('…');
        s
    } else {
        line
    }
}

/// 4096 -> "4 KiB", 1536 -> "1536 B".
fn fmt_bytes(n: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")];
    for (u, name) in UNITS {
        if n >= u && n.is_multiple_of(u) {
            return format!("{} {name}", n / u);
        }
    }
    format!("{n} B")
}

pub(super) fn draw_rings(f: &mut Frame, app: &App, area: Rect) {
    let b = block("Rings");
    let inner = b.inner(area);
    f.render_widget(b, area);
    let now = app.state.now_ns;
    let wide = inner.width >= 100;
    let mut lines = vec![Line::styled(
        format!(
            "{:<9} {:>7} {:>4} {:>9} {:>9} {:>5} {:>6} {:>6} {:>8} {:>4}{}",
            "ring",
            "pid",
            "fd",
            "SQ",
            "CQ",
            "infl",
            "sub/s",
            "cmp/s",
            "requests",
            "ovf",
            if wide { "  ctx / files" } else { "" }
        ),
        Style::new().fg(ACCENT).bold(),
    )];
    // Open rings first, newest first; then a few closed ones.
    let mut order: Vec<&crate::model::RingRow> =
        app.state.rings.iter().rev().filter(|r| !r.closed).collect();
    let closed: Vec<&crate::model::RingRow> =
        app.state.rings.iter().rev().filter(|r| r.closed).collect();
    // Probed rings take two lines (the setup line).
    let used: usize = order
        .iter()
        .map(|r| if r.source == "probes" { 2 } else { 1 })
        .sum();
    let room = (inner.height as usize).saturating_sub(used + 6);
    let shown_closed = closed.len().min(room.max(2));
    order.extend(closed.iter().take(shown_closed));
    for r in order {
        let fill =
            r.fd.and_then(|fd| app.fills.iter().find(|x| x.pid == r.pid && x.fd == fd))
                .filter(|_| !r.closed);
        // A probed ring's own fill (from its ring records: live and in
        // replay alike) wins over the live fdinfo poll.
        let own = r.fill.filter(|_| !r.closed);
        let sq_pending = own
            .and_then(|x| x.sq_pending)
            .or(fill.and_then(|x| x.sq_pending));
        let cq_pending = own
            .and_then(|x| x.cq_pending)
            .or(fill.and_then(|x| x.cq_pending));
        let sq = format!(
            "{}/{}",
            sq_pending.map_or("-".into(), |v| v.to_string()),
            r.sq_entries.map_or("?".into(), |v| v.to_string())
        );
        let cq = format!(
            "{}/{}",
            cq_pending.map_or("-".into(), |v| v.to_string()),
            r.cq_entries.map_or("?".into(), |v| v.to_string())
        );
        let src = match r.epoch {
            Some(e) => format!("engine {e}"),
            None => "kernel".into(),
        };
        let ovf = if r.source == "engine" {
            fill.and_then(|x| x.cq_overflow)
                .map_or("-".into(), |v| v.to_string())
        } else {
            r.overflows.to_string()
        };
        let extra = if wide {
            match r.ctx {
                Some(c) => format!("  {c:#x}"),
                None => {
                    let f = r.files.join(", ");
                    let room = (inner.width as usize).saturating_sub(84);
                    if f.chars().count() > room {
                        format!(
                            "  {}…",
                            f.chars().take(room.saturating_sub(1)).collect::<String>()
                        )
                    } else {
                        format!("  {f}")
                    }
                }
            }
        } else {
            String::new()
        };
        // A probed ring's numbers come from the kernel-side counters when
        // there are any: they saw every event, the fold may not have.
        let (infl, sub_rate, cmp_rate, submitted) = match &r.counted {
            Some(c) => (
                c.in_flight as i64,
                c.submit_rate,
                c.complete_rate,
                c.submitted,
            ),
            None => (
                r.inflight.max(0),
                r.submit_rate.per_sec(now),
                r.complete_rate.per_sec(now),
                r.submitted,
            ),
        };
        let style = if r.closed {
            Style::new().fg(Color::DarkGray)
        } else if r.source == "engine" {
            Style::new()
        } else {
            Style::new().fg(Color::LightBlue)
        };
        lines.push(Line::styled(
            format!(
                "{:<9} {:>7} {:>4} {:>9} {:>9} {:>5} {:>6} {:>6} {:>8} {:>4}{}",
                src,
                r.pid,
                r.fd.map_or("?".into(), |v| v.to_string()),
                sq,
                cq,
                infl,
                fmt_count(sub_rate),
                fmt_count(cmp_rate),
                fmt_count(submitted),
                ovf,
                extra
            ),
            style,
        ));
        if r.source == "probes" {
            lines.push(Line::styled(ring_setup_line(r, inner.width), style));
        }
    }
    if closed.len() > shown_closed {
        lines.push(Line::styled(
            format!("… {} older closed rings", closed.len() - shown_closed),
            Style::new().fg(Color::DarkGray),
        ));
    }
    if app.state.rings.is_empty() {
        lines.push(Line::styled(
            "no rings yet",
            Style::new().fg(Color::DarkGray),
        ));
    }
    lines.push(Line::raw(""));
    let t = &app.state.totals;
    lines.push(Line::styled(
        format!(
            "engines {} · chains {} · requests {} · decisions {} · cancelled {}",
            t.epochs, t.chains, t.submitted, t.decisions, t.cancelled
        ),
        Style::new().fg(Color::Gray),
    ));
    if t.probe_events > 0 {
        let g = app.state.graph.stats();
        lines.push(Line::styled(
            format!(
                "kernel: {} events · {} requests · {} chains ({} broken) · {} cancelled",
                t.probe_events,
                g.requests.total,
                g.chains.total,
                g.chains.broken,
                g.cancellations.total
            ),
            Style::new().fg(Color::LightBlue),
        ));
    }
    lines.push(Line::styled(
        "SQ/CQ waiting/size (fdinfo) · infl: in the kernel · rates: per second",
        Style::new().fg(Color::DarkGray),
    ));
    // What the newest engine registered and the limits its programs run under.
    if let Some((e, info)) = app.state.ring_info.iter().next_back() {
        lines.push(Line::raw(""));
        lines.push(Line::styled(
            format!("engine {e}: what programs may name"),
            Style::new().fg(ACCENT).bold(),
        ));
        let files: Vec<String> = info
            .files
            .iter()
            .map(|f| format!("{}={}", f.index, f.name))
            .collect();
        lines.push(Line::raw(format!("  files   {}", files.join(" · "))));
        lines.push(Line::raw(format!(
            "  buffers {}",
            info.regs
                .buffers
                .iter()
                .enumerate()
                .map(|(i, b)| format!("{i}={}", fmt_n(*b)))
                .collect::<Vec<_>>()
                .join(" · ")
        )));
        let b = &info.budgets;
        lines.push(Line::raw(format!(
            "  budgets {} insns, {} submits per decision; {} steps/chain; {} tries/step",
            b.insns_per_decision, b.submits_per_decision, b.steps_per_chain, b.attempts_per_step
        )));
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}
