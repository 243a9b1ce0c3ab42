//! The Decisions view: the log of program runs and the selected one's
//! disassembly, inputs, helper calls and actions.

use super::*;

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

pub(super) fn draw_decisions(f: &mut Frame, app: &App, area: Rect) {
    let n = app.state.decisions.len();
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
    let (dis, path) = (&app.shown_decision.disasm, &app.shown_decision.path);
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
        if d.detail == ringside_engine::decision::Detail::Inputs {
            format!(
                "helper calls ({}, inputs only: the decision did not run again here)",
                d.calls.len()
            )
        } else {
            format!("helper calls ({})", d.calls.len())
        },
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
pub(super) fn call_text(
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
