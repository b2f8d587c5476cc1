//! The event bus: every state change is appended to the store (with its `seq`) and then
//! published live on a tokio broadcast channel.
//!
//! Appends are serialised by a mutex that is held across "insert, then send", so the
//! live channel carries events in `seq` order. A subscriber that subscribes *before*
//! replaying from the store, then skips live events with `seq <= last replayed`, sees
//! every event exactly once (no gap, no duplicate at the seam). [`EventBus::follow`]
//! does exactly that, reading the store a page at a time ([`REPLAY_PAGE`] events), so
//! a replay of a long log holds one page, never the whole log.

use std::collections::BTreeMap;
use std::sync::Arc;

use boxd_types::Event;
use chrono::Utc;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, mpsc, Mutex};
use tokio_stream::wrappers::ReceiverStream;

use crate::store::{EventFilter, Store, StoreError};

/// Capacity of the live channel; a subscriber that lags further is told so (and can
/// resume from the store with its last `seq`).
const LIVE_CAPACITY: usize = 4096;
/// Stored events read at a time by a replay.
pub const REPLAY_PAGE: usize = 500;
/// Events waiting for a slow subscriber before the replay (or the live relay) waits.
const FOLLOW_BUFFER: usize = 256;

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
        Self::with_capacity(store, LIVE_CAPACITY)
    }

    /// A bus whose live channel holds `capacity` events per subscriber (tests make it
    /// small to see a subscriber lag).
    pub fn with_capacity(store: Store, capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(capacity);
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

    /// Stored events from `filter` (when it has `after_seq` or `since_time`; without,
    /// only events from now on, as `docker events`), then live ones, each once, in
    /// `seq` order, until `until_seq` / `until_time` or the receiver is dropped. `wants`
    /// filters further (type, action). The first page is read before this returns, so
    /// a store failure is an error rather than an empty stream.
    pub async fn follow(
        &self,
        filter: EventFilter,
        wants: impl Fn(&Event) -> bool + Send + Sync + 'static,
    ) -> Result<ReceiverStream<Event>, StoreError> {
        self.follow_paged(filter, wants, REPLAY_PAGE, FOLLOW_BUFFER)
            .await
    }

    /// [`Self::follow`] with the page and buffer sizes given (tests).
    pub(crate) async fn follow_paged(
        &self,
        filter: EventFilter,
        wants: impl Fn(&Event) -> bool + Send + Sync + 'static,
        page: usize,
        buffer: usize,
    ) -> Result<ReceiverStream<Event>, StoreError> {
        let page = page.max(1);
        // Subscribed first: every event stored after `head` is read comes live too.
        let live = self.tx.subscribe();
        let head = self.store.last_event_seq().await?;
        let replay = filter.after_seq.is_some() || filter.since_time.is_some();
        let first = if replay {
            self.store.events_page(&filter, page_limit(page)).await?
        } else {
            Vec::new()
        };
        let (tx, rx) = mpsc::channel(buffer.max(1));
        let follower = Follower {
            store: self.store.clone(),
            filter,
            wants: Box::new(wants),
            page,
            tx,
            last_seq: 0,
        };
        tokio::spawn(follower.run(live, head, replay.then_some(first)));
        Ok(ReceiverStream::new(rx))
    }
}

fn page_limit(page: usize) -> i64 {
    i64::try_from(page).unwrap_or(i64::MAX)
}

/// One subscriber's replay-then-live relay.
struct Follower {
    store: Store,
    filter: EventFilter,
    wants: Box<dyn Fn(&Event) -> bool + Send + Sync>,
    page: usize,
    tx: mpsc::Sender<Event>,
    /// The highest `seq` already dealt with (sent, or known not to match).
    last_seq: i64,
}

/// Whether to go on relaying.
enum Next {
    Go,
    Stop,
}

impl Follower {
    async fn run(
        mut self,
        mut live: broadcast::Receiver<Event>,
        head: i64,
        first: Option<Vec<Event>>,
    ) {
        self.last_seq = self.filter.after_seq.unwrap_or(0);
        if let Some(first) = first {
            if let Next::Stop = self.replay(first).await {
                return;
            }
        }
        // Everything stored up to `head` was there before the replay started, so the
        // replay has sent what of it matches; live copies of it are duplicates.
        self.last_seq = self.last_seq.max(head);
        if self.done() {
            return;
        }
        let deadline = self.filter.until_time;
        loop {
            let wait = deadline.map(|t| (t - Utc::now()).to_std().unwrap_or_default());
            let next = tokio::select! {
                r = live.recv() => r,
                _ = self.tx.closed() => return,
                _ = sleep_or_forever(wait) => return,
            };
            let step = match next {
                Ok(e) => self.offer(e).await,
                // What the channel dropped is in the store: page it from there, and
                // skip the live copies of what the pages sent.
                Err(RecvError::Lagged(_)) => match self.page_after(self.last_seq).await {
                    Some(first) => self.replay(first).await,
                    None => Next::Stop,
                },
                Err(RecvError::Closed) => Next::Stop,
            };
            if let Next::Stop = step {
                return;
            }
        }
    }

