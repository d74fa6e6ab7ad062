//! The key data sets of the index benchmark, generated from a fixed seed so
//! that every run measures the same keys.
//!
//! | name           | keys                                                      |
//! |----------------|-----------------------------------------------------------|
//! | `seq_ts`       | ns timestamps from 1.7e18, 1 s apart with ±10% jitter     |
//! | `bursty`       | bursts of 1,000 events 1 ms apart, 1–60 s between bursts  |
//! | `lognormal`    | lognormal(0, 2) samples × 2^44 (the largest of 100M stays below 2^62) |
//! | `uniform`      | uniform random `u64`                                      |
//! | `multi_tenant` | `(tenant << 40) \| ts`, 1,000 tenants interleaved in time  |

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, LogNormal};

/// The seed of every data set and query stream.
pub const SEED: u64 = 0x0e_3d_b0_01;

/// A named key distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dataset {
    SeqTs,
    Bursty,
    Lognormal,
    Uniform,
    MultiTenant,
}

impl Dataset {
    pub const ALL: [Dataset; 5] = [
        Dataset::SeqTs,
        Dataset::Bursty,
        Dataset::Lognormal,
        Dataset::Uniform,
        Dataset::MultiTenant,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::SeqTs => "seq_ts",
            Dataset::Bursty => "bursty",
            Dataset::Lognormal => "lognormal",
            Dataset::Uniform => "uniform",
            Dataset::MultiTenant => "multi_tenant",
        }
    }

    pub fn from_name(name: &str) -> Option<Dataset> {
        Dataset::ALL.into_iter().find(|d| d.name() == name)
    }

    /// Exactly `n` sorted, distinct keys.
    pub fn generate(self, n: usize) -> Vec<u64> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED ^ self as u64);
        match self {
            Dataset::SeqTs => {
                let mut t = 1.7e18;
                (0..n)
                    .map(|_| {
                        t += 1e9 * rng.random_range(0.9..1.1);
                        t as u64
                    })
                    .collect()
            }
            Dataset::Bursty => {
                let mut t = 1_700_000_000_000_000_000u64;
                (0..n)
                    .map(|i| {
                        t += if i % 1000 == 0 {
                            rng.random_range(1_000_000_000..=60_000_000_000)
                        } else {
                            1_000_000
                        };
                        t
                    })
                    .collect()
            }
            Dataset::Lognormal => {
                // lognormal(0, 2) with the given parameters is always valid.
                let lognormal = LogNormal::new(0.0, 2.0).unwrap_or_else(|_| unreachable!());
                let scale = (1u64 << 44) as f64;
                distinct_samples(n, || (lognormal.sample(&mut rng) * scale) as u64)
            }
            Dataset::Uniform => distinct_samples(n, || rng.random()),
            Dataset::MultiTenant => {
                // Event i happens in [10i, 10i + 10) ms at a random tenant, so
                // each tenant's timestamps are ~10 s apart and all interleave.
                let mut keys: Vec<u64> = (0..n as u64)
                    .map(|i| {
                        let tenant: u64 = rng.random_range(0..1000);
                        (tenant << 40) | (10 * i + rng.random_range(0..10))
                    })
                    .collect();
                keys.sort_unstable();
                keys
            }
        }
    }
}

/// Draws until `n` distinct values, and returns them sorted.
fn distinct_samples(n: usize, mut sample: impl FnMut() -> u64) -> Vec<u64> {
    let mut keys = Vec::with_capacity(n);
    while keys.len() < n {
        keys.extend((keys.len()..n).map(|_| sample()));
        keys.sort_unstable();
        keys.dedup();
    }
    keys
}

/// The query streams of one data set.
#[derive(Debug)]
pub struct Queries {
    /// Keys of the set, at random positions.
    pub present: Vec<u64>,
    /// Keys strictly between two neighbouring keys of the set.
    pub absent: Vec<u64>,
    /// Half present and half absent keys, for `lower_bound`.
    pub mixed: Vec<u64>,
}

impl Queries {
    /// `count` queries of each kind over sorted distinct `keys`.
    pub fn generate(keys: &[u64], count: usize) -> Queries {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(SEED.rotate_left(17) ^ keys.len() as u64);
        let present: Vec<u64> = (0..count)
            .map(|_| keys[rng.random_range(0..keys.len())])
            .collect();
        let absent: Vec<u64> = (0..count).map(|_| absent_key(keys, &mut rng)).collect();
        let mixed = present
            .iter()
            .zip(&absent)
            .map(|(&p, &a)| if p & 1 == 0 { p } else { a })
            .collect();
        Queries {
            present,
            absent,
            mixed,
        }
    }
}

/// A key between two random neighbours of `keys`, or past its end when
/// random probes find no gap.
fn absent_key(keys: &[u64], rng: &mut Xoshiro256PlusPlus) -> u64 {
    for _ in 0..64 {
        let i = rng.random_range(0..keys.len().saturating_sub(1).max(1));
        if let (Some(&a), Some(&b)) = (keys.get(i), keys.get(i + 1))
            && b - a >= 2
        {
            return rng.random_range(a + 1..b);
        }
    }
    keys.last().map_or(0, |&last| last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dataset_has_n_sorted_distinct_keys_and_is_reproducible() {
        for dataset in Dataset::ALL {
            let keys = dataset.generate(50_000);
            assert_eq!(keys.len(), 50_000, "{}", dataset.name());
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "{}", dataset.name());
            assert_eq!(keys, dataset.generate(50_000), "{}", dataset.name());
            assert_eq!(Dataset::from_name(dataset.name()), Some(dataset));
        }
    }

    #[test]
    fn absent_queries_are_absent_and_present_ones_present() {
        let keys = Dataset::Bursty.generate(10_000);
        let queries = Queries::generate(&keys, 1000);
        assert!(
            queries
                .present
                .iter()
                .all(|q| keys.binary_search(q).is_ok())
        );
        assert!(
            queries
                .absent
                .iter()
                .all(|q| keys.binary_search(q).is_err())
        );
    }
}
