//! The Chains view's filter and the rows it lets through.

use super::*;

/// Why a filter line was not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    /// `chain:` wants a chain id.
    #[error("chain:{value}: not a number")]
    Chain {
        /// What followed `chain:`.
        value: String,
    },
    /// `state:` wants a node state (a prefix of one).
    #[error("state:{value}: one of {}", NodeState::ALL.map(|s| s.name()).join(", "))]
    State {
        /// What followed `state:`.
        value: String,
    },
}

/// Chains view filter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChainFilter {
    /// Engine instance or kernel ring (`ring:N` = engine N, `ring:k` = kernel).
    pub ring: Option<String>,
    /// Chain id.
    pub chain: Option<u64>,
    /// A node in this state.
    pub state: Option<NodeState>,
    /// Program name substring.
    pub text: Option<String>,
}

impl ChainFilter {
    /// Parse `ring:2 chain:7 state:short copy`.
    pub fn parse(s: &str) -> Result<ChainFilter, FilterError> {
        let mut f = ChainFilter::default();
        for w in s.split_whitespace() {
            if let Some(v) = w.strip_prefix("ring:") {
                f.ring = Some(v.to_string());
            } else if let Some(v) = w.strip_prefix("chain:") {
                f.chain = Some(
                    v.parse()
                        .map_err(|_| FilterError::Chain { value: v.into() })?,
                );
            } else if let Some(v) = w.strip_prefix("state:") {
                f.state = Some(
                    NodeState::parse(v).ok_or_else(|| FilterError::State { value: v.into() })?,
                );
            } else {
                f.text = Some(w.to_string());
            }
        }
        Ok(f)
    }

    /// Empty.
    pub fn is_empty(&self) -> bool {
        *self == ChainFilter::default()
    }

    /// In words, for the filter line.
    pub fn describe(&self) -> String {
        let mut v = Vec::new();
        if let Some(r) = &self.ring {
            v.push(format!("ring:{r}"));
        }
        if let Some(c) = self.chain {
            v.push(format!("chain:{c}"));
        }
        if let Some(s) = self.state {
            v.push(format!("state:{}", s.name()));
        }
        if let Some(t) = &self.text {
            v.push(t.clone());
        }
        v.join(" ")
    }
}

impl App {
    /// Rows of the Chains view after filtering.
    pub fn chain_rows(&self) -> Vec<RowKey> {
        let f = &self.filter;
        self.state
            .rows
            .iter()
            .filter(|k| match k {
                RowKey::Engine { epoch, chain } => {
                    if let Some(r) = &f.ring
                        && r.parse::<u32>().ok() != Some(*epoch)
                    {
                        return false;
                    }
                    if f.chain.is_some_and(|c| c != *chain) {
                        return false;
                    }
                    if let Some(t) = &f.text {
                        let Some(c) = self.state.chains.get(&(*epoch, *chain)) else {
                            return false;
                        };
                        if !c
                            .program
                            .as_deref()
                            .unwrap_or("kernel link")
                            .contains(t.as_str())
                        {
                            return false;
                        }
                    }
                    true
                }
                RowKey::KernelChain(c) => {
                    if self.kernel_rows == KernelRows::Hidden {
                        return false;
                    }
                    if f.ring.as_deref().is_some_and(|r| r != "k")
                        || f.chain.is_some_and(|x| x != *c)
                        || f.text.is_some()
                    {
                        return false;
                    }
                    true
                }
                RowKey::KernelReq(r) => {
                    if self.kernel_rows != KernelRows::All {
                        return false;
                    }
                    if f.ring.as_deref().is_some_and(|x| x != "k")
                        || f.chain.is_some_and(|x| x != *r)
                        || f.text.is_some()
                    {
                        return false;
                    }
                    true
                }
            })
            .filter(|k| match f.state {
                None => true,
                Some(s) => self.state.row_states(*k).contains(&s),
            })
            .collect()
    }
}
