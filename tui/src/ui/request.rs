//! The Request pane under the Chains view: the selected request's SQE,
//! CQE, timings and, when it was cancelled or dropped, why.

use super::*;

pub(super) fn draw_node_detail(f: &mut Frame, app: &App, key: Option<RowKey>, area: Rect) {
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
            if let Some(why) = app.state.engine_why(epoch, chain, i as u32) {
                lines.push(Line::from(vec![
                    Span::styled("why ", Style::new().fg(Color::Magenta)),
                    Span::raw(why),
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
                let base = app.state.clock.probe_base().unwrap_or(0);
                if let Some(s) = r.submitted_ns {
                    let _ = write!(t, "submitted {}", fmt_t(s.saturating_sub(base)));
                }
                if let (Some(s), Some(e)) = (r.submitted_ns, r.finished_ns) {
                    let _ = write!(t, " · took {}", fmt_dur(e.saturating_sub(s)));
                }
                lines.push(Line::from(vec![Span::styled("time ", Style::new().fg(ACCENT)), Span::styled(t, dim)]));
                if r.state == ringside_probes::graph::ReqState::Cancelled {
                    let why = app.state.kernel_why(r.cancelled_by, g.cancel_cause(r.id));
                    lines.push(Line::from(vec![
                        Span::styled("why ", Style::new().fg(Color::Magenta)),
                        Span::raw(why),
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
