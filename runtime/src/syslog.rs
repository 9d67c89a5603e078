//! Syslog over the network (`type = "syslog"` sources): TCP with either
//! framing of RFC 6587 — octet counting (`LEN SP MSG`) or a newline after each
//! message, told apart per message by its first byte — optionally over TLS
//! (RFC 5425), and UDP, one message per datagram (RFC 5426). The messages
//! (RFC 5424 or 3164; the chain's parser reads them) go to the source's spool
//! and from there through the pipeline like an http source's records.
//!
//! Syslog has no acknowledgement, so the spool is written without an fsync
//! per message: what was received survives the process crashing (it is in
//! the page cache and the spool is read again from the last commit), not the
//! machine losing power before the kernel writes it.

use crate::sources::Spool;
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;

/// Messages longer than this are cut (and the connection's framing resumes after them).
pub const MAX_MESSAGE: usize = 1 << 20;

/// How a connection frames its messages (RFC 6587), told by its first byte:
/// a digit starts a `LEN SP MSG` frame, anything else a message ended by a newline.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Unknown,
    Octets,
    Lines,
}

/// Splits one connection's bytes into messages.
pub struct Framer {
    mode: Mode,
    buffer: Vec<u8>,
    /// Bytes of an over-long octet-counted frame still to be thrown away.
    skip: usize,
    /// Whether the rest of an over-long line is being thrown away.
    skip_line: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Framer { mode: Mode::Unknown, buffer: Vec::new(), skip: 0, skip_line: false }
    }
}

impl Framer {
    /// Takes bytes as they come; complete messages go to `out`. Messages
    /// longer than [`MAX_MESSAGE`] are kept cut to it.
    pub fn feed(&mut self, mut bytes: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.skip > 0 {
            let n = self.skip.min(bytes.len());
            self.skip -= n;
            bytes = &bytes[n..];
        }
        self.buffer.extend_from_slice(bytes);
        // the messages are taken from the front; the buffer moves once, at the end
        let mut at = 0;
        loop {
            let rest = &self.buffer[at..];
            if self.mode == Mode::Unknown {
                match rest.iter().find(|b| !b.is_ascii_whitespace()) {
                    Some(b) if b.is_ascii_digit() => self.mode = Mode::Octets,
                    Some(_) => self.mode = Mode::Lines,
                    None => break,
                }
            }
            let used = match self.mode {
                Mode::Octets => self.octet_frame(at, out),
                _ => self.line(at, out),
            };
            match used {
                Some(n) => at += n,
                None => break,
            }
        }
        self.buffer.drain(..at);
    }

    /// The frame at `at`, if whole: the bytes it used.
    fn octet_frame(&mut self, at: usize, out: &mut Vec<Vec<u8>>) -> Option<usize> {
        let rest = &self.buffer[at..];
        let start = rest.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(rest.len());
        let digits = rest[start..].iter().take_while(|b| b.is_ascii_digit()).count();
        if start + digits == rest.len() {
            return None; // the length is not all here yet
        }
        let length = std::str::from_utf8(&rest[start..start + digits]).ok().and_then(|t| t.parse::<usize>().ok());
        let (Some(length), b' ') = (length, rest[start + digits]) else {
            // not a frame: the sender frames by newlines after all
            tracing::warn!("A syslog connection sent no valid octet count; reading it as lines.");
            self.mode = Mode::Lines;
            return Some(0);
        };
        let body = start + digits + 1;
        if length > MAX_MESSAGE {
            if rest.len() < body + MAX_MESSAGE {
                return None;
            }
            push(out, &rest[body..body + MAX_MESSAGE]);
            let have = rest.len() - body;
            self.skip = length.saturating_sub(have);
            return Some(body + length.min(have));
        }
        if rest.len() < body + length {
            return None;
        }
        push(out, &rest[body..body + length]);
        Some(body + length)
    }

    /// The line at `at`, if whole: the bytes it used.
    fn line(&mut self, at: usize, out: &mut Vec<Vec<u8>>) -> Option<usize> {
        let rest = &self.buffer[at..];
        match rest.iter().position(|&b| b == b'\n') {
            Some(end) => {
                if !std::mem::take(&mut self.skip_line) {
                    push(out, &rest[..end]);
                }
                Some(end + 1)
            }
            None if rest.len() > MAX_MESSAGE && !self.skip_line => {
                // a line that never ends: keep its start, drop the rest of it
                push(out, &rest[..MAX_MESSAGE]);
                self.skip_line = true;
                Some(rest.len())
            }
            // the rest of an over-long line goes as it comes
            None if self.skip_line && !rest.is_empty() => Some(rest.len()),
            None => None,
        }
    }

    /// The connection closed: a last line without its newline still counts;
    /// an octet-counted frame cut short does not (its sender gave up on it).
    pub fn finish(mut self, out: &mut Vec<Vec<u8>>) {
        self.feed(&[], out);
        match self.mode {
            Mode::Lines if !self.skip_line => push(out, &self.buffer),
            Mode::Octets if self.buffer.iter().any(|b| !b.is_ascii_whitespace()) => {
                tracing::warn!(
                    bytes = self.buffer.len(),
                    "A syslog connection closed in the middle of a frame; its start is dropped."
                );
            }
            _ => {}
        }
    }
}

