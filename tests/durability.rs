use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use reqwest::Method;
use serde_json::json;

use crate::support::{Backend, Server, event};

/// Every id in the bus, read back through the API.
pub(crate) async fn stored_ids(s: &Server, bus: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            None => format!("/v1/buses/{bus}/events?limit=1000"),
            Some(c) => format!("/v1/buses/{bus}/events?limit=1000&cursor={c}"),
        };
        let page = s.call(Method::GET, &path, None, 200).await;
        ids.extend(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["event"]["id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return ids,
        }
    }
}

/// Concurrent publishers, SIGKILL mid-stream, restart: every acknowledged event is there,
/// exactly once, and the log takes new events at the next offset.
#[tokio::test]
async fn sigkill_loses_no_acknowledged_event() {
    // Small segments so the kill also lands near segment rolls.
    let mut s = Server::start_with(Backend::Sqlite, &["--segment-bytes", "20000"]).await;
    let acked: Arc<Mutex<BTreeSet<String>>> = Arc::default();
    let url = format!("{}/v1/buses/default/events", s.base);
    let mut publishers = Vec::new();
    for p in 0..8 {
        let (acked, url, key, client) =
            (acked.clone(), url.clone(), s.key.clone(), s.client.clone());
        publishers.push(tokio::spawn(async move {
            for n in 0.. {
                // Alternate single events and batches of five.
                let ids: Vec<String> = if n % 2 == 0 {
                    vec![format!("p{p}-{n}")]
                } else {
                    (0..5).map(|k| format!("p{p}-{n}-{k}")).collect()
                };
                let events: Vec<_> = ids
                    .iter()
                    .map(|id| event(id, json!({"pad": "x".repeat(200)})))
                    .collect();
                let req = client.post(&url).bearer_auth(&key);
                let req = if events.len() == 1 {
                    req.header("content-type", "application/cloudevents+json")
                        .body(events[0].to_string())
                } else {
                    req.header("content-type", "application/cloudevents-batch+json")
                        .body(json!(events).to_string())
                };
                match req.send().await {
                    Ok(r) if r.status() == 200 => acked.lock().unwrap().extend(ids),
                    // Refused or cut off by the kill: not acknowledged, so not promised.
                    _ => return,
                }
            }
        }));
    }
    // Kill once a good number of events are acknowledged.
    while acked.lock().unwrap().len() < 1500 {
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    s.kill().await;
    for p in publishers {
        p.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    s.start_again().await;
    let stored = stored_ids(&s, "default").await;
    let unique: BTreeSet<String> = stored.iter().cloned().collect();
    assert_eq!(unique.len(), stored.len(), "an event is stored twice");
    let missing: Vec<&String> = acked.difference(&unique).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged events lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // The log continues where it stopped.
    let bus = s.call(Method::GET, "/v1/buses/default", None, 200).await;
    let next = bus["last_offset"].as_u64().unwrap() + 1;
    assert_eq!(bus["events"].as_u64().unwrap(), stored.len() as u64);
    let r = s.publish("default", &event("after-crash", json!(1))).await;
    assert_eq!(r.json()["events"][0]["offset"], next);
}
