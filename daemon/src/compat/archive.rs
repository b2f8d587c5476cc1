//! `/containers/{id}/archive`, `/export` and `/changes`: what `docker cp` (both
//! directions), `docker export` and `docker diff` call.
//!
//! The engine reaches and walks the container's files safely
//! ([`crate::runtime::container_fs`]); this module speaks Docker's wire: the
//! `X-Docker-Container-Path-Stat` header (base64 of `{name,size,mode,mtime,linkTarget}`,
//! `mode` in Go's `os.FileMode` bits), tar bodies named by the path's base name as
//! dockerd names them, and Docker's messages. Every filesystem call runs on the
//! blocking pool; tar bodies stream through a bounded channel, so an export is never
//! held in memory, and a client that goes away stops the walk at its next write.

use std::io::{self, Read, Write};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::error::{bool_value, DockerError, DockerQuery};
use crate::api::AppState;
use crate::runtime::container_fs::{ContainerFs, FsError, Resolved};
use crate::runtime::spec::Container;
use crate::runtime::RuntimeError;

/// Chunks in flight between the walking thread and the response.
const CHANNEL_DEPTH: usize = 16;
/// Bytes per chunk sent.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
pub(super) struct ArchiveQuery {
    path: Option<String>,
    #[serde(rename = "noOverwriteDirNonDir")]
    no_overwrite_dir_non_dir: Option<String>,
    #[serde(rename = "copyUIDGID")]
    copy_uid_gid: Option<String>,
}

/// Docker's `container.PathStat`.
#[derive(Debug, Serialize)]
struct PathStat {
    name: String,
    size: i64,
    mode: u32,
    mtime: String,
    #[serde(rename = "linkTarget")]
    link_target: String,
}

/// Go's `os.FileMode` of a `st_mode`: the permission bits plus one flag bit per type
/// and for setuid, setgid and sticky (Go's `io/fs` constants).
fn go_mode(st_mode: u32) -> u32 {
    const DIR: u32 = 1 << 31;
    const SYMLINK: u32 = 1 << 27;
    const DEVICE: u32 = 1 << 26;
    const NAMED_PIPE: u32 = 1 << 25;
    const SOCKET: u32 = 1 << 24;
    const SETUID: u32 = 1 << 23;
    const SETGID: u32 = 1 << 22;
    const CHAR_DEVICE: u32 = 1 << 21;
    const STICKY: u32 = 1 << 20;
    let mut mode = st_mode & 0o777;
    mode |= match st_mode & libc::S_IFMT {
        libc::S_IFDIR => DIR,
        libc::S_IFLNK => SYMLINK,
        libc::S_IFBLK => DEVICE,
        libc::S_IFCHR => DEVICE | CHAR_DEVICE,
        libc::S_IFIFO => NAMED_PIPE,
        libc::S_IFSOCK => SOCKET,
        _ => 0,
    };
    if st_mode & libc::S_ISUID != 0 {
        mode |= SETUID;
    }
    if st_mode & libc::S_ISGID != 0 {
        mode |= SETGID;
    }
    if st_mode & libc::S_ISVTX != 0 {
        mode |= STICKY;
    }
    mode
}

/// The name dockerd gives a path's archive entries: the base name of the absolute
/// path, keeping a trailing `/.` (the CLI's "contents of") as `.`.
fn base_name(path: &str) -> String {
    if path.ends_with("/.") || path == "." {
        return ".".to_owned();
    }
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .filter(|b| !b.is_empty())
        .unwrap_or("/")
        .to_owned()
}

fn stat_header(fs: &ContainerFs, r: &Resolved, asked: &str) -> HeaderValue {
    let mtime = chrono::DateTime::from_timestamp(r.stat.st_mtime, r.stat.st_mtime_nsec as u32)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
    let stat = PathStat {
        name: base_name(asked),
        size: r.stat.st_size,
        mode: go_mode(r.stat.st_mode),
        mtime,
        link_target: fs.link_target(r),
    };
    let json = serde_json::to_vec(&stat).expect("a path stat serialises");
    HeaderValue::from_str(&base64::engine::general_purpose::STANDARD.encode(json))
        .expect("base64 is a valid header value")
}

/// The path of the query, made absolute (the CLI may send `tmp/x`).
fn asked_path(q: &ArchiveQuery) -> Result<String, DockerError> {
    let p = q
        .path
        .as_deref()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| DockerError::bad("bad parameter: path cannot be empty"))?;
    if p.contains('\0') {
        return Err(DockerError::bad("bad parameter: path contains a NUL byte"));
    }
    Ok(if p.starts_with('/') {
        p.to_owned()
    } else {
        format!("/{p}")
    })
}

