//! Operator commands against real `ringside` processes: aborting a join, the range-lock holder in
//! `ringside status`, a refused join, and a repair's report.
//!
//! Same rules as `native_cluster.rs`: each test starts its own cluster in a temporary directory
//! and kills what it started; waits are generous "should have happened by now" limits, never
//! assertions on speed. Needs the binary: `cargo build -p ringside-node`.

use ringside_tests::native::{Cluster, UpOptions, json_state, json_status, member, proto as pb};
use std::time::Duration;
use tonic::Code;

use pb::ConsistencyLevel as Cl;

const MINUTE: Duration = Duration::from_secs(60);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Waits until nodes `observers` all list node `id` as LEFT or not at all.
async fn wait_gone(c: &Cluster, id: u32, observers: &[u32]) {
    c.wait_for(MINUTE, &format!("node {id} to be LEFT or gone in every status"), async || {
        for o in observers {
            let s = c.status_json(*o).await?;
            match json_status(&s, id) {
                None => {}
                Some(status) if status == "LEFT" => {}
                Some(other) => return Err(format!("node {o} sees node {id} as {other}")),
            }
        }
        Ok(())
    })
    .await;
}

/// Under `staged`: node 4 joins and streams slowly; `status` marks it UJ and names its movement
/// and the range lock; a join of node 5 over overlapping ranges is refused with only the reason
/// (naming node 4); the operator aborts node 4's join (the `join` following it ends with the
/// abort), a second abort changes nothing, node 4 is gone from every status and joins again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_aborted_while_streaming_withdraws_and_joins_again() {
    let mut c =
        Cluster::up(UpOptions { stream_throughput_mib: 0.05, ..UpOptions::default() }).await;
    let preloaded = c.preload(1, "pre", 150, 5000).await;
    let a4 = c.add_node(4, &[]);
    let a5 = c.add_node(5, &[]);
    c.wait_serving(4, MINUTE).await;
    c.wait_serving(5, MINUTE).await;

    let join4 = c.cli_spawn(&["join", "--node", &a4]);
    c.wait_for(MINUTE, "node 4 to stream its ranges", async || {
        let p = c.progress(4).await.map_err(|e| format!("{e:?}"))?;
        if p.movement == "joining" && p.phase.contains("streaming") {
            Ok(())
        } else {
            Err(format!("{p:?}"))
        }
    })
    .await;

    // Status marks the joiner UJ and names its movement; node 1 granted it the range lock.
    let out = c.cli(&["status", "--node", &c.address(1)]).await;
    c.check(
        out.status.success()
            && out.stdout.contains(&format!("UJ  {a4}"))
            && out.stdout.contains("Range movements")
            && out.stdout.contains(&format!("host 4 ({a4}) joining: BOOT@"))
            && out.stdout.contains("host 1 granted it the range lock"),
        || format!("ringside status during node 4's join: {}", out.text()),
    );
    let s = c.status(1).await.unwrap_or_else(|e| c.fail(&format!("status: {e:?}")));
    let moving: Vec<_> = s.movements.iter().map(|m| (m.host_id, m.kind.clone())).collect();
    c.check(
        moving == [(4, "join".to_string())]
            && s.movements[0].ranges > 0
            && s.movements[0].lock_granted
            && s.movements[0].status == "BOOT",
        || format!("Status.movements of node 1 during node 4's join: {:?}", s.movements),
    );

    // The joiner's own status says it holds the lock.
    let out = c.cli(&["status", "--node", &a4]).await;
    c.check(
        out.status.success()
            && out.stdout.contains(&format!("host 4 ({a4}) joining: BOOT@"))
            && out.stdout.contains("; it holds the range lock"),
        || format!("ringside status of node 4 during its own join: {}", out.text()),
    );

    // A join over ranges node 4 holds is refused: only the reason, naming node 4.
    let out = c.cli(&["join", "--node", &a5]).await;
    c.check(
        !out.status.success()
            && out.stdout.trim().is_empty()
            && out.stderr.contains("FailedPrecondition")
            && out.stderr.contains("n4 is BOOT")
            && out.stderr.contains("one movement per range at a time"),
        || format!("a join of node 5 while node 4 holds the ranges: {}", out.text()),
    );
    c.kill9(5);

    // Abort node 4's join: it withdraws, and the `join` that followed it says so.
    let out = c.cli(&["abort", "--node", &a4]).await;
    c.check(
        out.status.success()
            && out.stdout.contains("join aborted: the node withdrew its tokens and may join again"),
        || format!("ringside abort of a streaming joiner: {}", out.text()),
    );
    let followed = c.cli_wait(join4, MINUTE, "join of node 4").await;
    c.check(
        !followed.status.success()
            && followed.stdout.contains("join started")
            && followed.stderr.contains("aborted by the operator"),
        || format!("the `ringside join` following node 4 after the abort: {}", followed.text()),
    );
    // A second abort changes nothing and says so.
    let out = c.cli(&["abort", "--node", &a4]).await;
    c.check(out.status.success() && out.stdout.contains("nothing to abort"), || {
        format!("a second ringside abort: {}", out.text())
    });
    let again = c.admin(4).abort(pb::AbortRequest {}).await;
    c.check(again.as_ref().is_ok_and(|r| r.get_ref().message.contains("nothing to abort")), || {
        format!("a third abort, over gRPC: {again:?}")
    });
    wait_gone(&c, 4, &[1, 2, 3]).await;
    let out = c.cli(&["status", "--node", &c.address(1)]).await;
    c.check(
        out.status.success()
            && !out.stdout.contains(&a4)
            && !out.stdout.contains("Range movements"),
        || format!("ringside status after the abort: {}", out.text()),
    );
    let p = c.progress(4).await.unwrap_or_else(|e| c.fail(&format!("progress: {e:?}")));
    c.check(p.error.contains("aborted by the operator"), || {
        format!("node 4's progress after the abort: {p:?}")
    });

    // It may join again, and this time it completes.
    let out = c.cli(&["join", "--node", &a4]).await;
    c.check(
        out.status.success()
            && out.stdout.contains("join started")
            && out.stdout.contains("joined: "),
        || format!("joining node 4 again after the abort: {}", out.text()),
    );
    c.wait_un(&[1, 2, 3, 4], MINUTE).await;
    let s = c.status(1).await.expect("status");
    c.check(s.movements.is_empty(), || format!("movements once all are UN: {:?}", s.movements));
    c.assert_readable(&preloaded, &[1, 2, 3, 4], Cl::Quorum).await;
}

