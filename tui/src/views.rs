//! Drawing: every view renders the model; none changes it.

use crate::app::{App, KernelRows, Overlay, View};
use crate::model::{ChainRow, Histogram, Model, Node, NodeState, RowKey};
use crate::source::ControlKind;
use ratatui::Frame;
use ratatui::layout::{Constraint, Direction, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Bar, BarChart, BarGroup, Block, Borders, Clear, Paragraph, Sparkline, Wrap,
};
use ringside_engine::abi::{CTX_FIELDS, RsCtx, helper_id, op};
use ringside_engine::decision::{Action, CallDetail, DecisionRecord, DecisionResult};
use ringside_engine::event::{CancelCause, LinkMode, Outcome};
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
pub fn draw(f: &mut Frame, app: &mut App) {
    let area = f.area();
    let rows = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(1),
    ])
    .split(area);
    draw_tabs(f, app, rows[0]);
    app.page = rows[1].height.saturating_sub(4).max(1) as usize;
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

pub fn errno_name(res: i32) -> String {
    let name = match -res {
        1 => "EPERM",
        2 => "ENOENT",
        4 => "EINTR",
        5 => "EIO",
        9 => "EBADF",
        11 => "EAGAIN",
        12 => "ENOMEM",
        14 => "EFAULT",
        16 => "EBUSY",
        22 => "EINVAL",
        28 => "ENOSPC",
        32 => "EPIPE",
        62 => "ETIME",
        104 => "ECONNRESET",
        110 => "ETIMEDOUT",
        125 => "ECANCELED",
        _ => return res.to_string(),
    };
    name.to_string()
}

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

// ---------------------------------------------------------------- Chains

struct RowView {
    prefix: String,
    prefix_style: Style,
    nodes: Vec<(String, NodeState, bool, Link)>,
    end: Option<(String, Style)>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Link {
    First,
    Kernel,
    Soft,
    Unlinked,
    Detached,
}

fn engine_row(c: &ChainRow) -> RowView {
    let mode = match c.driven_by {
        LinkMode::Engine => "eng",
        LinkMode::Kernel => "krn",
        LinkMode::KernelHard => "hrd",
        LinkMode::Auto => "aut",
    };
    let prog = c.program.clone().unwrap_or_else(|| "kernel link".into());
    let prefix = format!("e{} c{:<4} {mode} {:<12.12}", c.epoch, c.chain, prog);
    let kernel = matches!(c.driven_by, LinkMode::Kernel | LinkMode::KernelHard);
    let mut nodes = Vec::with_capacity(c.nodes.len());
    let mut prev_unlinked = false;
    for (i, n) in c.nodes.iter().enumerate() {
        let link = if i == 0 {
            Link::First
        } else if n.detached {
            Link::Detached
        } else if prev_unlinked {
            Link::Unlinked
        } else if kernel {
            Link::Kernel
        } else {
            Link::Soft
        };
        prev_unlinked = n.unlinked;
        nodes.push((node_label(n), n.state, n.inserted.is_some(), link));
    }
    let end = c.outcome.as_ref().map(|o| match o {
        Outcome::Completed => (
            format!(" ✓ {}", c.res.map_or(String::new(), fmt_res)),
            Style::new().fg(Color::Green),
        ),
        Outcome::Stopped { .. } => (
            // A program may stop a chain with an error result (a lookup
            // miss: -ENOENT); the errno name says enough on its own.
            match c.res {
                Some(r) if r < 0 => format!(" ■ {}", errno_name(r)),
                r => format!(" ■ stop {}", r.map_or(String::new(), fmt_res)),
            },
            Style::new().fg(Color::Green),
        ),
        Outcome::Failed { cause, .. } => {
            (format!(" ✗ {}", cause.name()), Style::new().fg(Color::Red))
        }
        Outcome::Cancelled => (" ✗ cancelled".into(), Style::new().fg(Color::Magenta)),
    });
    RowView {
        prefix,
        prefix_style: Style::new().fg(Color::Gray),
        nodes,
        end,
    }
}

fn kernel_row(state: &Model, key: RowKey) -> Option<RowView> {
    let g = &state.graph;
    let (members, label, hard) = match key {
        RowKey::KernelChain(c) => {
            let ch = g.chain(c)?;
            (ch.members.clone(), format!("k c{c:<5}"), ch.hard)
        }
        RowKey::KernelReq(r) => (vec![r], format!("k r{r:<5}"), false),
        RowKey::Engine { .. } => return None,
    };
    let ring = state.kernel_ring(key).map_or(0, |p| p.0);
    let ring_label = state
        .rings
        .iter()
        .find(|r| r.ctx == Some(ring))
        .map_or(format!("{:x}", ring & 0xffff), |r| {
            format!("{}:{}", r.pid, r.fd.map_or("?".into(), |f| f.to_string()))
        });
    let prefix = format!(
        "{label} {} {:<12.12}",
        if hard { "hrd" } else { "krn" },
        format!("ring {ring_label}")
    );
    let mut nodes = Vec::new();
    for (i, id) in members.iter().enumerate() {
        let Some(r) = g.request(*id) else {
            nodes.push(("?".to_string(), NodeState::Done, false, Link::Kernel));
            continue;
        };
        let op = ringside_probes::event::opcode_name(r.opcode).to_ascii_lowercase();
        let v = match r.res {
            Some(x) if x < 0 => errno_name(x),
            Some(x) => fmt_n(x as u64),
            None => String::new(),
        };
        let text = if v.is_empty() {
            op
        } else {
            format!("{op} {v}")
        };
        let link = if i == 0 { Link::First } else { Link::Kernel };
        nodes.push((text, crate::model::kernel_state(r.state), false, link));
    }
    Some(RowView {
        prefix,
        prefix_style: Style::new().fg(Color::LightBlue),
        nodes,
        end: None,
    })
}

fn row_line(rv: &RowView, width: usize, selected: bool, sel_node: Option<usize>) -> Line<'static> {
    let mut spans = Vec::new();
    let marker = if selected { "▶ " } else { "  " };
    spans.push(Span::styled(marker, Style::new().fg(Color::Yellow).bold()));
    let ps = if selected {
        rv.prefix_style
            .add_modifier(Modifier::BOLD)
            .fg(Color::White)
    } else {
        rv.prefix_style
    };
    spans.push(Span::styled(rv.prefix.clone(), ps));
    spans.push(Span::raw(" "));
    let mut used = 2 + rv.prefix.chars().count() + 1;
    // Pieces: (arrow, label) widths.
    let pieces: Vec<(String, String)> = rv
        .nodes
        .iter()
        .map(|(label, _, ins, link)| {
            let arrow = match link {
                Link::First => "",
                Link::Kernel => "═▶",
                Link::Soft => "─▶",
                Link::Unlinked => "╌▷",
                Link::Detached => " ┆ ",
            };
            let ins = if *ins { "+" } else { "" };
            (arrow.to_string(), format!("{ins}{label}"))
        })
        .collect();
    let piece_w = |i: usize| pieces[i].0.chars().count() + pieces[i].1.chars().count() + 2;
    let room = width.saturating_sub(used + 8);
    // Window of nodes that fits and includes the selected one.
    let mut start = 0;
    if let Some(s) = sel_node {
        let s = s.min(pieces.len().saturating_sub(1));
        let mut w = 0;
        let mut i = s + 1;
        while i > 0 {
            let pw = piece_w(i - 1);
            if w + pw > room {
                break;
            }
            w += pw;
            i -= 1;
        }
        start = i;
    }
    if start > 0 {
        spans.push(Span::styled(
            format!("…{start} "),
            Style::new().fg(Color::DarkGray),
        ));
        used += format!("…{start} ").chars().count();
    }
    let mut shown = start;
    for i in start..pieces.len() {
        let pw = piece_w(i);
        if used + pw > width.saturating_sub(6) && i + 1 < pieces.len() {
            break;
        }
        if used + pw > width {
            break;
        }
        let (arrow, label) = &pieces[i];
        let (_, st, ins, _) = &rv.nodes[i];
        if !arrow.is_empty() {
            spans.push(Span::styled(arrow.clone(), Style::new().fg(Color::Gray)));
        }
        let mut style = state_style(*st);
        if sel_node == Some(i) {
            style = style.add_modifier(Modifier::REVERSED | Modifier::BOLD);
        }
        if *ins {
            let plus_style = Style::new().fg(Color::LightYellow).bold();
            spans.push(Span::styled(" +", style.patch(plus_style)));
            spans.push(Span::styled(format!("{} ", &label[1..]), style));
        } else {
            spans.push(Span::styled(format!(" {label} "), style));
        }
        used += pw;
        shown = i + 1;
    }
    if shown < pieces.len() {
        spans.push(Span::styled(
            format!(" …+{}", pieces.len() - shown),
            Style::new().fg(Color::DarkGray),
        ));
    } else if let Some((t, s)) = &rv.end
        && used + t.chars().count() <= width
    {
        spans.push(Span::styled(t.clone(), *s));
    }
    Line::from(spans)
}

