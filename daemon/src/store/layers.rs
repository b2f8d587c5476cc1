//! Layer rows, image-to-layer links, and the queries of image lifecycle (record a
//! pulled or loaded image at once, untag, find what prune may remove).

use boxd_types::Image;
use chrono::{DateTime, Utc};

use super::images::StoredConfig;
use super::{query_err, Store, StoreError, TimedExt};

/// A layer of an image, as recorded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LayerRow {
    /// Chain id (the key).
    pub chain_id: String,
    /// diff_id.
    pub diff_id: String,
    /// Bytes unpacked.
    pub size: u64,
}

impl Store {
    /// Records an image made of `layers` (bottom first) with its names, all at once:
    /// layer rows, the image row, its links to the layers, and its tags and repo
    /// digests (moved from any image that had them; an existing image keeps the ones
    /// it had).
    pub async fn record_image(
        &self,
        image: &Image,
        layers: &[LayerRow],
        created_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query_err("begin image record"))?;
        let mut parent: Option<&str> = None;
        for l in layers {
            sqlx::query(
                "INSERT INTO layers (chain_id, diff_id, parent, size, created_at) \
                 VALUES (?, ?, ?, ?, ?) ON CONFLICT(chain_id) DO NOTHING",
            )
            .bind(&l.chain_id)
            .bind(&l.diff_id)
            .bind(parent)
            .bind(i64::try_from(l.size).unwrap_or(i64::MAX))
            .bind(created_at)
            .execute(&mut *tx)
            .await
            .map_err(query_err("insert layer"))?;
            parent = Some(&l.chain_id);
        }
        // The id is the config blob's digest, so a stored row came from the same config;
        // its `config` column is rewritten all the same, so that an image stored by an
        // older boxd gains what is now read from the config (exposed ports) when it is
        // pulled or loaded again.
        sqlx::query(
            "INSERT INTO images (id, size, created_at, config) VALUES (?, ?, ?, ?) \
             ON CONFLICT(id) DO UPDATE SET config = excluded.config",
        )
        .bind(&image.id)
        .bind(i64::try_from(image.size).unwrap_or(i64::MAX))
        .bind(created_at)
        .bind(StoredConfig::json_of(image))
        .execute(&mut *tx)
        .await
        .map_err(query_err("insert image"))?;
        for (pos, l) in layers.iter().enumerate() {
            sqlx::query(
                "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?, ?, ?) \
                 ON CONFLICT DO NOTHING",
            )
            .bind(&image.id)
            .bind(pos as i64)
            .bind(&l.chain_id)
            .execute(&mut *tx)
            .await
            .map_err(query_err("insert image layer"))?;
        }
        // A name moves to this image from any image that had it, as `docker tag` and
        // a repeated pull do.
        for tag in &image.tags {
            sqlx::query(
                "INSERT INTO image_tags (name, image_id) VALUES (?, ?) \
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            )
            .bind(tag)
            .bind(&image.id)
            .execute(&mut *tx)
            .await
            .map_err(query_err("tag image"))?;
        }
        for digest in &image.repo_digests {
            sqlx::query(
                "INSERT INTO image_digests (name, image_id) VALUES (?, ?) \
                 ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
            )
            .bind(digest)
            .bind(&image.id)
            .execute(&mut *tx)
            .await
            .map_err(query_err("record repo digest"))?;
        }
        tx.commit()
            .timed(&self.commits)
            .await
            .map_err(query_err("commit image record"))?;
        Ok(())
    }

