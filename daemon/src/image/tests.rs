//! Tests of the image store: hostile archives built in memory, and the real fixtures.

use std::collections::BTreeSet;
use std::fs;
use std::io::{self, Read};
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use bytes::Bytes;

use super::*;

// ---------------------------------------------------------------------------------------
// helpers

fn fixtures() -> PathBuf {
    let dir = std::env::var_os("BOXD_TEST_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../target/fixtures"))
        });
    assert!(
        dir.join("digests.json").is_file() && dir.join("busybox-rootfs.tar.gz").is_file(),
        "test images missing in {}: run `tests/images/build-test-images.sh target/fixtures` \
         in the workspace root (or set BOXD_TEST_FIXTURES)",
        dir.display()
    );
    dir
}

fn digests() -> serde_json::Value {
    let text = fs::read_to_string(fixtures().join("digests.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn busybox_gz() -> Vec<u8> {
    fs::read(fixtures().join("busybox-rootfs.tar.gz")).unwrap()
}

fn gunzip(gz: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(gz)
        .read_to_end(&mut out)
        .unwrap();
    out
}

/// A store in a fresh temp dir (`<base>/images`); everything the store may write is
/// below `<base>`, which is what the "nothing outside" checks look at.
struct TestStore {
    base: tempfile::TempDir,
    store: ImageStore,
}

impl TestStore {
    fn new() -> Self {
        let base = tempfile::tempdir().unwrap();
        let store = ImageStore::new(base.path().join("images")).unwrap();
        TestStore { base, store }
    }

    async fn import(&self, bytes: &[u8]) -> Result<ImportedImage, ImageError> {
        // Odd-sized chunks, so that headers straddle chunk boundaries.
        let chunks: Vec<Result<Bytes, io::Error>> = bytes
            .chunks(7001)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        self.store.import(futures_util::stream::iter(chunks)).await
    }

    /// Every path below the base dir, relative to it.
    fn tree(&self) -> BTreeSet<String> {
        fn walk(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
            for e in fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let p = e.path();
                out.insert(p.strip_prefix(base).unwrap().display().to_string());
                if e.file_type().unwrap().is_dir() {
                    walk(&p, base, out);
                }
            }
        }
        let mut out = BTreeSet::new();
        walk(self.base.path(), self.base.path(), &mut out);
        out
    }

    /// After a failed import: the store holds nothing but its empty tmp dir, and
    /// nothing else appeared in the base dir.
    fn assert_pristine(&self) {
        let expected: BTreeSet<String> = ["images", "images/layers", "images/tmp"]
            .map(String::from)
            .into();
        assert_eq!(self.tree(), expected);
    }
}

enum Kind<'a> {
    File(&'a [u8]),
    Dir,
    Symlink(&'a str),
    Hardlink(&'a str),
    Fifo,
    Char(u32, u32),
}

struct E<'a> {
    name: &'a str,
    kind: Kind<'a>,
    mode: u32,
    uid: u64,
    gid: u64,
    mtime: u64,
}

fn e<'a>(name: &'a str, kind: Kind<'a>) -> E<'a> {
    let mode = match kind {
        Kind::Dir => 0o755,
        _ => 0o644,
    };
    E {
        name,
        kind,
        mode,
        uid: 0,
        gid: 0,
        mtime: 1_704_067_200,
    }
}

/// Builds a tar with raw headers: names and link names are written byte for byte, as a
/// hostile archive would (tar::Builder's path setters refuse `..`).
fn tar_of(entries: &[E]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for ent in entries {
        let mut h = tar::Header::new_gnu();
        let name = ent.name.as_bytes();
        h.as_old_mut().name[..name.len()].copy_from_slice(name);
        let (ty, data, link): (_, &[u8], Option<&str>) = match ent.kind {
            Kind::File(d) => (tar::EntryType::Regular, d, None),
            Kind::Dir => (tar::EntryType::Directory, b"", None),
            Kind::Symlink(t) => (tar::EntryType::Symlink, b"", Some(t)),
            Kind::Hardlink(t) => (tar::EntryType::Link, b"", Some(t)),
            Kind::Fifo => (tar::EntryType::Fifo, b"", None),
            Kind::Char(..) => (tar::EntryType::Char, b"", None),
        };
        if let Some(link) = link {
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
        }
        if let Kind::Char(major, minor) = ent.kind {
            h.set_device_major(major).unwrap();
            h.set_device_minor(minor).unwrap();
        }
        h.set_entry_type(ty);
        h.set_size(data.len() as u64);
        h.set_mode(ent.mode);
        h.set_uid(ent.uid);
        h.set_gid(ent.gid);
        h.set_mtime(ent.mtime);
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

/// A unique absolute path in /tmp for escape payloads (checked not to exist).
fn host_victim(tag: &str) -> PathBuf {
    let p = PathBuf::from(format!(
        "/tmp/boxd-image-test-{tag}-{:016x}",
        rand::random::<u64>()
    ));
    assert!(!p.exists());
    p
}

fn assert_unsafe(err: ImageError, reason_part: &str) {
    assert!(err.is_bad_input(), "{err:?} should be bad input");
    match err {
        ImageError::UnsafeEntry { reason, .. } => {
            assert!(
                reason.contains(reason_part),
                "reason {reason:?}, want {reason_part:?}"
            )
        }
        other => panic!("want UnsafeEntry({reason_part}), got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// hostile archives (the table of tests/images/README.md, one case at a time)

#[tokio::test]
async fn refuses_dotdot_path() {
    let t = TestStore::new();
    let victim = host_victim("dotdot");
    let name = format!(
        "{}{}",
        "../".repeat(12),
        victim.strip_prefix("/").unwrap().display()
    );
    let tar = tar_of(&[
        e("ok.txt", Kind::File(b"ok")),
        e(&name, Kind::File(b"pwned")),
    ]);
    assert_unsafe(t.import(&tar).await.unwrap_err(), "'..'");
    assert!(!victim.exists());
    t.assert_pristine();

    // A `..` that would stay inside is refused as well.
    let tar = tar_of(&[e("a/../b", Kind::File(b"x"))]);
    assert_unsafe(t.import(&tar).await.unwrap_err(), "'..'");
    t.assert_pristine();
}

#[tokio::test]
async fn refuses_absolute_path() {
    let t = TestStore::new();
    let victim = host_victim("abs");
    let tar = tar_of(&[e(victim.to_str().unwrap(), Kind::File(b"pwned"))]);
    assert_unsafe(t.import(&tar).await.unwrap_err(), "absolute");
    assert!(!victim.exists());
    t.assert_pristine();
}

#[tokio::test]
async fn escaping_symlinks_alone_are_created_not_followed() {
    let t = TestStore::new();
    let tar = tar_of(&[
        e("escape", Kind::Symlink("/")),
        e("relescape", Kind::Symlink("../../../../../../../../..")),
    ]);
    let img = t.import(&tar).await.unwrap();
    assert_eq!(
        fs::read_link(img.rootfs.join("escape")).unwrap(),
        Path::new("/")
    );
    assert_eq!(
        fs::read_link(img.rootfs.join("relescape")).unwrap(),
        Path::new("../../../../../../../../..")
    );
    assert_eq!(img.size, 0);
}

#[tokio::test]
async fn refuses_write_through_absolute_symlink() {
    let t = TestStore::new();
    let victim = host_victim("via-symlink");
    let name = format!("escape{}", victim.display());
    let tar = tar_of(&[
        e("escape", Kind::Symlink("/")),
        e(&name, Kind::File(b"pwned")),
    ]);
    assert_unsafe(t.import(&tar).await.unwrap_err(), "symlink");
    assert!(!victim.exists());
    t.assert_pristine();
}

#[tokio::test]
async fn refuses_write_through_relative_symlink() {
    let t = TestStore::new();
    let victim = host_victim("via-relsymlink");
    let name = format!("relescape{}", victim.display());
    let tar = tar_of(&[
        e("relescape", Kind::Symlink("../../../../../../../../..")),
        e(&name, Kind::File(b"pwned")),
    ]);
    assert_unsafe(t.import(&tar).await.unwrap_err(), "symlink");
    assert!(!victim.exists());
    t.assert_pristine();
}

#[tokio::test]
async fn refuses_dir_and_link_through_symlink() {
    let t = TestStore::new();
    let host = tempfile::tempdir().unwrap();
    let host_dir = host.path().to_str().unwrap().to_owned();
    for last in [
        e("escape/newdir", Kind::Dir),
        e("escape/link", Kind::Symlink("/etc/shadow")),
        e("escape/fifo", Kind::Fifo),
    ] {
        let tar = tar_of(&[e("escape", Kind::Symlink(&host_dir)), last]);
        assert_unsafe(t.import(&tar).await.unwrap_err(), "symlink");
        t.assert_pristine();
    }
    assert_eq!(fs::read_dir(host.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn refuses_hard_links_out_of_the_image() {
    let t = TestStore::new();
    // The target exists on the host, so a careless linkat would succeed.
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("boxd-evil-hardlink-target");
    fs::write(&target, "host secret").unwrap();
    let abs = target.to_str().unwrap().to_owned();
    let rel = format!("{}{}", "../".repeat(12), abs.trim_start_matches('/'));
    let via_link = format!("escape{abs}");

    let cases: Vec<(Vec<E>, &str)> = vec![
        (vec![e("hardlink-escape", Kind::Hardlink(&abs))], "absolute"),
        (vec![e("hardlink-escape", Kind::Hardlink(&rel))], "'..'"),
        (
            vec![
                e("escape", Kind::Symlink("/")),
                e("hardlink-escape", Kind::Hardlink(&via_link)),
            ],
            "symlink",
        ),
        (
            vec![e("hardlink-escape", Kind::Hardlink("missing"))],
            "not in the image",
        ),
        (
            vec![
                e("d/", Kind::Dir),
                e("hardlink-escape", Kind::Hardlink("d")),
            ],
            "directory",
        ),
    ];
    for (entries, reason) in cases {
        assert_unsafe(t.import(&tar_of(&entries)).await.unwrap_err(), reason);
        t.assert_pristine();
    }
    assert_eq!(fs::metadata(&target).unwrap().nlink(), 1);
}

#[tokio::test]
async fn later_entry_replaces_symlink_without_writing_through_it() {
    let t = TestStore::new();
    let host = tempfile::tempdir().unwrap();
    let host_file = host.path().join("keep");
    fs::write(&host_file, "host").unwrap();
    let link = host_file.to_str().unwrap().to_owned();
    let tar = tar_of(&[
        e("x", Kind::Symlink(&link)),
        e("x", Kind::File(b"image")),
        e("d", Kind::Symlink(host.path().to_str().unwrap())),
        e("d/", Kind::Dir),
        e("d/inner", Kind::File(b"in")),
    ]);
    let img = t.import(&tar).await.unwrap();
    assert_eq!(fs::read(&host_file).unwrap(), b"host");
    assert_eq!(fs::read_dir(host.path()).unwrap().count(), 1);
    let x = fs::symlink_metadata(img.rootfs.join("x")).unwrap();
    assert!(x.file_type().is_file());
    assert_eq!(fs::read(img.rootfs.join("x")).unwrap(), b"image");
    assert!(fs::symlink_metadata(img.rootfs.join("d")).unwrap().is_dir());
    assert_eq!(fs::read(img.rootfs.join("d/inner")).unwrap(), b"in");
}

#[tokio::test]
async fn later_entries_win_with_tar_semantics() {
    let t = TestStore::new();
    let tar = tar_of(&[
        e("dir/", Kind::Dir),
        e("dir/a", Kind::File(b"a")),
        // A directory over a directory keeps its contents.
        E {
            mode: 0o700,
            ..e("dir/", Kind::Dir)
        },
        e("file", Kind::File(b"old")),
        e("file", Kind::File(b"new")),
        // A file over a non-empty directory replaces the whole tree.
        e("tree/sub/f", Kind::File(b"f")),
        e("tree", Kind::File(b"now a file")),
        // And a directory over a file.
        e("was-file", Kind::File(b"x")),
        e("was-file/", Kind::Dir),
        e("was-file/y", Kind::File(b"y")),
    ]);
    let img = t.import(&tar).await.unwrap();
    let r = &img.rootfs;
    assert_eq!(fs::read(r.join("dir/a")).unwrap(), b"a");
    assert_eq!(
        fs::metadata(r.join("dir")).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert_eq!(fs::read(r.join("file")).unwrap(), b"new");
    assert_eq!(fs::read(r.join("tree")).unwrap(), b"now a file");
    assert_eq!(fs::read(r.join("was-file/y")).unwrap(), b"y");
}

#[tokio::test]
async fn normalises_names_and_creates_missing_parents() {
    let t = TestStore::new();
    let tar = tar_of(&[
        E {
            mode: 0o711,
            mtime: 12345,
            ..e("./", Kind::Dir)
        },
        e("./a//b/./c", Kind::File(b"abc")),
        e(".//x/", Kind::Dir),
    ]);
    let img = t.import(&tar).await.unwrap();
    let r = &img.rootfs;
    assert_eq!(fs::read(r.join("a/b/c")).unwrap(), b"abc");
    for implicit in ["a", "a/b"] {
        let m = fs::symlink_metadata(r.join(implicit)).unwrap();
        assert!(m.is_dir());
        assert_eq!(m.permissions().mode() & 0o7777, 0o755, "{implicit}");
    }
    assert!(r.join("x").is_dir());
    let root = fs::metadata(r).unwrap();
    assert_eq!(root.permissions().mode() & 0o7777, 0o711);
    assert_eq!(root.mtime(), 12345);
    assert_eq!(img.size, 3);
}

#[tokio::test]
async fn unpack_preserves_modes_times_and_links() {
    let t = TestStore::new();
    let tar = tar_of(&[
        E {
            mode: 0o555,
            mtime: 1000,
            ..e("ro/", Kind::Dir)
        },
        E {
            mode: 0o4755,
            mtime: 2000,
            ..e("ro/suid", Kind::File(b"#!/bin/sh\n"))
        },
        E {
            mode: 0o2711,
            ..e("ro/sgid", Kind::File(b""))
        },
        E {
            mode: 0o1777,
            mtime: 3000,
            ..e("tmp/", Kind::Dir)
        },
        e("ro/hard", Kind::Hardlink("ro/suid")),
        E {
            mode: 0o640,
            mtime: 4000,
            ..e("fifo", Kind::Fifo)
        },
        E {
            mtime: 5000,
            ..e("sh", Kind::Symlink("/bin/busybox"))
        },
        E {
            mode: 0,
            ..e("secret", Kind::File(b"s"))
        },
    ]);
    let img = t.import(&tar).await.unwrap();
    let r = &img.rootfs;
    let meta = |p: &str| fs::symlink_metadata(r.join(p)).unwrap();
    let mode = |p: &str| meta(p).permissions().mode() & 0o7777;
    assert_eq!(mode("ro"), 0o555);
    assert_eq!(
        meta("ro").mtime(),
        1000,
        "dir mtime is set after its contents"
    );
    assert_eq!(mode("ro/suid"), 0o4755);
    assert_eq!(meta("ro/suid").mtime(), 2000);
    assert_eq!(mode("ro/sgid"), 0o2711);
    assert_eq!(mode("tmp"), 0o1777);
    assert_eq!(meta("tmp").mtime(), 3000);
    assert_eq!(meta("ro/hard").ino(), meta("ro/suid").ino());
    assert_eq!(meta("ro/suid").nlink(), 2);
    assert!(meta("fifo").file_type().is_fifo());
    assert_eq!(mode("fifo"), 0o640);
    assert_eq!(meta("fifo").mtime(), 4000);
    assert!(meta("sh").file_type().is_symlink());
    assert_eq!(
        fs::read_link(r.join("sh")).unwrap(),
        Path::new("/bin/busybox")
    );
    assert_eq!(meta("sh").mtime(), 5000);
    assert_eq!(mode("secret"), 0);
    assert_eq!(img.size, 11);

    // Read-only dirs do not stop removal.
    t.store.remove(&img.id).await.unwrap();
    assert!(!t.store.exists(&img.id));
    t.assert_pristine();
}

#[tokio::test]
async fn root_unpack_preserves_ownership_and_devices() {
    boxd_testutil::require_root!();
    let t = TestStore::new();
    let tar = tar_of(&[
        E {
            uid: 1234,
            gid: 5678,
            mode: 0o750,
            ..e("./", Kind::Dir)
        },
        E {
            uid: 10,
            gid: 20,
            mode: 0o4755,
            ..e("suid", Kind::File(b"x"))
        },
        E {
            uid: 30,
            gid: 40,
            ..e("dir/", Kind::Dir)
        },
        E {
            uid: 50,
            gid: 60,
            ..e("link", Kind::Symlink("suid"))
        },
        E {
            uid: 70,
            gid: 80,
            ..e("fifo", Kind::Fifo)
        },
        E {
            uid: 0,
            gid: 0,
            mode: 0o666,
            ..e("null", Kind::Char(1, 3))
        },
    ]);
    let img = t.import(&tar).await.unwrap();
    let r = &img.rootfs;
    let meta = |p: &str| fs::symlink_metadata(r.join(p)).unwrap();
    let owner = |p: &str| (meta(p).uid(), meta(p).gid());
    assert_eq!(
        (
            fs::metadata(r).unwrap().uid(),
            fs::metadata(r).unwrap().gid()
        ),
        (1234, 5678)
    );
    assert_eq!(owner("suid"), (10, 20));
    // chown happened before chmod, so setuid survived.
    assert_eq!(meta("suid").permissions().mode() & 0o7777, 0o4755);
    assert_eq!(owner("dir"), (30, 40));
    assert_eq!(owner("link"), (50, 60), "lchown, not chown of the target");
    assert_eq!(owner("fifo"), (70, 80));
    let null = meta("null");
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), nix::sys::stat::makedev(1, 3));
    assert_eq!(null.permissions().mode() & 0o7777, 0o666);
}

// ---------------------------------------------------------------------------------------
// bad bodies

#[tokio::test]
async fn bad_bodies_are_bad_input_and_leave_nothing() {
    let t = TestStore::new();
    let gz = busybox_gz();
    let plain = gunzip(&gz);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty", Vec::new()),
        (
            "not a tar",
            b"hello, this is not a tarball at all\n".repeat(100),
        ),
        ("short garbage", b"hello".to_vec()),
        ("truncated gzip", gz[..gz.len() / 2].to_vec()),
        ("gzip header only", gz[..20].to_vec()),
        ("truncated tar", plain[..plain.len() / 2 + 100].to_vec()),
        ("xz", vec![0xfd, b'7', b'z', b'X', b'Z', 0, 1, 2, 3]),
        (
            "corrupt zstd",
            vec![0x28, 0xb5, 0x2f, 0xfd, 0xff, 0xff, 0xff, 0xff],
        ),
    ];
    for (what, body) in cases {
        let err = t.import(&body).await.unwrap_err();
        assert!(err.is_bad_input(), "{what}: {err:?} should be bad input");
        t.assert_pristine();
    }

    // Cut inside the busybox binary's data: named as such, not just "corrupt".
    let err = t.import(&plain[..plain.len() / 2]).await.unwrap_err();
    assert!(
        matches!(&err, ImageError::TruncatedEntry { path } if path == "bin/busybox"),
        "{err:?}"
    );
    t.assert_pristine();
}

#[tokio::test]
async fn body_stream_error_leaves_nothing() {
    let t = TestStore::new();
    let chunks: Vec<Result<Bytes, io::Error>> = vec![
        Ok(Bytes::from_static(b"partial")),
        Err(io::Error::new(
            io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ];
    let err = t
        .store
        .import(futures_util::stream::iter(chunks))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::ReadBody(_)), "{err:?}");
    t.assert_pristine();
}

// ---------------------------------------------------------------------------------------
// ids and store bookkeeping

#[test]
fn ids_are_validated_before_building_paths() {
    let hex = "a".repeat(64);
    assert_eq!(parse_id(&format!("sha256:{hex}")).unwrap(), hex);
    for bad in [
        String::new(),
        hex.clone(),
        format!("sha256:{}", "A".repeat(64)),
        format!("sha256:{}", "a".repeat(63)),
        format!("sha256:{}", "a".repeat(65)),
        format!("sha512:{hex}"),
        "sha256:../../../../etc".into(),
        format!("sha256:{}/..", "a".repeat(61)),
    ] {
        assert!(
            matches!(parse_id(&bad), Err(ImageError::InvalidId(_))),
            "{bad:?}"
        );
    }
    let t = TestStore::new();
    let p = t.store.rootfs("sha256:../../etc");
    assert!(p.starts_with(t.store.dir()));
    assert!(!p.exists());
    assert!(!t.store.exists("sha256:../../etc"));
    assert!(!t.store.exists(&format!("sha256:{hex}")));
}

#[tokio::test]
async fn remove_is_idempotent_and_refuses_bad_ids() {
    let t = TestStore::new();
    let err = t.store.remove("sha256:..").await.unwrap_err();
    assert!(matches!(err, ImageError::InvalidId(_)) && err.is_bad_input());
    t.store
        .remove(&format!("sha256:{}", "b".repeat(64)))
        .await
        .unwrap();
}

#[tokio::test]
async fn list_ids_and_clean_tmp() {
    let t = TestStore::new();
    let img = t
        .import(&tar_of(&[e("f", Kind::File(b"1"))]))
        .await
        .unwrap();
    let img2 = t
        .import(&tar_of(&[e("g", Kind::File(b"2"))]))
        .await
        .unwrap();
    // Junk that is not an image.
    fs::create_dir(t.store.dir().join("not-an-image")).unwrap();
    fs::write(t.store.dir().join("c".repeat(64)), "a file, not a dir").unwrap();
    let mut want = vec![img.id.clone(), img2.id.clone()];
    want.sort();
    assert_eq!(t.store.list_layers().unwrap(), want);
    // Nothing is left in the pre-layer layout.
    assert!(t.store.list_ids().unwrap().is_empty());

    // Leftovers of a crash, including a read-only tree and a symlink out of the store.
    let tmp = t.store.dir().join("tmp");
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("keep"), "keep").unwrap();
    fs::create_dir_all(tmp.join("import-1/rootfs/ro/deeper")).unwrap();
    fs::write(tmp.join("import-1/rootfs/ro/deeper/f"), "x").unwrap();
    std::os::unix::fs::symlink(outside.path(), tmp.join("import-1/rootfs/ro/out")).unwrap();
    fs::set_permissions(
        tmp.join("import-1/rootfs/ro/deeper"),
        fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    fs::set_permissions(
        tmp.join("import-1/rootfs/ro"),
        fs::Permissions::from_mode(0o000),
    )
    .unwrap();
    fs::write(tmp.join("body-1"), "partial").unwrap();
    t.store.clean_tmp().unwrap();
    assert_eq!(fs::read_dir(&tmp).unwrap().count(), 0);
    assert_eq!(fs::read(outside.path().join("keep")).unwrap(), b"keep");
    assert!(t.store.exists(&img.id));
}

#[test]
fn new_makes_the_store_private() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("images");
    fs::create_dir(&dir).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o755)).unwrap();
    let store = ImageStore::new(dir.clone()).unwrap();
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(
        fs::metadata(dir.join("tmp")).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert_eq!(store.dir(), dir);
}

#[test]
fn error_messages_do_not_repeat_their_source() {
    let err = ImageError::Unpack {
        path: "bin/sh".into(),
        source: io::Error::other("disk on fire"),
    };
    assert_eq!(err.to_string(), "failed to unpack bin/sh");
    assert!(!err.is_bad_input());
    let err = ImageError::UnsafeEntry {
        path: "../x".into(),
        reason: "path has a '..' component",
    };
    assert_eq!(
        err.to_string(),
        "unsafe archive entry ../x: path has a '..' component"
    );
}

// ---------------------------------------------------------------------------------------
// the real fixtures

#[tokio::test]
async fn imports_busybox_fixture() {
    let t = TestStore::new();
    let want = digests()["busybox-rootfs.tar.gz"]["uncompressed_sha256"]
        .as_str()
        .expect("digests.json lacks busybox-rootfs.tar.gz.uncompressed_sha256")
        .to_owned();
    let img = t.import(&busybox_gz()).await.unwrap();
    assert_eq!(img.id, want);
    assert_eq!(img.rootfs, t.store.rootfs(&img.id));
    assert!(t.store.exists(&img.id));

    let r = &img.rootfs;
    let sh = fs::symlink_metadata(r.join("bin/sh")).unwrap();
    assert!(sh.file_type().is_symlink());
    assert_eq!(
        fs::read_link(r.join("bin/sh")).unwrap(),
        Path::new("busybox")
    );
    let bb = fs::symlink_metadata(r.join("bin/busybox")).unwrap();
    assert!(bb.file_type().is_file());
    assert_eq!(bb.permissions().mode() & 0o7777, 0o755);
    assert_eq!(
        fs::metadata(r.join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    assert_eq!(
        fs::metadata(r.join("root")).unwrap().permissions().mode() & 0o7777,
        0o700
    );
    assert!(fs::read_to_string(r.join("etc/passwd"))
        .unwrap()
        .starts_with("root:x:0:0:"));
    assert!(
        img.size >= bb.len(),
        "size {} counts the busybox binary",
        img.size
    );
    assert_eq!(
        users::resolve(r, "nobody").unwrap(),
        users::ResolvedUser {
            uid: 65534,
            gid: 65534,
            additional_gids: vec![]
        }
    );

    // Same content again: same id, one copy, nothing left in tmp.
    let again = t.import(&busybox_gz()).await.unwrap();
    assert_eq!(again, img);
    assert_eq!(t.store.list_layers().unwrap(), vec![img.id.clone()]);
    assert_eq!(fs::read_dir(t.store.dir().join("tmp")).unwrap().count(), 0);

    t.store.remove(&img.id).await.unwrap();
    t.store.remove(&img.id).await.unwrap();
    assert!(!t.store.exists(&img.id));
    t.assert_pristine();
}

#[tokio::test]
async fn plain_and_zstd_give_the_same_id() {
    let t = TestStore::new();
    let want = digests()["busybox-rootfs.tar.gz"]["uncompressed_sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let plain = gunzip(&busybox_gz());
    let zst = zstd::encode_all(&plain[..], 3).unwrap();
    let from_plain = t.import(&plain).await.unwrap();
    let from_zstd = t.import(&zst).await.unwrap();
    assert_eq!(from_plain.id, want);
    assert_eq!(from_zstd, from_plain);
    assert_eq!(t.store.list_layers().unwrap(), vec![want]);
}

#[tokio::test]
async fn refuses_evil_fixture() {
    let t = TestStore::new();
    let evil = fs::read(fixtures().join("evil-rootfs.tar")).unwrap();
    let victims = [
        "/tmp/pwned",
        "/tmp/pwned-via-symlink",
        "/tmp/pwned-via-relsymlink",
        "/tmp/boxd-evil-hardlink-target",
        "/abs/path",
    ];
    // Another test run may have left one behind; then "not created" means "unchanged".
    let before: Vec<Option<(u64, i64, u64)>> = victims
        .iter()
        .map(|v| {
            fs::symlink_metadata(v)
                .ok()
                .map(|m| (m.ino(), m.mtime(), m.len()))
        })
        .collect();
    let err = t.import(&evil).await.unwrap_err();
    assert!(err.is_bad_input(), "{err:?}");
    assert!(matches!(err, ImageError::UnsafeEntry { .. }), "{err:?}");
    t.assert_pristine();
    for (v, was) in victims.iter().zip(before) {
        let now = fs::symlink_metadata(v)
            .ok()
            .map(|m| (m.ino(), m.mtime(), m.len()));
        assert_eq!(now, was, "{v} was created or changed");
    }
}

#[test]
fn legacy_images_move_into_the_layer_store() {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("images");
    let hex = "d".repeat(64);
    fs::create_dir_all(dir.join(&hex).join("rootfs/bin")).unwrap();
    fs::write(dir.join(&hex).join("rootfs/bin/sh"), "sh").unwrap();
    let store = ImageStore::new(dir.clone()).unwrap();
    let id = format!("sha256:{hex}");
    assert!(store.exists(&id));
    assert_eq!(
        store.rootfs(&id),
        dir.join("layers").join(&hex).join("rootfs")
    );
    assert_eq!(fs::read(store.rootfs(&id).join("bin/sh")).unwrap(), b"sh");
    assert!(!dir.join(&hex).exists());
    // Opening again is a no-op.
    let store = ImageStore::new(dir).unwrap();
    assert!(store.exists(&id));
}

/// Applies `layered-top-layer.tar` over the busybox layer as an overlay would see it.
#[tokio::test]
async fn root_layer_whiteouts_become_overlay_whiteouts() {
    boxd_testutil::require_root!();
    let t = TestStore::new();
    let d = digests();
    let top = fixtures().join("layered-top-layer.tar");
    let want = d["layered-oci"]["latest"]["diff_ids"][1]
        .as_str()
        .expect("digests.json lacks layered diff_ids")
        .to_owned();
    let parent = format!("sha256:{}", "e".repeat(64));
    let layer = t
        .store
        .apply_layer(&top, Some(&parent), Some(&want))
        .await
        .unwrap();
    assert_eq!(layer.diff_id, want);
    assert_eq!(layer.chain_id, layers::chain_of(Some(&parent), &want));
    let r = t.store.rootfs(&layer.chain_id);
    let motd = fs::symlink_metadata(r.join("etc/motd")).unwrap();
    assert!(
        motd.file_type().is_char_device(),
        "etc/motd is not a whiteout"
    );
    assert_eq!(motd.rdev(), 0);
    assert!(!r.join("etc/.wh.motd").exists());
    let opq = xattr::get(r.join("etc/fixture.d"), "trusted.overlay.opaque").unwrap();
    assert_eq!(opq.as_deref(), Some(&b"y"[..]));
    assert!(!r.join("etc/fixture.d/.wh..wh..opq").exists());
    assert_eq!(
        fs::read(r.join("hello.txt")).unwrap(),
        b"hello from layer 2\n"
    );

    // A wrong diff_id publishes nothing.
    let other = format!("sha256:{}", "f".repeat(64));
    let err = t
        .store
        .apply_layer(&top, None, Some(&other))
        .await
        .unwrap_err();
    assert!(matches!(err, ImageError::DigestMismatch { .. }), "{err:?}");
    assert_eq!(t.store.list_layers().unwrap(), vec![layer.chain_id.clone()]);
    assert_eq!(fs::read_dir(t.store.dir().join("tmp")).unwrap().count(), 0);
}
