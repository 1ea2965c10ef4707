//! Which subscriptions this node delivers, when several nodes share the buses (a JetStream
//! log and one metadata store). Each (bus, rule, target) is delivered by one node at a time:
//! the one holding its lease in the metadata store (`crate::cluster` takes, renews and gives
//! up leases). A node delivers only what it owns here, and its workers' ledger commits are
//! fenced by the lease, so a node that lost one (stalled past its expiry) writes nothing
//! more for it. Without an `Ownership`, a node delivers everything (one node).

use std::collections::HashSet;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use async_trait::async_trait;

/// Claims on work one node at a time does (a replay): leases beside the subscriptions'.
#[async_trait]
pub trait Claims: Send + Sync {
    /// Takes or extends `what` for `node` for `lease`; `false` if another node holds it (or
    /// the store cannot be asked).
    async fn claim(&self, node: &str, what: &SubId, lease: Duration) -> bool;
    /// Gives `what` up.
    async fn unclaim(&self, node: &str, what: &SubId);
}

/// One subscription, across buses.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubId {
    pub bus: String,
    pub rule: String,
    pub target: String,
}

impl SubId {
    pub fn new(bus: &str, rule: &str, target: &str) -> SubId {
        SubId {
            bus: bus.to_owned(),
            rule: rule.to_owned(),
            target: target.to_owned(),
        }
    }
}

pub struct Ownership {
    node: String,
    owned: RwLock<HashSet<SubId>>,
    /// Buses with ledger entries written here for subscriptions another node delivers (a
    /// redrive, a replay): the engine tells the other nodes, whose workers then take them.
    written: tokio::sync::mpsc::UnboundedSender<String>,
    claims: Arc<dyn Claims>,
    lease: Duration,
}

/// The claim on running replay `id` of `bus` (its rule part cannot be a rule's name).
pub fn replay_claim(bus: &str, id: &str) -> SubId {
    SubId::new(bus, &format!("replay:{id}"), "")
}

/// Whether a lease is a replay's claim rather than a subscription's.
pub fn is_claim(lease: &SubId) -> bool {
    lease.rule.starts_with("replay:")
}

impl Ownership {
    /// Also returns where [`Ownership::written_for_others`] reports.
    pub fn new(
        node: String,
        claims: Arc<dyn Claims>,
        lease: Duration,
    ) -> (Ownership, tokio::sync::mpsc::UnboundedReceiver<String>) {
        let (written, reports) = tokio::sync::mpsc::unbounded_channel();
        let ownership = Ownership {
            node,
            owned: RwLock::new(HashSet::new()),
            written,
            claims,
            lease,
        };
        (ownership, reports)
    }

    /// Takes or extends the claim `what` for this node.
    pub async fn claim(&self, what: &SubId) -> bool {
        self.claims.claim(&self.node, what, self.lease).await
    }

    pub async fn unclaim(&self, what: &SubId) {
        self.claims.unclaim(&self.node, what).await;
    }

    /// Ledger entries of `bus` were written for subscriptions other nodes deliver.
    pub fn written_for_others(&self, bus: &str) {
        let _ = self.written.send(bus.to_owned());
    }

    /// This node's id, as its leases name it.
    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn owns(&self, bus: &str, rule: &str, target: &str) -> bool {
        self.owned
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&SubId::new(bus, rule, target))
    }

    pub fn owned(&self) -> HashSet<SubId> {
        self.owned.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn set(&self, owned: HashSet<SubId>) {
        *self.owned.write().unwrap_or_else(|p| p.into_inner()) = owned;
    }
}
