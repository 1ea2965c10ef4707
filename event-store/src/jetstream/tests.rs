//! Against the real NATS server: `SWITCHYARD_TEST_NATS` or 127.0.0.1:4222, with JetStream.
//! An unreachable server fails the tests; nothing is skipped. Every test works under its own
//! random prefix and deletes its streams at the end, also when it fails.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use futures_util::TryStreamExt as _;

use super::*;
use crate::testsuite::{self, rec};

const T: Duration = Duration::from_secs(5);

fn url() -> String {
    std::env::var("SWITCHYARD_TEST_NATS").unwrap_or_else(|_| "127.0.0.1:4222".to_owned())
}

async fn connect() -> js::Context {
    let url = url();
    let connecting = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(3))
        .connect(url.as_str());
    let needed = format!("NATS with JetStream must run at {url} (or set SWITCHYARD_TEST_NATS)");
    let client = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .unwrap_or_else(|_| panic!("{needed}: connecting timed out"))
        .unwrap_or_else(|e| panic!("{needed}: {e}"));
    js::new(client)
}

/// Deletes the streams of `buses` under `prefix` when dropped, also after a failed assertion.
struct Cleanup {
    prefix: String,
    buses: Vec<String>,
}

impl Cleanup {
    fn new(buses: &[&str]) -> Cleanup {
        Cleanup {
            prefix: format!("sytest-{:016x}", fastrand::u64(..)),
            buses: buses.iter().map(|b| (*b).to_owned()).collect(),
        }
    }

    fn options(&self) -> JetStreamOptions {
        JetStreamOptions {
            log: LogOptions {
                dedup_window_ms: 1000,
            },
            prefix: self.prefix.clone(),
            ..Default::default()
        }
    }

    async fn open(&self, js: &js::Context, bus: &str) -> JetStreamLog {
        JetStreamLog::open(js.clone(), bus, self.options())
            .await
            .unwrap()
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        // Drop cannot await, and the test's runtime may be the current thread: delete from a
        // thread with a runtime of its own.
        let prefix = self.prefix.clone();
        let buses = std::mem::take(&mut self.buses);
        let deleted = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async {
                let js = connect().await;
                for bus in &buses {
                    JetStreamLog::delete(&js, &prefix, bus, T).await.unwrap();
                }
            });
        })
        .join();
        if deleted.is_err() && !std::thread::panicking() {
            panic!("deleting the test streams failed");
        }
    }
}

#[tokio::test]
async fn jetstream_meets_the_contract() {
    let buses = [
        "suite-0", "suite-1", "suite-2", "suite-3", "suite-4", "suite-5",
    ];
    let cleanup = Cleanup::new(&buses);
    let js = connect().await;
    let mut logs = VecDeque::new();
    for bus in buses {
        logs.push_back(cleanup.open(&js, bus).await);
    }
    let logs = Mutex::new(logs);
    testsuite::run(|| logs.lock().unwrap().pop_front().unwrap()).await;
}

