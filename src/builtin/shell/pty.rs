//! Opening the pseudo-terminal a session runs in.

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;
use rustix::termios::{LocalModes, OptionalActions, OutputModes, Winsize};

/// A new pty: (master, slave). The master is non-blocking.
pub(super) fn open_pty(size: (u16, u16)) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    #[cfg(target_os = "linux")]
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    // Elsewhere (macOS) posix_openpt takes no O_CLOEXEC: set it right after.
    #[cfg(not(target_os = "linux"))]
    let master = {
        let m = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY)?;
        rustix::io::fcntl_setfd(&m, rustix::io::FdFlags::CLOEXEC)?;
        m
    };
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut tio = rustix::termios::tcgetattr(&slave)?;
    tio.local_modes.remove(ECHO_MODES);
    // No output post-processing (`\n` → `\r\n`): the kernel then copies output in bulk instead
    // of byte by byte, which makes a pty several times faster for large outputs. The captured
    // text is the same after `clean` (LocalRuntime turns `\r\n` into `\n` anyway).
    tio.output_modes.remove(OutputModes::OPOST);
    rustix::termios::tcsetattr(&slave, OptionalActions::Now, &tio)?;
    rustix::termios::tcsetwinsize(
        &slave,
        Winsize {
            ws_row: size.0,
            ws_col: size.1,
            ws_xpixel: 0,
            ws_ypixel: 0,
        },
    )?;
    let fl = rustix::fs::fcntl_getfl(&master)?;
    rustix::fs::fcntl_setfl(&master, fl | OFlags::NONBLOCK)?;
    Ok((master, slave))
}

const ECHO_MODES: LocalModes = LocalModes::ECHO
    .union(LocalModes::ECHOE)
    .union(LocalModes::ECHOK)
    .union(LocalModes::ECHONL);

/// Put the line discipline back into the state the wrapper lines need — no echo (a command
/// like `stty sane` turns it on, and the kernel would echo our hidden line into the output),
/// canonical input, and signal characters (Ctrl-C) on. Termios calls on a pty master act on
/// its slave. Called only while the shell itself holds the terminal.
pub(super) fn assert_modes(master: &OwnedFd) -> io::Result<()> {
    let mut tio = rustix::termios::tcgetattr(master)?;
    let want = LocalModes::ICANON | LocalModes::ISIG;
    if tio.local_modes.intersects(ECHO_MODES) || !tio.local_modes.contains(want) {
        tio.local_modes.remove(ECHO_MODES);
        tio.local_modes.insert(want);
        rustix::termios::tcsetattr(master, OptionalActions::Now, &tio)?;
    }
    Ok(())
}

/// Discard the terminal's unread input, as the line discipline does when it turns a typed
/// Ctrl-C into SIGINT (lines sent to a program that never read them must not reach the shell
/// as commands afterwards). Termios flushes on a pty master act on the master's own queue, so
/// the slave is opened for the moment (without becoming our controlling terminal).
pub(super) fn flush_input(master: &OwnedFd) -> io::Result<()> {
    let name = rustix::pty::ptsname(master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC | OFlags::NONBLOCK,
        rustix::fs::Mode::empty(),
    )?;
    rustix::termios::tcflush(&slave, rustix::termios::QueueSelector::IFlush)?;
    Ok(())
}
