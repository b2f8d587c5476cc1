//! Image rows and the names that point at them: tags (`busybox:latest`) and repo
//! digests (`busybox@sha256:…`), both in the familiar form of
//! [`crate::image::reference`], each pointing at one image.

use boxd_types::Image;
use chrono::{DateTime, Utc};
use sqlx::FromRow;

use super::{containers::Resolved, query_err, Store, StoreError, TimedExt};

/// An image as stored.
pub type ImageRecord = Image;

#[derive(FromRow)]
struct Row {
    id: String,
    size: i64,
    created_at: DateTime<Utc>,
    config: String,
    tags: Option<String>,
    repo_digests: Option<String>,
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
    // Absent in rows written before images recorded it: nothing exposed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    exposed_ports: Vec<String>,
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
            exposed_ports: image.exposed_ports.clone(),
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
        Ok(Image {
            id: self.id,
            tags: lines(self.tags),
            size: self.size.max(0) as u64,
            created_at: self.created_at,
            cmd: config.cmd,
            env: config.env,
            working_dir: config.working_dir,
            entrypoint: config.entrypoint,
            user: config.user,
            labels: config.labels,
            stop_signal: config.stop_signal,
            exposed_ports: config.exposed_ports,
            os: config.os,
            architecture: config.architecture,
            layers: config.layers,
            repo_digests: lines(self.repo_digests),
            history: config.history,
        })
    }
}

/// The names of a `group_concat(name, char(10))`, sorted.
fn lines(joined: Option<String>) -> Vec<String> {
    let mut names: Vec<String> = joined
        .map(|t| {
            t.split('\n')
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

// group_concat with a newline separator: names cannot contain one.
const SELECT: &str = "SELECT i.id, i.size, i.created_at, i.config, \
     (SELECT group_concat(t.name, char(10)) FROM image_tags t WHERE t.image_id = i.id) AS tags, \
     (SELECT group_concat(d.name, char(10)) FROM image_digests d WHERE d.image_id = i.id) \
     AS repo_digests \
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
            .timed(&self.commits)
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
        .timed(&self.commits)
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

    /// The image a stored name points at: a familiar tag (`busybox:latest`) or, with
    /// `digest`, a familiar repo digest (`busybox@sha256:…`).
    pub async fn image_by_name(
        &self,
        name: &str,
        digest: bool,
    ) -> Result<Option<Image>, StoreError> {
        let sql = if digest {
            "SELECT image_id FROM image_digests WHERE name = ?"
        } else {
            "SELECT image_id FROM image_tags WHERE name = ?"
        };
        let found: Option<(String,)> = sqlx::query_as(sql)
            .bind(name)
            .fetch_optional(self.pool())
            .await
            .map_err(query_err("resolve image name"))?;
        match found {
            Some((id,)) => self.image(&id).await,
            None => Ok(None),
        }
    }

    /// The images whose id starts with `prefix` (`sha256:<hex>`).
    pub async fn image_by_id_prefix(&self, prefix: &str) -> Result<Resolved<Image>, StoreError> {
        // At most two rows are needed to tell one from several.
        let rows: Vec<Row> = sqlx::query_as(&format!(
            "{SELECT} WHERE substr(i.id, 1, length(?1)) = ?1 LIMIT 2"
        ))
        .bind(prefix)
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
            .timed(&self.commits)
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

        let by_tag = |n: &'static str| {
            let store = store.clone();
            async move { store.image_by_name(n, false).await.unwrap().map(|i| i.id) }
        };
        let by_prefix = |p: &'static str| {
            let store = store.clone();
            async move {
                match store.image_by_id_prefix(p).await.unwrap() {
                    Resolved::One(i) => Some(i.id),
                    Resolved::Ambiguous => Some("ambiguous".to_owned()),
                    Resolved::None => None,
                }
            }
        };
        assert_eq!(by_tag("busybox:latest").await, Some(a.clone()));
        assert_eq!(by_tag("nope:latest").await, None);
        assert_eq!(by_prefix("sha256:a1a1").await, Some(a.clone()));
        assert_eq!(by_prefix("sha256:a2").await, Some(b.clone()));
        assert_eq!(by_prefix("sha256:a").await.as_deref(), Some("ambiguous"));
        assert_eq!(by_prefix("sha256:b").await, None);

        // Repo digests are names of their own; one moves with a later record.
        let digest = format!("r/x@sha256:{}", "d".repeat(64));
        let named = |id: &str, digests: Vec<String>| Image {
            id: id.to_owned(),
            repo_digests: digests,
            ..Default::default()
        };
        store
            .record_image(&named(&a, vec![digest.clone()]), &[], Utc::now())
            .await
            .unwrap();
        let found = store.image_by_name(&digest, true).await.unwrap().unwrap();
        assert_eq!(
            (found.id, found.repo_digests),
            (a.clone(), vec![digest.clone()])
        );
        assert!(store.image_by_name(&digest, false).await.unwrap().is_none());
        store
            .record_image(&named(&b, vec![digest.clone()]), &[], Utc::now())
            .await
            .unwrap();
        assert_eq!(
            store
                .image_by_name(&digest, true)
                .await
                .unwrap()
                .map(|i| i.id),
            Some(b.clone())
        );
        assert!(store
            .image(&a)
            .await
            .unwrap()
            .unwrap()
            .repo_digests
            .is_empty());
        assert!(store.remove_repo_digest(&digest).await.unwrap());
        assert!(!store.remove_repo_digest(&digest).await.unwrap());

        // A tag moves, as `docker tag` does.
        store.tag_image("busybox:latest", &b).await.unwrap();
        assert_eq!(by_tag("busybox:latest").await, Some(b.clone()));
        assert_eq!(
            store.image(&a).await.unwrap().unwrap().tags,
            vec!["busybox:v1"]
        );

        assert_eq!(store.count_images().await.unwrap(), 2);
        assert!(store.delete_image(&a).await.unwrap());
        assert_eq!(by_tag("busybox:v1").await, None);
        assert_eq!(store.list_images().await.unwrap().len(), 1);
    }
}

