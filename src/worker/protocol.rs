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
    /// The tool raised.
    Err {
        id: u64,
        #[serde(rename = "type")]
        type_name: String,
        message: String,
        #[serde(default)]
        traceback: Option<String>,
        /// The exception pickled (base64), when it could be, so the caller gets the same type.
        #[serde(default)]
        pickle: Option<String>,
    },
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
    let n = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&n.to_le_bytes());
    Ok(buf)
}

/// Read one frame body; `Ok(None)` at a clean end of stream (between frames).
pub fn read_frame(r: &mut impl Read, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut len = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        match r.read(&mut len[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
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
    buf.resize(n, 0);
    r.read_exact(buf)?;
    Ok(Some(()))
}

/// Decode a frame body.
pub fn decode(body: &[u8]) -> serde_json::Result<Reply> {
    serde_json::from_slice(body)
}

/// An exception raised in a worker, carried in `Error::Python::original` so the Python
/// boundary can rebuild the same exception object (from `pickle`) for the caller.
#[derive(Debug, Clone)]
pub struct RemoteException {
    pub pickle: Option<Vec<u8>>,
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
}
