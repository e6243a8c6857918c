//! Standard output for commands. A reader that goes away early
//! (`phasegate approvals | head`) ends the command quietly, with success,
//! as it would end `cat`; `println!` would panic instead. Any other write
//! error is reported once and ends the command with the I/O exit status.

use std::io::{IsTerminal as _, Write};

/// Writes with `write` to standard output, then flushes; handles a failed
/// write as above. On a terminal, control and bidirectional-override
/// characters in what is printed (task output, comments, reasons: anything
/// a user supplied) are escaped, so no text can rewrite the screen.
pub(crate) fn with_stdout(write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) {
    let mut out = std::io::stdout().lock();
    let written = if out.is_terminal() {
        let mut buffer = Vec::new();
        write(&mut buffer).and_then(|()| out.write_all(crate::text::escape(&String::from_utf8_lossy(&buffer)).as_bytes()))
    } else {
        write(&mut out)
    };
    if let Err(error) = written.and_then(|()| out.flush()) {
        if error.kind() == std::io::ErrorKind::BrokenPipe {
            std::process::exit(i32::from(super::args::EXIT_OK));
        }
        eprintln!("phasegate: cannot write to standard output: {error}");
        std::process::exit(i32::from(super::args::EXIT_USAGE));
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

static JSON_ERRORS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Makes [`error`] print JSON (under `--output json`).
pub(crate) fn set_json_errors(json: bool) {
    JSON_ERRORS.store(json, std::sync::atomic::Ordering::Relaxed);
}

/// True under `--output json`.
pub(crate) fn json_errors() -> bool {
    JSON_ERRORS.load(std::sync::atomic::Ordering::Relaxed)
}

/// Reports an error as the command's output asks: `error: MESSAGE` on
/// stderr, or under `--output json` the object `{"error": MESSAGE, "kind":
/// KIND}` on stdout, where `kind` is stable for scripts. Returns `code`,
/// the exit status (see docs: 1 refused or failed, 2 usage or I/O).
pub(crate) fn error(kind: &str, message: &str, code: u8) -> u8 {
    if json_errors() {
        let body = serde_json::json!({"error": message, "kind": kind, "exit": code});
        with_stdout(|out| writeln!(out, "{body}"));
    } else {
        eprintln!("error: {}", crate::text::escape(message));
    }
    code
}

/// `error(kind, format!(..), code)`.
macro_rules! fail {
    ($kind:expr, $code:expr, $($arg:tt)*) => {
        $crate::cli::output::error($kind, &format!($($arg)*), $code)
    };
}
