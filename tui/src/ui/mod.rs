//! Drawing: one file per view. [`draw`] reads the [`App`] and its model
//! and changes neither: selections are settled before each frame by
//! [`App::prepare`], and what a pane needs computing (a decision's
//! disassembly and path) is computed there, never while drawing.

mod cancels;
mod chains;
mod debug;
mod decisions;
mod maps;
mod overlays;
mod request;
mod rings;
mod stats;

use cancels::*;
use chains::*;
use debug::*;
use decisions::*;
use maps::*;
use overlays::*;
use request::*;
use rings::*;
use stats::*;

use crate::app::{App, KernelRows, Overlay, View};
use crate::model::{ChainRow, Histogram, Model, Node, NodeState, RowKey};
use crate::source::ControlKind;
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Borders, Clear, Paragraph, Sparkline, Wrap,
};
use ringside_engine::abi::{CTX_FIELDS, RsCtx, helper_id, op};
use ringside_engine::decision::{Action, CallDetail, DecisionRecord, DecisionResult};
use ringside_engine::event::{LinkMode, Outcome};
use std::fmt::Write as _;

const ACCENT: Color = Color::Cyan;

/// Colours of a node state (background, foreground).
pub fn state_colors(s: NodeState) -> (Color, Color) {
    match s {
        NodeState::Queued => (Color::DarkGray, Color::White),
        NodeState::Inflight => (Color::Blue, Color::White),
        NodeState::Done => (Color::Green, Color::Black),
        NodeState::Short => (Color::Yellow, Color::Black),
        NodeState::Failed => (Color::Red, Color::White),
        NodeState::Cancelled => (Color::Magenta, Color::White),
        NodeState::Dropped => (Color::Cyan, Color::Black),
    }
}

fn state_style(s: NodeState) -> Style {
    let (bg, fg) = state_colors(s);
    Style::new().bg(bg).fg(fg)
}

/// Draw the whole screen.
pub fn draw(f: &mut Frame, app: &App) {
    let area = f.area();
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .split(area);
    draw_tabs(f, app, rows[0]);
    match app.view {
        View::Rings => draw_rings(f, app, rows[1]),
        View::Chains => draw_chains(f, app, rows[1]),
        View::Cancels => draw_cancels(f, app, rows[1]),
        View::Decisions => draw_decisions(f, app, rows[1]),
        View::Maps => draw_maps(f, app, rows[1]),
        View::Stats => draw_stats(f, app, rows[1]),
        View::Debug => draw_debug(f, app, rows[1]),
    }
    draw_status(f, app, rows[2]);
    match &app.overlay {
        Overlay::None => {}
        Overlay::Help => draw_help(f, app, area),
        Overlay::Breakpoints => draw_breakpoints(f, app, area),
        Overlay::Command(s) => draw_prompt(f, rows[2], ":", s),
        Overlay::Filter(s) => draw_prompt(f, rows[2], "filter /", s),
    }
}

fn draw_tabs(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = vec![Span::styled(
        " ringside ",
        Style::new().bg(ACCENT).fg(Color::Black).bold(),
    )];
    let narrow = area.width < 100;
    for (i, v) in View::ALL.iter().enumerate() {
        let title = if narrow && *v == View::Decisions {
            "Decide"
        } else {
            v.title()
        };
        let label = format!(" {}{} ", i + 1, title);
        if *v == app.view {
            spans.push(Span::styled(
                label,
                Style::new().bg(Color::White).fg(Color::Black).bold(),
            ));
        } else {
            spans.push(Span::raw(label));
        }
    }
    let left = Line::from(spans);
    let state = run_state(app, area.width < 100);
    let used: usize = left.width();
    let avail = (area.width as usize).saturating_sub(used + 1);
    let mut right = state.0;
    if right.chars().count() > avail {
        right = right.chars().take(avail).collect();
    }
    let mut line = left;
    let pad = (area.width as usize).saturating_sub(used + right.chars().count());
    line.spans.push(Span::raw(" ".repeat(pad)));
    line.spans.push(Span::styled(right, state.1));
    f.render_widget(Paragraph::new(line), area);
}

