//! What a connection runs over: plain TCP or TLS on TCP. Both give access to the socket, so that
//! the driver can wait for the next request without holding a read buffer and notice a client
//! that hangs up while its request (a held poll) is pending.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The TCP socket underneath.
    fn socket(&self) -> &TcpStream;

    /// Whether the transport keeps read bytes of its own (TLS records already decrypted): then
    /// the socket's readiness says nothing about whether a request is waiting.
    fn buffers_reads(&self) -> bool;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn buffers_reads(&self) -> bool {
        false
    }
}

impl Transport for TlsStream<TcpStream> {
    fn socket(&self) -> &TcpStream {
        self.get_ref().0
    }

    fn buffers_reads(&self) -> bool {
        true
    }
}

/// Waits until a read would find bytes, without a buffer (plain TCP); at once for TLS.
pub async fn readable<T: Transport>(io: &T) -> std::io::Result<()> {
    if io.buffers_reads() {
        return Ok(());
    }
    io.socket().readable().await
}

/// Completes when the client has closed or reset the connection. Never completes once the client
/// has sent further bytes (a pipelined request, read after the current answer) or on TLS, where
/// the bytes on the socket are records and only the end of the stream is certain.
pub async fn hung_up<T: Transport>(io: &T) {
    let mut probe = [0u8; 1];
    match io.socket().peek(&mut probe).await {
        Ok(0) | Err(_) => {}
        Ok(_) => std::future::pending().await,
    }
}
