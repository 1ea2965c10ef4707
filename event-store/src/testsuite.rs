//! The contract every `LogStore` backend must meet, run against each of them.

use crate::log::{Appended, Bounds, LogStore, NewRecord};

pub(crate) fn rec(source: &str, id: &str, at: i64) -> NewRecord {
    NewRecord {
        source: source.to_owned(),
        id: id.to_owned(),
        received_at_ms: at,
        payload: format!("{{\"id\":\"{id}\",\"source\":\"{source}\"}}").into_bytes(),
        matched_rules: Vec::new(),
    }
}

/// Runs every contract check against logs made by `make` (each call: a new, empty log
/// whose dedup window is 1000 ms).
pub(crate) async fn run<L: LogStore>(make: impl Fn() -> L) {
    appends_in_order(make()).await;
    dedups_within_window(make()).await;
    reads_from_any_offset(make()).await;
    finds_by_id(make()).await;
    retention_removes_a_prefix(make()).await;
    closed_log_refuses_appends(make()).await;
}

async fn appends_in_order(log: impl LogStore) {
    assert_eq!(
        log.bounds(),
        Bounds {
            first: None,
            next: 0
        }
    );
    let out = log
        .append(vec![rec("s", "a", 1), rec("s", "b", 1)])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![Appended::New { offset: 0 }, Appended::New { offset: 1 }]
    );
    let mut c = rec("s", "c", 2);
    c.matched_rules = vec!["big-orders".to_owned(), "all".to_owned()];
    let out = log.append(vec![c]).await.unwrap();
    assert_eq!(out, vec![Appended::New { offset: 2 }]);
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(0),
            next: 3
        }
    );
    let all = log.read(0, 10).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        ["a", "b", "c"]
    );
    assert_eq!(all[2].payload, rec("s", "c", 2).payload);
    assert_eq!(all[2].received_at_ms, 2);
    assert_eq!(all[2].matched_rules, ["big-orders", "all"]);
    assert!(all[1].matched_rules.is_empty());
    assert_eq!(log.append(vec![]).await.unwrap(), vec![]);
}

async fn dedups_within_window(log: impl LogStore) {
    let out = log
        .append(vec![
            rec("s", "a", 100),
            rec("t", "a", 100),
            rec("s", "a", 100),
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Appended::New { offset: 0 },
            Appended::New { offset: 1 },
            Appended::Duplicate { offset: 0 }
        ]
    );
    let out = log.append(vec![rec("s", "a", 1099)]).await.unwrap();
    assert_eq!(out, vec![Appended::Duplicate { offset: 0 }]);
    // Outside the window the same (source, id) is a new event.
    let out = log.append(vec![rec("s", "a", 1100)]).await.unwrap();
    assert_eq!(out, vec![Appended::New { offset: 2 }]);
    let out = log.append(vec![rec("s", "a", 1200)]).await.unwrap();
    assert_eq!(out, vec![Appended::Duplicate { offset: 2 }]);
}

async fn reads_from_any_offset(log: impl LogStore) {
    let batch: Vec<_> = (0..50).map(|i| rec("s", &i.to_string(), i)).collect();
    log.append(batch).await.unwrap();
    let page = log.read(10, 5).await.unwrap();
    assert_eq!(
        page.iter().map(|r| r.offset).collect::<Vec<_>>(),
        [10, 11, 12, 13, 14]
    );
    assert_eq!(log.read(48, 10).await.unwrap().len(), 2);
    assert!(log.read(50, 10).await.unwrap().is_empty());
    assert!(log.read(0, 0).await.unwrap().is_empty());
}

async fn finds_by_id(log: impl LogStore) {
    log.append(vec![rec("s", "x", 1), rec("t", "x", 2), rec("s", "y", 3)])
        .await
        .unwrap();
    let both = log.find("x", None).await.unwrap();
    assert_eq!(both.iter().map(|r| r.offset).collect::<Vec<_>>(), [1, 0]);
    let one = log.find("x", Some("s")).await.unwrap();
    assert_eq!(
        one.iter()
            .map(|r| (r.offset, r.source.as_str()))
            .collect::<Vec<_>>(),
        [(0, "s")]
    );
    assert!(log.find("x", Some("u")).await.unwrap().is_empty());
    assert!(log.find("nope", None).await.unwrap().is_empty());
}

async fn retention_removes_a_prefix(log: impl LogStore) {
    log.append((0..10).map(|i| rec("s", &i.to_string(), i)).collect())
        .await
        .unwrap();
    // Nothing is older than the cutoff: nothing goes.
    assert_eq!(log.remove_before(0, u64::MAX).await.unwrap(), 0);
    // Everything is older, but offset 0 is still needed: nothing goes.
    assert_eq!(log.remove_before(100, 0).await.unwrap(), 0);
    assert_eq!(log.bounds().first, Some(0));
    // Everything is older than the cutoff: everything goes, offsets keep counting.
    assert_eq!(log.remove_before(100, 10).await.unwrap(), 10);
    assert_eq!(
        log.bounds(),
        Bounds {
            first: None,
            next: 10
        }
    );
    assert!(log.read(0, 100).await.unwrap().is_empty());
    assert!(log.find("3", None).await.unwrap().is_empty());
    let out = log.append(vec![rec("s", "3", 200)]).await.unwrap();
    assert_eq!(out, vec![Appended::New { offset: 10 }]);
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(10),
            next: 11
        }
    );
    assert_eq!(log.read(0, 100).await.unwrap()[0].offset, 10);
}

async fn closed_log_refuses_appends(log: impl LogStore) {
    log.append(vec![rec("s", "a", 1)]).await.unwrap();
    log.close().await.unwrap();
    assert!(log.append(vec![rec("s", "b", 1)]).await.is_err());
    assert_eq!(log.read(0, 10).await.unwrap().len(), 1);
}

#[tokio::test]
async fn memory_log_meets_the_contract() {
    use crate::log::LogOptions;
    run(|| {
        crate::MemoryLog::new(LogOptions {
            dedup_window_ms: 1000,
        })
    })
    .await;
}