#[tokio::test]
async fn jetstream_reopen_continues_offsets() {
    let cleanup = Cleanup::new(&["reopen"]);
    {
        let log = cleanup.open(&connect().await, "reopen").await;
        for i in 0..20 {
            log.append(vec![rec("s", &i.to_string(), i)]).await.unwrap();
        }
        assert_eq!(log.remove_before(3, u64::MAX).await.unwrap(), 3);
        log.close().await.unwrap();
        assert!(matches!(
            log.append(vec![rec("s", "late", 1)]).await,
            Err(LogError::Closed)
        ));
    }
    let log = cleanup.open(&connect().await, "reopen").await;
    let config = &log.stream.cached_info().config;
    assert_eq!(config.duplicate_window, DUPLICATE_WINDOW);
    assert_eq!(config.max_messages_per_subject, -1);
    assert_eq!(config.storage, StorageType::File);
    assert_eq!(
        log.bounds(),
        Bounds {
            first: Some(3),
            next: 20
        }
    );
    let all = log.read(0, 100).await.unwrap();
    assert_eq!(all.len(), 17);
    assert!(
        all.iter()
            .zip(3..)
            .all(|(r, i)| r.offset == i && r.id == i.to_string())
    );
    // Dedup and lookup see the records stored before.
    assert_eq!(
        log.append(vec![rec("s", "7", 500)]).await.unwrap(),
        vec![Appended::Duplicate { offset: 7 }]
    );
    assert_eq!(
        log.append(vec![rec("s", "new", 500)]).await.unwrap(),
        vec![Appended::New { offset: 20 }]
    );
    assert_eq!(log.find("7", Some("s")).await.unwrap()[0].offset, 7);
    // Everything goes; a re-open still continues the offsets.
    assert_eq!(log.remove_before(i64::MAX, u64::MAX).await.unwrap(), 18);
    drop(log);
    let log = cleanup.open(&connect().await, "reopen").await;
    assert_eq!(
        log.bounds(),
        Bounds {
            first: None,
            next: 21
        }
    );
    assert_eq!(
        log.append(vec![rec("s", "7", 600)]).await.unwrap(),
        vec![Appended::New { offset: 21 }]
    );
}

#[tokio::test]
async fn jetstream_concurrent_writers_store_each_key_once() {
    let cleanup = Cleanup::new(&["race"]);
    // Two connections, as two processes would have.
    let a = cleanup.open(&connect().await, "race").await;
    let b = cleanup.open(&connect().await, "race").await;
    let keys: Vec<(String, String)> = (0..300)
        .map(|i| (format!("src-{}", i % 7), format!("id-{i}")))
        .collect();
    let batch = |order: &[usize], at: i64| -> Vec<NewRecord> {
        order
            .iter()
            .map(|&i| rec(&keys[i].0, &keys[i].1, at))
            .collect()
    };
    // Both append every key, in opposite orders and different chunkings, at the same time.
    let forward: Vec<usize> = (0..keys.len()).collect();
    let backward: Vec<usize> = (0..keys.len()).rev().collect();
    let run_a = async {
        let mut got = HashMap::new();
        for chunk in forward.chunks(50) {
            let out = a.append(batch(chunk, 100)).await.unwrap();
            got.extend(chunk.iter().copied().zip(out));
        }
        got
    };
    let run_b = async {
        let mut got = HashMap::new();
        for chunk in backward.chunks(7) {
            let out = b.append(batch(chunk, 150)).await.unwrap();
            got.extend(chunk.iter().copied().zip(out));
        }
        got
    };
    let (got_a, got_b) = tokio::join!(run_a, run_b);
    let mut offsets = Vec::new();
    for i in 0..keys.len() {
        let (x, y) = (got_a[&i], got_b[&i]);
        assert_eq!(x.offset(), y.offset(), "key {i}: {x:?} vs {y:?}");
        assert!(
            matches!(
                (x, y),
                (Appended::New { .. }, Appended::Duplicate { .. })
                    | (Appended::Duplicate { .. }, Appended::New { .. })
            ),
            "key {i}: {x:?} vs {y:?}"
        );
        offsets.push(x.offset());
    }
    offsets.sort_unstable();
    assert_eq!(offsets, (0..keys.len() as u64).collect::<Vec<_>>());
    // The stream holds each key once; both instances see it all after a refresh.
    assert_eq!(
        a.refresh().await.unwrap(),
        Bounds {
            first: Some(0),
            next: keys.len() as u64
        }
    );
    assert_eq!(b.refresh().await.unwrap(), a.bounds());
    let all = b.read(0, 1000).await.unwrap();
    assert_eq!(all.len(), keys.len());
    for (i, (source, id)) in keys.iter().enumerate().step_by(29) {
        let found = a.find(id, None).await.unwrap();
        assert_eq!(found.len(), 1, "key {i}");
        assert_eq!(&found[0].source, source);
        assert_eq!(found[0].offset, got_a[&i].offset());
    }
    let sum = |s: LogStats| s.records;
    assert_eq!(sum(a.stats()) + sum(b.stats()), keys.len() as u64);
}

