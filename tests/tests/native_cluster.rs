//! Multi-process tests of the native node: real `ringside` processes, real sockets, real disks.
//!
//! Each test starts its own cluster on ports chosen by the OS in its own temporary directory and
//! kills every process it started when it ends (or panics). Needs the binary:
//! `cargo build -p ringside-node` (`cargo test --workspace` and the xtask build it).
//!
//! Timeouts are generous limits for "this should have happened by now" on a loaded machine,
//! never assertions on speed.

use ringside_tests::native::{
    Cluster, Load, UpOptions, bytes, get, json_state, json_status, member, pid_alive, proto as pb,
    put, values,
};
use std::collections::BTreeMap;
use std::time::Duration;
use tonic::Code;

use pb::ConsistencyLevel as Cl;

const MINUTE: Duration = Duration::from_secs(60);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// Distinct host ids in `ids`, all in `1..=max`.
fn distinct_hosts(ids: &[u32], max: u32) -> usize {
    let mut v: Vec<u32> = ids.to_vec();
    v.sort_unstable();
    v.dedup();
    assert!(v.iter().all(|id| (1..=max).contains(id)), "unknown host id in {ids:?}");
    v.len()
}

/// Effective ownership of every member of `status` (all must be NORMAL): within 72–78 % each
/// and 300 % ± 0.5 in all (RF=3).
fn assert_balanced(cluster: &Cluster, status: &pb::StatusReply, nodes: usize) {
    let owns: Vec<(u32, Option<f64>, String)> =
        status.members.iter().map(|m| (m.host_id, m.owns, m.status.clone())).collect();
    cluster.check(
        owns.len() == nodes && owns.iter().all(|(_, o, s)| o.is_some() && s == "NORMAL"),
        || format!("expected {nodes} NORMAL members with an ownership, got {owns:?}"),
    );
    let total: f64 = owns.iter().map(|(_, o, _)| o.unwrap_or(0.0)).sum();
    cluster.check(owns.iter().all(|(_, o, _)| (72.0..=78.0).contains(&o.unwrap_or(0.0))), || {
        format!("effective ownership outside 72–78 %: {owns:?}")
    });
    cluster.check((total - 300.0).abs() <= 0.5, || {
        format!("effective ownership sums to {total:.3} %, not 300 %: {owns:?}")
    });
}

