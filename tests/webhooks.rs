//! Inbound webhooks through the binary: the management API, each signature scheme (signed
//! here the way each provider signs), bodies wrapped into CloudEvents, redeliveries as
//! duplicates, and nothing stored for a delivery that does not verify.

use base64::Engine as _;
use hmac::Mac;
use reqwest::Method;
use serde_json::{Value, json};

use crate::both_backends;
use crate::support::{Backend, Server, assert_error};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

fn hmac(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut m = HmacSha256::new_from_slice(key).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// POSTs a delivery with no bearer key, as a provider would.
async fn deliver(
    s: &Server,
    name: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> crate::support::Reply {
    let mut req = s
        .client
        .post(format!("{}/v1/webhooks/{name}", s.base))
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(*k, v);
    }
    s.send(req).await
}

async fn stored_events(s: &Server) -> u64 {
    s.call(Method::GET, "/v1/buses/default", None, 200).await["events"]
        .as_u64()
        .unwrap()
}

async fn github_webhooks(backend: Backend) {
    let mut s = Server::start(backend).await;
    let config = json!({"bus": "default", "source": "https://github.com/acme/shop",
        "description": "repository events", "type_from": "X-GitHub-Event",
        "verify": {"scheme": "github", "secret": "It's a Secret"}});
    let created = s
        .call(Method::PUT, "/v1/webhooks/gh", Some(config.clone()), 201)
        .await;
    assert_eq!(created["verify"], json!({"scheme": "github"}));
    assert_eq!(created["type_from"], "x-github-event");
    assert_eq!(created["path"], "/v1/webhooks/gh");
    assert!(created.get("secret").is_none() && !created.to_string().contains("Secret"));
    let replaced = s
        .call(Method::PUT, "/v1/webhooks/gh", Some(config), 200)
        .await;
    assert_eq!(replaced["created_at"], created["created_at"]);

    let body = br#"{"ref": "refs/heads/main", "commits": [{"id": "c1"}]}"#;
    let signed = |body: &[u8]| format!("sha256={}", hex(&hmac(b"It's a Secret", &[body])));
    let headers = |sig: String| {
        vec![
            ("content-type", "application/json".to_owned()),
            ("x-github-event", "push".to_owned()),
            (
                "x-github-delivery",
                "72d3162e-cc78-11e3-81ab-4c9367dc0958".to_owned(),
            ),
            ("x-hub-signature-256", sig),
        ]
    };
    let reply = deliver(&s, "gh", &headers(signed(body)), body).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let out = reply.json();
    assert_eq!(out["accepted"], 1);
    assert_eq!(
        out["events"][0]["id"],
        "72d3162e-cc78-11e3-81ab-4c9367dc0958"
    );
    assert!(out["events"][0].get("duplicate").is_none());
    let record = s
        .call(
            Method::GET,
            "/v1/buses/default/events/72d3162e-cc78-11e3-81ab-4c9367dc0958",
            None,
            200,
        )
        .await;
    let event = &record["event"];
    assert_eq!(
        (
            &event["specversion"],
            &event["type"],
            &event["source"],
            &event["webhook"],
            &event["datacontenttype"]
        ),
        (
            &json!("1.0"),
            &json!("push"),
            &json!("https://github.com/acme/shop"),
            &json!("gh"),
            &json!("application/json")
        )
    );
    assert_eq!(
        event["data"],
        serde_json::from_slice::<Value>(body).unwrap()
    );
    assert!(event["time"].as_str().is_some_and(|t| t.ends_with('Z')));

    // GitHub redelivers with the same delivery id: a duplicate, not a second event.
    let again = deliver(&s, "gh", &headers(signed(body)), body).await;
    assert_eq!(again.json()["events"][0]["duplicate"], true);
    assert_eq!(stored_events(&s).await, 1);

    // A wrong or missing signature is a 401 and stores nothing.
    let forged = deliver(&s, "gh", &headers(signed(b"other")), body).await;
    let err = assert_error(&forged, 401, "invalid_signature");
    assert_eq!(
        err["error"]["message"],
        "the github signature does not verify: x-hub-signature-256 does not match"
    );
    let mut unsigned = headers(String::new());
    unsigned.pop();
    let err = assert_error(
        &deliver(&s, "gh", &unsigned, body).await,
        401,
        "invalid_signature",
    );
    assert_eq!(
        err["error"]["message"],
        "the github signature does not verify: missing x-hub-signature-256 header"
    );
    assert_eq!(stored_events(&s).await, 1);
    let metrics = s.metrics().await;
    for line in [
        "switchyard_webhook_requests_total{webhook=\"gh\",outcome=\"accepted\"} 2\n",
        "switchyard_webhook_requests_total{webhook=\"gh\",outcome=\"invalid_signature\"} 2\n",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }

    // Managing webhooks still needs the key; only deliveries do without.
    let anonymous = s
        .send(s.client.get(format!("{}/v1/webhooks", s.base)))
        .await;
    assert_error(&anonymous, 401, "unauthorized");
    let anonymous = s
        .send(
            s.client
                .put(format!("{}/v1/webhooks/gh", s.base))
                .json(&json!({"bus": "default", "source": "/x"})),
        )
        .await;
    assert_error(&anonymous, 401, "unauthorized");

    // Webhooks survive a restart.
    s.restart().await;
    let list = s.call(Method::GET, "/v1/webhooks", None, 200).await;
    assert_eq!(list["webhooks"].as_array().unwrap().len(), 1);
    let body2 = br#"{"ref": "refs/heads/dev"}"#;
    let mut h = headers(signed(body2));
    h[2].1 = "second".to_owned();
    assert_eq!(deliver(&s, "gh", &h, body2).await.status, 200);
    assert_eq!(stored_events(&s).await, 2);

    s.call(Method::DELETE, "/v1/webhooks/gh", None, 204).await;
    s.call(Method::DELETE, "/v1/webhooks/gh", None, 404).await;
    assert_error(&deliver(&s, "gh", &h, body2).await, 404, "not_found");
}
both_backends!(github_webhooks);

#[tokio::test]
async fn every_signature_scheme_verifies() {
    let s = Server::start(Backend::Sqlite).await;
    let secret_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret_b64)
        .unwrap();
    let server = &s;
    let put = |name: &str, verify: Value| {
        let body = json!({"bus": "default", "source": "/providers", "verify": verify});
        let path = format!("/v1/webhooks/{name}");
        async move { server.call(Method::PUT, &path, Some(body), 201).await }
    };
    put(
        "std",
        json!({"scheme": "standard-webhooks", "secret": format!("whsec_{secret_b64}")}),
    )
    .await;
    put(
        "stripe",
        json!({"scheme": "stripe", "secret": "whsec_stripe"}),
    )
    .await;
    put(
        "plain",
        json!({"scheme": "hmac-sha256", "secret": "k", "header": "X-Acme-Signature"}),
    )
    .await;
    let body = br#"{"id": "evt_1", "type": "invoice.paid"}"#;

    // Standard Webhooks: the id and timestamp are signed with the body.
    let ts = now_s().to_string();
    let sig = base64::engine::general_purpose::STANDARD
        .encode(hmac(&key, &[b"msg_1", b".", ts.as_bytes(), b".", body]));
    let std_headers = |ts: &str, sig: &str| {
        vec![
            ("webhook-id", "msg_1".to_owned()),
            ("webhook-timestamp", ts.to_owned()),
            ("webhook-signature", format!("v1,{sig}")),
        ]
    };
    let ok = deliver(&s, "std", &std_headers(&ts, &sig), body).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["events"][0]["id"], "msg_1");
    let stale = (now_s() - 3600).to_string();
    let old_sig = base64::engine::general_purpose::STANDARD
        .encode(hmac(&key, &[b"msg_1", b".", stale.as_bytes(), b".", body]));
    let err = assert_error(
        &deliver(&s, "std", &std_headers(&stale, &old_sig), body).await,
        401,
        "invalid_signature",
    );
    assert_eq!(
        err["error"]["message"],
        "the standard-webhooks signature does not verify: the timestamp is more than 300 s away from the server's clock"
    );

    // Stripe: t=<ts>,v1=<hex of "{t}.{body}">; the event id is the body's id.
    let t = now_s().to_string();
    let v1 = hex(&hmac(b"whsec_stripe", &[t.as_bytes(), b".", body]));
    let header = vec![("stripe-signature", format!("t={t},v1=deadbeef,v1={v1}"))];
    let ok = deliver(&s, "stripe", &header, body).await;
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["events"][0]["id"], "evt_1");
    let wrong = vec![("stripe-signature", format!("t={t},v1={}", hex(&[0; 32])))];
    assert_error(
        &deliver(&s, "stripe", &wrong, body).await,
        401,
        "invalid_signature",
    );

    // Generic HMAC in the configured header: hex, sha256=hex or base64 all verify.
    let mac = hmac(b"k", &[body]);
    for value in [
        hex(&mac),
        format!("sha256={}", hex(&mac)),
        base64::engine::general_purpose::STANDARD.encode(&mac),
    ] {
        let reply = deliver(&s, "plain", &[("x-acme-signature", value)], body).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let err = assert_error(
        &deliver(&s, "plain", &[("x-acme-signature", "zz".to_owned())], body).await,
        401,
        "invalid_signature",
    );
    assert_eq!(
        err["error"]["message"],
        "the hmac-sha256 signature does not verify: x-acme-signature is neither hex nor base64"
    );
    // 1 standard + 1 stripe + 3 generic (they carry no delivery id: each is a new event).
    assert_eq!(stored_events(&s).await, 5);
}