    /// Chain ids of an image's layers, bottom first.
    pub async fn image_layers(&self, image_id: &str) -> Result<Vec<LayerRow>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT l.chain_id, l.diff_id, l.size FROM image_layers il \
             JOIN layers l ON l.chain_id = il.chain_id \
             WHERE il.image_id = ? ORDER BY il.position",
        )
        .bind(image_id)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("list image layers"))?;
        Ok(rows
            .into_iter()
            .map(|(chain_id, diff_id, size)| LayerRow {
                chain_id,
                diff_id,
                size: size.max(0) as u64,
            })
            .collect())
    }

    /// Layers no image links to.
    pub async fn unreferenced_layers(&self) -> Result<Vec<LayerRow>, StoreError> {
        let rows: Vec<(String, String, i64)> = sqlx::query_as(
            "SELECT chain_id, diff_id, size FROM layers l WHERE NOT EXISTS \
             (SELECT 1 FROM image_layers il WHERE il.chain_id = l.chain_id) ORDER BY chain_id",
        )
        .fetch_all(self.pool())
        .await
        .map_err(query_err("list unreferenced layers"))?;
        Ok(rows
            .into_iter()
            .map(|(chain_id, diff_id, size)| LayerRow {
                chain_id,
                diff_id,
                size: size.max(0) as u64,
            })
            .collect())
    }

    /// Every recorded layer's chain id.
    pub async fn layer_ids(&self) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as("SELECT chain_id FROM layers ORDER BY chain_id")
            .fetch_all(self.pool())
            .await
            .map_err(query_err("list layers"))?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }

    /// Deletes a layer row unless an image still links to it; true if deleted.
    pub async fn delete_layer(&self, chain_id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query(
            "DELETE FROM layers WHERE chain_id = ?1 AND NOT EXISTS \
             (SELECT 1 FROM image_layers WHERE chain_id = ?1)",
        )
        .bind(chain_id)
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("delete layer"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Removes a tag; true if it existed.
    pub async fn untag_image(&self, name: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM image_tags WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("untag image"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Removes the repo digest reference `name` (`busybox@sha256:…`); true if it existed.
    pub async fn remove_repo_digest(&self, name: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM image_digests WHERE name = ?")
            .bind(name)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("remove repo digest"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Images no container uses; with `dangling_only`, also without a name (tag or repo
    /// digest), as Docker's dangling images.
    pub async fn unused_images(&self, dangling_only: bool) -> Result<Vec<String>, StoreError> {
        let rows: Vec<(String,)> = sqlx::query_as(
            "SELECT i.id FROM images i WHERE \
             NOT EXISTS (SELECT 1 FROM containers c WHERE c.image_id = i.id) \
             AND (?1 = 0 OR (NOT EXISTS (SELECT 1 FROM image_tags t WHERE t.image_id = i.id) \
                  AND NOT EXISTS (SELECT 1 FROM image_digests d WHERE d.image_id = i.id))) \
             ORDER BY i.id",
        )
        .bind(dangling_only)
        .fetch_all(self.pool())
        .await
        .map_err(query_err("list unused images"))?;
        Ok(rows.into_iter().map(|(c,)| c).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATOR;
    use sqlx::SqlitePool;

    fn h(c: &str) -> String {
        format!("sha256:{}", c.repeat(64))
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn layered_images_share_layers_and_prune_finds_orphans(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let base = LayerRow {
            chain_id: h("1"),
            diff_id: h("1"),
            size: 10,
        };
        let top = LayerRow {
            chain_id: h("2"),
            diff_id: h("3"),
            size: 5,
        };
        let a = Image {
            id: h("a"),
            tags: vec!["a:latest".into()],
            size: 15,
            cmd: vec!["/bin/cat".into()],
            entrypoint: vec!["/bin/sh".into()],
            layers: vec![h("1"), h("3")],
            repo_digests: vec!["r/a@sha256:x".into()],
            ..Default::default()
        };
        let b = Image {
            id: h("b"),
            tags: vec!["b:latest".into()],
            size: 10,
            ..Default::default()
        };
        store
            .record_image(&a, &[base.clone(), top.clone()], Utc::now())
            .await
            .unwrap();
        store
            .record_image(&b, std::slice::from_ref(&base), Utc::now())
            .await
            .unwrap();
        // Recording again adds a repo digest once.
        let mut again = a.clone();
        again.repo_digests = vec!["r/a2@sha256:y".into()];
        store
            .record_image(&again, &[base.clone(), top.clone()], Utc::now())
            .await
            .unwrap();
        store
            .record_image(&again, &[base.clone(), top.clone()], Utc::now())
            .await
            .unwrap();
        let got = store.image(&a.id).await.unwrap().unwrap();
        // Sorted, as tags are.
        assert_eq!(got.repo_digests, vec!["r/a2@sha256:y", "r/a@sha256:x"]);
        assert_eq!(got.entrypoint, vec!["/bin/sh"]);
        assert_eq!(got.layers, vec![h("1"), h("3")]);
        assert_eq!(
            store.image_layers(&a.id).await.unwrap(),
            vec![base.clone(), top.clone()]
        );
        assert_eq!(store.layer_ids().await.unwrap(), vec![h("1"), h("2")]);
        assert!(store.unreferenced_layers().await.unwrap().is_empty());

        // Deleting a frees only its own top layer; the shared base stays.
        assert!(store.delete_image(&a.id).await.unwrap());
        assert_eq!(
            store.unreferenced_layers().await.unwrap(),
            vec![top.clone()]
        );
        assert!(!store.delete_layer(&base.chain_id).await.unwrap());
        assert!(store.delete_layer(&top.chain_id).await.unwrap());

        assert!(store.untag_image("b:latest").await.unwrap());
        assert!(!store.untag_image("b:latest").await.unwrap());
        assert_eq!(store.unused_images(true).await.unwrap(), vec![h("b")]);
        assert_eq!(store.unused_images(false).await.unwrap(), vec![h("b")]);
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn exposed_ports_are_kept_and_filled_in_by_a_later_record(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let base = LayerRow {
            chain_id: h("1"),
            diff_id: h("1"),
            size: 10,
        };
        // As an older boxd stored it: a config without exposed_ports.
        sqlx::query(
            "INSERT INTO images (id, size, created_at, config) \
             VALUES (?, 10, '2024-01-01T00:00:00Z', '{\"cmd\":[\"httpd\"],\"env\":[]}')",
        )
        .bind(h("a"))
        .execute(store.pool())
        .await
        .unwrap();
        let old = store.image(&h("a")).await.unwrap().unwrap();
        assert!(old.exposed_ports.is_empty());
        assert_eq!(old.cmd, ["httpd"]);
        let image = Image {
            id: h("a"),
            cmd: vec!["httpd".into()],
            exposed_ports: vec!["53/udp".into(), "80/tcp".into()],
            ..Default::default()
        };
        store
            .record_image(&image, std::slice::from_ref(&base), Utc::now())
            .await
            .unwrap();
        let got = store.image(&h("a")).await.unwrap().unwrap();
        assert_eq!(got.exposed_ports, ["53/udp", "80/tcp"]);
        assert_eq!(
            got.created_at, old.created_at,
            "the row stays the one stored"
        );
    }

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn plain_imports_are_one_layer_images(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let id = h("c");
        store.insert_image(&id, 42, Utc::now(), "{}").await.unwrap();
        let layers = store.image_layers(&id).await.unwrap();
        assert_eq!(
            layers,
            vec![LayerRow {
                chain_id: id.clone(),
                diff_id: id.clone(),
                size: 42
            }]
        );
    }
}