async fn expect_invalid(
    cluster: &Cluster,
    what: &str,
    result: Result<impl std::fmt::Debug, tonic::Status>,
    needle: &str,
) {
    match result {
        Err(s) if s.code() == Code::InvalidArgument && s.message().contains(needle) => {}
        other => cluster.fail(&format!(
            "{what}: expected InvalidArgument mentioning {needle:?}, got {other:?}"
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_up_serves_every_consistency_level() {
    let mut c = Cluster::up(UpOptions::default()).await;

    // Every level through gRPC, for writes (via node 1) and reads (via node 2), paired so that
    // the read overlaps the write (W + R > RF): the read must see it.
    let need = |cl: Cl| match cl {
        Cl::One => 1,
        Cl::Two | Cl::Quorum => 2,
        _ => 3,
    };
    let pairs = [
        (Cl::One, Cl::All),
        (Cl::Two, Cl::Two),
        (Cl::Three, Cl::Three),
        (Cl::Quorum, Cl::Quorum),
        (Cl::All, Cl::One),
    ];
    for (write, read) in pairs {
        let key = format!("written-at-{write:?}");
        let value = format!("value written at {write:?}");
        let w = put(&mut c.kv(1), &key, &value, write).await;
        let w = w.unwrap_or_else(|e| c.fail(&format!("put at {write:?}: {e:?}")));
        c.check(distinct_hosts(&w.acks, 3) >= need(write), || {
            format!("put at {write:?} answered with acks {:?}", w.acks)
        });
        c.check(w.version.is_some(), || format!("put at {write:?} returned no version"));
        let r = get(&mut c.kv(2), &key, read).await;
        let r = r.unwrap_or_else(|e| c.fail(&format!("get at {read:?}: {e:?}")));
        c.check(r.found && values(&r) == [value.clone()], || {
            format!("get at {read:?} of {key} (written at {write:?}): {r:?}, want {value:?}")
        });
        c.check(distinct_hosts(&r.replicas, 3) >= need(read), || {
            format!("get at {read:?} merged the replies of {:?} only", r.replicas)
        });
        c.check(!r.context.is_empty(), || format!("get at {read:?} returned no context"));
    }
    // ANY: writes only.
    let w = put(&mut c.kv(3), "key-at-any", "value written at ANY", Cl::Any).await;
    c.check(w.is_ok(), || format!("put at ANY: {w:?}"));
    let r = get(&mut c.kv(1), "key-at-any", Cl::All).await;
    c.check(r.as_ref().is_ok_and(|r| values(r) == ["value written at ANY"]), || {
        format!("ALL read after the ANY write: {r:?}")
    });
    // A missing key.
    let r = get(&mut c.kv(1), "never-written", Cl::Quorum).await;
    c.check(r.as_ref().is_ok_and(|r| !r.found && r.values.is_empty()), || {
        format!("get of a missing key: {r:?}")
    });

    // Bad input, with the status code and a message that says what is wrong.
    let mut kv = c.kv(1);
    let request = |key: &str, value: Vec<u8>, cl: i32, context: Vec<u8>| pb::PutRequest {
        key: bytes(key.as_bytes()),
        value: bytes(&value),
        consistency: cl,
        context: bytes(&context),
    };
    let r = kv.put(request("k", b"v".to_vec(), 17, vec![])).await;
    expect_invalid(&c, "put with level 17", r, "unknown consistency level").await;
    let r = kv.get(pb::GetRequest { key: bytes(b"k"), consistency: 17 }).await;
    expect_invalid(&c, "get with level 17", r, "unknown consistency level").await;
    let r = kv.put(request("k", b"v".to_vec(), 0, vec![])).await;
    expect_invalid(&c, "put without a level", r, "consistency level not set").await;
    let r = kv.get(pb::GetRequest { key: bytes(b"k"), consistency: 0 }).await;
    expect_invalid(&c, "get without a level", r, "consistency level not set").await;
    let big = vec![b'x'; 1024 * 1024 + 1];
    let r = kv.put(request("big", big, Cl::Quorum as i32, vec![])).await;
    expect_invalid(&c, "put of 1 MiB + 1 byte", r, "exceeds the limit of 1048576 bytes").await;
    let exactly = vec![b'y'; 1024 * 1024];
    let r = kv.put(request("exactly-1-mib", exactly, Cl::Quorum as i32, vec![])).await;
    c.check(r.is_ok(), || format!("put of exactly 1 MiB: {r:?}"));
    let r = kv.put(request("", b"v".to_vec(), Cl::Quorum as i32, vec![])).await;
    expect_invalid(&c, "put with an empty key", r, "empty key").await;
    let r = kv.get(pb::GetRequest { key: bytes(b""), consistency: Cl::One as i32 }).await;
    expect_invalid(&c, "get with an empty key", r, "empty key").await;
    let r = kv.put(request("k", b"v".to_vec(), Cl::Quorum as i32, vec![0xc1, 0xff, 0x00])).await;
    expect_invalid(&c, "put with a malformed context", r, "malformed causal context").await;
    let r = kv
        .delete(pb::DeleteRequest {
            key: bytes(b"k"),
            consistency: Cl::Quorum as i32,
            context: bytes(b"not msgpack at all"),
        })
        .await;
    expect_invalid(&c, "delete with a malformed context", r, "malformed causal context").await;
    let r = get(&mut kv, "k", Cl::Any).await;
    expect_invalid(&c, "get at ANY", r, "ANY is only supported for writes").await;

    // The CLI, as a user types it.
    let (a1, a3) = (c.address(1), c.address(3));
    let s = c.status_json(2).await.unwrap_or_else(|e| c.fail(&e));
    c.check(
        s["cluster_name"] == "ringside"
            && s["rf"] == 3
            && s["host_id"] == 2
            && s["lifecycle"] == "normal"
            && s["hints"].as_object().is_some_and(|h| h.is_empty())
            && s["keys"].as_u64().is_some_and(|k| k >= 6)
            && (1..=3).all(|id| json_state(&s, id).as_deref() == Some("UN"))
            && s["members"].as_array().is_some_and(|m| {
                m.len() == 3 && m.iter().all(|m| m["owns"] == 100.0 && m["tokens"] == 16)
            }),
        || format!("ringside status --json: {s}"),
    );
    let out = c.cli(&["status", "--node", &a1]).await;
    c.check(
        out.status.success()
            && (1..=3).all(|id| out.stdout.contains(&format!("UN  {}", c.address(id)))),
        || format!("ringside status: {}", out.text()),
    );
    let out = c.cli(&["put", "cli-key", "hello from the cli", "--cl", "all", "--node", &a1]).await;
    c.check(out.status.success(), || format!("ringside put: {}", out.text()));
    c.check(out.stdout.starts_with("ok: version 1:"), || format!("ringside put: {}", out.text()));
    let acks = out.stdout.lines().find_map(|l| l.strip_prefix("acks: ")).unwrap_or("");
    c.check(acks.starts_with('[') && acks.matches(", ").count() == 2, || {
        format!("ringside put --cl all should print three acks: {}", out.text())
    });
    for cl in ["one", "two", "three", "quorum", "all"] {
        let out = c.cli(&["get", "cli-key", "--cl", cl, "--node", &a3]).await;
        c.check(out.status.success(), || format!("ringside get --cl {cl}: {}", out.text()));
        let lines: Vec<&str> = out.stdout.lines().collect();
        c.check(
            lines.first() == Some(&"hello from the cli")
                && lines.iter().any(|l| l.starts_with("context: ") && l.len() > 9)
                && lines.iter().any(|l| l.starts_with("replicas: [")),
            || format!("ringside get --cl {cl}: {}", out.text()),
        );
    }
    let out = c.cli(&["put", "cli-any", "v", "--cl", "any", "--node", &a3]).await;
    c.check(out.status.success() && out.stdout.starts_with("ok: version 3:"), || {
        format!("ringside put --cl any: {}", out.text())
    });
    let out = c.cli(&["get", "cli-key", "--cl", "any", "--node", &a1]).await;
    c.check(
        !out.status.success()
            && out.stderr.contains("InvalidArgument")
            && out.stderr.contains("ANY is only supported for writes"),
        || format!("ringside get --cl any should fail: {}", out.text()),
    );
    // A delete supersedes what its context covers: pass the context `get` printed.
    let out = c.cli(&["get", "cli-key", "--node", &a1]).await;
    let context = out.stdout.lines().find_map(|l| l.strip_prefix("context: ")).unwrap_or("");
    c.check(!context.is_empty(), || format!("ringside get prints no context: {}", out.text()));
    let out = c.cli(&["delete", "cli-key", "--context", context, "--node", &a1]).await;
    c.check(out.status.success(), || format!("ringside delete: {}", out.text()));
    let out = c.cli(&["get", "cli-key", "--node", &a3]).await;
    c.check(out.status.success() && out.stdout.starts_with("(not found)"), || {
        format!("ringside get after delete: {}", out.text())
    });

    // SIGTERM to `cluster up` stops every node and keeps the data.
    let pids: Vec<u32> = c.ids().iter().filter_map(|id| c.get(*id).pid()).collect();
    c.check(pids.len() == 3 && pids.iter().all(|p| pid_alive(*p)), || {
        format!("node processes before the stop: {pids:?}")
    });
    let status = c.stop_up();
    c.check(status.success(), || format!("cluster up exited with {status}"));
    for pid in &pids {
        c.check(!pid_alive(*pid), || format!("node process {pid} survived the stop of cluster up"));
    }
    let up_log = std::fs::read_to_string(c.root().join("up.log")).unwrap_or_default();
    c.check(up_log.contains("stopped; data kept in"), || format!("cluster up said: {up_log}"));
    for id in 1..=3 {
        let node = c.get(id);
        let data = node.dir.join("data");
        let entries = std::fs::read_dir(&data).map(|d| d.count()).unwrap_or(0);
        c.check(entries > 0, || format!("data directory {} is gone or empty", data.display()));
        c.check(node.dir.join("ringside.toml").is_file(), || "config file gone".into());
        let log = std::fs::read_to_string(node.log()).unwrap_or_default();
        c.check(log.contains("stopping"), || format!("node {id} did not stop gracefully"));
    }
}

/// Starts the usual join scenario: a 3-node cluster whose nodes stream at `mib` MiB/s, `keys`
/// preloaded keys of 5000 bytes, a running QUORUM load on the three nodes.
async fn loaded_cluster(mib: f64, keys: usize) -> (Cluster, BTreeMap<String, String>, Load) {
    let c = Cluster::up(UpOptions { stream_throughput_mib: mib, ..UpOptions::default() }).await;
    let preloaded = c.preload(1, "pre", keys, 5000).await;
    let load = Load::start("load", c.addresses(&[1, 2, 3]), 4, 100);
    c.wait_until(MINUTE, "the load to have 20 writes acknowledged", async || load.acked() >= 20)
        .await;
    (c, preloaded, load)
}

async fn finish_load(c: &Cluster, load: Load, min: usize) -> BTreeMap<String, String> {
    let report = load.stop().await;
    eprintln!(
        "load: {} acknowledged, {} failed {:?}",
        report.acked.len(),
        report.failed,
        report.errors
    );
    c.check(report.acked.len() >= min, || {
        format!("the load got only {} writes acknowledged: {report:?}", report.acked.len())
    });
    report.acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fourth_node_joins_under_quorum_load() {
    // Sources stream at 0.05 MiB/s, so the ~0.75 MB node 4 takes keeps it joining for a while.
    let (mut c, preloaded, load) = loaded_cluster(0.05, 200).await;
    let a4 = c.add_node(4, &[]);
    c.wait_serving(4, MINUTE).await;
    let join = c.cli_spawn(&["join", "--node", &a4]);

    // Follow `status --json` of node 1: node 4 must show UJ at some point, then all four UN.
    let mut seen = Vec::<String>::new();
    c.wait_for(secs(240), "node 4 to be seen UJ and then all four nodes UN", async || {
        let s = c.status_json(1).await?;
        let state = json_state(&s, 4).unwrap_or_else(|| "absent".into());
        if seen.last() != Some(&state) {
            seen.push(state.clone());
        }
        let all_un = (1..=4).all(|id| json_state(&s, id).as_deref() == Some("UN"));
        if all_un { Ok(()) } else { Err(format!("node 4 states seen so far: {seen:?}")) }
    })
    .await;
    c.check(seen.iter().any(|s| s == "UJ"), || format!("node 4 was never seen UJ: {seen:?}"));
    let out = c.cli_wait(join, secs(120), "join").await;
    c.check(out.status.success() && out.stdout.contains("joined: "), || {
        format!("ringside join: {}", out.text())
    });
    c.wait_un(&[1, 2, 3, 4], MINUTE).await;

    // Writes go on after the join, and node 4 coordinates too.
    let before = load.acked();
    c.wait_until(MINUTE, "20 more acknowledged writes", async || load.acked() >= before + 20).await;
    let via4 = c.preload(4, "via4", 40, 100).await;
    let acked = finish_load(&c, load, 50).await;
    c.assert_readable(&preloaded, &[1, 2, 3, 4], Cl::Quorum).await;
    c.assert_readable(&acked, &[1, 2, 3, 4], Cl::Quorum).await;
    c.assert_readable(&via4, &[1, 2, 3], Cl::Quorum).await;

    for via in [1, 4] {
        let s = c.status(via).await.unwrap_or_else(|e| c.fail(&format!("status: {e:?}")));
        assert_balanced(&c, &s, 4);
    }
    let s = c.status(4).await.expect("status");
    c.check(s.keys > 0 && member(&s, 4).is_some_and(|m| m.tokens == 16), || {
        format!("node 4 after its join: {s:?}")
    });
    c.kill9(4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joiner_killed_mid_stream_resumes() {
    let (mut c, preloaded, load) = loaded_cluster(0.05, 200).await;
    let a4 = c.add_node(4, &[]);
    c.wait_serving(4, MINUTE).await;
    let out = c.cli(&["join", "--no-wait", "--node", &a4]).await;
    c.check(out.status.success() && out.stdout.contains("join started"), || {
        format!("ringside join --no-wait: {}", out.text())
    });

    let at_kill = c
        .wait_for(
            secs(180),
            "node 4 to be mid-stream (0 < ranges_done < ranges_total)",
            async || {
                let p = c.progress(4).await.map_err(|e| format!("{e:?}"))?;
                if p.movement == "joining" && p.ranges_done > 0 && p.ranges_done < p.ranges_total {
                    Ok(p)
                } else {
                    Err(format!("{p:?}"))
                }
            },
        )
        .await;
    c.kill9(4);
    eprintln!("killed node 4 at {}/{} ranges", at_kill.ranges_done, at_kill.ranges_total);

    c.restart(4);
    let s = c.wait_serving(4, MINUTE).await;
    c.check(s.lifecycle.contains("joining") && s.lifecycle.contains("interrupted"), || {
        format!("node 4 after the restart is {:?}, expected an interrupted join", s.lifecycle)
    });
    // A plain join is refused and says to resume.
    let out = c.cli(&["join", "--no-wait", "--node", &a4]).await;
    c.check(!out.status.success() && out.stderr.contains("join --resume"), || {
        format!("a plain join of an interrupted joiner should be refused: {}", out.text())
    });
    let out = c.cli(&["join", "--resume", "--node", &a4]).await;
    c.check(out.status.success() && out.stdout.contains("join resumed"), || {
        format!("ringside join --resume: {}", out.text())
    });
    c.wait_un(&[1, 2, 3, 4], secs(120)).await;

    let acked = finish_load(&c, load, 50).await;
    c.assert_readable(&preloaded, &[1, 2, 3, 4], Cl::Quorum).await;
    c.assert_readable(&acked, &[1, 2, 3, 4], Cl::Quorum).await;
    let s = c.status(1).await.expect("status");
    assert_balanced(&c, &s, 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_killed_hints_replayed() {
    let mut c = Cluster::up(UpOptions::default()).await;
    c.kill9(3);

    // Writes through node 1 while node 3 is dead: node 1 keeps a hint for each.
    let written = c.write_while_down(1, 3, "hinted", 60).await;
    let n = written.len() as u64;
    let hints = async |c: &Cluster| -> Result<u64, String> {
        let s = c.status(1).await.map_err(|e| format!("{e:?}"))?;
        Ok(s.hints.get(&3).copied().unwrap_or(0))
    };
    let held = c
        .wait_for(MINUTE, "node 1 to hold a hint for node 3 per write", async || {
            let h = hints(&c).await?;
            if h >= n { Ok(h) } else { Err(format!("{h} hints for node 3, want {n}")) }
        })
        .await;

    // The hints are on disk: they survive kill -9 of the coordinator itself.
    c.kill9(1);
    c.restart(1);
    c.wait_serving(1, MINUTE).await;
    let after = hints(&c).await.unwrap_or_else(|e| c.fail(&e));
    c.check(after == held, || {
        format!("node 1 held {held} hints for node 3 before kill -9 and {after} after its restart")
    });

    // Node 3 comes back: the hints drain.
    c.restart(3);
    c.wait_for(secs(120), "node 1's hints for node 3 to drain", async || {
        let h = hints(&c).await?;
        if h == 0 { Ok(()) } else { Err(format!("{h} hints left")) }
    })
    .await;

    // Node 3 holds every key now: with nodes 1 and 2 dead, reads at ONE through node 3 can only
    // be answered from its own storage, which got these keys only by hint replay.
    c.kill9(1);
    c.kill9(2);
    let report = ringside_tests::native::read_back(&written, &c.addresses(&[3]), Cl::One).await;
    c.check(report.missing.is_empty() && report.unreadable.is_empty(), || {
        format!(
            "node 3 lacks {} of {n} hinted keys ({} unreadable) after the hints drained: {:?} {:?}",
            report.missing.len(),
            report.unreadable.len(),
            report.missing.iter().take(5).collect::<Vec<_>>(),
            report.unreadable.iter().take(5).collect::<Vec<_>>()
        )
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_9() {
    let mut c = Cluster::up(UpOptions::default()).await;
    let load = Load::start("crash", c.addresses(&[1, 2, 3]), 6, 200);
    c.wait_until(MINUTE, "300 acknowledged writes", async || load.acked() >= 300).await;
    for id in [1, 2, 3] {
        c.kill9(id);
    }
    let acked = finish_load(&c, load, 100).await;
    for id in [1, 2, 3] {
        c.restart(id);
    }
    c.wait_un(&[1, 2, 3], secs(120)).await;
    c.assert_readable(&acked, &[1, 2, 3], Cl::Quorum).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn decommission_under_load_then_cleanup() {
    // Three nodes streaming unthrottled; node 4 joins at start (`--join`) and streams out
    // (its decommission) at only 0.05 MiB/s.
    let mut c = Cluster::up(UpOptions { stream_throughput_mib: 0.0, ..UpOptions::default() }).await;
    let preloaded = c.preload(1, "pre", 200, 5000).await;
    let out = c.cli(&["decommission", "--node", &c.address(1)]).await;
    c.check(!out.status.success() && out.stderr.contains("fewer than RF=3"), || {
        format!("decommission of a 3-node cluster with RF=3 should be refused: {}", out.text())
    });
    let a4 = c.add_node(4, &["--stream-throughput-mib", "0.05", "--join"]);
    c.wait_un(&[1, 2, 3, 4], secs(180)).await;

    // Cleanup on an old node removes the ghost data its lost ranges left, once.
    let keys_before = c.status(1).await.expect("status").keys;
    let out = c.cli(&["cleanup", "--node", &c.address(1)]).await;
    c.check(out.status.success(), || format!("ringside cleanup: {}", out.text()));
    let removed: u64 = out
        .stdout
        .strip_prefix("cleanup removed ")
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| c.fail(&format!("unexpected cleanup output: {}", out.text())));
    c.check(removed > 0, || {
        format!("the first cleanup after a join removed nothing: {}", out.text())
    });
    let keys_after = c.status(1).await.expect("status").keys;
    c.check(keys_after + removed == keys_before, || {
        format!("node 1 had {keys_before} keys, cleanup removed {removed}, {keys_after} remain")
    });
    let again = c.admin(1).cleanup(pb::CleanupRequest {}).await.expect("cleanup").into_inner();
    c.check(again.keys_removed == 0 && again.bytes_removed == 0, || {
        format!("a second cleanup removed more: {again:?}")
    });
    c.assert_readable(&preloaded, &[1, 2, 3, 4], Cl::Quorum).await;

    // Decommission node 4 under load.
    let load = Load::start("load", c.addresses(&[1, 2, 3]), 4, 100);
    c.wait_until(MINUTE, "20 acknowledged writes", async || load.acked() >= 20).await;
    let decommission = c.cli_spawn(&["decommission", "--node", &a4]);
    c.wait_for(MINUTE, "node 4 to be seen UL", async || {
        let s = c.status_json(1).await?;
        match json_state(&s, 4) {
            Some(state) if state == "UL" => Ok(()),
            other => Err(format!("node 4 is {other:?}")),
        }
    })
    .await;
    // One movement per range at a time: neither another decommission nor a join while 4 leaves.
    let out = c.cli(&["decommission", "--no-wait", "--node", &c.address(1)]).await;
    c.check(!out.status.success() && out.stderr.contains("one range movement at a time"), || {
        format!("a decommission while node 4 leaves should be refused: {}", out.text())
    });
    let a5 = c.add_node(5, &[]);
    c.wait_serving(5, MINUTE).await;
    let out = c.cli(&["join", "--node", &a5]).await;
    c.check(
        !out.status.success()
            && out.stderr.contains("n4 is")
            && out.stderr.contains("one movement per range at a time"),
        || format!("a join while node 4 leaves should be refused: {}", out.text()),
    );
    c.kill9(5);

    let out = c.cli_wait(decommission, secs(240), "decommission").await;
    c.check(out.status.success() && out.stdout.contains("decommissioned: "), || {
        format!("ringside decommission: {}", out.text())
    });
    c.wait_for(MINUTE, "node 4 to be LEFT or gone in every status", async || {
        for id in [1, 2, 3] {
            let s = c.status_json(id).await?;
            match json_status(&s, 4) {
                None => {}
                Some(status) if status == "LEFT" => {}
                Some(other) => return Err(format!("node {id} sees node 4 as {other}")),
            }
        }
        Ok(())
    })
    .await;
    let out = c.cli(&["status", "--node", &c.address(1)]).await;
    c.check(out.status.success() && !out.stdout.contains(&a4), || {
        format!("ringside status still lists the decommissioned node: {}", out.text())
    });
    c.kill9(4);
    c.wait_un(&[1, 2, 3], MINUTE).await;

    let before = load.acked();
    c.wait_until(MINUTE, "20 more acknowledged writes", async || load.acked() >= before + 20).await;
    let acked = finish_load(&c, load, 50).await;
    c.assert_readable(&preloaded, &[1, 2, 3], Cl::Quorum).await;
    c.assert_readable(&acked, &[1, 2, 3], Cl::Quorum).await;
    let s = c.status(1).await.expect("status");
    let total: f64 = s.members.iter().filter_map(|m| m.owns).sum();
    c.check((total - 300.0).abs() <= 0.5, || format!("ownership after the decommission: {s:?}"));

    // Back to three nodes: decommissioning another would leave fewer than RF.
    let out = c.cli(&["decommission", "--node", &c.address(2)]).await;
    c.check(!out.status.success() && out.stderr.contains("fewer than RF=3"), || {
        format!("decommission down to 2 nodes should be refused: {}", out.text())
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_of_another_cluster_is_refused() {
    let mut c = Cluster::up(UpOptions::default()).await;
    c.add_node(4, &["--cluster-name", "other", "--join"]);
    let deadline = std::time::Instant::now() + MINUTE;
    let status = loop {
        if let Some(status) = c.exited(4) {
            break status;
        }
        if std::time::Instant::now() > deadline {
            c.fail("the node of cluster 'other' still runs after 60 s");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    c.check(!status.success(), || format!("the node of cluster 'other' exited with {status}"));
    let log = std::fs::read_to_string(c.get(4).log()).unwrap_or_default();
    let error = log.lines().find(|l| l.starts_with("error: ")).unwrap_or("");
    c.check(error.contains("'other'") && error.contains("'ringside'"), || {
        format!("the refusal should name both clusters, the node said: {log}")
    });
    // The cluster never lists it (checked on every node, a few times).
    for _ in 0..5 {
        for id in [1, 2, 3] {
            let s = c.status(id).await.unwrap_or_else(|e| c.fail(&format!("status: {e:?}")));
            c.check(member(&s, 4).is_none() && s.members.len() == 3, || {
                format!("node {id} lists the refused node: {s:?}")
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The refusal of a second join says "join again when it is NORMAL or gone": doing so works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_refused_during_another_join_succeeds_when_retried() {
    let mut c =
        Cluster::up(UpOptions { stream_throughput_mib: 0.05, ..UpOptions::default() }).await;
    let preloaded = c.preload(1, "pre", 150, 5000).await;
    let a4 = c.add_node(4, &[]);
    let a5 = c.add_node(5, &[]);
    c.wait_serving(4, MINUTE).await;
    c.wait_serving(5, MINUTE).await;
    let join4 = c.cli_spawn(&["join", "--node", &a4]);
    c.wait_for(MINUTE, "node 4 to be seen UJ", async || {
        let s = c.status_json(1).await?;
        match json_state(&s, 4) {
            Some(state) if state == "UJ" => Ok(()),
            other => Err(format!("node 4 is {other:?}")),
        }
    })
    .await;
    // Refused before anything started: the reason (naming the holder) and nothing else.
    let out = c.cli(&["join", "--node", &a5]).await;
    c.check(
        !out.status.success()
            && out.stderr.contains("n4 is")
            && out.stderr.contains("one movement per range at a time")
            && !out.stdout.contains("join started"),
        || format!("a join while node 4 joins should be refused, and only that: {}", out.text()),
    );
    let out = c.cli_wait(join4, secs(240), "join of node 4").await;
    c.check(out.status.success(), || format!("ringside join of node 4: {}", out.text()));
    c.wait_un(&[1, 2, 3, 4], MINUTE).await;

    // Node 4 is NORMAL: join node 5 again, as the refusal said.
    let out = c.cli(&["join", "--node", &a5]).await;
    c.check(out.status.success() && out.stdout.contains("joined: "), || {
        format!("joining node 5 again once node 4 is NORMAL: {}", out.text())
    });
    c.wait_un(&[1, 2, 3, 4, 5], MINUTE).await;
    let s = c.status(1).await.expect("status");
    let m5 = member(&s, 5).cloned();
    c.check(m5.as_ref().is_some_and(|m| m.tokens == 16 && m.owns.unwrap_or(0.0) > 40.0), || {
        format!("node 5 after its join: {m5:?}")
    });
    let total: f64 = s.members.iter().filter_map(|m| m.owns).sum();
    c.check((total - 300.0).abs() <= 0.5, || format!("ownership: {s:?}"));
    c.assert_readable(&preloaded, &[1, 2, 3, 4, 5], Cl::Quorum).await;
}
