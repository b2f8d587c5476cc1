//! Attachers: control-socket connections that switched to the app's stdio.
//!
//! After `ControlRequest::Attach` is answered with `ControlResponse::Attached`, a
//! connection carries `exec_frame`s: from the daemon `STDIN` bytes, `STDIN_EOF` and
//! `RESIZE`; to the daemon `STDOUT` and `STDERR` chunks (a terminal's output is all
//! `STDOUT`). Any number of attachers read the output; stdin is held by one at a time
//! (the first that asked for it, until it leaves). Closing the connection is a detach:
//! the app keeps running and keeps its stdin. `STDIN_EOF` closes the app's stdin only
//! when the container was created with `stdin_once`, as Docker does; otherwise stdin
//! stays open for the next attacher.
//!
//! Everything is non-blocking, driven by the monitor's poll loop: output for a slow
//! attacher is queued up to [`MAX_QUEUED`], and one that falls further behind is
//! dropped rather than stalling the app (its output is still in the log). Input for an
//! app that does not read is held up to [`MAX_PENDING`]; beyond that, the holder's
//! connection is not read, which pushes back on the client.

use std::fs::File;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use nix::fcntl::{FcntlArg, OFlag};

use crate::protocol::exec_frame::{self as frame, HEADER_LEN, MAX_PAYLOAD};
use crate::sys;

/// Output bytes queued for one attacher before it is dropped.
pub(crate) const MAX_QUEUED: usize = 4 << 20;
/// Stdin bytes held for an app that does not read.
pub(crate) const MAX_PENDING: usize = 256 * 1024;
/// How long the last output may take to reach the attachers at the app's exit.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(1);

/// What an attacher asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Wants {
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

struct Attacher {
    stream: UnixStream,
    wants: Wants,
    inbuf: Vec<u8>,
    outbuf: Vec<u8>,
}

/// The attachers of one container, and the app's stdin and terminal.
pub(crate) struct Attachers {
    list: Vec<Attacher>,
    /// Where stdin bytes go: the pipe's write end, or the terminal's master.
    stdin: Option<File>,
    /// The terminal's master (for resizes), when the app has one.
    terminal: Option<File>,
    stdin_once: bool,
    pending: Vec<u8>,
    /// Close `stdin` once `pending` is written (a pipe), or it got its EOF character.
    closing: bool,
    /// Index into `list` of the attacher holding stdin.
    holder: Option<usize>,
}

fn set_nonblocking(fd: BorrowedFd<'_>) {
    let _ = nix::fcntl::fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
}

/// Why an attach was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refused {
    /// Another attacher holds stdin.
    StdinInUse,
    /// The app's stdin is not open (`open_stdin` was not set, or it was closed).
    NoStdin,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Refused::StdinInUse => "stdin_in_use: another client is attached to stdin",
            Refused::NoStdin => "no_stdin: the container's stdin is not open",
        })
    }
}

