//! The event bus: every state change is appended to the store (with its `seq`) and then
//! published live on a tokio broadcast channel.
//!
//! Appends are serialised by a mutex that is held across "insert, then send", so the
//! live channel carries events in `seq` order. A subscriber that subscribes *before*
//! replaying from the store, then skips live events with `seq <= last replayed`, sees
//! every event exactly once (no gap, no duplicate at the seam).

use std::collections::BTreeMap;
use std::sync::Arc;

use boxd_types::Event;
use tokio::sync::{broadcast, Mutex};

use crate::store::{Store, StoreError};

/// Capacity of the live channel; a subscriber that lags further is told so (and can
/// resume from the store with its last `seq`).
const LIVE_CAPACITY: usize = 4096;

/// Publishes and fans out events.
#[derive(Clone)]
pub struct EventBus {
    store: Store,
    tx: broadcast::Sender<Event>,
    order: Arc<Mutex<()>>,
}

impl EventBus {
    /// A bus writing to `store`.
    pub fn new(store: Store) -> Self {
        let (tx, _) = broadcast::channel(LIVE_CAPACITY);
        EventBus {
            store,
            tx,
            order: Arc::new(Mutex::new(())),
        }
    }

    /// Records and publishes an event.
    pub async fn publish(
        &self,
        kind: &str,
        action: &str,
        id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<Event, StoreError> {
        let _order = self.order.lock().await;
        let event = self
            .store
            .append_event(kind, action, id, attributes)
            .await?;
        // No receiver is not an error: nobody is listening right now.
        let _ = self.tx.send(event.clone());
        Ok(event)
    }

    /// Publishes, logging instead of failing: for events that must not undo the
    /// operation they describe (the operation already happened).
    pub async fn emit(&self, kind: &str, action: &str, id: &str, attrs: &[(&str, String)]) {
        let attributes = attrs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        if let Err(err) = self.publish(kind, action, id, attributes).await {
            tracing::error!(error = %crate::error_chain(&err), kind, action, id, "failed to record event");
        }
    }

    /// A live receiver; subscribe before replaying from the store.
    pub fn subscribe(&self) -> broadcast::Receiver<Event> {
        self.tx.subscribe()
    }
}
