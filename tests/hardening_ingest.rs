//! Issue #11 through the binary: JSON that parses but that readers disagree on (a repeated
//! key, nesting deeper than the limit, a lone surrogate) and control characters in
//! attributes are refused with 400 at every entry point, and nothing of it is stored.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::receiver::eventually;
use crate::search::wait_indexed;
use crate::support::{Reply, Server, assert_error};

const DUP: &str = r#"{"specversion":"1.0","id":"dup-1","source":"/t","type":"t","data":{"role":"admin","role":"user"}}"#;
const SURROGATE: &str =
    r#"{"specversion":"1.0","id":"sur-1","source":"/t","type":"t","data":{"name":"a\ud800"}}"#;
const LONE_MESSAGE: &str = r#"lone surrogate \ud800 in a string at data.name: \uD800-\uDFFF escapes must come in high-low pairs"#;
const TOO_DEEP_MESSAGE: &str =
    "the event nests deeper than the limit of 64 levels (the event object is level 1)";
const NUL_PROBLEM: &str = "attribute id contains the control character U+0000; attribute values may not contain U+0000-U+001F or U+007F";

/// Posts `body` as is (serde_json would collapse a repeated key before it left the test).
async fn post(s: &Server, path: &str, content_type: &str, body: impl Into<String>) -> Reply {
    s.send(
        s.request(Method::POST, path)
            .header("content-type", content_type)
            .body(body.into()),
    )
    .await
}

async fn publish(s: &Server, body: &str) -> Reply {
    post(
        s,
        "/v1/buses/default/events",
        "application/cloudevents+json",
        body,
    )
    .await
}

async fn publish_batch(s: &Server, entries: &[&str]) -> Reply {
    post(
        s,
        "/v1/buses/default/events",
        "application/cloudevents-batch+json",
        format!("[{}]", entries.join(",")),
    )
    .await
}

async fn publish_binary(s: &Server, id: &str, content_type: &str, body: &str) -> Reply {
    s.send(
        s.request(Method::POST, "/v1/buses/default/events")
            .header("ce-specversion", "1.0")
            .header("ce-id", id)
            .header("ce-source", "/t")
            .header("ce-type", "t")
            .header("content-type", content_type)
            .body(body.to_owned()),
    )
    .await
}

/// Asserts the status, code and exact message; returns `error.details`.
fn refused(reply: &Reply, status: u16, code: &str, message: &str) -> Value {
    let body = assert_error(reply, status, code);
    assert_eq!(body["error"]["message"], message, "body: {body}");
    body["error"]["details"].clone()
}

/// A batch refused for one bad entry at `index`, with this one problem.
fn refused_entry(reply: &Reply, index: usize, problem: &str) {
    let details = refused(
        reply,
        400,
        "invalid_batch",
        "1 of the batch's events are invalid; nothing was stored",
    );
    assert_eq!(
        details,
        json!({"invalid": [{"index": index, "problems": [problem]}]})
    );
}

async fn stored(s: &Server) -> u64 {
    s.call(Method::GET, "/v1/buses/default", None, 200).await["events"]
        .as_u64()
        .unwrap()
}

