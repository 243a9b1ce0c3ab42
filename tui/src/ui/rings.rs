//! The Rings view: every ring, engine-owned or probed, with its counters.

use super::*;

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
    let room = (inner.height as usize).saturating_sub(order.len() + 6);
    let shown_closed = closed.len().min(room.max(2));
    order.extend(closed.iter().take(shown_closed));
    for r in order {
        let fill =
            r.fd.and_then(|fd| app.fills.iter().find(|x| x.pid == r.pid && x.fd == fd))
                .filter(|_| !r.closed);
        let sq = format!(
            "{}/{}",
            fill.and_then(|x| x.sq_pending)
                .map_or("-".into(), |v| v.to_string()),
            r.sq_entries.map_or("?".into(), |v| v.to_string())
        );
        let cq = format!(
            "{}/{}",
            fill.and_then(|x| x.cq_pending)
                .map_or("-".into(), |v| v.to_string()),
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
