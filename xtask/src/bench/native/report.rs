//! The native benchmark's report: the Markdown tables of a comparison and of a join, with the
//! ratios against the physical limits and the peers. Rendering only; the runs are in `native`.

use super::*;

pub(super) fn ms(v: f64) -> String {
    if v.is_nan() { "–".into() } else { format!("{v:.2}") }
}

pub(super) fn ratio(a: f64, b: f64) -> String {
    if b > 0.0 && a.is_finite() { format!("{:.2}×", a / b) } else { "–".into() }
}

pub(super) fn met(ok: bool) -> &'static str {
    if ok { "**met**" } else { "**missed**" }
}

impl Compared {
    pub(super) fn render(&self, p: &Plan, peers: &Peers) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "### Physical limits\n");
        let _ = writeln!(o, "| probe | result |\n|---|---|");
        let _ = writeln!(
            o,
            "| serial 4 KiB `write` + `fdatasync` (same disk as the data) | {:.0} /s, p50 {} ms, p99 {} ms |",
            self.fsync_rate,
            ms(self.fsync_p50),
            ms(self.fsync_p99)
        );
        let _ = writeln!(
            o,
            "| loopback TCP round trip, 1 byte, TCP_NODELAY | p50 {:.1} µs, p99 {:.1} µs |\n",
            self.rtt_p50_us, self.rtt_p99_us
        );
        let _ = writeln!(
            o,
            "### Throughput and latency (C = {}, {} B values, {} keys, closed loop unless a rate is given)\n",
            p.concurrency, p.value_size, p.keys
        );
        let _ = writeln!(
            o,
            "| system | operation | ops/s | p50 ms | p99 ms | p99.9 ms | errors |\n|---|---|---:|---:|---:|---:|---:|"
        );
        let row = |o: &mut String, system: &str, op: &str, l: &Load| {
            let _ = writeln!(
                o,
                "| {system} | {op} | {:.0} | {} | {} | {} | {} |",
                l.throughput,
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                l.errors
            );
        };
        let rate = |l: &Load| l.rate.map_or(String::new(), |r| format!("{r:.0}"));
        row(&mut o, "ringside 3 × RF 3", "put QUORUM", &self.ringside_put);
        row(&mut o, "ringside 3 × RF 3", "put QUORUM, C = 1", &self.ringside_serial);
        row(&mut o, "ringside 3 × RF 3", "get QUORUM", &self.ringside_get);
        row(
            &mut o,
            "ringside 3 × RF 3",
            &format!("put QUORUM, open loop at {} ops/s (50 % of peak)", rate(&self.ringside_half)),
            &self.ringside_half,
        );
        let etcd = peers.etcd.as_deref().unwrap_or("etcd");
        let etcd = format!(
            "{} (3 members)",
            etcd.trim_start_matches("etcd Version: ")
                .split_whitespace()
                .next()
                .map_or("etcd".into(), |v| format!("etcd {v}"))
        );
        if let (Some(put), Some(get), Some(half)) =
            (&self.etcd_put, &self.etcd_get, &self.etcd_half)
        {
            row(&mut o, &etcd, "put", put);
            if let Some(serial) = &self.etcd_serial {
                row(&mut o, &etcd, "put, C = 1", serial);
            }
            row(&mut o, &etcd, "range (linearizable)", get);
            row(
                &mut o,
                &etcd,
                &format!("put, open loop at {} ops/s (50 % of its peak)", rate(half)),
                half,
            );
        } else {
            let _ = writeln!(
                o,
                "| etcd | not measured (not installed: `apt-get install -y etcd-server etcd-client`) | | | | | |"
            );
        }
        let redis_row = |o: &mut String, system: &str, op: &str, r: &Option<RedisLoad>| {
            if let Some(r) = r {
                let _ = writeln!(
                    o,
                    "| {system} | {op} | {:.0} | {} | {} | – | – |",
                    r.rps,
                    ms(r.p50),
                    ms(r.p99)
                );
            }
        };
        if peers.redis.is_some() {
            redis_row(&mut o, "redis, no persistence", "SET (redis-benchmark)", &self.redis_set);
            redis_row(&mut o, "redis, no persistence", "GET (redis-benchmark)", &self.redis_get);
            redis_row(
                &mut o,
                "redis, appendfsync always",
                "SET (redis-benchmark)",
                &self.redis_aof_set,
            );
        } else {
            let _ = writeln!(
                o,
                "| redis | not measured (not installed: `apt-get install -y redis-server`) | | | | | |"
            );
        }
        let _ = writeln!(o, "\n| ratio | value | target |\n|---|---:|---|");
        if let Some(put) = &self.etcd_put {
            let r = self.ringside_put.throughput / put.throughput.max(1e-9);
            let _ = writeln!(
                o,
                "| ringside / etcd write throughput | {r:.2}× | ≥ 2×: {} |",
                met(r >= 2.0)
            );
        }
        let half_p99 = self.ringside_half.p99;
        let _ = writeln!(
            o,
            "| ringside write p99 at 50 % of peak | {} ms | ≤ 10 ms: {} |",
            ms(half_p99),
            met(half_p99 <= 10.0 && self.ringside_half.errors == 0)
        );
        if let (Some(get), Some(half)) = (&self.etcd_get, &self.etcd_half) {
            let _ = writeln!(
                o,
                "| ringside / etcd read throughput | {} | – |",
                ratio(self.ringside_get.throughput, get.throughput)
            );
            let _ = writeln!(
                o,
                "| etcd write p99 at 50 % of its peak | {} ms | (reference) |",
                ms(half.p99)
            );
        }
        if let Some(set) = &self.redis_set {
            let _ = writeln!(
                o,
                "| ringside put / redis SET (no persistence) | {} | – |",
                ratio(self.ringside_put.throughput, set.rps)
            );
        }
        if let Some(get) = &self.redis_get {
            let _ = writeln!(
                o,
                "| ringside get / redis GET | {} | – |",
                ratio(self.ringside_get.throughput, get.rps)
            );
        }
        if let Some(set) = &self.redis_aof_set {
            let _ = writeln!(
                o,
                "| ringside put / redis SET with appendfsync always | {} | – |",
                ratio(self.ringside_put.throughput, set.rps)
            );
        }
        if let Some(s) = self.ringside_half.service_p99 {
            let _ = writeln!(
                o,
                "\nThe open-loop runs measure latency from each request's scheduled start (no coordinated omission); the ringside half-load run's p99 from the actual send was {} ms.",
                ms(s)
            );
        }
        let _ = writeln!(
            o,
            "\nWhere the time goes, per run: CPU of the server processes (from `/proc`), the machine's busy CPU (everything: the load generator and other users included), and for Ringside the group commit (`ringside_storage_syncs_total`, `ringside_storage_synced_inputs_total`; inputs are client requests and internode messages) and the coordinator's own mean latency (`ringside_request_duration_seconds`) next to the client's:\n"
        );
        let _ = writeln!(
            o,
            "| run | server CPU, cores | CPU µs per op | machine busy, cores | fsyncs/s per node | inputs per fsync | client mean ms | coordinator mean ms |\n|---|---:|---:|---:|---:|---:|---:|---:|"
        );
        let opt =
            |v: Option<f64>, digits: usize| v.map_or("–".into(), |v| format!("{v:.digits$}"));
        for (label, load, ob) in &self.observed {
            let _ = writeln!(
                o,
                "| {label} | {:.2} | {:.0} | {:.2} of {} | {} | {} | {} | {} |",
                ob.server_cores,
                ob.server_us_per_op,
                ob.machine_cores,
                ob.machine_total,
                opt(ob.syncs_per_s, 0),
                opt(ob.inputs_per_sync, 1),
                ms(load.mean),
                opt(ob.node_mean_ms, 2)
            );
        }
        o.push('\n');
        o
    }
}

