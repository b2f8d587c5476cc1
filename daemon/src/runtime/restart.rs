//! Restart policies: `no`, `on-failure[:N]`, `always`, `unless-stopped`, as Docker has
//! them, with an exponential back-off.
//!
//! - After an exit the policy decides; a restart waits 100 ms, doubling per restart up
//!   to 1 min, and the doubling starts over once a run lasted 10 s.
//! - The pending restart time is in the store (`next_restart_at`), so a daemon restart
//!   during a back-off resumes it; a user's start, stop or delete cancels it.
//! - A user's stop (or a kill with a terminating signal) is remembered: no policy
//!   restarts that exit. When the daemon starts (after a restart or a host reboot),
//!   `always` containers come back even if the user had stopped them, `unless-stopped`
//!   ones only if the user had not; that is the one difference between the two.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::runtime::spec::ContainerState;
use chrono::{DateTime, Utc};

use super::Runtime;

/// First back-off delay.
pub const BACKOFF_START: Duration = Duration::from_millis(100);
/// Longest back-off delay.
pub const BACKOFF_MAX: Duration = Duration::from_secs(60);
/// A run at least this long resets the back-off.
pub const HEALTHY_RUN: Duration = Duration::from_secs(10);

/// Who starts a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartCause {
    /// The user (API): resets the restart count and the user's stop.
    User,
    /// The restart policy: counts a restart, and gives way to the user.
    Policy,
}