/// Under `pending-ranges` a joiner stays MID_JOIN for RING_DELAY (30 s): reads have moved to
/// it, so an abort is refused (FAILED_PRECONDITION, the engine's words) and the join finishes.
/// While it is MID_JOIN, `status` still shows it UJ, as nodetool would. Its decommission, aborted
/// while LEAVING, leaves it NORMAL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_after_reads_moved_is_refused() {
    let mut c = Cluster::up(UpOptions { strategy: "pending-ranges", ..UpOptions::default() }).await;
    let preloaded = c.preload(1, "pre", 40, 1000).await;
    let a4 = c.add_node(4, &["--strategy", "pending-ranges"]);
    c.wait_serving(4, MINUTE).await;
    let out = c.cli(&["join", "--no-wait", "--node", &a4]).await;
    c.check(out.status.success() && out.stdout.contains("join started: BOOT"), || {
        format!("ringside join --no-wait: {}", out.text())
    });

    c.wait_for(secs(180), "node 4 to be MID_JOIN", async || {
        let p = c.progress(4).await.map_err(|e| format!("{e:?}"))?;
        if p.status == "MID_JOIN" { Ok(()) } else { Err(format!("{p:?}")) }
    })
    .await;
    let out = c.cli(&["abort", "--node", &a4]).await;
    c.check(
        !out.status.success()
            && out.stderr.contains("abort failed (FailedPrecondition)")
            && out.stderr.contains("too late to abort")
            && out.stdout.trim().is_empty(),
        || format!("ringside abort at MID_JOIN: {}", out.text()),
    );
    match c.admin(4).abort(pb::AbortRequest {}).await {
        Err(e) if e.code() == Code::FailedPrecondition && e.message().contains("too late") => {}
        other => c.fail(&format!("Abort over gRPC at MID_JOIN: {other:?}")),
    }

    // Node 1 learns MID_JOIN by gossip (RING_DELAY gives it 30 s): a joiner until NORMAL, UJ.
    c.wait_for(MINUTE, "node 1 to see node 4 MID_JOIN", async || {
        let s = c.status_json(1).await?;
        match (json_status(&s, 4).as_deref(), json_state(&s, 4).as_deref()) {
            (Some("MID_JOIN"), Some("UJ")) => Ok(()),
            (Some("MID_JOIN"), other) => {
                c.fail(&format!("node 4 at MID_JOIN shown as {other:?}: {s}"))
            }
            (Some("NORMAL"), _) => c.fail(&format!("node 1 never saw node 4 MID_JOIN: {s}")),
            _ => Err(s.to_string()),
        }
    })
    .await;

    c.wait_un(&[1, 2, 3, 4], secs(120)).await;
    let out = c.cli(&["abort", "--node", &a4]).await;
    c.check(
        out.status.success() && out.stdout.contains("nothing to abort: node is normal"),
        || format!("ringside abort of a NORMAL node: {}", out.text()),
    );

    // A decommission waits RING_DELAY at LEAVING before it streams: aborted there, the node is
    // NORMAL again and the `decommission` following it says it was aborted.
    let leave = c.cli_spawn(&["decommission", "--node", &a4]);
    c.wait_for(MINUTE, "node 4 to be LEAVING", async || {
        let p = c.progress(4).await.map_err(|e| format!("{e:?}"))?;
        if p.status == "LEAVING" { Ok(()) } else { Err(format!("{p:?}")) }
    })
    .await;
    let out = c.cli(&["abort", "--node", &a4]).await;
    c.check(
        out.status.success()
            && out.stdout.contains("decommission aborted: the node is NORMAL again"),
        || format!("ringside abort of a LEAVING node: {}", out.text()),
    );
    let followed = c.cli_wait(leave, MINUTE, "decommission of node 4").await;
    c.check(
        !followed.status.success()
            && followed.stdout.contains("decommission started: LEAVING")
            && followed.stderr.contains("decommission aborted: the node is normal again"),
        || format!("the `ringside decommission` following node 4: {}", followed.text()),
    );
    c.wait_un(&[1, 2, 3, 4], MINUTE).await;
    c.assert_readable(&preloaded, &[1, 2, 3, 4], Cl::Quorum).await;
}

