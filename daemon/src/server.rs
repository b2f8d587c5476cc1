//! Wiring: the root lock, store, cgroups, image store, runtime and the API on a Unix
//! socket; graceful shutdown that leaves containers running.

use std::fs::File;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::fcntl::{Flock, FlockArg};
use tokio::net::UnixListener;

use crate::api::{router, AppState};
use crate::config::Config;
use crate::events::EventBus;
use crate::image::ImageStore;
use crate::runtime::{HostInfo, Runtime, RuntimeError};
use crate::store::{Store, StoreError};

/// How long in-flight requests may take after a shutdown signal (streams such as
/// `logs?follow` and `events` would otherwise hold the daemon forever).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Errors starting or running the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A directory could not be made.
    #[error("failed to create {path}")]
    CreateDir {
        /// The dir.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds the root.
    #[error("another boxd is already running with root {0} (its lock file is held); stop it or use another --root")]
    AlreadyRunning(PathBuf),
    /// The lock file could not be taken.
    #[error("failed to lock {path}")]
    Lock {
        /// The lock file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Someone answers on the socket already.
    #[error("another daemon is listening on {0}; stop it or use another --socket")]
    SocketInUse(PathBuf),
    /// Binding the socket failed.
    #[error("failed to listen on {path}")]
    Bind {
        /// The socket.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Binding `metrics_address` failed.
    #[error("failed to listen on {addr} (metrics_address)")]
    BindTcp {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The store failed to open.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// cgroups could not be set up.
    #[error(transparent)]
    Cgroup(#[from] crate::cgroups::CgroupError),
    /// The image store could not be opened.
    #[error(transparent)]
    Image(#[from] crate::image::ImageError),
    /// Reconcile failed.
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// Serving failed.
    #[error("the API server failed")]
    Serve(#[source] std::io::Error),
}

fn create_dir(path: &Path, mode: u32) -> Result<(), ServerError> {
    std::fs::create_dir_all(path).map_err(|source| ServerError::CreateDir {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).map_err(|source| {
        ServerError::CreateDir {
            path: path.to_owned(),
            source,
        }
    })
}

/// Takes the exclusive lock on the root; held for the life of the daemon.
fn lock_root(root: &Path) -> Result<Flock<File>, ServerError> {
    let path = root.join("boxd.lock");
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|source| ServerError::Lock {
            path: path.clone(),
            source,
        })?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| {
        if errno == nix::errno::Errno::EWOULDBLOCK {
            ServerError::AlreadyRunning(root.to_owned())
        } else {
            ServerError::Lock {
                path,
                source: errno.into(),
            }
        }
    })
}

/// The socket systemd passed (socket activation, `LISTEN_FDS`), if any. systemd then owns
/// the socket file, its mode and group (`systemd/boxd.socket`).
fn activated_socket() -> Result<Option<UnixListener>, ServerError> {
    let inherited = listenfd::ListenFd::from_env()
        .take_unix_listener(0)
        .map_err(|source| ServerError::Bind {
            path: "LISTEN_FDS".into(),
            source,
        })?;
    let Some(std_listener) = inherited else {
        return Ok(None);
    };
    std_listener
        .set_nonblocking(true)
        .and_then(|()| UnixListener::from_std(std_listener))
        .map(Some)
        .map_err(|source| ServerError::Bind {
            path: "LISTEN_FDS".into(),
            source,
        })
}

/// Binds the API socket: a stale socket file is replaced, a live one is refused.
/// Mode 0660, group `boxd` when that group exists: access to it is root-equivalent.
async fn bind_socket(path: &Path) -> Result<UnixListener, ServerError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ServerError::SocketInUse(path.to_owned()));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|source| ServerError::CreateDir {
            path: parent.to_owned(),
            source,
        })?;
    }
    let listener = UnixListener::bind(path).map_err(|source| ServerError::Bind {
        path: path.to_owned(),
        source,
    })?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660)).map_err(|source| {
        ServerError::Bind {
            path: path.to_owned(),
            source,
        }
    })?;
    if let Ok(Some(group)) = nix::unistd::Group::from_name("boxd") {
        if let Err(e) = nix::unistd::chown(path, None, Some(group.gid)) {
            tracing::warn!(error = %e, "failed to give the socket to group boxd");
        }
    }
    Ok(listener)
}

