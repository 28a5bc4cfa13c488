//! MCP over stdin/stdout: newline-delimited JSON-RPC.
//!
//! Our own transport rather than rmcp's line codec, so that every line is answered: a line that
//! is not JSON gets −32700 (id null), a malformed message the error [`jsonrpc::check`] names, an
//! oversized line −32600, and the server keeps serving. When stdin ends, the calls still running
//! are cancelled (their tools see the cancel token) instead of running on for nobody.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;

use parking_lot::Mutex;
use rmcp::model::{
    CancelledNotification, CancelledNotificationParam, ClientJsonRpcMessage, ClientNotification,
    RequestId, ServerJsonRpcMessage,
};
use rmcp::service::{RoleServer, RxJsonRpcMessage, TxJsonRpcMessage};
use rmcp::transport::Transport;
use rmcp::ServiceExt;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::jsonrpc::{self, Rejection, INVALID_REQUEST};
use super::{McpOptions, McpServer};
use crate::core::{Error, Registry};

/// Messages read ahead of the server (backpressure on stdin beyond that).
const INCOMING_QUEUE: usize = 64;
/// Lines waiting for stdout.
const OUTGOING_QUEUE: usize = 256;

/// Requests received and not yet answered, by id.
type InFlight = Arc<Mutex<HashSet<RequestId>>>;

/// A line-oriented MCP transport over any byte stream pair (stdin/stdout in production).
pub struct LineTransport {
    incoming: mpsc::Receiver<ClientJsonRpcMessage>,
    out: Option<mpsc::Sender<Vec<u8>>>,
    in_flight: InFlight,
    reader: JoinHandle<()>,
    writer: Option<JoinHandle<()>>,
}

impl LineTransport {
    /// Serve lines read from `input`, answering on `output`; lines longer than `max_line_bytes`
    /// are refused.
    pub fn new<R, W>(input: R, output: W, max_line_bytes: usize) -> Self
    where
        R: AsyncRead + Unpin + Send + 'static,
        W: AsyncWrite + Unpin + Send + 'static,
    {
        let (msg_tx, incoming) = mpsc::channel(INCOMING_QUEUE);
        let (out_tx, out_rx) = mpsc::channel(OUTGOING_QUEUE);
        let in_flight = InFlight::default();
        let reader = tokio::spawn(read_lines(
            input,
            max_line_bytes.max(1),
            msg_tx,
            out_tx.clone(),
            in_flight.clone(),
        ));
        let writer = tokio::spawn(write_lines(output, out_rx));
        LineTransport {
            incoming,
            out: Some(out_tx),
            in_flight,
            reader,
            writer: Some(writer),
        }
    }
}

fn closed() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::BrokenPipe, "MCP output closed")
}

impl Transport<RoleServer> for LineTransport {
    type Error = std::io::Error;

    fn send(
        &mut self,
        item: TxJsonRpcMessage<RoleServer>,
    ) -> impl Future<Output = Result<(), Self::Error>> + Send + 'static {
        match &item {
            ServerJsonRpcMessage::Response(r) => {
                self.in_flight.lock().remove(&r.id);
            }
            ServerJsonRpcMessage::Error(e) => {
                if let Some(id) = &e.id {
                    self.in_flight.lock().remove(id);
                }
            }
            _ => {}
        }
        // Serialized now, queued in call order: a tool's progress precedes its result.
        let line = serde_json::to_vec(&item).map(|mut v| {
            v.push(b'\n');
            v
        });
        let out = self.out.clone();
        async move {
            let line = line.map_err(std::io::Error::other)?;
            match out {
                Some(out) => out.send(line).await.map_err(|_| closed()),
                None => Err(closed()),
            }
        }
    }

    async fn receive(&mut self) -> Option<RxJsonRpcMessage<RoleServer>> {
        self.incoming.recv().await
    }

    async fn close(&mut self) -> Result<(), Self::Error> {
        self.reader.abort();
        self.incoming.close();
        // The writer ends once every queued line is out and no sender is left.
        self.out = None;
        if let Some(w) = self.writer.take() {
            let _ = w.await;
        }
        Ok(())
    }
}

