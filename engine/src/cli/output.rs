//! Standard output for commands. A reader that goes away early
//! (`phasegate approvals | head`) ends the command quietly, with success,
//! as it would end `cat`; `println!` would panic instead. Any other write
//! error is reported once and ends the command with the I/O exit status.

use std::io::{StdoutLock, Write};

/// Writes with `write` to standard output, then flushes; handles a failed write as above.
pub(crate) fn with_stdout(write: impl FnOnce(&mut StdoutLock<'static>) -> std::io::Result<()>) {
    let mut out = std::io::stdout().lock();
    if let Err(error) = write(&mut out).and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(super::EXIT_OK));
        }
        eprintln!("phasegate: cannot write to standard output: {error}");
        std::process::exit(i32::from(super::EXIT_USAGE));
    }
}

/// `println!` for commands: see the module documentation.
macro_rules! outln {
    () => {
        $crate::cli::output::with_stdout(|out| ::std::io::Write::write_all(out, b"\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::with_stdout(|out| ::std::io::Write::write_fmt(out, format_args!("{}\n", format_args!($($arg)*))))
    };
}

/// `print!` for commands: see the module documentation.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::with_stdout(|out| ::std::io::Write::write_fmt(out, format_args!($($arg)*)))
    };
}
