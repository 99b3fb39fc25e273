//! Operator and client commands:
//! `ringside status|progress|put|get|delete|join|abort|decommission|repair|cleanup`.

use crate::config::DEFAULT_LISTEN;
use crate::convert::consistency_to_proto;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_client::AdminClient;
use crate::proto::v1::kv_client::KvClient;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ringside_core::consistency::ConsistencyLevel;
use ringside_core::membership::JoinStrategy;
use std::fmt::Write as _;
use std::time::{Duration, Instant, SystemTime};
use tonic::transport::Channel;

/// Which node a command talks to.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// gRPC address of the node.
    #[arg(long, env = "RINGSIDE_NODE", default_value = DEFAULT_LISTEN)]
    pub node: String,
}

/// Client and operator commands.
#[derive(Subcommand, Debug)]
pub enum ClientCommand {
    /// Print the ring as a node sees it, like `nodetool status`.
    Status {
        #[command(flatten)]
        target: Target,
        /// Print the raw reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// A node's own join or decommission and its repair runs (the last one's report).
    Progress {
        #[command(flatten)]
        target: Target,
        /// Print the raw reply as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write a value.
    Put {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// The value.
        value: String,
        /// Consistency level.
        #[arg(long, default_value = "quorum")]
        cl: ConsistencyLevel,
        /// Causal context printed by `get` (hex), so the write supersedes what was read.
        #[arg(long, default_value = "")]
        context: String,
    },
    /// Read a key.
    Get {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// Consistency level.
        #[arg(long, default_value = "quorum")]
        cl: ConsistencyLevel,
    },
    /// Delete a key.
    Delete {
        #[command(flatten)]
        target: Target,
        /// The key.
        key: String,
        /// Consistency level.
        #[arg(long, default_value = "quorum")]
        cl: ConsistencyLevel,
        /// Causal context printed by `get` (hex).
        #[arg(long, default_value = "")]
        context: String,
    },
    /// Make a node that was started with seeds join the cluster, with a progress bar. Says
    /// "join started" once the cluster admitted the join (under a fenced strategy: it holds the range lock),
    /// or why it was refused.
    Join {
        #[command(flatten)]
        target: Target,
        /// Continue an interrupted or failed join (streams only the ranges not finished).
        #[arg(long)]
        resume: bool,
        /// Stream from another replica when the one losing a range is down (may miss writes).
        #[arg(long)]
        allow_inconsistent_source: bool,
        /// Tokens to take, comma-separated; allocated by the node when absent.
        #[arg(long, value_delimiter = ',')]
        tokens: Vec<u64>,
        /// Return once started instead of following progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Abort a node's join (until reads move to it: BOOT) or decommission (until MID_LEAVE): a
    /// joiner withdraws its tokens and may join again, a leaver is NORMAL again. Idempotent.
    Abort {
        #[command(flatten)]
        target: Target,
    },
    /// Decommission a node: stream its ranges away and leave the ring.
    Decommission {
        #[command(flatten)]
        target: Target,
        /// Return once started instead of following progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Merkle-tree repair of every range a node replicates; follows the run and prints its
    /// report (comparisons, differing ranges, keys streamed, over-streaming).
    Repair {
        #[command(flatten)]
        target: Target,
        /// Return once started instead of following the run (`ringside progress` shows it).
        #[arg(long)]
        no_wait: bool,
    },
    /// Remove data a node no longer replicates (ghost data left by a join).
    Cleanup {
        #[command(flatten)]
        target: Target,
    },
}

/// Connects to a node with a message that says what to do when it is not there.
pub async fn channel(address: &str) -> anyhow::Result<Channel> {
    tonic::transport::Endpoint::from_shared(format!("http://{address}"))
        .with_context(|| format!("invalid node address `{address}`"))?
        .connect_timeout(Duration::from_secs(2))
        .connect()
        .await
        .with_context(|| {
            format!("cannot reach a node at {address}: is it running? (start a local cluster with `ringside cluster up`, or pass --node)")
        })
}

fn status_error(what: &str, s: tonic::Status) -> anyhow::Error {
    anyhow::anyhow!("{what} failed ({:?}): {}", s.code(), s.message())
}

/// Parses a hex context.
fn context_bytes(hex: &str) -> anyhow::Result<Vec<u8>> {
    // ASCII first: slicing two bytes at a time would split (and panic on) a multi-byte character.
    if !hex.is_ascii() || !hex.len().is_multiple_of(2) {
        bail!("--context must be the hex string printed by `ringside get`");
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<_, _>>()
        .context("--context must be the hex string printed by `ringside get`")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Human-readable bytes, as nodetool prints load.
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut unit = 0;
    while v >= 1024.0 && unit + 1 < UNITS.len() {
        v /= 1024.0;
        unit += 1;
    }
    if unit == 0 { format!("{b} B") } else { format!("{v:.2} {}", UNITS[unit]) }
}

/// Renders a status reply the way `nodetool status` lays it out.
pub fn render_status(s: &pb::StatusReply) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "Cluster: {}   RF: {}   strategy: {}   (seen by host {}: {})",
        s.cluster_name, s.rf, s.strategy, s.host_id, s.lifecycle
    );
    out.push_str("Status=Up/Down\n|/ State=Normal/Leaving/Joining/Moving\n");
    let _ = writeln!(
        out,
        "--  {:<21} {:<11} {:>6}  {:<16}  {:<10} Rack",
        "Address", "Load", "Tokens", "Owns (effective)", "Host ID"
    );
    for m in &s.members {
        if m.status == "LEFT" {
            continue;
        }
        let owns = m.owns.map_or("?".to_string(), |o| format!("{o:.1}%"));
        let _ = writeln!(
            out,
            "{}{}  {:<21} {:<11} {:>6}  {:<16}  {:<10} {}",
            m.state,
            m.mode,
            if m.address.is_empty() { "?" } else { &m.address },
            human_bytes(m.load_bytes),
            m.tokens,
            owns,
            m.host_id,
            if m.rack.is_empty() { "rack1" } else { &m.rack }
        );
    }
    if !s.movements.is_empty() {
        out.push_str(&render_movements(s));
    }
    if !s.hints.is_empty() {
        let mut hints: Vec<_> = s.hints.iter().collect();
        hints.sort();
        let list: Vec<String> = hints.iter().map(|(t, n)| format!("{n} for host {t}")).collect();
        let _ = writeln!(out, "\nHints held by host {}: {}", s.host_id, list.join(", "));
    }
    out
}

/// The range movements of a status reply: who moves, at which step, over how many ranges, and
/// what the answering node knows of its range lock.
fn render_movements(s: &pb::StatusReply) -> String {
    let mut out = String::new();
    let rule = match s.strategy.parse::<JoinStrategy>() {
        Ok(fenced) if fenced.uses_barriers() => {
            format!(" ({fenced}: one movement per range at a time; each holds a range lock)")
        }
        Ok(JoinStrategy::PendingRanges) => {
            " (pending-ranges: one movement at a time in the cluster)".into()
        }
        _ => String::new(),
    };
    let _ = writeln!(out, "\nRange movements{rule}:");
    for m in &s.movements {
        let verb = if m.kind == "join" { "joining" } else { "leaving" };
        let what = if m.kind == "join" { "gains" } else { "hands over" };
        let address = if m.address.is_empty() { "?" } else { &m.address };
        let _ = write!(
            out,
            "  host {} ({address}) {verb}: {}@{}, {what} {} ranges",
            m.host_id, m.status, m.epoch, m.ranges
        );
        if m.lock_held {
            let _ = write!(out, "; it holds the range lock");
        }
        if m.lock_granted {
            let _ = write!(out, "; host {} granted it the range lock", s.host_id);
        }
        for r in &m.refused {
            let _ =
                write!(out, "; host {} refused it the range lock: held by host {}", r.by, r.holder);
        }
        out.push('\n');
    }
    out
}

/// Runs a client command.
pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Status { target, json } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let s = admin
                .status(pb::StatusRequest {})
                .await
                .map_err(|e| status_error("status", e))?
                .into_inner();
            if json {
                println!("{}", status_json(&s));
            } else {
                print!("{}", render_status(&s));
            }
        }
        ClientCommand::Put { target, key, value, cl, context } => {
            let mut kv = KvClient::new(channel(&target.node).await?);
            let r = kv
                .put(pb::PutRequest {
                    key: key.into_bytes(),
                    value: value.into_bytes(),
                    consistency: consistency_to_proto(cl) as i32,
                    context: context_bytes(&context)?,
                })
                .await
                .map_err(|e| status_error("put", e))?
                .into_inner();
            print_write(&r);
        }
        ClientCommand::Delete { target, key, cl, context } => {
            let mut kv = KvClient::new(channel(&target.node).await?);
            let r = kv
                .delete(pb::DeleteRequest {
                    key: key.into_bytes(),
                    consistency: consistency_to_proto(cl) as i32,
                    context: context_bytes(&context)?,
                })
                .await
                .map_err(|e| status_error("delete", e))?
                .into_inner();
            print_write(&r);
        }
        ClientCommand::Get { target, key, cl } => {
            let mut kv = KvClient::new(channel(&target.node).await?);
            let r = kv
                .get(pb::GetRequest {
                    key: key.into_bytes(),
                    consistency: consistency_to_proto(cl) as i32,
                })
                .await
                .map_err(|e| status_error("get", e))?
                .into_inner();
            if !r.found {
                println!("(not found)");
            }
            for v in &r.values {
                println!("{}", String::from_utf8_lossy(v));
            }
            if r.values.len() > 1 {
                println!(
                    "({} siblings: concurrent writes; write back with the context to resolve)",
                    r.values.len()
                );
            }
            println!("context: {}", hex(&r.context));
            println!("replicas: {:?}", r.replicas);
        }
        ClientCommand::Progress { target, json } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let p = admin
                .progress(pb::ProgressRequest {})
                .await
                .map_err(|e| status_error("progress", e))?
                .into_inner();
            if json {
                println!("{}", progress_json(&p));
            } else {
                print!("{}", render_progress(&p));
            }
        }
        ClientCommand::Join { target, resume, allow_inconsistent_source, tokens, no_wait } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            // The node answers once the cluster admitted the join, or with why not: nothing
            // is printed before that, so a refused join shows only its reason.
            let request = pb::JoinRequest { tokens, resume, allow_inconsistent_source };
            let mut call = admin.clone();
            let r = until_admitted(&mut admin, "join", call.join(request)).await?;
            println!("{}", r.message);
            if !no_wait {
                follow(&mut admin, "joining", "normal", "join", "joined").await?;
            }
        }
        ClientCommand::Abort { target } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let r = admin
                .abort(pb::AbortRequest {})
                .await
                .map_err(|e| status_error("abort", e))?
                .into_inner();
            println!("{}", r.message);
        }
        ClientCommand::Decommission { target, no_wait } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let mut call = admin.clone();
            let request = pb::DecommissionRequest { resume: false };
            let r = until_admitted(&mut admin, "decommission", call.decommission(request)).await?;
            println!("{}", r.message);
            if !no_wait {
                follow(&mut admin, "leaving", "left", "decommission", "decommissioned").await?;
            }
        }
        ClientCommand::Repair { target, no_wait } => repair(&target.node, no_wait).await?,
        ClientCommand::Cleanup { target } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let r = admin
                .cleanup(pb::CleanupRequest {})
                .await
                .map_err(|e| status_error("cleanup", e))?
                .into_inner();
            println!(
                "cleanup removed {} keys ({}) this node no longer replicates",
                r.keys_removed,
                human_bytes(r.bytes_removed)
            );
        }
    }
    Ok(())
}

