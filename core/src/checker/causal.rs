//! The causal check: versions must not claim more history than their writer saw.
//!
//! ARCHITECTURE.md's "who mints a version" rule is what makes vector-clock contexts safe: an
//! actor's dots for a key form a chain it has stored, so a context summarised as a vector clock
//! never claims a write its reader did not see. Two ways of breaking that rule are invisible to
//! the stale-read and lost-write checks as long as the damage is later hidden by a newer write,
//! so they are checked here, from the history alone:
//!
//! - [`CausalKind::DotReuse`] — two acknowledged writes (or deletes) of one key carry the same
//!   dot. A dot names one write; a replica that mints a counter twice (it restarted from a store
//!   that had lost its last counter, say) makes every context that saw the first write also
//!   "cover" the second, which is then superseded without anyone having read it.
//! - [`CausalKind::OverClaim`] — an `ok` write or delete `w` by client `p` whose context covers
//!   more than `p`'s own reads of the key returned before `w` was invoked. A write with context
//!   `C` may supersede only the versions the read that returned `C` returned. Concretely, for
//!   every entry `node:c` of `C`: (1) some `ok` read of the key by `p`, completed before `w` was
//!   invoked, returned a context with `node ≥ c`; and (2) every acknowledged write `w'` of the
//!   key with dot `node:c' ≤ c` was invoked before such a read completed (a read cannot have
//!   returned a write that did not exist yet — a later write under a covered dot is the dot
//!   reuse seen from the client's side). Rule (2) is sound for a correct store: a read's context
//!   covers `node:c'` only through a version minted at or after `node:c'`, and counters of one
//!   actor and key increase, so `w'` was invoked before that version existed.
//!
//! Only vector-clock contexts are judged by the over-claim rule (LWW contexts carry no
//! causality). Writes without a context (blind writes) claim nothing. A client is a process:
//! a write whose context was copied from another process's read (the simulator's scripted
//! operations do this) is an over-claim by this definition, so run the check on workload
//! histories.

use super::ops::{Operation, Outcome, pair};
use crate::history::History;
use crate::version::{CausalContext, ConflictMode, Dot, VClock};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What the causal check found wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CausalKind {
    /// Two acknowledged writes of one key with the same dot.
    DotReuse,
    /// A write whose context covers a version its client's reads never returned.
    OverClaim,
}

impl std::fmt::Display for CausalKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CausalKind::DotReuse => "dot-reuse",
            CausalKind::OverClaim => "over-claim",
        })
    }
}

/// One violation of the causal rules.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CausalViolation {
    /// What went wrong.
    pub kind: CausalKind,
    /// The key.
    pub key: String,
    /// The completion op of the offending write (the later of two reusing a dot).
    pub op_index: u64,
    /// The other writes involved (completion ops): the earlier write with the same dot, or the
    /// writes the context covers without any read having returned them.
    pub related: Vec<u64>,
    /// One human sentence.
    pub explanation: String,
}

struct Acked {
    invoke_pos: usize,
    index: u64,
}

/// Checks `history` for dot reuse (both modes) and over-claiming contexts (vector-clock mode),
/// as defined in the [module documentation](self). Violations are in history order.
pub fn check_causal(history: &History, mode: ConflictMode) -> Vec<CausalViolation> {
    let paired = pair(history);
    let ops = &paired.ops;
    let mut out = Vec::new();

    // Acknowledged writes per key by dot, in completion order.
    let mut by_completion: Vec<&Operation<'_>> = ops
        .iter()
        .filter(|o| {
            o.is_write()
                && o.outcome() == Outcome::Ok
                && o.done().is_some_and(|d| d.version.is_some())
        })
        .collect();
    by_completion.sort_by_key(|o| o.completion_pos());
    let mut acked: BTreeMap<&str, BTreeMap<Dot, Vec<Acked>>> = BTreeMap::new();
    for w in by_completion {
        let done = w.done().expect("ok");
        let dot = done.version.expect("filtered").dot;
        let slot = acked.entry(w.invoke.key.as_str()).or_default().entry(dot).or_default();
        if let Some(first) = slot.first() {
            out.push((
                w.completion_pos(),
                CausalViolation {
                    kind: CausalKind::DotReuse,
                    key: w.invoke.key.clone(),
                    op_index: done.index,
                    related: vec![first.index],
                    explanation: format!(
                        "{} of {} by client {} was acknowledged with dot {dot}, already the dot \
                         of the write acknowledged as op {}",
                        w.describe(),
                        w.invoke.key,
                        w.invoke.process,
                        first.index
                    ),
                },
            ));
        }
        slot.push(Acked { invoke_pos: w.invoke_pos, index: done.index });
    }

    if mode == ConflictMode::VectorClock {
        // Each client's ok reads per key: (completion position, returned clock).
        let mut reads: BTreeMap<(u32, &str), Vec<(usize, VClock)>> = BTreeMap::new();
        for r in ops.iter().filter(|o| o.is_read() && o.outcome() == Outcome::Ok) {
            let done = r.done().expect("ok");
            if done.final_read {
                continue;
            }
            let clock = done.context.as_ref().map(CausalContext::clock).unwrap_or_default();
            reads
                .entry((r.invoke.process, r.invoke.key.as_str()))
                .or_default()
                .push((r.completion_pos(), clock));
        }
        for w in ops.iter().filter(|o| o.is_write() && o.outcome() == Outcome::Ok) {
            let Some(CausalContext::Vector(claimed)) = &w.invoke.write_context else { continue };
            if claimed.is_empty() {
                continue;
            }
            let key = w.invoke.key.as_str();
            let before: Vec<&(usize, VClock)> = reads
                .get(&(w.invoke.process, key))
                .map(|v| v.iter().filter(|(pos, _)| *pos < w.invoke_pos).collect())
                .unwrap_or_default();
            if let Some(v) = over_claim(w, claimed, &before, acked.get(key)) {
                out.push((w.completion_pos(), v));
            }
        }
    }
    out.sort_by_key(|(pos, v)| (*pos, v.kind));
    out.into_iter().map(|(_, v)| v).collect()
}

