//! Networks and attachments (tables `networks` and `attachments`, migration 0008).

use chrono::{DateTime, Utc};
use sqlx::Row;

use crate::network::{Attachment, Network};

use super::{query_err, Store, StoreError, TimedExt};

fn network_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Network, StoreError> {
    let id: String = row.get("id");
    let labels: String = row.get("labels");
    let created_at: String = row.get("created_at");
    Ok(Network {
        labels: serde_json::from_str(&labels).map_err(|source| StoreError::Corrupt {
            what: "network labels",
            id: id.clone(),
            source,
        })?,
        created_at: DateTime::parse_from_rfc3339(&created_at)
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default(),
        name: row.get("name"),
        bridge: row.get("bridge"),
        subnet: row.get("subnet"),
        subnet6: row.get("subnet6"),
        custom: row
            .get::<Option<String>, _>("conflist")
            .map(|c| serde_json::from_str(&c))
            .transpose()
            .map_err(|source| StoreError::Corrupt {
                what: "network conflist",
                id: id.clone(),
                source,
            })?,
        gateway6: row.get("gateway6"),
        gateway: row.get("gateway"),
        internal: row.get::<i64, _>("internal") != 0,
        id,
    })
}

fn attachment_from_row(row: &sqlx::sqlite::SqliteRow) -> Result<Attachment, StoreError> {
    let id: String = row.get("container_id");
    let json = |what: &'static str, text: &str| {
        serde_json::from_str(text).map_err(|source| StoreError::Corrupt {
            what,
            id: id.clone(),
            source,
        })
    };
    let conflist: String = row.get("conflist");
    let runtime_config: String = row.get("runtime_config");
    let result: Option<String> = row.get("result");
    Ok(Attachment {
        network: row.get("network"),
        ifname: row.get("ifname"),
        netns: row.get::<String, _>("netns").into(),
        conflist: json("attachment conflist", &conflist)?,
        runtime_config: json("attachment runtime config", &runtime_config)?,
        result: result.map(|r| json("attachment result", &r)).transpose()?,
        container_id: id.clone(),
    })
}

impl Store {
    /// Inserts a network; a taken name is [`StoreError::NameInUse`].
    pub async fn insert_network(&self, n: &Network) -> Result<(), StoreError> {
        let done = sqlx::query(
            "INSERT INTO networks
             (id, name, bridge, subnet, gateway, subnet6, gateway6, internal, labels, created_at,
              conflist)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&n.id)
        .bind(&n.name)
        .bind(&n.bridge)
        .bind(&n.subnet)
        .bind(&n.gateway)
        .bind(&n.subnet6)
        .bind(&n.gateway6)
        .bind(i64::from(n.internal))
        .bind(serde_json::to_string(&n.labels).expect("labels serialise"))
        .bind(n.created_at.to_rfc3339())
        .bind(n.custom.as_ref().map(|c| c.to_string()))
        .execute(self.pool())
        .timed(&self.commits)
        .await;
        match done {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::NameInUse(n.name.clone()))
            }
            Err(e) => Err(query_err("insert network")(e)),
        }
    }

    /// Every network, by name.
    pub async fn networks(&self) -> Result<Vec<Network>, StoreError> {
        let rows = sqlx::query("SELECT * FROM networks ORDER BY name")
            .fetch_all(self.pool())
            .await
            .map_err(query_err("list networks"))?;
        rows.iter().map(network_from_row).collect()
    }

    /// The network named `name`, or whose id is or starts with `name`.
    pub async fn network(&self, name: &str) -> Result<Option<Network>, StoreError> {
        let rows = sqlx::query("SELECT * FROM networks WHERE name = ? OR id = ? OR id LIKE ?")
            .bind(name)
            .bind(name)
            .bind(format!("{}%", name.replace(['%', '_'], "")))
            .fetch_all(self.pool())
            .await
            .map_err(query_err("read network"))?;
        let all: Vec<Network> = rows
            .iter()
            .map(network_from_row)
            .collect::<Result<_, _>>()?;
        // An exact name or id wins over an id prefix; an ambiguous prefix matches none.
        if let Some(n) = all.iter().find(|n| n.name == name || n.id == name) {
            return Ok(Some(n.clone()));
        }
        Ok((all.len() == 1 && name.len() >= 4)
            .then(|| all.into_iter().next())
            .flatten())
    }

    /// Updates the default network's settings (from the daemon's config).
    pub async fn update_network(&self, n: &Network) -> Result<(), StoreError> {
        sqlx::query("UPDATE networks SET bridge = ?, subnet = ?, gateway = ? WHERE id = ?")
            .bind(&n.bridge)
            .bind(&n.subnet)
            .bind(&n.gateway)
            .bind(&n.id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("update network"))?;
        Ok(())
    }

    /// Deletes a network row.
    pub async fn delete_network(&self, id: &str) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM networks WHERE id = ?")
            .bind(id)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("delete network"))?;
        Ok(())
    }

    /// Records an attachment before its CNI ADD (`result` still empty).
    pub async fn insert_attachment(&self, a: &Attachment) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT OR REPLACE INTO attachments
             (container_id, network, ifname, netns, conflist, runtime_config, result, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&a.container_id)
        .bind(&a.network)
        .bind(&a.ifname)
        .bind(a.netns.to_string_lossy().into_owned())
        .bind(a.conflist.to_string())
        .bind(a.runtime_config.to_string())
        .bind(a.result.as_ref().map(|r| r.to_string()))
        .bind(Utc::now().to_rfc3339())
        .execute(self.pool())
        .timed(&self.commits)
        .await
        .map_err(query_err("insert attachment"))?;
        Ok(())
    }

    /// Records the ADD result of an attachment.
    pub async fn set_attachment_result(
        &self,
        container_id: &str,
        network: &str,
        result: &serde_json::Value,
    ) -> Result<(), StoreError> {
        sqlx::query("UPDATE attachments SET result = ? WHERE container_id = ? AND network = ?")
            .bind(result.to_string())
            .bind(container_id)
            .bind(network)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("record attachment result"))?;
        Ok(())
    }

    /// The attachments of one container (`Some`) or of all.
    pub async fn attachments(
        &self,
        container_id: Option<&str>,
    ) -> Result<Vec<Attachment>, StoreError> {
        let rows = match container_id {
            Some(id) => {
                sqlx::query("SELECT * FROM attachments WHERE container_id = ? ORDER BY created_at")
                    .bind(id)
                    .fetch_all(self.pool())
                    .await
            }
            None => {
                sqlx::query("SELECT * FROM attachments ORDER BY container_id, created_at")
                    .fetch_all(self.pool())
                    .await
            }
        }
        .map_err(query_err("read attachments"))?;
        rows.iter().map(attachment_from_row).collect()
    }

    /// Deletes an attachment once its DEL succeeded.
    pub async fn delete_attachment(
        &self,
        container_id: &str,
        network: &str,
    ) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM attachments WHERE container_id = ? AND network = ?")
            .bind(container_id)
            .bind(network)
            .execute(self.pool())
            .timed(&self.commits)
            .await
            .map_err(query_err("delete attachment"))?;
        Ok(())
    }
}
