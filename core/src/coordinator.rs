//! The coordinator's per-request state machines. They hold no I/O and no clock: [`crate::node::Node`]
//! feeds them replies and deadlines and turns their decisions into messages and events.

use crate::consistency::ConsistencyLevel;
use crate::id::NodeId;
use crate::time::Instant;
use crate::token::Token;
use crate::version::{CausalContext, ConflictMode, Siblings, Version, VersionTag};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// Why a request failed after it was accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[serde(tag = "error", rename_all = "kebab-case")]
pub enum RequestError {
    /// Refused up front: too few live replicas. Nothing was written. (A write at ANY in
    /// vector-clock mode is refused this way when no natural replica is alive: a hint would
    /// satisfy ANY, but only a natural replica can mint the version's dot.)
    #[error("{}", unavailable_text(*cl, *required, *alive))]
    Unavailable {
        /// Level requested.
        cl: ConsistencyLevel,
        /// Replies required.
        required: usize,
        /// Live targets.
        alive: usize,
    },
    /// Too few replies before the timeout. A write may have been applied by some replicas.
    #[error("timeout: {cl} needs {required} replies, {received} received in time")]
    Timeout {
        /// Level requested.
        cl: ConsistencyLevel,
        /// Replies required.
        required: usize,
        /// Replies received.
        received: usize,
    },
}

fn unavailable_text(cl: ConsistencyLevel, required: usize, alive: usize) -> String {
    if cl == ConsistencyLevel::Any {
        // ANY is the lowest level: there is nothing lower to suggest.
        return "unavailable: a write at ANY in vector-clock mode needs one live natural replica to mint its version, and none is alive; bring a replica of the key back".into();
    }
    format!(
        "unavailable: {cl} needs {required} live replicas, {alive} alive; bring replicas back or use a lower consistency level"
    )
}

/// A successful reply to a client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "kebab-case")]
pub enum Reply {
    /// A write or delete was acknowledged by enough replicas.
    Written {
        /// The version created.
        tag: VersionTag,
        /// Replicas that had acknowledged when the client was answered.
        acks: Vec<NodeId>,
        /// Targets this coordinator stored a hint for by then.
        hinted: Vec<NodeId>,
    },
    /// A read got enough replies.
    Read {
        /// Merged versions (tombstones included; `values()` gives live values).
        value: Siblings,
        /// Context to send with a following write.
        context: CausalContext,
        /// Replicas whose replies were merged.
        replied: Vec<NodeId>,
    },
}

/// What a write decided after an input.
#[derive(Debug, PartialEq)]
pub enum WriteProgress {
    /// Nothing to report yet.
    Waiting,
    /// Answer the client; keep collecting acknowledgements (stragglers get hints at the deadline).
    Reply(Result<Reply, RequestError>),
    /// The write is over; answer the client if not done yet.
    Done(Option<Result<Reply, RequestError>>),
}