fn status_json(s: &pb::StatusReply) -> String {
    let members: Vec<serde_json::Value> = s
        .members
        .iter()
        .map(|m| {
            serde_json::json!({
                "host_id": m.host_id, "address": m.address, "state": m.state, "mode": m.mode,
                "status": m.status, "load_bytes": m.load_bytes, "tokens": m.tokens,
                "owns": m.owns, "rack": m.rack, "phi": if m.phi.is_finite() { m.phi } else { 1e9 },
            })
        })
        .collect();
    let movements: Vec<serde_json::Value> = s
        .movements
        .iter()
        .map(|m| {
            let refused: Vec<serde_json::Value> = m
                .refused
                .iter()
                .map(|r| serde_json::json!({"by": r.by, "holder": r.holder}))
                .collect();
            serde_json::json!({
                "host_id": m.host_id, "address": m.address, "kind": m.kind, "status": m.status,
                "epoch": m.epoch, "ranges": m.ranges, "lock_granted": m.lock_granted,
                "lock_held": m.lock_held,
                "refused": refused,
            })
        })
        .collect();
    serde_json::json!({
        "cluster_name": s.cluster_name, "rf": s.rf, "strategy": s.strategy, "host_id": s.host_id,
        "lifecycle": s.lifecycle, "members": members, "hints": s.hints, "keys": s.keys,
        "movements": movements,
    })
    .to_string()
}

