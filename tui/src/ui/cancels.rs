//! The Cancels view: cancelled and dropped requests grouped by cause.

use super::*;

pub(super) fn draw_cancels(f: &mut Frame, app: &App, area: Rect) {
    let cols = Layout::horizontal([
        Constraint::Length(30.min(area.width / 3).max(24)),
        Constraint::Min(20),
    ])
    .split(area);
    let total: u64 = app.state.cancels.values().map(|g| g.count).sum();
    let b = block(&format!("Causes ({total})"));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    let mut lines = Vec::new();
    for (i, (name, g)) in app.state.cancels.iter().enumerate() {
        let sel = i == app.cancel_group;
        let style = if sel && !app.cancel_focus_entries {
            Style::new().bg(Color::White).fg(Color::Black)
        } else if sel {
            Style::new().bold()
        } else {
            Style::new()
        };
        let w = inner.width as usize;
        let count = g.count.to_string();
        let name_w = w.saturating_sub(count.len() + 1);
        lines.push(Line::styled(
            format!("{:<name_w$.name_w$} {count}", name),
            style,
        ));
    }
    if lines.is_empty() {
        lines.push(Line::styled(
            "nothing cancelled yet",
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);

    let group = app.state.cancels.iter().nth(app.cancel_group);
    let title = group.map_or("Cancelled requests".to_string(), |(n, g)| {
        format!("{n}: {} (last {} kept)", g.count, g.recent.len())
    });
    let b = block(&title);
    let inner = b.inner(cols[1]);
    f.render_widget(b, cols[1]);
    let Some((_, g)) = group else { return };
    let h = (inner.height as usize).max(1);
    let sel = app.cancel_pos.sel;
    // An entry is its request's line, then its cause wrapped to the width:
    // the cause is the part a person acts on, so it is never cut off.
    let w = (inner.width as usize).saturating_sub(2).max(8);
    let height = |e: &crate::model::CancelEntry| 1 + wrap_words(&e.detail, w).len();
    let mut first = sel.min(g.recent.len().saturating_sub(1));
    let mut used = g.recent.get(first).map_or(0, height);
    while first > 0 {
        let hh = height(&g.recent[first - 1]);
        if used + hh > h {
            break;
        }
        used += hh;
        first -= 1;
    }
    let mut lines = Vec::new();
    for (i, e) in g.recent.iter().enumerate().skip(first) {
        if lines.len() >= h {
            break;
        }
        let selected = i == sel && app.cancel_focus_entries;
        let st = if selected {
            Style::new().bg(Color::White).fg(Color::Black)
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{} ", fmt_t(e.t_ns)),
                Style::new().fg(Color::DarkGray),
            ),
            Span::styled(e.what.clone(), st.bold()),
        ]));
        for l in wrap_words(&e.detail, w) {
            lines.push(Line::styled(format!("  {l}"), Style::new().fg(Color::Gray)));
        }
    }
    f.render_widget(Paragraph::new(lines), inner);
}