/// A write being coordinated.
#[derive(Clone, Debug)]
pub struct WriteOp {
    /// Key token.
    pub token: Token,
    /// The key, raw bytes as the client sent them.
    pub key: Vec<u8>,
    /// Level requested.
    pub cl: ConsistencyLevel,
    /// Acknowledgements required: `block_for(RF) + pending` (1 for ANY, where a hint counts).
    pub required: usize,
    /// Natural ∪ pending replicas.
    pub targets: Vec<NodeId>,
    /// The pending (gaining) replicas among the targets.
    pub pending: Vec<NodeId>,
    /// Targets that must acknowledge on top of the level (`sync-dual-write`'s joiner).
    pub must: Vec<NodeId>,
    /// Best-effort copies: sent, never counted, never hinted (`dual-write-cutover`'s joiner).
    pub shadow: Vec<NodeId>,
    /// Replicas that acknowledged.
    pub acks: BTreeSet<NodeId>,
    /// Replicas sent a mutation and not yet acknowledged.
    pub outstanding: BTreeSet<NodeId>,
    /// Targets a hint was stored for.
    pub hinted: BTreeSet<NodeId>,
    /// The version, once known (minted locally, by the leader, or an LWW timestamp).
    pub version: Option<Version>,
    /// The replica asked to mint the version, while waiting for it.
    pub awaiting_mint: Option<NodeId>,
    /// When the coordinator gives up.
    pub deadline: Instant,
    /// The placement epoch of the token this write was planned (or last re-planned) under.
    pub epoch: u64,
    /// Times a replica's refusal made the coordinator re-plan.
    pub replans: u32,
    /// Replicas asked to mint so far (a mint falls back to the next live natural replica).
    pub mint_asked: BTreeSet<NodeId>,
    /// Mint requests sent to the current minting replica.
    pub mint_attempts: u32,
    /// Replicas asked to mint and then replaced by another (silent or late): each may still
    /// mint a version of this write. The write waits for them until its deadline, and a version
    /// one of them minted late is replicated to the other targets ([`WriteOp::late_minted`]),
    /// so it never stays on one replica.
    pub abandoned: BTreeSet<NodeId>,
    /// What the fan-out sends: every version the minting replica held after minting.
    pub fanout: Option<std::sync::Arc<Siblings>>,
    /// The client's value and context, kept until a replica minted the version (a mint may be
    /// asked again of another replica).
    pub pending_value: Option<(Option<Vec<u8>>, crate::version::VClock)>,
    replied: bool,
    expired: bool,
}

impl WriteOp {
    /// A new write.
    pub fn new(
        token: Token,
        key: Vec<u8>,
        cl: ConsistencyLevel,
        required: usize,
        targets: Vec<NodeId>,
        pending: Vec<NodeId>,
        deadline: Instant,
    ) -> Self {
        WriteOp {
            token,
            key,
            cl,
            required,
            targets,
            pending,
            must: Vec::new(),
            shadow: Vec::new(),
            acks: BTreeSet::new(),
            outstanding: BTreeSet::new(),
            hinted: BTreeSet::new(),
            version: None,
            awaiting_mint: None,
            deadline,
            epoch: 0,
            replans: 0,
            mint_asked: BTreeSet::new(),
            mint_attempts: 0,
            abandoned: BTreeSet::new(),
            fanout: None,
            pending_value: None,
            replied: false,
            expired: false,
        }
    }
    /// The natural replica to ask for the version next, among the `live` ones in preference
    /// order. The first retry asks the same replica again (a lost Mint or MintAck: the replica
    /// answers a repeated Mint with the version it already minted); a replica silent after
    /// that, or convicted, or refusing, is replaced by the next live one (it may have crashed
    /// without being convicted yet). A replica that minted and then went silent leaves a
    /// second, unacknowledged version of the write: the price of not waiting for conviction.
    pub fn next_minter(&self, live: &[NodeId]) -> Option<NodeId> {
        let silent = self.mint_attempts >= 2;
        match self.awaiting_mint {
            Some(current) if live.contains(&current) && !silent => Some(current),
            _ => live
                .iter()
                .copied()
                .find(|n| !self.mint_asked.contains(n))
                .or_else(|| live.first().copied()),
        }
    }

    /// Records that `minter` is asked for the version (again, or instead of the previous one).
    pub fn asking_mint(&mut self, minter: NodeId) {
        self.mint_attempts =
            if self.awaiting_mint == Some(minter) { self.mint_attempts + 1 } else { 1 };
        if let Some(previous) = self.awaiting_mint.replace(minter)
            && previous != minter
        {
            self.outstanding.remove(&previous);
            self.abandoned.insert(previous);
        }
        self.mint_asked.insert(minter);
        self.outstanding.insert(minter);
    }

