//! Opening the pseudo-terminal a session runs in.

use std::io;
use std::os::fd::OwnedFd;

use rustix::fs::OFlags;
use rustix::termios::{LocalModes, OptionalActions, OutputModes, Winsize};

pub(super) fn open_pty(size: (u16, u16)) -> io::Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    let mut tio = rustix::termios::tcgetattr(&slave)?;
    tio.local_modes
        .remove(LocalModes::ECHO | LocalModes::ECHOE | LocalModes::ECHOK | LocalModes::ECHONL);
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
