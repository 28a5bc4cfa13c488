//! Framing between the pool and a worker process: a 4-byte little-endian length, then a JSON
//! object. JSON, not msgpack: msgpack encodes+decodes a call frame 1.2–4× faster in CPython
//! (`benches/isolation.py`, rows `[J]`: a few µs per call on a quiet machine), which is small next
//! to the round trip's three thread/process wake-ups, while JSON keeps the worker stdlib-only, so
//! any configured interpreter runs it without installing anything.

use std::io::{self, Read};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Frames larger than this are refused (a corrupt length must not make us allocate gigabytes).
pub const MAX_FRAME: usize = 256 * 1024 * 1024;

/// What [`read_frame`] reserves before a body's bytes arrive; the rest grows as they do.
pub const FRAME_PREALLOC: usize = 64 * 1024;

/// Pool → worker.
#[derive(Debug, Serialize)]
#[serde(tag = "op", rename_all = "lowercase")]
pub enum Request<'a> {
    /// Run `module.qualname(**args)`.
    Call {
        id: u64,
        tool: &'a str,
        module: &'a str,
        qualname: &'a str,
        #[serde(rename = "async")]
        is_async: bool,
        /// Parameter that receives the worker's `Context` stand-in.
        #[serde(skip_serializing_if = "Option::is_none")]
        context_param: Option<&'a str>,
        call_id: u64,
        args: &'a Value,
    },
    /// Cancel an async call (its asyncio task).
    Cancel { id: u64 },
    /// Answered with [`Reply::Pong`] from the worker's event loop: is the loop still turning?
    Ping { id: u64 },
}

/// Worker → pool.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(tag = "t", rename_all = "lowercase")]
pub enum Reply {
    /// The worker imported its preload modules and waits for calls.
    Ready { pid: u32 },
    Ok {
        id: u64,
        #[serde(default)]
        value: Value,
    },
    /// The tool raised. Described, never pickled: the host rebuilds `module.type(*args)` only
    /// from a class it has already imported (`agent_runtime._worker.rebuild_exception`).
    Err {
        id: u64,
        /// The exception class's qualified name.
        #[serde(rename = "type")]
        type_name: String,
        #[serde(default)]
        module: Option<String>,
        message: String,
        #[serde(default)]
        traceback: Option<String>,
        /// The exception's `args` as a JSON text (absent when they are not plain JSON).
        #[serde(default)]
        args: Option<String>,
    },
    /// The tool's result (at `path`) cannot cross as JSON exactly.
    Conv {
        id: u64,
        path: String,
        message: String,
    },
    /// The answer to [`Request::Ping`].
    Pong { id: u64 },
    Progress {
        id: u64,
        done: f64,
        #[serde(default)]
        total: Option<f64>,
        #[serde(default)]
        message: Option<String>,
    },
}

/// A frame: length prefix plus body.
pub fn encode(req: &Request<'_>) -> serde_json::Result<Vec<u8>> {
    let mut buf = vec![0u8; 4];
    serde_json::to_writer(&mut buf, req)?;
    // A body past 4 GiB would wrap the prefix and desynchronise the stream.
    let n = u32::try_from(buf.len() - 4).map_err(|_| {
        <serde_json::Error as serde::ser::Error>::custom(format!(
            "request frame of {} bytes does not fit the 4-byte length prefix",
            buf.len() - 4
        ))
    })?;
    buf[..4].copy_from_slice(&n.to_le_bytes());
    Ok(buf)
}

/// Read one frame body into `buf`; `Ok(None)` at a clean end of stream (between frames).
///
/// The buffer grows with the bytes that actually arrive (at most [`FRAME_PREALLOC`] is reserved
/// up front), so a corrupt or hostile length prefix costs no more memory than the data behind it.
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!(
                        "stream ended inside a frame's 4-byte length prefix (after {got} bytes)"
                    ),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    let n = u32::from_le_bytes(len) as usize;
    if n > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame of {n} bytes exceeds the {MAX_FRAME}-byte limit"),
        ));
    }
    buf.clear();
    buf.reserve(n.min(FRAME_PREALLOC));
    r.take(n as u64).read_to_end(buf)?;
    if buf.len() < n {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!(
                "stream ended inside a frame: its prefix says {n} bytes, {} arrived",
                buf.len()
            ),
        ));
    }
    Ok(Some(()))
}

/// Decode a frame body.
pub fn decode(body: &[u8]) -> serde_json::Result<Reply> {
    serde_json::from_slice(body)
}

/// The call a body that [`decode`] refused belongs to, when its `id` is readable. Python's
/// `json` writes values nested ~1000 deep while serde_json reads at most 127 levels: such a
/// reply fails its call, not the worker (the framing is intact, so the stream stays in sync).
pub fn reply_id(body: &[u8]) -> Option<u64> {
    #[derive(Deserialize)]
    struct Envelope {
        id: u64,
    }
    // Fields other than `id` are skipped without recursing, so any depth reads.
    serde_json::from_slice::<Envelope>(body).ok().map(|e| e.id)
}

