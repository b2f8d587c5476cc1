//! The local terminal of `boxctl exec -t` / `run -t` / `attach`: raw mode (restored by
//! [`RawMode`]'s `Drop`, so on every return and on error) and the window size.

use std::os::fd::{AsFd, OwnedFd};

use rustix::termios::{tcgetattr, tcgetwinsize, tcsetattr, OptionalActions, Termios};

/// The terminal is in raw mode while this lives.
pub struct RawMode {
    fd: OwnedFd,
    saved: Termios,
}

impl RawMode {
    /// Put stdin's terminal into raw mode (keys go to the remote terminal as they are
    /// typed, ctrl-c included); `None` when stdin is not a terminal.
    pub fn enter() -> std::io::Result<Option<RawMode>> {
        let stdin = std::io::stdin();
        if !rustix::termios::isatty(stdin.as_fd()) {
            return Ok(None);
        }
        let fd = stdin.as_fd().try_clone_to_owned()?;
        let saved = tcgetattr(&fd)?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(&fd, OptionalActions::Now, &raw)?;
        Ok(Some(RawMode { fd, saved }))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        let _ = tcsetattr(&self.fd, OptionalActions::Now, &self.saved);
    }
}

/// `(rows, columns)` of the terminal on stdout (else stdin), if there is one.
pub fn size() -> Option<(u16, u16)> {
    let ws = tcgetwinsize(std::io::stdout().as_fd())
        .or_else(|_| tcgetwinsize(std::io::stdin().as_fd()))
        .ok()?;
    (ws.ws_row > 0 && ws.ws_col > 0).then_some((ws.ws_row, ws.ws_col))
}
