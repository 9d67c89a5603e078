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

/// The complete messages at the start of `buffer`, taken out of it. A
/// message starting with a digit is octet-counted (`LEN SP MSG`); any other
/// ends at a newline (a trailing `\r` and empty messages are dropped).
pub fn frames(buffer: &mut Vec<u8>, out: &mut Vec<Vec<u8>>) {
    let mut at = 0;
    loop {
        let rest = &buffer[at..];
        let Some(&first) = rest.first() else { break };
        if first.is_ascii_digit() {
            let Some(space) = rest.iter().take(8).position(|&b| b == b' ') else {
                if rest.len() < 8 {
                    break; // the length is not all here yet
                }
                // digits but no length: a newline-framed message after all
                match newline_frame(rest) {
                    Some((message, used)) => {
                        push(out, message);
                        at += used;
                        continue;
                    }
                    None => break,
                }
            };
            let length = std::str::from_utf8(&rest[..space]).ok().and_then(|t| t.parse::<usize>().ok());
            match length {
                Some(length) if rest.len() >= space + 1 + length => {
                    push(out, &rest[space + 1..space + 1 + length]);
                    at += space + 1 + length;
                }
                Some(_) => break,
                None => match newline_frame(rest) {
                    Some((message, used)) => {
                        push(out, message);
                        at += used;
                    }
                    None => break,
                },
            }
        } else {
            match newline_frame(rest) {
                Some((message, used)) => {
                    push(out, message);
                    at += used;
                }
                None => break,
            }
        }
    }
    buffer.drain(..at);
}

fn newline_frame(rest: &[u8]) -> Option<(&[u8], usize)> {
    let end = rest.iter().position(|&b| b == b'\n')?;
    Some((&rest[..end], end + 1))
}

fn push(out: &mut Vec<Vec<u8>>, message: &[u8]) {
    let message = message.strip_suffix(b"\r").unwrap_or(message);
    let message = message.strip_suffix(b"\n").unwrap_or(message);
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
    let mut buffer: Vec<u8> = Vec::with_capacity(64 << 10);
    let mut chunk = vec![0u8; 64 << 10];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => 0,
            Ok(n) => n,
        };
        if n == 0 {
            // the peer closed: a last message without its newline still counts
            let mut messages = Vec::new();
            frames(&mut buffer, &mut messages);
            if !buffer.is_empty() {
                push(&mut messages, &buffer);
            }
            spool_messages(&spool, &tenant, messages).await;
            return;
        }
        buffer.extend_from_slice(&chunk[..n]);
        let mut messages = Vec::new();
        frames(&mut buffer, &mut messages);
        if buffer.len() > MAX_MESSAGE + 16 {
            // a frame that never ends: keep what came, and start over
            push(&mut messages, &buffer);
            buffer.clear();
        }
        if !spool_messages(&spool, &tenant, messages).await {
            return;
        }
    }
}

/// Accepts syslog connections until the task is aborted.
pub async fn serve_tcp(listener: TcpListener, tls: Option<TlsAcceptor>, spool: Arc<Spool>, tenant: String) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot accept a syslog connection.");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let (spool, tenant, tls) = (spool.clone(), tenant.clone(), tls.clone());
        tokio::spawn(async move {
            match tls {
                Some(acceptor) => {
                    match tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => read_connection(stream, spool, tenant).await,
                        _ => tracing::info!(%peer, "Syslog TLS handshake failed."),
                    }
                }
                None => read_connection(tcp, spool, tenant).await,
            }
        });
    }
}

/// Receives syslog datagrams until the task is aborted.
pub async fn serve_udp(socket: UdpSocket, spool: Arc<Spool>, tenant: String) {
    let mut datagram = vec![0u8; 65536];
    loop {
        let n = match socket.recv_from(&mut datagram).await {
            Ok((n, _)) => n,
            Err(e) => {
                tracing::warn!(error = %e, "Cannot receive a syslog datagram.");
                continue;
            }
        };
        let mut messages = Vec::new();
        push(&mut messages, &datagram[..n]);
        spool_messages(&spool, &tenant, messages).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(input: &[u8]) -> (Vec<String>, Vec<u8>) {
        let mut buffer = input.to_vec();
        let mut out = Vec::new();
        frames(&mut buffer, &mut out);
        (out.into_iter().map(|m| String::from_utf8(m).unwrap()).collect(), buffer)
    }

    #[test]
    fn both_framings_are_read_and_partial_frames_wait() {
        let (messages, rest) = split(b"<13>Nov  1 a\n13 <14>two\nlines\r\n<15>three\r\n\n8 <16>fo");
        assert_eq!(messages, ["<13>Nov  1 a", "<14>two\nlines", "<15>three"]);
        assert_eq!(rest, b"8 <16>fo");
        // a line starting with digits that is not a length is a newline frame
        let (messages, rest) = split(b"2026-11-01T00:00:00Z host app: hi\n12");
        assert_eq!(messages, ["2026-11-01T00:00:00Z host app: hi"]);
        assert_eq!(rest, b"12");
    }
}
