//! Segments written and read back on the fault-injecting file system.

use std::collections::BTreeMap;
use std::ops::{Bound, RangeBounds};
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::AsArray;
use bytes::Bytes;

use super::*;
use crate::cache::Cache;
use crate::catalog::{ColumnSpec, TableDef};
use crate::error::ErrorKind;
use crate::io::FileSystem;
use crate::io::fault::FaultFs;
use crate::test_rng::TestRng;
use crate::types::{DataType, Value};

fn dir() -> PathBuf {
    PathBuf::from("/db/segments")
}

/// Versions keyed by encoded key: newest first, `None` for a delete.
type Versions = BTreeMap<Vec<u8>, Vec<(u64, Option<Vec<Value>>)>>;

fn write(fs: &FaultFs, def: &Arc<TableDef>, id: u64, versions: &Versions) -> SegmentMeta {
    let mut writer = SegmentWriter::create(fs, &dir(), id, def.clone()).unwrap();
    for (key, list) in versions {
        for (ts, values) in list {
            writer
                .push(Bytes::copy_from_slice(key), *ts, values.as_deref())
                .unwrap();
        }
    }
    writer.finish().unwrap()
}

fn setup() -> (FaultFs, Arc<Cache>) {
    let fs = FaultFs::new();
    fs.create_dir_all(&dir()).unwrap();
    (fs, Arc::new(Cache::new(64 << 20)))
}

/// A table of `(key, payload)` with random versions over `keys` keys.
fn random_versions(
    rng: &mut TestRng,
    def: &TableDef,
    keys: usize,
    key_of: impl Fn(usize) -> Value,
) -> Versions {
    let mut versions = Versions::new();
    for k in 0..keys {
        let key_value = key_of(k);
        let mut key = Vec::new();
        def.key_codec().encode(&[&key_value], &mut key).unwrap();
        let mut ts = 1000 + rng.below(100);
        let mut list = Vec::new();
        for _ in 0..1 + rng.below(3) {
            let values =
                (rng.below(5) > 0).then(|| vec![key_value.clone(), Value::Int64(ts as i64)]);
            list.push((ts, values));
            ts -= 1 + rng.below(20);
        }
        versions.insert(key, list);
    }
    versions
}

fn check_lookups(segment: &Segment, def: &TableDef, versions: &Versions, rng: &mut TestRng) {
    for (key, list) in versions {
        for snapshot in [0, 990, 1050, u64::MAX]
            .into_iter()
            .chain((0..3).map(|_| 900 + rng.below(250)))
        {
            let want = list.iter().find(|(ts, _)| *ts <= snapshot);
            let found = segment.find(key, snapshot).unwrap();
            assert_eq!(
                found.map(|f| (f.ts, f.deleted)),
                want.map(|(ts, v)| (*ts, v.is_none())),
                "at {snapshot}"
            );
            if let (Some(found), Some((_, Some(values)))) = (found, want) {
                assert_eq!(&segment.row(def, found.row).unwrap(), values);
            }
        }
    }
    // Keys between and around the stored ones are absent.
    for key in versions.keys() {
        let mut after = key.clone();
        after.push(0);
        assert_eq!(segment.find(&after, u64::MAX).unwrap(), None);
    }
}

#[test]
fn packed_integer_keys_find_every_version_at_every_snapshot() {
    let (fs, cache) = setup();
    let mut rng = TestRng::new("packed_integer_keys_find_every_version_at_every_snapshot");
    let columns = vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Int64),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["k"]).unwrap());
    let versions = random_versions(&mut rng, &def, 150_000, |k| {
        Value::Int64(k as i64 * 3 - 1000)
    });
    let meta = write(&fs, &def, 1, &versions);
    assert_eq!(
        meta.rows as usize,
        versions.values().map(Vec::len).sum::<usize>()
    );
    let segment = Segment::new(meta, &dir(), Arc::new(fs), cache);
    check_lookups(&segment, &def, &versions, &mut rng);
}

#[test]
fn text_keys_use_the_prefix_and_still_find_every_version() {
    let (fs, cache) = setup();
    let mut rng = TestRng::new("text_keys_use_the_prefix_and_still_find_every_version");
    let columns = vec![
        ColumnSpec::new("k", DataType::Text { max_chars: None }),
        ColumnSpec::new("v", DataType::Int64),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["k"]).unwrap());
    // Long shared prefixes: the 8-byte prefix alone cannot tell keys apart.
    let versions = random_versions(&mut rng, &def, 3000, |k| {
        Value::Text(format!("https://x/{k:06}"))
    });
    let meta = write(&fs, &def, 2, &versions);
    let segment = Arc::new(Segment::new(meta, &dir(), Arc::new(fs), cache));
    check_lookups(&segment, &def, &versions, &mut rng);
    // Short scans take their keys from the full keys the lookups use.
    let keys: Vec<&Vec<u8>> = versions.keys().collect();
    for _ in 0..50 {
        let at = rng.below(keys.len() as u64) as usize;
        let end = (at + rng.below(300) as usize).min(keys.len() - 1);
        let (from, to) = (
            Bound::Included(keys[at].clone()),
            Bound::Excluded(keys[end].clone()),
        );
        let seen = scanned(&segment, &def, &[1], (&from, &to), |_, _| {});
        assert_eq!(seen, expected(&versions, (&from, &to)), "{from:?}..{to:?}");
    }
}

