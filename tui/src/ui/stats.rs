//! The Stats view: latency histograms, rates and counts.

use super::*;

fn hist_bars(h: &Histogram, unit: fn(u64) -> String, max_bars: usize) -> Vec<Bar<'static>> {
    let span = h.span();
    let mut lo = span.start;
    if span.len() > max_bars {
        lo = span.end - max_bars;
    }
    (lo..span.end)
        .map(|i| {
            Bar::default()
                .value(h.buckets[i])
                .label(Line::from(unit(1u64 << i)))
                .text_value(fmt_count(h.buckets[i]))
        })
        .collect()
}

pub(super) fn draw_stats(f: &mut Frame, app: &App, area: Rect) {
    let rows = Layout::vertical([
        Constraint::Length(5),
        Constraint::Min(6),
        Constraint::Length(6),
    ])
    .split(area);
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
    let bars_w = |r: Rect| ((r.width.saturating_sub(2)) / 6).max(1) as usize;
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
                "{}completion latency · n {} · ",
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
    f.render_widget(
        BarChart::default()
            .block(block(&t))
            .bar_width(5)
            .bar_gap(1)
            .bar_style(Style::new().fg(Color::Blue))
            .value_style(Style::new().fg(Color::White).bg(Color::Blue))
            .data(BarGroup::default().bars(&hist_bars(lat, fmt_dur_short, bars_w(mid[0])))),
        mid[0],
    );
    let dc = &app.state.decision_insns;
    let t = format!(
        "decision insns p50 {} max {}{}",
        dc.quantile(0.5),
        dc.max,
        if mid[1].width >= 56 {
            format!(
                " · time p50 {}",
                fmt_dur(app.state.decision_ns.quantile(0.5))
            )
        } else {
            String::new()
        }
    );
    f.render_widget(
        BarChart::default()
            .block(block(&t))
            .bar_width(5)
            .bar_gap(1)
            .bar_style(Style::new().fg(Color::Magenta))
            .value_style(Style::new().fg(Color::White).bg(Color::Magenta))
            .data(BarGroup::default().bars(&hist_bars(dc, |v| format!("{v}"), bars_w(mid[1])))),
        mid[1],
    );
    let t = &app.state.totals;
    let b = block("Counters");
    let inner = b.inner(rows[2]);
    f.render_widget(b, rows[2]);
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
    let lines = vec![
        Line::raw(format!(
            "events {} (engine {}, kernel {}) · kept {}/{} chains, {}/{} decisions",
            fmt_count(t.items),
            fmt_count(t.engine_events),
            fmt_count(t.probe_events),
            fmt_count(app.state.rows.len() as u64),
            fmt_count(app.state.caps().0 as u64),
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
