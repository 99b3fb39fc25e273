//! What `status` shows of one member, in the letters a Cassandra operator reads in
//! `nodetool status`: the one place the scenario runner, the explorer and the native node's
//! `Status` RPC take them from.

use crate::gossip::Status;
use crate::membership::Member;

/// One member as `status` shows it: up or down in the observer's opinion, and the lifecycle
/// status the member announced (`None`: not announced yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Up in the observer's opinion (for the simulator: the cluster's, see `Simulation::seen_up`).
    pub up: bool,
    /// The status the member announced.
    pub status: Option<Status>,
    /// LEFT without tokens: a joiner that withdrew before it owned anything (aborted, or gave
    /// way to an overlapping movement), not a node that decommissioned.
    pub withdrawn: bool,
}

impl NodeStatus {
    /// `member` (as the observer knows it, `None` before it announced anything) as `status`
    /// shows it.
    pub fn of(up: bool, member: Option<&Member>) -> NodeStatus {
        let status = member.map(|m| m.status);
        let withdrawn = member.is_some_and(|m| m.status == Status::Left && m.tokens.is_empty());
        NodeStatus { up, status, withdrawn }
    }

    /// The first letter: `U`p or `D`own.
    pub fn state_letter(self) -> char {
        if self.up { 'U' } else { 'D' }
    }

    /// The second letter: `J`oining until NORMAL (BOOT and MID_JOIN alike), `N`ormal, `L`eaving
    /// until LEFT (LEAVING and MID_LEAVE), `-` once left, `?` before any announcement. The
    /// status column, not the letter, tells the step.
    pub fn mode_letter(self) -> char {
        match self.status {
            Some(Status::Boot | Status::MidJoin) => 'J',
            Some(Status::Normal) => 'N',
            Some(Status::Leaving | Status::MidLeave) => 'L',
            Some(Status::Left) => '-',
            None => '?',
        }
    }

    /// The two letters (`UN`, `DJ`, …), `LEFT` for a member that decommissioned, or `OUT` for a
    /// joiner that withdrew.
    pub fn code(self) -> String {
        match self.status {
            Some(Status::Left) if self.withdrawn => "OUT".into(),
            Some(Status::Left) => "LEFT".into(),
            _ => format!("{}{}", self.state_letter(), self.mode_letter()),
        }
    }

    /// The Owns column, given the member's share of the ring (0 to 1): none while it joins
    /// (its tokens are bootstrap tokens, not ownership) or before it announced anything, 0
    /// once it left.
    pub fn owns(self, share: f64) -> Option<f64> {
        match self.status {
            Some(Status::Boot | Status::MidJoin) | None => None,
            Some(Status::Left) => Some(0.0),
            Some(Status::Normal | Status::Leaving | Status::MidLeave) => Some(share),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn letters_follow_nodetool() {
        let of = |up, status| NodeStatus { up, status, withdrawn: false }.code();
        assert_eq!(of(true, Some(Status::Normal)), "UN");
        assert_eq!(of(true, Some(Status::Boot)), "UJ");
        assert_eq!(of(true, Some(Status::MidJoin)), "UJ", "joining until NORMAL");
        assert_eq!(of(false, Some(Status::MidLeave)), "DL", "leaving until LEFT");
        assert_eq!(of(true, Some(Status::Left)), "LEFT");
        assert_eq!(of(false, None), "D?");
        let joining = NodeStatus { up: true, status: Some(Status::MidJoin), withdrawn: false };
        assert_eq!(joining.owns(0.25), None);
        let normal = NodeStatus { up: true, status: Some(Status::Normal), withdrawn: false };
        assert_eq!(normal.owns(0.25), Some(0.25));
    }

    #[test]
    fn a_joiner_that_withdrew_is_not_shown_as_decommissioned() {
        let member = |status, tokens: Vec<u64>| Member { status, tokens, rack: None, epoch: 3 };
        let withdrew = member(Status::Left, vec![]);
        assert_eq!(NodeStatus::of(true, Some(&withdrew)).code(), "OUT");
        let left = member(Status::Left, vec![7, 9]);
        assert_eq!(NodeStatus::of(true, Some(&left)).code(), "LEFT");
        assert_eq!(NodeStatus::of(false, None).code(), "D?");
    }
}
