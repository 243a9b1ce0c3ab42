//! `:` commands: break, delete, clear, seek, filter, trace, quit.

use super::*;

impl App {
    /// Run a `:` command.
    pub fn command(&mut self, text: &str) {
        let words: Vec<&str> = text.split_whitespace().collect();
        let r: Result<(), String> = match words.as_slice() {
            [] => Ok(()),
            ["q" | "quit"] => {
                self.quit = true;
                Ok(())
            }
            ["break" | "b", rest @ ..] => self.parse_break(rest).map(|bp| {
                let mut bps = self.breakpoints.clone();
                if !bps.contains(&bp) {
                    bps.push(bp);
                }
                self.set_breakpoints(bps);
            }),
            ["delete" | "d", n] => match n.parse::<usize>() {
                Ok(i) if i >= 1 && i <= self.breakpoints.len() => {
                    let mut bps = self.breakpoints.clone();
                    bps.remove(i - 1);
                    self.set_breakpoints(bps);
                    Ok(())
                }
                _ => Err(format!("no breakpoint {n}")),
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
                Err(e) => Err(e),
            },
            ["filter" | "f", rest @ ..] => ChainFilter::parse(&rest.join(" ")).map(|f| {
                self.filter = f;
                self.view = View::Chains;
            }),
            ["trace", n] => match n.parse::<u64>() {
                Ok(seq) => {
                    let e = self.state.epoch;
                    self.open_trace(e, seq);
                    self.view = View::Debug;
                    Ok(())
                }
                Err(_) => Err(format!("trace {n}: not a decision number")),
            },
            _ => Err(format!(
                "unknown command `{text}` (break, delete N, clear, seek N|Ts, filter, trace N, quit)"
            )),
        };
        if let Err(e) = r {
            self.message = Some(e);
        }
    }

    fn parse_break(&self, w: &[&str]) -> Result<Breakpoint, String> {
        match w {
            ["short" | "res<len"] | ["res", "<", "len"] => Ok(Breakpoint::ShortResult),
            ["neg" | "error" | "res<0"] | ["res", "<", "0"] => Ok(Breakpoint::NegativeResult),
            ["chain", n] => n
                .parse()
                .map(|chain| Breakpoint::Chain { chain })
                .map_err(|_| format!("chain {n}: not a number")),
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
                    .ok_or_else(|| format!("no program named {name}"))
            }
            ["opcode" | "op", name] => {
                if let Ok(opcode) = name.parse::<u8>() {
                    return Ok(Breakpoint::Opcode { opcode });
                }
                op::from_name(name)
                    .or_else(|| op::from_name(&name.to_ascii_uppercase()))
                    .or_else(|| op::from_name(&name.to_ascii_lowercase()))
                    .map(|opcode| Breakpoint::Opcode { opcode })
                    .ok_or_else(|| format!("no opcode named {name}"))
            }
            _ => Err("break short | neg | chain N | program NAME | opcode NAME".to_string()),
        }
    }
}

/// `1234` (an item index) or `1.5s` / `300ms` (a time).
pub fn parse_seek(s: &str) -> Result<Ctl, String> {
    if let Some(v) = s.strip_suffix("ms") {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e6) as u64))
            .map_err(|_| format!("seek {s}: not a time"));
    }
    if let Some(v) = s.strip_suffix('s') {
        return v
            .parse::<f64>()
            .map(|x| Ctl::SeekTime((x * 1e9) as u64))
            .map_err(|_| format!("seek {s}: not a time"));
    }
    s.parse::<u64>()
        .map(Ctl::SeekItem)
        .map_err(|_| format!("seek {s}: an event number, or a time like 1.5s or 300ms"))
}