fn print_write(r: &pb::WriteReply) {
    let v = r.version.unwrap_or_default();
    println!("ok: version {}:{} at {}", v.node, v.counter, v.timestamp);
    println!("acks: {:?}", r.acks);
    if !r.hinted.is_empty() {
        println!("hinted: {:?}", r.hinted);
    }
}

/// Shows a spinner with the node's phase (on a terminal) while a join or decommission waits
/// for the cluster to admit it; returns the node's answer.
async fn until_admitted(
    admin: &mut AdminClient<Channel>,
    noun: &str,
    call: impl std::future::Future<Output = Result<tonic::Response<pb::AdminReply>, tonic::Status>>,
) -> anyhow::Result<pb::AdminReply> {
    let spinner = ProgressBar::new_spinner();
    spinner.set_style(
        ProgressStyle::with_template("{spinner:.green} [{elapsed_precise}] {msg}")
            .expect("valid template"),
    );
    tokio::pin!(call);
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let reply = loop {
        tokio::select! {
            reply = &mut call => break reply,
            _ = tick.tick() => {
                if let Ok(p) = admin.progress(pb::ProgressRequest {}).await.map(tonic::Response::into_inner) {
                    spinner.set_message(format!("waiting for the cluster to admit the {noun}: {}", p.phase));
                }
                spinner.tick();
            }
        }
    };
    spinner.finish_and_clear();
    Ok(reply.map_err(|e| status_error(noun, e))?.into_inner())
}

