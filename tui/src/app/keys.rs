//! Keys: what each does in each view, and the table the help lists.

use super::*;

impl App {
    /// Handle a terminal event. Returns true when the app should quit.
    pub fn handle_event(&mut self, ev: CEvent) -> bool {
        if let CEvent::Key(k) = ev
            && k.kind != KeyEventKind::Release
        {
            self.handle_key(k);
        }
        self.quit
    }

    /// Handle a key.
    pub fn handle_key(&mut self, k: KeyEvent) {
        if k.modifiers.contains(KeyModifiers::CONTROL)
            && matches!(k.code, KeyCode::Char('c') | KeyCode::Char('q'))
        {
            self.quit = true;
            return;
        }
        self.message = None;
        if let Overlay::Command(text) | Overlay::Filter(text) = self.overlay.clone() {
            let is_cmd = matches!(self.overlay, Overlay::Command(_));
            let mut text = text;
            match k.code {
                KeyCode::Esc => {
                    self.overlay = Overlay::None;
                    return;
                }
                KeyCode::Enter => {
                    self.overlay = Overlay::None;
                    if is_cmd {
                        self.command(&text);
                    } else {
                        match ChainFilter::parse(&text) {
                            Ok(f) => {
                                self.filter = f;
                                self.chains_pos = ListPos::default();
                            }
                            Err(e) => self.message = Some(e.to_string()),
                        }
                    }
                    return;
                }
                KeyCode::Backspace => {
                    text.pop();
                }
                KeyCode::Char(c) => text.push(c),
                _ => {}
            }
            self.overlay = if is_cmd {
                Overlay::Command(text)
            } else {
                Overlay::Filter(text)
            };
            return;
        }
        match &self.overlay {
            Overlay::Command(_) | Overlay::Filter(_) => {}
            Overlay::Help => {
                self.overlay = Overlay::None;
                if !matches!(k.code, KeyCode::Char('q')) {
                    return;
                }
            }
            Overlay::Breakpoints => {
                self.breakpoint_key(k);
                return;
            }
            Overlay::None => {}
        }
        match k.code {
            KeyCode::Char('q') => self.quit = true,
            KeyCode::Char('?') => self.overlay = Overlay::Help,
            KeyCode::Char(':') => self.overlay = Overlay::Command(String::new()),
            KeyCode::Char('/') => {
                self.overlay = Overlay::Filter(self.filter.describe());
                self.view = View::Chains;
            }
            KeyCode::Char('b') => self.overlay = Overlay::Breakpoints,
            KeyCode::Tab => self.view = next_view(self.view, 1),
            KeyCode::BackTab => self.view = next_view(self.view, -1),
            KeyCode::Char(c @ '1'..='7') => {
                self.view = View::ALL[(c as u8 - b'1') as usize];
            }
            KeyCode::Char('p') | KeyCode::Char(' ') => self.pause_toggle(),
            KeyCode::Char('c') => {
                self.send(Ctl::Debug(Command::Continue));
                self.state.paused = None;
            }
            KeyCode::Char('n') => {
                // Step over the whole decision: apply it, stop at the next.
                self.send(Ctl::Debug(Command::Step));
            }
            KeyCode::Char('N') => self.send(Ctl::PrevDecision),
            KeyCode::Char('.') => self.send(Ctl::StepItem),
            KeyCode::Char(',') => self.send(Ctl::StepBack),
            KeyCode::Char('>') => self.send(Ctl::Speed(1)),
            KeyCode::Char('<') => self.send(Ctl::Speed(-1)),
            KeyCode::Char('k') if self.view == View::Chains => {
                self.kernel_rows = match self.kernel_rows {
                    KernelRows::All => KernelRows::Chains,
                    KernelRows::Chains => KernelRows::Hidden,
                    KernelRows::Hidden => KernelRows::All,
                };
                self.message = Some(format!(
                    "kernel rows: {}",
                    match self.kernel_rows {
                        KernelRows::All => "chains and single requests",
                        KernelRows::Chains => "link chains only",
                        KernelRows::Hidden => "hidden",
                    }
                ));
            }
            KeyCode::Char('t') if self.view == View::Decisions => {
                if let Some(d) = self.selected_decision() {
                    let (e, s) = (d.epoch, d.decision().seq);
                    self.open_trace(e, s);
                    self.view = View::Debug;
                }
            }
            KeyCode::Enter => self.enter(),
            KeyCode::Esc => {
                self.dec_zoom = false;
                if !self.filter.is_empty() {
                    self.filter = ChainFilter::default();
                }
            }
            _ => self.view_key(k),
        }
    }