fn draw_chains(f: &mut Frame, app: &mut App, area: Rect) {
    let detail_h = if area.height >= 30 { 9 } else { 7 };
    let parts = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(detail_h),
    ])
    .split(area);
    f.render_widget(Paragraph::new(legend(parts[0].width)), parts[0]);
    let rows = app.chain_rows();
    app.chains_pos.fit(rows.len());
    let mut title = format!("Chains {}/{}", rows.len(), app.state.rows.len());
    if !app.filter.is_empty() {
        title.push_str(&format!(" · filter: {}", app.filter.describe()));
    }
    match app.kernel_rows {
        KernelRows::All => {}
        KernelRows::Chains => {
            if app.state.totals.probe_events > 0 {
                title.push_str(" · kernel: chains");
            }
        }
        KernelRows::Hidden => title.push_str(" · kernel: hidden"),
    }
    let b = block(&title);
    let inner = b.inner(parts[1]);
    f.render_widget(b, parts[1]);
    let h = inner.height as usize;
    let sel = app.chains_pos.sel;
    let first = if sel >= h { sel + 1 - h } else { 0 };
    let mut lines = Vec::with_capacity(h);
    let mut sel_view = None;
    for (i, key) in rows.iter().enumerate().skip(first).take(h) {
        let rv = match key {
            RowKey::Engine { epoch, chain } => {
                app.state.chains.get(&(*epoch, *chain)).map(engine_row)
            }
            k => kernel_row(&app.state, *k),
        };
        let Some(rv) = rv else { continue };
        let selected = i == sel;
        if selected {
            app.chains_node = app.chains_node.min(rv.nodes.len().saturating_sub(1));
        }
        lines.push(row_line(
            &rv,
            inner.width as usize,
            selected,
            selected.then_some(app.chains_node),
        ));
        if selected {
            sel_view = Some(*key);
        }
    }
    if rows.is_empty() {
        lines.push(Line::styled(
            if app.filter.is_empty() {
                "  no chains yet"
            } else {
                "  no chain matches the filter (Esc clears it)"
            },
            Style::new().fg(Color::DarkGray),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
    draw_node_detail(f, app, sel_view, parts[2]);
}

fn draw_node_detail(f: &mut Frame, app: &App, key: Option<RowKey>, area: Rect) {
    let b = block("Request");
    let inner = b.inner(area);
    f.render_widget(b, area);
    let mut lines: Vec<Line> = Vec::new();
    let dim = Style::new().fg(Color::Gray);
    match key {
        Some(RowKey::Engine { epoch, chain }) => {
            let Some(c) = app.state.chains.get(&(epoch, chain)) else {
                return;
            };
            let i = app.chains_node.min(c.nodes.len().saturating_sub(1));
            let Some(n) = c.nodes.get(i) else { return };
            let outcome = match &c.outcome {
                None => "running".to_string(),
                Some(o) => format!("{} res {}", crate::model::outcome_name(o), c.res.unwrap_or(0)),
            };
            lines.push(Line::from(vec![
                Span::styled(format!("chain {chain} "), Style::new().bold()),
                Span::styled(
                    format!(
                        "user_data {} · {:?} · {} decisions · {outcome}",
                        c.user_data, c.driven_by, c.decisions
                    ),
                    dim,
                ),
            ]));
            let s = &n.sqe;
            let mut state_span = vec![
                Span::styled(format!("step {i} "), Style::new().bold()),
                Span::styled(format!(" {} ", n.state.name()), state_style(n.state)),
            ];
            if let Some(d) = n.inserted {
                state_span.push(Span::styled(
                    format!(" +inserted by decision #{d}"),
                    Style::new().fg(Color::LightYellow),
                ));
            }
            if n.unlinked {
                state_span.push(Span::raw(" unlinked"));
            }
            state_span.push(Span::styled(format!(" attempt {}", n.attempt), dim));
            lines.push(Line::from(state_span));
            lines.push(Line::from(vec![
                Span::styled("SQE ", Style::new().fg(ACCENT)),
                Span::raw(format!(
                    "{} fd={} off={} len={} buf={} buf_off={} flags={:#x} user_data={}",
                    op::name(s.opcode),
                    s.fd,
                    s.off,
                    s.len,
                    if s.buf_index == 0xffff { "-".into() } else { s.buf_index.to_string() },
                    s.buf_off,
                    n.sqe_flags,
                    n.ring_user_data
                )),
            ]));
            let cqe = match n.res {
                Some(r) => format!(
                    "res={r}{} flags={:#x}",
                    if r < 0 { format!(" ({})", errno_name(r)) } else { String::new() },
                    n.cqe_flags
                ),
                None => "—".into(),
            };
            lines.push(Line::from(vec![Span::styled("CQE ", Style::new().fg(ACCENT)), Span::raw(cqe)]));
            let mut t = format!("created {}", fmt_t(c.created_ns));
            if let Some(x) = n.submitted_ns {
                let _ = write!(t, " · submitted {}", fmt_t(x));
            }
            if let Some(x) = n.latency_ns {
                let _ = write!(t, " · latency {}", fmt_dur(x));
            }
            if let Some(x) = n.finished_ns {
                let _ = write!(t, " · done {}", fmt_t(x));
            }
            lines.push(Line::from(vec![Span::styled("time ", Style::new().fg(ACCENT)), Span::styled(t, dim)]));
            if let Some(cause) = &n.cause {
                let (g, d) = crate::model::describe_cancel(cause, n.state == NodeState::Cancelled);
                lines.push(Line::from(vec![
                    Span::styled("why ", Style::new().fg(Color::Magenta)),
                    Span::raw(format!("{g}: {d}")),
                ]));
            }
        }
        Some(k) => {
            let g = &app.state.graph;
            let members = match k {
                RowKey::KernelChain(c) => g.chain(c).map(|c| c.members.clone()).unwrap_or_default(),
                RowKey::KernelReq(r) => vec![r],
                _ => vec![],
            };
            let i = app.chains_node.min(members.len().saturating_sub(1));
            if let Some(r) = members.get(i).and_then(|id| g.request(*id)) {
                lines.push(Line::from(vec![
                    Span::styled(format!("kernel request {} ", r.id), Style::new().bold()),
                    Span::styled(
                        format!(
                            " {} ",
                            crate::model::kernel_state(r.state).name()
                        ),
                        state_style(crate::model::kernel_state(r.state)),
                    ),
                    Span::styled(
                        format!(" pid {} tid {} ring {:#x} req {:#x}", r.tgid, r.tid, r.ring.0, r.req.0),
                        dim,
                    ),
                ]));
                lines.push(Line::from(vec![
                    Span::styled("SQE ", Style::new().fg(ACCENT)),
                    Span::raw(format!(
                        "{} flags={} user_data={}{}",
                        ringside_probes::event::opcode_name(r.opcode),
                        ringside_probes::event::sqe_flags::names(r.sqe_flags),
                        r.user_data,
                        if r.went_async { " · punted to io-wq" } else { "" }
                    )),
                ]));
                lines.push(Line::from(vec![
                    Span::styled("CQE ", Style::new().fg(ACCENT)),
                    Span::raw(match r.res {
                        Some(x) => format!(
                            "res={x}{} cflags={:#x} completions={}",
                            if x < 0 { format!(" ({})", errno_name(x)) } else { String::new() },
                            r.cflags,
                            r.completions
                        ),
                        None => "—".into(),
                    }),
                ]));
                let mut t = String::new();
                let base = app.state.timeline.probe_base.unwrap_or(0);
                if let Some(s) = r.submitted_ns {
                    let _ = write!(t, "submitted {}", fmt_t(s.saturating_sub(base)));
                }
                if let (Some(s), Some(e)) = (r.submitted_ns, r.finished_ns) {
                    let _ = write!(t, " · took {}", fmt_dur(e.saturating_sub(s)));
                }
                lines.push(Line::from(vec![Span::styled("time ", Style::new().fg(ACCENT)), Span::styled(t, dim)]));
                if let Some(by) = r.cancelled_by {
                    lines.push(Line::from(vec![
                        Span::styled("why ", Style::new().fg(Color::Magenta)),
                        Span::raw(format!("the kernel cancelled it when request {by} failed or came back short")),
                    ]));
                }
            }
        }
        None => lines.push(Line::styled(
            "↑↓ select a chain · ←→ select a request · Enter: its decisions · / filter · k kernel rows",
            dim,
        )),
    }
    f.render_widget(Paragraph::new(lines).wrap(Wrap { trim: false }), inner);
}

// ----------------------------------------------------------------- Rings

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

fn draw_rings(f: &mut Frame, app: &mut App, area: Rect) {
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

// --------------------------------------------------------- Cancellations

fn draw_cancels(f: &mut Frame, app: &mut App, area: Rect) {
    let cols = Layout::horizontal([
        Constraint::Length(30.min(area.width / 3).max(24)),
        Constraint::Min(20),
    ])
    .split(area);
    let total: u64 = app.state.cancels.values().map(|g| g.count).sum();
    let b = block(&format!("Causes ({total})"));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    app.cancel_group = app
        .cancel_group
        .min(app.state.cancels.len().saturating_sub(1));
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
    if !app.cancel_focus_entries {
        app.cancel_pos.follow = true;
    }
    app.cancel_pos.fit(g.recent.len());
    let sel = app.cancel_pos.sel;
    // two lines per entry
    let per = 2;
    let vis = (h / per).max(1);
    let first = if sel >= vis { sel + 1 - vis } else { 0 };
    let mut lines = Vec::new();
    for (i, e) in g.recent.iter().enumerate().skip(first).take(vis) {
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
        lines.push(Line::styled(
            format!("  {}", e.detail),
            Style::new().fg(Color::Gray),
        ));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

// ------------------------------------------------------------- Decisions

fn verdict_text(d: &DecisionRecord) -> (String, Color) {
    match &d.result {
        DecisionResult::Verdict { verdict } => {
            let s = format!("{verdict:?}").to_uppercase();
            let c = match s.as_str() {
                "NEXT" => Color::Green,
                "STOP" => Color::Cyan,
                _ => Color::Red,
            };
            (s, c)
        }
        DecisionResult::BadReturn { ret } => (format!("BAD {ret}"), Color::Red),
        DecisionResult::VmError { .. } => ("VMERR".into(), Color::Red),
        DecisionResult::Budget { .. } => ("BUDGET".into(), Color::Red),
    }
}

fn actions_text(d: &DecisionRecord) -> String {
    if d.actions.is_empty() {
        return "-".into();
    }
    let mut v: Vec<String> = Vec::new();
    for a in &d.actions {
        v.push(match a {
            Action::Submit { index, .. } => format!("submit@{index}"),
            Action::Drop { step } => format!("drop {step}"),
            Action::Unlink { step } => format!("unlink {step}"),
            Action::Emit { res, .. } => format!("emit {res}"),
            Action::SetRes { res } => format!("res={res}"),
        });
    }
    v.join(",")
}

fn draw_decisions(f: &mut Frame, app: &mut App, area: Rect) {
    let n = app.state.decisions.len();
    app.dec_pos.fit(n);
    let (list_area, detail_area) = if app.dec_zoom {
        (None, area)
    } else {
        let list_h = (area.height / 2).clamp(4, 14);
        let p = Layout::vertical([Constraint::Length(list_h), Constraint::Min(5)]).split(area);
        (Some(p[0]), p[1])
    };
    if let Some(la) = list_area {
        let b = block(&format!(
            "Decisions {} (total {})",
            n, app.state.totals.decisions
        ));
        let inner = b.inner(la);
        f.render_widget(b, la);
        let h = inner.height.saturating_sub(1) as usize;
        let wide = inner.width >= 90;
        let aw = if wide { 16 } else { 12 };
        let mut header = format!(
            "{:>8} {:>7} {:>3} {:<12} {:>11} {:<aw$} {:<5} {:>5}",
            "time", "chain", "stp", "program", "res/len", "actions", "ret", "insns"
        );
        if wide {
            header.push_str(&format!(" {:>7}", "took"));
        }
        let mut lines = vec![Line::styled(header, Style::new().fg(ACCENT).bold())];
        let sel = app.dec_pos.sel;
        let first = if sel >= h { sel + 1 - h } else { 0 };
        for (i, e) in app.state.decisions.iter().enumerate().skip(first).take(h) {
            let d = e.decision();
            let (v, vc) = verdict_text(d);
            let res = if d.ctx.res < 0 {
                errno_name(d.ctx.res)
            } else {
                d.ctx.res.to_string()
            };
            let short = d.ctx.res >= 0 && (d.ctx.res as u32) < d.ctx.len;
            let row = format!(
                "{:>8} {:>7} {:>3} {:<12.12} {:>11} {:<aw$.aw$} ",
                format!("{:.3}s", e.t_ns as f64 / 1e9),
                format!("e{}c{}", e.epoch, d.chain),
                d.step,
                d.prog_name,
                format!("{res}/{}", d.ctx.len),
                actions_text(d),
            );
            let mut tail = format!(" {:>5}", d.insns.map_or("-".into(), |i| i.to_string()));
            if wide {
                tail.push_str(&format!(" {:>7}", fmt_dur(d.duration_ns)));
            }
            let mut st = Style::new();
            if i == sel {
                st = st.bg(Color::White).fg(Color::Black);
            } else if short || d.ctx.res < 0 {
                st = st.fg(Color::Yellow);
            }
            lines.push(Line::from(vec![
                Span::styled(row, st),
                Span::styled(
                    format!("{v:<5.5}"),
                    if i == sel { st } else { Style::new().fg(vc) },
                ),
                Span::styled(tail, st),
            ]));
        }
        if n == 0 {
            lines.push(Line::styled(
                "no decisions yet",
                Style::new().fg(Color::DarkGray),
            ));
        }
        f.render_widget(Paragraph::new(lines), inner);
    }
    let Some(e) = app.state.decisions.get(app.dec_pos.sel).cloned() else {
        let b = block("Decision");
        f.render_widget(b, detail_area);
        return;
    };
    let d = e.decision().clone();
    let dis = app.disasm(e.epoch, d.prog);
    let path = app.decision_path(e.epoch, d.seq);
    let wide = detail_area.width >= 80;
    let cols = if wide {
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)])
            .split(detail_area)
    } else {
        Layout::vertical([Constraint::Percentage(40), Constraint::Percentage(60)])
            .split(detail_area)
    };
    // Disassembly with the helper calls this decision made.
    let b = block(&format!("{} · disassembly", d.prog_name));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    let mut lines = Vec::new();
    if let Some(dis) = &dis {
        for l in &dis.lines {
            let ran = path.as_ref().is_some_and(|p| p.executed.contains(&l.slot));
            let mut spans = vec![
                Span::styled(
                    format!("{}{:>4} ", if ran { "·" } else { " " }, l.slot),
                    Style::new().fg(if ran { Color::Green } else { Color::DarkGray }),
                ),
                Span::styled(
                    l.text.clone(),
                    if l.is_call {
                        Style::new().fg(Color::LightYellow).bold()
                    } else if ran {
                        Style::new()
                    } else {
                        Style::new().fg(Color::Gray)
                    },
                ),
            ];
            if let Some(n) = &l.note {
                spans.push(Span::styled(
                    format!("  ; {n}"),
                    Style::new().fg(Color::Cyan),
                ));
            }
            // What this call returned each time it ran in this decision.
            if let Some(ks) = path.as_ref().and_then(|p| p.calls_at.get(&l.slot)) {
                let rets: Vec<String> = ks
                    .iter()
                    .filter_map(|k| d.calls.get(*k))
                    .map(|c| match &c.detail {
                        CallDetail::MapLookup { value: None, .. } => "miss".to_string(),
                        CallDetail::MapLookup { value: Some(_), .. } => "hit".to_string(),
                        _ => c.ret.to_string(),
                    })
                    .collect();
                spans.push(Span::styled(
                    format!(" => {}", rets.join(", ")),
                    Style::new().fg(Color::LightYellow),
                ));
            }
            lines.push(Line::from(spans));
        }
    }
    let scroll = app.dec_scroll.min(lines.len().saturating_sub(1) as u16);
    f.render_widget(Paragraph::new(lines).scroll((scroll, 0)), inner);
    // Context, calls, map writes, actions.
    let (v, vc) = verdict_text(&d);
    let b = block(&format!(
        "decision #{} · e{} chain {} step {}",
        d.seq, e.epoch, d.chain, d.step
    ));
    let inner = b.inner(cols[1]);
    f.render_widget(b, cols[1]);
    let lines = decision_info(app, &d, e.epoch, v, vc);
    f.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: false })
            .scroll((app.dec_scroll, 0)),
        inner,
    );
}