fn run_state(app: &App, narrow: bool) -> (String, Style) {
    if let Some(p) = &app.state.paused {
        let at = p.decision.map_or(String::new(), |d| format!(" at #{d}"));
        return (
            format!("‖ STOPPED{at} "),
            Style::new().bg(Color::Yellow).fg(Color::Black).bold(),
        );
    }
    if let Some(r) = &app.replay {
        let speed = if r.speed == 0.0 {
            "max".to_string()
        } else {
            format!("{}x", r.speed)
        };
        let st = if r.playing { "▶" } else { "‖" };
        if narrow {
            return (
                format!("{st} {}/{} ", r.pos, r.total),
                Style::new().fg(Color::Yellow).bold(),
            );
        }
        return (
            format!("{st} REPLAY {}/{} {speed} ", r.pos, r.total),
            Style::new().fg(Color::Yellow).bold(),
        );
    }
    if app.ended.is_some() {
        return ("■ ENDED ".into(), Style::new().fg(Color::Red).bold());
    }
    // Narrow terminals have no room here: the status line says it instead.
    match (&app.probes_off, narrow) {
        (Some(_), false) => (
            "● LIVE · kernel probes off ".into(),
            Style::new().fg(Color::Green).bold(),
        ),
        _ => ("● LIVE ".into(), Style::new().fg(Color::Green).bold()),
    }
}

fn draw_status(f: &mut Frame, app: &App, area: Rect) {
    let mut spans = Vec::new();
    if let Some(c) = app.coverage() {
        let alarm = Style::new().bg(Color::Red).fg(Color::White).bold();
        if c.ui_dropped > 0 {
            let pct = fmt_percent(c.percent());
            let text = match (app.recording.is_some(), area.width < 100) {
                (true, false) => format!(" showing {pct} of events; the recording is complete "),
                (false, false) => format!(" showing {pct} of events: the view cannot keep up "),
                (true, true) => format!(" {pct} shown · recording complete "),
                (false, true) => format!(" showing {pct} of events "),
            };
            spans.push(Span::styled(text, alarm));
            spans.push(Span::raw(" "));
        }
        if c.lost_upstream > 0 {
            spans.push(Span::styled(
                format!(" LOST {} before ringside ", fmt_count(c.lost_upstream)),
                alarm,
            ));
            spans.push(Span::raw(" "));
        }
    }
    if app.probes_off.is_some() && area.width < 100 && app.ended.is_none() {
        spans.push(Span::styled(
            "no kernel probes ",
            Style::new().fg(Color::Black).bg(Color::Gray),
        ));
        spans.push(Span::raw(" "));
    }
    if let Some(m) = &app.message {
        spans.push(Span::styled(m.clone(), Style::new().fg(Color::Yellow)));
    } else if let Some(e) = &app.ended {
        spans.push(Span::styled(e.clone(), Style::new().fg(Color::Red)));
    } else {
        spans.push(Span::styled(app.source.clone(), Style::new().fg(ACCENT)));
        if let Some(n) = app.state.notes.back() {
            spans.push(Span::raw(" · "));
            spans.push(Span::styled(n.clone(), Style::new().fg(Color::Gray)));
        }
    }
    let hint = match app.view {
        View::Debug => " s step  S back  r to call  n next  c cont  ? help ",
        _ => match app.control_kind() {
            ControlKind::Replay => " p play  , . step  N back  : seek  ? help ",
            ControlKind::Engine => " p pause  n next  b break  ? help  q quit ",
            ControlKind::WatchOnly => " ? help  q quit ",
        },
    };
    let w = area.width as usize;
    let hint_w = hint.chars().count();
    // Keep room for the key hint: cut the message, not the hint.
    let room = w.saturating_sub(hint_w + 1);
    let mut used = 0usize;
    let mut cut = Vec::new();
    for sp in spans {
        let sw = sp.width();
        if used + sw <= room {
            used += sw;
            cut.push(sp);
        } else {
            let keep = room.saturating_sub(used);
            if keep > 1 {
                let t: String = sp.content.chars().take(keep - 1).collect();
                cut.push(Span::styled(format!("{t}…"), sp.style));
                used += keep;
            }
            break;
        }
    }
    let mut spans = cut;
    let hint_len = hint_w;
    if used + hint_len <= w {
        spans.push(Span::raw(" ".repeat(w - used - hint_len)));
        spans.push(Span::styled(
            hint,
            Style::new().fg(Color::Black).bg(Color::Gray),
        ));
    }
    f.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_prompt(f: &mut Frame, area: Rect, label: &str, text: &str) {
    f.render_widget(Clear, area);
    let line = Line::from(vec![
        Span::styled(
            label.to_string(),
            Style::new().fg(Color::Black).bg(Color::Yellow),
        ),
        Span::raw(" "),
        Span::raw(text.to_string()),
        Span::styled("█", Style::new().fg(Color::Yellow)),
    ]);
    f.render_widget(Paragraph::new(line), area);
}

fn block(title: &str) -> Block<'static> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(Style::new().fg(Color::DarkGray))
        .title(Span::styled(
            format!(" {title} "),
            Style::new().fg(ACCENT).bold(),
        ))
}

