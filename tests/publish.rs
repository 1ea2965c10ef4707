use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Server, assert_error, event};

/// The exact JSON text of `record.event` inside a response body, for byte-level checks.
fn raw_event_texts(body: &[u8]) -> Vec<String> {
    #[derive(serde::Deserialize)]
    struct Page<'a> {
        #[serde(borrow)]
        events: Vec<Rec<'a>>,
    }
    #[derive(serde::Deserialize)]
    struct Rec<'a> {
        #[serde(borrow)]
        event: &'a serde_json::value::RawValue,
    }
    let page: Page = serde_json::from_slice(body).unwrap();
    page.events
        .iter()
        .map(|r| r.event.get().to_owned())
        .collect()
}

async fn all_three_modes_round_trip(backend: Backend) {
    let mut s = Server::start(backend).await;
    // Structured, with odd spacing, member order and number forms that must survive as sent.
    let structured = r#"{"type":"order.created", "specversion":"1.0","source":"/shop","id":"s-1","tier":"gold","data":{"total": 120.50,"items":[1,2.0e1]}}"#;
    let r = s
        .send(
            s.request(Method::POST, "/v1/buses/default/events")
                .header(
                    "content-type",
                    "application/cloudevents+json; charset=utf-8",
                )
                .body(structured),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"accepted": 1, "events": [{"id": "s-1", "source": "/shop", "offset": 0}]})
    );

    let batch = r#"[{"specversion":"1.0","id":"b-1","source":"/shop","type":"t"} ,{"specversion":"1.0","id":"b-2","source":"/shop","type":"t","data_base64":"AAEC"}]"#;
    let r = s
        .send(
            s.request(Method::POST, "/v1/buses/default/events")
                .header("content-type", "application/cloudevents-batch+json")
                .body(batch),
        )
        .await;
    assert_eq!(
        r.json(),
        json!({"accepted": 2, "events": [{"id": "b-1", "source": "/shop", "offset": 1}, {"id": "b-2", "source": "/shop", "offset": 2}]})
    );

    // Binary mode with bytes that are not UTF-8: they come back as data_base64.
    let r = s
        .send(
            s.request(Method::POST, "/v1/buses/default/events")
                .header("ce-specversion", "1.0")
                .header("ce-id", "bin-1")
                .header("ce-source", "/sensor")
                .header("ce-type", "reading")
                .header("ce-subject", "caf%C3%A9")
                .header("content-type", "application/octet-stream")
                .body(vec![0u8, 1, 254, 255]),
        )
        .await;
    assert_eq!(r.json()["events"][0]["offset"], 3);
    let r = s
        .send(
            s.request(Method::POST, "/v1/buses/default/events")
                .header("ce-specversion", "1.0")
                .header("ce-id", "bin-2")
                .header("ce-source", "/sensor")
                .header("ce-type", "reading")
                .header("content-type", "application/json")
                .body(r#"{"temp": 21.5}"#),
        )
        .await;
    assert_eq!(r.json()["events"][0]["offset"], 4);

    let expected = [
        r#"{"specversion":"1.0","id":"bin-2","source":"/sensor","type":"reading","datacontenttype":"application/json","data":{"temp": 21.5}}"#.to_owned(),
        r#"{"specversion":"1.0","id":"bin-1","source":"/sensor","type":"reading","subject":"café","datacontenttype":"application/octet-stream","data_base64":"AAH+/w=="}"#.to_owned(),
        r#"{"specversion":"1.0","id":"b-2","source":"/shop","type":"t","data_base64":"AAEC"}"#.to_owned(),
        r#"{"specversion":"1.0","id":"b-1","source":"/shop","type":"t"}"#.to_owned(),
        structured.to_owned(),
    ];
    for round in ["before restart", "after restart"] {
        let page = s
            .send(s.request(Method::GET, "/v1/buses/default/events"))
            .await;
        assert_eq!(page.status, 200, "{round}");
        assert_eq!(raw_event_texts(&page.body), expected, "{round}");
        let one = s
            .call(Method::GET, "/v1/buses/default/events/s-1", None, 200)
            .await;
        assert_eq!(one["offset"], 0);
        assert_eq!(one["matched_rules"], json!([]));
        assert_eq!(one["event"]["data"]["total"], 120.5);
        assert!(one["received_at"].as_str().unwrap().ends_with('Z'));
        s.restart().await;
    }
    let bus = s.call(Method::GET, "/v1/buses/default", None, 200).await;
    assert_eq!(
        (
            bus["events"].clone(),
            bus["first_offset"].clone(),
            bus["last_offset"].clone()
        ),
        (json!(5), json!(0), json!(4))
    );
}
both_backends!(all_three_modes_round_trip);

