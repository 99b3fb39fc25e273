//! Consistency levels and the arithmetic of acknowledgements.

use serde::{Deserialize, Serialize};

/// A consistency level, as in Cassandra.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ConsistencyLevel {
    /// A stored hint counts (writes only).
    Any,
    /// One replica.
    One,
    /// Two replicas.
    Two,
    /// Three replicas.
    Three,
    /// `RF / 2 + 1` replicas.
    Quorum,
    /// Every replica.
    All,
}

/// An unknown consistency level name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown consistency level {0:?}: expected one of ANY, ONE, TWO, THREE, QUORUM, ALL")]
pub struct UnknownConsistencyLevel(pub String);

impl std::str::FromStr for ConsistencyLevel {
    type Err = UnknownConsistencyLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s.to_ascii_uppercase().as_str() {
            "ANY" => ConsistencyLevel::Any,
            "ONE" => ConsistencyLevel::One,
            "TWO" => ConsistencyLevel::Two,
            "THREE" => ConsistencyLevel::Three,
            "QUORUM" => ConsistencyLevel::Quorum,
            "ALL" => ConsistencyLevel::All,
            _ => return Err(UnknownConsistencyLevel(s.to_string())),
        })
    }
}

impl std::fmt::Display for ConsistencyLevel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ConsistencyLevel::Any => "ANY",
            ConsistencyLevel::One => "ONE",
            ConsistencyLevel::Two => "TWO",
            ConsistencyLevel::Three => "THREE",
            ConsistencyLevel::Quorum => "QUORUM",
            ConsistencyLevel::All => "ALL",
        })
    }
}

impl ConsistencyLevel {
    /// Every level, in the order forms offer them (ANY last: it is for writes only).
    pub const ALL: [ConsistencyLevel; 6] = [
        ConsistencyLevel::One,
        ConsistencyLevel::Two,
        ConsistencyLevel::Three,
        ConsistencyLevel::Quorum,
        ConsistencyLevel::All,
        ConsistencyLevel::Any,
    ];

    /// Replies required from natural replicas for replication factor `rf` (Cassandra's
    /// `blockFor` before pending replicas are added). `ANY` needs one ack or stored hint.
    pub fn block_for(self, rf: usize) -> usize {
        match self {
            ConsistencyLevel::Any | ConsistencyLevel::One => 1,
            ConsistencyLevel::Two => 2,
            ConsistencyLevel::Three => 3,
            ConsistencyLevel::Quorum => rf / 2 + 1,
            ConsistencyLevel::All => rf,
        }
    }

    /// Acknowledgements a write needs: `block_for(rf)` plus one per pending replica (Cassandra
    /// #833: a joining node raises blockFor so a quorum of the *future* replica set also holds the
    /// write). `ALL` already counts every target.
    pub fn write_acks_required(self, rf: usize, pending: usize) -> usize {
        self.block_for(rf) + pending
    }

    /// Whether reads at `read` and writes at `write` overlap (`R + W > RF`), which is what gives
    /// read-your-writes for a fixed membership.
    pub fn overlaps(read: ConsistencyLevel, write: ConsistencyLevel, rf: usize) -> bool {
        let w = if write == ConsistencyLevel::Any { 0 } else { write.block_for(rf) };
        read.block_for(rf) + w > rf
    }
}

#[cfg(test)]
mod tests {
    use super::ConsistencyLevel::*;
    use super::*;

    /// Table-driven, as in raft-rs's quorum fixtures: (cl, rf, block_for).
    const BLOCK_FOR: &[(ConsistencyLevel, usize, usize)] = &[
        (One, 3, 1),
        (Two, 3, 2),
        (Three, 3, 3),
        (Quorum, 1, 1),
        (Quorum, 2, 2),
        (Quorum, 3, 2),
        (Quorum, 4, 3),
        (Quorum, 5, 3),
        (Quorum, 6, 4),
        (All, 3, 3),
        (All, 5, 5),
        (Any, 3, 1),
    ];

    #[test]
    fn block_for_table() {
        for (cl, rf, want) in BLOCK_FOR {
            assert_eq!(cl.block_for(*rf), *want, "{cl} at RF={rf}");
        }
    }

    #[test]
    fn pending_replicas_raise_required_acks() {
        // RF=3 QUORUM with one joining node: 4 targets, 3 acks.
        assert_eq!(Quorum.write_acks_required(3, 1), 3);
        assert_eq!(One.write_acks_required(3, 1), 2);
    }

    #[test]
    fn overlap_arithmetic() {
        assert!(ConsistencyLevel::overlaps(Quorum, Quorum, 3));
        assert!(ConsistencyLevel::overlaps(Quorum, Quorum, 5));
        assert!(!ConsistencyLevel::overlaps(One, One, 3));
        assert!(ConsistencyLevel::overlaps(One, All, 3));
        assert!(!ConsistencyLevel::overlaps(All, Any, 3));
    }

    #[test]
    fn parse_rejects_unknown_levels() {
        assert_eq!("quorum".parse::<ConsistencyLevel>(), Ok(Quorum));
        let err = "LOCAL_FOO".parse::<ConsistencyLevel>().unwrap_err();
        assert!(err.to_string().contains("LOCAL_FOO"));
    }
}
