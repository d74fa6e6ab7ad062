//! The storage benchmark's data: readings of `devices` devices every ten
//! seconds, arriving in time order (one reading per device per tick), as
//! a fleet of sensors would send them.
//!
//! Reading `i` is device `i % devices` at tick `i / devices`; its values
//! come from a hash of `i`, so every engine stores the same rows and their
//! answers can be compared.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};

/// Microseconds between two readings of a device.
pub const INTERVAL_US: i64 = 10_000_000;
/// One hour, the span of a range scan.
pub const HOUR_US: i64 = 3_600_000_000;
/// 2026-01-01 00:00:00 in microseconds since 1970-01-01.
pub const START_US: i64 = 1_767_225_600_000_000;

/// One row of `readings (device_id int, ts timestamp, cpu float8, mem float8)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Reading {
    pub device: i32,
    /// Microseconds since 1970-01-01.
    pub ts: i64,
    pub cpu: f64,
    pub mem: f64,
}

/// A data set of `rows` readings from `devices` devices.
#[derive(Clone, Copy, Debug)]
pub struct TimeSeries {
    pub rows: u64,
    pub devices: u32,
}

impl TimeSeries {
    /// Reading number `i`.
    pub fn reading(&self, i: u64) -> Reading {
        let devices = u64::from(self.devices);
        let hash = splitmix64(i);
        Reading {
            // `i % devices < devices <= u32::MAX`, and device ids are small.
            device: (i % devices) as i32,
            ts: START_US + (i / devices) as i64 * INTERVAL_US,
            cpu: (hash & 0xffff) as f64 / 655.36,
            mem: ((hash >> 16) & 0xffff) as f64 / 65.536,
        }
    }

    /// Ticks (timestamps) per device.
    pub fn ticks(&self) -> u64 {
        self.rows.div_ceil(u64::from(self.devices))
    }

    /// The keys `(device, ts)` of `n` random readings.
    pub fn random_keys(&self, n: usize, seed: u64) -> Vec<(i32, i64)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        (0..n)
            .map(|_| {
                let r = self.reading(rng.random_range(0..self.rows));
                (r.device, r.ts)
            })
            .collect()
    }

    /// `n` random one-hour ranges `(device, from, to)` (`to` excluded),
    /// each of one device and within the data.
    pub fn random_hours(&self, n: usize, seed: u64) -> Vec<(i32, i64, i64)> {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
        let hour_ticks = (HOUR_US / INTERVAL_US) as u64;
        let last_start = self.ticks().saturating_sub(hour_ticks);
        (0..n)
            .map(|_| {
                let device = rng.random_range(0..self.devices.min(self.rows as u32));
                let from = START_US + rng.random_range(0..=last_start) as i64 * INTERVAL_US;
                (device as i32, from, from + HOUR_US)
            })
            .collect()
    }
}

/// A well-mixed 64-bit hash (SplitMix64's finalizer).
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_arrive_in_time_order_one_per_device_per_tick() {
        let data = TimeSeries {
            rows: 10,
            devices: 4,
        };
        let keys: Vec<(i32, i64)> = (0..10)
            .map(|i| {
                let r = data.reading(i);
                (r.device, r.ts)
            })
            .collect();
        assert_eq!(keys[0], (0, START_US));
        assert_eq!(keys[3], (3, START_US));
        assert_eq!(keys[4], (0, START_US + INTERVAL_US));
        assert_eq!(data.ticks(), 3);
        let r = data.reading(7);
        assert!((0.0..100.0).contains(&r.cpu) && (0.0..1000.0).contains(&r.mem));
        assert_eq!(r, data.reading(7));
    }

    #[test]
    fn random_hours_stay_within_the_data() {
        let data = TimeSeries {
            rows: 100_000,
            devices: 10,
        };
        let end = START_US + data.ticks() as i64 * INTERVAL_US;
        for (device, from, to) in data.random_hours(1000, 7) {
            assert!((0..10).contains(&device));
            assert!(from >= START_US && to <= end && to - from == HOUR_US);
        }
    }
}