fn decision_info(
    app: &App,
    d: &DecisionRecord,
    epoch: u32,
    v: String,
    vc: Color,
) -> Vec<Line<'static>> {
    let head = Style::new().fg(ACCENT).bold();
    let dim = Style::new().fg(Color::Gray);
    let mut lines = Vec::new();
    let mut l = vec![
        Span::styled("returned ", dim),
        Span::styled(v, Style::new().fg(vc).bold()),
        Span::styled(
            format!(
                " · {} insns · {} · {:?}",
                d.insns.map_or("?".into(), |i| i.to_string()),
                fmt_dur(d.duration_ns),
                d.exec
            ),
            dim,
        ),
    ];
    if let DecisionResult::VmError { message } = &d.result {
        l.push(Span::styled(
            format!(" {message}"),
            Style::new().fg(Color::Red),
        ));
    }
    if let DecisionResult::Budget { violation } = &d.result {
        l.push(Span::styled(
            format!(" {violation}"),
            Style::new().fg(Color::Red),
        ));
    }
    lines.push(Line::from(l));
    lines.push(Line::styled("context (struct rs_ctx)", head));
    for (name, off, size) in CTX_FIELDS {
        if name == "_pad" {
            continue;
        }
        lines.push(Line::from(vec![
            Span::styled(format!("  +{off:<2} {name:<10}"), dim),
            Span::raw(ctx_field(&d.ctx, name, size)),
        ]));
    }
    lines.push(Line::styled(
        format!("helper calls ({})", d.calls.len()),
        head,
    ));
    for c in &d.calls {
        let name = helper_id::name(c.helper).unwrap_or("?");
        let detail = call_text(app, epoch, d, c);
        let mut spans = vec![
            Span::styled(format!("  {name}"), Style::new().fg(Color::LightYellow)),
            Span::raw(format!(" {detail}")),
            Span::styled(format!(" => {}", c.ret), dim),
        ];
        if let Some(e) = &c.error {
            spans.push(Span::styled(format!(" ({e})"), Style::new().fg(Color::Red)));
        }
        lines.push(Line::from(spans));
    }
    if !d.map_writes.is_empty() {
        lines.push(Line::styled("map writes (before -> after)", head));
        for w in &d.map_writes {
            lines.push(Line::from(vec![
                Span::styled(
                    format!(
                        "  {}[{}] ",
                        map_name(app, epoch, d.prog, w.map),
                        value_text(&w.key)
                    ),
                    dim,
                ),
                Span::styled(
                    w.before.as_ref().map_or("absent".into(), |v| value_text(v)),
                    Style::new().fg(Color::Red),
                ),
                Span::raw(" -> "),
                Span::styled(
                    w.after.as_ref().map_or("deleted".into(), |v| value_text(v)),
                    Style::new().fg(Color::Green),
                ),
            ]));
        }
    }
    lines.push(Line::styled(format!("actions ({})", d.actions.len()), head));
    for a in &d.actions {
        lines.push(Line::raw(format!(
            "  {}",
            match a {
                Action::Submit {
                    index,
                    place,
                    sqe,
                    attempt,
                } => format!(
                    "insert step {index} ({place:?}): {} len={} off={} attempt {attempt}",
                    op::name(sqe.opcode),
                    sqe.len,
                    sqe.off
                ),
                Action::Drop { step } => format!("drop step {step}"),
                Action::Unlink { step } => format!("unlink step {step}"),
                Action::Emit {
                    user_data,
                    res,
                    flags,
                } => format!("emit user_data={user_data} res={res} flags={flags}"),
                Action::SetRes { res } => format!("final res = {res}"),
            }
        )));
    }
    lines
}

