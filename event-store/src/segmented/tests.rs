use std::fs::OpenOptions;
use std::io::Write;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::testsuite::{self, rec};

fn options(segment_bytes: u64) -> SegmentedOptions {
    SegmentedOptions {
        log: LogOptions {
            dedup_window_ms: 1000,
        },
        segment_bytes,
        segment_max_age: Duration::from_secs(365 * 24 * 3600),
    }
}

fn segment_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn meets_the_contract_with_one_segment() {
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run(|| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SegmentedLog::open(dirs[i].path(), options(64 << 20)).unwrap()
    })
    .await;
}

#[tokio::test]
async fn meets_the_contract_with_tiny_segments() {
    // 200-byte segments: nearly every group rolls, so reads, finds, dedup and retention
    // all cross sealed segments.
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().unwrap()).collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    testsuite::run(|| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        SegmentedLog::open(dirs[i].path(), options(200)).unwrap()
    })
    .await;
}

#[tokio::test]
async fn reopen_keeps_everything_and_continues_offsets() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SegmentedLog::open(dir.path(), options(300)).unwrap();
        for i in 0..20 {
            log.append(vec![rec("s", &i.to_string(), i)]).await.unwrap();
        }
        log.close().await.unwrap();
    }
    let log = SegmentedLog::open(dir.path(), options(300)).unwrap();
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(0),
            next: 20
        }
    );
    let all = log.read(0, 100).await.unwrap();
    assert_eq!(all.len(), 20);
    assert!(
        all.iter()
            .enumerate()
            .all(|(i, r)| r.offset == i as u64 && r.id == i.to_string())
    );
    // The id index survived the restart: dedup and lookup still work.
    assert_eq!(
        log.append(vec![rec("s", "7", 500)]).await.unwrap(),
        vec![Appended::Duplicate { offset: 7 }]
    );
    assert_eq!(log.find("19", Some("s")).await.unwrap()[0].offset, 19);
    assert_eq!(
        log.append(vec![rec("s", "new", 20)]).await.unwrap(),
        vec![Appended::New { offset: 20 }]
    );
}

#[tokio::test]
async fn torn_tail_is_cut_and_acknowledged_records_stay() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SegmentedLog::open(dir.path(), options(64 << 20)).unwrap();
        log.append((0..5).map(|i| rec("s", &i.to_string(), i)).collect())
            .await
            .unwrap();
        log.close().await.unwrap();
    }
    let active = dir.path().join(format!("{:020}.log", 0));
    let good_len = fs::metadata(&active).unwrap().len();
    // A crash mid-write leaves half a frame (here: a plausible header, then garbage).
    let mut f = OpenOptions::new().append(true).open(&active).unwrap();
    f.write_all(&[60, 0, 0, 0, 1, 2, 3, 4, 5, 6]).unwrap();
    drop(f);
    let log = SegmentedLog::open(dir.path(), options(64 << 20)).unwrap();
    assert_eq!(fs::metadata(&active).unwrap().len(), good_len);
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(0),
            next: 5
        }
    );
    assert_eq!(
        log.append(vec![rec("s", "5", 5)]).await.unwrap(),
        vec![Appended::New { offset: 5 }]
    );
    assert_eq!(log.read(0, 10).await.unwrap().len(), 6);
}

#[tokio::test]
async fn lost_index_files_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = SegmentedLog::open(dir.path(), options(150)).unwrap();
        for i in 0..10 {
            log.append(vec![rec("s", &i.to_string(), i)]).await.unwrap();
        }
        log.close().await.unwrap();
    }
    let sealed: Vec<String> = segment_files(dir.path())
        .into_iter()
        .filter(|n| n.ends_with(".ids") || n.ends_with(".idx"))
        .collect();
    assert!(
        sealed.len() >= 4,
        "expected several sealed segments, got {sealed:?}"
    );
    for name in &sealed {
        fs::remove_file(dir.path().join(name)).unwrap();
    }
    let log = SegmentedLog::open(dir.path(), options(150)).unwrap();
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(0),
            next: 10
        }
    );
    assert_eq!(log.find("3", None).await.unwrap()[0].offset, 3);
    assert_eq!(log.read(0, 100).await.unwrap().len(), 10);
}

