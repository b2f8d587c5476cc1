//! Volumes (table `volumes`, migration 0009).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::runtime::volumes::{Populated, Volume};

use super::{query_err, Store, StoreError, TimedExt};

fn volume_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Volume, StoreError> {
    let name: String = row.get("name");
    let json = |what: &'static str, text: String| {
        serde_json::from_str(&text).map_err(|source| StoreError::Corrupt {
            what,
            id: name.clone(),
            source,
        })
    };
    let created_at: String = row.get("created_at");
    Ok(Volume {
        options: json("volume options", row.get("options"))?,
        labels: json("volume labels", row.get("labels"))?,
        created_at: DateTime::parse_from_rfc3339(&created_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        driver: row.get("driver"),
        anonymous: row.get::<i64, _>("anonymous") != 0,
        size_bytes: row
            .get::<Option<i64>, _>("size_bytes")
            .map(|n| n.max(0) as u64),
        device: row.get("device"),
        populated: Populated::from_i64(row.get("populated")),
        name: name.clone(),
    })
}

impl Store {
    /// Inserts a volume; a taken name is [`StoreError::NameInUse`].
    pub async fn insert_volume(&self, v: &Volume) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO volumes
             (name, driver, options, labels, created_at, anonymous, size_bytes, device, populated)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&v.name)
        .bind(&v.driver)
        .bind(serde_json::to_string(&v.options).expect("options serialise"))
        .bind(serde_json::to_string(&v.labels).expect("labels serialise"))
        .bind(v.created_at.to_rfc3339())
        .bind(i64::from(v.anonymous))
        .bind(v.size_bytes.map(|n| n as i64))
        .bind(&v.device)
        .bind(v.populated.as_i64())
        .execute(self.pool())
        .timed(&self.commits)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::NameInUse(v.name.clone()))
            }
            Err(e) => Err(query_err("insert volume")(e)),
        }
    }

    /// Every volume, by name.
    pub async fn volumes(&self) -> Result<Vec<Volume>, StoreError> {
        let rows = sqlx::query("SELECT * FROM volumes ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(query_err("list volumes"))?;
        rows.iter().map(volume_from_row).collect()
    }

    /// The volume named `name`.
    pub async fn volume(&self, name: &str) -> Result<Option<Volume>, StoreError> {
        let row = sqlx::query("SELECT * FROM volumes WHERE name = ?")
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(query_err("read volume"))?;
        row.as_ref().map(volume_from_row).transpose()
    }

    /// Records the copy-up state of a volume.
    pub async fn set_volume_populated(
        &self,
        name: &str,
        populated: Populated,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE volumes SET populated = ? WHERE name = ?")
            .bind(populated.as_i64())
            .bind(name)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("update volume"))?;
        Ok(())
    }

    /// Deletes a volume row.
    pub async fn delete_volume(&self, name: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM volumes WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("delete volume"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use sqlx::SqlitePool;

    use super::*;
    use crate::store::MIGRATOR;

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn volumes_round_trip(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let v = Volume {
            name: "data".into(),
            driver: "local".into(),
            options: BTreeMap::from([("size".into(), "100m".into())]),
            labels: BTreeMap::from([("app".into(), "web".into())]),
            created_at: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z")
                .unwrap()
                .with_timezone(&Utc),
            anonymous: false,
            size_bytes: Some(100 << 20),
            device: None,
            populated: Populated::Fresh,
        };
        store.insert_volume(&v).await.unwrap();
        assert!(matches!(
            store.insert_volume(&v).await,
            Err(StoreError::NameInUse(n)) if n == "data"
        ));
        assert_eq!(store.volume("data").await.unwrap(), Some(v.clone()));
        assert_eq!(store.volume("nosuch").await.unwrap(), None);
        store
            .set_volume_populated("data", Populated::Done)
            .await
            .unwrap();
        let got = store.volumes().await.unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].populated, Populated::Done);
        store.delete_volume("data").await.unwrap();
        assert!(store.volumes().await.unwrap().is_empty());
    }
}
