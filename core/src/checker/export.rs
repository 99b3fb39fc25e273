//! Export of histories for Jepsen-family tools (docs/semantics.md §2: "readable by Jepsen-family tools").
//!
//! EDN follows Jepsen's `history.edn`: one op map per line, `:time` in nanoseconds, keys as in
//! Jepsen's `independent` checker (`:value [key value]`) so Knossos' register model can check a
//! history directly:
//!
//! - writes: `[:k "v"]` on every event;
//! - deletes: exported as writes of `nil` (the register model's "absent"), `[:k nil]`;
//! - reads: `[:k nil]` on invoke, `fail` and `info`; on `ok`, `nil` when nothing was returned,
//!   the bare string for one value, and a vector `["v1" "v2"]` for siblings (which a register
//!   checker then rightly rejects, since no write wrote that vector);
//! - `:error` (`:unavailable`, `:timeout`, `:node-down`) is added to `fail` and `info` ops.
//!
//! Keys that are valid EDN keywords (`k7`, `user-1`) are written as keywords, others as strings.
//! JSON export is the serde form of [`History`] (full fidelity: versions, contexts, levels).

use crate::history::{History, Op, OpError, OpFunction, OpType};
use std::fmt::Write as _;

/// Renders `history` as Jepsen EDN, one op map per line (each line ends with `\n`).
pub fn to_jepsen_edn(history: &History) -> String {
    let mut out = String::new();
    for op in &history.ops {
        write_op(&mut out, op);
        out.push('\n');
    }
    out
}

/// Renders `history` as JSON (its serde form).
///
/// # Errors
/// Only if serialization itself fails, which the history types do not cause.
pub fn to_json(history: &History) -> Result<String, serde_json::Error> {
    serde_json::to_string(history)
}

fn write_op(out: &mut String, op: &Op) {
    let op_type = match op.op_type {
        OpType::Invoke => "invoke",
        OpType::Ok => "ok",
        OpType::Fail => "fail",
        OpType::Info => "info",
    };
    let f = match op.f {
        OpFunction::Read => "read",
        // Deletes are writes of "absent" for a register model.
        OpFunction::Write | OpFunction::Delete => "write",
    };
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "{{:type :{op_type}, :f :{f}, :process {}, :time {}, :index {}, :value [",
        op.process,
        op.time.as_micros().saturating_mul(1_000),
        op.index,
    );
    write_key(out, &op.key);
    out.push(' ');
    match (op.f, op.op_type) {
        (OpFunction::Write, _) => write_opt_string(out, op.value.as_deref()),
        (OpFunction::Delete, _) => out.push_str("nil"),
        (OpFunction::Read, OpType::Ok) => match op.values.as_slice() {
            [] => out.push_str("nil"),
            [one] => write_string(out, one),
            many => {
                out.push('[');
                for (i, v) in many.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    write_string(out, v);
                }
                out.push(']');
            }
        },
        (OpFunction::Read, _) => out.push_str("nil"),
    }
    out.push(']');
    if let Some(error) = op.error {
        out.push_str(match error {
            OpError::Unavailable => ", :error :unavailable",
            OpError::Timeout => ", :error :timeout",
            OpError::NodeDown => ", :error :node-down",
        });
    }
    out.push('}');
}

fn write_opt_string(out: &mut String, s: Option<&str>) {
    match s {
        Some(s) => write_string(out, s),
        None => out.push_str("nil"),
    }
}

/// Writes an EDN string literal with the escapes Clojure's reader understands.
fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Writes a key as a keyword when it is a plain EDN symbol name, else as a string.
fn write_key(out: &mut String, key: &str) {
    if is_keyword_name(key) {
        out.push(':');
        out.push_str(key);
    } else {
        write_string(out, key);
    }
}