/// A readiness the monitor should poll for.
pub(crate) enum Interest<'a> {
    /// Attacher `i`: its fd and the poll flags.
    Attacher(usize, BorrowedFd<'a>, nix::poll::PollFlags),
    /// The app's stdin can take pending bytes.
    Stdin(BorrowedFd<'a>),
}

impl Attachers {
    /// `stdin` is the app's stdin (pipe write end or master) when it is kept open;
    /// `terminal` its master when it has one.
    pub(crate) fn new(stdin: Option<File>, terminal: Option<File>, stdin_once: bool) -> Self {
        if let Some(f) = &stdin {
            set_nonblocking(f.as_fd());
        }
        Attachers {
            list: Vec::new(),
            stdin,
            terminal,
            stdin_once,
            pending: Vec::new(),
            closing: false,
            holder: None,
        }
    }

    /// Whether the app has a terminal.
    pub(crate) fn terminal(&self) -> bool {
        self.terminal.is_some()
    }

    /// Checks an attach request before it is answered.
    pub(crate) fn check(&self, wants: Wants) -> Result<(), Refused> {
        if !wants.stdin {
            return Ok(());
        }
        if self.stdin.is_none() || self.closing {
            return Err(Refused::NoStdin);
        }
        if self.holder.is_some() {
            return Err(Refused::StdinInUse);
        }
        Ok(())
    }

    /// Adds an attacher (already answered); `early` are bytes it sent after its request.
    pub(crate) fn add(&mut self, stream: UnixStream, wants: Wants, early: Vec<u8>) {
        let _ = stream.set_nonblocking(true);
        let i = self.list.len();
        if wants.stdin && self.check(wants).is_ok() {
            self.holder = Some(i);
        }
        self.list.push(Attacher {
            stream,
            wants,
            inbuf: early,
            outbuf: Vec::new(),
        });
        if !self.list[i].inbuf.is_empty() {
            self.take_frames(i);
        }
    }

    /// Sets the terminal's size.
    pub(crate) fn resize(&self, rows: u16, cols: u16) -> Result<(), String> {
        match &self.terminal {
            Some(m) => sys::set_winsize(m, rows, cols)
                .map_err(|e| format!("failed to set the terminal size: {e}")),
            None => Err("the container has no terminal".into()),
        }
    }

    /// What to poll for.
    pub(crate) fn interests(&self) -> Vec<Interest<'_>> {
        use nix::poll::PollFlags;
        let mut out = Vec::new();
        for (i, a) in self.list.iter().enumerate() {
            let mut flags = PollFlags::empty();
            // Back-pressure: the holder is not read while the app is behind.
            if self.holder != Some(i) || self.pending.len() < MAX_PENDING {
                flags |= PollFlags::POLLIN;
            }
            if !a.outbuf.is_empty() {
                flags |= PollFlags::POLLOUT;
            }
            out.push(Interest::Attacher(i, a.stream.as_fd(), flags));
        }
        if let Some(f) = &self.stdin {
            if !self.pending.is_empty() {
                out.push(Interest::Stdin(f.as_fd()));
            }
        }
        out
    }

    /// Output of the app: `kind` is `frame::STDOUT` or `frame::STDERR`.
    pub(crate) fn output(&mut self, kind: u8, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut gone = Vec::new();
        for (i, a) in self.list.iter_mut().enumerate() {
            let wanted = if kind == frame::STDERR {
                a.wants.stderr
            } else {
                a.wants.stdout
            };
            if !wanted {
                continue;
            }
            a.outbuf
                .extend_from_slice(&frame::header(kind, bytes.len()));
            a.outbuf.extend_from_slice(bytes);
            if !flush_out(a) || a.outbuf.len() > MAX_QUEUED {
                gone.push(i);
            }
        }
        for i in gone.into_iter().rev() {
            self.remove(i);
        }
    }

    /// Attacher `i` is ready (`revents`); handle it. Call for the highest index first:
    /// a removal shifts the ones after it.
    pub(crate) fn ready(&mut self, i: usize, revents: nix::poll::PollFlags) {
        use nix::poll::PollFlags;
        if i >= self.list.len() {
            return;
        }
        if revents.contains(PollFlags::POLLOUT) && !flush_out(&mut self.list[i]) {
            self.remove(i);
            return;
        }
        if !revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            return;
        }
        let mut buf = [0u8; 32 * 1024];
        match self.list[i].stream.read(&mut buf) {
            Ok(0) => self.remove(i),
            Ok(n) => {
                self.list[i].inbuf.extend_from_slice(&buf[..n]);
                self.take_frames(i);
            }
            Err(e) if matches!(e.kind(), ErrorKind::Interrupted | ErrorKind::WouldBlock) => {}
            Err(_) => self.remove(i),
        }
    }

    /// The app's stdin can take more.
    pub(crate) fn stdin_ready(&mut self, revents: nix::poll::PollFlags) {
        if revents.intersects(nix::poll::PollFlags::POLLERR | nix::poll::PollFlags::POLLHUP) {
            // Nobody reads it any more.
            self.pending.clear();
            if self.terminal.is_none() {
                self.stdin = None;
            }
            return;
        }
        self.flush_stdin();
    }

    /// The app ended: nothing more goes to its stdin.
    pub(crate) fn app_exited(&mut self) {
        self.pending.clear();
        self.stdin = None;
    }

    /// Last output to every attacher (bounded), then close them all.
    pub(crate) fn finish(&mut self) {
        for a in &mut self.list {
            if a.outbuf.is_empty() {
                continue;
            }
            let _ = a.stream.set_nonblocking(false);
            let _ = a.stream.set_write_timeout(Some(FLUSH_TIMEOUT));
            let _ = a.stream.write_all(&a.outbuf);
        }
        self.list.clear();
        self.holder = None;
    }

    fn remove(&mut self, i: usize) {
        self.list.remove(i);
        self.holder = match self.holder {
            Some(h) if h == i => None,
            Some(h) if h > i => Some(h - 1),
            other => other,
        };
    }

    fn take_frames(&mut self, i: usize) {
        loop {
            let a = &mut self.list[i];
            if a.inbuf.len() < HEADER_LEN {
                return;
            }
            let (kind, len) = frame::parse_header(a.inbuf[..HEADER_LEN].try_into().expect("5"));
            if len > MAX_PAYLOAD {
                self.remove(i);
                return;
            }
            if a.inbuf.len() < HEADER_LEN + len {
                return;
            }
            let payload: Vec<u8> = a.inbuf.drain(..HEADER_LEN + len).skip(HEADER_LEN).collect();
            let holds = self.holder == Some(i);
            match kind {
                frame::STDIN if holds && !self.closing => {
                    self.pending.extend_from_slice(&payload);
                    self.flush_stdin();
                }
                frame::STDIN_EOF if holds => {
                    // The client is done with stdin; the next attacher may take it.
                    self.holder = None;
                    if self.stdin_once {
                        self.close_stdin();
                    }
                }
                frame::RESIZE if payload.len() == 4 => {
                    let rows = u16::from_be_bytes([payload[0], payload[1]]);
                    let cols = u16::from_be_bytes([payload[2], payload[3]]);
                    let _ = self.resize(rows, cols);
                }
                _ => {}
            }
        }
    }

    /// A pipe is closed once what is pending is written; a terminal gets its
    /// end-of-file character (the master stays open for the output).
    fn close_stdin(&mut self) {
        if self.closing {
            return;
        }
        self.closing = true;
        if self.terminal.is_some() {
            self.pending.push(0x04);
        }
        self.flush_stdin();
    }

    fn flush_stdin(&mut self) {
        let Some(f) = self.stdin.as_mut() else {
            self.pending.clear();
            return;
        };
        while !self.pending.is_empty() {
            match f.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(_) => {
                    // EPIPE: the app closed its stdin.
                    self.pending.clear();
                    if self.terminal.is_none() {
                        self.stdin = None;
                    }
                    return;
                }
            }
        }
        if self.closing && self.terminal.is_none() {
            self.stdin = None;
        }
    }
}