#[cfg(test)]
mod migration_tests {
    use super::*;
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// Rows written before migration 0006: repo digests in a column, tags in the long
    /// form an import kept. After it, both are found by their familiar names.
    #[tokio::test]
    async fn repo_digests_become_rows_and_tags_become_familiar() {
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("migrations");
        std::fs::create_dir(&old).unwrap();
        let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations");
        for e in std::fs::read_dir(&all).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name.as_str() < "0006" {
                std::fs::copy(all.join(&name), old.join(&name)).unwrap();
            }
        }
        let opts = SqliteConnectOptions::new()
            .filename(dir.path().join("boxd.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts)
            .await
            .unwrap();
        Migrator::new(old.as_path())
            .await
            .unwrap()
            .run(&pool)
            .await
            .unwrap();
        let a = format!("sha256:{}", "a".repeat(64));
        let b = format!("sha256:{}", "b".repeat(64));
        let d1 = format!("127.0.0.1:5000/test/app@sha256:{}", "1".repeat(64));
        let d2 = format!("busybox@sha256:{}", "2".repeat(64));
        for (id, digests) in [(&a, format!("{d1}\n{d2}")), (&b, String::new())] {
            sqlx::query(
                "INSERT INTO images (id, size, created_at, config, repo_digests) \
                 VALUES (?, 1, '2024-01-01T00:00:00Z', '{}', ?)",
            )
            .bind(id)
            .bind(digests)
            .execute(&pool)
            .await
            .unwrap();
        }
        for (name, id) in [
            ("docker.io/library/busybox:latest", &a),
            ("docker.io/test/app:1", &a),
            ("library/alpine:3", &b),
            ("library/a/b:1", &b),
            ("foo:1", &a),
            // Its familiar form is taken: kept, not lost.
            ("docker.io/library/foo:1", &b),
        ] {
            sqlx::query("INSERT INTO image_tags (name, image_id) VALUES (?, ?)")
                .bind(name)
                .bind(id)
                .execute(&pool)
                .await
                .unwrap();
        }

        let store = Store::from_pool(pool).await.unwrap();
        let id_of = |name: String, digest: bool| {
            let store = store.clone();
            async move {
                store
                    .image_by_name(&name, digest)
                    .await
                    .unwrap()
                    .map(|i| i.id)
            }
        };
        assert_eq!(id_of(d1.clone(), true).await, Some(a.clone()));
        assert_eq!(id_of(d2.clone(), true).await, Some(a.clone()));
        assert_eq!(id_of("busybox:latest".into(), false).await, Some(a.clone()));
        assert_eq!(id_of("test/app:1".into(), false).await, Some(a.clone()));
        assert_eq!(id_of("alpine:3".into(), false).await, Some(b.clone()));
        assert_eq!(id_of("library/a/b:1".into(), false).await, Some(b.clone()));
        assert_eq!(id_of("foo:1".into(), false).await, Some(a.clone()));
        let img = store.image(&a).await.unwrap().unwrap();
        assert_eq!(img.repo_digests, vec![d1, d2]);
        assert_eq!(img.tags, vec!["busybox:latest", "foo:1", "test/app:1"]);
        assert_eq!(
            store.image(&b).await.unwrap().unwrap().tags,
            vec!["alpine:3", "docker.io/library/foo:1", "library/a/b:1"]
        );
    }
}