fn kernel_release() -> String {
    nix::sys::utsname::uname()
        .map(|u| u.release().to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// Runs the daemon until SIGTERM or SIGINT.
pub async fn run(config: Config) -> Result<(), ServerError> {
    create_dir(&config.root, 0o711)?;
    create_dir(&config.state_dir, 0o711)?;
    let _lock = lock_root(&config.root)?;

    let store = Store::open(&config.db_path())
        .await?
        .with_exits_max(config.exits_max_per_container);
    let cgroups = crate::cgroups::detect(config.cgroup_parent.as_deref())?;
    let images =
        ImageStore::new(config.root.join("images"))?.with_max_member(config.max_archive_member);
    let events = EventBus::new(store.clone());
    let info = HostInfo {
        kernel: kernel_release(),
        root_dir: config.root.clone(),
        state_dir: config.state_dir.clone(),
        log_rotation: config.log_rotation(),
        userns_range: config.userns_range,
        network: config.network.clone(),
    };
    // Reconcile runs inside `new`, before the socket answers.
    let runtime = Runtime::new(
        store.clone(),
        events,
        images,
        cgroups,
        config.shim.clone(),
        info,
    )
    .await?;
    let retention = runtime.spawn_event_retention(config.events_max, config.events_max_age);

    let (listener, activated) = match activated_socket()? {
        Some(l) => (l, true),
        None => (bind_socket(&config.socket).await?, false),
    };
    tracing::info!(socket = %config.socket.display(), activated, root = %config.root.display(), "boxd is ready");
    // READY=1 only now: reconcile is done and the socket answers (systemd Type=notify).
    notify(&[sd_notify::NotifyState::Ready]);

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let metrics = crate::metrics::Metrics::new(&store);
    // `/metrics` on TCP for scrapers that cannot reach a Unix socket; only that path.
    let metrics_server = match config.metrics_address {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::BindTcp { addr, source })?;
            if !addr.ip().is_loopback() {
                tracing::warn!(%addr, "metrics_address is not a loopback address: container names and ids are visible to whoever reaches it");
            }
            tracing::info!(%addr, "metrics ready");
            let app = crate::metrics::tcp_router(metrics.clone(), runtime.clone());
            Some(tokio::spawn(
                async move { axum::serve(listener, app).await },
            ))
        }
        None => None,
    };
    let app = router(AppState {
        runtime,
        limits: config.limits(),
        docker: Default::default(),
        metrics,
    });
    // Docker clients' own socket (`DOCKER_HOST`, or a /var/run/docker.sock link to it):
    // the same router, the same permissions rule.
    let (docker_stop, docker_server) = match &config.docker_socket {
        Some(path) => {
            let listener = bind_socket(path).await?;
            tracing::info!(socket = %path.display(), "Docker API socket ready");
            let (tx, rx) = tokio::sync::oneshot::channel::<()>();
            let app = app.clone();
            let server = tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(async {
                        let _ = rx.await;
                    })
                    .await
            });
            (Some(tx), Some(server))
        }
        None => (None, None),
    };
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let mut server = server;
    let served = tokio::select! {
        res = &mut server => Some(res),
        () = shutdown_signal() => None,
    };
    let result = match served {
        Some(res) => res
            .map_err(|e| ServerError::Serve(std::io::Error::other(e)))?
            .map_err(ServerError::Serve),
        None => {
            tracing::info!("shutting down; containers keep running");
            notify(&[sd_notify::NotifyState::Stopping]);
            let _ = stop_tx.send(());
            if tokio::time::timeout(SHUTDOWN_GRACE, &mut server)
                .await
                .is_err()
            {
                tracing::info!("requests still open after {SHUTDOWN_GRACE:?}; closing them");
                server.abort();
            }
            Ok(())
        }
    };
    if let Some(tx) = docker_stop {
        let _ = tx.send(());
    }
    if let Some(server) = docker_server {
        if tokio::time::timeout(SHUTDOWN_GRACE, server).await.is_err() {
            tracing::info!("Docker API requests still open; closing them");
        }
    }
    if let Some(path) = &config.docker_socket {
        let _ = std::fs::remove_file(path);
    }
    if !activated {
        let _ = std::fs::remove_file(&config.socket);
    }
    if let Some(server) = metrics_server {
        // Scrapes are short and hold nothing: no grace needed.
        server.abort();
    }
    retention.abort();
    store.close().await;
    result
}

/// Tells systemd about the daemon's state; a no-op when not run by systemd
/// (`NOTIFY_SOCKET` unset).
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        tracing::warn!(error = %e, "failed to notify systemd");
    }
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
}
