//! Which access path a query takes (EXPLAIN) and that key-range scans
//! return exactly what a full scan with the same filter returns, over rows
//! in both segments and the memtable.

#![allow(clippy::unwrap_used)] // A test fails loudly on any unexpected error.

mod common;

use common::Fixture;

#[tokio::test]
async fn key_predicates_become_learned_index_ranges_with_the_same_answers() {
    let mut f = Fixture::new("access-paths");
    f.rows("CREATE TABLE r (device int, ts bigint, v float8, PRIMARY KEY (device, ts))")
        .await;
    // Enough rows per device that a skip scan beats reading them all.
    f.rows("INSERT INTO r SELECT d, t * 10, d * 100 + t FROM generate_series(0, 19) AS a(d), generate_series(0, 4999) AS b(t)")
        .await;
    // Half the rows in a segment, updates of some of them in the memtable.
    f.engine.database().flush().unwrap();
    f.rows("UPDATE r SET v = -v WHERE device = 7 AND ts < 200")
        .await;

    let plan = f
        .plan("SELECT count(*) FROM r WHERE device = 7 AND ts >= 100 AND ts < 300")
        .await;
    assert!(
        plan.contains("LearnedIndexScan: table=r, range=[7, 100]..(7, 300)"),
        "{plan}"
    );
    // Rows by key alone: the fast path reads them without DataFusion.
    let plan = f
        .plan("SELECT * FROM r WHERE device = 7 AND ts >= 100 AND ts < 300")
        .await;
    assert!(
        plan.contains("KeyLookup: table=r, columns=[device, ts, v], range=[7, 100]..(7, 300)"),
        "{plan}"
    );
    let plan = f
        .plan("SELECT max(v) FROM r WHERE device BETWEEN 3 AND 4")
        .await;
    assert!(plan.contains("range=[3]..[4]"), "{plan}");
    let plan = f.plan("SELECT * FROM r WHERE device IN (5, 3, 9)").await;
    assert!(plan.contains("range=[3]..[9]"), "{plan}");
    let plan = f.plan("SELECT * FROM r WHERE v > 5").await;
    assert!(plan.contains("StorageScan: table=r"), "{plan}");
    assert!(!plan.contains("LearnedIndexScan"), "{plan}");
    let analyzed = f
        .rows("EXPLAIN ANALYZE SELECT * FROM r WHERE device = 7 AND ts < 300")
        .await;
    let analyzed: Vec<String> = analyzed.into_iter().map(|r| r.join(" | ")).collect();
    assert!(
        analyzed
            .iter()
            .any(|l| l.contains("LearnedIndexScan") && l.contains("output_rows=30")),
        "{analyzed:?}"
    );
    let plan = f.plan("SELECT * FROM r LIMIT 3").await;
    assert!(plan.contains("limit=3"), "{plan}");

    // The same filters through the index and around it (`+ 0` hides the
    // column from pushdown) give the same rows.
    for filter in [
        "device = 7 AND ts >= 100 AND ts < 300",
        "device = 7 AND ts > 100 AND ts <= 300",
        "device = 7",
        "device >= 18",
        "device < 2 AND ts = 40",
        "device BETWEEN 3 AND 4 AND ts BETWEEN 20 AND 30",
        "device = 7 AND ts < 0",
        "device > 100",
        "7 = device AND 150 > ts",
        "device IN (5, 3, 9) AND ts IN (40, 10)",
        "device IN (4) AND ts > 100",
        // Skip scans: a range of ts for every device.
        "ts >= 100 AND ts < 300",
        "ts = 40",
        "ts > 450",
        "ts <= 20 AND device > 15",
        "ts BETWEEN 200 AND 210 AND device < 5",
    ] {
        let indexed = f
            .rows(&format!(
                "SELECT device, ts, v FROM r WHERE {filter} ORDER BY device, ts"
            ))
            .await;
        let hidden = filter
            .replace("device", "(device + 0)")
            .replace("ts", "(ts + 0)");
        let scanned = f
            .rows(&format!(
                "SELECT device, ts, v FROM r WHERE {hidden} ORDER BY device, ts"
            ))
            .await;
        assert_eq!(indexed, scanned, "{filter}");
        let plan = f
            .plan(&format!("SELECT device, ts, v FROM r WHERE {hidden}"))
            .await;
        assert!(!plan.contains("LearnedIndex"), "{hidden}: {plan}");
    }
    let plan = f
        .plan("SELECT count(*) FROM r WHERE ts >= 100 AND ts < 300")
        .await;
    assert!(
        plan.contains("LearnedIndexSkipScan: table=r, each device: ts [100..300)"),
        "{plan}"
    );
    // With cores to share it, a skip scan of a large table runs in parts
    // (the same answers as the plain scan, above).
    if std::thread::available_parallelism().unwrap().get() > 1 {
        assert!(plan.contains(", partitions="), "{plan}");
    }
    let plan = f
        .plan("SELECT count(*) FROM r WHERE device > 15 AND ts = 40")
        .await;
    assert!(
        plan.contains("LearnedIndexSkipScan: table=r, range=(15).., each device: ts [40..40]"),
        "{plan}"
    );
    // Few rows per device: reading what zone maps leave beats seeking.
    f.rows("CREATE TABLE few (device int, ts bigint, PRIMARY KEY (device, ts))")
        .await;
    f.rows("INSERT INTO few SELECT d, t FROM generate_series(1, 30) AS a(d), generate_series(1, 10) AS b(t)")
        .await;
    f.engine.database().flush().unwrap();
    let plan = f
        .plan("SELECT count(*) FROM few WHERE ts >= 3 AND ts < 5")
        .await;
    assert!(!plan.contains("SkipScan"), "{plan}");
    assert!(plan.contains("zone_maps=[ts Ge 3, ts Lt 5]"), "{plan}");
    assert_eq!(
        f.rows("SELECT count(*) FROM few WHERE ts >= 3 AND ts < 5")
            .await,
        vec![vec!["60".to_string()]]
    );
    // Zone maps: comparisons on any column prune, with the same answers.
    let plan = f.plan("SELECT * FROM r WHERE v > 1500").await;
    assert!(plan.contains("zone_maps=[v Gt 1500]"), "{plan}");
    for (filter, hidden) in [
        ("v > 1500", "v + 0 > 1500"),
        ("v < 0", "v + 0 < 0"),
        ("v = 705 OR v = -705", "v + 0 = 705 OR v + 0 = -705"),
        ("device = 3 AND v >= 310", "device + 0 = 3 AND v + 0 >= 310"),
    ] {
        let pruned = f
            .rows(&format!(
                "SELECT device, ts, v FROM r WHERE {filter} ORDER BY device, ts"
            ))
            .await;
        let scanned = f
            .rows(&format!(
                "SELECT device, ts, v FROM r WHERE {hidden} ORDER BY device, ts"
            ))
            .await;
        assert!(!pruned.is_empty() || filter == "v < 0", "{filter}");
        assert_eq!(pruned, scanned, "{filter}");
    }
    let updated = f.rows("SELECT v FROM r WHERE device = 7 AND ts = 50").await;
    assert_eq!(updated, vec![vec!["-705".to_string()]]);
    assert_eq!(
        f.rows("SELECT count(*) FROM r LIMIT 1").await,
        vec![vec!["100000".to_string()]]
    );
    assert_eq!(f.rows("SELECT * FROM r LIMIT 3").await.len(), 3);
}

