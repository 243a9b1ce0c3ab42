//! Popups over any view: help and breakpoints.

use super::*;
use crate::app::HELP;

fn centered(area: Rect, w: u16, h: u16) -> Rect {
    let w = w.min(area.width);
    let h = h.min(area.height);
    Rect {
        x: area.x + (area.width - w) / 2,
        y: area.y + (area.height - h) / 2,
        width: w,
        height: h,
    }
}

pub(super) fn draw_help(f: &mut Frame, app: &App, area: Rect) {
    // Section headings only when there is room for them.
    let headings = area.height >= HELP.len() as u16 + 2;
    let rows = HELP
        .iter()
        .filter(|(_, v)| headings || !v.is_empty())
        .count() as u16;
    let r = centered(area, 80, rows + 2);
    f.render_widget(Clear, r);
    let mut lines = Vec::new();
    for (k, v) in HELP {
        if v.is_empty() && !headings {
            continue;
        }
        if v.is_empty() {
            lines.push(Line::styled(k.to_string(), Style::new().fg(ACCENT).bold()));
        } else {
            lines.push(Line::from(vec![
                Span::styled(format!("  {k:<22}"), Style::new().fg(Color::Yellow)),
                Span::raw(v.to_string()),
            ]));
        }
    }
    let what = match app.control_kind() {
        ControlKind::Engine => "engine: pause, step and breakpoints work",
        ControlKind::Replay => "replay: everything, plus seek and step back",
        ControlKind::WatchOnly => "kernel probes: watch only (no pausing)",
    };
    f.render_widget(
        Paragraph::new(Text::from(lines)).block(block(&format!("Keys · {what} · any key closes"))),
        r,
    );
}

pub(super) fn draw_breakpoints(f: &mut Frame, app: &App, area: Rect) {
    let r = centered(area, 72, 15);
    f.render_widget(Clear, r);
    let sel = app.bp_target();
    let has = |b: &ringside_engine::debug::Breakpoint| app.breakpoints.contains(b);
    use ringside_engine::debug::Breakpoint as B;
    let mark = |on: bool| if on { "[x]" } else { "[ ]" };
    let mut lines = vec![
        Line::raw(format!(
            "  1 {} input res < len (short transfer)",
            mark(has(&B::ShortResult))
        )),
        Line::raw(format!(
            "  2 {} input res < 0 (error)",
            mark(has(&B::NegativeResult))
        )),
    ];
    match sel {
        Some(d) => {
            lines.push(Line::raw(format!(
                "  p {} program {}",
                mark(has(&B::Program { prog: d.prog })),
                d.prog_name
            )));
            lines.push(Line::raw(format!(
                "  c {} chain {}",
                mark(has(&B::Chain { chain: d.chain })),
                d.chain
            )));
            lines.push(Line::raw(format!(
                "  o {} opcode {}",
                mark(has(&B::Opcode {
                    opcode: d.ctx.opcode
                })),
                op::name(d.ctx.opcode)
            )));
        }
        None => lines.push(Line::styled(
            "  p c o: program/chain/opcode of a decision (select one first)",
            Style::new().fg(Color::DarkGray),
        )),
    }
    lines.push(Line::raw("  x   clear all"));
    lines.push(Line::raw(
        "  :   type one: break program NAME | chain N | opcode NAME",
    ));
    lines.push(Line::raw(""));
    lines.push(Line::styled("set:", Style::new().fg(ACCENT).bold()));
    if app.breakpoints.is_empty() {
        lines.push(Line::styled("  none", Style::new().fg(Color::DarkGray)));
    }
    for (i, b) in app.breakpoints.iter().enumerate() {
        lines.push(Line::raw(format!("  {} {}", i + 1, b.describe())));
    }
    if app.control_kind() == ControlKind::WatchOnly {
        lines.push(Line::styled(
            "kernel probes cannot stop the traced process",
            Style::new().fg(Color::Red),
        ));
    }
    f.render_widget(
        Paragraph::new(lines).block(block("Breakpoints · Esc closes")),
        r,
    );
}
