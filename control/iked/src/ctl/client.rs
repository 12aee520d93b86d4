//! The ikectl side of the control socket.

use super::protocol::*;
use std::io;
use std::path::Path;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedReadHalf;
use tokio::net::UnixStream;

/// Longest response line accepted (SA lists can be long).
pub const MAX_RESPONSE_LEN: usize = 64 << 20;

/// A connection to iked.
#[derive(Debug)]
pub struct Client {
    reader: BufReader<OwnedReadHalf>,
    writer: tokio::net::unix::OwnedWriteHalf,
    line: Vec<u8>,
}

impl Client {
    /// Connects to the control socket.
    pub async fn connect(path: &Path) -> io::Result<Self> {
        let stream = UnixStream::connect(path).await.map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot connect to iked at {}: {e} (is iked running?)", path.display()),
            )
        })?;
        let (r, w) = stream.into_split();
        Ok(Self { reader: BufReader::new(r), writer: w, line: Vec::new() })
    }

    /// Sends a command.
    pub async fn send(&mut self, command: Command) -> io::Result<()> {
        let mut line =
            serde_json::to_vec(&Request { version: VERSION, command }).map_err(io::Error::other)?;
        line.push(b'\n');
        self.writer.write_all(&line).await
    }

    /// Reads the next response line; `None` at end of stream. Returns the raw
    /// line too, for `--json`.
    pub async fn receive(&mut self) -> io::Result<Option<(Response, String)>> {
        use tokio::io::AsyncReadExt;
        self.line.clear();
        let n =
            (&mut self.reader).take(MAX_RESPONSE_LEN as u64 + 1).read_until(b'\n', &mut self.line).await?;
        if n == 0 {
            return Ok(None);
        }
        if self.line.len() > MAX_RESPONSE_LEN {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "response too long"));
        }
        let raw = String::from_utf8_lossy(self.line.trim_ascii_end()).into_owned();
        let resp: Response = serde_json::from_str(&raw).map_err(|e| {
            io::Error::new(io::ErrorKind::InvalidData, format!("bad response from iked: {e}"))
        })?;
        Ok(Some((resp, raw)))
    }

    /// Sends a command and waits for its single response.
    pub async fn call(&mut self, command: Command) -> io::Result<(Response, String)> {
        self.send(command).await?;
        self.receive()
            .await?
            .ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "iked closed the connection"))
    }
}