#[tokio::test]
async fn duplicates_are_reported_not_stored() {
    let s = Server::start(Backend::Sqlite).await;
    let e = event("dup-1", json!({"n": 1}));
    assert_eq!(
        s.publish("default", &e).await.json()["events"][0],
        json!({"id": "dup-1", "source": "/tests", "offset": 0})
    );
    let again = s.publish("default", &e).await;
    assert_eq!(again.status, 200);
    assert_eq!(
        again.json(),
        json!({"accepted": 1, "events": [{"id": "dup-1", "source": "/tests", "offset": 0, "duplicate": true}]})
    );
    // Same id from another source is a different event.
    let mut other = e.clone();
    other["source"] = json!("/elsewhere");
    assert_eq!(
        s.publish("default", &other).await.json()["events"][0]["offset"],
        1
    );
    // Within one batch, too.
    let b = s
        .publish_batch("default", &[event("d2", json!(1)), event("d2", json!(2))])
        .await;
    assert_eq!(
        b.json()["events"][1],
        json!({"id": "d2", "source": "/tests", "offset": 2, "duplicate": true})
    );
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default", None, 200).await["events"],
        3
    );
    // Both sources used "dup-1": asking without a source is ambiguous, with one it is not.
    let amb = assert_error(
        &s.send(s.request(Method::GET, "/v1/buses/default/events/dup-1"))
            .await,
        409,
        "ambiguous_id",
    );
    assert_eq!(
        amb["error"]["details"]["sources"],
        json!(["/elsewhere", "/tests"])
    );
    let one = s
        .call(
            Method::GET,
            "/v1/buses/default/events/dup-1?source=/elsewhere",
            None,
            200,
        )
        .await;
    assert_eq!(one["offset"], 1);
    assert_error(
        &s.send(s.request(Method::GET, "/v1/buses/default/events/nope"))
            .await,
        404,
        "not_found",
    );
}

#[tokio::test]
async fn a_bad_batch_stores_nothing_and_names_every_bad_entry() {
    let s = Server::start(Backend::Sqlite).await;
    let bad = [
        event("ok-1", json!(1)),
        json!({"specversion": "1.0", "id": "x", "source": "/s"}),
        event("ok-2", json!(2)),
        json!({"specversion": "2.0", "id": "", "source": "/s", "type": "t", "UPPER": 1}),
        json!("not an object"),
    ];
    let r = s.publish_batch("default", &bad).await;
    let body = assert_error(&r, 400, "invalid_batch");
    assert_eq!(
        body["error"]["details"]["invalid"],
        json!([
            {"index": 1, "problems": ["missing required attribute type"]},
            // In document order (serde_json writes object keys sorted).
            {"index": 3, "problems": [
                "extension name \"UPPER\" is invalid: extension names are 1 to 20 characters from a-z and 0-9",
                "attribute id must not be empty",
                "specversion \"2.0\" is not supported; only \"1.0\" is"
            ]},
            {"index": 4, "problems": ["the event is not a JSON object: invalid type: string \"not an object\", expected a JSON object at line 1 column 15"]}
        ])
    );
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default", None, 200).await["events"],
        0
    );
}

#[tokio::test]
async fn limits_and_media_types_are_enforced() {
    let s = Server::start_with(
        Backend::Sqlite,
        &[
            "--max-event-bytes",
            "1000",
            "--max-batch-events",
            "3",
            "--max-batch-bytes",
            "4000",
        ],
    )
    .await;
    let big = event("big", json!("x".repeat(1000)));
    assert_error(&s.publish("default", &big).await, 413, "too_large");
    let four: Vec<Value> = (0..4).map(|i| event(&i.to_string(), json!(i))).collect();
    assert_error(&s.publish_batch("default", &four).await, 413, "too_large");
    let huge = s
        .request(Method::POST, "/v1/buses/default/events")
        .header("content-type", "application/cloudevents-batch+json")
        .body(format!("[{}]", " ".repeat(5000)));
    assert_error(&s.send(huge).await, 413, "too_large");
    let wrong = s
        .request(Method::POST, "/v1/buses/default/events")
        .header("content-type", "text/plain")
        .body("hello");
    assert_error(&s.send(wrong).await, 415, "unsupported_media_type");
    let binary_missing = s
        .request(Method::POST, "/v1/buses/default/events")
        .header("ce-specversion", "1.0")
        .header("ce-id", "1")
        .body("x");
    let body = assert_error(&s.send(binary_missing).await, 400, "invalid_event");
    assert_eq!(
        body["error"]["details"]["problems"],
        json!([
            "missing required attribute source",
            "missing required attribute type"
        ])
    );
    assert_error(
        &s.publish("nope", &event("1", json!(1))).await,
        404,
        "not_found",
    );
    assert_eq!(
        s.call(Method::GET, "/v1/buses/default", None, 200).await["events"],
        0
    );
}

#[tokio::test]
async fn pages_are_newest_first_without_gaps_or_repeats() {
    let s = Server::start(Backend::Sqlite).await;
    let events: Vec<Value> = (0..25).map(|i| event(&format!("p{i}"), json!(i))).collect();
    assert_eq!(s.publish_batch("default", &events).await.status, 200);
    let seen = s.all_offsets("/v1/buses/default/events?limit=10").await;
    assert_eq!(seen, (0..25).rev().collect::<Vec<u64>>());
    let future = "/v1/buses/default/events?from=2999-01-01T00:00:00Z";
    assert_eq!(
        s.call(Method::GET, future, None, 200).await,
        json!({"events": [], "next_cursor": null})
    );
    let past = "/v1/buses/default/events?to=2000-01-01T00:00:00Z&limit=5";
    assert_eq!(
        s.call(Method::GET, past, None, 200).await["events"],
        json!([])
    );
    for bad in [
        "limit=0",
        "limit=1001",
        "cursor=abc",
        "from=yesterday",
        "colour=red",
        "q=type%3D",
    ] {
        let r = s
            .send(s.request(Method::GET, &format!("/v1/buses/default/events?{bad}")))
            .await;
        assert_eq!(r.status, 400, "{bad}: {}", r.text());
    }
}
