//! Errors → gRPC statuses. A status message travels in the `grpc-message` header, which
//! clients cap (grpcio: 8 KiB of metadata, else the call ends RESOURCE_EXHAUSTED): messages are
//! bounded here, whatever user text (names, exception messages) they carry.

use tonic::{Code, Status};

use crate::core::text::bounded;
use crate::core::Error;

/// Longest status message, bytes. Percent-encoding can triple non-ASCII text, which still
/// leaves room under common 8 KiB metadata limits.
pub const MAX_STATUS_MESSAGE: usize = 2048;

/// A status whose message is a bounded, printable version of `msg` (newlines kept).
pub fn status(code: Code, msg: &str) -> Status {
    if msg.len() <= MAX_STATUS_MESSAGE {
        return Status::new(code, msg.to_string());
    }
    // Keep the lines (a worker's stderr tail) readable: bound each piece, not the newlines.
    let head: String = msg
        .split('\n')
        .map(|line| bounded(line, MAX_STATUS_MESSAGE).into_owned())
        .collect::<Vec<_>>()
        .join("\n");
    Status::new(code, bounded_keep_lines(&head, msg.len()))
}

/// Cut `s` to [`MAX_STATUS_MESSAGE`] bytes at a char boundary, saying how long it was.
fn bounded_keep_lines(s: &str, original: usize) -> String {
    if s.len() <= MAX_STATUS_MESSAGE {
        return s.to_string();
    }
    let mut end = MAX_STATUS_MESSAGE;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({original} bytes in all)", &s[..end])
}

/// A failed call: either a protocol status, or the text for the response's `error` field.
pub fn classify(e: Error) -> Result<String, Status> {
    let st = |code: Code, e: &Error| Err(status(code, &e.to_string()));
    match e {
        Error::NotFound { .. } => st(Code::NotFound, &e),
        Error::InvalidArguments { .. } | Error::Conversion { .. } => st(Code::InvalidArgument, &e),
        Error::Timeout { .. } => st(Code::DeadlineExceeded, &e),
        Error::Cancelled { .. } => st(Code::Cancelled, &e),
        Error::NotAllowed(_) => st(Code::PermissionDenied, &e),
        Error::Python {
            type_name,
            message,
            traceback,
            ..
        } => Ok(match traceback {
            Some(tb) => format!("{type_name}: {message}\n\n{tb}"),
            None => format!("{type_name}: {message}"),
        }),
        Error::Tool { tool, message } => Ok(format!("ToolError: {tool}: {message}")),
        Error::NotSupported(m) => Ok(format!("NotSupported: {m}")),
        Error::Registration(_) | Error::Runtime(_) => st(Code::Internal, &e),
        // INTERNAL, not UNAVAILABLE: the call may have had side effects before the crash and
        // a deterministic crash would crash again, so clients must not retry it automatically
        // (retry policies commonly retry UNAVAILABLE). The message carries the stderr tail.
        Error::WorkerCrashed { .. } => st(Code::Internal, &e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_names_never_make_huge_statuses() {
        let name = "n".repeat(4 << 20);
        let e = Error::NotFound {
            name: name.clone(),
            suggestions: vec![],
        };
        let s = classify(e).unwrap_err();
        assert_eq!(s.code(), Code::NotFound);
        assert!(
            s.message().len() <= MAX_STATUS_MESSAGE + 64,
            "{}",
            s.message().len()
        );
        assert!(s.message().contains("bytes in all"));
        let e = Error::NotAllowed(format!("x\u{1b}[2J{}", "é".repeat(5000)));
        let s = classify(e).unwrap_err();
        assert!(s.message().len() <= MAX_STATUS_MESSAGE + 64);
        assert!(!s.message().contains('\u{1b}'));
        // Small messages are untouched, newlines included.
        let s = status(Code::Internal, "crashed\n--- tail ---\nline");
        assert_eq!(s.message(), "crashed\n--- tail ---\nline");
    }
}
