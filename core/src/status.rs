//! What `status` shows of one member, in the letters a Cassandra operator reads in
//! `nodetool status`: the one place the scenario runner, the explorer and the native node's
//! `Status` RPC take them from.

use crate::gossip::Status;

/// One member as `status` shows it: up or down in the observer's opinion, and the lifecycle
/// status the member announced (`None`: not announced yet).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeStatus {
    /// Up in the observer's opinion (for the simulator: its process runs).
    pub up: bool,
    /// The status the member announced.
    pub status: Option<Status>,
}

impl NodeStatus {
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

    /// The two letters (`UN`, `DJ`, …), or `LEFT` for a member that left.
    pub fn code(self) -> String {
        match self.status {
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
        let of = |up, status| NodeStatus { up, status }.code();
        assert_eq!(of(true, Some(Status::Normal)), "UN");
        assert_eq!(of(true, Some(Status::Boot)), "UJ");
        assert_eq!(of(true, Some(Status::MidJoin)), "UJ", "joining until NORMAL");
        assert_eq!(of(false, Some(Status::MidLeave)), "DL", "leaving until LEFT");
        assert_eq!(of(true, Some(Status::Left)), "LEFT");
        assert_eq!(of(false, None), "D?");
        let joining = NodeStatus { up: true, status: Some(Status::MidJoin) };
        assert_eq!(joining.owns(0.25), None);
        let normal = NodeStatus { up: true, status: Some(Status::Normal) };
        assert_eq!(normal.owns(0.25), Some(0.25));
    }
}
