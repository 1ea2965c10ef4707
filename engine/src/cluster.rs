//! Several nodes sharing the buses (bus logs in JetStream, one metadata store): each
//! (bus, rule, target) is delivered by one node at a time, the holder of its lease.
//!
//! Every [`Membership::lease`]/4 each node heartbeats, renews the leases it holds, and
//! balances: with `n` live nodes (heard from within a lease) and `w` subscriptions wanted by
//! the rules, each node holds at most `⌈w / n⌉`. It takes leases no node holds (never
//! held, expired, or given up) while below its share, and gives up what is above it. A
//! subscription given up is stopped first (its worker writes everything it holds to the
//! ledger), then its lease is deleted; the node taking it loads that state and carries on —
//! the same hand-over as a rule edit on one node, so partition order and attempt counts
//! hold. A node that dies holds its leases until they expire (`--lease-seconds`); then the
//! others take them and resume from the ledger: deliveries in flight at the death are made
//! again, nothing is lost. Every ledger commit of a worker checks, in its transaction, that
//! its node still holds the lease (the fence), so a node that stalled past its lease writes
//! nothing more for it.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard_core::time::now_ms;

use crate::buses::Buses;
use crate::dispatch::ownership::{Ownership, SubId, is_claim};
use crate::meta::MetaStore;

/// This node in the cluster.
pub struct Membership {
    pub ownership: Arc<Ownership>,
    /// How long a lease lasts unless renewed: a dead node's subscriptions move after this.
    pub lease: Duration,
    /// Set when the rules changed: new subscriptions are taken up at once, not at the next
    /// tick.
    pub wake: tokio::sync::Notify,
}

impl Membership {
    fn node(&self) -> &str {
        self.ownership.node()
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Heartbeats, renews and balances, every quarter lease and when woken, until the task is
/// aborted.
pub async fn run(meta: MetaStore, buses: &Buses, membership: &Membership) {
    let mut tick = tokio::time::interval((membership.lease / 4).max(Duration::from_millis(100)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = membership.wake.notified() => {}
        }
        if let Err(e) = step(&meta, buses, membership).await {
            tracing::warn!(error = %e, "cluster membership step failed; trying again");
        }
    }
}

/// Every (bus, rule, target) the rules want delivered, in a stable order.
fn wanted(buses: &Buses) -> BTreeSet<SubId> {
    let mut out = BTreeSet::new();
    for bus in buses.all() {
        for (rule, targets) in bus.rules().active() {
            for t in targets {
                out.insert(SubId::new(&bus.settings.name, &rule.name, &t.spec.id));
            }
        }
    }
    out
}

async fn step(meta: &MetaStore, buses: &Buses, m: &Membership) -> Result<(), sqlx::Error> {
    let now = now_ms();
    let until = now.saturating_add(m.lease_ms());
    meta.heartbeat(m.node(), now).await?;
    let live = meta
        .live_nodes(now.saturating_sub(m.lease_ms()))
        .await?
        .len()
        .max(1);
    // (Renewing extends this node's replay claims too; they are not balanced.)
    let mut mine: HashSet<SubId> = meta
        .renew_leases(m.node(), until)
        .await?
        .into_iter()
        .filter(|l| !is_claim(l))
        .collect();
    let wanted = wanted(buses);
    let share = wanted.len().div_ceil(live);
    // Held but no longer wanted (rule deleted or disabled): its worker is stopped already.
    let mut giving_up: Vec<SubId> = mine
        .iter()
        .filter(|s| !wanted.contains(s))
        .cloned()
        .collect();
    for s in &giving_up {
        mine.remove(s);
    }
    if mine.len() < share {
        let held: HashSet<SubId> = meta.held_leases(now).await?.into_iter().collect();
        // Start at a place of this node's own, so nodes starting together spread out.
        let free: Vec<&SubId> = wanted.iter().filter(|s| !held.contains(s)).collect();
        let spread = m.node().bytes().fold(0usize, |h, b| {
            h.wrapping_mul(31).wrapping_add(usize::from(b))
        });
        let start = spread.checked_rem(free.len()).unwrap_or(0);
        for s in free.iter().cycle().skip(start).take(free.len()) {
            if mine.len() >= share {
                break;
            }
            if meta.acquire_lease(m.node(), s, now, until).await? {
                mine.insert((*s).clone());
            }
        }
    }
    if mine.len() > share {
        let mut extra: Vec<SubId> = mine.iter().cloned().collect();
        extra.sort();
        for s in extra.into_iter().rev().take(mine.len() - share) {
            mine.remove(&s);
            giving_up.push(s);
        }
    }
    // Replays whose node stopped holding their claim (it died) go on here.
    for bus in buses.all() {
        crate::dispatch::replay::take_over(&bus.dispatch, &bus.rules).await;
    }
    let before = m.ownership.owned();
    if before == mine && giving_up.is_empty() {
        return Ok(());
    }
    let changed: BTreeSet<String> = before
        .symmetric_difference(&mine)
        .map(|s| s.bus.clone())
        .chain(giving_up.iter().map(|s| s.bus.clone()))
        .collect();
    m.ownership.set(mine);
    for name in changed {
        if let Some(bus) = buses.get(&name) {
            bus.resync().await;
        }
    }
    // Given up once its worker has written what it held (in the background: renewals must
    // not wait for a slow delivery to finish).
    for s in giving_up {
        let (meta, node) = (meta.clone(), m.node().to_owned());
        let dispatch = buses.get(&s.bus).map(|b| b.dispatch.clone());
        tokio::spawn(async move {
            if let Some(dispatch) = dispatch {
                dispatch.retired(&s.rule, &s.target).await;
            }
            if let Err(e) = meta.release_lease(&node, &s).await {
                tracing::warn!(bus = %s.bus, rule = %s.rule, target = %s.target, error = %e, "giving up a delivery lease failed; it expires instead");
            }
        });
    }
    Ok(())
}

/// A node stopping cleanly (its workers have written everything): its leases go at once,
/// so the others take its subscriptions without waiting for them to expire.
pub async fn leave(meta: &MetaStore, m: &Membership) {
    if let Err(e) = meta.release_all_leases(m.node()).await {
        tracing::warn!(error = %e, "giving up delivery leases at shutdown failed; they expire instead");
    }
    if let Err(e) = meta.leave(m.node()).await {
        tracing::warn!(error = %e, "leaving the cluster failed");
    }
}