/// An exception raised in a worker, carried in `Error::Python::original` so the Python
/// boundary can rebuild an exception of the same class for the caller: by name, from classes
/// the host already imported, with JSON arguments (no unpickling of worker-chosen bytes).
#[derive(Debug, Clone)]
pub struct RemoteException {
    pub module: String,
    pub qualname: String,
    /// The exception's `args` as a JSON text.
    pub args: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn frames_round_trip_and_bad_frames_are_refused() {
        let args = json!({"x": [1, "two"]});
        let f = encode(&Request::Call {
            id: 7,
            tool: "t",
            module: "m",
            qualname: "f",
            is_async: false,
            context_param: None,
            call_id: 1,
            args: &args,
        })
        .unwrap();
        let n = u32::from_le_bytes([f[0], f[1], f[2], f[3]]) as usize;
        assert_eq!(n, f.len() - 4);
        let body: Value = serde_json::from_slice(&f[4..]).unwrap();
        assert_eq!(body["op"], "call");
        assert_eq!(body["async"], false);
        assert_eq!(body["args"], args);
        assert!(body.get("context_param").is_none());

        let reply = br#"{"t":"ok","id":7,"value":{"y":1}}"#;
        let mut stream = (reply.len() as u32).to_le_bytes().to_vec();
        stream.extend_from_slice(reply);
        let mut r = &stream[..];
        let mut buf = Vec::new();
        assert!(read_frame(&mut r, &mut buf).unwrap().is_some());
        assert_eq!(
            decode(&buf).unwrap(),
            Reply::Ok {
                id: 7,
                value: json!({"y": 1})
            }
        );
        assert!(read_frame(&mut r, &mut buf).unwrap().is_none());

        let mut truncated = &stream[..6];
        assert_eq!(
            read_frame(&mut truncated, &mut buf).unwrap_err().kind(),
            io::ErrorKind::UnexpectedEof
        );
        let huge = u32::MAX.to_le_bytes();
        let mut r = &huge[..];
        let e = read_frame(&mut r, &mut buf).unwrap_err();
        assert!(e.to_string().contains("exceeds"), "{e}");
        assert!(decode(br#"{"t":"bogus"}"#).is_err());
    }

    #[test]
    fn reply_id_reads_the_id_of_a_reply_too_deep_to_decode() {
        let deep = format!(
            r#"{{"t":"ok","id":5,"value":{}{}}}"#,
            "[".repeat(500),
            "]".repeat(500)
        );
        let e = decode(deep.as_bytes()).unwrap_err();
        assert!(e.to_string().contains("recursion limit"), "{e}");
        assert_eq!(reply_id(deep.as_bytes()), Some(5));
        assert_eq!(reply_id(br#"{"t":"ok","value":1}"#), None);
        assert_eq!(reply_id(b"\x00garbage"), None);
    }

    /// Hands out at most `step` bytes per read and an `Interrupted` before each, like a pipe
    /// under signals.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
        interrupt: bool,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            self.interrupt = !self.interrupt;
            if self.interrupt {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.step.min(out.len()).min(self.data.len());
            out[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    // The body buffer used to be sized from the length prefix before any of it arrived (up to
    // MAX_FRAME = 256 MiB for a 5-byte input); the worker_frame fuzz target now checks this too.
    #[test]
    fn a_length_prefix_alone_allocates_nothing_and_truncation_says_where() {
        let mut stream = ((MAX_FRAME as u32).to_le_bytes()).to_vec();
        stream.extend_from_slice(b"{\"t\"");
        let mut buf = Vec::new();
        let e = read_frame(&mut &stream[..], &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            e.to_string()
                .contains(&format!("prefix says {MAX_FRAME} bytes, 4 arrived")),
            "{e}"
        );
        assert!(buf.capacity() <= FRAME_PREALLOC, "{}", buf.capacity());

        let e = read_frame(&mut &[1u8, 0][..], &mut buf).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof);
        assert!(
            e.to_string().contains("length prefix (after 2 bytes)"),
            "{e}"
        );

        // Bodies past the up-front reservation, in dribs and drabs, still arrive whole.
        let big = format!(
            r#"{{"t":"ok","id":3,"value":"{}"}}"#,
            "x".repeat(3 * FRAME_PREALLOC)
        );
        let mut stream = (big.len() as u32).to_le_bytes().to_vec();
        stream.extend_from_slice(big.as_bytes());
        stream.extend_from_slice(&stream.clone());
        let mut r = Trickle {
            data: &stream,
            step: 7,
            interrupt: false,
        };
        for _ in 0..2 {
            assert!(read_frame(&mut r, &mut buf).unwrap().is_some());
            assert_eq!(buf, big.as_bytes());
            assert!(matches!(decode(&buf), Ok(Reply::Ok { id: 3, .. })));
        }
        assert!(read_frame(&mut r, &mut buf).unwrap().is_none());
    }
}
