//! Plain TCP for ureq, in place of its `TcpConnector`: every blocking read
//! *and write* waits at most `CANCEL_POLL`, so a cancel or a host's
//! heartbeat is seen within about that long also while a server stops
//! reading an upload (ureq's transport blocks in `write_all` for the whole
//! write timeout there), and so is a connect to a host that drops SYNs.
//! Its buffers are zeroed only as far as used.
//!
//! This plugs into ureq's `unversioned` transport API, which does not
//! follow semver: it is the one place that does (with `crate::http`'s
//! cancellable wrapper), and the test command also builds against the
//! newest ureq 3.x.

use crate::cancel::{cancel_error, cancelled_here, heartbeat, host_stop_error, CANCEL_POLL};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, ShutdownHandle, Transport,
};
use ureq::ProxyProtocol;

/// Opens direct TCP connections (a CONNECT proxy's, opened earlier in the
/// chain, passes through untouched).
#[derive(Debug, Default)]
pub struct TcpConnector;

impl<In: Transport> Connector<In> for TcpConnector {
    type Out = Either<In, TcpTransport>;

    fn connect(
        &self,
        details: &ConnectionDetails,
        chained: Option<In>,
    ) -> Result<Option<Self::Out>, ureq::Error> {
        if chained.is_some() {
            return Ok(chained.map(Either::A));
        }
        if details
            .config
            .proxy()
            .is_some_and(|p| !matches!(p.protocol(), ProxyProtocol::Http | ProxyProtocol::Https))
        {
            return Err(ureq::Error::Io(io::Error::new(
                io::ErrorKind::Unsupported,
                "SOCKS proxies are not supported; use an HTTP(S) CONNECT proxy",
            )));
        }
        let stream = connect_any(&details.addrs, details.timeout)?;
        if details.config.no_delay() {
            stream.set_nodelay(true)?;
        }
        // Fixed short waits: a blocked read or write wakes every CANCEL_POLL
        // to look at the cancel flag, the heartbeat and its own deadline.
        stream.set_read_timeout(Some(CANCEL_POLL))?;
        stream.set_write_timeout(Some(CANCEL_POLL))?;
        let stream = Arc::new(stream);
        // Lets ureq's Agent::shutdown interrupt blocked I/O, as its own
        // transport does.
        (details.register_shutdown)(Arc::downgrade(&stream) as Weak<dyn ShutdownHandle>)?;
        let buffers = LeanBuffers::new(
            details.config.input_buffer_size(),
            details.config.output_buffer_size(),
        );
        Ok(Some(Either::B(TcpTransport {
            stream,
            buffers,
            received: 0,
        })))
    }
}

/// Tries each resolved address in turn within the connect timeout.
fn connect_any(addrs: &[SocketAddr], timeout: NextTimeout) -> Result<TcpStream, ureq::Error> {
    let started = Instant::now();
    let budget = timeout.not_zero().map(|d| *d);
    let mut last: Option<ureq::Error> = None;
    for (i, addr) in addrs.iter().enumerate() {
        // Later addresses keep a share of the budget.
        let share = match budget {
            Some(total) => {
                let left = total.saturating_sub(started.elapsed());
                if left.is_zero() {
                    break;
                }
                Some((left / (addrs.len() - i) as u32).max(Duration::from_millis(10)))
            }
            None => None,
        };
        match connect_one(addr, share) {
            Ok(s) => return Ok(s),
            Err(ConnectFailure::Stopped(e)) => return Err(e),
            Err(ConnectFailure::TimedOut) => last = Some(ureq::Error::Timeout(timeout.reason)),
            Err(ConnectFailure::Io(e)) => last = Some(ureq::Error::Io(e)),
        }
    }
    Err(last.unwrap_or(ureq::Error::Timeout(timeout.reason)))
}

enum ConnectFailure {
    /// Cancelled, or stopped by the host's heartbeat.
    Stopped(ureq::Error),
    TimedOut,
    Io(io::Error),
}

impl From<io::Error> for ConnectFailure {
    fn from(e: io::Error) -> Self {
        ConnectFailure::Io(e)
    }
}

