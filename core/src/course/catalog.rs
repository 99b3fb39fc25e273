//! The exercises shipped with Ringside (`core/course/`), embedded so that the explorer and the
//! CLI have them without a file system. `core/tests/course.rs` checks that every file there is
//! listed here and that each one passes [`super::check`].

/// One shipped exercise file.
#[derive(Clone, Copy, Debug)]
pub struct Entry {
    /// Its id: the file name without `.toml`.
    pub id: &'static str,
    /// Its path under `core/course/`.
    pub path: &'static str,
    /// The file.
    pub text: &'static str,
}

macro_rules! exercises {
    ($($dir:literal / $id:literal),* $(,)?) => {
        &[$(Entry {
            id: $id,
            path: concat!($dir, "/", $id, ".toml"),
            text: include_str!(concat!("../../course/", $dir, "/", $id, ".toml")),
        }),*]
    };
}

/// Every shipped exercise, in course order.
pub const CATALOG: &[Entry] = exercises![
    "01-ring" / "primary-ranges",
    "01-ring" / "replica-walk",
    "01-ring" / "vnodes-distinct-replicas",
    "01-ring" / "fourth-node-ownership",
    "02-quorum" / "quorum-size",
    "02-quorum" / "rf5-quorum",
    "02-quorum" / "weak-consistency",
    "03-consistency" / "levels-with-replicas-down",
    "03-consistency" / "all-with-replica-down",
    "03-consistency" / "any-on-a-hint",
    "04-hints-repair" / "six-nodes-quorum-hint",
    "04-hints-repair" / "coordinator-crash-hints",
    "04-hints-repair" / "hint-window",
    "04-hints-repair" / "read-repair",
    "05-versions" / "lost-update",
    "05-versions" / "context-resolves-siblings",
    "06-joining" / "pending-replica",
    "06-joining" / "pending-availability",
    "06-joining" / "ghost-data-cleanup",
    "07-strategies" / "ring-delay-race",
    "07-strategies" / "pairdb-dual-write",
    "07-strategies" / "joiner-down-writes",
    "08-join-failures" / "streaming-source-down",
    "08-join-failures" / "joiner-crash-resume",
    "09-decommission" / "decommission",
    "10-merkle" / "merkle-repair",
];

/// The shipped exercise `id`.
pub fn by_id(id: &str) -> Option<&'static Entry> {
    CATALOG.iter().find(|e| e.id == id)
}
