//! Pure geometry of the ring view: angles, arcs, node places, message positions and the replica
//! walk. No DOM here, so it is unit-tested natively (`cargo test -p ringside-ui`).

use ringside_core::NodeId;
use ringside_core::explore::ArcView;
use std::f64::consts::{PI, TAU};

/// The SVG's coordinate system: a square `SIZE` wide, centred at `CENTER`.
pub const SIZE: f64 = 640.0;
/// Centre of the ring.
pub const CENTER: f64 = SIZE / 2.0;
/// Inner and outer radius of the ring of vnodes.
pub const RING_INNER: f64 = 168.0;
/// Outer radius of the ring of vnodes.
pub const RING_OUTER: f64 = 200.0;
/// Radius of the pending-range band just outside the ring.
pub const PENDING_INNER: f64 = 204.0;
/// Outer radius of the pending-range band.
pub const PENDING_OUTER: f64 = 214.0;
/// Radius at which node badges sit.
pub const NODE_RADIUS: f64 = 262.0;

/// A point in SVG coordinates.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Point {
    /// Horizontal, growing right.
    pub x: f64,
    /// Vertical, growing down.
    pub y: f64,
}

/// The angle (radians, SVG orientation) of a ring fraction: 0 at the top, clockwise.
pub fn angle_of(fraction: f64) -> f64 {
    fraction * TAU - PI / 2.0
}

/// The point at `radius` from the centre at ring fraction `fraction`.
pub fn polar(fraction: f64, radius: f64) -> Point {
    let a = angle_of(fraction);
    Point { x: CENTER + radius * a.cos(), y: CENTER + radius * a.sin() }
}

/// The ring fraction (0..1) under an SVG point.
pub fn fraction_at(p: Point) -> f64 {
    let a = (p.y - CENTER).atan2(p.x - CENTER) + PI / 2.0;
    a.rem_euclid(TAU) / TAU
}

/// Distance of an SVG point from the centre.
pub fn radius_at(p: Point) -> f64 {
    (p.x - CENTER).hypot(p.y - CENTER)
}

/// The token at a ring fraction.
pub fn token_at(fraction: f64) -> u64 {
    (fraction.clamp(0.0, 1.0) * ringside_core::token::RING_SIZE as f64).min(u64::MAX as f64) as u64
}

fn fmt(v: f64) -> String {
    format!("{v:.2}")
}

/// An SVG path for the band between `r_in` and `r_out` from ring fraction `start` over
/// `width` (a whole ring when `width >= 1`).
pub fn band_path(start: f64, width: f64, r_in: f64, r_out: f64) -> String {
    if width >= 1.0 - 1e-9 {
        // Two half-circles per edge: an arc cannot start and end at the same point.
        let (a, b) = (polar(0.0, r_out), polar(0.5, r_out));
        let (c, d) = (polar(0.0, r_in), polar(0.5, r_in));
        return format!(
            "M{} {}A{r_out} {r_out} 0 1 1 {} {}A{r_out} {r_out} 0 1 1 {} {}Z M{} {}A{r_in} {r_in} 0 1 0 {} {}A{r_in} {r_in} 0 1 0 {} {}Z",
            fmt(a.x),
            fmt(a.y),
            fmt(b.x),
            fmt(b.y),
            fmt(a.x),
            fmt(a.y),
            fmt(c.x),
            fmt(c.y),
            fmt(d.x),
            fmt(d.y),
            fmt(c.x),
            fmt(c.y),
        );
    }
    let end = start + width;
    let large = if width > 0.5 { 1 } else { 0 };
    let (o1, o2) = (polar(start, r_out), polar(end, r_out));
    let (i1, i2) = (polar(end, r_in), polar(start, r_in));
    format!(
        "M{} {}A{r_out} {r_out} 0 {large} 1 {} {}L{} {}A{r_in} {r_in} 0 {large} 0 {} {}Z",
        fmt(o1.x),
        fmt(o1.y),
        fmt(o2.x),
        fmt(o2.y),
        fmt(i1.x),
        fmt(i1.y),
        fmt(i2.x),
        fmt(i2.y),
    )
}

/// Where node number `index` of `count` sits (evenly around the ring, the first at the top).
pub fn node_position(index: usize, count: usize) -> Point {
    polar(index as f64 / count.max(1) as f64, NODE_RADIUS)
}

/// The control point of the curve a message follows from `a` to `b`: bent towards the centre
/// and to the sender's left, so that the two directions of a link do not overlap.
fn control(a: Point, b: Point) -> Point {
    let mid = Point { x: (a.x + b.x) / 2.0, y: (a.y + b.y) / 2.0 };
    let (dx, dy) = (b.x - a.x, b.y - a.y);
    let len = dx.hypot(dy).max(1e-9);
    // Left normal of the direction a → b.
    let (nx, ny) = (dy / len, -dx / len);
    let bend = 0.12 * len;
    let toward_center = 0.25;
    Point {
        x: mid.x + nx * bend + (CENTER - mid.x) * toward_center,
        y: mid.y + ny * bend + (CENTER - mid.y) * toward_center,
    }
}

/// A message's position `progress` (0..=1) of the way from `a` to `b`.
pub fn message_point(a: Point, b: Point, progress: f64) -> Point {
    let t = progress.clamp(0.0, 1.0);
    let c = control(a, b);
    let u = 1.0 - t;
    Point {
        x: u * u * a.x + 2.0 * u * t * c.x + t * t * b.x,
        y: u * u * a.y + 2.0 * u * t * c.y + t * t * b.y,
    }
}