/// What a helper call saw and did, in words.
fn call_text(
    app: &App,
    epoch: u32,
    d: &DecisionRecord,
    c: &ringside_engine::decision::HelperCall,
) -> String {
    match &c.detail {
        CallDetail::None => String::new(),
        CallDetail::MapLookup { map, key, value } => format!(
            "{}[{}] -> {}",
            map_name(app, epoch, d.prog, *map),
            value_text(key),
            value.as_ref().map_or("miss".into(), |v| value_text(v))
        ),
        CallDetail::MapUpdate {
            map, key, value, ..
        } => {
            format!(
                "{}[{}] = {}",
                map_name(app, epoch, d.prog, *map),
                value_text(key),
                value_text(value)
            )
        }
        CallDetail::MapDelete { map, key } => {
            format!(
                "{}[{}]",
                map_name(app, epoch, d.prog, *map),
                value_text(key)
            )
        }
        CallDetail::Ktime { ns } => format!("{ns}"),
        CallDetail::Printk { text } => format!("\"{text}\""),
        CallDetail::Submit { sqe, place } => format!(
            "{} fd={} off={} len={} buf_off={} where={}",
            op::name(sqe.opcode),
            sqe.fd,
            sqe.off,
            sqe.len,
            sqe.buf_off,
            match place {
                0 => "after_current",
                1 => "at_end",
                2 => "detached",
                _ => "?",
            }
        ),
        CallDetail::Drop { step } => format!("step {step}"),
        CallDetail::Unlink { step } => format!("step {step}"),
        CallDetail::Emit {
            user_data,
            res,
            flags,
        } => {
            format!("user_data={user_data} res={res} flags={flags}")
        }
        CallDetail::ReadBuf {
            buf_index,
            off,
            data,
        } => {
            format!(
                "buf {buf_index} +{off}: {} bytes {}",
                data.len(),
                hex(&data[..data.len().min(16)])
            )
        }
        CallDetail::SetRes { res } => format!("{res}"),
    }
}

