//! The coordinator's side of client requests: a read or write is planned over the placement
//! (natural replicas plus pending ones), a vector-clock write asks a replica to mint its version,
//! the mutations fan out, a replica that does not answer gets a hint, and the request completes
//! once its consistency level is met. Hints are replayed from here too.

use super::{Event, InvalidRequest, MAX_CONTEXT_COUNTER, Node, NodeTrace, Timer};
use crate::consistency::ConsistencyLevel;
use crate::coordinator::RequestError;
use crate::coordinator::{ReadOp, WriteOp, WriteProgress};
use crate::id::{NodeId, RequestId};
use crate::message::Message;
use crate::storage::{Hint, Storage};
use crate::time::Instant;
use crate::token::{Token, token_for};
use crate::topology::WriteRole;
use crate::version::{CausalContext, ConflictMode, Dot, Siblings, VClock, Version};
use std::collections::{BTreeMap, BTreeSet};

/// Where a read goes.
pub(super) struct ReadPlan {
    pub(super) targets: Vec<NodeId>,
    pub(super) counted: Vec<NodeId>,
    pub(super) alive_counted: usize,
    pub(super) required: usize,
    pub(super) epoch: u64,
}

/// Where a write goes.
pub(super) struct WritePlan {
    pub(super) natural: Vec<NodeId>,
    pub(super) pending: Vec<NodeId>,
    pub(super) must: Vec<NodeId>,
    pub(super) shadow: Vec<NodeId>,
    pub(super) required: usize,
    pub(super) targets: Vec<NodeId>,
    pub(super) epoch: u64,
}

/// How a coordinator plans a request: whom it asks and how many answers it waits for. The
/// explorer shows it as an operation's consistency arithmetic ([`Node::plan`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Plan {
    /// The natural replicas of the key (for a read, only those this node believes alive).
    pub natural: Vec<NodeId>,
    /// Pending replicas a write also goes to (joining or gaining nodes), or a read's joiner.
    pub pending: Vec<NodeId>,
    /// Acknowledgements (writes) or replies (reads) the coordinator waits for.
    pub required: usize,
    /// The replication factor.
    pub rf: usize,
}

impl<S: Storage> Node<S> {
    /// How this node would plan a read or write of `key` at `cl` now (`None` before it has a
    /// topology): the same planning `put` and `get` use.
    pub fn plan(&self, key: &[u8], cl: ConsistencyLevel, write: bool) -> Option<Plan> {
        let rf = self.topology.as_ref()?.rf();
        let token = token_for(key);
        Some(if write {
            let p = self.plan_write(token, cl);
            Plan { natural: p.natural, pending: p.pending, required: p.required, rf }
        } else {
            let p = self.plan_read(token, cl);
            let pending = p.targets.iter().filter(|t| !p.counted.contains(t)).copied().collect();
            Plan { natural: p.counted, pending, required: p.required, rf }
        })
    }

    /// Writes `value` under `key` at `cl`, superseding what `context` covers.
    pub fn put(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        value: Vec<u8>,
        cl: ConsistencyLevel,
        context: CausalContext,
    ) -> Result<RequestId, InvalidRequest> {
        if value.len() > self.config.max_value_bytes {
            return Err(InvalidRequest::ValueTooLarge {
                len: value.len(),
                max: self.config.max_value_bytes,
            });
        }
        self.start_write(now, key, Some(value), cl, context)
    }

    /// Deletes `key` at `cl` (a tombstone superseding what `context` covers).
    pub fn delete(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        cl: ConsistencyLevel,
        context: CausalContext,
    ) -> Result<RequestId, InvalidRequest> {
        self.start_write(now, key, None, cl, context)
    }

    /// Reads `key` at `cl`.
    pub fn get(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        cl: ConsistencyLevel,
    ) -> Result<RequestId, InvalidRequest> {
        self.check_serving()?;
        self.validate_key(&key)?;
        if cl == ConsistencyLevel::Any {
            return Err(InvalidRequest::AnyForRead);
        }
        let request = self.new_request();
        self.stats.reads += 1;
        let token = token_for(&key);
        let plan = self.plan_read(token, cl);
        if plan.alive_counted < plan.required {
            self.stats.unavailable += 1;
            self.events.push_back(Event::Reply {
                request,
                result: Err(RequestError::Unavailable {
                    cl,
                    required: plan.required,
                    alive: plan.alive_counted,
                }),
            });
            return Ok(request);
        }
        let deadline = now + self.config.read_timeout;
        let mut op = ReadOp::new(token, key, cl, plan.required, plan.targets, deadline);
        op.counted = plan.counted;
        op.epoch = plan.epoch;
        self.timers.insert((deadline, Timer::Request(request)));
        self.reads.insert(request, op);
        self.send_reads(now, request);
        self.progress_read(request);
        Ok(request)
    }