/// A parsed restart policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    /// Never restart.
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max_retries` times if given.
    OnFailure {
        /// The limit of restarts.
        max_retries: Option<u32>,
    },
    /// Always restart, and start with the daemon.
    Always,
    /// As `always`, but not after the user stopped it.
    UnlessStopped,
}

impl FromStr for RestartPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let bad = || {
            format!("{s:?} is not a restart policy: use no, on-failure, on-failure:N, always or unless-stopped")
        };
        match s {
            "" | "no" => Ok(RestartPolicy::No),
            "always" => Ok(RestartPolicy::Always),
            "unless-stopped" => Ok(RestartPolicy::UnlessStopped),
            "on-failure" => Ok(RestartPolicy::OnFailure { max_retries: None }),
            _ => match s.strip_prefix("on-failure:") {
                Some(n) => n
                    .parse::<u32>()
                    .map(|n| RestartPolicy::OnFailure {
                        max_retries: Some(n),
                    })
                    .map_err(|_| bad()),
                None => Err(bad()),
            },
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestartPolicy::No => f.write_str("no"),
            RestartPolicy::OnFailure { max_retries: None } => f.write_str("on-failure"),
            RestartPolicy::OnFailure {
                max_retries: Some(n),
            } => write!(f, "on-failure:{n}"),
            RestartPolicy::Always => f.write_str("always"),
            RestartPolicy::UnlessStopped => f.write_str("unless-stopped"),
        }
    }
}

impl RestartPolicy {
    /// Whether an exit is restarted. `failed`: non-zero exit or dead.
    pub fn restarts_after_exit(
        self,
        failed: bool,
        restart_count: u32,
        stopped_by_user: bool,
    ) -> bool {
        if stopped_by_user {
            return false;
        }
        match self {
            RestartPolicy::No => false,
            RestartPolicy::OnFailure { max_retries } => {
                failed && max_retries.is_none_or(|max| restart_count < max)
            }
            RestartPolicy::Always | RestartPolicy::UnlessStopped => true,
        }
    }

    /// Whether a stopped container is started when the daemon starts.
    pub fn starts_with_daemon(self, stopped_by_user: bool) -> bool {
        match self {
            RestartPolicy::Always => true,
            RestartPolicy::UnlessStopped => !stopped_by_user,
            RestartPolicy::No | RestartPolicy::OnFailure { .. } => false,
        }
    }
}

/// The delay before the restart after `consecutive` quick exits (0 = the first).
pub fn backoff_delay(consecutive: u32) -> Duration {
    let factor = 1u64 << consecutive.min(20);
    BACKOFF_START.saturating_mul(factor as u32).min(BACKOFF_MAX)
}

impl Runtime {
    /// Applies the policy after an exit was recorded: returns when the container is to
    /// start again (also recorded in the store, so a daemon restart resumes the
    /// back-off), or `None`. Only the container's actor (or the reconcile) calls this;
    /// the actor keeps the timer.
    pub(super) async fn after_exit(&self, id: &str) -> Option<DateTime<Utc>> {
        let Ok(Some(rec)) = self.inner.store.container(id).await else {
            return None;
        };
        let c = &rec.container;
        if !matches!(c.state, ContainerState::Exited | ContainerState::Dead) {
            return None;
        }
        self.volumes_unmounted(c).await;
        let policy = c.restart_policy;
        let failed = c.state == ContainerState::Dead || c.exit_code != Some(0);
        if !policy.restarts_after_exit(failed, c.restart_count, rec.stopped_by_user) {
            self.inner
                .backoff
                .lock()
                .expect("backoff poisoned")
                .remove(id);
            return None;
        }
        let ran = match (c.started_at, c.finished_at) {
            (Some(s), Some(f)) => (f - s).to_std().unwrap_or_default(),
            _ => Duration::ZERO,
        };
        let consecutive = {
            let mut backoff = self.inner.backoff.lock().expect("backoff poisoned");
            let n = backoff.entry(id.to_owned()).or_insert(0);
            if ran >= HEALTHY_RUN {
                *n = 0;
            }
            let cur = *n;
            *n = n.saturating_add(1);
            cur
        };
        let at = Utc::now() + backoff_delay(consecutive);
        if let Err(e) = self.inner.store.set_next_restart(id, Some(at)).await {
            tracing::error!(id, error = %crate::error_chain(&e), "failed to record the next restart");
            return None;
        }
        Some(at)
    }

    /// At daemon start, before the actors run: marks the containers whose policy says
    /// they run with the daemon as due now (pending back-offs are already in the store;
    /// each actor starts from its row's `next_restart_at`).
    pub(super) async fn resume_restart_policies(&self) -> Result<(), super::RuntimeError> {
        for rec in self.inner.store.list_containers(true).await? {
            let c = &rec.container;
            if !matches!(c.state, ContainerState::Exited | ContainerState::Dead) {
                continue;
            }
            let policy = c.restart_policy;
            if c.next_restart_at.is_none() && policy.starts_with_daemon(rec.stopped_by_user) {
                tracing::info!(id = c.id, %policy, "starting a container whose policy runs it with the daemon");
                if rec.stopped_by_user {
                    // `always` overrides the user's stop at daemon start, as Docker does.
                    self.inner.store.reset_restarts(&c.id).await?;
                }
                self.inner
                    .store
                    .set_next_restart(&c.id, Some(Utc::now()))
                    .await?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_print() {
        for s in [
            "no",
            "on-failure",
            "on-failure:3",
            "always",
            "unless-stopped",
        ] {
            assert_eq!(s.parse::<RestartPolicy>().unwrap().to_string(), s);
        }
        assert_eq!("".parse::<RestartPolicy>(), Ok(RestartPolicy::No));
        for bad in [
            "sometimes",
            "on-failure:",
            "on-failure:-1",
            "always:3",
            "ALWAYS",
        ] {
            assert!(bad.parse::<RestartPolicy>().is_err(), "{bad}");
        }
    }

    #[test]
    fn decisions() {
        use RestartPolicy::*;
        let of3 = OnFailure {
            max_retries: Some(3),
        };
        // (policy, failed, count, user stopped) -> restart?
        let table = [
            (No, true, 0, false, false),
            (of3, true, 2, false, true),
            (of3, true, 3, false, false),
            (of3, false, 0, false, false),
            (OnFailure { max_retries: None }, true, 1000, false, true),
            (Always, false, 0, false, true),
            (Always, true, 0, true, false),
            (UnlessStopped, false, 5, false, true),
            (UnlessStopped, false, 0, true, false),
        ];
        for (p, failed, count, stopped, want) in table {
            assert_eq!(
                p.restarts_after_exit(failed, count, stopped),
                want,
                "{p} {failed} {count} {stopped}"
            );
        }
        assert!(Always.starts_with_daemon(true));
        assert!(!UnlessStopped.starts_with_daemon(true));
        assert!(UnlessStopped.starts_with_daemon(false));
        assert!(!of3.starts_with_daemon(false));
        assert!(!No.starts_with_daemon(false));
    }

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff_delay(0), Duration::from_millis(100));
        assert_eq!(backoff_delay(1), Duration::from_millis(200));
        assert_eq!(backoff_delay(4), Duration::from_millis(1600));
        assert_eq!(backoff_delay(10), BACKOFF_MAX);
        assert_eq!(backoff_delay(u32::MAX), BACKOFF_MAX);
    }
}
