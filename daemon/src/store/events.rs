//! The event log: append with a monotonic `seq`, replay by range, a page at a time.

use std::collections::BTreeMap;

use boxd_types::Event;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{query_err, Store, StoreError, TimedExt};

#[derive(FromRow)]
struct Row {
    seq: i64,
    time: DateTime<Utc>,
    #[sqlx(rename = "type")]
    kind: String,
    action: String,
    actor_id: String,
    attributes: String,
}

impl Row {
    fn into_event(self) -> Event {
        Event {
            seq: self.seq,
            time: self.time,
            kind: self.kind,
            action: self.action,
            id: self.actor_id,
            // Attributes are written by this module only; a corrupt one is shown empty
            // rather than hiding the event.
            attributes: serde_json::from_str(&self.attributes).unwrap_or_default(),
        }
    }
}

/// Which stored events to replay.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Only events with `seq > after_seq`.
    pub after_seq: Option<i64>,
    /// Only events at or after this time.
    pub since_time: Option<DateTime<Utc>>,
    /// Only events with `seq <= until_seq`.
    pub until_seq: Option<i64>,
    /// Only events at or before this time.
    pub until_time: Option<DateTime<Utc>>,
    /// Only events of this actor id.
    pub actor_id: Option<String>,
}

impl Store {
    /// Appends an event and returns it with its `seq`.
    pub async fn append_event(
        &self,
        kind: &str,
        action: &str,
        actor_id: &str,
        attributes: BTreeMap<String, String>,
    ) -> Result<Event, StoreError> {
        let time = Utc::now();
        let attrs = serde_json::to_string(&attributes).expect("attributes serialise");
        let (seq,): (i64,) = sqlx::query_as(
            "INSERT INTO events (time, type, action, actor_id, attributes) VALUES (?, ?, ?, ?, ?) \
             RETURNING seq",
        )
        .bind(time)
        .bind(kind)
        .bind(action)
        .bind(actor_id)
        .bind(attrs)
        .fetch_one(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("append event"))?;
        Ok(Event {
            seq,
            time,
            kind: kind.to_owned(),
            action: action.to_owned(),
            id: actor_id.to_owned(),
            attributes,
        })
    }

    /// The highest `seq` stored (0 when there is none).
    pub async fn last_event_seq(&self) -> Result<i64, StoreError> {
        let (seq,): (Option<i64>,) = sqlx::query_as("SELECT max(seq) FROM events")
            .fetch_one(self.pool())
            .await
            .map_err(query_err("read last event seq"))?;
        Ok(seq.unwrap_or(0))
    }

    /// Stored events matching `filter`, in `seq` order.
    pub async fn events(&self, filter: &EventFilter) -> Result<Vec<Event>, StoreError> {
        self.events_page(filter, i64::MAX).await
    }

    /// The first `limit` stored events matching `filter`, in `seq` order: a replay
    /// reads page after page (`after_seq` = the last `seq` of the previous page), so it
    /// never holds more than one page however long the log is.
    pub async fn events_page(
        &self,
        filter: &EventFilter,
        limit: i64,
    ) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT seq, time, type, action, actor_id, attributes FROM events \
             WHERE (?1 IS NULL OR seq > ?1) AND (?2 IS NULL OR time >= ?2) \
             AND (?3 IS NULL OR seq <= ?3) AND (?4 IS NULL OR time <= ?4) \
             AND (?5 IS NULL OR actor_id = ?5) ORDER BY seq LIMIT ?6",
        )
        .bind(filter.after_seq)
        .bind(filter.since_time)
        .bind(filter.until_seq)
        .bind(filter.until_time)
        .bind(filter.actor_id.as_deref())
        .bind(limit)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("read events"))?;
        Ok(rows.into_iter().map(Row::into_event).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATOR;
    use sqlx::SqlitePool;

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn append_and_filter(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let mut attrs = BTreeMap::new();
        attrs.insert("name".to_owned(), "web".to_owned());
        let e1 = store
            .append_event("container", "create", "c1", attrs.clone())
            .await
            .unwrap();
        let e2 = store
            .append_event("container", "start", "c1", BTreeMap::new())
            .await
            .unwrap();
        let e3 = store
            .append_event("container", "create", "c2", BTreeMap::new())
            .await
            .unwrap();
        assert!(e1.seq < e2.seq && e2.seq < e3.seq);

        let all = store.events(&EventFilter::default()).await.unwrap();
        assert_eq!(
            all.iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![e1.seq, e2.seq, e3.seq]
        );
        assert_eq!(all[0].attributes, attrs);

        let after = EventFilter {
            after_seq: Some(e1.seq),
            ..Default::default()
        };
        assert_eq!(store.events(&after).await.unwrap().len(), 2);
        let until = EventFilter {
            until_seq: Some(e2.seq),
            ..Default::default()
        };
        assert_eq!(store.events(&until).await.unwrap().len(), 2);
        let c1 = EventFilter {
            actor_id: Some("c1".into()),
            ..Default::default()
        };
        assert_eq!(store.events(&c1).await.unwrap().len(), 2);
        assert_eq!(store.last_event_seq().await.unwrap(), e3.seq);
        let future = EventFilter {
            since_time: Some(Utc::now() + chrono::Duration::hours(1)),
            ..Default::default()
        };
        assert!(store.events(&future).await.unwrap().is_empty());

        let page = store.events_page(&EventFilter::default(), 2).await.unwrap();
        assert_eq!(
            page.iter().map(|e| e.seq).collect::<Vec<_>>(),
            [e1.seq, e2.seq]
        );
        let next = EventFilter {
            after_seq: Some(e2.seq),
            ..Default::default()
        };
        let page = store.events_page(&next, 2).await.unwrap();
        assert_eq!(page.iter().map(|e| e.seq).collect::<Vec<_>>(), [e3.seq]);
    }
}