    /// Read placement of `token`: the live natural replicas (counted), plus `sync-dual-write`'s
    /// joiner, which is read and repaired but never counted.
    pub(super) fn plan_read(&self, token: Token, cl: ConsistencyLevel) -> ReadPlan {
        let topology = self.topology.as_ref().expect("serving implies a topology");
        let natural: Vec<NodeId> = topology.ring().replicas(token).to_vec();
        let required = cl.block_for(topology.rf()).min(natural.len().max(1));
        let counted: Vec<NodeId> = natural.iter().copied().filter(|n| self.is_alive(*n)).collect();
        let mut targets = counted.clone();
        for n in topology.pending_with_role(token, WriteRole::Required) {
            if !targets.contains(&n) && self.is_alive(n) {
                targets.push(n);
            }
        }
        ReadPlan {
            alive_counted: counted.len(),
            required,
            counted,
            targets,
            epoch: topology.epoch_for(token),
        }
    }

    /// Sends the read to every target not yet answered (the local one is answered at once).
    pub(super) fn send_reads(&mut self, now: Instant, request: RequestId) {
        let Some(op) = self.reads.get(&request) else { return };
        let (token, key, epoch) = (op.token, op.key.clone(), op.epoch);
        let todo: Vec<NodeId> =
            op.targets.iter().copied().filter(|t| !op.replies.contains_key(t)).collect();
        for target in todo {
            if target == self.id {
                match self.local_read(now, token, &key) {
                    Ok(v) => self.reads.get_mut(&request).expect("op").reply(self.id, v),
                    Err(e) => return self.fatal(e),
                }
            } else {
                self.send(target, Message::Read { op: request.0, epoch, token, key: key.clone() });
            }
        }
    }

    /// Write placement of `token` at `cl`.
    pub(super) fn plan_write(&self, token: Token, cl: ConsistencyLevel) -> WritePlan {
        let topology = self.topology.as_ref().expect("serving implies a topology");
        let natural: Vec<NodeId> = topology.ring().replicas(token).to_vec();
        let extra = |role| -> Vec<NodeId> {
            topology
                .pending_with_role(token, role)
                .into_iter()
                .filter(|n| !natural.contains(n))
                .collect()
        };
        let mut pending = extra(WriteRole::Counted);
        let must = extra(WriteRole::Required);
        let shadow = extra(WriteRole::Shadow);
        pending.extend(must.iter().copied());
        let required = if cl == ConsistencyLevel::Any {
            1
        } else {
            cl.write_acks_required(topology.rf(), pending.len()).min(natural.len() + pending.len())
        };
        let targets: Vec<NodeId> = natural.iter().chain(pending.iter()).copied().collect();
        WritePlan {
            natural,
            pending,
            must,
            shadow,
            required,
            targets,
            epoch: topology.epoch_for(token),
        }
    }