/// One connect that waits for the handshake `CANCEL_POLL` at a time, so a
/// cancel or the heartbeat is seen while a host does not answer (a dropped
/// SYN waits out the whole connect timeout otherwise).
fn connect_one(addr: &SocketAddr, within: Option<Duration>) -> Result<TcpStream, ConnectFailure> {
    use std::os::fd::{FromRawFd, OwnedFd};
    let deadline = within.map(|d| Instant::now() + d);
    let domain = match addr {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: plain socket creation; the result is checked before use.
    let fd = unsafe { libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error().into());
    }
    // SAFETY: fd is a socket we just created and own; OwnedFd closes it on
    // every early return.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    let stream = TcpStream::from(owned);
    stream.set_nonblocking(true)?;
    let (raw, len) = sockaddr(addr);
    // SAFETY: raw holds a sockaddr of `len` bytes for this address family.
    let rc = unsafe { libc::connect(fd, &raw as *const _ as *const libc::sockaddr, len) };
    if rc != 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e.into());
        }
        loop {
            if cancelled_here() {
                return Err(ConnectFailure::Stopped(cancel_error()));
            }
            let mut slice = CANCEL_POLL;
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(ConnectFailure::TimedOut);
                }
                slice = slice.min(left);
            }
            let mut pfd = libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            };
            // SAFETY: one valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&mut pfd, 1, slice.as_millis().max(1) as libc::c_int) };
            if n < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e.into());
            }
            if n > 0 {
                break;
            }
            heartbeat().map_err(|e| ConnectFailure::Stopped(host_stop_error(e)))?;
        }
        if let Some(e) = stream.take_error()? {
            return Err(e.into());
        }
    }
    stream.set_nonblocking(false)?;
    Ok(stream)
}

fn sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: all-zero is a valid sockaddr_storage.
    let mut storage: libc::sockaddr_storage = unsafe { std::mem::zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in) };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            std::mem::size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 = unsafe { &mut *(&mut storage as *mut _ as *mut libc::sockaddr_in6) };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            std::mem::size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// One TCP connection.
pub struct TcpTransport {
    stream: Arc<TcpStream>,
    buffers: LeanBuffers,
    /// Bytes read on this connection so far.
    received: u64,
}

/// A new connection reads at most `FIRST_READS` at a time until it has
/// received `FIRST_READS_UNTIL` bytes, then its whole input buffer. Each
/// page of a fresh buffer costs a page fault (~2 us here) the first time it
/// is filled, in ureq's input buffer and again in the caller's: a 1 MiB
/// media read 256 KiB at a time paid for 128 of them, a quarter of its
/// transfer time (curl 7.88 reads 100 KiB at a time). 32, 64, 128 and
/// 256 KiB first reads measured 761, 748, 788 and 804 us for 1 MiB from
/// nginx (PERFORMANCE.md).
const FIRST_READS: usize = 64 * 1024;
const FIRST_READS_UNTIL: u64 = 1024 * 1024;

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("peer", &self.stream.peer_addr().ok())
            .finish()
    }
}

/// What a blocked read or write does when its short wait ends: gives up
/// past the deadline, stops for a cancel or a host's heartbeat, else waits on.
fn on_wait_slice(deadline: Option<Instant>, timeout: &NextTimeout) -> Result<(), ureq::Error> {
    if cancelled_here() {
        return Err(cancel_error());
    }
    if deadline.is_some_and(|d| Instant::now() >= d) {
        return Err(ureq::Error::Timeout(timeout.reason));
    }
    heartbeat().map_err(host_stop_error)
}

fn is_wait_over(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Transport for TcpTransport {
    fn buffers(&mut self) -> &mut dyn Buffers {
        &mut self.buffers
    }

    fn transmit_output(&mut self, amount: usize, timeout: NextTimeout) -> Result<(), ureq::Error> {
        let timeout = timeout.for_write();
        let deadline = timeout.not_zero().map(|d| Instant::now() + *d);
        let mut sent = 0;
        while sent < amount {
            if cancelled_here() {
                return Err(cancel_error());
            }
            match (&*self.stream).write(&self.buffers.output.as_slice()[sent..amount]) {
                Ok(0) => return Err(ureq::Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if is_wait_over(&e) => on_wait_slice(deadline, &timeout)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ureq::Error::Io(e)),
            }
        }
        Ok(())
    }

    /// One read into ureq's input buffer, waiting `CANCEL_POLL` at a time:
    /// a cancel, the host's heartbeat and the deadline are seen between waits.
    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let deadline = timeout.not_zero().map(|d| Instant::now() + *d);
        let young = self.received < FIRST_READS_UNTIL;
        loop {
            if cancelled_here() {
                return Err(cancel_error());
            }
            let free = self.buffers.input_append_buf();
            let room = if young && free.len() > FIRST_READS {
                &mut free[..FIRST_READS]
            } else {
                free
            };
            match (&*self.stream).read(room) {
                Ok(n) => {
                    self.received += n as u64;
                    quick_ack(&self.stream);
                    self.buffers.input_appended(n);
                    return Ok(n > 0);
                }
                Err(e) if is_wait_over(&e) => on_wait_slice(deadline, &timeout)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ureq::Error::Io(e)),
            }
        }
    }

    fn is_open(&mut self) -> bool {
        is_idle_and_open(&self.stream)
    }
}

