//! Range streams, both sides: a stream request and its acceptance, the out-streams pumped under
//! the node-wide throttle (numbered chunks, sent again until acknowledged), and the chunks
//! received (merged, acknowledged, counted once). Join, decommission and repair all stream
//! through here (`crate::streaming` has the `OutStream` itself).

use super::lifecycle::{JOIN_DONE_KEY, Lifecycle, backoff, encode_u64s};
use super::{Node, NodeTrace};
use crate::id::NodeId;
use crate::message::Message;
use crate::storage::{Entry, Storage, StorageError};
use crate::streaming::{OutStream, StreamCounters, StreamPurpose, entry_bytes};
use crate::time::Instant;
use crate::token::TokenRange;

/// One stream chunk as received.
pub(super) struct Chunk {
    pub(super) session: u64,
    pub(super) range: TokenRange,
    pub(super) purpose: StreamPurpose,
    pub(super) entries: Vec<Entry>,
    pub(super) last: bool,
    pub(super) seq: u64,
}

/// How many times an unacknowledged chunk is sent again before its session is given up.
pub(super) const CHUNK_ATTEMPTS: u32 = 6;

impl<S: Storage> Node<S> {
    pub(super) fn next_session(&mut self) -> u64 {
        self.next_session += 1;
        (self.generation << 40) | self.next_session
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn on_stream_request(
        &mut self,
        now: Instant,
        from: NodeId,
        session: u64,
        epoch: u64,
        range: TokenRange,
        purpose: StreamPurpose,
    ) -> Result<(), StorageError> {
        if self.fence(from, crate::message::Rejectable::Stream(session), epoch, None) {
            return Ok(());
        }
        // A joiner asks again when it heard nothing: the older session for the range is void.
        self.out_streams
            .retain(|(to, _), s| !(*to == from && s.range == range && s.purpose == purpose));
        self.out_streams
            .insert((from, session), OutStream::new(from, session, range, purpose, now));
        self.send(from, Message::StreamAck { session, seq: 0 });
        self.pump_out_streams(now).map_or(Ok(()), |t| {
            self.schedule_lifecycle(t);
            Ok(())
        })
    }

    /// Sends every chunk the node-wide throttle allows; returns when the next one may leave.
    pub(super) fn pump_out_streams(&mut self, now: Instant) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut earliest = |t: Instant| next = Some(next.map_or(t, |n: Instant| n.min(t)));
        let keys: Vec<(NodeId, u64)> = self.out_streams.keys().copied().collect();
        for key in keys {
            let Some(s) = self.out_streams.get_mut(&key) else { continue };
            if s.awaiting_ack && now.saturating_duration_since(s.sent_at) >= backoff(s.attempts) {
                // The chunk or its acknowledgement was lost: send it again, with backoff.
                // After CHUNK_ATTEMPTS the receiver is taken for gone: a joiner asks again by
                // itself; a repair reports the range unanswered; a decommission starts the
                // range over (it must hand every range to its new owner).
                match s.unacked.clone() {
                    Some((entries, last)) if s.attempts < CHUNK_ATTEMPTS => {
                        s.attempts += 1;
                        s.sent_at = now;
                        let (to, session, range, purpose, seq) =
                            (s.to, s.session, s.range, s.purpose, s.seq);
                        self.send(
                            to,
                            Message::StreamData { session, range, purpose, entries, last, seq },
                        );
                    }
                    _ if s.purpose == StreamPurpose::Join => {
                        self.out_streams.remove(&key);
                        continue;
                    }
                    _ if s.purpose == StreamPurpose::Repair => {
                        self.out_streams.remove(&key);
                        if let Some(run) = &mut self.repair_run
                            && run.pushes.remove(&key.1)
                        {
                            run.report.unanswered += 1;
                            self.check_repair_done();
                        }
                        continue;
                    }
                    _ => s.restart(now),
                }
            }
            let Some(s) = self.out_streams.get_mut(&key) else { continue };
            if s.awaiting_ack {
                earliest(s.sent_at + backoff(s.attempts));
                continue;
            }
            if s.finished {
                continue;
            }
            if s.staged.is_none() {
                let throughput = self.config.stream_throughput;
                let chunk =
                    crate::streaming::chunk_size(self.config.stream_chunk_bytes, throughput);
                let not_before = self.stream_throttle.max(now);
                match s.next_chunk(&self.storage, chunk, throughput, not_before) {
                    Ok(c) => {
                        self.stream_throttle = s.next_send;
                        s.staged = Some(c);
                    }
                    Err(e) => {
                        self.fatal(e);
                        return None;
                    }
                }
            }
            if s.next_send > now {
                earliest(s.next_send);
                continue;
            }
            let (entries, last) = s.staged.take().expect("staged chunk");
            s.mark_sent(now, last);
            s.seq += 1;
            s.attempts = 0;
            s.unacked = Some((entries.clone(), last));
            let (to, session, range, purpose, seq) = (s.to, s.session, s.range, s.purpose, s.seq);
            self.stats.bytes_streamed_out += entries.iter().map(entry_bytes).sum::<u64>();
            self.send(to, Message::StreamData { session, range, purpose, entries, last, seq });
        }
        next
    }