impl Drop for LineTransport {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

/// One line of at most `cap` bytes (plus its newline) into `buf`. `Ok(false)` at EOF;
/// `Err(None)` when the line is longer (the rest of it has been skipped).
async fn read_line<R: AsyncRead + Unpin>(
    reader: &mut BufReader<R>,
    cap: usize,
    buf: &mut Vec<u8>,
) -> Result<bool, Option<std::io::Error>> {
    buf.clear();
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let n = (&mut *reader)
        .take(limit)
        .read_until(b'\n', buf)
        .await
        .map_err(Some)?;
    if n == 0 {
        return Ok(false);
    }
    if buf.last() == Some(&b'\n') || buf.len() <= cap {
        return Ok(true);
    }
    // Too long: drop the rest of the line without keeping it.
    loop {
        let chunk = reader.fill_buf().await.map_err(Some)?;
        if chunk.is_empty() {
            return Err(None);
        }
        match memchr::memchr(b'\n', chunk) {
            Some(i) => {
                reader.consume(i + 1);
                return Err(None);
            }
            None => {
                let n = chunk.len();
                reader.consume(n);
            }
        }
    }
}

async fn read_lines<R: AsyncRead + Unpin>(
    input: R,
    cap: usize,
    messages: mpsc::Sender<ClientJsonRpcMessage>,
    out: mpsc::Sender<Vec<u8>>,
    in_flight: InFlight,
) {
    let mut reader = BufReader::new(input);
    let mut buf = Vec::new();
    let reply = |r: Rejection| {
        let mut line = r.to_json();
        line.push(b'\n');
        line
    };
    loop {
        match read_line(&mut reader, cap, &mut buf).await {
            Ok(false) => break,
            Ok(true) => {}
            Err(None) => {
                let r = Rejection {
                    id: None,
                    code: INVALID_REQUEST,
                    message: format!(
                        "Invalid Request: message longer than {cap} bytes (the server's \
                         --max-message-size)"
                    ),
                };
                if out.send(reply(r)).await.is_err() {
                    return;
                }
                continue;
            }
            Err(Some(e)) => {
                log::warn!("MCP stdio: reading stdin failed: {e}");
                break;
            }
        }
        if buf.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match jsonrpc::decode(&buf) {
            Ok(msg) => {
                if let ClientJsonRpcMessage::Request(r) = &msg {
                    in_flight.lock().insert(r.id.clone());
                }
                if messages.send(msg).await.is_err() {
                    return;
                }
            }
            Err(r) => {
                log::debug!("MCP stdio: refused a message: {}", r.message);
                if out.send(reply(r)).await.is_err() {
                    return;
                }
            }
        }
    }
    // The client is gone: cancel what it was waiting for, then end the stream.
    let pending: Vec<RequestId> = in_flight.lock().iter().cloned().collect();
    for id in pending {
        let cancel = CancelledNotification::new(CancelledNotificationParam::new(
            Some(id),
            Some("the client closed stdin".into()),
        ));
        let msg =
            ClientJsonRpcMessage::notification(ClientNotification::CancelledNotification(cancel));
        if messages.send(msg).await.is_err() {
            return;
        }
    }
}

async fn write_lines<W: AsyncWrite + Unpin>(mut output: W, mut lines: mpsc::Receiver<Vec<u8>>) {
    while let Some(line) = lines.recv().await {
        if let Err(e) = output.write_all(&line).await {
            log::warn!("MCP stdio: writing stdout failed: {e}");
            return;
        }
        if lines.is_empty() {
            if let Err(e) = output.flush().await {
                log::warn!("MCP stdio: flushing stdout failed: {e}");
                return;
            }
        }
    }
    let _ = output.flush().await;
}

fn runtime_err(what: &str) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| Error::Runtime(format!("{what}: {e}"))
}

/// The process's real stdout for the protocol, with fd 1 pointed at stderr: a stray `print()`
/// in a tool (Python or native) must not corrupt the JSON-RPC stream.
fn protocol_stdout() -> crate::core::Result<tokio::fs::File> {
    use std::os::fd::FromRawFd;
    // SAFETY: dup/dup2 on the process's standard descriptors; the duplicate is owned below.
    let fd = unsafe { libc::dup(1) };
    if fd < 0 {
        return Err(runtime_err("dup(stdout)")(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` is a fresh descriptor this function owns.
    let file = unsafe { std::fs::File::from_raw_fd(fd) };
    // SAFETY: replaces fd 1 with a copy of fd 2; both stay open.
    if unsafe { libc::dup2(2, 1) } < 0 {
        return Err(runtime_err("dup2(stderr, stdout)")(
            std::io::Error::last_os_error(),
        ));
    }
    Ok(tokio::fs::File::from_std(file))
}

/// Serve MCP on `transport` until the client goes away or `shutdown` resolves.
pub async fn serve_transport(
    registry: Registry,
    opts: McpOptions,
    transport: LineTransport,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::core::Result<()> {
    let server = McpServer::new(registry, Arc::new(opts));
    let running = server
        .serve(transport)
        .await
        .map_err(|e| Error::Runtime(format!("MCP stdio: {e}")))?;
    let ct = running.cancellation_token();
    tokio::select! {
        r = running.waiting() => {
            r.map_err(|e| Error::Runtime(format!("MCP stdio: {e}")))?;
        }
        _ = shutdown => ct.cancel(),
    }
    Ok(())
}

/// Serve MCP over stdin/stdout until the client closes stdin or `shutdown` resolves.
pub async fn serve_stdio(
    registry: Registry,
    opts: McpOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> crate::core::Result<()> {
    let out = protocol_stdout()?;
    let transport = LineTransport::new(tokio::io::stdin(), out, opts.max_message_bytes);
    serve_transport(registry, opts, transport, shutdown).await
}
