//! The contract every target kind must meet, run against each of them with the real service
//! it delivers to. A kind is done when its harness passes [`run`].
//!
//! A harness makes fresh destinations (a subject, stream, queue, topic or URL no other test
//! uses), reads back what arrived there with the system's own client, and declares what its
//! protocol carries besides the body ([`Carries`]). What a kind cannot carry is declared
//! there, never skipped: the checks assert exactly what the harness says arrives.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use switchyard_targets::{AddressPolicy, Delivery, DeliveryError, Target};

/// Extra time a failing delivery may take beyond the bound its harness declares.
const MARGIN: Duration = Duration::from_secs(2);

/// How long a read-back waits for the messages it expects before failing.
pub const READ_DEADLINE: Duration = Duration::from_secs(10);

/// What a kind's protocol carries besides the body.
#[derive(Debug, Clone, Copy)]
pub struct Carries {
    /// The delivery id arrives with every message (the receiver's dedup key).
    pub delivery_id: bool,
    /// The content type the event itself arrives with, as the kind documents it; `None`
    /// when the protocol has no content type. A kind that carries one labels a transformed
    /// payload by its shape: text as `text/plain; charset=utf-8`, anything else as
    /// `application/json`.
    pub event_content_type: Option<&'static str>,
}

/// One message as the destination's own client read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub body: Vec<u8>,
    /// The delivery id, where the protocol carries it.
    pub delivery_id: Option<String>,
    pub content_type: Option<String>,
}

/// One kind of target and the service it delivers to.
pub trait Harness {
    type Destination: Destination;

    fn carries(&self) -> Carries;

    /// A destination no other test uses.
    async fn destination(&self) -> Self::Destination;

    /// A target (allowed by its policy) whose server is `port` on 127.0.0.1, where nothing
    /// listens, and the longest the target documents taking to give up on it.
    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration);
}

pub trait Destination {
    /// A target delivering here, connecting under `policy`.
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target>;

    /// The next `n` messages that arrived here, in arrival order. Panics naming the
    /// destination when fewer arrive within [`READ_DEADLINE`].
    async fn next(&mut self, n: usize) -> Vec<Received>;

    /// Removes the destination from the service.
    async fn finish(self);
}

/// The policy every deliverable target gets: the services run on loopback.
pub fn loopback() -> AddressPolicy {
    AddressPolicy {
        allow: vec!["127.0.0.0/8".parse().expect("a CIDR")],
    }
}

/// A name no other test (in this process or another) uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}-{:016x}", std::process::id(), fastrand::u64(..))
}

/// A port on 127.0.0.1 where nothing listens.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding 127.0.0.1:0");
    let port = listener.local_addr().expect("a bound address").port();
    drop(listener);
    port
}

/// An event and the delivery that carries it.
pub struct Sample {
    pub json: String,
    pub event: Value,
    pub delivery_id: String,
}

impl Sample {
    /// Event `n` of a run; its delivery id is unique to the run, so a JetStream dedup window
    /// or a receiver's dedup store never confuses two runs.
    pub fn new(run: &str, n: usize) -> Sample {
        let event = json!({
            "specversion": "1.0",
            "id": format!("{run}-{n}"),
            "source": "/contract",
            "type": "order.created",
            "datacontenttype": "application/json",
            "data": {"n": n, "note": "café"},
        });
        Sample {
            json: serde_json::to_string(&event).expect("an event serializes"),
            event,
            delivery_id: format!("{run}:{n}"),
        }
    }

    pub fn delivery<'a>(&'a self, payload: Option<&'a Value>) -> Delivery<'a> {
        Delivery {
            event_json: self.json.as_bytes(),
            event: &self.event,
            payload,
            delivery_id: &self.delivery_id,
            attempt: 1,
            traceparent: None,
        }
    }

    /// What arrives when this sample's event is delivered as published.
    fn received(&self, carries: Carries) -> Received {
        Received {
            body: self.json.as_bytes().to_vec(),
            delivery_id: carries.delivery_id.then(|| self.delivery_id.clone()),
            content_type: carries.event_content_type.map(str::to_owned),
        }
    }
}

/// Runs every contract check against `h`, each on a fresh destination.
pub async fn run(h: &impl Harness) {
    delivers_the_event_as_published(h).await;
    delivers_a_transformed_payload_instead(h).await;
    keeps_the_order_of_sequential_deliveries(h).await;
    fails_retryable_when_unreachable(h).await;
    fails_permanent_when_the_policy_refuses(h).await;
    delivers_concurrent_deliveries_through_one_target(h).await;
}

/// Delivers one more event and reads exactly it back: whatever arrived before it (a
/// duplicate, a message that should not have been delivered) would be read instead.
async fn assert_nothing_else_arrived(h: &impl Harness, dest: &mut impl Destination, run: &str) {
    let marker = Sample::new(run, usize::MAX);
    dest.target(loopback())
        .deliver(marker.delivery(None))
        .await
        .expect("delivering the marker");
    assert_eq!(
        dest.next(1).await,
        [marker.received(h.carries())],
        "something arrived before the marker"
    );
}