    /// A replica asked to mint answered with the version and every version it holds for the key
    /// (what is fanned out). Returns false when the answer is not wanted (already known, or
    /// from a replica never asked): see [`WriteOp::late_minted`] for those.
    pub fn minted(
        &mut self,
        from: NodeId,
        version: Version,
        siblings: std::sync::Arc<Siblings>,
    ) -> bool {
        if self.version.is_some() || !self.mint_asked.contains(&from) {
            return false;
        }
        if let Some(minter) = self.awaiting_mint.take()
            && minter != from
        {
            // An abandoned replica answered first: the one asked after it may mint too.
            self.outstanding.remove(&minter);
            self.abandoned.insert(minter);
        }
        self.abandoned.remove(&from);
        self.outstanding.remove(&from);
        if self.targets.contains(&from) {
            self.acks.insert(from);
        }
        self.version = Some(version);
        self.fanout = Some(siblings);
        self.pending_value = None;
        true
    }

    /// A replica this write had moved on from minted a version all the same (its Mint arrived
    /// late, or its MintAck did). Returns whether it was such a replica: the caller replicates
    /// the version to [`WriteOp::late_targets`], since no client will read-repair it for sure.
    pub fn late_minted(&mut self, from: NodeId) -> bool {
        self.abandoned.remove(&from)
    }

    /// The targets a version minted late by `minter` is sent to: every target but the minter.
    pub fn late_targets(&self, minter: NodeId) -> Vec<NodeId> {
        self.targets.iter().copied().filter(|t| *t != minter).collect()
    }

    /// A replica refused to mint: it is no longer awaited, and when the refusal was only a
    /// stale plan (`stale`) it may be asked again once the write is re-planned
    /// ([`WriteOp::retarget`]) on the placement just learned.
    pub fn mint_refused(&mut self, from: NodeId, stale: bool) {
        self.abandoned.remove(&from);
        if self.awaiting_mint == Some(from) {
            self.awaiting_mint = None;
            self.outstanding.remove(&from);
        }
        self.replans += 1;
        if stale {
            self.mint_asked.remove(&from);
        }
    }

    /// A target acknowledged the mutation. Returns whether it was awaited.
    pub fn acked(&mut self, from: NodeId) -> bool {
        if !self.outstanding.remove(&from) {
            return false;
        }
        self.acks.insert(from);
        true
    }

    /// Re-plans on a newer placement (`epoch`), counted as one re-plan: see
    /// [`WriteOp::retarget`].
    pub fn replan(
        &mut self,
        epoch: u64,
        targets: Vec<NodeId>,
        pending: Vec<NodeId>,
        must: Vec<NodeId>,
        required: usize,
    ) {
        self.replans += 1;
        self.retarget(epoch, targets, pending, must, required);
    }

    /// Takes a newer placement (`epoch`): keeps the acknowledgements of targets that are still
    /// targets, and takes the new targets and requirement (ANY keeps its single ack). The epoch
    /// never moves without the targets: a write whose requests carry a newer epoch than its
    /// targets were planned under would pass the fence on replicas that lost the key.
    pub fn retarget(
        &mut self,
        epoch: u64,
        targets: Vec<NodeId>,
        pending: Vec<NodeId>,
        must: Vec<NodeId>,
        required: usize,
    ) {
        self.epoch = epoch;
        self.acks.retain(|n| targets.contains(n));
        self.outstanding.retain(|n| targets.contains(n));
        self.targets = targets;
        self.pending = pending;
        self.must = must;
        if self.cl != ConsistencyLevel::Any {
            self.required = required;
        }
    }

    /// Marks the deadline as passed.
    pub fn expire(&mut self) {
        self.expired = true;
    }

    /// Whether the client has been answered.
    pub fn replied(&self) -> bool {
        self.replied
    }

    fn satisfied(&self) -> bool {
        // Hints never count toward the level, except for ANY (Cassandra).
        let hints = if self.cl == ConsistencyLevel::Any { self.hinted.len() } else { 0 };
        self.version.is_some()
            && self.acks.len() + hints >= self.required
            && self.must.iter().all(|n| self.acks.contains(n))
    }