    fn pause_toggle(&mut self) {
        let paused =
            self.state.paused.is_some() || self.replay.as_ref().is_some_and(|r| !r.playing);
        if paused {
            self.send(Ctl::Debug(Command::Continue));
            self.state.paused = None;
        } else {
            self.send(Ctl::Debug(Command::Pause));
            if self.message.is_none() && self.control_kind() == ControlKind::Engine {
                self.message = Some("pausing at the next decision".into());
            }
        }
    }

    fn enter(&mut self) {
        match self.view {
            View::Decisions => {
                self.dec_zoom = !self.dec_zoom;
                self.dec_scroll = 0;
            }
            View::Cancels => {
                if !self.cancel_focus_entries {
                    self.cancel_focus_entries = true;
                    return;
                }
                // Jump to the chain of the selected cancellation.
                let row = self
                    .state
                    .cancels
                    .values()
                    .nth(self.cancel_group)
                    .and_then(|g| g.recent.get(self.cancel_pos.sel))
                    .and_then(|e| e.row);
                if let Some(row) = row {
                    self.filter = ChainFilter::default();
                    let rows = self.chain_rows();
                    if let Some(i) = rows.iter().position(|r| *r == row) {
                        self.chains_pos = ListPos {
                            sel: i,
                            follow: false,
                        };
                        self.chains_node = 0;
                        self.view = View::Chains;
                    } else {
                        self.message = Some("that chain is no longer in the history".into());
                    }
                }
            }
            View::Chains => {
                // Show the decisions about the selected chain.
                let rows = self.chain_rows();
                if let Some(RowKey::Engine { epoch, chain }) =
                    rows.get(self.chains_pos.sel).copied()
                {
                    let node = self.chains_node as u32;
                    if let Some(i) = self.state.decisions.iter().rposition(|d| {
                        d.epoch == epoch && d.decision().chain == chain && d.decision().step <= node
                    }) {
                        self.dec_pos = ListPos {
                            sel: i,
                            follow: false,
                        };
                        self.view = View::Decisions;
                    } else {
                        self.message = Some("no decision about this chain in the history".into());
                    }
                }
            }
            _ => {}
        }
    }