/// Node 3 misses 60 writes (it is down, and the node holding their hints is down when it comes
/// back); `ringside repair` on node 3 follows the run and prints the engine's report, which
/// `ringside progress` shows afterwards. Node 3 then holds the keys on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repair_prints_its_completed_report() {
    let mut c = Cluster::up(UpOptions::default()).await;
    c.preload(1, "pre", 100, 1000).await;
    c.kill9(3);
    let written = c.write_while_down(1, 3, "missed", 60).await;
    // Node 1 holds the hints: down, it cannot replay them, so only a repair brings the keys.
    c.kill9(1);
    c.restart(3);
    c.wait_for(secs(120), "node 3 to be NORMAL and see node 1 down", async || {
        let s = c.status(3).await.map_err(|e| format!("{e:?}"))?;
        match (s.lifecycle.as_str(), member(&s, 1), member(&s, 2)) {
            ("normal", Some(m1), Some(m2)) if m1.state == "D" && m2.state == "U" => Ok(()),
            _ => Err(format!("{s:?}")),
        }
    })
    .await;

    let out = c.cli(&["repair", "--node", &c.address(3)]).await;
    eprintln!("ringside repair --node {}: {}", c.address(3), out.stdout.trim());
    c.check(
        out.status.success()
            && out.stdout.contains("repair run 1 completed at ")
            && out.stdout.contains("0 unanswered")
            && out.stdout.contains("over-streaming"),
        || format!("ringside repair: {}", out.text()),
    );
    let p = c.progress(3).await.unwrap_or_else(|e| c.fail(&format!("progress: {e:?}")));
    let last = p.last_repair.unwrap_or_else(|| c.fail(&format!("no last_repair: {p:?}")));
    c.check(
        p.repair.is_none()
            && last.run == 1
            && last.comparisons > 0
            && last.compared == last.comparisons
            && last.unanswered == 0
            && last.differing > 0
            && last.keys_changed >= 60
            && last.keys_received >= last.keys_changed
            && last.bytes_streamed > 0
            && last.over_streaming >= 1.0
            && last.completed_micros >= last.started_micros
            && last.started_micros > 0,
        || format!("the repair run in Progress: {p:?}"),
    );
    // The CLI printed exactly what Progress reports.
    let printed = format!(
        "{} of {} comparisons answered (0 unanswered), {} differing leaf ranges streamed both ways, {} keys received ({} changed a version",
        last.compared, last.comparisons, last.differing, last.keys_received, last.keys_changed
    );
    c.check(out.stdout.contains(&printed), || {
        format!("ringside repair printed {:?}, Progress says {printed:?}", out.stdout)
    });
    let shown = c.cli(&["progress", "--node", &c.address(3)]).await;
    c.check(
        shown.status.success()
            && shown.stdout.contains("Repair: none in progress")
            && shown.stdout.contains("Last repair run 1 completed at ")
            && shown.stdout.contains(&printed),
        || format!("ringside progress after the repair: {}", shown.text()),
    );

    // With nodes 1 and 2 down, node 3 answers reads at ONE from its own storage only.
    c.kill9(2);
    let report = ringside_tests::native::read_back(&written, &c.addresses(&[3]), Cl::One).await;
    c.check(report.missing.is_empty() && report.unreadable.is_empty(), || {
        format!(
            "node 3 lacks {} of the 60 keys after the repair ({} unreadable): {:?} {:?}",
            report.missing.len(),
            report.unreadable.len(),
            report.missing.iter().take(5).collect::<Vec<_>>(),
            report.unreadable.iter().take(5).collect::<Vec<_>>()
        )
    });
}
