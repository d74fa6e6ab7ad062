//! A seeded random source for tests: it prints its seed, and
//! `OMENDB_TEST_SEED=<seed>` replays a failing run exactly.

/// SplitMix64: tiny, fast, and good enough to drive tests.
#[derive(Debug)]
pub(crate) struct TestRng {
    state: u64,
}

impl TestRng {
    /// A generator for the test `name`, seeded from `OMENDB_TEST_SEED` or
    /// the clock. The seed goes to stderr, which `cargo test` shows on failure.
    pub(crate) fn new(name: &str) -> TestRng {
        let seed = match std::env::var("OMENDB_TEST_SEED") {
            Ok(text) => text
                .parse()
                .unwrap_or_else(|_| panic!("OMENDB_TEST_SEED={text} is not a u64")),
            Err(_) => std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
        };
        eprintln!("{name}: seed {seed} (replay with OMENDB_TEST_SEED={seed})");
        TestRng { state: seed }
    }

    pub(crate) fn u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0), by rejection-free multiply-shift.
    pub(crate) fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.u64()) * u128::from(n)) >> 64) as u64
    }

    /// Uniform in `[0, 1)`.
    pub(crate) fn unit(&mut self) -> f64 {
        (self.u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A standard normal sample (Box-Muller).
    pub(crate) fn normal(&mut self) -> f64 {
        let u = 1.0 - self.unit(); // in (0, 1], so ln is finite
        (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * self.unit()).cos()
    }
}
