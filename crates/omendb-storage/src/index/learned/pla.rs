//! Optimal piecewise-linear approximation (PLA) under a maximum error ε.
//!
//! Given points `(x, y)` with strictly increasing `x`, the fitter cuts them
//! into the fewest consecutive pieces such that each piece has a line `f` with
//! `|f(x) - y| <= ε` for every point of the piece. It is the streaming
//! algorithm of O'Rourke (1981), as used by the PGM-index: for the current
//! piece it keeps the two extreme feasible lines (smallest and largest slope)
//! and the convex hulls that can still become their anchors; each point costs
//! amortised O(1).
//!
//! All geometry here is exact (`i128` cross products over `u64` keys and
//! positions below 2^49), so where a piece ends never depends on rounding.
//! Only the chosen slope is turned into `f64`; the caller then measures the
//! real error of the rounded line (see `learned.rs`).

/// A point of the input shifted up or down by ε.
#[derive(Clone, Copy, Debug)]
struct Point {
    x: u64,
    y: i64,
}

/// The direction from one point to a point strictly to its right.
#[derive(Clone, Copy, Debug)]
struct Slope {
    dx: i128,
    dy: i128,
}

impl Slope {
    fn between(from: Point, to: Point) -> Slope {
        debug_assert!(to.x > from.x, "slopes are taken left to right");
        Slope {
            dx: i128::from(to.x) - i128::from(from.x),
            dy: i128::from(to.y) - i128::from(from.y),
        }
    }

    /// Exact `self < other`; both `dx` are positive, and |dy| < 2^50,
    /// |dx| < 2^64, so each product stays below 2^114.
    fn less_than(self, other: Slope) -> bool {
        self.dy * other.dx < other.dy * self.dx
    }

    fn to_f64(self) -> f64 {
        self.dy as f64 / self.dx as f64
    }
}

/// Twice the signed area of the triangle `o, a, b`: positive when `b` turns
/// left of the ray `o -> a`.
fn cross(o: Point, a: Point, b: Point) -> i128 {
    let oa = Slope::between(o, a);
    let ob = Slope::between(o, b);
    oa.dx * ob.dy - oa.dy * ob.dx
}

/// Streaming fitter for one piece at a time.
#[derive(Debug)]
pub(super) struct PlaFitter {
    epsilon: i64,
    /// Points of the piece shifted up by ε, as their lower convex hull from
    /// `upper_start` on: the anchors left for the min-slope line.
    upper: Vec<Point>,
    upper_start: usize,
    /// Points shifted down by ε, as their upper convex hull from
    /// `lower_start` on: the anchors left for the max-slope line.
    lower: Vec<Point>,
    lower_start: usize,
    /// The feasible line of smallest slope, through an upper point on the
    /// left and a lower point on the right.
    min_line: (Point, Point),
    /// The feasible line of largest slope, through a lower point on the left
    /// and an upper point on the right.
    max_line: (Point, Point),
    points: usize,
}

impl PlaFitter {
    pub(super) fn new(epsilon: u32) -> PlaFitter {
        let origin = Point { x: 0, y: 0 };
        PlaFitter {
            epsilon: i64::from(epsilon),
            upper: Vec::new(),
            upper_start: 0,
            lower: Vec::new(),
            lower_start: 0,
            min_line: (origin, origin),
            max_line: (origin, origin),
            points: 0,
        }
    }

    /// Starts a new piece whose first point is `(x, y)`.
    pub(super) fn start(&mut self, x: u64, y: i64) {
        let (up, down) = self.shifted(x, y);
        self.upper.clear();
        self.upper.push(up);
        self.upper_start = 0;
        self.lower.clear();
        self.lower.push(down);
        self.lower_start = 0;
        self.min_line = (up, up);
        self.max_line = (down, down);
        self.points = 1;
    }

    /// Adds `(x, y)` to the current piece if one line can still fit every
    /// point of it within ε; otherwise returns false and changes nothing.
    /// `x` must exceed every `x` added since `start`.
    pub(super) fn try_add(&mut self, x: u64, y: i64) -> bool {
        let (up, down) = self.shifted(x, y);
        if self.points == 1 {
            self.min_line.1 = down;
            self.max_line.1 = up;
            self.upper.push(up);
            self.lower.push(down);
            self.points = 2;
            return true;
        }

        let min_slope = Slope::between(self.min_line.0, self.min_line.1);
        let max_slope = Slope::between(self.max_line.0, self.max_line.1);
        // Right of every point so far, feasible lines take values between the
        // min-slope and the max-slope line. The new point needs [down, up] to
        // meet that interval.
        let up_below_min = Slope::between(self.min_line.1, up).less_than(min_slope);
        let down_above_max = max_slope.less_than(Slope::between(self.max_line.1, down));
        if up_below_min || down_above_max {
            return false;
        }

        let tighten_max = Slope::between(self.max_line.0, up).less_than(max_slope);
        let tighten_min = min_slope.less_than(Slope::between(self.min_line.0, down));
        if tighten_max {
            // The steepest line under `up` and over every lower point touches
            // the lower points' upper hull where the slope to `up` is least.
            let best = self.lower_start
                + tangent(
                    &self.lower[self.lower_start..],
                    |p| Slope::between(p, up),
                    false,
                );
            self.max_line = (self.lower[best], up);
            self.lower_start = best;
        }
        if tighten_min {
            let best = self.upper_start
                + tangent(
                    &self.upper[self.upper_start..],
                    |p| Slope::between(p, down),
                    true,
                );
            self.min_line = (self.upper[best], down);
            self.upper_start = best;
        }
        if tighten_max {
            push_hull(&mut self.upper, self.upper_start, up, |turn| turn <= 0);
        }
        if tighten_min {
            push_hull(&mut self.lower, self.lower_start, down, |turn| turn >= 0);
        }
        self.points += 1;
        true
    }

