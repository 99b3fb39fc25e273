//! Fencing, both sides of it. A replica mints versions only for keys it replicates, and refuses
//! a request planned under an older placement epoch than its own for the key (`fence`,
//! `reject`). A coordinator whose request was refused catches up and plans it again: the epoch
//! never moves without the targets (`reask_mint`, `replan_write`, `replan_read`,
//! `retarget_hint`). Barriers wait for the requests in flight (`request_finished`).

use super::{Node, NodeTrace};
use crate::consistency::ConsistencyLevel;
use crate::id::{NodeId, RequestId};
use crate::message::{Message, RejectReason, Rejectable};
use crate::storage::{Storage, StorageError};
use crate::time::Instant;
use crate::token::Token;
use crate::version::{Dot, Siblings, VClock, Version};
use std::collections::BTreeMap;

/// Re-plans of one request after replicas refused it as stale, before giving up on them.
const MAX_REPLANS: u32 = 3;

impl<S: Storage> Node<S> {
    /// Mints a new version as a natural replica and applies it; returns it with every version
    /// the replica now holds for the key (what the coordinator fans out).
    ///
    /// The dot counter is above every counter of this node the key holds or the context names
    /// (so it continues this node's chain of dots for the key, see [`crate::version`]) and above
    /// every counter this node ever minted for any key (the durable node-wide floor): a purged
    /// tombstone or a wiped disk can never make a counter come back.
    pub(super) fn mint(
        &mut self,
        token: Token,
        key: &[u8],
        value: Option<Vec<u8>>,
        mut context: VClock,
        timestamp: u64,
    ) -> Result<(Version, Siblings), StorageError> {
        let current = self.storage.get(token, key)?.unwrap_or_default();
        // Contexts are validated (≤ MAX_CONTEXT_COUNTER) and stored counters come from here.
        let seen = current.max_counter(self.id).max(context.get(self.id)).saturating_add(1);
        let counter = self.dot_counter.claim(seen, &mut self.storage)?;
        context.prune(crate::version::MAX_CLOCK_ENTRIES);
        let version = Version { dot: Dot { node: self.id, counter }, context, timestamp, value };
        let mut next = current;
        next.apply(version.clone(), self.config.conflict_mode);
        self.storage.put(token, key, next.clone())?;
        Ok((version, next))
    }

    /// Refuses a request planned under an older placement epoch than this node knows for
    /// `token` (every token's when `None`); returns whether it refused.
    pub(super) fn fence(
        &mut self,
        from: NodeId,
        request: Rejectable,
        carried: u64,
        token: Option<Token>,
    ) -> bool {
        // Only the fenced strategies (`staged`, `sync-dual-write`) check: the others are the
        // reference documents' designs, whose anomalies (a coordinator that learned of a change
        // late) the explorer must still show.
        if !self.config.join_strategy.uses_barriers() {
            return false;
        }
        let Some(topology) = &self.topology else { return false };
        let mine = match token {
            Some(t) => topology.epoch_for(t),
            None => topology.max_epoch(),
        };
        if carried >= mine {
            return false;
        }
        self.reject(from, request, mine, RejectReason::StaleEpoch { carried });
        true
    }

    pub(super) fn reject(
        &mut self,
        from: NodeId,
        request: Rejectable,
        epoch: u64,
        reason: RejectReason,
    ) {
        self.stats.refused += 1;
        self.trace(NodeTrace::Fenced { from, request, epoch, reason });
        let states = self.gossiper.snapshot();
        self.send(from, Message::Rejected { request, epoch, reason, states });
    }

    /// Whether this node mints versions of `token`: a natural (read) replica of it that is
    /// serving (NORMAL or leaving), or a joiner in MID_JOIN (it streamed every range and reads
    /// already moved to it; its dots come from its own durable counter), and not catching up on
    /// the topology. A Fresh or BOOT node never mints: it may lack versions of the key.
    pub(super) fn mints(&self, token: Token) -> bool {
        let replica = self.check_serving().is_ok()
            || (!self.stopped
                && !self.catching_up
                && self.view.status(self.id) == Some(crate::gossip::Status::MidJoin));
        replica
            && self.topology.as_ref().is_some_and(|t| t.ring().replicas(token).contains(&self.id))
    }

    pub(super) fn on_rejected(
        &mut self,
        now: Instant,
        from: NodeId,
        request: Rejectable,
        epoch: u64,
        reason: RejectReason,
        states: BTreeMap<NodeId, crate::gossip::EndpointState>,
    ) {
        // Catch up first: the refusal carries what the replica knows.
        self.apply_pushed(now, from, states);
        match request {
            Rejectable::Mutation(op) => self.replan_write(now, RequestId(op), from, epoch),
            Rejectable::Mint(op) => self.reask_mint(now, RequestId(op), from, reason),
            Rejectable::Read(op) => self.replan_read(now, RequestId(op), from),
            Rejectable::Hint(id) => self.retarget_hint(now, id),
            Rejectable::Stream(session) => self.on_stream_rejected(now, from, session),
            Rejectable::Merkle(session) => self.retry_merkle(now, session),
        }
    }

