//! The Stats view: latency histograms, rates and counts.

use super::*;

/// Bars of a log2 histogram in at most `max_bars`: from the lowest
/// non-empty bucket to the highest, adjacent buckets merged (each bar x4,
/// x8, ... wide) when more than fit, so the axis always covers every value
/// and the bulk is never cut off. Each bar is labelled with its lower bound.
fn hist_bars(h: &Histogram, unit: fn(u64) -> String, max_bars: usize) -> Vec<Bar<'static>> {
    let span = h.span();
    if span.is_empty() {
        return Vec::new();
    }
    let per = span.len().div_ceil(max_bars.max(1));
    span.clone()
        .step_by(per)
        .map(|lo| {
            let n: u64 = h.buckets[lo..(lo + per).min(span.end)].iter().sum();
            Bar::default()
                .value(n)
                .label(Line::from(unit(if lo == 0 { 0 } else { 1u64 << lo })))
                .text_value(fmt_count(n))
        })
        .collect()
}

/// Rows of a small table that fits `width`: the name column takes what the
/// number columns (8 wide each, as many as fit after a 10-wide name) leave.
fn table_lines(
    width: u16,
    height: u16,
    heads: [&str; 5],
    rows: impl Iterator<Item = [String; 5]>,
    empty: &str,
) -> Vec<Line<'static>> {
    let w = width as usize;
    let ncols = ((w.saturating_sub(10)) / 8).min(4);
    let name_w = w.saturating_sub(8 * ncols).max(1);
    let fmt = |r: &[String]| {
        let mut l = format!("{:<name_w$.name_w$}", r[0]);
        for c in &r[1..=ncols] {
            l.push_str(&format!("{c:>8.8}"));
        }
        l
    };
    let heads: Vec<String> = heads.iter().map(|h| h.to_string()).collect();
    let mut lines = vec![Line::styled(fmt(&heads), Style::new().fg(ACCENT).bold())];
    for r in rows.take(height.saturating_sub(1) as usize) {
        lines.push(Line::raw(fmt(&r)));
    }
    if lines.len() == 1 {
        lines.push(Line::styled(
            empty.to_string(),
            Style::new().fg(Color::DarkGray),
        ));
    }
    lines
}

/// A table of latency by opcode and one of decision cost by program,
/// side by side, as many rows as fit (busiest first).
fn draw_breakdown(f: &mut Frame, app: &App, area: Rect) {
    let cols =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).split(area);
    let (by_op, what) = if app.state.latency.count > 0 || app.state.kernel_latency.count == 0 {
        (&app.state.latency_by_op, "engine")
    } else {
        (&app.state.kernel_latency_by_op, "kernel")
    };
    let mut ops: Vec<_> = by_op.iter().collect();
    ops.sort_by_key(|(_, h)| std::cmp::Reverse(h.count));
    let b = block(&format!("{what} latency by opcode"));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    let rows = ops.iter().map(|(op, h)| {
        [
            ringside_probes::event::opcode_name(*op).to_string(),
            fmt_count(h.count),
            fmt_dur(h.quantile(0.5)),
            fmt_dur(h.quantile(0.99)),
            fmt_dur(h.max),
        ]
    });
    let lines = table_lines(
        inner.width,
        inner.height,
        ["opcode", "n", "p50", "p99", "max"],
        rows,
        "no completions yet",
    );
    f.render_widget(Paragraph::new(lines), inner);

    let mut progs: Vec<_> = app.state.cost_by_program.iter().collect();
    progs.sort_by_key(|(_, c)| std::cmp::Reverse(c.ns.count));
    let b = block("decision cost by program");
    let inner = b.inner(cols[1]);
    f.render_widget(b, cols[1]);
    let rows = progs.iter().map(|(name, c)| {
        [
            name.to_string(),
            fmt_count(c.ns.count),
            if c.insns.count > 0 {
                format!("{} ins", c.insns.quantile(0.5))
            } else {
                "-".into()
            },
            fmt_dur(c.ns.quantile(0.5)),
            fmt_dur(c.ns.quantile(0.99)),
        ]
    });
    let lines = table_lines(
        inner.width,
        inner.height,
        ["program", "n", "insns", "p50", "p99"],
        rows,
        "no decisions yet",
    );
    f.render_widget(Paragraph::new(lines), inner);
}