#[tokio::test]
async fn concurrent_appends_share_fsyncs_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(SegmentedLog::open(dir.path(), options(64 << 20)).unwrap());
    let tasks: Vec<_> = (0..32)
        .map(|t| {
            let log = log.clone();
            tokio::spawn(async move {
                for i in 0..20 {
                    let out = log
                        .append(vec![rec("s", &format!("{t}-{i}"), 0)])
                        .await
                        .unwrap();
                    assert!(matches!(out[0], Appended::New { .. }));
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let all = log.read(0, 1000).await.unwrap();
    assert_eq!(all.len(), 640);
    let stats = log.stats();
    assert_eq!(stats.records, 640);
    // 32 publishers waiting at once share fsyncs: far fewer syncs than records.
    assert!(stats.syncs < 640, "{stats:?}");
    let mut ids: Vec<&str> = all.iter().map(|r| r.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 640);
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<u8>),
    Read(u64, usize),
    Reopen,
    /// Simulates a crash that tears the last write: garbage after the durable end.
    TearAndReopen(Vec<u8>),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => proptest::collection::vec(0u8..40, 1..6).prop_map(Op::Append),
        3 => (0u64..60, 0usize..20).prop_map(|(f, m)| Op::Read(f, m)),
        1 => Just(Op::Reopen),
        1 => proptest::collection::vec(any::<u8>(), 1..40).prop_map(Op::TearAndReopen),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]

    /// The log behaves like a `Vec` across appends, reads, reopens and torn tails. Ids are
    /// drawn from a small set so dedup is exercised too (the window is wide open).
    #[test]
    fn behaves_like_a_vec(ops in proptest::collection::vec(op(), 1..40), seg in 100u64..2000) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let dir = tempfile::tempdir().unwrap();
            let opts = SegmentedOptions { log: LogOptions { dedup_window_ms: i64::MAX / 4 }, ..options(seg) };
            let mut log = SegmentedLog::open(dir.path(), opts).unwrap();
            let mut model: Vec<String> = Vec::new();
            for op in ops {
                match op {
                    Op::Append(ids) => {
                        let records: Vec<_> = ids.iter().map(|i| rec("s", &i.to_string(), 0)).collect();
                        let out = log.append(records).await.unwrap();
                        for (i, got) in ids.iter().zip(out) {
                            let id = i.to_string();
                            let expected = match model.iter().position(|m| *m == id) {
                                Some(o) => Appended::Duplicate { offset: o as u64 },
                                None => { model.push(id); Appended::New { offset: model.len() as u64 - 1 } }
                            };
                            prop_assert_eq!(got, expected);
                        }
                    }
                    Op::Read(from, max) => {
                        let got: Vec<String> = log.read(from, max).await.unwrap().into_iter().map(|r| r.id).collect();
                        let want: Vec<String> = model.iter().skip(from as usize).take(max).cloned().collect();
                        prop_assert_eq!(got, want);
                    }
                    Op::Reopen => {
                        log.close().await.unwrap();
                        log = SegmentedLog::open(dir.path(), opts).unwrap();
                    }
                    Op::TearAndReopen(garbage) => {
                        log.close().await.unwrap();
                        let last = segment_files(dir.path()).into_iter().rfind(|n| n.ends_with(".log")).unwrap();
                        let mut f = OpenOptions::new().append(true).open(dir.path().join(last)).unwrap();
                        f.write_all(&garbage).unwrap();
                        drop(f);
                        log = SegmentedLog::open(dir.path(), opts).unwrap();
                    }
                }
                prop_assert_eq!(log.bounds().len(), model.len() as u64);
            }
            Ok(())
        })?;
    }
}