#[tokio::test]
async fn jetstream_bounds_follow_other_writers() {
    let cleanup = Cleanup::new(&["shared"]);
    let js = connect().await;
    let a = cleanup.open(&js, "shared").await;
    let b = cleanup.open(&js, "shared").await;
    a.append((0..5).map(|i| rec("s", &i.to_string(), i)).collect())
        .await
        .unwrap();
    assert_eq!(
        b.bounds(),
        Bounds {
            first: None,
            next: 0
        }
    );
    // A read that sees records moves the cache.
    assert_eq!(b.read(0, 3).await.unwrap().len(), 3);
    assert_eq!(
        b.bounds(),
        Bounds {
            first: Some(0),
            next: 3
        }
    );
    assert_eq!(
        b.refresh().await.unwrap(),
        Bounds {
            first: Some(0),
            next: 5
        }
    );
    // The sequential read continues on its cursor; an append from `b` lands after `a`'s.
    assert_eq!(b.read(3, 10).await.unwrap().len(), 2);
    assert_eq!(
        b.append(vec![rec("s", "x", 9)]).await.unwrap(),
        vec![Appended::New { offset: 5 }]
    );
    let tail = b.read(5, 10).await.unwrap();
    assert_eq!(tail.len(), 1);
    assert_eq!(tail[0].id, "x");
    // `a` purges; `b` learns from reading below the new first offset.
    assert_eq!(a.remove_before(3, u64::MAX).await.unwrap(), 3);
    assert_eq!(b.read(0, 10).await.unwrap()[0].offset, 3);
    assert_eq!(b.bounds().first, Some(3));
}

#[tokio::test]
async fn jetstream_read_survives_a_lost_consumer() {
    let cleanup = Cleanup::new(&["lost"]);
    let log = cleanup.open(&connect().await, "lost").await;
    log.append((0..10).map(|i| rec("s", &i.to_string(), i)).collect())
        .await
        .unwrap();
    assert_eq!(log.read(0, 4).await.unwrap().len(), 4);
    // The server loses the parked consumer (restart, inactivity): the next read starts anew.
    let names: Vec<String> = log.stream.consumer_names().try_collect().await.unwrap();
    assert_eq!(names.len(), 1);
    for name in &names {
        log.stream.delete_consumer(name).await.unwrap();
    }
    let started = Instant::now();
    let rest = log.read(4, 100).await.unwrap();
    assert_eq!(
        rest.iter().map(|r| r.offset).collect::<Vec<_>>(),
        (4..10).collect::<Vec<_>>()
    );
    println!("read after a lost consumer took {:?}", started.elapsed());
}

#[tokio::test]
async fn jetstream_in_batch_dedup_and_hash_collisions() {
    let cleanup = Cleanup::new(&["batch"]);
    let js = connect().await;
    let log = cleanup.open(&js, "batch").await;
    // A second new record of one key in one batch waits for the first's sequence; offsets
    // still ascend in batch order.
    let out = log
        .append(vec![
            rec("s", "a", 100),
            rec("s", "a", 1200),
            rec("s", "a", 1300),
            rec("s", "b", 1),
            rec("s", "a", 150),
        ])
        .await
        .unwrap();
    assert_eq!(
        out,
        vec![
            Appended::New { offset: 0 },
            Appended::New { offset: 1 },
            Appended::Duplicate { offset: 1 },
            Appended::New { offset: 2 },
            Appended::Duplicate { offset: 1 },
        ]
    );
    // Forge a collision: another key's record on the subject of ("s", "x").
    let forged = envelope::encode(&rec("t", "y", 100));
    js.publish(log.subject("x", "s"), forged.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        log.append(vec![rec("s", "x", 100)]).await.unwrap(),
        vec![Appended::New { offset: 4 }]
    );
    // The forged record comes last on the subject again.
    let forged = envelope::encode(&rec("u", "z", 100));
    js.publish(log.subject("x", "s"), forged.into())
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(
        log.append(vec![rec("s", "x", 150)]).await.unwrap(),
        vec![Appended::Duplicate { offset: 4 }]
    );
    let found = log.find("x", None).await.unwrap();
    assert_eq!(
        found
            .iter()
            .map(|r| (r.offset, r.source.as_str()))
            .collect::<Vec<_>>(),
        [(4, "s")]
    );
    assert!(log.find("y", Some("s")).await.unwrap().is_empty());
    // The forged records came from elsewhere: the cache learns of the last one on refresh.
    assert_eq!(log.bounds().next, 5);
    assert_eq!(log.refresh().await.unwrap().next, 6);
}

