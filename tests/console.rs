//! The web console: its files are served without a key, and a real browser (headless
//! Chromium) renders the live API into the trace timeline, the search page and the rule
//! editor's pattern test.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::receiver::eventually;
use crate::support::{Backend, Server, event};

/// Every file under `/console/`, with the start of its content type.
const ASSETS: &[(&str, &str)] = &[
    ("index.html", "text/html"),
    ("app.css", "text/css"),
    ("app.js", "text/javascript"),
    ("api.js", "text/javascript"),
    ("dom.js", "text/javascript"),
    ("events.js", "text/javascript"),
    ("rules.js", "text/javascript"),
    ("deliveries.js", "text/javascript"),
    ("analytics.js", "text/javascript"),
    ("catalog.js", "text/javascript"),
];

/// The one URL-shaped string the files may hold: it names SVG, nothing is fetched from it.
const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";

#[tokio::test]
async fn console_files_are_served_without_a_key() {
    let s = Server::start(Backend::Sqlite).await;
    let anonymous = reqwest::Client::new();
    let fetch = |path: &str| anonymous.get(format!("{}{path}", s.base)).send();

    let page = fetch("/").await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<script type="module" src="/console/app.js"></script>"#));
    assert!(html.contains(r#"<link rel="stylesheet" href="/console/app.css">"#));

    for (file, content_type) in ASSETS {
        let resp = fetch(&format!("/console/{file}")).await.unwrap();
        assert_eq!(resp.status(), 200, "/console/{file}");
        let ty = resp.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(ty.starts_with(content_type), "/console/{file} is {ty}");
        assert_eq!(
            resp.headers()["cache-control"],
            "no-cache",
            "/console/{file}"
        );
        assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
        let body = resp.text().await.unwrap();
        assert!(!body.is_empty(), "/console/{file} is empty");
        // Nothing is loaded from anywhere else: no CDN, no font, no tracker.
        let stripped = body.replace(SVG_NAMESPACE, "");
        assert!(
            !stripped.contains("http://")
                && !stripped.contains("https://")
                && !stripped.contains("//cdn"),
            "/console/{file} refers to an external URL"
        );
        // Every module a file imports is served too.
        for import in body.split("from './").skip(1) {
            let name = import.split('\'').next().unwrap();
            assert!(
                ASSETS.iter().any(|(f, _)| *f == name),
                "/console/{file} imports {name}, which is not served"
            );
        }
    }

    for missing in ["/console/nope.js", "/console/..%2FCargo.toml", "/console/"] {
        let resp = fetch(missing).await.unwrap();
        assert_eq!(resp.status(), 404, "{missing}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "not_found", "{missing}: {body}");
    }

    // The page is public; the API it calls is not.
    assert_eq!(fetch("/v1/buses").await.unwrap().status(), 401);
}

#[tokio::test]
async fn the_browser_shows_where_a_dead_lettered_event_went() {
    let s = Server::start(Backend::Sqlite).await;
    // Port 9 on loopback: refused by the address policy (no --target-allow-cidr), a
    // non-retryable failure, so one attempt and a dead letter.
    s.put_rule(
        "default",
        "nowhere",
        json!({"pattern": {"source": ["/tests"]},
               "targets": [{"id": "hook", "kind": "http", "http": {"url": "http://127.0.0.1:9/hook"},
                            "retry": {"max_attempts": 1}}]}),
    )
    .await;
    // Event data is attacker-controlled: it must reach the page as text.
    let hostile = "<img src=x onerror=alert(1)>";
    let reply = s
        .publish("default", &event("console-1", json!({"note": hostile})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let steps = eventually(Duration::from_secs(10), || async {
        let t = s
            .call(
                Method::GET,
                "/v1/buses/default/events/console-1/trace",
                None,
                200,
            )
            .await;
        let steps = t["timeline"].as_array().unwrap().clone();
        steps
            .iter()
            .any(|st| st["stage"] == "dead_lettered")
            .then_some(steps)
    })
    .await;
    let error = steps
        .iter()
        .find(|st| st["stage"] == "dead_lettered")
        .and_then(|st| st["error"].as_str())
        .expect("the dead letter says why")
        .to_owned();

    let dom = dump_dom(&format!(
        "{}/#key={}&/buses/default/events/console-1?source=%2Ftests",
        s.base, s.key
    ))
    .await;

    let timeline = between(&dom, r#"<ol class="timeline" id="timeline">"#, "</ol>");
    let stages: Vec<&str> = timeline
        .split(r#"data-stage=""#)
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap())
        .collect();
    assert_eq!(
        stages,
        ["received", "stored", "matched", "attempt", "dead_lettered"],
        "{timeline}"
    );
    let api_stages: Vec<&str> = steps
        .iter()
        .map(|st| st["stage"].as_str().unwrap())
        .collect();
    assert_eq!(stages, api_stages);
    // The failed steps are highlighted, the others are not.
    assert!(timeline.contains(r#"<li class="step info" data-stage="received">"#));
    assert!(timeline.contains(r#"<li class="step info" data-stage="matched">"#));
    assert!(timeline.contains(r#"<li class="step fail" data-stage="attempt">"#));
    assert!(timeline.contains(r#"<li class="step fail" data-stage="dead_lettered">"#));
    assert!(
        timeline.contains(&format!(
            r#"<div class="step-error">{}</div></li>"#,
            escape(&error)
        )),
        "the dead letter's error {error:?} is not on the page: {timeline}"
    );
    assert!(timeline.contains("<dt>rule</dt><dd>nowhere</dd><dt>target</dt><dd>hook</dd>"));
    assert!(dom.contains("<strong>nowhere → hook</strong>: dead-lettered after 1 attempt"));

    assert!(
        dom.contains(&escape(hostile)),
        "the event JSON is shown: {dom}"
    );
    assert!(!dom.contains("<img"), "event data became markup: {dom}");
    assert!(!dom.contains(&s.key), "the key is on the page");
    assert!(
        !dom.contains(r#"id="login""#),
        "the key from the fragment was not used"
    );
}

#[tokio::test]
async fn the_browser_lists_and_searches_events() {
    let s = Server::start(Backend::Sqlite).await;
    for (id, n) in [("console-1", 1), ("console-2", 2)] {
        let reply = s.publish("default", &event(id, json!({"n": n}))).await;
        assert_eq!(reply.status, 200, "{}", reply.text());
    }
    let link = |id: &str| {
        format!(
            r##"<a href="#/buses/default/events/{id}?source=%2Ftests" class="event-id">{id}</a>"##
        )
    };

    // Without a query: straight from the log, newest first.
    let dom = dump_dom(&format!("{}/#key={}&/buses/default/events", s.base, s.key)).await;
    let (one, two) = (dom.find(&link("console-1")), dom.find(&link("console-2")));
    assert!(
        matches!((one, two), (Some(a), Some(b)) if b < a),
        "both events, newest first: {dom}"
    );

    // With one: once the index has the events, only the match is listed.
    eventually(Duration::from_secs(10), || async {
        let page = s
            .call(
                Method::GET,
                "/v1/buses/default/events?q=data.n%20%3D%202",
                None,
                200,
            )
            .await;
        (page["events"].as_array().unwrap().len() == 1).then_some(())
    })
    .await;
    let dom = dump_dom(&format!(
        "{}/#key={}&/buses/default/events?q=data.n%20%3D%202",
        s.base, s.key
    ))
    .await;
    assert!(dom.contains(&link("console-2")), "{dom}");
    assert!(!dom.contains(&link("console-1")), "{dom}");
    // The query box shows the query.
    assert!(dom.contains(r#"<input type="search" name="q""#), "{dom}");
}

#[tokio::test]
async fn the_rule_editor_tests_its_pattern_against_the_newest_event() {
    let s = Server::start(Backend::Sqlite).await;
    s.put_rule("default", "twos", json!({"pattern": {"data": {"n": [2]}}}))
        .await;
    s.put_rule(
        "default",
        "threes",
        json!({"pattern": {"data": {"n": [3]}}}),
    )
    .await;
    let reply = s
        .publish("default", &event("console-2", json!({"n": 2})))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text());

    let editor = |rule: &str| format!("{}/#key={}&/buses/default/rules/{rule}", s.base, s.key);
    let dom = dump_dom(&editor("twos")).await;
    let verdict = between(&dom, r#"<div class="verdict" id="verdict""#, "</div></div>");
    assert!(
        verdict.contains("✓ the pattern matches the sample event"),
        "{dom}"
    );
    let dom = dump_dom(&editor("threes")).await;
    let verdict = between(&dom, r#"<div class="verdict" id="verdict""#, "</div></div>");
    assert!(
        verdict.contains("✗ the pattern does not match the sample event"),
        "{dom}"
    );
}

#[tokio::test]
async fn a_refused_key_brings_back_the_login_form() {
    let s = Server::start(Backend::Sqlite).await;
    let dom = dump_dom(&format!("{}/#key=not-the-key&/buses", s.base)).await;
    let form = between(&dom, r#"<form class="login" id="login">"#, "</form>");
    assert!(
        form.contains("The server refused the API key: the API key is not valid"),
        "{dom}"
    );
    assert!(!dom.contains(r#"id="buses""#), "{dom}");
    assert!(!dom.contains("not-the-key"), "{dom}");
}

/// Loads `url` in headless Chromium and returns the DOM once the page has settled: virtual
/// time runs only while no request is pending, so every API call the page makes is answered
/// and rendered within the budget.
#[tokio::test]
async fn the_webhooks_page_gives_the_url_for_the_provider() {
    let s = Server::start(Backend::Sqlite).await;
    s.call(
        Method::PUT,
        "/v1/webhooks/github",
        Some(json!({"bus": "default", "source": "https://github.com/acme/shop",
                    "type_from": "x-github-event", "verify": {"scheme": "github", "secret": "s3cret"}})),
        201,
    )
    .await;
    let dom = dump_dom(&format!("{}/#key={}&/webhooks", s.base, s.key)).await;
    let url = format!(
        r#"<code class="webhook-url">{}/v1/webhooks/github</code>"#,
        s.base
    );
    assert!(dom.contains(&url), "{dom}");
    assert!(dom.contains("<td>x-github-event</td>"), "{dom}");
    assert!(dom.contains("<td>github</td>"), "{dom}");
    assert!(
        !dom.contains("s3cret"),
        "the secret is never on the page: {dom}"
    );
}

#[tokio::test]
async fn the_keys_page_lists_keys_without_their_secrets() {
    let s = Server::start(Backend::Sqlite).await;
    let created = s
        .call(
            Method::POST,
            "/v1/keys",
            Some(json!({"name": "shop-producer", "role": "publisher"})),
            201,
        )
        .await;
    let dom = dump_dom(&format!("{}/#key={}&/keys", s.base, s.key)).await;
    assert!(
        dom.contains("<td>shop-producer</td><td>publisher</td>"),
        "{dom}"
    );
    let prefix = format!("<code>{}…</code>", created["prefix"].as_str().unwrap());
    assert!(dom.contains(&prefix), "{dom}");
    assert!(!dom.contains(created["key"].as_str().unwrap()), "{dom}");
    // A publisher key cannot see the page: the console says why.
    let key = created["key"].as_str().unwrap();
    let dom = dump_dom(&format!("{}/#key={key}&/keys", s.base)).await;
    assert!(dom.contains("does not allow GET /v1/keys"), "{dom}");
}

async fn dump_dom(url: &str) -> String {
    let profile = tempfile::tempdir().unwrap();
    let mut cmd = tokio::process::Command::new("chromium");
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=5000",
        "--dump-dom",
    ])
    .arg(format!("--user-data-dir={}", profile.path().display()))
    .arg(url)
    .stdin(std::process::Stdio::null())
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true);
    let child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "chromium is not installed: the console tests need a real browser \
             (`apt-get install -y chromium`; .ci/run installs it)"
        ),
        Err(e) => panic!("could not start chromium: {e}"),
    };
    let out = tokio::time::timeout(Duration::from_secs(90), child.wait_with_output())
        .await
        .expect("chromium did not finish within 90 s")
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("</html>"),
        "chromium failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    dom
}

/// The text from `start` to the next `end` (both included); fails if either is missing.
fn between<'a>(text: &'a str, start: &str, end: &str) -> &'a str {
    let from = text
        .find(start)
        .unwrap_or_else(|| panic!("{start:?} is not on the page: {text}"));
    let len = text[from..]
        .find(end)
        .unwrap_or_else(|| panic!("{end:?} does not follow {start:?}: {text}"));
    &text[from..from + len + end.len()]
}

/// How a text node is serialized in the dumped DOM.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
