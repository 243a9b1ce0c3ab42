//! What every mode of `attach` shares (the UI, `--headless`, `record
//! ... attach`): the probes' options from the command line, and the
//! refusal of a pid that has no rings.

use crate::cli::LiveOpts;

/// What `attach --pid` (and `record attach --pid`) traces: the pid, its
/// children unless `--no-follow-forks`, the kinds of `--events` /
/// `--no-events`.
pub fn attach_options(
    a: &crate::cli::AttachArgs,
    pid: u32,
    opts: &LiveOpts,
) -> ringside_probes::AttachOptions {
    ringside_probes::AttachOptions {
        pids: vec![pid],
        follow_forks: !a.no_follow_forks,
        kinds: opts.kinds(),
        ..Default::default()
    }
}

/// Refuses a pid without rings (nor children with rings, when they are
/// followed) unless `--wait-for-rings`: the same check in every mode.
pub fn check_rings(
    a: &crate::cli::AttachArgs,
    pid: u32,
) -> Result<(), ringside_probes::ProbeError> {
    let tree = ringside_probes::discover::discover_tree(pid, !a.no_follow_forks)?;
    if !a.wait_for_rings && tree.iter().all(|(_, fds)| fds.is_empty()) {
        return Err(ringside_probes::ProbeError::NoRings { pid });
    }
    Ok(())
}
