//! `:` commands: break, delete, clear, seek, filter, trace, quit.

use super::*;

/// Why a `:` command did nothing (shown on the status line).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// `delete N` with no breakpoint N (or N not a number).
    #[error("no breakpoint {word}")]
    NoBreakpoint {
        /// What followed `delete`.
        word: String,
    },
    /// `trace N` with N not a decision number.
    #[error("trace {word}: not a decision number")]
    NotADecision {
        /// What followed `trace`.
        word: String,
    },
    /// Not a command.
    #[error("unknown command `{text}` (break, delete N, clear, seek N|Ts, filter, trace N, quit)")]
    Unknown {
        /// The whole line.
        text: String,
    },
    /// `break ...` names no breakpoint.
    #[error(transparent)]
    Break(#[from] BreakError),
    /// `seek ...` names no place.
    #[error(transparent)]
    Seek(#[from] SeekError),
    /// `filter ...` is not a filter.
    #[error(transparent)]
    Filter(#[from] FilterError),
}

/// Why `break ...` names no breakpoint.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum BreakError {
    /// `chain N` with N not a chain id.
    #[error("chain {word}: not a number")]
    Chain {
        /// What followed `chain`.
        word: String,
    },
    /// No program of that name was seen loading.
    #[error("no program named {name}")]
    NoProgram {
        /// The name asked for.
        name: String,
    },
    /// Neither an opcode number nor a name the ABI knows.
    #[error("no opcode named {name}")]
    NoOpcode {
        /// The name asked for.
        name: String,
    },
    /// None of the forms.
    #[error("break short | neg | chain N | program NAME | opcode NAME")]
    Usage,
}

/// Why `seek ...` names no place.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SeekError {
    /// Ends in `s` or `ms` but the number before it does not parse.
    #[error("seek {word}: not a time")]
    NotATime {
        /// What followed `seek`.
        word: String,
    },
    /// Neither an item index nor a time.
    #[error("seek {word}: an event number, or a time like 1.5s or 300ms")]
    Usage {
        /// What followed `seek`.
        word: String,
    },
}

impl App {
    /// Run a `:` command.
    pub fn command(&mut self, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let r: Result<(), CommandError> = match words.as_slice() {
            [] => Ok(()),
            ["q" | "quit"] => {
                self.quit = true;
                Ok(())
            }
            ["break" | "b", rest @ ..] => self
                .parse_break(rest)
                .map(|bp| {
                    let mut bps = self.breakpoints.clone();
                    if !bps.contains(&bp) {
                        bps.push(bp);
                    }
                    self.set_breakpoints(bps);
                })
                .map_err(CommandError::from),
            ["delete" | "d", n] => match n.parse::<usize>() {
                Ok(i) if i >= 1 && i <= self.breakpoints.len() => {
                    let mut bps = self.breakpoints.clone();
                    bps.remove(i - 1);
                    self.set_breakpoints(bps);
                    Ok(())
                }
                _ => Err(CommandError::NoBreakpoint {
                    word: n.to_string(),
                }),
            },
            ["clear"] => {
                self.set_breakpoints(Vec::new());
                Ok(())
            }
            ["seek" | "s", what] => match parse_seek(what) {
                Ok(c) => {
                    self.send(c);
                    Ok(())
                }
                Err(e) => Err(e.into()),
            },
            ["filter" | "f", rest @ ..] => ChainFilter::parse(&rest.join(" "))
                .map(|f| {
                    self.filter = f;
                    self.view = View::Chains;
                })
                .map_err(CommandError::from),
            ["trace", n] => match n.parse::<u64>() {
                Ok(seq) => {
                    let e = self.state.epoch();
                    self.open_trace(e, seq);
                    self.view = View::Debug;
                    Ok(())
                }
                Err(_) => Err(CommandError::NotADecision {
                    word: n.to_string(),
                }),
            },
            _ => Err(CommandError::Unknown {
                text: text.to_string(),
            }),
        };
        if let Err(e) = r {
            self.message = Some(e.to_string());
        }
    }

