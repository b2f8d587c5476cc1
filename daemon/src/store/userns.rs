//! User namespace slots: which container holds which 65536-id slot of the daemon's
//! `userns_range` (table `userns_slots`, migration 0005).
//!
//! A slot is taken in the same transaction that inserts the container's row, so a
//! crash leaves either both or neither; it is freed by the row's delete (ON DELETE
//! CASCADE), so there is nothing for reconcile to undo.

use crate::runtime::spec::{Container, ContainerConfig};

use super::{query_err, Store, StoreError, TimedExt};

impl Store {
    /// Inserts `c` holding the lowest free slot below `slots`; its config is the one
    /// `config_for(slot)` gives (the maps depend on the slot). Returns the slot.
    pub async fn insert_container_with_userns_slot(
        &self,
        c: &Container,
        slots: u32,
        config_for: impl FnOnce(u32) -> ContainerConfig,
    ) -> Result<u32, StoreError> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query_err("begin transaction"))?;
        // The first statement writes, so the transaction holds SQLite's write lock from
        // here on and the slot read below cannot race another create.
        super::containers::insert_container_row(&mut *tx, c).await?;
        let used: Vec<i64> = sqlx::query_scalar("SELECT slot FROM userns_slots ORDER BY slot")
            .fetch_all(&mut *tx)
            .await
            .map_err(query_err("read userns slots"))?;
        let slot = lowest_free(&used, slots).ok_or(StoreError::NoUsernsSlot(slots))?;
        sqlx::query("INSERT INTO userns_slots (slot, container_id) VALUES (?, ?)")
            .bind(i64::from(slot))
            .bind(&c.id)
            .execute(&mut *tx)
            .await
            .map_err(query_err("take userns slot"))?;
        let config = serde_json::to_string(&config_for(slot)).expect("config serialises");
        sqlx::query("UPDATE containers SET config = ? WHERE id = ?")
            .bind(config)
            .bind(&c.id)
            .execute(&mut *tx)
            .await
            .map_err(query_err("record userns maps"))?;
        tx.commit()
            .timed(&self.commits)
            .await
            .map_err(query_err("commit container"))?;
        Ok(slot)
    }

    /// The slot `id` holds, if any.
    pub async fn userns_slot(&self, id: &str) -> Result<Option<u32>, StoreError> {
        let slot: Option<i64> =
            sqlx::query_scalar("SELECT slot FROM userns_slots WHERE container_id = ?")
                .bind(id)
                .fetch_optional(self.pool())
                .await
                .map_err(query_err("read userns slot"))?;
        Ok(slot.and_then(|s| u32::try_from(s).ok()))
    }
}

/// The smallest slot below `slots` not in `used` (sorted).
fn lowest_free(used: &[i64], slots: u32) -> Option<u32> {
    let mut next: u32 = 0;
    for &u in used {
        if u > i64::from(next) {
            break;
        }
        if u == i64::from(next) {
            next = next.checked_add(1)?;
        }
    }
    (next < slots).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::spec::ContainerState;
    use chrono::Utc;

    fn container(id: &str, name: &str) -> Container {
        Container {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:x".into(),
            state: ContainerState::Created,
            paused: false,
            pid: None,
            exit_code: None,
            exit_signal: None,
            oom_killed: false,
            created_at: Utc::now(),
            started_at: None,
            finished_at: None,
            error: None,
            config: ContainerConfig::default(),
            resources: Default::default(),
            restart_policy: Default::default(),
            restart_count: 0,
            next_restart_at: None,
        }
    }

    #[test]
    fn lowest_free_fills_holes() {
        assert_eq!(lowest_free(&[], 4), Some(0));
        assert_eq!(lowest_free(&[0, 1, 3], 4), Some(2));
        assert_eq!(lowest_free(&[0, 1, 2, 3], 4), None);
        assert_eq!(lowest_free(&[1], 4), Some(0));
    }

    #[sqlx::test(migrator = "crate::store::MIGRATOR")]
    async fn slots_are_exclusive_and_freed_with_the_row(pool: sqlx::SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        store
            .insert_image("sha256:x", 10, Utc::now(), "{}")
            .await
            .unwrap();
        let with_slot = |slot: u32| ContainerConfig {
            hostname: format!("slot{slot}"),
            ..Default::default()
        };
        let a = store
            .insert_container_with_userns_slot(&container("a", "a"), 2, with_slot)
            .await
            .unwrap();
        let b = store
            .insert_container_with_userns_slot(&container("b", "b"), 2, with_slot)
            .await
            .unwrap();
        assert_eq!((a, b), (0, 1));
        assert_eq!(
            store
                .container("b")
                .await
                .unwrap()
                .unwrap()
                .container
                .config
                .hostname,
            "slot1"
        );
        // Full: refused, and the row is not left behind.
        let e = store
            .insert_container_with_userns_slot(&container("c", "c"), 2, with_slot)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NoUsernsSlot(2)), "{e:?}");
        assert!(store.container("c").await.unwrap().is_none());
        // A name clash is reported as such, and takes no slot.
        let e = store
            .insert_container_with_userns_slot(&container("d", "a"), 3, with_slot)
            .await
            .unwrap_err();
        assert!(matches!(e, StoreError::NameInUse(_)), "{e:?}");
        // Deleting the row frees its slot for the next one.
        store.delete_container("a").await.unwrap();
        assert_eq!(store.userns_slot("a").await.unwrap(), None);
        let c = store
            .insert_container_with_userns_slot(&container("c", "c"), 2, with_slot)
            .await
            .unwrap();
        assert_eq!(c, 0);
        assert_eq!(store.userns_slot("c").await.unwrap(), Some(0));
    }
}