#[test]
fn scans_read_between_their_bounds_and_fill_columns_the_segment_predates() {
    let (fs, cache) = setup();
    let mut rng = TestRng::new("scans_read_between_their_bounds");
    let columns = vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Int64),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["k"]).unwrap());
    let versions = random_versions(&mut rng, &def, 200_000, |k| Value::Int64(k as i64));
    let meta = write(&fs, &def, 3, &versions);
    let segment = Arc::new(Segment::new(meta, &dir(), Arc::new(fs), cache));

    let later = def
        .with_column_added(ColumnSpec::new("n", DataType::Int32), Value::Int32(9))
        .unwrap();
    let added = later.column("n").unwrap().id;
    let key = |k: i64| {
        let mut out = Vec::new();
        later
            .key_codec()
            .encode(&[&Value::Int64(k)], &mut out)
            .unwrap();
        out
    };
    // Long ranges read row groups from the file, short ones cached blocks;
    // with a packed key space the index finds both ends exactly.
    let ranges = [
        (Bound::Included(key(123_456)), Bound::Unbounded),
        (Bound::Unbounded, Bound::Excluded(key(40_000))),
        (Bound::Included(key(123_456)), Bound::Included(key(123_756))),
        (Bound::Excluded(key(5)), Bound::Excluded(key(6_000))),
        (Bound::Included(key(7)), Bound::Included(key(7))),
    ];
    for (from, to) in ranges {
        let seen = scanned(&segment, &later, &[added, 1], (&from, &to), |batch, row| {
            let filled = batch
                .column(SYSTEM_COLUMNS)
                .as_primitive::<arrow::datatypes::Int32Type>();
            assert_eq!(filled.value(row), 9);
        });
        assert_eq!(seen, expected(&versions, (&from, &to)), "{from:?}..{to:?}");
    }
}

/// The versions a scan of `segment` between `from` and `to` returns, in
/// order, as (key, commit timestamp, deleted); `check` sees every row.
fn scanned(
    segment: &Arc<Segment>,
    def: &TableDef,
    columns: &[ColumnId],
    (from, to): (&Bound<Vec<u8>>, &Bound<Vec<u8>>),
    check: impl Fn(&arrow::record_batch::RecordBatch, usize),
) -> Vec<(Vec<u8>, u64, bool)> {
    let mut seen = Vec::new();
    let batches = segment
        .scan(def, columns, (from, to), &|_, _| false)
        .unwrap();
    for batch in batches.into_iter().flatten() {
        let batch = batch.unwrap();
        assert_eq!(batch.num_columns(), SYSTEM_COLUMNS + columns.len());
        let keys = batch.column(KEY).as_binary::<i32>();
        let ts = batch
            .column(TS)
            .as_primitive::<arrow::datatypes::UInt64Type>();
        let deleted = batch.column(DELETED).as_boolean();
        for row in 0..batch.num_rows() {
            let key = keys.value(row).to_vec();
            // Scans may return a few rows beyond either end.
            if (from.clone(), to.clone()).contains(&key) {
                check(&batch, row);
                seen.push((key, ts.value(row), deleted.value(row)));
            }
        }
    }
    seen
}

/// What [`scanned`] should return.
fn expected(
    versions: &Versions,
    (from, to): (&Bound<Vec<u8>>, &Bound<Vec<u8>>),
) -> Vec<(Vec<u8>, u64, bool)> {
    versions
        .range::<Vec<u8>, _>((from.clone(), to.clone()))
        .flat_map(|(key, list)| {
            list.iter()
                .map(|(ts, values)| (key.clone(), *ts, values.is_none()))
        })
        .collect()
}

#[test]
fn a_flipped_byte_is_a_corruption_error_naming_the_file() {
    let (fs, cache) = setup();
    let mut rng = TestRng::new("a_flipped_byte_is_a_corruption_error_naming_the_file");
    let columns = vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Int64),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["k"]).unwrap());
    let versions = random_versions(&mut rng, &def, 1000, |k| Value::Int64(k as i64));
    let meta = write(&fs, &def, 4, &versions);
    let offset = rng.below(meta.bytes) as usize;
    fs.corrupt(&segment_path(&dir(), 4), offset, 0x10).unwrap();
    let segment = Segment::new(meta, &dir(), Arc::new(fs), cache);
    let key = versions.keys().next().unwrap();
    let err = segment.find(key, u64::MAX).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corruption, "{err}");
    assert!(
        err.to_string().contains("00000000000000000004.parquet"),
        "{err}"
    );
}