    /// Decides what to do after an input.
    pub fn progress(&mut self) -> WriteProgress {
        let mut reply = None;
        if !self.replied {
            if self.satisfied() {
                let version = self.version.as_ref().expect("satisfied implies a version");
                reply = Some(Ok(Reply::Written {
                    tag: version.tag(),
                    acks: self.acks.iter().copied().collect(),
                    hinted: self.hinted.iter().copied().collect(),
                }));
                self.replied = true;
            } else if self.expired {
                reply = Some(Err(RequestError::Timeout {
                    cl: self.cl,
                    required: self.required,
                    received: self.acks.len(),
                }));
                self.replied = true;
            }
        }
        let done = self.expired
            || (self.awaiting_mint.is_none()
                && self.outstanding.is_empty()
                && self.abandoned.is_empty());
        match (done && self.replied, reply) {
            (true, reply) => WriteProgress::Done(reply),
            (false, Some(r)) => WriteProgress::Reply(r),
            (false, None) => WriteProgress::Waiting,
        }
    }
}

/// A read being coordinated.
#[derive(Clone, Debug)]
pub struct ReadOp {
    /// Key token.
    pub token: Token,
    /// The key, raw bytes as the client sent them.
    pub key: Vec<u8>,
    /// Level requested.
    pub cl: ConsistencyLevel,
    /// Replies required.
    pub required: usize,
    /// Replicas contacted (the live natural ones, plus `sync-dual-write`'s joiner).
    pub targets: Vec<NodeId>,
    /// The targets whose replies count toward the level: the natural replicas. A joiner asked
    /// by `sync-dual-write` is read and repaired but never counted (it may not hold the data).
    pub counted: Vec<NodeId>,
    /// The placement epoch of the token this read was planned under.
    pub epoch: u64,
    /// Times a replica's refusal made the coordinator re-plan.
    pub replans: u32,
    /// Replies received.
    pub replies: BTreeMap<NodeId, Siblings>,
    /// When the coordinator gives up.
    pub deadline: Instant,
    replied: bool,
    expired: bool,
}

impl ReadOp {
    /// A new read.
    pub fn new(
        token: Token,
        key: Vec<u8>,
        cl: ConsistencyLevel,
        required: usize,
        targets: Vec<NodeId>,
        deadline: Instant,
    ) -> Self {
        ReadOp {
            token,
            key,
            cl,
            required,
            counted: targets.clone(),
            targets,
            epoch: 0,
            replans: 0,
            replies: BTreeMap::new(),
            deadline,
            replied: false,
            expired: false,
        }
    }

    /// Records a replica's reply (ignored from non-targets and duplicates).
    pub fn reply(&mut self, from: NodeId, value: Siblings) {
        if self.targets.contains(&from) {
            self.replies.entry(from).or_insert(value);
        }
    }

    /// Marks the deadline as passed.
    pub fn expire(&mut self) {
        self.expired = true;
    }

    /// Every reply merged.
    pub fn merged(&self, mode: ConflictMode) -> Siblings {
        let mut merged = Siblings::new();
        for v in self.replies.values() {
            merged.merge(v, mode);
        }
        merged
    }

    /// The client's answer, once (success as soon as `required` replies are in).
    pub fn take_reply(&mut self, mode: ConflictMode) -> Option<Result<Reply, RequestError>> {
        if self.replied {
            return None;
        }
        let counted = self.replies.keys().filter(|n| self.counted.contains(n)).count();
        if counted >= self.required {
            self.replied = true;
            let value = self.merged(mode);
            let context = value.context(mode);
            return Some(Ok(Reply::Read {
                value,
                context,
                replied: self.replies.keys().copied().collect(),
            }));
        }
        if self.expired {
            self.replied = true;
            return Some(Err(RequestError::Timeout {
                cl: self.cl,
                required: self.required,
                received: counted,
            }));
        }
        None
    }