/// The SVG path of the curve from `a` to `b` (drawn under a selected message).
pub fn message_path(a: Point, b: Point) -> String {
    let c = control(a, b);
    format!("M{} {}Q{} {} {} {}", fmt(a.x), fmt(a.y), fmt(c.x), fmt(c.y), fmt(b.x), fmt(b.y))
}

/// One vnode met while walking the ring clockwise from a key's token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalkStep {
    /// Index of the arc in the ring's arcs.
    pub arc: usize,
    /// The vnode's owner.
    pub owner: NodeId,
    /// `Some(n)`: the owner is the key's n-th replica (1-based). `None`: skipped (already a
    /// replica, or not one under the engine's placement, e.g. rack awareness).
    pub replica: Option<usize>,
}

/// The replica walk of `token`: from the arc containing it, clockwise, until every replica the
/// engine chose for that arc (its `replicas`) has been met at one of its vnodes. The replica set
/// is the engine's; this only shows where the walk found each one.
pub fn replica_walk(arcs: &[ArcView], token: u64) -> Vec<WalkStep> {
    let Some(first) = arcs.iter().position(|a| a.range.contains(token)) else {
        return Vec::new();
    };
    let replicas = &arcs[first].replicas;
    let mut found: Vec<NodeId> = Vec::new();
    let mut steps = Vec::new();
    for k in 0..arcs.len() {
        if found.len() == replicas.len() {
            break;
        }
        let i = (first + k) % arcs.len();
        let owner = arcs[i].owner;
        let replica = (replicas.contains(&owner) && !found.contains(&owner)).then(|| {
            found.push(owner);
            found.len()
        });
        steps.push(WalkStep { arc: i, owner, replica });
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: Point, b: Point) -> bool {
        (a.x - b.x).abs() < 1e-6 && (a.y - b.y).abs() < 1e-6
    }

    #[test]
    fn fractions_go_clockwise_from_the_top() {
        assert!(close(polar(0.0, 100.0), Point { x: CENTER, y: CENTER - 100.0 }));
        assert!(close(polar(0.25, 100.0), Point { x: CENTER + 100.0, y: CENTER }));
        assert!(close(polar(0.5, 100.0), Point { x: CENTER, y: CENTER + 100.0 }));
        for f in [0.0, 0.1, 0.26, 0.5, 0.74, 0.99] {
            assert!((fraction_at(polar(f, 180.0)) - f).abs() < 1e-9, "{f}");
            assert!((radius_at(polar(f, 180.0)) - 180.0).abs() < 1e-9);
        }
    }

    #[test]
    fn tokens_span_the_whole_u64_range() {
        assert_eq!(token_at(0.0), 0);
        assert_eq!(token_at(1.0), u64::MAX);
        assert_eq!(token_at(0.5), 1 << 63);
    }

    #[test]
    fn band_paths_use_the_large_arc_flag_past_half_a_ring() {
        let small = band_path(0.1, 0.2, 10.0, 20.0);
        assert!(small.starts_with('M') && small.contains(" 0 0 1 "), "{small}");
        let large = band_path(0.1, 0.7, 10.0, 20.0);
        assert!(large.contains(" 0 1 1 "), "{large}");
        let whole = band_path(0.0, 1.0, 10.0, 20.0);
        assert_eq!(whole.matches('A').count(), 4, "{whole}");
    }

    #[test]
    fn messages_start_at_the_sender_end_at_the_receiver_and_directions_differ() {
        let (a, b) = (node_position(0, 4), node_position(2, 4));
        assert!(close(message_point(a, b, 0.0), a));
        assert!(close(message_point(a, b, 1.0), b));
        let there = message_point(a, b, 0.5);
        let back = message_point(b, a, 0.5);
        assert!((there.x - back.x).abs() > 10.0, "{there:?} {back:?}");
        assert!(message_path(a, b).contains('Q'));
    }

    fn arc(start: f64, width: f64, owner: u32, replicas: &[u32]) -> ArcView {
        ArcView {
            start,
            width,
            token: token_at(start + width),
            range: ringside_core::token::TokenRange::new(token_at(start), token_at(start + width)),
            owner: NodeId(owner),
            replicas: replicas.iter().map(|r| NodeId(*r)).collect(),
        }
    }

    #[test]
    fn the_walk_skips_owners_already_met() {
        // Owners around the ring: 0, 0, 1, 0, 2 (RF 3: replicas of the first arc are 0, 1, 2).
        let arcs = vec![
            arc(0.0, 0.2, 0, &[0, 1, 2]),
            arc(0.2, 0.2, 0, &[0, 1, 2]),
            arc(0.4, 0.2, 1, &[1, 0, 2]),
            arc(0.6, 0.2, 0, &[0, 2, 1]),
            arc(0.8, 0.2, 2, &[2, 0, 1]),
        ];
        let walk = replica_walk(&arcs, token_at(0.1));
        let replicas: Vec<Option<usize>> = walk.iter().map(|s| s.replica).collect();
        assert_eq!(replicas, vec![Some(1), None, Some(2), None, Some(3)]);
        assert_eq!(walk.last().unwrap().owner, NodeId(2));
        // A token in the last arc wraps around to the first.
        let wrap = replica_walk(&arcs, token_at(0.9));
        assert_eq!(wrap[0].arc, 4);
        assert_eq!(wrap[1].arc, 0);
    }
}