    /// A replica refused to mint: ask again (the same replica, if the refusal was only a stale
    /// plan, or the next live one). A stale plan re-plans the write's targets on the placement
    /// just learned, not only its epoch: mutations carrying the new epoch to the old targets
    /// would pass the fence of a replica that lost the key, and the write would skip the joiner.
    pub(super) fn reask_mint(
        &mut self,
        now: Instant,
        request: RequestId,
        from: NodeId,
        reason: RejectReason,
    ) {
        let Some(w) = self.writes.get(&request) else { return };
        if w.version.is_some() {
            return;
        }
        let (token, cl) = (w.token, w.cl);
        let stale = matches!(reason, RejectReason::StaleEpoch { .. });
        let plan = (stale && self.topology.is_some()).then(|| self.plan_write(token, cl));
        let w = self.writes.get_mut(&request).expect("op");
        w.mint_refused(from, stale);
        if let Some(plan) = plan {
            w.retarget(plan.epoch, plan.targets, plan.pending, plan.must, plan.required);
        }
        if w.replans <= MAX_REPLANS {
            self.ask_mint(now, request);
        }
        self.progress_write(request);
    }

    /// A target refused a mutation as stale: re-plan the write on the placement just learned,
    /// keep the acknowledgements of targets that are still targets, and send the version to
    /// the new ones (the refusing replica again, if it still is one).
    pub(super) fn replan_write(
        &mut self,
        now: Instant,
        request: RequestId,
        from: NodeId,
        their_epoch: u64,
    ) {
        let Some(op) = self.writes.get_mut(&request) else { return };
        op.outstanding.remove(&from);
        let (token, cl, replans) = (op.token, op.cl, op.replans);
        if replans >= MAX_REPLANS || self.topology.is_none() {
            return self.progress_write(request);
        }
        let plan = self.plan_write(token, cl);
        if plan.epoch < their_epoch {
            // Could not catch up with that replica: it counts as not answering.
            return self.progress_write(request);
        }
        let op = self.writes.get_mut(&request).expect("op");
        op.replan(plan.epoch, plan.targets, plan.pending, plan.must, plan.required);
        if op.version.is_some() {
            self.fan_out(now, request);
        }
        self.progress_write(request);
    }

    /// A replica refused a read as stale: re-plan it on the placement just learned.
    pub(super) fn replan_read(&mut self, now: Instant, request: RequestId, from: NodeId) {
        let Some(op) = self.reads.get_mut(&request) else { return };
        if op.replans >= MAX_REPLANS || self.topology.is_none() {
            op.targets.retain(|n| *n != from);
            op.counted.retain(|n| *n != from);
            return self.progress_read(request);
        }
        let (token, cl) = (op.token, op.cl);
        let plan = self.plan_read(token, cl);
        let op = self.reads.get_mut(&request).expect("op");
        op.replans += 1;
        op.epoch = plan.epoch;
        op.replies.retain(|n, _| plan.targets.contains(n));
        op.targets = plan.targets;
        op.counted = plan.counted;
        op.required = plan.required;
        self.send_reads(now, request);
        self.progress_read(request);
    }

    /// A hint's target refused it as planned under an older placement: hand the versions to
    /// every current write replica of the key instead (hints for the others, a local merge for
    /// this node), then drop the old hint.
    pub(super) fn retarget_hint(&mut self, now: Instant, id: u64) {
        self.hints_in_flight.remove(&id);
        let hint = match self.storage.hints() {
            Ok(h) => h.into_iter().find(|h| h.id == id),
            Err(e) => return self.fatal(e),
        };
        let Some(hint) = hint else { return };
        if self.topology.is_none() {
            return;
        }
        let plan = self.plan_write(hint.token, ConsistencyLevel::One);
        for target in plan.targets {
            if target == self.id {
                if let Err(e) = self.merge_local(hint.token, &hint.key, &hint.value) {
                    return self.fatal(e);
                }
            } else {
                self.put_hint(
                    now,
                    target,
                    hint.token,
                    hint.key.clone(),
                    hint.value.clone(),
                    plan.epoch,
                );
            }
        }
        if let Err(e) = self.storage.remove_hint(id) {
            self.fatal(e);
        }
    }

    /// A request finished: barriers waiting for it may now be acknowledged.
    pub(super) fn request_finished(&mut self, request: RequestId) {
        if self.pending_barrier_acks.is_empty() {
            return;
        }
        for p in &mut self.pending_barrier_acks {
            p.waiting.remove(&request);
        }
        let (ready, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.pending_barrier_acks)
            .into_iter()
            .partition(|p| p.waiting.is_empty());
        self.pending_barrier_acks = waiting;
        for p in ready {
            self.send(p.from, Message::BarrierAck { epoch: p.epoch });
        }
    }
}