    fn parse_break(&self, w: &[&str]) -> Result<Breakpoint, BreakError> {
        match w {
            ["short" | "res<len"] | ["res", "<", "len"] => Ok(Breakpoint::ShortResult),
            ["neg" | "error" | "res<0"] | ["res", "<", "0"] => Ok(Breakpoint::NegativeResult),
            ["chain", n] => n
                .parse()
                .map(|chain| Breakpoint::Chain { chain })
                .map_err(|_| BreakError::Chain {
                    word: n.to_string(),
                }),
            ["program" | "prog", name] => {
                if let Ok(prog) = name.parse::<u32>() {
                    return Ok(Breakpoint::Program { prog });
                }
                self.state
                    .programs
                    .iter()
                    .rev()
                    .find(|(_, p)| p.name == *name)
                    .map(|((_, id), _)| Breakpoint::Program { prog: *id })
                    .ok_or_else(|| BreakError::NoProgram {
                        name: name.to_string(),
                    })
            }
            ["opcode" | "op", name] => {
                if let Ok(opcode) = name.parse::<u8>() {
                    return Ok(Breakpoint::Opcode { opcode });
                }
                op::from_name(name)
                    .or_else(|| op::from_name(&name.to_ascii_uppercase()))
                    .or_else(|| op::from_name(&name.to_ascii_lowercase()))
                    .map(|opcode| Breakpoint::Opcode { opcode })
                    .ok_or_else(|| BreakError::NoOpcode {
                        name: name.to_string(),
                    })
            }
            _ => Err(BreakError::Usage),
        }
    }
}

/// `1234` (an item index) or `1.5s` / `300ms` (a time).
pub fn parse_seek(s: &str) -> Result<Ctl, SeekError> {
    if let Some(v) = s.strip_suffix("ms") {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e6) as u64))
            .map_err(|_| SeekError::NotATime {
                word: s.to_string(),
            });
    }
    if let Some(v) = s.strip_suffix('s') {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e9) as u64))
            .map_err(|_| SeekError::NotATime {
                word: s.to_string(),
            });
    }
    s.parse::<u64>()
        .map(Ctl::SeekItem)
        .map_err(|_| SeekError::Usage {
            word: s.to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The typed errors print what the `String` ones did, byte for byte.
    #[test]
    fn messages_unchanged() {
        let cases: Vec<(CommandError, &str)> = vec![
            (
                CommandError::NoBreakpoint { word: "x".into() },
                "no breakpoint x",
            ),
            (
                CommandError::NotADecision { word: "x".into() },
                "trace x: not a decision number",
            ),
            (
                CommandError::Unknown {
                    text: "zz 1".into(),
                },
                "unknown command `zz 1` (break, delete N, clear, seek N|Ts, filter, trace N, quit)",
            ),
            (
                BreakError::Chain { word: "x".into() }.into(),
                "chain x: not a number",
            ),
            (
                BreakError::NoProgram { name: "p".into() }.into(),
                "no program named p",
            ),
            (
                BreakError::NoOpcode { name: "o".into() }.into(),
                "no opcode named o",
            ),
            (
                BreakError::Usage.into(),
                "break short | neg | chain N | program NAME | opcode NAME",
            ),
            (
                parse_seek("1.xs").unwrap_err().into(),
                "seek 1.xs: not a time",
            ),
            (
                parse_seek("3xms").unwrap_err().into(),
                "seek 3xms: not a time",
            ),
            (
                parse_seek("abc").unwrap_err().into(),
                "seek abc: an event number, or a time like 1.5s or 300ms",
            ),
            (
                ChainFilter::parse("chain:x").unwrap_err().into(),
                "chain:x: not a number",
            ),
            (
                ChainFilter::parse("state:zz").unwrap_err().into(),
                "state:zz: one of queued, inflight, done, short, failed, cancelled, dropped",
            ),
        ];
        for (e, want) in cases {
            assert_eq!(e.to_string(), want);
        }
    }
}
