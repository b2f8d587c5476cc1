//! A recording [`Sys`] for unit tests: it keeps a map of paths to fake entries (so
//! lstat/readlink/mkdir behave), and records every call as one line of text so tests
//! can assert the order of the set-up.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::mount::{MntFlags, MsFlags};

use crate::sys::{FileKind, Sys};

/// A fake filesystem entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Entry {
    Dir,
    File,
    CharDevice,
    Symlink(PathBuf),
}

#[derive(Default)]
pub(crate) struct FakeSys {
    entries: RefCell<HashMap<PathBuf, Entry>>,
    calls: RefCell<Vec<String>>,
    fail_on: RefCell<Option<(String, Errno)>>,
}

fn flags_text<I: Iterator<Item = (&'static str, T)>, T>(names: I) -> String {
    let names: Vec<&str> = names
        .map(|(n, _)| n.trim_start_matches("MS_").trim_start_matches("MNT_"))
        .collect();
    if names.is_empty() {
        "-".into()
    } else {
        names.join("|")
    }
}

impl FakeSys {
    pub(crate) fn new() -> Self {
        Self::default()
    }

    pub(crate) fn add(&self, path: &str, entry: Entry) {
        self.entries.borrow_mut().insert(path.into(), entry);
    }

    /// Make the first call whose text starts with `prefix` fail with `errno`.
    pub(crate) fn fail_on(&self, prefix: &str, errno: Errno) {
        *self.fail_on.borrow_mut() = Some((prefix.to_string(), errno));
    }

    pub(crate) fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    fn record(&self, call: String) -> nix::Result<()> {
        let failing =
            matches!(&*self.fail_on.borrow(), Some((p, _)) if call.starts_with(p.as_str()));
        self.calls.borrow_mut().push(call);
        if failing {
            let (_, errno) = self.fail_on.borrow_mut().take().expect("checked above");
            return Err(errno);
        }
        Ok(())
    }
}

fn opt<T: AsRef<Path>>(p: Option<T>) -> String {
    p.map_or("-".into(), |p| p.as_ref().display().to_string())
}

impl Sys for FakeSys {
    fn mount(
        &self,
        source: Option<&Path>,
        target: &Path,
        fstype: Option<&str>,
        flags: MsFlags,
        data: Option<&str>,
    ) -> nix::Result<()> {
        self.record(format!(
            "mount {} {} {} {} {}",
            opt(source),
            target.display(),
            fstype.unwrap_or("-"),
            flags_text(flags.iter_names()),
            data.unwrap_or("-")
        ))
    }

    fn umount2(&self, target: &Path, flags: MntFlags) -> nix::Result<()> {
        self.record(format!(
            "umount2 {} {}",
            target.display(),
            flags_text(flags.iter_names())
        ))
    }

    fn lstat(&self, path: &Path) -> nix::Result<Option<FileKind>> {
        Ok(self.entries.borrow().get(path).map(|e| match e {
            Entry::Dir => FileKind::Dir,
            Entry::File => FileKind::Other,
            Entry::CharDevice => FileKind::CharDevice,
            Entry::Symlink(_) => FileKind::Symlink,
        }))
    }

    fn is_dir(&self, path: &Path) -> bool {
        self.entries.borrow().get(path) == Some(&Entry::Dir)
    }

    fn readlink(&self, path: &Path) -> nix::Result<PathBuf> {
        match self.entries.borrow().get(path) {
            Some(Entry::Symlink(t)) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn mkdir(&self, path: &Path, _mode: u32) -> nix::Result<()> {
        self.record(format!("mkdir {}", path.display()))?;
        self.entries
            .borrow_mut()
            .insert(path.to_path_buf(), Entry::Dir);
        Ok(())
    }

    fn create_file(&self, path: &Path, _mode: u32) -> nix::Result<()> {
        self.record(format!("create_file {}", path.display()))?;
        self.entries
            .borrow_mut()
            .insert(path.to_path_buf(), Entry::File);
        Ok(())
    }

    fn mknod_char(&self, path: &Path, mode: u32, major: u64, minor: u64) -> nix::Result<()> {
        self.record(format!("mknod {} {mode:o} {major}:{minor}", path.display()))?;
        self.entries
            .borrow_mut()
            .insert(path.to_path_buf(), Entry::CharDevice);
        Ok(())
    }

    fn symlink(&self, target: &Path, link: &Path) -> nix::Result<()> {
        self.record(format!("symlink {} {}", target.display(), link.display()))?;
        self.entries
            .borrow_mut()
            .insert(link.to_path_buf(), Entry::Symlink(target.to_path_buf()));
        Ok(())
    }

    fn unlink(&self, path: &Path) -> nix::Result<()> {
        self.record(format!("unlink {}", path.display()))?;
        self.entries.borrow_mut().remove(path);
        Ok(())
    }

    fn chdir(&self, path: &Path) -> nix::Result<()> {
        self.record(format!("chdir {}", path.display()))
    }

    fn pivot_root(&self, new_root: &Path, put_old: &Path) -> nix::Result<()> {
        self.record(format!(
            "pivot_root {} {}",
            new_root.display(),
            put_old.display()
        ))
    }

    fn sethostname(&self, name: &str) -> nix::Result<()> {
        self.record(format!("sethostname {name}"))
    }

    fn loopback_up(&self) -> nix::Result<()> {
        self.record("loopback_up".into())
    }

    fn write_sysctl(&self, key: &str, value: &str) -> nix::Result<()> {
        self.record(format!("sysctl {key}={value}"))
    }

    fn move_mount(&self, _mount: std::os::fd::BorrowedFd<'_>, target: &Path) -> nix::Result<()> {
        self.record(format!("move_mount {}", target.display()))
    }

    fn idmapped_clone(
        &self,
        path: &Path,
        _userns: std::os::fd::BorrowedFd<'_>,
    ) -> nix::Result<std::os::fd::OwnedFd> {
        self.record(format!("idmapped_clone {}", path.display()))?;
        // Any live descriptor stands for the detached mount.
        std::fs::File::open("/dev/null")
            .map(std::os::fd::OwnedFd::from)
            .map_err(|_| Errno::EBADF)
    }
}
