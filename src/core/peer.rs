//! What a running tool may ask of the client that made the call: log messages, and requests
//! answered by the client (an LLM completion, user input). The transport that can carry them
//! (MCP) fills [`CallContext::peer`](super::CallContext) with a [`CallPeer`]; every other
//! caller leaves it empty and such requests fail with [`Error::NotSupported`].

use serde_json::Value;

use super::{BoxFuture, CancelToken, Error, Result};

/// Syslog severities, as MCP names them (`logging/setLevel`, `notifications/message`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LogLevel {
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
    Alert,
    Emergency,
}

impl LogLevel {
    pub const ALL: [LogLevel; 8] = [
        LogLevel::Debug,
        LogLevel::Info,
        LogLevel::Notice,
        LogLevel::Warning,
        LogLevel::Error,
        LogLevel::Critical,
        LogLevel::Alert,
        LogLevel::Emergency,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            LogLevel::Debug => "debug",
            LogLevel::Info => "info",
            LogLevel::Notice => "notice",
            LogLevel::Warning => "warning",
            LogLevel::Error => "error",
            LogLevel::Critical => "critical",
            LogLevel::Alert => "alert",
            LogLevel::Emergency => "emergency",
        }
    }

    /// The level named `name` (MCP's names; `warn` is accepted for `warning`).
    pub fn parse(name: &str) -> Option<LogLevel> {
        if name == "warn" {
            return Some(LogLevel::Warning);
        }
        LogLevel::ALL.into_iter().find(|l| l.as_str() == name)
    }
}

/// A request a tool sends to its caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerRequest {
    /// An LLM completion (MCP `sampling/createMessage`).
    Sample,
    /// Input from the user (MCP `elicitation/create`).
    Elicit,
}

impl PeerRequest {
    pub fn method(self) -> &'static str {
        match self {
            PeerRequest::Sample => "sampling/createMessage",
            PeerRequest::Elicit => "elicitation/create",
        }
    }
}

/// The caller's side of a call, as far as the tool may talk back to it.
pub trait CallPeer: Send + Sync + 'static {
    /// Deliver a log message if the caller wants messages of this level; never blocks, and
    /// messages of one call arrive in the order they were logged.
    fn log(&self, level: LogLevel, logger: Option<&str>, data: Value);

    /// Send `params` as a `kind` request and wait for the caller's answer (JSON, as the wire
    /// protocol has it). [`Error::NotSupported`] when the caller cannot answer such requests;
    /// `cancel` (the call's token) cancels the pending request, as does dropping the future.
    fn request(
        &self,
        kind: PeerRequest,
        params: Value,
        cancel: CancelToken,
    ) -> BoxFuture<Result<Value>>;
}

/// The error for a request no one can answer.
pub fn not_supported(kind: PeerRequest, why: &str) -> Error {
    Error::NotSupported(format!("{} {why}", kind.method()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_parse_and_order() {
        for l in LogLevel::ALL {
            assert_eq!(LogLevel::parse(l.as_str()), Some(l));
        }
        assert_eq!(LogLevel::parse("warn"), Some(LogLevel::Warning));
        assert_eq!(LogLevel::parse("verbose"), None);
        assert!(LogLevel::Debug < LogLevel::Info && LogLevel::Alert < LogLevel::Emergency);
    }

    struct Recorder(std::sync::Mutex<Vec<(LogLevel, Value)>>);

    impl CallPeer for Recorder {
        fn log(&self, level: LogLevel, _logger: Option<&str>, data: Value) {
            self.0.lock().unwrap().push((level, data));
        }

        fn request(
            &self,
            kind: PeerRequest,
            _p: Value,
            _c: CancelToken,
        ) -> BoxFuture<Result<Value>> {
            Box::pin(async move { Err(not_supported(kind, "in this test")) })
        }
    }

    #[test]
    fn nested_calls_keep_the_peer() {
        let rec = std::sync::Arc::new(Recorder(Default::default()));
        let ctx = super::super::CallContext::new().with_peer(Some(rec.clone()));
        let child = ctx.child();
        child
            .peer
            .as_ref()
            .unwrap()
            .log(LogLevel::Notice, None, Value::from("x"));
        assert_eq!(
            rec.0.lock().unwrap().as_slice(),
            &[(LogLevel::Notice, Value::from("x"))]
        );
        let r = crate::core::runtime::block_on(child.peer.as_ref().unwrap().request(
            PeerRequest::Elicit,
            Value::Null,
            child.cancel.clone(),
        ));
        assert!(matches!(r, Err(Error::NotSupported(m)) if m.contains("elicitation/create")));
        assert!(super::super::CallContext::new().peer.is_none());
    }

    #[test]
    fn not_supported_names_the_method() {
        let e = not_supported(PeerRequest::Sample, "is not available to this caller");
        assert_eq!(e.kind(), "NotSupported");
        assert!(e.to_string().contains("sampling/createMessage"), "{e}");
    }
}