#[tokio::test]
async fn jetstream_garbage_body_is_corrupt() {
    let cleanup = Cleanup::new(&["garbage"]);
    let js = connect().await;
    let log = cleanup.open(&js, "garbage").await;
    log.append(vec![rec("s", "a", 1)]).await.unwrap();
    js.publish(
        format!("{}.garbage", log.subject_base()),
        "{not ours".into(),
    )
    .await
    .unwrap()
    .await
    .unwrap();
    match log.read(0, 10).await {
        Err(LogError::Corrupt { position, .. }) => assert_eq!(position, 1),
        other => panic!("expected Corrupt, got {other:?}"),
    }
    // Reads before it, and lookups by id, still work.
    assert_eq!(log.read(0, 1).await.unwrap().len(), 1);
    assert_eq!(log.find("a", None).await.unwrap().len(), 1);
    assert!(matches!(
        log.remove_before(100, u64::MAX).await,
        Err(LogError::Corrupt { position: 1, .. })
    ));
}

#[tokio::test]
async fn jetstream_refuses_bad_names() {
    let js = connect().await;
    for bus in ["", "Orders", "a.b", "a*", "a>", "a b", "-a", "_a", "ü"] {
        match JetStreamLog::open(js.clone(), bus, JetStreamOptions::default()).await {
            Err(LogError::Io { source, .. }) => {
                assert_eq!(source.kind(), std::io::ErrorKind::InvalidInput, "{bus:?}");
            }
            Err(e) => panic!("{bus:?}: {e}"),
            Ok(_) => panic!("{bus:?} was accepted"),
        }
    }
    let bad_prefix = JetStreamOptions {
        prefix: "a_b".to_owned(),
        ..Default::default()
    };
    assert!(
        JetStreamLog::open(js.clone(), "ok", bad_prefix)
            .await
            .is_err()
    );
    assert_eq!(stream_name("p", "a_b-1").unwrap(), "p_a_b-1");
    assert!(
        !JetStreamLog::delete(&js, "sytest-none", "nothing-here", T)
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn jetstream_read_throughput() {
    const N: usize = 20_000;
    const CHUNK: usize = 256;
    let cleanup = Cleanup::new(&["throughput"]);
    let log = cleanup.open(&connect().await, "throughput").await;
    let started = Instant::now();
    for base in (0..N).step_by(1000) {
        let batch = (base..base + 1000)
            .map(|i| rec("bench", &i.to_string(), i as i64))
            .collect();
        log.append(batch).await.unwrap();
    }
    let append = started.elapsed();
    let stats = log.stats();
    assert_eq!(stats.records, N as u64);

    let started = Instant::now();
    let mut at = 0;
    let mut reads = 0;
    loop {
        let page = log.read(at, CHUNK).await.unwrap();
        reads += 1;
        let Some(last) = page.last() else { break };
        assert_eq!(page[0].offset, at);
        at = last.offset + 1;
    }
    let read = started.elapsed();
    assert_eq!(at, N as u64);
    println!(
        "jetstream: appended {N} records in {append:?} ({:.0} records/s, {} per ack flight); \
         read them in {reads} sequential reads of {CHUNK} in {read:?} ({:.0} records/s)",
        N as f64 / append.as_secs_f64(),
        stats.records / stats.syncs.max(1),
        N as f64 / read.as_secs_f64(),
    );
}