#[tokio::test]
async fn skip_scans_over_many_small_prefixes_give_way_to_a_plain_scan_with_the_same_answers() {
    // 300 values of the first key column with two rows each: seeking per
    // value does not pay, and the scan reads the rest as one range.
    let mut f = Fixture::new("skip-scan-fallback");
    f.rows("CREATE TABLE p (a int, b int, v int, PRIMARY KEY (a, b))")
        .await;
    f.rows("INSERT INTO p SELECT a, b, a * 10 + b FROM generate_series(1, 300) AS x(a), generate_series(1, 2) AS y(b)")
        .await;
    f.engine.database().flush().unwrap();
    f.rows("DELETE FROM p WHERE a % 7 = 0 AND b = 2").await;
    for filter in ["b = 2", "b > 1 AND a >= 250", "b <= 1"] {
        let skipped = f
            .rows(&format!(
                "SELECT a, b, v FROM p WHERE {filter} ORDER BY a, b"
            ))
            .await;
        let hidden = filter.replace('a', "(a + 0)").replace('b', "(b + 0)");
        let scanned = f
            .rows(&format!(
                "SELECT a, b, v FROM p WHERE {hidden} ORDER BY a, b"
            ))
            .await;
        assert!(!skipped.is_empty(), "{filter}");
        assert_eq!(skipped, scanned, "{filter}");
    }
}

#[tokio::test]
async fn full_scans_of_large_tables_split_across_cores_with_the_same_answers() {
    let mut f = Fixture::new("parallel-scan");
    f.rows("CREATE TABLE big (k bigint PRIMARY KEY, v int)")
        .await;
    f.rows("INSERT INTO big SELECT k, k % 1000 FROM generate_series(1, 120000) AS s(k)")
        .await;
    f.engine.database().flush().unwrap();
    // Recent rows outside the segments' span, and changes inside it (the
    // cut falls at k = 60000).
    f.rows("INSERT INTO big VALUES (-5, 1), (0, 2), (500000, 3)")
        .await;
    f.rows("DELETE FROM big WHERE k BETWEEN 29990 AND 30010")
        .await;
    f.rows("UPDATE big SET v = -1 WHERE k % 10000 = 0").await;
    let whole = "SELECT count(*), sum(v), min(k), max(k) FROM big";
    let split = f.rows(whole).await;
    // A key range is never split: the same answer from one partition.
    let ranged = f.rows(&format!("{whole} WHERE k >= -1000000")).await;
    assert_eq!(split, ranged);
    assert_eq!(split[0][0], (120_000 + 3 - 21).to_string());
    let updated = f.rows("SELECT k FROM big WHERE v = -1 ORDER BY k").await;
    let expected: Vec<Vec<String>> = [0, 10_000, 20_000]
        .into_iter()
        .chain((40_000..=120_000).step_by(10_000))
        .chain([500_000])
        .map(|k: i64| vec![k.to_string()])
        .collect();
    assert_eq!(updated, expected);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if cores > 1 {
        let plan = f.plan(whole).await;
        assert!(plan.contains(&format!("partitions={cores}")), "{plan}");
    }
}
