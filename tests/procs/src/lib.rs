//! Child processes and loopback ports, written once for everything that starts `ringside` nodes
//! or peers: the multi-process test harness (`ringside-tests`), `cargo xtask bench|explore` and
//! `ringside cluster up`.
//!
//! Stopping is always the same two steps: SIGTERM, so a node syncs its storage and exits the way
//! Ctrl-C would stop it, then SIGKILL once the grace period is over, so a hung process never
//! outlives its owner. Linux only (`/proc` and `kill(1)`), like the rest of the native tooling.

#![warn(missing_docs)]

use std::collections::HashSet;
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// A signal sent with `kill(1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// Ask the process to stop cleanly.
    Term,
    /// Stop it now.
    Kill,
}

/// Sends `signal` to `pid`; whether `kill` reported success.
pub fn signal(pid: u32, signal: Signal) -> bool {
    let name = match signal {
        Signal::Term => "-TERM",
        Signal::Kill => "-KILL",
    };
    Command::new("kill")
        .arg(name)
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A process's state letter (`R`, `S`, `Z`, …) and parent pid, from `/proc/<pid>/stat`.
pub fn proc_stat(pid: u32) -> Option<(char, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // pid (comm) state ppid ...; comm may contain spaces and parentheses.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    Some((state, ppid))
}

/// Whether `pid` is a live process (not gone, not a zombie).
pub fn pid_alive(pid: u32) -> bool {
    matches!(proc_stat(pid), Some((state, _)) if state != 'Z' && state != 'X')
}

/// The direct children of `pid` (for example the nodes of a `ringside cluster up`).
pub fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return Vec::new() };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| c.split_whitespace().filter_map(|p| p.parse().ok()).collect::<Vec<u32>>())
        .collect()
}

/// How a stop went.
#[derive(Clone, Copy, Debug)]
pub struct Stopped {
    /// The exit status, when it could be collected.
    pub status: Option<ExitStatus>,
    /// Whether the process outlived the grace period and was killed.
    pub killed: bool,
}

/// Stops `child`: SIGTERM, then SIGKILL if it has not exited within `grace`. A child that has
/// already exited is only reaped.
pub fn terminate(child: &mut Child, grace: Duration) -> Stopped {
    terminate_all([child], grace)[0]
}

/// Stops every child of `children` together: SIGTERM to all first, so they shut down in parallel,
/// then SIGKILL to those still running when `grace` is over.
pub fn terminate_all<'a>(
    children: impl IntoIterator<Item = &'a mut Child>,
    grace: Duration,
) -> Vec<Stopped> {
    let mut children: Vec<&mut Child> = children.into_iter().collect();
    for child in children.iter_mut() {
        if matches!(child.try_wait(), Ok(None)) {
            signal(child.id(), Signal::Term);
        }
    }
    let deadline = Instant::now() + grace;
    children
        .iter_mut()
        .map(|child| {
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    return Stopped { status: Some(status), killed: false };
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    return Stopped { status: child.wait().ok(), killed: true };
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        })
        .collect()
}

fn handed_out() -> &'static Mutex<HashSet<u16>> {
    static PORTS: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    PORTS.get_or_init(|| Mutex::new(HashSet::new()))
}

/// The first of `n` consecutive loopback ports that are free now, in 20000–31999: below Linux's
/// ephemeral range, so the outgoing connections of the processes started on them cannot take
/// them meanwhile. The search starts at an offset derived from the process id, so concurrent
/// harnesses rarely probe the same block, and a port is never handed out twice by one process,
/// so tests running in parallel threads do not collide. `None` when no block is free.
pub fn free_ports(n: u16) -> Option<u16> {
    const LOW: u32 = 20_000;
    const SPAN: u32 = 12_000;
    assert!(n >= 1 && u32::from(n) < SPAN);
    let seed = std::process::id();
    for attempt in 0..2_000u32 {
        let offset =
            seed.wrapping_mul(7_919).wrapping_add(attempt.wrapping_mul(97)) % (SPAN - u32::from(n));
        let base = (LOW + offset) as u16;
        let mut used = handed_out().lock().unwrap_or_else(|e| e.into_inner());
        if (0..n).any(|i| used.contains(&(base + i))) {
            continue;
        }
        if (0..n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok()) {
            used.extend((0..n).map(|i| base + i));
            return Some(base);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;

    #[test]
    fn ports_are_never_handed_out_twice() {
        let a = free_ports(5).unwrap();
        let b = free_ports(5).unwrap();
        assert!(a + 5 <= b || b + 5 <= a, "{a} and {b} overlap");
        assert!((20_000..32_000).contains(&a));
    }

    #[test]
    fn a_process_that_ignores_sigterm_is_killed_after_the_grace_period() {
        let mut child =
            Command::new("sh").args(["-c", "trap '' TERM; sleep 30"]).spawn().expect("sh");
        // Give the shell time to install its trap before the signal.
        std::thread::sleep(Duration::from_millis(200));
        let stopped = terminate(&mut child, Duration::from_millis(300));
        assert!(stopped.killed);
        assert_eq!(stopped.status.and_then(|s| s.signal()), Some(9), "{stopped:?}");
        assert!(!pid_alive(child.id()));
    }

    #[test]
    fn a_process_that_honours_sigterm_exits_without_sigkill() {
        let mut child = Command::new("sleep").arg("30").spawn().expect("sleep");
        let stopped = terminate(&mut child, Duration::from_secs(10));
        assert!(!stopped.killed);
        assert_eq!(stopped.status.and_then(|s| s.signal()), Some(15), "{stopped:?}");
    }
}
