//! Before each frame: the view state settled against what the model holds.

use super::*;

impl App {
    /// Settle what the next frame of `area` shows: selections clamped to
    /// what exists (or following the newest), the page size for PgUp/PgDn,
    /// the filtered rows, and what the visible panes need computing. The
    /// draw that follows only reads.
    pub fn prepare(&mut self, area: ratatui::layout::Rect) {
        // Tabs and status take a line each; a pane's border two more.
        let body = area.height.saturating_sub(2);
        self.page = body.saturating_sub(4).max(1) as usize;
        match self.view {
            View::Chains => {
                self.shown_rows = self.chain_rows();
                self.chains_pos.fit(self.shown_rows.len());
                if let Some(k) = self.shown_rows.get(self.chains_pos.sel) {
                    let nodes = match *k {
                        RowKey::Engine { epoch, chain } => self
                            .state
                            .chains
                            .get(&(epoch, chain))
                            .map_or(0, |c| c.nodes.len()),
                        RowKey::KernelChain(c) => {
                            self.state.graph.chain(c).map_or(0, |c| c.members.len())
                        }
                        RowKey::KernelReq(_) => 1,
                    };
                    self.chains_node = self.chains_node.min(nodes.saturating_sub(1));
                }
            }
            View::Cancels => {
                let groups = self.state.cancels.len();
                self.cancel_group = self.cancel_group.min(groups.saturating_sub(1));
                if !self.cancel_focus_entries {
                    self.cancel_pos.follow = true;
                }
                let n = self
                    .state
                    .cancels
                    .values()
                    .nth(self.cancel_group)
                    .map_or(0, |g| g.recent.len());
                self.cancel_pos.fit(n);
            }
            View::Decisions => {
                self.dec_pos.fit(self.state.decisions.len());
                let sel = self
                    .state
                    .decisions
                    .get(self.dec_pos.sel)
                    .map(|e| (e.epoch, e.decision().prog, e.decision().seq));
                self.shown_decision = match sel {
                    Some((epoch, prog, seq)) => ShownDecision {
                        disasm: self.disasm(epoch, prog),
                        path: self.decision_path(epoch, seq),
                    },
                    None => ShownDecision::default(),
                };
            }
            View::Maps => {
                self.map_sel = self.map_sel.min(self.state.maps.len().saturating_sub(1));
                let entries = self
                    .state
                    .maps
                    .values()
                    .rev()
                    .nth(self.map_sel)
                    .map_or(0, |m| m.entries.len());
                // The contents pane: border and a header line.
                let h = body.saturating_sub(3) as usize;
                self.map_scroll = self.map_scroll.min(entries.saturating_sub(h));
            }
            View::Rings | View::Stats | View::Debug => {}
        }
    }
}