/// Docker's answer for a path the container does not have.
fn fs_error(e: RuntimeError, path: &str, container: &str) -> DockerError {
    match e {
        RuntimeError::Fs(f) if matches!(*f, FsError::NotFound { .. }) => DockerError::new(
            StatusCode::NOT_FOUND,
            format!("Could not find the file {path} in container {container}"),
        ),
        e => e.into(),
    }
}

/// Opens the container's root and resolves `path` in it (the last component is not
/// followed, as dockerd), on the blocking pool.
async fn open_path(
    s: &AppState,
    id: &str,
    path: &str,
) -> Result<(Container, ContainerFs, Resolved), DockerError> {
    let (c, fs) = s.runtime.container_fs(id).await?;
    let (fs, resolved) = resolve_blocking(fs, path, false).await;
    let r = resolved.map_err(|e| fs_error(e.into(), path, id))?;
    Ok((c, fs, r))
}

/// [`ContainerFs::resolve`] off the async workers (it walks the container's
/// directories); the view comes back with the answer.
async fn resolve_blocking(
    fs: ContainerFs,
    path: &str,
    follow_last: bool,
) -> (
    ContainerFs,
    Result<Resolved, crate::runtime::container_fs::FsError>,
) {
    let p = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let r = fs.resolve(&p, follow_last);
        (fs, r)
    })
    .await
    .expect("resolve does not panic")
}

/// `HEAD /containers/{id}/archive?path=`: the stat header only.
pub(super) async fn stat(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ArchiveQuery>,
) -> Result<Response, DockerError> {
    let path = asked_path(&q)?;
    let (_, fs, r) = open_path(&s, &id, &path).await?;
    let value = tokio::task::spawn_blocking(move || stat_header(&fs, &r, &path))
        .await
        .expect("stat does not panic");
    Ok((StatusCode::OK, [("x-docker-container-path-stat", value)]).into_response())
}

/// `GET /containers/{id}/archive?path=`: a tar of the path, with the stat header.
pub(super) async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ArchiveQuery>,
) -> Result<Response, DockerError> {
    let path = asked_path(&q)?;
    let (_, fs, r) = open_path(&s, &id, &path).await?;
    let name = match base_name(&path).as_str() {
        // The root's entries are `./bin`, ...
        "/" => ".".to_owned(),
        other => other.to_owned(),
    };
    let (fs, r, header_value) = {
        let path = path.clone();
        tokio::task::spawn_blocking(move || {
            let value = stat_header(&fs, &r, &path);
            (fs, r, value)
        })
        .await
        .expect("stat does not panic")
    };
    let (tx, body) = tar_channel();
    // The walk goes on after the headers are sent.
    tokio::task::spawn_blocking(move || stream_tar(&fs, &r, &name, false, tx));
    Ok((
        StatusCode::OK,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/x-tar"),
            ),
            (
                header::HeaderName::from_static("x-docker-container-path-stat"),
                header_value,
            ),
        ],
        body,
    )
        .into_response())
}

/// `GET /containers/{id}/export`: a tar of the whole root filesystem (the container's
/// layers, without what is mounted into it).
pub(super) async fn export(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, DockerError> {
    let (_, fs) = s.runtime.container_fs(&id).await?;
    let (tx, body) = tar_channel();
    tokio::task::spawn_blocking(move || match fs.resolve("/", true) {
        // Entries named `bin/`, `etc/passwd`, ... as dockerd's export names them.
        Ok(r) => stream_tar(&fs, &r, "", true, tx),
        Err(e) => {
            let _ = tx.blocking_send(Err(io::Error::other(crate::error_chain(&e))));
        }
    });
    Ok((
        StatusCode::OK,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-tar"),
        )],
        body,
    )
        .into_response())
}

type Chunk = Result<Bytes, io::Error>;

fn tar_channel() -> (mpsc::Sender<Chunk>, Body) {
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_DEPTH);
    (
        tx,
        Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx)),
    )
}

/// Writes the tar of `r` into the channel; a failure midway ends the body with an
/// error (the client sees a truncated archive, as with dockerd).
fn stream_tar(
    fs: &ContainerFs,
    r: &Resolved,
    name: &str,
    skip_mounts: bool,
    tx: mpsc::Sender<Chunk>,
) {
    let mut out = io::BufWriter::with_capacity(CHUNK, ChannelWriter { tx: tx.clone() });
    let done = fs
        .write_tar(r, name, skip_mounts, &mut out)
        .map_err(|e| io::Error::other(crate::error_chain(&e)))
        .and_then(|()| out.flush());
    if let Err(e) = done {
        tracing::debug!(path = %r.path(), error = %e, "container archive ended early");
        let _ = tx.blocking_send(Err(e));
    }
}

