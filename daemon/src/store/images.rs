//! Image rows and their tags.

use boxd_types::Image;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{containers::Resolved, query_err, Store, StoreError};

/// An image as stored.
pub type ImageRecord = Image;

#[derive(FromRow)]
struct Row {
    id: String,
    size: i64,
    created_at: DateTime<Utc>,
    config: String,
    tags: Option<String>,
    repo_digests: String,
}

/// The image defaults kept in the `config` column (what `Image` says beyond id, tags,
/// size, time and repo digests).
#[derive(Debug, Default, serde::Serialize, serde::Deserialize)]
pub(crate) struct StoredConfig {
    #[serde(default)]
    cmd: Vec<String>,
    #[serde(default)]
    env: Vec<String>,
    #[serde(default)]
    working_dir: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    entrypoint: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    user: Option<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    labels: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    stop_signal: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    os: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    architecture: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    layers: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    history: Vec<boxd_types::ImageHistory>,
}

impl StoredConfig {
    /// The `config` column for an image's defaults.
    pub(crate) fn json_of(image: &Image) -> String {
        let c = StoredConfig {
            cmd: image.cmd.clone(),
            env: image.env.clone(),
            working_dir: image.working_dir.clone(),
            entrypoint: image.entrypoint.clone(),
            user: image.user.clone(),
            labels: image.labels.clone(),
            stop_signal: image.stop_signal.clone(),
            os: image.os.clone(),
            architecture: image.architecture.clone(),
            layers: image.layers.clone(),
            history: image.history.clone(),
        };
        serde_json::to_string(&c).expect("image config serialises")
    }
}