    pub(super) fn on_stream_ack(
        &mut self,
        now: Instant,
        from: NodeId,
        session: u64,
        seq: u64,
    ) -> Result<(), StorageError> {
        if seq == 0 {
            // A source accepted this node's request (a join stream, or a repair pull).
            if self.join_stream_session() == Some(session) {
                self.stream_accepted = Some(session);
                self.stream_request_attempts = 0;
            }
            if let Some((_, _, at, _, accepted)) =
                self.repair_run.as_mut().and_then(|r| r.pulls.get_mut(&session))
            {
                *accepted = true;
                *at = now;
            }
            return Ok(());
        }
        let Some(s) = self.out_streams.get_mut(&(from, session)) else { return Ok(()) };
        if !s.awaiting_ack || s.seq != seq {
            // The acknowledgement of a chunk sent again, already counted.
            return Ok(());
        }
        s.awaiting_ack = false;
        s.unacked = None;
        if s.finished {
            let s = self.out_streams.remove(&(from, session)).expect("stream");
            if s.purpose == StreamPurpose::Leave {
                self.leave_range_done(now, session, s.sent);
            }
            if let Some(run) = &mut self.repair_run
                && run.pushes.remove(&session)
            {
                run.report.bytes_streamed += s.sent.bytes;
                self.check_repair_done();
            }
        }
        if let Some(t) = self.pump_out_streams(now) {
            self.schedule_lifecycle(t);
        }
        Ok(())
    }

    pub(super) fn on_stream_data(
        &mut self,
        now: Instant,
        from: NodeId,
        chunk: Chunk,
    ) -> Result<(), StorageError> {
        let Chunk { session, range, purpose, entries, last, seq } = chunk;
        if seq > 0 {
            let seen = self.stream_seen.entry((from, session)).or_insert(0);
            if seq <= *seen {
                // Sent again after its acknowledgement was lost: acknowledge, do not count.
                self.send(from, Message::StreamAck { session, seq });
                return Ok(());
            }
            *seen = seq;
            if last {
                self.stream_seen.remove(&(from, session));
            }
        }
        if self.join_stream_session() == Some(session) {
            self.stream_accepted = Some(session);
        }
        let mut chunk = StreamCounters::default();
        let mut changed = 0;
        for e in &entries {
            chunk.keys += 1;
            chunk.bytes += entry_bytes(e);
            if self.merge_local(e.token, &e.key, &e.value)? {
                changed += 1;
            }
        }
        if let Some(run) = &mut self.repair_run
            && let Some(pull) = run.pulls.get_mut(&session)
        {
            // Progress (which also proves the request accepted): the stall clock starts again.
            pull.2 = now;
            pull.4 = true;
            run.report.keys_received += chunk.keys;
            run.report.keys_changed += changed;
            run.report.bytes_streamed += chunk.bytes;
            if last {
                run.pulls.remove(&session);
                self.check_repair_done();
            }
        }
        self.stats.keys_streamed_in += chunk.keys;
        self.stats.bytes_streamed_in += chunk.bytes;
        self.send(from, Message::StreamAck { session, seq });
        if purpose != StreamPurpose::Join {
            if last {
                self.trace(NodeTrace::RangeStreamed {
                    peer: from,
                    range,
                    purpose,
                    keys: chunk.keys,
                    bytes: chunk.bytes,
                });
            }
            return Ok(());
        }
        let Lifecycle::Joining(j) = &mut self.lifecycle else { return Ok(()) };
        let Some((current, r, source, last_activity)) = &mut j.current else { return Ok(()) };
        if *current != session || *source != from {
            return Ok(());
        }
        *last_activity = now;
        let r = *r;
        j.progress.moved.keys += chunk.keys;
        j.progress.moved.bytes += chunk.bytes;
        if last {
            j.done.push(r);
            j.progress.ranges_done += 1;
            let done = encode_u64s(j.done.iter().flat_map(|r| [r.start, r.end]));
            let moved = j.progress.moved;
            self.storage.put_meta(JOIN_DONE_KEY, &done)?;
            self.trace(NodeTrace::RangeStreamed {
                peer: from,
                range: r,
                purpose,
                keys: moved.keys,
                bytes: moved.bytes,
            });
            self.next_join_range(now);
        }
        Ok(())
    }
}
