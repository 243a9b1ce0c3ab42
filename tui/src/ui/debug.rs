//! The Debug view: a decision stepped instruction by instruction.

use super::*;

pub(super) fn draw_debug(f: &mut Frame, app: &App, area: Rect) {
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
                } else if app
                    .state
                    .ring_info
                    .get(&p.epoch)
                    .is_some_and(|r| r.backend == ringside_engine::Backend::Kernel)
                {
                    // The kernel applied the decision before the loop
                    // returned (docs/kernel-backend.md): only what comes
                    // after it waits.
                    "applied in the kernel; nothing more is decided until c continue, n next"
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
        let msg = app.trace_error.as_ref().map_or_else(
            || "no decision to step through yet".into(),
            ToString::to_string,
        );
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
