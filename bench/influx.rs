//! The little of InfluxDB 1.x the benchmark needs: fresh databases, the checksum of what a
//! run wrote (the sum of `count` over its points), and the server's version.

use anyhow::Context;

/// An InfluxDB 1.x server.
pub struct Influx {
    url: String,
    runtime: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Influx {
    /// A client of the server at `url`.
    pub fn new(url: &str) -> anyhow::Result<Influx> {
        Ok(Influx {
            url: url.trim_end_matches('/').to_owned(),
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?,
            client: reqwest::Client::new(),
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn query(&self, db: Option<&str>, q: &str) -> anyhow::Result<serde_json::Value> {
        let mut params = vec![("q", q)];
        if let Some(db) = db {
            params.push(("db", db));
        }
        self.runtime.block_on(async {
            let response = self
                .client
                .post(format!("{}/query", self.url))
                .form(&params)
                .send()
                .await
                .with_context(|| format!("InfluxDB at --influx-url {}", self.url))?;
            let status = response.status();
            let body = response.text().await?;
            anyhow::ensure!(status.is_success(), "InfluxDB: {q}: HTTP {status}: {body}");
            Ok(serde_json::from_str(&body)?)
        })
    }

    /// Creates database `db`.
    pub fn create_db(&self, db: &str) -> anyhow::Result<()> {
        self.query(None, &format!("CREATE DATABASE \"{db}\""))
            .map(drop)
    }

    /// Drops database `db`.
    pub fn drop_db(&self, db: &str) -> anyhow::Result<()> {
        self.query(None, &format!("DROP DATABASE \"{db}\""))
            .map(drop)
    }

    /// The sum of `count` over every point of `measurement` in `db`: the readings the
    /// points account for.
    pub fn sum_count(&self, db: &str, measurement: &str) -> anyhow::Result<u64> {
        let body = self.query(
            Some(db),
            &format!("SELECT sum(\"count\") FROM \"{measurement}\""),
        )?;
        Ok(body["results"][0]["series"][0]["values"][0][1]
            .as_u64()
            .unwrap_or(0))
    }

    /// The server's version, from its `/ping` answer.
    pub fn version(&self) -> String {
        self.runtime
            .block_on(self.client.get(format!("{}/ping", self.url)).send())
            .ok()
            .and_then(|r| {
                r.headers()
                    .get("X-Influxdb-Version")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            })
            .unwrap_or_else(|| "unknown".to_owned())
    }
}
