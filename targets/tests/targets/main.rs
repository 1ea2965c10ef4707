//! Every target kind against the real service it delivers to (scripts/services.sh starts
//! them on this machine; an HTTP receiver runs in process). `contract` is what every kind
//! must meet; each kind's module runs it through its harness and keeps the tests of what
//! only that kind does. A service that is down fails the tests, naming it and its address.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod amqp;
mod contract;
mod http;
mod mqtt;
mod nats;
mod redis;