#[test]
fn a_scan_outside_the_segments_time_range_does_not_load_key_columns() {
    let (fs, cache) = setup();
    let columns = vec![
        ColumnSpec::new("device", DataType::Int32),
        ColumnSpec::new("ts", DataType::Timestamp),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["device", "ts"]).unwrap());
    let key = |device: i32, ts: i64| {
        let mut out = Vec::new();
        let values = [Value::Int32(device), Value::Timestamp(ts)];
        def.key_codec()
            .encode(&[&values[0], &values[1]], &mut out)
            .unwrap();
        out
    };
    let mut versions = Versions::new();
    for device in 0..10 {
        for ts in (1_000..2_000).step_by(10) {
            let row = vec![Value::Int32(device), Value::Timestamp(ts)];
            versions.insert(key(device, ts), vec![(5, Some(row))]);
        }
    }
    let meta = write(&fs, &def, 3, &versions);
    let segment = Arc::new(Segment::new(meta, &dir(), Arc::new(fs), cache.clone()));
    let rows = |from: Vec<u8>, to: Vec<u8>| {
        let (from, to) = (Bound::Included(from), Bound::Excluded(to));
        let batches = segment
            .scan(&def, &[], (&from, &to), &|_, _| false)
            .unwrap();
        let mut keys = Vec::new();
        for batch in batches.into_iter().flatten() {
            let batch = batch.unwrap();
            let column = batch.column(KEY).as_binary::<i32>();
            keys.extend(column.iter().flatten().map(<[u8]>::to_vec));
        }
        keys.retain(|k| (from.clone(), to.clone()).contains(k));
        keys
    };
    // Before and after the segment's times for one device, or past its
    // devices: empty, decided from the key space alone.
    assert!(rows(key(4, 0), key(4, 900)).is_empty());
    assert!(rows(key(4, 2_000), key(4, 3_000)).is_empty());
    assert!(rows(key(10, 0), key(11, 0)).is_empty());
    assert_eq!(cache.used(), 0, "no key columns loaded");
    // Inside them: the rows there, found through the key columns.
    let inside = rows(key(4, 1_500), key(4, 1_600));
    let expected: Vec<Vec<u8>> = (1_500..1_600).step_by(10).map(|ts| key(4, ts)).collect();
    assert_eq!(inside, expected);
    assert!(cache.used() > 0);
    // Across devices, from past one device's times to before the next's.
    let across = rows(key(4, 5_000), key(6, 0));
    let expected: Vec<Vec<u8>> = (1_000..2_000).step_by(10).map(|ts| key(5, ts)).collect();
    assert_eq!(across, expected);
}

#[test]
fn system_columns_are_left_out_only_of_a_bounded_scan_of_a_segment_without_tombstones() {
    let columns = vec![
        ColumnSpec::new("k", DataType::Int64),
        ColumnSpec::new("v", DataType::Int64),
    ];
    let def = Arc::new(TableDef::new(7, "t", columns, &["k"]).unwrap());
    let key = |k: i64| {
        let mut out = Vec::new();
        def.key_codec()
            .encode(&[&Value::Int64(k)], &mut out)
            .unwrap();
        out
    };
    // One version a key; key 500 is a tombstone in the second segment.
    let segment = |id: u64, tombstone: bool| {
        let (fs, cache) = setup();
        let versions: Versions = (0..1000i64)
            .map(|k| {
                let values =
                    (!(tombstone && k == 500)).then(|| vec![Value::Int64(k), Value::Int64(-k)]);
                (key(k), vec![(10, values)])
            })
            .collect();
        let meta = write(&fs, &def, id, &versions);
        Arc::new(Segment::new(meta, &dir(), Arc::new(fs), cache))
    };
    let (from, to) = (Bound::Included(key(100)), Bound::Excluded(key(900)));
    let v = def.column("v").unwrap().id;

    let clean = segment(1, false);
    let mut scan = clean
        .scan(&def, &[v], (&from, &to), &|_, _| false)
        .unwrap()
        .unwrap();
    assert_eq!(scan.end_keys(), Some((key(100), key(899))));
    assert!(scan.without_system_columns());
    let values: Vec<i64> = scan
        .flat_map(|batch| {
            let batch = batch.unwrap();
            assert_eq!(batch.num_columns(), 1, "only the requested column");
            batch
                .column(0)
                .as_primitive::<arrow::datatypes::Int64Type>()
                .values()
                .to_vec()
        })
        .collect();
    assert_eq!(values, (100..900).map(|k| -k).collect::<Vec<_>>());

    // A tombstone anywhere in the segment keeps the system columns.
    let with_tombstone = segment(2, true);
    let mut scan = with_tombstone
        .scan(&def, &[v], (&from, &to), &|_, _| false)
        .unwrap()
        .unwrap();
    assert!(!scan.without_system_columns());
    // A full scan does not load the key columns: nothing to decide by.
    let mut scan = clean
        .scan(
            &def,
            &[v],
            (&Bound::Unbounded, &Bound::Unbounded),
            &|_, _| false,
        )
        .unwrap()
        .unwrap();
    assert_eq!(scan.end_keys(), None);
    assert!(!scan.without_system_columns());
}
