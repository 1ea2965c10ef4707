//! The `nats` target, core and JetStream, against the NATS server on 127.0.0.1:4222.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use serde_json::{Value, json};
use switchyard_targets::queue::nats::{NatsConfig, NatsTarget};
use switchyard_targets::{AddressPolicy, Target};

use crate::contract::{self, Carries, READ_DEADLINE, Received, Sample, loopback, unique};

const URL: &str = "nats://127.0.0.1:4222";

async fn connect() -> async_nats::Client {
    async_nats::connect(URL)
        .await
        .unwrap_or_else(|e| panic!("NATS must run on {URL}: {e}"))
}

fn target(url: &str, subject: &str, jetstream: bool, policy: AddressPolicy) -> Arc<dyn Target> {
    let config =
        NatsConfig::parse(&json!({"url": url, "subject": subject, "jetstream": jetstream}))
            .unwrap();
    Arc::new(NatsTarget::new(config, policy))
}

fn received(msg: &async_nats::Message) -> Received {
    let header = |name: &str| {
        msg.headers
            .as_ref()
            .and_then(|h| h.get(name))
            .map(|v| v.as_str().to_owned())
    };
    Received {
        body: msg.payload.to_vec(),
        delivery_id: header("Nats-Msg-Id"),
        content_type: header("content-type"),
    }
}

/// Core NATS: a subscriber on a fresh subject, subscribed before anything is published.
/// JetStream: a fresh stream, read back in stream order by an ordered consumer.
struct Nats {
    jetstream: bool,
}

enum Reader {
    Core(async_nats::Subscriber),
    JetStream {
        stream: String,
        messages: Box<async_nats::jetstream::consumer::pull::Ordered>,
    },
}

struct Subject {
    subject: String,
    jetstream: bool,
    client: async_nats::Client,
    reader: Reader,
}

impl contract::Harness for Nats {
    type Destination = Subject;

    fn carries(&self) -> Carries {
        Carries {
            delivery_id: true,
            // The event's `datacontenttype` travels as `content-type`.
            event_content_type: Some("application/json"),
        }
    }

    async fn destination(&self) -> Subject {
        let client = connect().await;
        let name = unique("contract").replace('-', "_");
        let subject = format!("sy.{name}");
        let reader = if self.jetstream {
            let stream = name.to_uppercase();
            let js = async_nats::jetstream::new(client.clone());
            let created = js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: stream.clone(),
                    subjects: vec![subject.clone()],
                    max_age: Duration::from_secs(600),
                    ..Default::default()
                })
                .await
                .unwrap_or_else(|e| panic!("JetStream must be enabled on {URL}: {e}"));
            let consumer = created
                .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig::default())
                .await
                .unwrap();
            Reader::JetStream {
                stream,
                messages: Box::new(consumer.messages().await.unwrap()),
            }
        } else {
            let sub = client.subscribe(subject.clone()).await.unwrap();
            client.flush().await.unwrap();
            Reader::Core(sub)
        };
        Subject {
            subject,
            jetstream: self.jetstream,
            client,
            reader,
        }
    }

    fn unreachable(&self, port: u16) -> (Arc<dyn Target>, Duration) {
        let url = format!("nats://127.0.0.1:{port}");
        (
            target(&url, "sy.unreachable", self.jetstream, loopback()),
            switchyard_targets::queue::CONNECT_TIMEOUT,
        )
    }
}

impl contract::Destination for Subject {
    fn target(&self, policy: AddressPolicy) -> Arc<dyn Target> {
        target(URL, &self.subject, self.jetstream, policy)
    }

    async fn next(&mut self, n: usize) -> Vec<Received> {
        let mut got = Vec::with_capacity(n);
        while got.len() < n {
            let next = match &mut self.reader {
                Reader::Core(sub) => tokio::time::timeout(READ_DEADLINE, sub.next())
                    .await
                    .map(|m| received(&m.expect("the subscription is open"))),
                Reader::JetStream { messages, .. } => {
                    tokio::time::timeout(READ_DEADLINE, messages.next())
                        .await
                        .map(|m| received(&m.expect("the consumer is open").unwrap()))
                }
            };
            got.push(next.unwrap_or_else(|_| {
                panic!("{}: {} of {n} messages arrived", self.subject, got.len())
            }));
        }
        got
    }

    async fn finish(self) {
        if let Reader::JetStream { stream, .. } = self.reader {
            async_nats::jetstream::new(self.client)
                .delete_stream(&stream)
                .await
                .unwrap();
        }
    }
}

#[tokio::test]
async fn core_meets_the_contract() {
    contract::run(&Nats { jetstream: false }).await;
}

#[tokio::test]
async fn jetstream_meets_the_contract() {
    contract::run(&Nats { jetstream: true }).await;
}

/// Beyond the contract: the CloudEvents attributes travel as `ce-*` headers.
#[tokio::test]
async fn attributes_travel_as_ce_headers() {
    use contract::{Destination as _, Harness as _};
    let mut dest = Nats { jetstream: false }.destination().await;
    let run = unique("headers");
    let sample = Sample::new(&run, 7);
    dest.target(loopback())
        .deliver(sample.delivery(None))
        .await
        .unwrap();
    let Reader::Core(sub) = &mut dest.reader else {
        unreachable!("a core destination")
    };
    let msg = tokio::time::timeout(READ_DEADLINE, sub.next())
        .await
        .unwrap()
        .unwrap();
    let headers = msg.headers.unwrap();
    let header = |name: &str| headers.get(name).map(|v| v.as_str().to_owned());
    assert_eq!(header("ce-id"), Some(format!("{run}-7")));
    assert_eq!(header("ce-source").as_deref(), Some("/contract"));
    assert_eq!(header("ce-type").as_deref(), Some("order.created"));
    assert_eq!(header("ce-specversion").as_deref(), Some("1.0"));
}

/// Beyond the contract: JetStream drops a retried delivery (same `Nats-Msg-Id`), and a
/// subject no stream captures is an error.
#[tokio::test]
async fn jetstream_dedups_retries_by_delivery_id() {
    use contract::{Destination as _, Harness as _};
    let mut dest = Nats { jetstream: true }.destination().await;
    let to_stream = dest.target(loopback());
    let sample = Sample::new(&unique("dedup"), 1);
    to_stream.deliver(sample.delivery(None)).await.unwrap();
    let mut retry = sample.delivery(None);
    retry.attempt = 2;
    to_stream.deliver(retry).await.unwrap();
    let Reader::JetStream { stream, .. } = &dest.reader else {
        unreachable!("a JetStream destination")
    };
    let js = async_nats::jetstream::new(dest.client.clone());
    let mut stream = js.get_stream(stream).await.unwrap();
    assert_eq!(stream.info().await.unwrap().state.messages, 1);
    assert_eq!(dest.next(1).await[0].body, sample.json.as_bytes());
    dest.finish().await;

    let no_stream = target(URL, &format!("sy.{}", unique("nostream")), true, loopback());
    let err = no_stream.deliver(sample.delivery(None)).await.unwrap_err();
    assert!(err.is_retryable(), "{err:?}");
}

#[test]
fn bad_configs_are_refused() {
    let parse = |v: Value| NatsConfig::parse(&v);
    assert!(parse(json!({"url": "http://127.0.0.1:4222", "subject": "s"})).is_err());
    assert!(parse(json!({"url": URL, "subject": ""})).is_err());
    assert!(parse(json!({"url": URL, "subject": "a b"})).is_err());
}
