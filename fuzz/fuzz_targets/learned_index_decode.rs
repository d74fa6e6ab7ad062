//! Fuzzes the learned index decoder: any bytes must decode to an error or
//! to an index whose lookups never panic.
//!
//! ```text
//! cargo +nightly fuzz run learned_index_decode
//! ```
//!
//! Random bytes almost never carry a valid checksum, so each input is also
//! decoded once more with its checksum made valid, which sends the fuzzer
//! into the structural checks behind it.

#![no_main]

use libfuzzer_sys::fuzz_target;
use omendb_storage::LearnedIndex;

fuzz_target!(|data: &[u8]| {
    exercise(data);
    let mut sealed = data.to_vec();
    if sealed.len() >= 4 {
        let body = sealed.len() - 4;
        let checksum = crc32c::crc32c(&sealed[..body]);
        sealed[body..].copy_from_slice(&checksum.to_le_bytes());
        exercise(&sealed);
    }
});

fn exercise(bytes: &[u8]) {
    let Ok(index) = LearnedIndex::from_bytes(bytes) else {
        return;
    };
    // Keys that need not match the index: lookups may be wrong, never panic.
    let keys: Vec<u64> = (0..64u64).map(|i| i * i * 1_000_003).collect();
    let texts: Vec<Vec<u8>> = keys.iter().map(|k| k.to_be_bytes().to_vec()).collect();
    for q in [0, 1, 7, 1_000_003, 1 << 40, u64::MAX - 1, u64::MAX] {
        let _ = index.get(&keys, q);
        let _ = index.range(&keys, q..);
        let _ = index.search_window(q);
        let _ = index.get_bytes(
            |i| texts.get(i).map_or(&[][..], Vec::as_slice),
            &q.to_be_bytes(),
        );
    }
    assert_eq!(
        LearnedIndex::from_bytes(&index.to_bytes()).as_ref(),
        Ok(&index)
    );
}
