//! The Maps view: each program map and its contents.

use super::*;

pub(super) fn draw_maps(f: &mut Frame, app: &App, area: Rect) {
    let cols = Layout::horizontal([
        Constraint::Length(34.min(area.width / 2)),
        Constraint::Min(20),
    ])
    .split(area);
    let b = block(&format!("Maps ({})", app.state.maps.len()));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    let mut lines = Vec::new();
    let h = inner.height as usize;
    let first = if app.map_sel >= h / 2 {
        app.map_sel + 1 - h / 2
    } else {
        0
    };
    for (i, ((e, _), m)) in app
        .state
        .maps
        .iter()
        .rev()
        .enumerate()
        .skip(first)
        .take(h / 2)
    {
        let st = if i == app.map_sel {
            Style::new().bg(Color::White).fg(Color::Black)
        } else {
            Style::new()
        };
        lines.push(Line::styled(
            format!("{}.{}", m.program, m.info.name),
            st.bold(),
        ));
        lines.push(Line::styled(
            format!(
                "  e{e} {:?} {}/{} · {} writes",
                m.info.kind,
                m.entries.len(),
                m.info.max_entries,
                m.writes
            )
            .to_lowercase(),
            Style::new().fg(Color::Gray),
        ));
    }
    if app.state.maps.is_empty() {
        lines.push(Line::styled(
            "no maps yet",
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
    let Some((_, m)) = app.state.maps.iter().rev().nth(app.map_sel) else {
        f.render_widget(block("Contents"), cols[1]);
        return;
    };
    let b = block(&format!(
        "{}.{} · key {} B · value {} B",
        m.program, m.info.name, m.info.key_size, m.info.value_size
    ));
    let inner = b.inner(cols[1]);
    f.render_widget(b, cols[1]);
    let now = app.state.now_ns;
    let mut lines = vec![Line::styled(
        format!("{:<18} {}", "key", "value"),
        Style::new().fg(ACCENT).bold(),
    )];
    let h = inner.height.saturating_sub(1) as usize;
    for (k, (v, t)) in m.entries.iter().skip(app.map_scroll).take(h) {
        let recent = now.saturating_sub(*t) < 200_000_000;
        let st = if recent {
            Style::new().fg(Color::LightYellow).bold()
        } else {
            Style::new()
        };
        lines.push(Line::from(vec![
            Span::styled(
                format!("{:<18} ", value_text(k)),
                Style::new().fg(Color::Gray),
            ),
            Span::styled(value_text(v), st),
            Span::styled(
                if v.len() > 8 {
                    format!("  {}", hex(v))
                } else {
                    String::new()
                },
                Style::new().fg(Color::DarkGray),
            ),
        ]));
    }
    if m.entries.is_empty() {
        lines.push(Line::styled("empty", Style::new().fg(Color::DarkGray)));
    }
    f.render_widget(Paragraph::new(lines), inner);
}