fn map_name(app: &App, epoch: u32, prog: u32, local: u32) -> String {
    app.state
        .programs
        .get(&(epoch, prog))
        .and_then(|p| p.maps.get(local as usize))
        .map_or(format!("map{local}"), |m| m.name.clone())
}

/// Bytes as hex.
pub fn hex(b: &[u8]) -> String {
    let mut s = String::with_capacity(b.len() * 2);
    for x in b {
        let _ = write!(s, "{x:02x}");
    }
    s
}

/// A map value: hex, plus little-endian integers when it is 4 or 8 bytes (or a few u32/u64s).
pub fn value_text(b: &[u8]) -> String {
    match b.len() {
        4 => format!("{}", u32::from_le_bytes(b.try_into().expect("4"))),
        8 => format!("{}", u64::from_le_bytes(b.try_into().expect("8"))),
        n if n % 4 == 0 && n <= 32 => b
            .chunks(4)
            .map(|c| u32::from_le_bytes(c.try_into().expect("4")).to_string())
            .collect::<Vec<_>>()
            .join(","),
        _ => hex(b),
    }
}

fn ctx_field(ctx: &RsCtx, name: &str, _size: usize) -> String {
    match name {
        "user_data" if ctx.user_data > u32::MAX as u64 => format!("{:#x}", ctx.user_data),
        "user_data" => ctx.user_data.to_string(),
        "res" => {
            if ctx.res < 0 {
                format!("{} ({})", ctx.res, errno_name(ctx.res))
            } else if (ctx.res as u32) < ctx.len {
                format!("{} (short: {} < len)", ctx.res, ctx.res)
            } else {
                ctx.res.to_string()
            }
        }
        "cqe_flags" => format!("{:#x}", ctx.cqe_flags),
        "chain_id" => ctx.chain_id.to_string(),
        "step" => ctx.step.to_string(),
        "nsteps" => ctx.nsteps.to_string(),
        "opcode" => format!("{} ({})", ctx.opcode, op::name(ctx.opcode)),
        "attempt" => ctx.attempt.to_string(),
        "ctx_flags" => format!(
            "{:#x}{}",
            ctx.ctx_flags,
            if ctx.ctx_flags & 1 != 0 {
                " (LAST_STEP)"
            } else {
                ""
            }
        ),
        "fd" => format!("{} (registered index)", ctx.fd),
        "off" => ctx.off.to_string(),
        "len" => ctx.len.to_string(),
        "buf_index" => {
            if ctx.buf_index == 0xffff {
                "0xffff (none)".into()
            } else {
                ctx.buf_index.to_string()
            }
        }
        "buf_off" => ctx.buf_off.to_string(),
        _ => String::new(),
    }
}

