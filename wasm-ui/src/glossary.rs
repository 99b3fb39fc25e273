//! The words the page uses, defined where a learner can find them: the help dialog lists them,
//! and the status codes, levels and anomaly flags carry their definition as a tooltip.

/// A term and its definition.
pub struct Term {
    /// The word as the page shows it.
    pub term: &'static str,
    /// What it means here.
    pub definition: &'static str,
}

/// Every term, in the order the help dialog lists them.
pub const GLOSSARY: &[Term] = &[
    Term {
        term: "RF",
        definition: "Replication factor: how many nodes hold a copy of each key. A key's replicas are the first RF distinct nodes met walking clockwise round the ring from the key's token.",
    },
    Term {
        term: "Token",
        definition: "A position on the ring (a 64-bit number). A node owns the range that ends at each of its tokens; a key is hashed to a token.",
    },
    Term {
        term: "Vnodes",
        definition: "Several tokens per node, so each node owns many small ranges instead of one large one.",
    },
    Term {
        term: "Effective ownership",
        definition: "The share of all keys a node holds a replica of (the Owns column). With RF 3 the column adds up to 300 %. It is ? while a node joins.",
    },
    Term {
        term: "ONE, TWO, THREE",
        definition: "Consistency levels: the coordinator answers the client once that many replicas acknowledged (writes) or replied (reads).",
    },
    Term {
        term: "QUORUM",
        definition: "A majority of the RF replicas: RF/2 + 1, rounded down (2 of 3, 3 of 5). Reads and writes at QUORUM always overlap in at least one replica.",
    },
    Term {
        term: "ALL",
        definition: "Every replica must acknowledge. With one replica known down the coordinator refuses at once (Unavailable) and writes nothing.",
    },
    Term {
        term: "ANY",
        definition: "A write succeeds once any replica acknowledged or a hint was stored for one.",
    },
    Term {
        term: "Pending replica",
        definition: "A node gaining a range (joining or taking over from a leaving node): writes go to it too and need one more acknowledgement per pending replica.",
    },
    Term {
        term: "Hint",
        definition: "A write a coordinator keeps for a replica that is down (or did not answer), replayed when the replica is back. A hint never counts toward the level except for ANY.",
    },
    Term {
        term: "Read repair",
        definition: "After a read, the coordinator sends the newest version to replicas that answered with an older one.",
    },
    Term {
        term: "UN, UJ, UL, DN",
        definition: "The Status column, as nodetool prints it: U or D for up or down in this node's failure detector, then N (normal), J (joining) or L (leaving). LEFT: decommissioned. OUT: a joiner that withdrew.",
    },
    Term {
        term: "Stale read",
        definition: "A read that did not return a write acknowledged before the read began, although its level overlaps the write's (R + W > RF).",
    },
    Term {
        term: "Lost write",
        definition: "A write the cluster acknowledged that is missing from the final state.",
    },
    Term {
        term: "Lost update",
        definition: "One of two concurrent writes that last-write-wins dropped; vector clocks would have kept both as siblings.",
    },
    Term {
        term: "Unavailable",
        definition: "The coordinator knew too few live replicas for the level and refused the request before sending it.",
    },
    Term {
        term: "Timeout",
        definition: "The coordinator sent the request but too few replicas answered in time; the write may still have reached some of them.",
    },
    Term {
        term: "Siblings",
        definition: "Concurrent versions of a key kept side by side (vector-clock mode); a read returns all of them.",
    },
    Term {
        term: "Ghost data",
        definition: "Keys a node still holds for ranges it no longer replicates (after another node joined); cleanup removes them.",
    },
];

/// The definition of `term` (for tooltips).
pub fn define(term: &str) -> Option<&'static str> {
    GLOSSARY.iter().find(|t| t.term == term).map(|t| t.definition)
}