    /// Whether every target answered or the deadline passed.
    pub fn finished(&self) -> bool {
        self.expired || self.replies.len() == self.targets.len()
    }

    /// Replicas whose reply lacked something the merged state has, with what to send them.
    pub fn stale_replicas(&self, mode: ConflictMode) -> Vec<(NodeId, Siblings)> {
        let merged = self.merged(mode);
        // Merged sets are canonical (sorted by dot) and a dot names one version, so a reply is
        // up to date exactly when it holds the same dots.
        let same = |v: &Siblings| {
            v.0.len() == merged.0.len() && v.0.iter().zip(&merged.0).all(|(a, b)| a.dot == b.dot)
        };
        self.replies.iter().filter(|(_, v)| !same(v)).map(|(n, _)| (*n, merged.clone())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::version::{Dot, VClock};

    fn write_op(cl: ConsistencyLevel, required: usize, targets: Vec<NodeId>) -> WriteOp {
        WriteOp::new(0, b"k".to_vec(), cl, required, targets, vec![], Instant(100))
    }

    fn version(counter: u64, v: &str) -> Version {
        Version {
            dot: Dot { node: NodeId(1), counter },
            context: VClock::new(),
            timestamp: counter,
            value: Some(v.as_bytes().to_vec()),
        }
    }

    /// `sync-dual-write` reads its joiner too; an empty answer from it must not count toward the
    /// level (it gave stale reads when it did).
    #[test]
    fn a_read_counts_only_its_counted_targets() {
        let targets = vec![NodeId(1), NodeId(2), NodeId(3)];
        let mut op =
            ReadOp::new(0, b"k".to_vec(), ConsistencyLevel::Quorum, 2, targets, Instant(100));
        op.counted = vec![NodeId(1), NodeId(2)];
        op.reply(NodeId(3), Siblings::new());
        op.reply(NodeId(1), Siblings::one(version(1, "a")));
        assert_eq!(
            op.take_reply(ConflictMode::VectorClock),
            None,
            "the joiner's reply is not counted"
        );
        op.reply(NodeId(2), Siblings::one(version(1, "a")));
        assert!(matches!(op.take_reply(ConflictMode::VectorClock), Some(Ok(Reply::Read { .. }))));
    }

    /// The mint goes to the first live replica, is asked once more of a silent one, then falls
    /// back to the next; an answer from a replica never asked is ignored.
    #[test]
    fn a_mint_is_asked_twice_then_falls_back() {
        let live = [NodeId(1), NodeId(2), NodeId(3)];
        let mut w = write_op(ConsistencyLevel::Quorum, 2, live.to_vec());
        let first = w.next_minter(&live).unwrap();
        assert_eq!(first, NodeId(1));
        w.asking_mint(first);
        assert_eq!(w.next_minter(&live), Some(NodeId(1)), "asked once more");
        w.asking_mint(NodeId(1));
        assert_eq!(w.next_minter(&live), Some(NodeId(2)), "silent twice: the next replica");
        w.asking_mint(NodeId(2));
        assert!(!w.outstanding.contains(&NodeId(1)) && w.outstanding.contains(&NodeId(2)));
        let siblings = std::sync::Arc::new(Siblings::new());
        assert!(!w.minted(NodeId(3), version(1, "v"), siblings.clone()), "never asked");
        assert!(w.minted(NodeId(2), version(1, "v"), siblings));
        assert!(w.acks.contains(&NodeId(2)) && w.awaiting_mint.is_none());
    }

    /// A re-plan keeps only the acknowledgements of targets that are still targets.
    #[test]
    fn a_replan_keeps_the_acks_of_remaining_targets() {
        let mut w = write_op(ConsistencyLevel::Quorum, 2, vec![NodeId(1), NodeId(2), NodeId(3)]);
        w.outstanding.extend([NodeId(1), NodeId(2), NodeId(3)]);
        assert!(w.acked(NodeId(1)) && w.acked(NodeId(3)));
        assert!(!w.acked(NodeId(3)), "a second ack is not awaited");
        w.replan(7, vec![NodeId(1), NodeId(2), NodeId(4)], vec![NodeId(4)], vec![], 3);
        assert_eq!(w.acks, BTreeSet::from([NodeId(1)]));
        assert_eq!((w.epoch, w.required, w.replans), (7, 3, 1));
    }

    #[test]
    fn write_replies_at_required_acks_and_finishes_when_all_answered() {
        let targets = vec![NodeId(1), NodeId(2), NodeId(3)];
        let mut w = write_op(ConsistencyLevel::Quorum, 2, targets);
        w.version = Some(version(1, "a"));
        w.acks.insert(NodeId(1));
        w.outstanding.extend([NodeId(2), NodeId(3)]);
        assert_eq!(w.progress(), WriteProgress::Waiting);
        w.outstanding.remove(&NodeId(2));
        w.acks.insert(NodeId(2));
        match w.progress() {
            WriteProgress::Reply(Ok(Reply::Written { acks, .. })) => {
                assert_eq!(acks, vec![NodeId(1), NodeId(2)])
            }
            other => panic!("{other:?}"),
        }
        w.outstanding.remove(&NodeId(3));
        w.acks.insert(NodeId(3));
        assert_eq!(w.progress(), WriteProgress::Done(None));
    }

    #[test]
    fn write_times_out_with_received_count() {
        let mut w = write_op(ConsistencyLevel::All, 3, vec![NodeId(1)]);
        w.version = Some(version(1, "a"));
        w.acks.insert(NodeId(1));
        w.outstanding.insert(NodeId(2));
        w.expire();
        assert_eq!(
            w.progress(),
            WriteProgress::Done(Some(Err(RequestError::Timeout {
                cl: ConsistencyLevel::All,
                required: 3,
                received: 1
            })))
        );
    }

    #[test]
    fn any_is_satisfied_by_a_hint() {
        let mut w = write_op(ConsistencyLevel::Any, 1, vec![NodeId(2)]);
        w.version = Some(version(1, "a"));
        w.hinted.insert(NodeId(2));
        assert!(matches!(w.progress(), WriteProgress::Done(Some(Ok(_)))));
    }

    #[test]
    fn read_merges_and_finds_stale_replicas() {
        let mut r = ReadOp::new(
            0,
            b"k".to_vec(),
            ConsistencyLevel::Quorum,
            2,
            vec![NodeId(1), NodeId(2), NodeId(3)],
            Instant(100),
        );
        let old = Siblings::one(version(1, "old"));
        let mut new = old.clone();
        new.apply(
            Version {
                context: {
                    let mut c = VClock::new();
                    c.add_dot(Dot { node: NodeId(1), counter: 1 }, 0);
                    c
                },
                ..version(2, "new")
            },
            ConflictMode::VectorClock,
        );
        r.reply(NodeId(1), new.clone());
        assert_eq!(r.take_reply(ConflictMode::VectorClock), None);
        r.reply(NodeId(2), old.clone());
        match r.take_reply(ConflictMode::VectorClock) {
            Some(Ok(Reply::Read { value, replied, .. })) => {
                assert_eq!(value.values(), vec![b"new".to_vec()]);
                assert_eq!(replied, vec![NodeId(1), NodeId(2)]);
            }
            other => panic!("{other:?}"),
        }
        assert!(!r.finished());
        r.reply(NodeId(3), new.clone());
        assert!(r.finished());
        let stale: Vec<NodeId> =
            r.stale_replicas(ConflictMode::VectorClock).into_iter().map(|(n, _)| n).collect();
        assert_eq!(stale, vec![NodeId(2)]);
    }
}