/// The sending half of a response body, as a blocking writer.
struct ChannelWriter {
    tx: mpsc::Sender<Chunk>,
}

impl Write for ChannelWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.tx
            .blocking_send(Ok(Bytes::copy_from_slice(buf)))
            .map_err(|_| io::Error::new(io::ErrorKind::BrokenPipe, "the client went away"))?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// A request body, as a blocking reader.
struct ChannelReader {
    rx: mpsc::Receiver<Chunk>,
    cur: Bytes,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(chunk) => self.cur = chunk?,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        buf[..n].copy_from_slice(&self.cur.split_to(n));
        Ok(n)
    }
}

/// `PUT /containers/{id}/archive?path=`: unpacks the tar body into the directory
/// `path`, keeping the archive's owners (mapped into a user namespace).
pub(super) async fn put(
    State(s): State<AppState>,
    Path(id): Path<String>,
    DockerQuery(q): DockerQuery<ArchiveQuery>,
    body: Body,
) -> Result<StatusCode, DockerError> {
    let path = asked_path(&q)?;
    let no_overwrite = bool_value(q.no_overwrite_dir_non_dir.as_deref());
    let (c, fs, r) = open_path(&s, &id, &path).await?;
    // `docker cp -a`: the container's user owns what is copied in, as with dockerd.
    let owner = if bool_value(q.copy_uid_gid.as_deref()) {
        s.runtime.copy_owner(&c).await?
    } else {
        None
    };
    // The destination must be a directory, reached through symlinks as in the container.
    let target = if r.is_dir() {
        r
    } else {
        let (fs2, followed) = resolve_blocking(fs, &path, true).await;
        match followed {
            Ok(t) if t.is_dir() => return unpack(fs2, t, body, no_overwrite, owner, &path).await,
            Ok(_) => {
                return Err(DockerError::bad(format!(
                    "extraction point is not a directory: {path}"
                )))
            }
            Err(e) => return Err(fs_error(e.into(), &path, &id)),
        }
    };
    unpack(fs, target, body, no_overwrite, owner, &path).await
}

async fn unpack(
    fs: ContainerFs,
    target: Resolved,
    body: Body,
    no_overwrite: bool,
    owner: Option<(u32, u32)>,
    path: &str,
) -> Result<StatusCode, DockerError> {
    let (tx, rx) = mpsc::channel::<Chunk>(CHANNEL_DEPTH);
    let work = tokio::task::spawn_blocking(move || {
        let reader = ChannelReader {
            rx,
            cur: Bytes::new(),
        };
        fs.unpack(&target, reader, no_overwrite, owner)
    });
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(io::Error::other);
        let failed = chunk.is_err();
        if tx.send(chunk).await.is_err() || failed {
            // The unpacker stopped (its error is below), or the body broke.
            break;
        }
    }
    drop(tx);
    match work.await.expect("unpack does not panic") {
        Ok(_) => Ok(StatusCode::OK),
        Err(e) => {
            tracing::debug!(path, error = %crate::error_chain(&e), "docker cp into a container failed");
            Err(RuntimeError::from(e).into())
        }
    }
}

#[derive(Debug, Serialize)]
pub(super) struct ChangeOut {
    #[serde(rename = "Path")]
    path: String,
    #[serde(rename = "Kind")]
    kind: u8,
}

/// `GET /containers/{id}/changes`: the writable layer against the image.
pub(super) async fn changes(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<ChangeOut>>, DockerError> {
    let changes = s.runtime.container_changes(&id).await?;
    Ok(Json(
        changes
            .into_iter()
            .map(|c| ChangeOut {
                path: c.path,
                kind: c.kind as u8,
            })
            .collect(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_modes_carry_the_type_bits() {
        assert_eq!(go_mode(libc::S_IFDIR | 0o755), (1 << 31) | 0o755);
        assert_eq!(go_mode(libc::S_IFLNK | 0o777), (1 << 27) | 0o777);
        assert_eq!(go_mode(libc::S_IFREG | 0o644), 0o644);
        assert_eq!(
            go_mode(libc::S_IFCHR | 0o666),
            (1 << 26) | (1 << 21) | 0o666
        );
        assert_eq!(
            go_mode(libc::S_IFREG | libc::S_ISUID | 0o755),
            (1 << 23) | 0o755
        );
        assert_eq!(
            go_mode(libc::S_IFDIR | libc::S_ISVTX | 0o777),
            (1 << 31) | (1 << 20) | 0o777
        );
    }

    #[test]
    fn archive_entries_are_named_by_the_base_name() {
        assert_eq!(base_name("/etc/passwd"), "passwd");
        assert_eq!(base_name("/etc/"), "etc");
        assert_eq!(base_name("/etc/."), ".");
        assert_eq!(base_name("/"), "/");
    }
}