impl Joined {
    pub(super) fn render(&self, p: &Plan) -> String {
        let mut o = String::new();
        let stream_rate = self.streamed_bytes / MIB / self.stream_secs;
        let join_rate = self.streamed_bytes / MIB / self.join_secs.max(0.001);
        let copy_rate = self.copy_bytes as f64 / MIB / self.copy_secs.max(0.001);
        let _ = writeln!(o, "### Join streaming rate\n");
        let _ = writeln!(o, "| measure | value |\n|---|---:|");
        let _ = writeln!(
            o,
            "| data loaded through the API (QUORUM, C = {}) | {} × {} KiB = {:.0} MiB in {:.1} s ({:.1} MiB/s) |",
            p.join_concurrency,
            p.join_keys,
            p.join_value / 1024,
            self.loaded_bytes as f64 / MIB,
            self.load.elapsed,
            self.load.mib_per_s
        );
        let _ = writeln!(
            o,
            "| node 1 data directory after loading | {:.0} MiB |",
            self.node_dir_bytes as f64 / MIB
        );
        let _ = writeln!(
            o,
            "| streamed to node 4 (its `/metrics`) | {:.0} keys, {:.1} MiB |",
            self.streamed_keys,
            self.streamed_bytes / MIB
        );
        let _ = writeln!(
            o,
            "| whole join (`ringside join` until NORMAL) | {:.2} s → {join_rate:.1} MiB/s |",
            self.join_secs
        );
        let _ = writeln!(
            o,
            "| streaming phase (first to last byte, 100 ms samples) | {:.2} s → **{stream_rate:.1} MiB/s** |",
            self.stream_secs
        );
        let _ = writeln!(
            o,
            "| raw copy: `cp -r` of node 1's data directory + fsync of every file | {:.0} MiB in {:.2} s → **{copy_rate:.1} MiB/s** |",
            self.copy_bytes as f64 / MIB,
            self.copy_secs
        );
        let _ = writeln!(
            o,
            "| streaming time per MiB (the default `stream_chunk_bytes` is 4 MiB, one chunk in flight per session) | {:.0} ms |",
            self.stream_secs * 1000.0 / (self.streamed_bytes / MIB).max(1e-9)
        );
        let _ = writeln!(o, "| streaming / raw copy | {} |", ratio(stream_rate, copy_rate));
        let _ = writeln!(o, "| target: streaming ≥ 200 MiB/s | {} |", met(stream_rate >= 200.0));
        let fg = |l: &Load| {
            format!(
                "p50 {} ms, p99 {} ms, p99.9 {} ms, {} errors ({} ops)",
                ms(l.p50),
                ms(l.p99),
                ms(l.p999),
                l.errors,
                l.ops
            )
        };
        let _ = writeln!(
            o,
            "| foreground QUORUM put at {} ops/s (C ≤ {}), before the join | {} |",
            p.fg_rate,
            p.fg_concurrency,
            fg(&self.fg_before)
        );
        let _ = writeln!(o, "| the same load during the join | {} |", fg(&self.fg_during));
        if !self.join_line.is_empty() {
            let _ = writeln!(o, "\n`ringside join` printed: `{}`", self.join_line);
        }
        o.push('\n');
        o
    }
}