/// Writes what it can of an attacher's queue; false if it went away.
fn flush_out(a: &mut Attacher) -> bool {
    while !a.outbuf.is_empty() {
        match a.stream.write(&a.outbuf) {
            Ok(0) => return false,
            Ok(n) => {
                a.outbuf.drain(..n);
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::poll::PollFlags;

    fn wants(stdin: bool) -> Wants {
        Wants {
            stdin,
            stdout: true,
            stderr: false,
        }
    }

    fn stdin_frame(bytes: &[u8]) -> Vec<u8> {
        let mut v = frame::header(frame::STDIN, bytes.len()).to_vec();
        v.extend_from_slice(bytes);
        v
    }

    fn read_some(s: &mut UnixStream) -> Vec<u8> {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        let mut buf = [0u8; 1024];
        let n = s.read(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    #[test]
    fn output_fans_out_framed_and_filtered() {
        let mut at = Attachers::new(None, None, false);
        let (ours1, mut theirs1) = UnixStream::pair().unwrap();
        let (ours2, mut theirs2) = UnixStream::pair().unwrap();
        at.add(ours1, wants(false), Vec::new());
        at.add(
            ours2,
            Wants {
                stdin: false,
                stdout: false,
                stderr: true,
            },
            Vec::new(),
        );
        at.output(frame::STDOUT, b"out");
        at.output(frame::STDERR, b"err");
        assert_eq!(read_some(&mut theirs1), b"\x01\x00\x00\x00\x03out");
        assert_eq!(read_some(&mut theirs2), b"\x02\x00\x00\x00\x03err");
    }

    #[test]
    fn stdin_goes_to_one_holder_and_eof_closes_only_with_stdin_once() {
        for stdin_once in [false, true] {
            let (r, w) = nix::unistd::pipe().unwrap();
            let mut at = Attachers::new(Some(File::from(w)), None, stdin_once);
            let (ours, mut theirs) = UnixStream::pair().unwrap();
            at.add(ours, wants(true), stdin_frame(b"hi"));
            assert_eq!(at.check(wants(true)), Err(Refused::StdinInUse));
            assert_eq!(at.check(wants(false)), Ok(()));
            let mut got = [0u8; 8];
            assert_eq!(nix::unistd::read(&r, &mut got).unwrap(), 2);
            assert_eq!(&got[..2], b"hi");
            theirs
                .write_all(&frame::header(frame::STDIN_EOF, 0))
                .unwrap();
            at.ready(0, PollFlags::POLLIN);
            if stdin_once {
                // The pipe's write end is gone: EOF.
                assert_eq!(nix::unistd::read(&r, &mut got).unwrap(), 0);
                assert_eq!(at.check(wants(true)), Err(Refused::NoStdin));
            } else {
                // Still open, and free for the next attacher.
                assert!(at.stdin.is_some());
                assert_eq!(at.check(wants(true)), Ok(()));
            }
        }
    }

    #[test]
    fn a_detach_frees_stdin_but_keeps_it_open() {
        let (_r, w) = nix::unistd::pipe().unwrap();
        let mut at = Attachers::new(Some(File::from(w)), None, true);
        let (ours, theirs) = UnixStream::pair().unwrap();
        at.add(ours, wants(true), Vec::new());
        drop(theirs);
        at.ready(0, PollFlags::POLLIN);
        assert!(at.list.is_empty());
        assert!(at.stdin.is_some());
        assert_eq!(at.check(wants(true)), Ok(()));
    }

    #[test]
    fn resize_needs_a_terminal() {
        let at = Attachers::new(None, None, false);
        assert!(at.resize(24, 80).is_err());
    }
}