fn over_claim(
    w: &Operation<'_>,
    claimed: &VClock,
    reads: &[&(usize, VClock)],
    acked: Option<&BTreeMap<Dot, Vec<Acked>>>,
) -> Option<CausalViolation> {
    let done = w.done()?;
    let mut problems = Vec::new();
    let mut related = Vec::new();
    for (node, entry) in &claimed.0 {
        let returned = reads.iter().map(|(_, c)| c.get(*node)).max().unwrap_or(0);
        if entry.counter > returned {
            problems.push(format!(
                "its context claims {node}:{} but the client's reads of the key returned at most \
                 {node}:{returned}",
                entry.counter
            ));
            continue;
        }
        let Some(acked) = acked else { continue };
        let first = Dot { node: *node, counter: 0 };
        let last = Dot { node: *node, counter: entry.counter };
        for (dot, a) in acked.range(first..=last).flat_map(|(d, v)| v.iter().map(move |a| (d, a))) {
            // Some read by this client covering the dot completed after the write was invoked.
            let seen = reads.iter().any(|(pos, c)| c.covers(*dot) && a.invoke_pos < *pos);
            if !seen {
                problems.push(format!(
                    "its context covers {dot}, the dot of op {}, which no read of the client \
                     could have returned (it was invoked after them)",
                    a.index
                ));
                related.push(a.index);
            }
        }
    }
    if problems.is_empty() {
        return None;
    }
    related.sort_unstable();
    related.dedup();
    Some(CausalViolation {
        kind: CausalKind::OverClaim,
        key: w.invoke.key.clone(),
        op_index: done.index,
        related,
        explanation: format!(
            "{} of {} by client {} over-claims: {}",
            w.describe(),
            w.invoke.key,
            w.invoke.process,
            problems.join("; ")
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tag, vc};
    use crate::consistency::ConsistencyLevel::Quorum;
    use proptest::prelude::*;

    #[test]
    fn a_read_modify_write_chain_is_clean() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.read(1, "k", Quorum, 2, 3, &["a"], vc(&[(0, 1)]));
        b.invoke_rmw(1, "k", "b", Quorum, 4, vc(&[(0, 1)]));
        b.ok_write(1, 5, tag(5, 0, 2));
        assert_eq!(check_causal(&b.build(), ConflictMode::VectorClock), vec![]);
    }

    #[test]
    fn a_reminted_dot_is_reuse_and_the_context_that_covers_it_over_claims() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.read(1, "k", Quorum, 2, 3, &["a"], vc(&[(0, 1)]));
        // Node 0 lost its counter and mints 0:1 again for a new write, invoked after the read.
        let reused = b.write(0, "k", "b", Quorum, 4, 5, tag(5, 0, 1));
        b.invoke_rmw(1, "k", "c", Quorum, 6, vc(&[(0, 1)]));
        let rmw = b.ok_write(1, 7, tag(7, 0, 2));
        let found = check_causal(&b.build(), ConflictMode::VectorClock);
        let kinds: Vec<(CausalKind, u64)> = found.iter().map(|v| (v.kind, v.op_index)).collect();
        assert_eq!(kinds, vec![(CausalKind::DotReuse, reused), (CausalKind::OverClaim, rmw)]);
        assert_eq!(found[1].related, vec![reused], "{}", found[1].explanation);
    }

    #[test]
    fn a_context_beyond_every_read_over_claims() {
        let mut b = Builder::new();
        b.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        b.write(0, "k", "b", Quorum, 2, 3, tag(3, 0, 2));
        b.read(1, "k", Quorum, 4, 5, &["a"], vc(&[(0, 1)]));
        b.invoke_rmw(1, "k", "c", Quorum, 6, vc(&[(0, 2)]));
        let w = b.ok_write(1, 7, tag(7, 0, 3));
        let found = check_causal(&b.build(), ConflictMode::VectorClock);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].kind, found[0].op_index), (CausalKind::OverClaim, w));
        // LWW contexts carry no causality: only reuse is judged there.
        let mut lww = Builder::new();
        lww.write(0, "k", "a", Quorum, 0, 1, tag(1, 0, 1));
        assert_eq!(check_causal(&lww.build(), ConflictMode::Lww), vec![]);
    }

    /// One step of a sequential, correct store with one minting actor per key: a read by a
    /// client, or a read-modify-write (or blind write) by a client.
    #[derive(Clone, Debug)]
    enum Step {
        Read { client: u32, key: u8 },
        Write { client: u32, key: u8, blind: bool },
    }

    fn arb_steps() -> impl Strategy<Value = Vec<Step>> {
        let step = prop_oneof![
            (0u32..3, 0u8..2).prop_map(|(client, key)| Step::Read { client, key }),
            (0u32..3, 0u8..2, any::<bool>()).prop_map(|(client, key, blind)| Step::Write {
                client,
                key,
                blind
            }),
        ];
        proptest::collection::vec(step, 1..60)
    }

    /// Plays the steps against a correct store. Returns the builder's history and, per ok
    /// write, `(history index of its invoke, of its completion, the highest counter its
    /// client's reads of the key had returned)`.
    fn play(steps: &[Step]) -> (History, Vec<(usize, usize, u64)>) {
        let mut b = Builder::new();
        let mut counter = [0u64; 2];
        let mut last_read: BTreeMap<(u32, u8), u64> = BTreeMap::new();
        let mut writes = Vec::new();
        let mut t = 0;
        for s in steps {
            t += 2;
            match *s {
                Step::Read { client, key } => {
                    let k = format!("k{key}");
                    let c = counter[key as usize];
                    b.read(client, &k, Quorum, t, t + 1, &[], vc(&[(0, c)]));
                    last_read.insert((client, key), c);
                }
                Step::Write { client, key, blind } => {
                    let k = format!("k{key}");
                    let seen = last_read.get(&(client, key)).copied().filter(|_| !blind);
                    let invoke = match seen {
                        Some(c) if c > 0 => b.invoke_rmw(client, &k, "v", Quorum, t, vc(&[(0, c)])),
                        _ => b.invoke_write(client, &k, "v", Quorum, t),
                    };
                    counter[key as usize] += 1;
                    let done = b.ok_write(client, t + 1, tag(t + 1, 0, counter[key as usize]));
                    let read = last_read.get(&(client, key)).copied().unwrap_or(0);
                    writes.push((invoke as usize, done as usize, read));
                }
            }
        }
        (b.build(), writes)
    }

    proptest! {
        #[test]
        fn a_correct_store_shows_no_causal_violation(steps in arb_steps()) {
            let (history, _) = play(&steps);
            prop_assert_eq!(check_causal(&history, ConflictMode::VectorClock), vec![]);
        }

        /// Counter reuse: a later acknowledged write gets the dot of an earlier one of its key.
        #[test]
        fn counter_reuse_is_caught(steps in arb_steps(), pick in any::<prop::sample::Index>()) {
            let (mut history, writes) = play(&steps);
            let pairs: Vec<(usize, usize)> = writes
                .iter()
                .enumerate()
                .flat_map(|(i, a)| writes[i + 1..].iter().map(move |b| (a.1, b.1)))
                .filter(|(a, b)| history.ops[*a].key == history.ops[*b].key)
                .collect();
            prop_assume!(!pairs.is_empty());
            let (first, later) = pairs[pick.index(pairs.len())];
            let dot = history.ops[first].version.expect("ok write").dot;
            history.ops[later].version.as_mut().expect("ok write").dot = dot;
            let found = check_causal(&history, ConflictMode::VectorClock);
            prop_assert!(
                found.iter().any(|v| v.kind == CausalKind::DotReuse
                    && v.op_index == later as u64
                    && v.related == vec![first as u64]),
                "{:?}", found
            );
        }

        /// Over-claiming: a write's context claims one more version than its client read.
        #[test]
        fn over_claiming_is_caught(steps in arb_steps(), pick in any::<prop::sample::Index>()) {
            let (mut history, writes) = play(&steps);
            prop_assume!(!writes.is_empty());
            let (invoke, done, read) = writes[pick.index(writes.len())];
            history.ops[invoke].write_context = Some(vc(&[(0, read + 1)]));
            let found = check_causal(&history, ConflictMode::VectorClock);
            prop_assert!(
                found.iter().any(|v| v.kind == CausalKind::OverClaim && v.op_index == done as u64),
                "{:?}", found
            );
        }
    }
}