#[tokio::test]
async fn unverified_webhooks_wrap_any_body_and_rules_match_them() {
    let s = Server::start(Backend::Sqlite).await;
    s.call(
        Method::PUT,
        "/v1/webhooks/forms",
        Some(
            json!({"bus": "default", "source": "https://forms.example/f1", "type_from": "$.kind"}),
        ),
        201,
    )
    .await;
    s.call(
        Method::PUT,
        "/v1/webhooks/text",
        Some(json!({"bus": "default", "source": "/text"})),
        201,
    )
    .await;
    s.put_rule(
        "default",
        "signups",
        json!({"pattern": {"type": ["signup"], "data": {"plan": ["pro"]}}}),
    )
    .await;
    let body = br#"{"kind": "signup", "plan": "pro"}"#;
    let reply = deliver(
        &s,
        "forms",
        &[("content-type", "application/json".to_owned())],
        body,
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["events"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 32, "a fresh random id: {id}");
    let record = s
        .call(
            Method::GET,
            &format!("/v1/buses/default/events/{id}"),
            None,
            200,
        )
        .await;
    assert_eq!(record["event"]["type"], "signup");
    assert_eq!(record["matched_rules"], json!(["signups"]));

    // Text bodies become string data; the type defaults to the webhook's name.
    let reply = deliver(
        &s,
        "text",
        &[
            ("content-type", "text/plain".to_owned()),
            ("idempotency-key", "k-1".to_owned()),
        ],
        b"hello there",
    )
    .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let record = s
        .call(Method::GET, "/v1/buses/default/events/k-1", None, 200)
        .await;
    assert_eq!(
        (
            &record["event"]["type"],
            &record["event"]["data"],
            &record["event"]["datacontenttype"]
        ),
        (
            &json!("switchyard.webhook.text"),
            &json!("hello there"),
            &json!("text/plain")
        )
    );

    // A body without the type is the sender's mistake; nothing is stored.
    let before = stored_events(&s).await;
    let err = assert_error(
        &deliver(&s, "forms", &[], br#"{"plan": "pro"}"#).await,
        400,
        "invalid_webhook_body",
    );
    assert_eq!(
        err["error"]["message"],
        "the body has no non-empty string at $.kind"
    );
    assert_error(
        &deliver(&s, "forms", &[], b"not json").await,
        400,
        "invalid_webhook_body",
    );
    let big = vec![b'x'; 300 * 1024];
    assert_error(&deliver(&s, "text", &[], &big).await, 413, "too_large");
    assert_eq!(stored_events(&s).await, before);

    // Bad configurations are 422s naming the field, and change nothing.
    for (config, message) in [
        (
            json!({"bus": "nope", "source": "/x"}),
            "bus: \"nope\" does not exist",
        ),
        (
            json!({"bus": "default", "source": ""}),
            "source: must not be empty",
        ),
        (
            json!({"bus": "default", "source": "/x", "verify": {"scheme": "md5", "secret": "x"}}),
            "verify.scheme: \"md5\" is not one of standard-webhooks, github, stripe, hmac-sha256",
        ),
        (
            json!({"bus": "default", "source": "/x", "verify": {"scheme": "github", "secret": "x", "header": "x-sig"}}),
            "verify.header: only the hmac-sha256 scheme takes a header",
        ),
    ] {
        let reply = s
            .send(s.request(Method::PUT, "/v1/webhooks/text").json(&config))
            .await;
        let err = assert_error(&reply, 422, "invalid_webhook");
        assert_eq!(err["error"]["message"], message);
    }
    let text = s.call(Method::GET, "/v1/webhooks/text", None, 200).await;
    assert_eq!(text["source"], "/text");
    let unknown_field = s
        .send(
            s.request(Method::PUT, "/v1/webhooks/x")
                .json(&json!({"bus": "default", "source": "/x", "secrets": 1})),
        )
        .await;
    assert_error(&unknown_field, 422, "invalid_field");
}
