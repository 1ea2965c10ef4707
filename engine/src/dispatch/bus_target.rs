//! The `bus` target: forwards an event to another bus of this server, through the
//! engine's [`Publisher`], counting hops against forwarding loops. The forwarded event's
//! `id` is the delivery's id (its own id kept as `forwardedid`): every delivery is stored
//! on the other bus — two rules forwarding one event store two — while a retry of the same
//! delivery is the other bus's duplicate. A transform that makes a whole CloudEvent names
//! it itself.

use async_trait::async_trait;
use serde_json::Value;
use switchyard_targets::{Delivered, Delivery, DeliveryError, Target};

use super::ports::Publisher;

/// Extension that counts bus-to-bus hops, against forwarding loops.
const HOPS: &str = "switchyardhops";
const MAX_HOPS: u64 = 8;

/// The `bus` target: forwards the (transformed) event to another bus of this server.
pub struct BusTarget {
    publish: Publisher,
    bus: String,
}

impl BusTarget {
    pub fn new(publish: Publisher, bus: &str) -> BusTarget {
        BusTarget {
            publish,
            bus: bus.to_owned(),
        }
    }
}

#[async_trait]
impl Target for BusTarget {
    async fn deliver(&self, d: Delivery<'_>) -> Result<Delivered, DeliveryError> {
        // A transform that produced a CloudEvent forwards that, under the id it gave;
        // anything else becomes the data of the original event, under the delivery's id.
        let named = d.payload.is_some_and(|p| p.get("specversion").is_some());
        let mut event = match d.payload {
            Some(p) if named => p.clone(),
            Some(p) => {
                let mut e = d.event.clone();
                if let Some(obj) = e.as_object_mut() {
                    obj.remove("data_base64");
                    obj.insert("data".into(), p.clone());
                    obj.insert("datacontenttype".into(), Value::from("application/json"));
                }
                e
            }
            None => d.event.clone(),
        };
        let hops = event.get(HOPS).and_then(Value::as_u64).unwrap_or(0) + 1;
        if hops > MAX_HOPS {
            return Err(DeliveryError::permanent(format!(
                "forwarding loop: the event has crossed {MAX_HOPS} buses already"
            )));
        }
        if let Some(obj) = event.as_object_mut() {
            obj.insert(HOPS.into(), Value::from(hops));
            if !named && let Some(first) = obj.insert("id".into(), Value::from(d.delivery_id)) {
                obj.insert("forwardedid".into(), first);
            }
        }
        self.publish.publish(&self.bus, event).await?;
        Ok(Delivered {
            status: None,
            output: None,
        })
    }
}
