//! The app's terminal (`tty` containers), as runc's console socket does it.
//!
//! The pty must come from the container's own devpts, which exists only inside the
//! container's mount namespace once the root filesystem is built. So the container's
//! first process, after `pivot_root` and while still root, opens `/dev/pts/ptmx`, opens
//! the peer by descriptor (no `/dev/pts/N` lookup in a filesystem the container
//! controls), makes it its controlling terminal (it is a session leader by then), and
//! sends the master to the shim over a socketpair with SCM_RIGHTS. The peer becomes its
//! stdin, stdout and stderr just before exec. The shim receives the master once the
//! app has exec'd and keeps it: the terminal's output goes to the log and to attachers,
//! attachers' input goes to it.

use std::io::IoSliceMut;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::socket::{
    recvmsg, sendmsg, socketpair, AddressFamily, ControlMessage, ControlMessageOwned, MsgFlags,
    SockFlag, SockType,
};
use nix::sys::stat::Mode;

use crate::sys;

/// The shim's and the child's ends of the socket the master travels on.
pub(crate) fn pair() -> nix::Result<(OwnedFd, OwnedFd)> {
    socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
}

/// In the container's first process, after `pivot_root`: make the terminal, send its
/// master on `socket`, return the peer (for [`use_as_stdio`]). `None` without a socket
/// (no terminal asked for).
pub(crate) fn open_in_child(socket: Option<&OwnedFd>, uid: u32) -> nix::Result<Option<OwnedFd>> {
    let Some(socket) = socket else {
        return Ok(None);
    };
    // A session of its own, so the terminal can become its controlling one and the
    // app's job control (ctrl-c to the foreground group) works.
    nix::unistd::setsid()?;
    let master = nix::fcntl::open(
        "/dev/pts/ptmx",
        OFlag::O_RDWR | OFlag::O_NOCTTY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    sys::pty_unlock(&master)?;
    let peer = sys::pty_peer(&master)?;
    sys::set_controlling_tty(&peer)?;
    // The user must own its terminal (as login(1) arranges), or a non-root app could
    // not reopen /dev/tty.
    nix::unistd::fchown(&peer, Some(nix::unistd::Uid::from_raw(uid)), None)?;
    let fds = [master.as_raw_fd()];
    let cmsg = [ControlMessage::ScmRights(&fds)];
    let iov = [std::io::IoSlice::new(b"t")];
    sendmsg::<()>(socket.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None)?;
    Ok(Some(peer))
}

/// The terminal as stdin, stdout and stderr (after the pipes were put there).
pub(crate) fn use_as_stdio(peer: &OwnedFd) -> nix::Result<()> {
    nix::unistd::dup2_stdin(peer)?;
    nix::unistd::dup2_stdout(peer)?;
    nix::unistd::dup2_stderr(peer)
}

/// In the shim, once the app exec'd: the master the child sent. The child's end is
/// close-on-exec, so this never blocks: it is there, or the socket is at EOF.
pub(crate) fn receive_master(socket: &OwnedFd) -> nix::Result<OwnedFd> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([std::os::fd::RawFd; 1]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    let mut received = None;
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // recvmsg installed these in our table; the first is kept, any other
                // is closed when dropped here.
                let owned = sys::own_received_fd(fd);
                received.get_or_insert(owned);
            }
        }
    }
    received.ok_or(Errno::ENOTTY)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_descriptor_travels_over_the_pair() {
        let (ours, theirs) = pair().unwrap();
        let (r, w) = nix::unistd::pipe().unwrap();
        let fds = [w.as_raw_fd()];
        let cmsg = [ControlMessage::ScmRights(&fds)];
        let iov = [std::io::IoSlice::new(b"t")];
        sendmsg::<()>(theirs.as_raw_fd(), &iov, &cmsg, MsgFlags::empty(), None).unwrap();
        drop(w);
        let got = receive_master(&ours).unwrap();
        nix::unistd::write(&got, b"x").unwrap();
        drop(got);
        let mut buf = [0u8; 2];
        assert_eq!(nix::unistd::read(&r, &mut buf).unwrap(), 1);
        drop(theirs);
        assert!(receive_master(&ours).is_err(), "EOF gives no descriptor");
    }

    #[test]
    fn no_socket_no_terminal() {
        assert!(open_in_child(None, 0).unwrap().is_none());
    }
}