fn ok_event(id: &str) -> String {
    format!(r#"{{"specversion":"1.0","id":"{id}","source":"/t","type":"t","data":{{"n":1}}}}"#)
}

/// An event `levels` deep in all, counting the event object as level 1.
fn nested(id: &str, levels: usize) -> String {
    let inner = levels - 2;
    format!(
        r#"{{"specversion":"1.0","id":"{id}","source":"/t","type":"t","data":{}{{"leaf":"bottom"}}{}}}"#,
        r#"{"a":"#.repeat(inner),
        "}".repeat(inner)
    )
}

#[tokio::test]
async fn repeated_keys_are_refused_everywhere_an_event_enters() {
    let s = Server::start(crate::support::Backend::Sqlite).await;
    let message = r#"duplicate key "role" in data"#;
    let details = refused(&publish(&s, DUP).await, 400, "duplicate_key", message);
    assert_eq!(
        details,
        json!({"problems": [message], "key": "role", "path": "data"})
    );
    // In the envelope, and deeper in `data`.
    refused(
        &publish(
            &s,
            r#"{"specversion":"1.0","id":"1","source":"/t","type":"t","id":"2"}"#,
        )
        .await,
        400,
        "duplicate_key",
        r#"duplicate key "id" in the event"#,
    );
    refused(
        &publish(
            &s,
            r#"{"specversion":"1.0","id":"1","source":"/t","type":"t","data":{"items":[{"sku":1},{"sku":1,"sku":2}]}}"#,
        )
        .await,
        400,
        "duplicate_key",
        r#"duplicate key "sku" in data.items[1]"#,
    );
    refused_entry(
        &publish_batch(&s, &[&ok_event("b-1"), DUP]).await,
        1,
        message,
    );
    refused(
        &publish_binary(
            &s,
            "bin-1",
            "application/json",
            r#"{"role":"admin","role":"user"}"#,
        )
        .await,
        400,
        "duplicate_key",
        message,
    );
    // A webhook's JSON body becomes `data`.
    s.call(
        Method::PUT,
        "/v1/webhooks/hook",
        Some(json!({"bus": "default", "source": "https://example.com"})),
        201,
    )
    .await;
    let hook = s
        .send(
            s.client
                .post(format!("{}/v1/webhooks/hook", s.base))
                .header("content-type", "application/json")
                .body(r#"{"role":"admin","role":"user"}"#),
        )
        .await;
    refused(&hook, 400, "duplicate_key", message);
    // The pattern test would have matched on the first value and answered on the last.
    let pattern = r#"{"data":{"role":["admin"]}}"#;
    for path in ["/v1/patterns/test", "/v1/transforms/test"] {
        let body = if path == "/v1/patterns/test" {
            format!(r#"{{"pattern":{pattern},"event":{DUP}}}"#)
        } else {
            format!(r#"{{"transform":{{"kind":"complete"}},"event":{DUP}}}"#)
        };
        refused(
            &post(&s, path, "application/json", body).await,
            400,
            "duplicate_key",
            message,
        );
    }
    assert_eq!(stored(&s).await, 0);
}

#[tokio::test]
async fn events_deeper_than_the_limit_are_refused_and_the_limit_is_searchable() {
    let s = Server::start(crate::support::Backend::Sqlite).await;
    let r = publish(&s, &nested("deep-64", 64)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    let details = refused(
        &publish(&s, &nested("deep-65", 65)).await,
        400,
        "too_deep",
        TOO_DEEP_MESSAGE,
    );
    assert_eq!(
        details,
        json!({"problems": [TOO_DEEP_MESSAGE], "limit": 64})
    );
    // Past serde_json's own recursion limit (128) too.
    refused(
        &publish(&s, &nested("deep-300", 300)).await,
        400,
        "too_deep",
        TOO_DEEP_MESSAGE,
    );
    refused_entry(
        &publish_batch(&s, &[&ok_event("b-1"), &nested("deep-b", 65)]).await,
        1,
        TOO_DEEP_MESSAGE,
    );
    // A binary-mode JSON body is level 2: 63 levels of body is the limit.
    let body = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
    let r = publish_binary(&s, "deep-bin-63", "application/json", &body(63)).await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    refused(
        &publish_binary(&s, "deep-bin-64", "application/json", &body(64)).await,
        400,
        "too_deep",
        TOO_DEEP_MESSAGE,
    );
    refused(
        &post(
            &s,
            "/v1/patterns/test",
            "application/json",
            format!(
                r#"{{"pattern":{{"id":["x"]}},"event":{}}}"#,
                nested("deep-p", 65)
            ),
        )
        .await,
        400,
        "too_deep",
        TOO_DEEP_MESSAGE,
    );
    assert_eq!(stored(&s).await, 2);
    wait_indexed(&s).await;
    // The lag gauge reads 0 once the index commit is on disk, a moment before its reader
    // reloads: wait for the search itself to answer.
    let found = eventually(Duration::from_secs(10), || async {
        let page = s
            .call(
                Method::GET,
                "/v1/buses/default/events?q=id%20%3D%20deep-64",
                None,
                200,
            )
            .await;
        let events = page["events"].as_array().cloned().unwrap_or_default();
        (!events.is_empty()).then_some(events)
    })
    .await;
    assert_eq!(found.len(), 1);
    let published: Value = serde_json::from_str(&nested("deep-64", 64)).unwrap();
    assert_eq!(found[0]["event"], published);
    // The deepest value an accepted event can hold is indexed too: full text and by path.
    let path = format!("data.{}leaf", "a.".repeat(62));
    for q in ["bottom".to_owned(), format!("{path}%20%3D%20bottom")] {
        let page = s
            .call(
                Method::GET,
                &format!("/v1/buses/default/events?q={q}"),
                None,
                200,
            )
            .await;
        let ids: Vec<Value> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["event"]["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("deep-64")], "q={q}");
    }
}

#[tokio::test]
async fn control_characters_in_attributes_and_lone_surrogates_are_refused() {
    let s = Server::start(crate::support::Backend::Sqlite).await;
    let nul = r#"{"specversion":"1.0","id":"nul\u0000id","source":"/t","type":"t"}"#;
    let details = refused(
        &publish(&s, nul).await,
        400,
        "invalid_event",
        &format!("the event breaks the CloudEvents spec: {NUL_PROBLEM}"),
    );
    assert_eq!(details, json!({"problems": [NUL_PROBLEM]}));
    // Binary mode and batches say the same.
    let details = refused(
        &publish_binary(&s, "nul%00id", "application/json", "{}").await,
        400,
        "invalid_event",
        &format!("the event breaks the CloudEvents spec: {NUL_PROBLEM}"),
    );
    assert_eq!(details, json!({"problems": [NUL_PROBLEM]}));
    refused_entry(
        &publish_batch(&s, &[&ok_event("b-1"), nul]).await,
        1,
        NUL_PROBLEM,
    );
    // Every string attribute, extensions included; DEL too.
    let ext = r#"{"specversion":"1.0","id":"e-1","source":"/t","type":"t","subject":"ok","tenant":"a\u007fb"}"#;
    let problem = "extension tenant contains the control character U+007F; attribute values may not contain U+0000-U+001F or U+007F";
    refused(
        &publish(&s, ext).await,
        400,
        "invalid_event",
        &format!("the event breaks the CloudEvents spec: {problem}"),
    );
    // Control characters in data are data.
    let r = publish(
        &s,
        r#"{"specversion":"1.0","id":"ok-1","source":"/t","type":"t","data":"tab\there\u0000"}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());

    let details = refused(
        &publish(&s, SURROGATE).await,
        400,
        "lone_surrogate",
        LONE_MESSAGE,
    );
    assert_eq!(
        details,
        json!({"problems": [LONE_MESSAGE], "escape": "\\ud800", "location": "a string at data.name"})
    );
    refused_entry(
        &publish_batch(&s, &[&ok_event("b-2"), SURROGATE]).await,
        1,
        LONE_MESSAGE,
    );
    refused(
        &publish_binary(&s, "sur-bin", "application/json", r#"{"name":"a\ud800"}"#).await,
        400,
        "lone_surrogate",
        LONE_MESSAGE,
    );
    refused(
        &post(
            &s,
            "/v1/patterns/test",
            "application/json",
            format!(r#"{{"pattern":{{"id":["x"]}},"event":{SURROGATE}}}"#),
        )
        .await,
        400,
        "lone_surrogate",
        LONE_MESSAGE,
    );
    // A pair is a character.
    let r = publish(
        &s,
        r#"{"specversion":"1.0","id":"pair-1","source":"/t","type":"t","data":{"name":"\ud83d\ude00"}}"#,
    )
    .await;
    assert_eq!(r.status.as_u16(), 200, "{}", r.text());
    assert_eq!(stored(&s).await, 2);
}