/// One peek that does not wait: nothing pending means an idle connection is
/// still good; an end of stream, stray bytes or an error mean it is not.
fn is_idle_and_open(stream: &TcpStream) -> bool {
    let mut one = [0u8; 1];
    match peek_nonblocking(stream, &mut one) {
        Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        Ok(_) => false,
    }
}

/// Asks Linux to acknowledge at once rather than delay the ACK (it falls
/// back to delayed ACKs after a while, hence after every read). A server
/// that corks its responses (nginx `tcp_nopush on`) otherwise holds the tail
/// of one for the client's 40 ms delayed-ACK timer, which stalls keep-alive
/// Range requests (PERFORMANCE.md #10).
fn quick_ack(stream: &TcpStream) {
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a valid socket; the option value is a live c_int of the given size.
        unsafe {
            libc::setsockopt(
                stream.as_raw_fd(),
                libc::IPPROTO_TCP,
                libc::TCP_QUICKACK,
                &on as *const libc::c_int as *const libc::c_void,
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
    }
}

/// Peeks without waiting: one call where ureq's probe makes three.
fn peek_nonblocking(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: a valid socket and a buffer of buf.len() writable bytes.
    let n = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// ureq's buffers, in fresh zero pages that cost nothing until touched
/// (see `Pages`) instead of being written over in full: a pooled
/// connection's first small answer no longer faults in the whole buffer.
struct LeanBuffers {
    input_size: usize,
    output_size: usize,
    input: Pages,
    /// Unconsumed input is `input[consumed..filled]`.
    consumed: usize,
    filled: usize,
    output: Pages,
    progress: bool,
}

/// A buffer of zero-filled pages mapped straight from the kernel: a page
/// costs nothing until it is touched. A `vec![0; n]` is calloc, which
/// memsets whatever heap it reuses: glibc does so for a 64 KiB block, and
/// for 256 KiB ones once a freed mapping has raised its mmap threshold, so
/// a connection's output buffer faulted in 16 pages for a 150-byte request
/// head (PERFORMANCE.md).
struct Pages {
    mem: PagesMem,
}

enum PagesMem {
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    /// No buffer yet, or no mapping to be had.
    Heap(Vec<u8>),
}

// SAFETY: a mapping is owned by exactly one Pages, like a Box<[u8]>; it is
// only reached through &self / &mut self.
unsafe impl Send for Pages {}
// SAFETY: as above; shared access only reads.
unsafe impl Sync for Pages {}

impl Pages {
    fn empty() -> Pages {
        Pages {
            mem: PagesMem::Heap(Vec::new()),
        }
    }

    fn zeroed(len: usize) -> Pages {
        if len > 0 {
            // SAFETY: an anonymous private mapping; the result is checked
            // before use.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                    -1,
                    0,
                )
            };
            if ptr != libc::MAP_FAILED {
                if let Some(ptr) = std::ptr::NonNull::new(ptr as *mut u8) {
                    return Pages {
                        mem: PagesMem::Mapped { ptr, len },
                    };
                }
            }
        }
        Pages {
            mem: PagesMem::Heap(vec![0; len]),
        }
    }

    fn len(&self) -> usize {
        self.as_slice().len()
    }

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn as_slice(&self) -> &[u8] {
        match &self.mem {
            // SAFETY: len bytes mapped readable and writable (zero-filled
            // when mapped), owned by self and borrowed through &self.
            PagesMem::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            PagesMem::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.mem {
            // SAFETY: as in as_slice; &mut self makes the borrow exclusive.
            PagesMem::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts_mut(ptr.as_ptr(), *len)
            },
            PagesMem::Heap(v) => v,
        }
    }

    /// Grows to `len` bytes, keeping the contents.
    fn grow(&mut self, len: usize) {
        if len <= self.len() {
            return;
        }
        let mut bigger = Pages::zeroed(len);
        let old = self.as_slice();
        bigger.as_mut_slice()[..old.len()].copy_from_slice(old);
        *self = bigger;
    }
}

impl Drop for Pages {
    fn drop(&mut self) {
        if let PagesMem::Mapped { ptr, len } = self.mem {
            // SAFETY: the mapping made in zeroed(), unmapped once, here;
            // no slice of it outlives &mut self.
            unsafe {
                libc::munmap(ptr.as_ptr() as *mut libc::c_void, len);
            }
        }
    }
}