    pub(super) fn start_write(
        &mut self,
        now: Instant,
        key: Vec<u8>,
        value: Option<Vec<u8>>,
        cl: ConsistencyLevel,
        context: CausalContext,
    ) -> Result<RequestId, InvalidRequest> {
        self.check_serving()?;
        self.validate_key(&key)?;
        let mode = self.config.conflict_mode;
        let context = match (mode, context) {
            (ConflictMode::VectorClock, CausalContext::Vector(c)) => c,
            (ConflictMode::Lww, CausalContext::Lww(_)) => VClock::new(),
            // A blind context of either mode is accepted in LWW (a client that never read sends
            // no context of a mode at all).
            (ConflictMode::Lww, c) if c.is_blind() => VClock::new(),
            _ => return Err(InvalidRequest::ContextMismatch(mode)),
        };
        if let Some((node, e)) = context.0.iter().find(|(_, e)| e.counter > MAX_CONTEXT_COUNTER) {
            return Err(InvalidRequest::ContextCounterTooLarge {
                node: *node,
                counter: e.counter,
                max: MAX_CONTEXT_COUNTER,
            });
        }
        let request = self.new_request();
        self.stats.writes += 1;
        let token = token_for(&key);
        let plan = self.plan_write(token, cl);
        let alive: Vec<NodeId> =
            plan.targets.iter().copied().filter(|n| self.is_alive(*n)).collect();
        let leader = match mode {
            ConflictMode::VectorClock => {
                if plan.natural.contains(&self.id) {
                    Some(self.id)
                } else {
                    plan.natural.iter().copied().find(|n| self.is_alive(*n))
                }
            }
            ConflictMode::Lww => None,
        };
        let unavailable = if cl == ConsistencyLevel::Any {
            // A hint satisfies ANY, but in vector-clock mode a live natural replica must mint
            // the version: with none alive, no level can be met.
            mode == ConflictMode::VectorClock && leader.is_none()
        } else {
            alive.len() < plan.required || plan.must.iter().any(|n| !self.is_alive(*n))
        };
        if unavailable {
            self.stats.unavailable += 1;
            let (required, alive) =
                if cl == ConsistencyLevel::Any { (1, 0) } else { (plan.required, alive.len()) };
            let result = Err(RequestError::Unavailable { cl, required, alive });
            self.events.push_back(Event::Reply { request, result });
            return Ok(request);
        }
        let deadline = now + self.config.write_timeout;
        self.stats.extra_acks += plan.pending.len() as u64;
        let mut op =
            WriteOp::new(token, key, cl, plan.required, plan.targets, plan.pending, deadline);
        op.must = plan.must;
        op.shadow = plan.shadow;
        op.epoch = plan.epoch;
        op.pending_value = Some((value, context));
        self.timers.insert((deadline, Timer::Request(request)));
        self.writes.insert(request, op);
        match leader {
            Some(leader) if leader == self.id => {
                let op = self.writes.get_mut(&request).expect("op");
                let (value, context) = op.pending_value.take().expect("value");
                match self.mint(
                    token,
                    &self.writes[&request].key.clone(),
                    value,
                    context,
                    now.as_micros(),
                ) {
                    Ok((version, siblings)) => {
                        let op = self.writes.get_mut(&request).expect("op");
                        op.acks.insert(self.id);
                        op.version = Some(version);
                        op.fanout = Some(std::sync::Arc::new(siblings));
                    }
                    Err(e) => {
                        self.fatal(e);
                        return Ok(request);
                    }
                }
            }
            Some(_) => self.ask_mint(now, request),
            None => {
                let counter = match self.lww_counter.next(&mut self.storage) {
                    Ok(c) => c,
                    Err(e) => {
                        self.fatal(e);
                        return Ok(request);
                    }
                };
                let op = self.writes.get_mut(&request).expect("op");
                let (value, _) = op.pending_value.take().expect("value");
                op.version = Some(Version {
                    dot: Dot { node: self.id, counter },
                    context: VClock::new(),
                    timestamp: now.as_micros(),
                    value,
                });
            }
        }
        if self.writes.get(&request).is_some_and(|op| op.version.is_some()) {
            self.fan_out(now, request);
        }
        self.progress_write(request);
        Ok(request)
    }

    /// Asks the next live natural replica not yet asked (or, when every one was, the first live
    /// one again) to mint the write's version, and retries after an eighth of the write timeout.
    pub(super) fn ask_mint(&mut self, now: Instant, request: RequestId) {
        let Some(op) = self.writes.get(&request) else { return };
        if op.version.is_some() {
            return;
        }
        let natural: Vec<NodeId> = match &self.topology {
            Some(t) => t.ring().replicas(op.token).to_vec(),
            None => return,
        };
        let live: Vec<NodeId> = natural.into_iter().filter(|n| self.is_alive(*n)).collect();
        let Some(leader) = op.next_minter(&live) else { return };
        let Some((value, context)) = op.pending_value.clone() else { return };
        let (token, key, epoch) = (op.token, op.key.clone(), op.epoch);
        self.writes.get_mut(&request).expect("op").asking_mint(leader);
        self.send(
            leader,
            Message::Mint {
                op: request.0,
                epoch,
                token,
                key,
                value,
                context,
                timestamp: now.as_micros(),
            },
        );
        // Every eighth of the write timeout: a replica gets two tries, and the third replica is
        // still asked with half the timeout left.
        let retry = now + self.config.write_timeout / 8;
        self.timers.insert((retry, Timer::MintRetry(request)));
    }