// ------------------------------------------------------------------ Maps

fn draw_maps(f: &mut Frame, app: &mut App, area: Rect) {
    let cols = Layout::horizontal([
        Constraint::Length(34.min(area.width / 2)),
        Constraint::Min(20),
    ])
    .split(area);
    let b = block(&format!("Maps ({})", app.state.maps.len()));
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    app.map_sel = app.map_sel.min(app.state.maps.len().saturating_sub(1));
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
    app.map_scroll = app.map_scroll.min(m.entries.len().saturating_sub(h));
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

// ----------------------------------------------------------------- Stats

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

fn draw_stats(f: &mut Frame, app: &mut App, area: Rect) {
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
fn fmt_percent(p: f64) -> String {
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

// ----------------------------------------------------------------- Debug

fn draw_debug(f: &mut Frame, app: &mut App, area: Rect) {
    let rows = Layout::vertical([Constraint::Length(2), Constraint::Min(4)]).split(area);
    let dim = Style::new().fg(Color::Gray);
    let bps = if app.breakpoints.is_empty() {
        "none".to_string()
    } else {
        app.breakpoints
            .iter()
            .map(|b| b.describe())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut head = Vec::new();
    match (&app.state.paused, &app.trace) {
        (Some(p), _) => head.push(Line::from(vec![
            Span::styled(" STOPPED ", Style::new().bg(Color::Yellow).fg(Color::Black).bold()),
            Span::raw(format!(
                " {} at decision #{}{} · {}",
                p.reason,
                p.decision.map_or("?".into(), |d| d.to_string()),
                app.trace
                    .as_ref()
                    .and_then(|t| app.state.find_decision(t.epoch, t.decision))
                    .map(|i| {
                        let d = app.state.decisions[i].decision();
                        format!(
                            " (chain {} step {}, res {} of {})",
                            d.chain,
                            d.step,
                            if d.ctx.res < 0 { errno_name(d.ctx.res) } else { d.ctx.res.to_string() },
                            d.ctx.len
                        )
                    })
                    .unwrap_or_default(),
                if app.control_kind() == ControlKind::Replay {
                    "n next decision, N previous, , . one event"
                } else {
                    "actions held: c continue, n next"
                }
            )),
        ])),
        (None, Some(t)) => head.push(Line::from(vec![
            Span::styled(" TRACE ", Style::new().bg(Color::Blue).fg(Color::White).bold()),
            Span::raw(format!(" decision #{} (e{}) re-executed from its event; the engine runs on", t.decision, t.epoch)),
        ])),
        (None, None) => head.push(Line::styled(
            " running · p pauses at the next decision · b sets breakpoints · t in Decisions traces a past one",
            dim,
        )),
    }
    head.push(Line::styled(format!(" breakpoints: {bps}"), dim));
    f.render_widget(Paragraph::new(head).wrap(Wrap { trim: true }), rows[0]);
    let Some(t) = &app.trace else {
        let msg = app
            .trace_error
            .clone()
            .unwrap_or_else(|| "no decision to step through yet".into());
        f.render_widget(
            Paragraph::new(Line::styled(msg, Style::new().fg(Color::DarkGray)))
                .block(block("Step")),
            rows[1],
        );
        return;
    };
    let cols =
        Layout::horizontal([Constraint::Percentage(52), Constraint::Percentage(48)]).split(rows[1]);
    let step = t.steps.get(t.pos);
    let pc = step.map_or(0, |s| s.pc);
    let cur_line = t.disasm.line_of(pc);
    let title = format!(
        "{} · insn {}/{} · pc {}",
        t.program,
        if t.steps.is_empty() { 0 } else { t.pos + 1 },
        t.steps.len(),
        pc
    );
    let b = block(&title);
    let inner = b.inner(cols[0]);
    f.render_widget(b, cols[0]);
    let h = inner.height as usize;
    let first = cur_line.saturating_sub(h / 2);
    let executed: std::collections::HashSet<usize> =
        t.steps.iter().take(t.pos + 1).map(|s| s.pc).collect();
    let mut lines = Vec::new();
    for l in t.disasm.lines.iter().skip(first).take(h) {
        let is_cur =
            t.disasm.line_of(l.slot) == cur_line && l.slot == t.disasm.lines[cur_line].slot;
        let mark = if is_cur {
            "▶"
        } else if executed.contains(&l.slot) {
            "·"
        } else {
            " "
        };
        let mut st = if l.is_call {
            Style::new().fg(Color::LightYellow)
        } else {
            Style::new()
        };
        if is_cur {
            st = Style::new().bg(Color::Yellow).fg(Color::Black).bold();
        }
        let mut spans = vec![
            Span::styled(
                format!("{mark}{:>4} ", l.slot),
                if is_cur {
                    st
                } else {
                    Style::new().fg(Color::DarkGray)
                },
            ),
            Span::styled(l.text.clone(), st),
        ];
        if let Some(n) = &l.note {
            spans.push(Span::styled(
                format!(" ; {n}"),
                if is_cur {
                    st
                } else {
                    Style::new().fg(Color::Cyan)
                },
            ));
        }
        lines.push(Line::from(spans));
    }
    f.render_widget(Paragraph::new(lines), inner);

    let b = block(&format!("after pc {pc}: registers · memory · stack"));
    let inner = b.inner(cols[1]);
    f.render_widget(b, cols[1]);
    let mut lines = Vec::new();
    if let Some(s) = step {
        let prev = if t.pos > 0 {
            t.steps.get(t.pos - 1).map(|p| p.regs)
        } else {
            None
        };
        let ptrs = PtrNames::of(t);
        for r in 0..11 {
            let v = s.regs[r];
            let changed =
                prev.is_some_and(|p| p[r] != v) || (prev.is_none() && v != 0 && r != 1 && r != 10);
            let st = if changed {
                Style::new().fg(Color::LightYellow).bold()
            } else {
                Style::new()
            };
            let text = match ptrs.name(v) {
                Some(n) => format!("{n:<18} (pointer)"),
                None => {
                    let extra = if (v as i64) < 0 && (v as i64) > -4096 {
                        format!(" ({})", v as i64)
                    } else if v < 1 << 32 {
                        format!(" ({v})")
                    } else {
                        String::new()
                    };
                    format!("{v:#018x}{extra}")
                }
            };
            lines.push(Line::from(vec![
                Span::styled(format!("r{r:<2} "), Style::new().fg(ACCENT)),
                Span::styled(text, st),
            ]));
        }
        if let Some(m) = &s.mem {
            lines.push(Line::styled(
                format!(
                    "{} {} B {} {}{:+} = {}",
                    if m.write { "store" } else { "load" },
                    m.len,
                    if m.write { "to" } else { "from" },
                    m.region,
                    m.offset,
                    hex(&m.bytes)
                ),
                Style::new().fg(Color::LightMagenta),
            ));
        }
        if let Some(hid) = s.helper {
            lines.push(Line::styled(
                format!(
                    "called {} -> r0 = {}",
                    helper_id::name(hid).unwrap_or("?"),
                    s.regs[0] as i64
                ),
                Style::new().fg(Color::LightYellow),
            ));
            // The k-th helper step is the k-th call of the decision's record.
            let k = t.steps[..t.pos]
                .iter()
                .filter(|x| x.helper.is_some())
                .count();
            if let Some(i) = app.state.find_decision(t.epoch, t.decision)
                && let Some(c) = app.state.decisions[i].decision().calls.get(k)
            {
                let d = app.state.decisions[i].decision();
                lines.push(Line::styled(
                    format!("  {}", call_text(app, t.epoch, d, c)),
                    Style::new().fg(Color::Yellow),
                ));
            }
        }
        let (stack, touched) = t.stack();
        if !touched.is_empty() {
            lines.push(Line::styled(
                "stack (r10-relative)",
                Style::new().fg(ACCENT),
            ));
            for off in touched.iter().rev() {
                let at = (512 + off) as usize;
                let bytes = &stack[at..(at + 8).min(512)];
                lines.push(Line::raw(format!("  r10{off:<+5} {}", hex(bytes))));
            }
        }
        if t.pos + 1 == t.steps.len() {
            lines.push(Line::styled(
                format!("exit: r0 = {}", t.ret.map_or("?".into(), |r| r.to_string())),
                Style::new().fg(Color::Green).bold(),
            ));
        }
    }
    if let Some(p) = &t.problem {
        lines.push(Line::styled(p.clone(), Style::new().fg(Color::Red)));
    }
    f.render_widget(Paragraph::new(lines), inner);
}

/// Names for the addresses a trace shows (they differ run to run): the
/// context, the frame pointer, map values a lookup returned.
struct PtrNames {
    ctx: u64,
    fp: u64,
    values: Vec<u64>,
}

impl PtrNames {
    fn of(t: &crate::stepper::Trace) -> PtrNames {
        // r1 holds the context until the program overwrites it; the first
        // step's r1 is it unless the first instruction wrote r1.
        let first = t.steps.first();
        let ctx = first.map_or(0, |s| s.regs[1]);
        let fp = first.map_or(0, |s| s.regs[10]);
        let values = t
            .steps
            .iter()
            .filter(|s| s.helper == Some(helper_id::MAP_LOOKUP_ELEM) && s.regs[0] != 0)
            .map(|s| s.regs[0])
            .collect();
        PtrNames { ctx, fp, values }
    }

    fn name(&self, v: u64) -> Option<String> {
        if self.ctx != 0 && v >= self.ctx && v < self.ctx + 64 {
            return Some(format!("ctx+{}", v - self.ctx));
        }
        if self.fp != 0 && v <= self.fp && v + 512 >= self.fp {
            return Some(if v == self.fp {
                "fp".to_string()
            } else {
                format!("fp-{}", self.fp - v)
            });
        }
        for (i, &b) in self.values.iter().enumerate() {
            if v >= b && v < b + 4096 {
                return Some(format!("map value {}+{}", i + 1, v - b));
            }
        }
        None
    }
}

// --------------------------------------------------------------- Overlays

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

/// Every key, as the help overlay lists them.
pub const HELP: &[(&str, &str)] = &[
    ("views", ""),
    (
        "1-7, Tab, S-Tab",
        "Rings Chains Cancels Decisions Maps Stats Debug",
    ),
    ("↑↓ PgUp PgDn Home End", "move; End follows the newest"),
    ("←→", "Chains: pick a request · Cancels: groups/entries"),
    (
        "Enter",
        "its decisions (Chains), zoom (Decisions), go (Cancels)",
    ),
    ("J K", "scroll a detail pane"),
    (
        "/",
        "filter chains: ring:N chain:N state:S NAME; Esc clears",
    ),
    ("k", "Chains: kernel rows: all / chains / hidden"),
    ("debugger", ""),
    (
        "p, Space",
        "pause at the next decision / continue; replay: play",
    ),
    ("c", "continue"),
    ("n", "step over the decision: apply it, stop at the next"),
    ("b", "breakpoints: program, chain, res<len, res<0, opcode"),
    ("t", "Decisions: step through the selected decision"),
    ("s S / → ←", "Debug: one instruction forward / back"),
    ("r, g G", "Debug: run to the next helper call; first/last"),
    ("replay", ""),
    (", .", "one event back / forward"),
    ("N", "back to the previous decision"),
    ("< >", "slower / faster"),
    (":seek N | :seek 1.5s", "go to an event or a time"),
    ("other", ""),
    (":", "break, delete N, clear, seek, filter, trace N, quit"),
    ("?", "this help"),
    ("q, Ctrl-C", "quit (the terminal is restored)"),
];

fn draw_help(f: &mut Frame, app: &App, area: Rect) {
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

fn draw_breakpoints(f: &mut Frame, app: &App, area: Rect) {
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

/// Plain text of a cancellation cause, for other modules.
pub fn cause_text(c: &CancelCause) -> String {
    crate::model::describe_cancel(c, true).1
}

/// Lines of an area direction helper (kept for symmetry with ratatui APIs).
pub fn split(area: Rect, dir: Direction, n: u16) -> Vec<Rect> {
    Layout::default()
        .direction(dir)
        .constraints((0..n).map(|_| Constraint::Ratio(1, n as u32)))
        .split(area)
        .to_vec()
}