async fn delivers_the_event_as_published(h: &impl Harness) {
    let mut dest = h.destination().await;
    let run = unique("published");
    let sample = Sample::new(&run, 1);
    dest.target(loopback())
        .deliver(sample.delivery(None))
        .await
        .expect("delivering an event");
    assert_eq!(dest.next(1).await, [sample.received(h.carries())]);
    assert_nothing_else_arrived(h, &mut dest, &run).await;
    dest.finish().await;
}

async fn delivers_a_transformed_payload_instead(h: &impl Harness) {
    let mut dest = h.destination().await;
    let run = unique("payload");
    // Two deliveries, so two delivery ids: a kind that dedups by id must not drop one.
    let (first, second) = (Sample::new(&run, 1), Sample::new(&run, 2));
    let target = dest.target(loopback());
    let object = json!({"order": 1, "who": "ada"});
    let text = json!("order 1 by ada");
    target.deliver(first.delivery(Some(&object))).await.unwrap();
    target.deliver(second.delivery(Some(&text))).await.unwrap();
    let carries = h.carries();
    let labelled = |ct: &str| carries.event_content_type.map(|_| ct.to_owned());
    let id = |s: &Sample| carries.delivery_id.then(|| s.delivery_id.clone());
    assert_eq!(
        dest.next(2).await,
        [
            Received {
                body: br#"{"order":1,"who":"ada"}"#.to_vec(),
                delivery_id: id(&first),
                content_type: labelled("application/json"),
            },
            Received {
                body: b"order 1 by ada".to_vec(),
                delivery_id: id(&second),
                content_type: labelled("text/plain; charset=utf-8"),
            },
        ]
    );
    assert_nothing_else_arrived(h, &mut dest, &run).await;
    dest.finish().await;
}

async fn keeps_the_order_of_sequential_deliveries(h: &impl Harness) {
    let mut dest = h.destination().await;
    let run = unique("ordered");
    let samples: Vec<Sample> = (0..20).map(|n| Sample::new(&run, n)).collect();
    let target = dest.target(loopback());
    for s in &samples {
        target.deliver(s.delivery(None)).await.unwrap();
    }
    let expected: Vec<Received> = samples.iter().map(|s| s.received(h.carries())).collect();
    assert_eq!(dest.next(20).await, expected);
    assert_nothing_else_arrived(h, &mut dest, &run).await;
    dest.finish().await;
}

async fn fails_retryable_when_unreachable(h: &impl Harness) {
    let (target, bound) = h.unreachable(closed_port());
    let sample = Sample::new(&unique("unreachable"), 1);
    // Twice: the first attempt connects, the second finds whatever state the first left.
    for attempt in 1..=2 {
        let err = tokio::time::timeout(bound + MARGIN, target.deliver(sample.delivery(None)))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "attempt {attempt} to an unreachable server took over {bound:?} + {MARGIN:?}"
                )
            })
            .expect_err("nothing listens there");
        assert!(err.is_retryable(), "attempt {attempt}: {err:?}");
    }
}

async fn fails_permanent_when_the_policy_refuses(h: &impl Harness) {
    let mut dest = h.destination().await;
    let run = unique("refused");
    let sample = Sample::new(&run, 1);
    let documentation_only = AddressPolicy {
        allow: vec!["192.0.2.0/24".parse().expect("a CIDR")],
    };
    for policy in [AddressPolicy::default(), documentation_only] {
        let err: DeliveryError = dest
            .target(policy.clone())
            .deliver(sample.delivery(None))
            .await
            .expect_err("loopback is not allowed");
        assert!(!err.is_retryable(), "{policy:?}: {err:?}");
        assert!(
            err.message.contains("refused to connect to 127.0.0.1"),
            "{policy:?}: {}",
            err.message
        );
    }
    assert_nothing_else_arrived(h, &mut dest, &run).await;
    dest.finish().await;
}

async fn delivers_concurrent_deliveries_through_one_target(h: &impl Harness) {
    let mut dest = h.destination().await;
    let run = unique("concurrent");
    let samples: Vec<Sample> = (0..16).map(|n| Sample::new(&run, n)).collect();
    let target = dest.target(loopback());
    let results =
        futures_util::future::join_all(samples.iter().map(|s| target.deliver(s.delivery(None))))
            .await;
    for (n, r) in results.into_iter().enumerate() {
        r.unwrap_or_else(|e| panic!("concurrent delivery {n}: {e:?}"));
    }
    // The order among concurrent deliveries is not defined; each arrives exactly once.
    let by_body = |all: Vec<Received>| -> BTreeMap<Vec<u8>, Received> {
        let count = all.len();
        let map: BTreeMap<_, _> = all.into_iter().map(|r| (r.body.clone(), r)).collect();
        assert_eq!(map.len(), count, "a message arrived twice");
        map
    };
    let expected = by_body(samples.iter().map(|s| s.received(h.carries())).collect());
    assert_eq!(by_body(dest.next(16).await), expected);
    assert_nothing_else_arrived(h, &mut dest, &run).await;
    dest.finish().await;
}
