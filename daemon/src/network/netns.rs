//! Named network namespaces: a namespace kept alive by a bind mount of its nsfs file
//! on `<state_dir>/netns/<container id>`, as `ip netns add` and containerd make them.
//!
//! The daemon makes a container's namespace before its shim runs, so that the CNI
//! plugins can attach it first and the shim only joins it (`setns`), and so that DEL
//! after a crash finds it by path. The namespace is made on a thread of its own that
//! exits right after: `unshare(CLONE_NEWNET)` changes only the calling thread, and a
//! thread of tokio's blocking pool must not stay in a container's namespace.

use std::io;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};
use nix::sched::CloneFlags;

/// Makes a new network namespace pinned at `path` (which must not exist).
pub async fn create(path: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || create_blocking(&path))
        .await
        .expect("netns creation panicked")
}

fn create_blocking(path: &Path) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    let target = path.to_owned();
    let made = std::thread::spawn(move || -> nix::Result<()> {
        nix::sched::unshare(CloneFlags::CLONE_NEWNET)?;
        nix::mount::mount(
            Some("/proc/thread-self/ns/net"),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
    })
    .join()
    .expect("netns thread panicked");
    if let Err(e) = made {
        let _ = std::fs::remove_file(path);
        return Err(io::Error::from(e));
    }
    Ok(())
}

/// Unpins and removes the namespace at `path`; what is already gone is fine. The
/// namespace itself ends when its last process does.
pub async fn remove(path: PathBuf) -> io::Result<()> {
    tokio::task::spawn_blocking(move || remove_blocking(&path))
        .await
        .expect("netns removal panicked")
}

fn remove_blocking(path: &Path) -> io::Result<()> {
    match nix::mount::umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(Errno::EINVAL) | Err(Errno::ENOENT) => {}
        Err(e) => return Err(io::Error::from(e)),
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// The pinned namespaces under `dir` (file name = container id).
pub fn list(dir: &Path) -> Vec<(String, PathBuf)> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                .collect()
        })
        .unwrap_or_default()
}