/// Follows a join or decommission (the node `moving`) with a progress bar until the node
/// reaches `done`.
async fn follow(
    admin: &mut AdminClient<Channel>,
    moving: &str,
    done: &str,
    noun: &str,
    verb: &str,
) -> anyhow::Result<()> {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} ranges  {msg}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let started = Instant::now();
    let mut last_status = String::new();
    let mut moved = (0u64, 0u64);
    loop {
        let p = admin
            .progress(pb::ProgressRequest {})
            .await
            .map_err(|e| status_error("progress", e))?
            .into_inner();
        if p.status != last_status && !p.status.is_empty() {
            bar.println(format!("status {}", p.status));
            last_status = p.status.clone();
        }
        if !p.error.is_empty() {
            bar.abandon_with_message("failed");
            bail!("{noun} failed: {}", p.error);
        }
        if p.movement != moving && p.movement != done {
            // Only an abort reverses an admitted movement: a leaver is NORMAL again (an aborted
            // join fails, with the reason in `error`).
            bar.abandon_with_message("aborted");
            bail!("{noun} aborted: the node is {} again", p.phase);
        }
        moved = (moved.0.max(p.keys), moved.1.max(p.bytes));
        if p.movement == done {
            bar.finish_and_clear();
            let secs = started.elapsed().as_secs_f64();
            println!(
                "{verb}: {} keys, {} streamed in {secs:.1} s ({}/s)",
                moved.0,
                human_bytes(moved.1),
                human_bytes((moved.1 as f64 / secs.max(0.001)) as u64)
            );
            return Ok(());
        }
        bar.set_length(p.ranges_total);
        bar.set_position(p.ranges_done);
        let rate = p.bytes as f64 / started.elapsed().as_secs_f64().max(0.001);
        bar.set_message(format!(
            "{} keys, {} at {}/s  {}",
            p.keys,
            human_bytes(p.bytes),
            human_bytes(rate as u64),
            p.phase
        ));
        bar.tick();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Starts a repair and, unless `no_wait`, follows the run on the node's Progress until its
/// report says it completed.
async fn repair(address: &str, no_wait: bool) -> anyhow::Result<()> {
    let mut admin = AdminClient::new(channel(address).await?);
    let r = admin
        .repair(pb::RepairRequest {})
        .await
        .map_err(|e| status_error("repair", e))?
        .into_inner();
    if r.started == 0 || no_wait {
        println!("{}", r.message);
        return Ok(());
    }
    let bar = ProgressBar::new(r.started);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} comparisons  {msg}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    // The engine retries unanswered comparisons and gives them up after a minute or so; a run
    // that changes nothing for longer is stuck on something the operator must look at.
    const STALL: Duration = Duration::from_secs(180);
    let mut last_change = Instant::now();
    let mut last_seen = None;
    loop {
        let p = admin
            .progress(pb::ProgressRequest {})
            .await
            .map_err(|e| status_error("progress", e))?
            .into_inner();
        if let Some(last) = p.last_repair.filter(|l| l.run >= r.run) {
            bar.finish_and_clear();
            println!("{}", repair_report(&last));
            return Ok(());
        }
        let Some(run) = p.repair else {
            bar.abandon();
            bail!("the node no longer knows repair run {} (restarted?)", r.run);
        };
        bar.set_length(run.comparisons);
        bar.set_position(run.compared + run.unanswered);
        bar.set_message(format!(
            "{} differing leaf ranges, {} keys received",
            run.differing, run.keys_received
        ));
        let seen = (run.compared, run.unanswered, run.keys_received, run.bytes_streamed);
        if last_seen != Some(seen) {
            last_seen = Some(seen);
            last_change = Instant::now();
        } else if last_change.elapsed() > STALL {
            bar.abandon();
            bail!(
                "repair run {} made no progress for {} s: are the other replicas up? (`ringside status`; `ringside progress` shows the run)",
                r.run,
                STALL.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Microseconds since the Unix epoch as RFC 3339 (UTC, seconds).
fn timestamp(micros: u64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_micros(micros);
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A completed repair run, as the node reported it.
pub fn repair_report(r: &pb::RepairRun) -> String {
    let took = r.completed_micros.saturating_sub(r.started_micros) as f64 / 1e6;
    let received = if r.keys_received == 0 {
        "no keys received".to_string()
    } else {
        format!(
            "{} keys received ({} changed a version: over-streaming {:.1}x)",
            r.keys_received, r.keys_changed, r.over_streaming
        )
    };
    format!(
        "repair run {} completed at {} after {took:.2} s: {} of {} comparisons answered ({} unanswered), {} differing leaf ranges streamed both ways, {received}, {} streamed",
        r.run,
        timestamp(r.completed_micros),
        r.compared,
        r.comparisons,
        r.unanswered,
        r.differing,
        human_bytes(r.bytes_streamed)
    )
}

/// Renders a progress reply: the node's movement and its repair runs.
pub fn render_progress(p: &pb::ProgressReply) -> String {
    let mut out = String::new();
    let status = if p.status.is_empty() { "none" } else { &p.status };
    let _ = writeln!(out, "Node: {}; gossip status {status}", p.phase);
    if p.ranges_total > 0 {
        let _ = writeln!(
            out,
            "  {}/{} ranges, {} keys, {} streamed",
            p.ranges_done,
            p.ranges_total,
            p.keys,
            human_bytes(p.bytes)
        );
    } else if p.keys > 0 {
        let _ =
            writeln!(out, "  its last movement streamed {} keys, {}", p.keys, human_bytes(p.bytes));
    }
    if !p.error.is_empty() {
        let _ = writeln!(out, "  error: {}", p.error);
    }
    match &p.repair {
        Some(r) => {
            let _ = writeln!(
                out,
                "Repair run {} in progress since {}: {}/{} comparisons answered ({} unanswered), {} differing leaf ranges, {} keys received ({} changed), {} streamed",
                r.run,
                timestamp(r.started_micros),
                r.compared,
                r.comparisons,
                r.unanswered,
                r.differing,
                r.keys_received,
                r.keys_changed,
                human_bytes(r.bytes_streamed)
            );
        }
        None => out.push_str("Repair: none in progress\n"),
    }
    match &p.last_repair {
        Some(r) => {
            let _ = writeln!(out, "Last {}", repair_report(r));
        }
        None => out.push_str("Last repair: none since the node started\n"),
    }
    out
}

fn repair_json(r: &pb::RepairRun) -> serde_json::Value {
    serde_json::json!({
        "run": r.run, "comparisons": r.comparisons, "compared": r.compared,
        "unanswered": r.unanswered, "differing": r.differing, "keys_received": r.keys_received,
        "keys_changed": r.keys_changed, "bytes_streamed": r.bytes_streamed,
        "over_streaming": r.over_streaming, "started_micros": r.started_micros,
        "completed_micros": r.completed_micros,
    })
}

fn progress_json(p: &pb::ProgressReply) -> String {
    serde_json::json!({
        "movement": p.movement, "phase": p.phase, "status": p.status,
        "ranges_done": p.ranges_done, "ranges_total": p.ranges_total, "keys": p.keys,
        "bytes": p.bytes, "error": p.error,
        "repair": p.repair.as_ref().map(repair_json),
        "last_repair": p.last_repair.as_ref().map(repair_json),
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_parse_from_hex_and_anything_else_is_an_error() {
        assert_eq!(context_bytes("00ff10").unwrap(), [0x00, 0xff, 0x10]);
        assert!(context_bytes("abc").is_err());
        assert!(context_bytes("zz").is_err());
        // Two-byte characters: an even length of bytes, but not hex (it used to panic).
        assert!(context_bytes("éé").is_err());
    }

    fn member(host_id: u32, address: &str, mode: &str, status: &str) -> pb::MemberStatus {
        pb::MemberStatus {
            host_id,
            address: address.into(),
            state: "U".into(),
            mode: mode.into(),
            status: status.into(),
            load_bytes: 2048,
            tokens: 16,
            owns: (status == "NORMAL").then_some(100.0),
            rack: String::new(),
            phi: 0.0,
        }
    }

    #[test]
    fn status_keeps_the_nodetool_table_and_names_movements_after_it() {
        let mut s = pb::StatusReply {
            cluster_name: "ringside".into(),
            rf: 3,
            strategy: "staged".into(),
            host_id: 1,
            lifecycle: "normal".into(),
            members: vec![
                member(1, "127.0.0.1:7401", "N", "NORMAL"),
                member(4, "127.0.0.1:7404", "J", "BOOT"),
            ],
            ..Default::default()
        };
        let table = render_status(&s);
        assert_eq!(
            table,
            "Cluster: ringside   RF: 3   strategy: staged   (seen by host 1: normal)\n\
             Status=Up/Down\n\
             |/ State=Normal/Leaving/Joining/Moving\n\
             --  Address               Load        Tokens  Owns (effective)  Host ID    Rack\n\
             UN  127.0.0.1:7401        2.00 KiB        16  100.0%            1          rack1\n\
             UJ  127.0.0.1:7404        2.00 KiB        16  ?                 4          rack1\n"
        );
        s.movements = vec![
            pb::Movement {
                host_id: 4,
                address: "127.0.0.1:7404".into(),
                kind: "join".into(),
                status: "BOOT".into(),
                epoch: 7,
                ranges: 40,
                lock_granted: true,
                lock_held: false,
                refused: vec![],
            },
            pb::Movement {
                host_id: 5,
                address: String::new(),
                kind: "decommission".into(),
                status: "LEAVING".into(),
                epoch: 8,
                ranges: 12,
                lock_granted: false,
                lock_held: false,
                refused: vec![pb::LockRefusal { by: 2, holder: 4 }],
            },
        ];
        let with = render_status(&s);
        assert!(with.starts_with(&table), "{with}");
        assert_eq!(
            &with[table.len()..],
            "\nRange movements (staged: one movement per range at a time; each holds a range lock):\n  \
             host 4 (127.0.0.1:7404) joining: BOOT@7, gains 40 ranges; host 1 granted it the range lock\n  \
             host 5 (?) leaving: LEAVING@8, hands over 12 ranges; host 2 refused it the range lock: held by host 4\n"
        );
    }

    #[test]
    fn a_repair_report_says_when_it_completed_and_what_it_streamed() {
        let run = pb::RepairRun {
            run: 2,
            comparisons: 48,
            compared: 47,
            unanswered: 1,
            differing: 3,
            keys_received: 90,
            keys_changed: 30,
            bytes_streamed: 3 * 1024 * 1024,
            over_streaming: 3.0,
            started_micros: 1_700_000_000_000_000,
            completed_micros: 1_700_000_002_500_000,
        };
        assert_eq!(
            repair_report(&run),
            "repair run 2 completed at 2023-11-14T22:13:22Z after 2.50 s: 47 of 48 comparisons \
             answered (1 unanswered), 3 differing leaf ranges streamed both ways, 90 keys received \
             (30 changed a version: over-streaming 3.0x), 3.00 MiB streamed"
        );
        let nothing =
            pb::RepairRun { keys_received: 0, keys_changed: 0, over_streaming: 0.0, ..run };
        assert!(repair_report(&nothing).contains("streamed both ways, no keys received, 3.00 MiB"));
        let p = pb::ProgressReply {
            movement: "normal".into(),
            phase: "normal".into(),
            status: "NORMAL".into(),
            last_repair: Some(run),
            ..Default::default()
        };
        assert_eq!(
            render_progress(&p),
            format!(
                "Node: normal; gossip status NORMAL\nRepair: none in progress\nLast {}\n",
                repair_report(&run)
            )
        );
    }
}