    fn view_key(&mut self, k: KeyEvent) {
        let page = self.page.max(1);
        let (up, down, n) = match k.code {
            KeyCode::Up => (true, false, 1),
            KeyCode::Down => (false, true, 1),
            KeyCode::PageUp => (true, false, page),
            KeyCode::PageDown => (false, true, page),
            KeyCode::Home => (true, false, usize::MAX / 2),
            KeyCode::End | KeyCode::Char('G') => (false, true, usize::MAX / 2),
            _ => (false, false, 0),
        };
        match self.view {
            View::Chains => {
                let len = self.chain_rows().len();
                if up {
                    self.chains_pos.up(n);
                } else if down {
                    self.chains_pos.down(n, len);
                }
                match k.code {
                    KeyCode::Left => self.chains_node = self.chains_node.saturating_sub(1),
                    KeyCode::Right => self.chains_node += 1,
                    _ => {}
                }
            }
            View::Decisions => {
                let len = self.state.decisions.len();
                match k.code {
                    KeyCode::Char('J') => self.dec_scroll = self.dec_scroll.saturating_add(1),
                    KeyCode::Char('K') => self.dec_scroll = self.dec_scroll.saturating_sub(1),
                    _ => {
                        if up {
                            self.dec_pos.up(n);
                            self.dec_scroll = 0;
                        } else if down {
                            self.dec_pos.down(n, len);
                            self.dec_scroll = 0;
                        }
                    }
                }
            }
            View::Cancels => {
                match k.code {
                    KeyCode::Left => self.cancel_focus_entries = false,
                    KeyCode::Right => self.cancel_focus_entries = true,
                    _ => {}
                }
                if self.cancel_focus_entries {
                    let len = self
                        .state
                        .cancels
                        .values()
                        .nth(self.cancel_group)
                        .map_or(0, |g| g.recent.len());
                    if up {
                        self.cancel_pos.up(n);
                    } else if down {
                        self.cancel_pos.down(n, len);
                    }
                } else if up {
                    self.cancel_group = self.cancel_group.saturating_sub(n);
                    self.cancel_pos = ListPos::default();
                } else if down {
                    self.cancel_group =
                        (self.cancel_group + n).min(self.state.cancels.len().saturating_sub(1));
                    self.cancel_pos = ListPos::default();
                }
            }
            View::Maps => {
                if up {
                    self.map_sel = self.map_sel.saturating_sub(n);
                    self.map_scroll = 0;
                } else if down {
                    self.map_sel = (self.map_sel + n).min(self.state.maps.len().saturating_sub(1));
                    self.map_scroll = 0;
                }
                match k.code {
                    KeyCode::Char('J') => self.map_scroll += 1,
                    KeyCode::Char('K') => self.map_scroll = self.map_scroll.saturating_sub(1),
                    _ => {}
                }
            }
            View::Debug => {
                let Some(t) = &mut self.trace else { return };
                let last = t.steps.len().saturating_sub(1);
                match k.code {
                    KeyCode::Char('s') | KeyCode::Right | KeyCode::Down => {
                        t.pos = (t.pos + 1).min(last)
                    }
                    KeyCode::Char('S') | KeyCode::Left | KeyCode::Up => {
                        t.pos = t.pos.saturating_sub(1)
                    }
                    KeyCode::PageDown => t.pos = (t.pos + page).min(last),
                    KeyCode::PageUp => t.pos = t.pos.saturating_sub(page),
                    KeyCode::Home | KeyCode::Char('g') => t.pos = 0,
                    KeyCode::End | KeyCode::Char('G') => t.pos = last,
                    KeyCode::Char('r') => {
                        // run to the next helper call
                        let next = t
                            .steps
                            .iter()
                            .enumerate()
                            .skip(t.pos + 1)
                            .find(|(_, s)| s.helper.is_some())
                            .map(|(i, _)| i);
                        t.pos = next.unwrap_or(last);
                    }
                    _ => {}
                }
            }
            View::Rings | View::Stats => {}
        }
    }

    fn breakpoint_key(&mut self, k: KeyEvent) {
        let sel = self.bp_target().map(|r| (r.prog, r.chain, r.ctx.opcode));
        match k.code {
            KeyCode::Esc | KeyCode::Char('b') | KeyCode::Char('q') => self.overlay = Overlay::None,
            KeyCode::Char('1') => self.toggle_breakpoint(Breakpoint::ShortResult),
            KeyCode::Char('2') => self.toggle_breakpoint(Breakpoint::NegativeResult),
            KeyCode::Char('p') => match sel {
                Some((prog, _, _)) => self.toggle_breakpoint(Breakpoint::Program { prog }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('c') => match sel {
                Some((_, chain, _)) => self.toggle_breakpoint(Breakpoint::Chain { chain }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('o') => match sel {
                Some((_, _, opcode)) => self.toggle_breakpoint(Breakpoint::Opcode { opcode }),
                None => self.message = Some("select a decision first (Decisions view)".into()),
            },
            KeyCode::Char('x') => self.set_breakpoints(Vec::new()),
            KeyCode::Char(':') => self.overlay = Overlay::Command("break ".into()),
            _ => {}
        }
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

fn next_view(v: View, d: i32) -> View {
    let i = View::ALL.iter().position(|x| *x == v).unwrap_or(0) as i32;
    let n = View::ALL.len() as i32;
    View::ALL[((i + d).rem_euclid(n)) as usize]
}