    /// Sends `first` and the pages after it until a short page.
    async fn replay(&mut self, first: Vec<Event>) -> Next {
        let mut batch = first;
        loop {
            let full = batch.len() >= self.page;
            for e in batch {
                if let Next::Stop = self.offer(e).await {
                    return Next::Stop;
                }
            }
            if !full {
                return Next::Go;
            }
            batch = match self.page_after(self.last_seq).await {
                Some(b) => b,
                None => return Next::Stop,
            };
        }
    }

    async fn page_after(&self, seq: i64) -> Option<Vec<Event>> {
        let filter = EventFilter {
            after_seq: Some(seq),
            ..self.filter.clone()
        };
        match self.store.events_page(&filter, page_limit(self.page)).await {
            Ok(page) => Some(page),
            Err(err) => {
                tracing::warn!(error = %crate::error_chain(&err), "event replay failed; closing the stream");
                None
            }
        }
    }

    /// Sends `e` unless already dealt with or filtered out.
    async fn offer(&mut self, e: Event) -> Next {
        if e.seq <= self.last_seq {
            return Next::Go;
        }
        if self.filter.until_seq.is_some_and(|n| e.seq > n) {
            return Next::Stop;
        }
        self.last_seq = e.seq;
        let actor_ok = self.filter.actor_id.as_deref().is_none_or(|id| id == e.id);
        if actor_ok && (self.wants)(&e) && self.tx.send(e).await.is_err() {
            return Next::Stop;
        }
        if self.done() {
            return Next::Stop;
        }
        Next::Go
    }

    fn done(&self) -> bool {
        self.filter.until_seq.is_some_and(|n| self.last_seq >= n)
            || self.filter.until_time.is_some_and(|t| t <= Utc::now())
    }
}

async fn sleep_or_forever(d: Option<std::time::Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATOR;
    use futures_util::StreamExt;
    use sqlx::SqlitePool;
    use std::time::Duration;

    async fn publish(bus: &EventBus, id: &str) -> i64 {
        bus.publish("container", "start", id, BTreeMap::new())
            .await
            .unwrap()
            .seq
    }

    async fn seqs(stream: ReceiverStream<Event>) -> Vec<i64> {
        tokio::time::timeout(Duration::from_secs(10), stream.map(|e| e.seq).collect())
            .await
            .expect("the stream ends at until")
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn replay_pages_then_live_without_gap_or_duplicate(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        // A live channel of 2 and a subscriber that reads nothing for a while: it lags
        // and is refilled from the store, page by page.
        let bus = EventBus::with_capacity(store, 2);
        let mut all = Vec::new();
        for _ in 0..10 {
            all.push(publish(&bus, "c").await);
        }
        let filter = EventFilter {
            after_seq: Some(0),
            until_seq: Some(all[0] + 29),
            ..Default::default()
        };
        let stream = bus.follow_paged(filter, |_| true, 3, 1).await.unwrap();
        for _ in 0..20 {
            all.push(publish(&bus, "c").await);
        }
        assert_eq!(seqs(stream).await, all);

        // From the middle, with the pages ending exactly at the seam.
        let filter = EventFilter {
            after_seq: Some(all[23]),
            until_seq: Some(all[29] + 3),
            ..Default::default()
        };
        let stream = bus.follow_paged(filter, |_| true, 3, 64).await.unwrap();
        let mut more = Vec::new();
        for _ in 0..3 {
            more.push(publish(&bus, "c").await);
        }
        let want: Vec<i64> = all[24..].iter().chain(&more).copied().collect();
        assert_eq!(seqs(stream).await, want);
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn replay_filters_by_actor_and_without_since_sends_only_new(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let bus = EventBus::with_capacity(store, 2);
        let mut mine = Vec::new();
        for i in 0..12 {
            let id = if i % 3 == 0 { "mine" } else { "other" };
            let seq = publish(&bus, id).await;
            if id == "mine" {
                mine.push(seq);
            }
        }
        // 12 events now and 6 later: the streams end at the last.
        let since = EventFilter {
            after_seq: Some(0),
            actor_id: Some("mine".into()),
            until_seq: Some(mine[0] + 17),
            ..Default::default()
        };
        let replay = bus.follow_paged(since, |_| true, 2, 1).await.unwrap();
        let only_new = EventFilter {
            until_seq: Some(mine[0] + 17),
            ..Default::default()
        };
        let new = bus.follow_paged(only_new, |_| true, 2, 64).await.unwrap();
        let mut later = Vec::new();
        for i in 0..6 {
            let id = if i % 2 == 0 { "mine" } else { "other" };
            let seq = publish(&bus, id).await;
            later.push(seq);
            if id == "mine" {
                mine.push(seq);
            }
        }
        assert_eq!(seqs(replay).await, mine);
        assert_eq!(seqs(new).await, later);
    }
}