    /// Sends the known version to every target not yet contacted; stores hints for dead ones.
    pub(super) fn fan_out(&mut self, now: Instant, request: RequestId) {
        let Some(op) = self.writes.get(&request) else { return };
        let version = op.version.clone().expect("fan_out after the version is known");
        let contacted: BTreeSet<NodeId> =
            op.acks.iter().chain(op.outstanding.iter()).copied().collect();
        let todo: Vec<NodeId> =
            op.targets.iter().copied().filter(|t| !contacted.contains(t)).collect();
        let (token, key, epoch) = (op.token, op.key.clone(), op.epoch);
        // One shared copy for every target: fan-out is the simulator's hottest allocation site.
        let value =
            op.fanout.clone().unwrap_or_else(|| std::sync::Arc::new(Siblings::one(version)));
        for target in todo {
            if target == self.id {
                match self.merge_local(token, &key, &value) {
                    Ok(_) => {
                        self.writes.get_mut(&request).expect("op").acks.insert(self.id);
                    }
                    Err(e) => return self.fatal(e),
                }
            } else if self.is_alive(target) {
                self.writes.get_mut(&request).expect("op").outstanding.insert(target);
                self.send(
                    target,
                    Message::Mutation {
                        op: request.0,
                        epoch,
                        token,
                        key: key.clone(),
                        value: value.clone(),
                    },
                );
            } else {
                self.store_hint(now, request, target);
            }
        }
        // Best-effort copies (dual-write-cutover): sent once, never counted, never hinted.
        let shadow = std::mem::take(&mut self.writes.get_mut(&request).expect("op").shadow);
        for target in shadow {
            if target != self.id && self.is_alive(target) {
                self.send(
                    target,
                    Message::Mutation {
                        op: 0,
                        epoch,
                        token,
                        key: key.clone(),
                        value: value.clone(),
                    },
                );
            }
        }
    }

    pub(super) fn store_hint(&mut self, now: Instant, request: RequestId, target: NodeId) {
        let Some(op) = self.writes.get(&request) else { return };
        if op.hinted.contains(&target) || op.acks.contains(&target) {
            return;
        }
        let Some(version) = op.version.clone() else { return };
        let value = op.fanout.as_deref().cloned().unwrap_or_else(|| Siblings::one(version));
        let (token, key, epoch) = (op.token, op.key.clone(), op.epoch);
        if self.put_hint(now, target, token, key, value, epoch) {
            self.writes.get_mut(&request).expect("op").hinted.insert(target);
        }
    }

    /// Stores a hint for `target`; returns whether one was stored.
    pub(super) fn put_hint(
        &mut self,
        now: Instant,
        target: NodeId,
        token: Token,
        key: Vec<u8>,
        value: Siblings,
        epoch: u64,
    ) -> bool {
        if !self.config.hinted_handoff {
            return false;
        }
        let key_text = String::from_utf8_lossy(&key).into_owned();
        let window_exceeded = self.detector.down_since(target).is_some_and(|since| {
            now.saturating_duration_since(since) > self.config.max_hint_window
        });
        if window_exceeded {
            self.trace(NodeTrace::HintWindowExceeded { target, key: key_text });
            return false;
        }
        let id = match self.hint_ids.next(&mut self.storage) {
            Ok(id) => id,
            Err(e) => {
                self.fatal(e);
                return false;
            }
        };
        let hint = Hint { id, target, token, key, value, created: now, epoch };
        if let Err(e) = self.storage.put_hint(&hint) {
            self.fatal(e);
            return false;
        }
        self.stats.hints_stored += 1;
        self.trace(NodeTrace::HintStored { target, id, key: key_text });
        true
    }