fn push(out: &mut Vec<Vec<u8>>, message: &[u8]) {
    let message = message.strip_suffix(b"\r").unwrap_or(message);
    if !message.is_empty() {
        out.push(message[..message.len().min(MAX_MESSAGE)].to_vec());
    }
}

async fn spool_messages(spool: &Arc<Spool>, tenant: &str, messages: Vec<Vec<u8>>) -> bool {
    if messages.is_empty() {
        return true;
    }
    let (spool, tenant) = (spool.clone(), tenant.to_string());
    match tokio::task::spawn_blocking(move || spool.append_block(&tenant, &messages, false)).await {
        Ok(Ok(())) => true,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "Cannot write received syslog messages to the spool; closing the connection.");
            false
        }
        Err(_) => false,
    }
}

async fn read_connection(mut stream: impl AsyncRead + Unpin, spool: Arc<Spool>, tenant: String) {
    let mut framer = Framer::default();
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        let mut messages = Vec::new();
        if n == 0 {
            framer.finish(&mut messages);
            spool_messages(&spool, &tenant, messages).await;
            return;
        }
        framer.feed(&chunk[..n], &mut messages);
        if !spool_messages(&spool, &tenant, messages).await {
            return;
        }
    }
}

/// Accepts syslog connections until the task is aborted; open connections
/// end when `shutdown` turns true.
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    spool: Arc<Spool>,
    tenant: String,
    shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(crate::http::MAX_CONNECTIONS));
    loop {
        let slot = slots.clone().acquire_owned().await.expect("never closed");
        let (tcp, peer) = crate::http::accept(&listener).await;
        let (spool, tenant, tls, mut shutdown) = (spool.clone(), tenant.clone(), tls.clone(), shutdown.clone());
        tokio::spawn(async move {
            let _slot = slot;
            let connection = async move {
                match tls {
                    Some(acceptor) => {
                        match tokio::time::timeout(crate::http::HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                            Ok(Ok(stream)) => read_connection(stream, spool, tenant).await,
                            _ => tracing::info!(%peer, "Syslog TLS handshake failed."),
                        }
                    }
                    None => read_connection(tcp, spool, tenant).await,
                }
            };
            if *shutdown.borrow_and_update() {
                return;
            }
            tokio::select! {
                () = connection => {}
                _ = shutdown.changed() => {}
            }
        });
    }
}

/// Receives syslog datagrams until the task is aborted; those that arrived
/// together go to the spool together.
pub async fn serve_udp(socket: UdpSocket, spool: Arc<Spool>, tenant: String) {
    let mut datagram = vec![0u8; 65536];
    loop {
        let mut messages = Vec::new();
        match socket.recv_from(&mut datagram).await {
            Ok((n, _)) => push(&mut messages, &datagram[..n]),
            Err(e) => {
                tracing::warn!(error = %e, "Cannot receive a syslog datagram.");
                continue;
            }
        }
        while messages.len() < 1024 {
            match socket.try_recv_from(&mut datagram) {
                Ok((n, _)) => push(&mut messages, &datagram[..n]),
                Err(_) => break,
            }
        }
        spool_messages(&spool, &tenant, messages).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` in pieces of `step` bytes, then closes.
    fn split(input: &[u8], step: usize) -> Vec<String> {
        let mut framer = Framer::default();
        let mut out = Vec::new();
        for piece in input.chunks(step) {
            framer.feed(piece, &mut out);
        }
        framer.finish(&mut out);
        out.into_iter().map(|m| String::from_utf8(m).unwrap()).collect()
    }

    #[test]
    fn each_connection_is_framed_one_way_whatever_the_pieces() {
        for step in [1, 3, 1000] {
            let octets = split(b"13 <14>two\nlines9 <15>three 0 8 <16>last", step);
            assert_eq!(octets, ["<14>two\nlines", "<15>three", "<16>last"], "{step}");
            // newline framing: a message that starts with digits and a space is still one line
            let lines = split(b"<13>Nov  1 a\r\n\n100 bytes sent\n<15>no newline at the end", step);
            assert_eq!(lines, ["<13>Nov  1 a", "100 bytes sent", "<15>no newline at the end"], "{step}");
        }
        // an octet-counted frame cut short by the close is dropped, not archived with its count
        assert_eq!(split(b"8 <16>last 20 <17>cut", 4), ["<16>last"]);
    }

    #[test]
    fn over_long_messages_are_cut_and_framing_resumes_after_them() {
        let long = "x".repeat(MAX_MESSAGE + 10);
        let octets = split(format!("{} {long}5 <1>ok", long.len()).as_bytes(), 65536);
        assert_eq!(octets.len(), 2);
        assert_eq!((octets[0].len(), octets[1].as_str()), (MAX_MESSAGE, "<1>ok"));
        let lines = split(format!("<1>{long}\n<2>ok\n").as_bytes(), 65536);
        assert_eq!(lines.len(), 2);
        assert_eq!((lines[0].len(), lines[1].as_str()), (MAX_MESSAGE, "<2>ok"));
    }
}