/// A conservative subset of EDN symbol names: a letter or one of `*!_?-+` first (not followed
/// by a digit for `-`/`+`, which would read as a number), then letters, digits and `*!_?-+.`.
fn is_keyword_name(key: &str) -> bool {
    let is_sym = |c: char| c.is_ascii_alphanumeric() || "*!_?-+.".contains(c);
    let mut chars = key.chars();
    let Some(first) = chars.next() else {
        return false;
    };
    let second = key.chars().nth(1);
    let starts_ok = first.is_ascii_alphabetic()
        || ("*!_?".contains(first))
        || ("-+".contains(first) && !second.is_some_and(|c| c.is_ascii_digit()));
    starts_ok && chars.all(is_sym)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checker::testkit::{Builder, tag, vc};
    use crate::consistency::ConsistencyLevel::{All, Quorum};
    use crate::history::OpError;

    #[test]
    fn edn_matches_jepsen_format() {
        let mut b = Builder::new();
        b.write(0, "k7", "v5", Quorum, 12_300, 12_310, tag(12_300_000, 0, 1));
        b.invoke_read(1, "k7", Quorum, 12_320);
        b.ok_read(1, 12_330, &["v5"], vc(&[(0, 1)]));
        b.invoke_read(1, "k7", Quorum, 12_340);
        b.ok_read(1, 12_350, &["v5", "v6"], vc(&[(0, 1), (1, 1)]));
        b.invoke_delete(2, "key with \"space\"", All, 12_360);
        b.info(2, 12_370, OpError::Timeout);
        b.invoke_read(1, "k8", Quorum, 12_380);
        b.ok_read(1, 12_390, &[], vc(&[]));
        b.invoke_write(0, "k8", "x", Quorum, 12_400);
        b.fail(0, 12_410, OpError::Unavailable);
        let expected = r#"{:type :invoke, :f :write, :process 0, :time 12300000000, :index 0, :value [:k7 "v5"]}
{:type :ok, :f :write, :process 0, :time 12310000000, :index 1, :value [:k7 "v5"]}
{:type :invoke, :f :read, :process 1, :time 12320000000, :index 2, :value [:k7 nil]}
{:type :ok, :f :read, :process 1, :time 12330000000, :index 3, :value [:k7 "v5"]}
{:type :invoke, :f :read, :process 1, :time 12340000000, :index 4, :value [:k7 nil]}
{:type :ok, :f :read, :process 1, :time 12350000000, :index 5, :value [:k7 ["v5" "v6"]]}
{:type :invoke, :f :write, :process 2, :time 12360000000, :index 6, :value ["key with \"space\"" nil]}
{:type :info, :f :write, :process 2, :time 12370000000, :index 7, :value ["key with \"space\"" nil], :error :timeout}
{:type :invoke, :f :read, :process 1, :time 12380000000, :index 8, :value [:k8 nil]}
{:type :ok, :f :read, :process 1, :time 12390000000, :index 9, :value [:k8 nil]}
{:type :invoke, :f :write, :process 0, :time 12400000000, :index 10, :value [:k8 "x"]}
{:type :fail, :f :write, :process 0, :time 12410000000, :index 11, :value [:k8 "x"], :error :unavailable}
"#;
        assert_eq!(to_jepsen_edn(&b.build()), expected);
    }

    #[test]
    fn keys_and_strings_are_escaped_safely() {
        let mut s = String::new();
        for key in ["k7", "user-1", "a.b", "-x", "?"] {
            s.clear();
            write_key(&mut s, key);
            assert_eq!(s, format!(":{key}"));
        }
        for key in ["", "7k", "-1", "a b", "a:b", "a/b", "é"] {
            s.clear();
            write_key(&mut s, key);
            assert!(s.starts_with('"'), "{key} -> {s}");
        }
        s.clear();
        write_string(&mut s, "a\\b\n\u{1}");
        assert_eq!(s, r#""a\\b\n\u0001""#);
    }

    #[test]
    fn json_round_trips() {
        let mut b = Builder::new();
        b.write(0, "k", "v", Quorum, 1, 2, tag(1, 0, 1));
        b.read(1, "k", Quorum, 3, 4, &["v"], vc(&[(0, 1)]));
        let history = b.build();
        let json = to_json(&history).unwrap();
        let back: History = serde_json::from_str(&json).unwrap();
        assert_eq!(back, history);
    }
}
