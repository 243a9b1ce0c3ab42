//! The Chains view: one row per chain (engine chains and kernel link
//! chains), each request a coloured node.

use super::*;

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

pub(super) fn draw_chains(f: &mut Frame, app: &App, area: Rect) {
    let detail_h = if area.height >= 30 { 9 } else { 7 };
    let parts = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(detail_h),
    ])
    .split(area);
    f.render_widget(Paragraph::new(legend(parts[0].width)), parts[0]);
    let rows = &app.shown_rows;
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