impl Row {
    fn into_image(self) -> Result<Image, StoreError> {
        let config: StoredConfig =
            serde_json::from_str(&self.config).map_err(|source| StoreError::Corrupt {
                what: "image config",
                id: self.id.clone(),
                source,
            })?;
        let mut tags: Vec<String> = self
            .tags
            .map(|t| {
                t.split('\n')
                    .filter(|s| !s.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        tags.sort();
        Ok(Image {
            id: self.id,
            tags,
            size: self.size.max(0) as u64,
            created_at: self.created_at,
            cmd: config.cmd,
            env: config.env,
            working_dir: config.working_dir,
            entrypoint: config.entrypoint,
            user: config.user,
            labels: config.labels,
            stop_signal: config.stop_signal,
            os: config.os,
            architecture: config.architecture,
            layers: config.layers,
            repo_digests: self
                .repo_digests
                .split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect(),
            history: config.history,
        })
    }
}

// group_concat with a newline separator: tag names cannot contain one.
const SELECT: &str = "SELECT i.id, i.size, i.created_at, i.config, i.repo_digests, \
     (SELECT group_concat(t.name, char(10)) FROM image_tags t WHERE t.image_id = i.id) AS tags \
     FROM images i";

impl Store {
    /// Inserts an image row unless it exists (same id = same content). This is a plain
    /// import: one layer whose chain id is the image id, recorded with it.
    pub async fn insert_image(
        &self,
        id: &str,
        size: u64,
        created_at: DateTime<Utc>,
        config_json: &str,
    ) -> Result<(), StoreError> {
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(query_err("begin image insert"))?;
        sqlx::query(
            "INSERT INTO images (id, size, created_at, config) VALUES (?, ?, ?, ?) \
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(id)
        .bind(size)
        .bind(created_at)
        .bind(config_json)
        .execute(&mut *tx)
        .await
        .map_err(query_err("insert image"))?;
        sqlx::query(
            "INSERT INTO layers (chain_id, diff_id, parent, size, created_at) \
             VALUES (?1, ?1, NULL, ?2, ?3) ON CONFLICT(chain_id) DO NOTHING",
        )
        .bind(id)
        .bind(size)
        .bind(created_at)
        .execute(&mut *tx)
        .await
        .map_err(query_err("insert layer"))?;
        sqlx::query(
            "INSERT INTO image_layers (image_id, position, chain_id) VALUES (?1, 0, ?1) \
             ON CONFLICT DO NOTHING",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(query_err("insert image layer"))?;
        tx.commit()
            .await
            .map_err(query_err("commit image insert"))?;
        Ok(())
    }

    /// Points `name` at `image_id`, moving it from any image that had it (as `docker tag`).
    pub async fn tag_image(&self, name: &str, image_id: &str) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO image_tags (name, image_id) VALUES (?, ?) \
             ON CONFLICT(name) DO UPDATE SET image_id = excluded.image_id",
        )
        .bind(name)
        .bind(image_id)
        .execute(self.pool())
        .await
        .map_err(query_err("tag image"))?;
        Ok(())
    }

    /// The image with exactly this id.
    pub async fn image(&self, id: &str) -> Result<Option<Image>, StoreError> {
        let row: Option<Row> = sqlx::query_as(&format!("{SELECT} WHERE i.id = ?"))
            .bind(id)
            .fetch_optional(self.pool())
            .await
            .map_err(query_err("read image"))?;
        row.map(Row::into_image).transpose()
    }

    /// Resolves a tag (already normalised, `busybox:latest`), a full id, or a unique id
    /// prefix with or without `sha256:`.
    pub async fn resolve_image(&self, reference: &str) -> Result<Resolved<Image>, StoreError> {
        let tagged: Option<(String,)> =
            sqlx::query_as("SELECT image_id FROM image_tags WHERE name = ?")
                .bind(reference)
                .fetch_optional(self.pool())
                .await
                .map_err(query_err("resolve image tag"))?;
        if let Some((id,)) = tagged {
            return Ok(self.image(&id).await?.map_or(Resolved::None, Resolved::One));
        }
        let hex = reference.strip_prefix("sha256:").unwrap_or(reference);
        if hex.is_empty() || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(Resolved::None);
        }
        let rows: Vec<Row> =
            sqlx::query_as(&format!("{SELECT} WHERE substr(i.id, 1, length(?1)) = ?1"))
                .bind(format!("sha256:{hex}"))
                .fetch_all(self.pool())
                .await
                .map_err(query_err("resolve image id"))?;
        match rows.len() {
            0 => Ok(Resolved::None),
            1 => rows
                .into_iter()
                .next()
                .expect("one")
                .into_image()
                .map(Resolved::One),
            _ => Ok(Resolved::Ambiguous),
        }
    }

    /// Every image, newest first.
    pub async fn list_images(&self) -> Result<Vec<Image>, StoreError> {
        let rows: Vec<Row> = sqlx::query_as(&format!("{SELECT} ORDER BY i.created_at DESC"))
            .fetch_all(self.pool())
            .await
            .map_err(query_err("list images"))?;
        rows.into_iter().map(Row::into_image).collect()
    }

    /// Deletes the image row and its tags; true if there was one.
    pub async fn delete_image(&self, id: &str) -> Result<bool, StoreError> {
        let res = sqlx::query("DELETE FROM images WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .await
            .map_err(query_err("delete image"))?;
        Ok(res.rows_affected() > 0)
    }

    /// Number of images.
    pub async fn count_images(&self) -> Result<u64, StoreError> {
        let (n,): (i64,) = sqlx::query_as("SELECT count(*) FROM images")
            .fetch_one(self.pool())
            .await
            .map_err(query_err("count images"))?;
        Ok(n.max(0) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::MIGRATOR;
    use sqlx::SqlitePool;

    #[sqlx::test(migrator = "MIGRATOR")]
    async fn tags_resolve_and_delete(pool: SqlitePool) {
        let store = Store::from_pool(pool).await.unwrap();
        let a = format!("sha256:{}", "a1".repeat(32));
        let b = format!("sha256:{}", "a2".repeat(32));
        store
            .insert_image(&a, 100, Utc::now(), r#"{"cmd":["/bin/sh"]}"#)
            .await
            .unwrap();
        store.insert_image(&a, 999, Utc::now(), "{}").await.unwrap(); // same content: no-op
        store.insert_image(&b, 200, Utc::now(), "{}").await.unwrap();
        store.tag_image("busybox:latest", &a).await.unwrap();
        store.tag_image("busybox:v1", &a).await.unwrap();

        let img = store.image(&a).await.unwrap().unwrap();
        assert_eq!(img.tags, vec!["busybox:latest", "busybox:v1"]);
        assert_eq!(img.size, 100);
        assert_eq!(img.cmd, vec!["/bin/sh"]);

        let one = |r: Resolved<Image>| match r {
            Resolved::One(i) => Some(i.id),
            _ => None,
        };
        assert_eq!(
            one(store.resolve_image("busybox:latest").await.unwrap()),
            Some(a.clone())
        );
        assert_eq!(one(store.resolve_image(&a).await.unwrap()), Some(a.clone()));
        assert_eq!(
            one(store.resolve_image("a1a1").await.unwrap()),
            Some(a.clone())
        );
        assert_eq!(
            one(store.resolve_image("sha256:a2").await.unwrap()),
            Some(b.clone())
        );
        assert!(matches!(
            store.resolve_image("a").await.unwrap(),
            Resolved::Ambiguous
        ));
        assert!(matches!(
            store.resolve_image("nope:latest").await.unwrap(),
            Resolved::None
        ));

        // A tag moves, as `docker tag` does.
        store.tag_image("busybox:latest", &b).await.unwrap();
        assert_eq!(
            one(store.resolve_image("busybox:latest").await.unwrap()),
            Some(b.clone())
        );
        assert_eq!(
            store.image(&a).await.unwrap().unwrap().tags,
            vec!["busybox:v1"]
        );

        assert_eq!(store.count_images().await.unwrap(), 2);
        assert!(store.delete_image(&a).await.unwrap());
        assert!(matches!(
            store.resolve_image("busybox:v1").await.unwrap(),
            Resolved::None
        ));
        assert_eq!(store.list_images().await.unwrap().len(), 1);
    }
}
