//! What a connection runs over: plain TCP or TLS on TCP. Both give access to the socket, so that
//! the driver can wait for the next request without holding a read buffer and notice a client
//! that hangs up while its request (a held poll) is pending.

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;

pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The TCP socket underneath.
    fn socket(&self) -> &TcpStream;

    fn socket_mut(&mut self) -> &mut TcpStream;

    /// Whether the transport keeps read bytes of its own (TLS records already decrypted): then
    /// the socket's readiness says nothing about whether a request is waiting.
    fn buffers_reads(&self) -> bool;
}

impl Transport for TcpStream {
    fn socket(&self) -> &TcpStream {
        self
    }

    fn socket_mut(&mut self) -> &mut TcpStream {
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

    fn socket_mut(&mut self) -> &mut TcpStream {
        self.get_mut().0
    }

    fn buffers_reads(&self) -> bool {
        true
    }
}

/// The most bytes [`read_ready`] takes in one read (a typical request head fits several times).
const READY_CHUNK: usize = 2048;

/// Reads what has already arrived on plain TCP without waiting, through a buffer on the stack, and
/// appends it to `out` in an allocation of exactly its size, so that reading a small request
/// allocates no room it does not use. `WouldBlock` when nothing has arrived (or on TLS, whose
/// reads go through its own buffers); `Ok(0)` at the end of the stream.
///
/// The read goes through the socket's `poll_read` (with a waker that does nothing: a caller that
/// gets `WouldBlock` goes on to await a read, which registers its own): a read that does not fill
/// the buffer shows the socket drained, and `poll_read` then forgets the socket's readiness, so
/// that the hang-up watch of a held poll and the wait for the next request wait for the next
/// readiness event instead of trying a read that finds nothing (`try_read` keeps the readiness
/// until a read fails with `WouldBlock`: one wasted system call per request).
pub fn read_ready<T: Transport>(io: &mut T, out: &mut Vec<u8>) -> std::io::Result<usize> {
    if io.buffers_reads() {
        return Err(std::io::ErrorKind::WouldBlock.into());
    }
    // Left uninitialised: the read fills what it takes (2 KiB of zeroes cost more than the read).
    let mut chunk = [std::mem::MaybeUninit::<u8>::uninit(); READY_CHUNK];
    let mut room = tokio::io::ReadBuf::uninit(&mut chunk);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match std::pin::Pin::new(io.socket_mut()).poll_read(&mut context, &mut room) {
        std::task::Poll::Ready(Ok(())) => {}
        std::task::Poll::Ready(Err(error)) => return Err(error),
        std::task::Poll::Pending => return Err(std::io::ErrorKind::WouldBlock.into()),
    }
    let read = room.filled();
    out.reserve_exact(read.len());
    out.extend_from_slice(read);
    Ok(read.len())
}

/// Writes what the socket takes now, without waiting (plain TCP; nothing on TLS, whose writes go
/// through its own buffers): the number of bytes written, 0 when the socket takes none now.
pub fn write_ready<T: Transport>(io: &T, slices: &[std::io::IoSlice<'_>]) -> std::io::Result<usize> {
    if io.buffers_reads() {
        return Ok(0);
    }
    match io.socket().try_write_vectored(slices) {
        Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => Ok(0),
        written => written,
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

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::FutureExt;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    #[tokio::test]
    async fn a_read_that_drains_the_socket_waits_for_the_next_bytes_without_trying_again() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        let request = b"GET / HTTP/1.1\r\nHost: gw\r\n\r\n";
        client.write_all(request).await.unwrap();
        let mut got = Vec::new();
        while got.len() < request.len() {
            server.readable().await.unwrap();
            let _ = read_ready(&mut server, &mut got);
        }
        assert_eq!(got, request);
        // Drained: the socket is not taken for readable (a read now would only fail) ...
        assert!(server.readable().now_or_never().is_none(), "the readiness of the bytes read is forgotten");
        // ... until more bytes come.
        client.write_all(b"G").await.unwrap();
        server.readable().await.unwrap();
        assert_eq!(read_ready(&mut server, &mut got).unwrap(), 1);
    }
}