/// Time on the session timeline.
pub fn fmt_t(ns: u64) -> String {
    format!("{:.4}s", ns as f64 / 1e9)
}

/// A duration.
pub fn fmt_dur(ns: u64) -> String {
    if ns < 1_000 {
        format!("{ns}ns")
    } else if ns < 1_000_000 {
        format!("{:.1}µs", ns as f64 / 1e3)
    } else if ns < 1_000_000_000 {
        format!("{:.1}ms", ns as f64 / 1e6)
    } else {
        format!("{:.2}s", ns as f64 / 1e9)
    }
}

/// A byte count, short.
pub fn fmt_n(n: u64) -> String {
    if n >= 1024 && n.is_multiple_of(1024) && n < 1 << 30 {
        format!("{}K", n / 1024)
    } else if n >= 100_000 {
        format!("{}K", n / 1000)
    } else {
        n.to_string()
    }
}

/// A count, short.
pub fn fmt_count(n: u64) -> String {
    if n >= 10_000_000 {
        format!("{}M", n / 1_000_000)
    } else if n >= 100_000 {
        format!("{}k", n / 1000)
    } else {
        n.to_string()
    }
}

/// -errno as a name.
/// A chain's final result: a size, or an errno name when negative.
fn fmt_res(r: i32) -> String {
    if r < 0 {
        errno_name(r)
    } else {
        fmt_n(r as u64)
    }
}

pub use crate::model::errno_name;

fn op_abbrev(opcode: u8) -> &'static str {
    match opcode {
        op::READ | op::READ_FIXED | op::READV => "R",
        op::WRITE | op::WRITE_FIXED | op::WRITEV => "W",
        op::RECV => "rcv",
        op::SEND => "snd",
        op::NOP => "nop",
        op::FSYNC => "fsync",
        op::TIMEOUT => "tmo",
        ringside_engine::abi::OP_BPF => "bpf",
        _ => "op",
    }
}

/// A node's label: opcode and result (or length while unfinished).
pub fn node_label(n: &Node) -> String {
    let op = op_abbrev(n.sqe.opcode);
    let v = match n.res {
        Some(r) if r < 0 => errno_name(r),
        Some(r) => fmt_n(r as u64),
        None if n.sqe.len > 0 => fmt_n(n.sqe.len as u64),
        None => String::new(),
    };
    if v.is_empty() {
        op.to_string()
    } else {
        format!("{op} {v}")
    }
}

fn legend(width: u16) -> Line<'static> {
    let mut spans = Vec::new();
    let narrow = width < 92;
    for s in NodeState::ALL {
        spans.push(Span::styled(format!(" {} ", s.name()), state_style(s)));
        if !narrow {
            spans.push(Span::raw(" "));
        }
    }
    spans.push(Span::styled(
        " +",
        Style::new().fg(Color::LightYellow).bold(),
    ));
    spans.push(Span::raw(if width < 84 {
        "inserted"
    } else {
        "inserted by BPF"
    }));
    Line::from(spans)
}

/// `text` broken at spaces into lines of at most `width` characters (a
/// word longer than the width gets a line of its own, cut by the frame).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split(' ') {
        let n = cur.chars().count();
        if n > 0 && n + 1 + word.chars().count() > width {
            out.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || out.is_empty() {
        out.push(cur);
    }
    out
}