pub(super) fn draw_stats(f: &mut Frame, app: &App, area: Rect) {
    // The breakdown tables get what the charts can spare, up to what they
    // hold (a border, a header, a row per opcode or program).
    let want = 3 + app
        .state
        .cost_by_program
        .len()
        .max(app.state.latency_by_op.iter().count())
        .max(app.state.kernel_latency_by_op.iter().count())
        .max(1) as u16;
    let spare = area.height.saturating_sub(4 + 7 + 6);
    let breakdown = if spare >= 4 { want.min(spare) } else { 0 };
    let rows = Layout::vertical([
        Constraint::Length(4),
        Constraint::Min(6),
        Constraint::Length(breakdown),
        Constraint::Length(6),
    ])
    .split(area);
    if breakdown > 0 {
        draw_breakdown(f, app, rows[2]);
    }
    let engine = app.state.totals.completed > 0 || app.state.totals.probe_events == 0;
    let series = if engine {
        &app.state.throughput
    } else {
        &app.state.kernel_throughput
    };
    let w = rows[0].width.saturating_sub(2) as usize;
    let data: Vec<u64> = series
        .counts
        .iter()
        .skip(series.counts.len().saturating_sub(w))
        .copied()
        .collect();
    let peak = data.iter().max().copied().unwrap_or(0);
    let title = format!(
        "{} completions per 10 ms of event time · peak {} · last {}",
        if engine { "engine" } else { "kernel" },
        peak,
        data.last().copied().unwrap_or(0)
    );
    f.render_widget(
        Sparkline::default()
            .block(block(&title))
            .data(&data)
            .style(Style::new().fg(Color::Green)),
        rows[0],
    );
    let mid =
        Layout::horizontal([Constraint::Percentage(50), Constraint::Percentage(50)]).split(rows[1]);
    // Engine completions when there are any; else what the probes saw.
    let lat = if app.state.latency.count > 0 || app.state.kernel_latency.count == 0 {
        &app.state.latency
    } else {
        &app.state.kernel_latency
    };
    let t = format!(
        "{}latency p50 {} p99 {}",
        if mid[0].width >= 56 {
            format!(
                "{}completions · n {} · ",
                if std::ptr::eq(lat, &app.state.kernel_latency) {
                    "kernel "
                } else {
                    ""
                },
                fmt_count(lat.count)
            )
        } else {
            String::new()
        },
        fmt_dur(lat.quantile(0.5)),
        fmt_dur(lat.quantile(0.99))
    );
    let bars = hist_bars(lat, fmt_dur_short, bars_w(mid[0]));
    f.render_widget(hist_chart(&t, Color::Blue, &bars), mid[0]);
    // Zeros charted here would read as decisions that cost nothing: say
    // why there is nothing to chart instead.
    let decided = app.state.totals.decisions;
    if decided == 0 {
        // Kernel probes alone, or an engine that has not decided yet.
        f.render_widget(
            Paragraph::new(
                "no decisions yet: they come from the BPF link engine (ringside run, demo)",
            )
            .wrap(Wrap { trim: true })
            .block(block("decision insns · none yet")),
            mid[1],
        );
    } else if app.state.decision_insns.count == 0 {
        // Decisions whose records carry no count (compiled code counts
        // nothing; a count is recorded where someone asked for one).
        f.render_widget(
            Paragraph::new(format!(
                "{} decisions, none with an instruction count (compiled code \
                 does not count; --interpreter does)",
                fmt_count(decided)
            ))
            .wrap(Wrap { trim: true })
            .block(block(&format!(
                "decision insns · not counted · time p50 {}",
                fmt_dur(app.state.decision_ns.quantile(0.5))
            ))),
            mid[1],
        );
    } else {
        draw_decision_insns(f, app, mid[1]);
    }
    let t = &app.state.totals;
    let b = block("Counters");
    let inner = b.inner(rows[3]);
    f.render_widget(b, rows[3]);
    let outcomes = t
        .outcomes
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect::<Vec<_>>()
        .join(" · ");
    let lost = if t.lost.is_empty() {
        "none".to_string()
    } else {
        t.lost
            .iter()
            .map(|(k, v)| format!("{k} {v}"))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let rows = &app.state.rows;
    let lone = if rows.requests() > 0 {
        format!(
            ", {}/{} lone kernel requests",
            fmt_count(rows.requests() as u64),
            fmt_count(rows.cap() as u64)
        )
    } else {
        String::new()
    };
    let lines = vec![
        Line::raw(format!(
            "events {} (engine {}, kernel {}) · kept {}/{} chains{lone}, {}/{} decisions",
            fmt_count(t.items),
            fmt_count(t.engine_events),
            fmt_count(t.probe_events),
            fmt_count(rows.chains() as u64),
            fmt_count(rows.cap() as u64),
            fmt_count(app.state.decisions.len() as u64),
            fmt_count(app.state.caps().1 as u64)
        )),
        Line::raw(format!(
            "chains {} ({}) · decisions {}",
            t.chains,
            if outcomes.is_empty() {
                "none finished".into()
            } else {
                outcomes
            },
            t.decisions
        )),
        Line::raw(format!(
            "requests {} · completions {} · app {} · cancelled {} · stops {}",
            t.submitted, t.completed, t.app_completions, t.cancelled, app.state.pauses
        )),
        Line::from(vec![
            Span::raw("lost/dropped events: "),
            Span::styled(
                lost,
                if t.lost.is_empty() {
                    Style::new().fg(Color::Green)
                } else {
                    Style::new().fg(Color::Red).bold()
                },
            ),
        ]),
    ];
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

/// A share for the header: never rounds a partial view up to 100%.
pub(super) fn fmt_percent(p: f64) -> String {
    if p >= 99.95 {
        "99.9%".into()
    } else if p >= 10.0 {
        format!("{:.0}%", p.floor())
    } else {
        format!("{:.1}%", (p * 10.0).floor() / 10.0)
    }
}

fn fmt_dur_short(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{}µs", ns / 1_000)
    } else if ns < 1_000_000_000 {
        format!("{}ms", ns / 1_000_000)
    } else {
        format!("{}s", ns / 1_000_000_000)
    }
}

/// A histogram's bars (from [`hist_bars`]) in `colour`, under `title`.
fn hist_chart<'a>(title: &'a str, colour: Color, bars: &'a [Bar<'a>]) -> BarChart<'a> {
    BarChart::default()
        .block(block(title))
        .bar_width(5)
        .bar_gap(1)
        .bar_style(Style::new().fg(colour))
        .value_style(Style::new().fg(Color::White).bg(colour))
        .data(BarGroup::default().bars(bars))
}

/// How many histogram bars fit in `r` (5 wide, a gap of 1).
fn bars_w(r: Rect) -> usize {
    ((r.width.saturating_sub(2)) / 6).max(1) as usize
}

/// The decisions' instruction counts, as a histogram (some were seen).
fn draw_decision_insns(f: &mut Frame, app: &App, area: Rect) {
    let dc = &app.state.decision_insns;
    let t = format!(
        "decision insns p50 {} max {}{}",
        dc.quantile(0.5),
        dc.max,
        if area.width >= 56 {
            format!(
                " · time p50 {}",
                fmt_dur(app.state.decision_ns.quantile(0.5))
            )
        } else {
            String::new()
        }
    );
    let bars = hist_bars(dc, |v| format!("{v}"), bars_w(area));
    f.render_widget(hist_chart(&t, Color::Magenta, &bars), area);
}
