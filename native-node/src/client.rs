//! Operator and client commands: `ringside status|put|get|delete|join|decommission|repair|cleanup`.

use crate::config::DEFAULT_LISTEN;
use crate::proto::v1 as pb;
use crate::proto::v1::admin_client::AdminClient;
use crate::proto::v1::kv_client::KvClient;
use crate::service::consistency_to_proto;
use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use ringside_core::consistency::ConsistencyLevel;
use std::fmt::Write as _;
use std::time::{Duration, Instant};
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
    /// Make a node that was started with seeds join the cluster, with a progress bar.
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
    /// Decommission a node: stream its ranges away and leave the ring.
    Decommission {
        #[command(flatten)]
        target: Target,
        /// Return once started instead of following progress.
        #[arg(long)]
        no_wait: bool,
    },
    /// Merkle-tree repair of every range a node replicates.
    Repair {
        #[command(flatten)]
        target: Target,
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
    if !s.hints.is_empty() {
        let mut hints: Vec<_> = s.hints.iter().collect();
        hints.sort();
        let list: Vec<String> = hints.iter().map(|(t, n)| format!("{n} for host {t}")).collect();
        let _ = writeln!(out, "\nHints held by host {}: {}", s.host_id, list.join(", "));
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
        ClientCommand::Join { target, resume, allow_inconsistent_source, tokens, no_wait } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let r = admin
                .join(pb::JoinRequest { tokens, resume, allow_inconsistent_source })
                .await
                .map_err(|e| status_error("join", e))?
                .into_inner();
            println!("{}", r.message);
            if !no_wait {
                follow(&mut admin, "normal", "join", "joined").await?;
            }
        }
        ClientCommand::Decommission { target, no_wait } => {
            let mut admin = AdminClient::new(channel(&target.node).await?);
            let r = admin
                .decommission(pb::DecommissionRequest { resume: false })
                .await
                .map_err(|e| status_error("decommission", e))?
                .into_inner();
            println!("{}", r.message);
            if !no_wait {
                follow(&mut admin, "left", "decommission", "decommissioned").await?;
            }
        }
        ClientCommand::Repair { target } => repair(&target.node).await?,
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
    serde_json::json!({
        "cluster_name": s.cluster_name, "rf": s.rf, "strategy": s.strategy, "host_id": s.host_id,
        "lifecycle": s.lifecycle, "members": members, "hints": s.hints, "keys": s.keys,
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

/// Follows a join or decommission with a progress bar until the node reaches `done`.
async fn follow(
    admin: &mut AdminClient<Channel>,
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

/// Starts a repair and follows its comparisons on the node's trace stream.
async fn repair(address: &str) -> anyhow::Result<()> {
    let mut admin = AdminClient::new(channel(address).await?);
    let mut watch =
        admin.watch(pb::WatchRequest {}).await.map_err(|e| status_error("watch", e))?.into_inner();
    let r = admin
        .repair(pb::RepairRequest {})
        .await
        .map_err(|e| status_error("repair", e))?
        .into_inner();
    let total = r.started;
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner:.green} [{elapsed_precise}] [{bar:30.cyan/blue}] {pos}/{len} comparisons  {msg}  ETA {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    let mut differing = 0u64;
    let mut done = 0u64;
    while done < total {
        let next = tokio::time::timeout(Duration::from_secs(120), watch.message()).await;
        let event = match next {
            Ok(Ok(Some(e))) => e,
            Ok(Ok(None)) | Ok(Err(_)) => {
                bail!("the node closed its trace stream during the repair")
            }
            Err(_) => bail!(
                "no repair progress for 2 minutes: are the other replicas up? (`ringside status`)"
            ),
        };
        let Ok(value) = serde_json::from_str::<serde_json::Value>(&event.json) else { continue };
        if value["event"] == "repair-compared" {
            done += 1;
            differing += value["differing"].as_u64().unwrap_or(0);
            bar.set_position(done);
            bar.set_message(format!("{differing} differing leaves streamed"));
        }
    }
    bar.finish_and_clear();
    println!("repair finished: {total} comparisons, {differing} differing leaf ranges streamed");
    Ok(())
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
}