    pub(super) fn progress_write(&mut self, request: RequestId) {
        let Some(op) = self.writes.get_mut(&request) else { return };
        match op.progress() {
            WriteProgress::Waiting => {}
            WriteProgress::Reply(result) => {
                if result.is_err() {
                    self.stats.timeouts += 1;
                }
                self.events.push_back(Event::Reply { request, result });
            }
            WriteProgress::Done(reply) => {
                if let Some(result) = reply {
                    if result.is_err() {
                        self.stats.timeouts += 1;
                    }
                    self.events.push_back(Event::Reply { request, result });
                }
                if let Some(op) = self.writes.remove(&request) {
                    self.timers.remove(&(op.deadline, Timer::Request(request)));
                    self.request_finished(request);
                }
            }
        }
    }

    pub(super) fn progress_read(&mut self, request: RequestId) {
        let mode = self.config.conflict_mode;
        let Some(op) = self.reads.get_mut(&request) else { return };
        if let Some(result) = op.take_reply(mode) {
            if result.is_err() {
                self.stats.timeouts += 1;
            }
            self.events.push_back(Event::Reply { request, result });
        }
        if op.finished() {
            let op = self.reads.remove(&request).expect("op");
            self.timers.remove(&(op.deadline, Timer::Request(request)));
            self.request_finished(request);
            for (replica, value) in op.stale_replicas(mode) {
                self.stats.read_repairs += 1;
                self.trace(NodeTrace::ReadRepair {
                    replica,
                    key: String::from_utf8_lossy(&op.key).into_owned(),
                });
                if replica == self.id {
                    // Cannot happen in practice (the local reply is read from the merged state),
                    // but repair locally rather than messaging ourselves.
                    if let Err(e) = self.merge_local(op.token, &op.key, &value) {
                        return self.fatal(e);
                    }
                } else {
                    self.send(
                        replica,
                        Message::Repair { token: op.token, key: op.key.clone(), value },
                    );
                }
            }
        }
    }

    pub(super) fn on_write_deadline(&mut self, now: Instant, request: RequestId) {
        // Targets that never acknowledged get a hint (Cassandra hints timed-out replicas), then
        // the write completes: with a timeout if the client is still waiting.
        let missing: Vec<NodeId> = {
            let op = &self.writes[&request];
            op.outstanding.iter().copied().collect()
        };
        for target in missing {
            self.store_hint(now, request, target);
        }
        if let Some(op) = self.writes.get_mut(&request) {
            op.expire();
        }
        self.progress_write(request);
    }

    pub(super) fn on_hint_replay(&mut self, now: Instant) {
        self.timers.insert((now + self.config.hint_replay_interval, Timer::HintReplay));
        self.replay_hints(now, None);
    }

    /// Expires old hints and sends up to a batch per live target (only to `only` when given).
    pub(super) fn replay_hints(&mut self, now: Instant, only: Option<NodeId>) {
        let hints = match self.storage.hints() {
            Ok(h) => h,
            Err(e) => return self.fatal(e),
        };
        // Forget sends that were never acknowledged within a replay period: resend them.
        let retry_before = now - self.config.hint_replay_interval;
        self.hints_in_flight.retain(|_, (sent, _)| *sent > retry_before);
        let grace = self.config.gc_grace;
        let mut sent_per_target: BTreeMap<NodeId, usize> = BTreeMap::new();
        for hint in hints {
            if now.saturating_duration_since(hint.created) > grace {
                // Replaying a hint older than the grace period could resurrect data whose
                // tombstone has been purged: drop it.
                if let Err(e) = self.storage.remove_hint(hint.id) {
                    return self.fatal(e);
                }
                self.stats.hints_expired += 1;
                self.trace(NodeTrace::HintExpired { target: hint.target, id: hint.id });
                continue;
            }
            if !self.is_alive(hint.target)
                || self.hints_in_flight.contains_key(&hint.id)
                || only.is_some_and(|t| t != hint.target)
            {
                continue;
            }
            let sent = sent_per_target.entry(hint.target).or_insert(0);
            if *sent >= self.config.hint_batch {
                continue;
            }
            *sent += 1;
            self.hints_in_flight.insert(hint.id, (now, hint.target));
            self.send(
                hint.target,
                Message::Hint {
                    id: hint.id,
                    epoch: hint.epoch,
                    token: hint.token,
                    key: hint.key,
                    value: hint.value,
                },
            );
        }
    }
}
