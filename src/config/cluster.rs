//! The `[cluster]` section: which engine orders the rooms. The default
//! keeps everything in this process; `engine = "redis"` moves every room's
//! order, ids and history to Redis, shared by every node given the same
//! Redis instances.

use serde::{Deserialize, Serialize};

use super::{fail, ConfigError, Period};

/// Which engine orders the rooms and keeps their history.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EngineKind {
    /// This process alone: each room has a home worker.
    Local,
    /// Redis: every node that names the same instances shares the rooms.
    Redis,
}

/// `[cluster]`: several ringcast nodes sharing rooms through Redis.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterConfig {
    /// "local" (the default: no Redis) or "redis".
    pub engine: EngineKind,
    /// Redis instances as `redis://[:password@]host:port[/db]` URLs. With
    /// several, each room lives on one of them, chosen by a consistent hash
    /// of its name: every node must list the same URLs.
    pub redis: Vec<String>,
    /// Prefix of every Redis key and channel of this cluster.
    pub prefix: String,
    /// This node's name in the cluster's subscriber counts; empty = a
    /// random one at each start.
    pub node_id: String,
    /// Connecting to Redis and each command must finish within this long;
    /// a publish that does not gets 503.
    pub command_timeout: Period,
    /// Publishes of this node waiting for Redis at a time; more get 503.
    pub max_inflight_publishes: usize,
    /// How long a node's subscriber counts live in Redis without being
    /// refreshed (a node that died stops counting after this).
    pub presence_ttl: Period,
    /// Messages read from Redis per catch-up or replay read.
    pub read_batch: usize,
}

impl Default for ClusterConfig {
    fn default() -> Self {
        ClusterConfig {
            engine: EngineKind::Local,
            redis: Vec::new(),
            prefix: "ringcast".into(),
            node_id: String::new(),
            command_timeout: Period::from_secs(2),
            max_inflight_publishes: 10_000,
            presence_ttl: Period::from_secs(30),
            read_batch: 512,
        }
    }
}

impl ClusterConfig {
    /// Whether the rooms live in Redis.
    pub fn is_redis(&self) -> bool {
        self.engine == EngineKind::Redis
    }

    pub(super) fn validate(&self) -> Result<(), ConfigError> {
        if self.engine == EngineKind::Local {
            return Ok(());
        }
        if self.redis.is_empty() {
            return fail(
                "cluster.engine = \"redis\" needs cluster.redis = [\"redis://host:port\", ...]"
                    .into(),
            );
        }
        for (i, url) in self.redis.iter().enumerate() {
            if let Err(why) = check_redis_url(url) {
                return fail(format!("cluster.redis[{i}] = {:?}: {why}", redact_url(url)));
            }
        }
        let mut seen = std::collections::HashSet::new();
        for (i, url) in self.redis.iter().enumerate() {
            if !seen.insert(url.as_str()) {
                return fail(format!(
                    "cluster.redis[{i}] = {:?} is listed twice",
                    redact_url(url)
                ));
            }
        }
        if self.prefix.is_empty()
            || !self
                .prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':'))
        {
            return fail(format!(
                "cluster.prefix = {:?} must be 1 or more of A-Z a-z 0-9 _ - . :",
                self.prefix
            ));
        }
        if !self
            .node_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
            || self.node_id.len() > 64
        {
            return fail(format!(
                "cluster.node_id = {:?} must be at most 64 of A-Z a-z 0-9 _ - .",
                self.node_id
            ));
        }
        if self.command_timeout.0.is_zero() {
            return fail("cluster.command_timeout must be more than 0".into());
        }
        if self.max_inflight_publishes == 0 {
            return fail("cluster.max_inflight_publishes must be at least 1".into());
        }
        if self.presence_ttl.0 < std::time::Duration::from_secs(1) {
            return fail("cluster.presence_ttl must be at least 1s".into());
        }
        if self.read_batch == 0 || self.read_batch > 100_000 {
            return fail(format!(
                "cluster.read_batch = {} must be from 1 to 100000",
                self.read_batch
            ));
        }
        Ok(())
    }
}

/// Why `url` is not a Redis URL this server can use.
fn check_redis_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("redis://")
        .ok_or("must start with redis:// (rediss:// and unix sockets are not supported)")?;
    let hostport = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let hostport = hostport.split('/').next().unwrap_or("");
    if hostport.is_empty() {
        return Err("names no host".into());
    }
    // what the Redis client itself accepts (port, database number, escapes)
    redis::Client::open(url)
        .map(|_| ())
        .map_err(|e| format!("not a Redis URL the client accepts ({e})"))
}

/// `url` with any password replaced by `***`: fit for logs, errors and metrics.
pub fn redact_url(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_redacted() {
        assert_eq!(
            redact_url("redis://:hunter2@10.0.0.1:6379/0"),
            "redis://***@10.0.0.1:6379/0"
        );
        assert_eq!(
            redact_url("redis://127.0.0.1:6379"),
            "redis://127.0.0.1:6379"
        );
    }

    #[test]
    fn redis_needs_urls() {
        let c = ClusterConfig {
            engine: EngineKind::Redis,
            ..ClusterConfig::default()
        };
        assert!(c.validate().unwrap_err().0.contains("cluster.redis"));
        let c = ClusterConfig {
            engine: EngineKind::Redis,
            redis: vec!["http://x".into()],
            ..ClusterConfig::default()
        };
        let e = c.validate().unwrap_err().0;
        assert!(
            e.contains("cluster.redis[0]") && e.contains("redis://"),
            "{e}"
        );
    }
}
