//! The explorer's gallery of preset scenarios.
//!
//! Each preset is a scenario file in `core/presets/` (the format of [`crate::scenario`]), built
//! into the engine so the browser needs no file access. Every preset is small enough to animate
//! (3–6 nodes except `large-cluster`, 4–8 vnodes, network latency of tens of milliseconds, at most
//! 60 s) and states what it demonstrates in its `[expect]` block; `core/tests/presets.rs` runs
//! them all and requires every expectation to hold.

use crate::membership::JoinStrategy;
use crate::scenario::{Event, Prepared};

/// One scenario of the gallery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Preset {
    /// Stable identifier, kebab-case (the file name without `.toml`, and the scenario's `name`).
    pub id: &'static str,
    /// Short title for the gallery.
    pub title: &'static str,
    /// The scenario file's text (TOML), for [`crate::scenario::parse`].
    pub text: &'static str,
    /// The join strategies the explorer shows side by side by default: for presets where a node
    /// joins, `staged`, `immediate` and `dual-write-cutover`; otherwise only the scenario's own.
    /// Always includes the scenario's own strategy.
    pub compare: &'static [JoinStrategy],
}

/// What the explorer compares for presets where a node joins.
const JOIN_LANES: &[JoinStrategy] =
    &[JoinStrategy::Staged, JoinStrategy::Immediate, JoinStrategy::DualWriteCutover];

/// Presets without a join: their own strategy only (the default, `staged`).
const OWN_LANE: &[JoinStrategy] = &[JoinStrategy::Staged];

/// Every preset, in gallery order.
pub const PRESETS: &[Preset] = &[
    Preset {
        id: "steady-quorum",
        title: "Steady QUORUM traffic",
        text: include_str!("../presets/steady-quorum.toml"),
        compare: OWN_LANE,
    },
    Preset {
        id: "join-staged",
        title: "Add a node (staged)",
        text: include_str!("../presets/join-staged.toml"),
        compare: JOIN_LANES,
    },
    Preset {
        id: "join-immediate",
        title: "Add a node (immediate)",
        text: include_str!("../presets/join-immediate.toml"),
        compare: JOIN_LANES,
    },
    Preset {
        id: "dual-write-cutover",
        title: "Dual-write cutover loses writes",
        text: include_str!("../presets/dual-write-cutover.toml"),
        compare: JOIN_LANES,
    },
    Preset {
        id: "joiner-crash",
        title: "Joiner crashes mid-stream",
        text: include_str!("../presets/joiner-crash.toml"),
        compare: JOIN_LANES,
    },
    Preset {
        id: "partition-during-join",
        title: "Partition during a join",
        text: include_str!("../presets/partition-during-join.toml"),
        compare: JOIN_LANES,
    },
    Preset {
        id: "hints",
        title: "Hinted handoff",
        text: include_str!("../presets/hints.toml"),
        compare: OWN_LANE,
    },
    Preset {
        id: "read-repair",
        title: "Read repair",
        text: include_str!("../presets/read-repair.toml"),
        compare: OWN_LANE,
    },
    Preset {
        id: "merkle-repair",
        title: "Merkle repair",
        text: include_str!("../presets/merkle-repair.toml"),
        compare: OWN_LANE,
    },
    Preset {
        id: "decommission",
        title: "Remove a node",
        text: include_str!("../presets/decommission.toml"),
        compare: OWN_LANE,
    },
    Preset {
        id: "large-cluster",
        title: "Large cluster (12 nodes × 16 vnodes)",
        text: include_str!("../presets/large-cluster.toml"),
        compare: OWN_LANE,
    },
];

/// The preset with this id.
pub fn preset(id: &str) -> Option<&'static Preset> {
    PRESETS.iter().find(|p| p.id == id)
}

/// The strategies the explorer compares by default for a run of `prepared`: the preset's
/// (`preset`, when the run is one), or for a scenario that adds or removes nodes the three
/// that differ most (`JOIN_LANES`); otherwise the scenario's own.
pub fn default_lanes(preset_id: Option<&str>, prepared: &Prepared) -> Vec<JoinStrategy> {
    if let Some(p) = preset_id.and_then(preset)
        && !p.compare.is_empty()
    {
        return p.compare.to_vec();
    }
    let moves = prepared
        .events
        .iter()
        .any(|e| matches!(e.event, Event::AddNode { .. } | Event::Decommission(_)));
    if moves { JOIN_LANES.to_vec() } else { vec![prepared.node.join_strategy] }
}
