//! The runtime's error type: what a lifecycle operation can fail with.

use crate::cgroups::CgroupError;
use crate::image::users::UserError;
use crate::image::ImageError;
use crate::store::StoreError;

use super::bundle::BundleError;
use super::shim::ShimError;

/// Errors of runtime operations. The API layer maps each to a status code.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// No container or image matches.
    #[error("no such {kind}: {reference}")]
    NotFound {
        /// `container` or `image`.
        kind: &'static str,
        /// What the user asked for.
        reference: String,
    },
    /// An id prefix matches several.
    #[error("{reference:?} matches more than one {kind}; give more of the id")]
    Ambiguous {
        /// `container` or `image`.
        kind: &'static str,
        /// What the user asked for.
        reference: String,
    },
    /// A request field is invalid.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field.
        field: &'static str,
        /// What to fix.
        reason: String,
    },
    /// The container name is taken.
    #[error("the container name {0:?} is already in use; choose another or remove that container")]
    NameInUse(String),
    /// Start of a running container.
    #[error("container {0} is already running")]
    AlreadyRunning(String),
    /// Signal to a container that is not running.
    #[error("container {0} is not running")]
    NotRunning(String),
    /// Pause of a paused container.
    #[error("container {0} is already paused")]
    AlreadyPaused(String),
    /// Unpause of a container that is not paused.
    #[error("container {0} is not paused")]
    NotPaused(String),
    /// An operation that needs the container's processes to run (exec), on a paused one.
    #[error("container {0} is paused; unpause it first")]
    ContainerPaused(String),
    /// A new limit the kernel refused because the container uses more than it allows
    /// (memory it could not reclaim). Nothing changed.
    #[error("container {container} uses more than the new limits allow and the kernel could not reclaim enough; nothing was changed (free some memory, or choose a higher limit)")]
    LimitBelowUsage {
        /// The container's name.
        container: String,
        /// The refused write (boxed: it would double the size of every result).
        #[source]
        source: Box<CgroupError>,
    },
    /// A stop whose SIGKILL went unanswered (the shim does not report the exit).
    #[error("container {0} did not exit after SIGKILL: its shim does not answer; remove it with force (`?force=true`, `boxctl rm -f`)")]
    StopTimedOut(String),
    /// Delete of a running container without force.
    #[error("container {0} is running; stop it first or remove it with force (`?force=true`, `boxctl rm -f`)")]
    ContainerRunning(String),
    /// Delete of an image in use.
    #[error("image {image} is used by {count} container(s); remove them first")]
    ImageInUse {
        /// The image id.
        image: String,
        /// How many containers use it.
        count: u64,
    },
    /// Delete of a volume a container is configured with (running or not).
    #[error("volume {name} is in use by container(s) {}; remove them first", containers.join(", "))]
    VolumeInUse {
        /// The volume.
        name: String,
        /// Names of the containers using it.
        containers: Vec<String>,
    },
    /// Create of a volume whose name is taken by one of another driver.
    #[error("a volume named {name} already exists with driver {driver}")]
    VolumeExists {
        /// The volume.
        name: String,
        /// The existing one's driver.
        driver: String,
    },
    /// A volume's files could not be made, mounted, filled or removed.
    #[error(transparent)]
    Volume(#[from] super::volumes::VolumeError),
    /// Neither the request nor the image says what to run.
    #[error("no command specified: give cmd, or use an image with a default command")]
    NoCommand,
    /// The app could not be started because of the request (bad command, missing
    /// working dir...).
    #[error("failed to start the container ({stage}): {message}")]
    StartRefused {
        /// The shim's stage.
        stage: String,
        /// The shim's message.
        message: String,
    },
    /// The shim failed to set the container up.
    #[error("failed to start the container ({stage}): {message}")]
    StartFailed {
        /// The shim's stage.
        stage: String,
        /// The shim's message.
        message: String,
    },
    /// An exec'd process could not be started because of the request (no such
    /// command, working dir or user).
    #[error("failed to exec in the container ({stage}): {message}")]
    ExecRefused {
        /// The helper's stage.
        stage: String,
        /// The helper's message.
        message: String,
    },
    /// The exec helper failed.
    #[error("failed to exec in the container ({stage}): {message}")]
    ExecFailed {
        /// The helper's stage.
        stage: String,
        /// The helper's message.
        message: String,
    },
    /// A terminal-only request on a process without a terminal, or stdin without an
    /// upgraded connection.
    #[error("{0}")]
    ExecMode(String),
    /// Another client is attached to the container's stdin.
    #[error("another client is attached to the stdin of container {0}")]
    StdinInUse(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Networking failed (the variant says how).
    #[error(transparent)]
    Network(#[from] crate::network::NetworkError),
    /// cgroups failed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// The image store failed (or refused the image).
    #[error(transparent)]
    Image(#[from] ImageError),
    /// An operation on a container's files failed (boxed: it is large and rare).
    #[error(transparent)]
    Fs(Box<super::container_fs::FsError>),
    /// The user could not be resolved.
    #[error(transparent)]
    User(#[from] UserError),
    /// The bundle could not be built.
    #[error(transparent)]
    Bundle(#[from] BundleError),
    /// Talking to a shim failed.
    #[error(transparent)]
    Shim(#[from] ShimError),
    /// A container's shim did not answer in time ([`ShimError::Timeout`]): it is
    /// stopped, stuck or starved. Deleting with force does not need it.
    #[error(
        "the shim of container {container} is not responding (stopped or stuck); \
         remove the container with force (`?force=true`, `boxctl rm -f`) to end it without the shim"
    )]
    ShimUnresponsive {
        /// The container's name.
        container: String,
        /// The timeout.
        #[source]
        source: ShimError,
    },
    /// Reading a container's resource use failed.
    #[error(transparent)]
    Stats(#[from] crate::cgroups::stats::StatsError),
    /// A file operation failed.
    #[error("failed to {op} {path}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// On what.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

impl From<super::container_fs::FsError> for RuntimeError {
    fn from(e: super::container_fs::FsError) -> Self {
        RuntimeError::Fs(Box::new(e))
    }
}

impl RuntimeError {
    pub(crate) fn io(
        op: &'static str,
        path: &std::path::Path,
    ) -> impl FnOnce(std::io::Error) -> Self {
        let path = path.to_owned();
        move |source| RuntimeError::Io { op, path, source }
    }

    pub(crate) fn invalid(field: &'static str, reason: impl Into<String>) -> Self {
        RuntimeError::Invalid {
            field,
            reason: reason.into(),
        }
    }
}