/// ureq asks for at least this much scratch space (its own constant).
const MIN_TMP_SIZE: usize = 10 * 1024;

impl LeanBuffers {
    fn new(input_size: usize, output_size: usize) -> LeanBuffers {
        LeanBuffers {
            input_size: input_size.max(1),
            output_size: output_size.max(1),
            input: Pages::empty(),
            consumed: 0,
            filled: 0,
            output: Pages::empty(),
            progress: false,
        }
    }

    /// Empty, for a parked connection's next answer.
    fn ensure_allocation(&mut self) {
        if self.output.is_empty() {
            self.output = Pages::zeroed(self.output_size);
        }
        if self.input.is_empty() {
            self.input = Pages::zeroed(self.input_size);
        }
    }

    /// Moves unconsumed input to the front when that frees useful room.
    fn shift(&mut self) {
        if self.consumed == 0 {
            return;
        }
        if self.consumed == self.filled {
            self.consumed = 0;
            self.filled = 0;
        } else if self.filled > self.input.len() / 2 {
            let (consumed, filled) = (self.consumed, self.filled);
            self.input.as_mut_slice().copy_within(consumed..filled, 0);
            self.filled -= self.consumed;
            self.consumed = 0;
        }
    }
}

impl Buffers for LeanBuffers {
    fn output(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        self.output.as_mut_slice()
    }

    fn input(&self) -> &[u8] {
        &self.input.as_slice()[self.consumed..self.filled]
    }

    fn input_append_buf(&mut self) -> &mut [u8] {
        self.ensure_allocation();
        self.shift();
        if self.filled == self.input.len() {
            // A head larger than the buffer: grow (ureq bounds the head size).
            let grown = self.input.len() * 2;
            self.input.grow(grown);
        }
        &mut self.input.as_mut_slice()[self.filled..]
    }

    fn input_appended(&mut self, amount: usize) {
        self.filled = (self.filled + amount).min(self.input.len());
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
    }

    fn tmp_and_output(&mut self) -> (&mut [u8], &mut [u8]) {
        self.ensure_allocation();
        self.shift();
        let free = self.input.len() - self.filled;
        if free < MIN_TMP_SIZE {
            let grown = self.input.len() + (MIN_TMP_SIZE - free);
            self.input.grow(grown);
        }
        (
            &mut self.input.as_mut_slice()[self.filled..],
            self.output.as_mut_slice(),
        )
    }

    fn can_use_input(&self) -> bool {
        self.consumed < self.filled && self.progress
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lean_buffers_append_consume_and_shift() {
        let mut b = LeanBuffers::new(8, 4);
        assert!(b.input().is_empty());
        assert_eq!(b.output().len(), 4);
        b.input_append_buf()[..6].copy_from_slice(b"abcdef");
        b.input_appended(6);
        assert_eq!(b.input(), b"abcdef");
        assert!(!b.can_use_input(), "no progress yet");
        b.input_consume(5);
        assert!(b.can_use_input());
        assert_eq!(b.input(), b"f");
        // More than half filled with 5 consumed: shifted to the front.
        let free = b.input_append_buf();
        assert_eq!(free.len(), 7);
        assert_eq!(b.input(), b"f");
        b.input_consume(1);
        assert!(b.input().is_empty());
        assert_eq!(b.input_append_buf().len(), 8);
    }

    #[test]
    fn pages_come_zeroed_and_keep_their_contents_when_grown() {
        let mut p = Pages::zeroed(256 * 1024);
        assert_eq!(p.len(), 256 * 1024);
        assert!(p.as_slice().iter().all(|&b| b == 0));
        p.as_mut_slice()[..3].copy_from_slice(b"abc");
        p.as_mut_slice()[256 * 1024 - 1] = 7;
        p.grow(300 * 1024);
        assert_eq!(p.len(), 300 * 1024);
        assert_eq!(&p.as_slice()[..3], b"abc");
        assert_eq!(p.as_slice()[256 * 1024 - 1], 7);
        assert!(p.as_slice()[256 * 1024..].iter().all(|&b| b == 0));
        assert!(Pages::empty().is_empty());
        assert!(Pages::zeroed(0).is_empty());
    }

    #[test]
    fn lean_buffers_grow_when_full() {
        let mut b = LeanBuffers::new(4, 4);
        b.input_append_buf().copy_from_slice(b"wxyz");
        b.input_appended(4);
        assert_eq!(b.input_append_buf().len(), 4, "doubled");
        assert_eq!(b.input(), b"wxyz");
        let (tmp, out) = b.tmp_and_output();
        assert!(tmp.len() >= MIN_TMP_SIZE);
        assert_eq!(out.len(), 4);
    }
}