    /// A slope that fits every point of the current piece: the middle of the
    /// feasible range, never negative so that predictions grow with the key.
    pub(super) fn slope(&self) -> f64 {
        if self.points < 2 {
            return 0.0;
        }
        let min = Slope::between(self.min_line.0, self.min_line.1).to_f64();
        let max = Slope::between(self.max_line.0, self.max_line.1).to_f64();
        // The max slope joins a lower point to a later upper point, whose y is
        // larger, so it is positive and 0 lies in [min, max] when min < 0.
        ((min + max) / 2.0).max(0.0)
    }

    fn shifted(&self, x: u64, y: i64) -> (Point, Point) {
        (
            Point {
                x,
                y: y + self.epsilon,
            },
            Point {
                x,
                y: y - self.epsilon,
            },
        )
    }
}

/// Index in `hull` of the point whose slope to the new point is least
/// (`greatest` false) or greatest (`greatest` true). Along a convex hull that
/// slope is unimodal, so the scan stops at the first step that gets worse.
fn tangent(hull: &[Point], slope_to: impl Fn(Point) -> Slope, greatest: bool) -> usize {
    let mut best = 0;
    let mut best_slope = slope_to(hull[0]);
    for (i, &p) in hull.iter().enumerate().skip(1) {
        let s = slope_to(p);
        let worse = if greatest {
            s.less_than(best_slope)
        } else {
            best_slope.less_than(s)
        };
        if worse {
            break;
        }
        best = i;
        best_slope = s;
    }
    best
}

/// Appends `p` to a convex chain, first dropping the points (not before
/// `start`) that would no longer be on the hull.
fn push_hull(hull: &mut Vec<Point>, start: usize, p: Point, drop: impl Fn(i128) -> bool) {
    while hull.len() >= start + 2 && drop(cross(hull[hull.len() - 2], hull[hull.len() - 1], p)) {
        hull.pop();
    }
    hull.push(p);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fits all points greedily and returns the piece lengths.
    fn piece_lengths(points: &[(u64, i64)], epsilon: u32) -> Vec<usize> {
        let mut fitter = PlaFitter::new(epsilon);
        let mut lengths = Vec::new();
        for (i, &(x, y)) in points.iter().enumerate() {
            if i == 0 {
                fitter.start(x, y);
                lengths.push(1);
            } else if fitter.try_add(x, y) {
                *lengths.last_mut().unwrap() += 1;
            } else {
                fitter.start(x, y);
                lengths.push(1);
            }
        }
        lengths
    }

    #[test]
    fn collinear_points_make_one_piece() {
        let points: Vec<(u64, i64)> = (0..1000).map(|i| (i * 7 + 3, i as i64)).collect();
        assert_eq!(piece_lengths(&points, 0), vec![1000]);
    }

    #[test]
    fn a_step_larger_than_two_epsilon_cuts_the_piece() {
        // y jumps by 10 between x = 4 and x = 5: no line stays within ε = 2.
        let points: Vec<(u64, i64)> = (0..10).map(|i| (i, if i < 5 { 0 } else { 10 })).collect();
        assert_eq!(piece_lengths(&points, 2), vec![5, 5]);
        // With ε = 5 one line fits (through y = 5 flat).
        assert_eq!(piece_lengths(&points, 5), vec![10]);
    }

    #[test]
    fn slope_of_a_perfect_line_is_exact() {
        let mut fitter = PlaFitter::new(0);
        fitter.start(100, 0);
        for i in 1..50 {
            assert!(fitter.try_add(100 + 4 * i, i as i64));
        }
        assert_eq!(fitter.slope(), 0.25);
    }

    #[test]
    fn huge_x_gaps_use_exact_arithmetic() {
        // Keys spread over the whole u64 range, positions linear in the key.
        let step = u64::MAX / 1024;
        let points: Vec<(u64, i64)> = (0..1024).map(|i| (i * step, i as i64)).collect();
        assert_eq!(piece_lengths(&points, 0), vec![1024]);
    }
}
