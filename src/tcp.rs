//! Plain TCP for ureq, in place of its `TcpConnector`: every blocking read
//! *and write* waits at most `CANCEL_POLL`, so a cancel or a host's
//! heartbeat is seen within about that long also while a server stops
//! reading an upload (ureq's transport blocks in `write_all` for the whole
//! write timeout there). Its buffers are zeroed only as far as used.
//!
//! A plain-http connection (no TLS, no proxy) also lets the downloader read
//! a length-delimited body straight from the socket into its own buffer
//! (`PlainBody`) once ureq's input buffer is drained: one copy of every
//! byte instead of two. Bound for a file, the bytes go from the socket to
//! the file through a pipe (`Pipe`, Linux splice) and never enter user
//! space at all. A connection whose body was read to its end that
//! way is parked here and handed out again for the next request to the
//! same address, as ureq's pool would have.

use crate::http::{cancel_error, cancelled_here, heartbeat, host_stop_error, CANCEL_POLL};
use std::cell::RefCell;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};
use ureq::unversioned::transport::{
    Buffers, ConnectionDetails, Connector, Either, NextTimeout, ShutdownHandle, Transport,
};
use ureq::ProxyProtocol;

/// Opens direct TCP connections (a CONNECT proxy's, opened earlier in the
/// chain, passes through untouched).
#[derive(Default)]
pub struct TcpConnector {
    parked: Arc<Parking>,
}

impl std::fmt::Debug for TcpConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpConnector").finish_non_exhaustive()
    }
}

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
        // Plain http straight to the server: no TLS or proxy layer between
        // the socket and the HTTP bytes, so a body may be read directly.
        let plain = !details.needs_tls() && details.config.proxy().is_none();
        if plain {
            if let Some(t) = self.parked.take(details) {
                return Ok(Some(Either::B(t)));
            }
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
        // Known once here, not asked of the kernel at every parking.
        let peer = plain.then(|| stream.peer_addr().ok()).flatten();
        Ok(Some(Either::B(TcpTransport {
            link: Arc::new(Link {
                stream,
                peer,
                unread: buffers.unread.clone(),
                reader: AtomicU8::new(READ_BY_UREQ),
                received: AtomicU64::new(0),
                per_read: details.config.timeout_per_read(),
            }),
            buffers,
            park_in: plain.then(|| Arc::downgrade(&self.parked)),
            park_rules: ParkRules::of(details),
        })))
    }
}

/// Who reads the current response's body on a connection.
const READ_BY_UREQ: u8 = 0;
/// `PlainBody` took it over: ureq must not read again, and the connection
/// is closed when ureq drops it.
const READ_DIRECT: u8 = 1;
/// `PlainBody` read it to its very end: the connection may serve another
/// request, so it is parked when ureq drops it.
const BODY_DONE: u8 = 2;

/// What a connection shares with a `PlainBody` reading from it.
struct Link {
    stream: Arc<TcpStream>,
    /// Plain http only: the server's address, which parking keys on.
    peer: Option<SocketAddr>,
    /// Bytes in ureq's input buffer not yet consumed (body bytes, once the
    /// head is parsed): a direct read may start only at zero.
    unread: Arc<AtomicUsize>,
    reader: AtomicU8,
    /// Bytes read on this connection so far.
    received: AtomicU64,
    /// The agent's timeout for one read, which `PlainBody` keeps too.
    per_read: Option<Duration>,
}

impl Link {
    /// Where the next read of this connection may go: at most
    /// `FIRST_READS` while it is new.
    fn read_room<'b>(&self, free: &'b mut [u8]) -> &'b mut [u8] {
        if self.received.load(Ordering::Relaxed) < FIRST_READS_UNTIL && free.len() > FIRST_READS {
            &mut free[..FIRST_READS]
        } else {
            free
        }
    }

    /// One read into `free`, waiting `CANCEL_POLL` at a time: a cancel, the
    /// host's heartbeat and the deadline are seen between waits. For ureq's
    /// input buffer and for `PlainBody` alike.
    fn read_waiting(
        &self,
        free: &mut [u8],
        deadline: Option<Instant>,
        timeout: &NextTimeout,
    ) -> Result<usize, ureq::Error> {
        self.receive_waiting(deadline, timeout, || {
            (&*self.stream).read(self.read_room(free))
        })
    }

    /// Runs `receive` (one read-like call on the socket) until it takes
    /// bytes or meets the end, waiting as `read_waiting` says.
    fn receive_waiting(
        &self,
        deadline: Option<Instant>,
        timeout: &NextTimeout,
        mut receive: impl FnMut() -> io::Result<usize>,
    ) -> Result<usize, ureq::Error> {
        loop {
            if cancelled_here() {
                return Err(cancel_error());
            }
            match receive() {
                Ok(n) => {
                    self.received.fetch_add(n as u64, Ordering::Relaxed);
                    quick_ack(&self.stream);
                    return Ok(n);
                }
                Err(e) if is_wait_over(&e) => on_wait_slice(deadline, timeout)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ureq::Error::Io(e)),
            }
        }
    }
}

/// Connections whose body `PlainBody` read to its end, ready for the next
/// request (ureq never saw the end, so it did not pool them).
#[derive(Default)]
struct Parking {
    idle: Mutex<Vec<Parked>>,
}

/// ureq's own pool limits, applied to parked connections.
#[derive(Clone, Copy)]
struct ParkRules {
    per_peer: usize,
    total: usize,
    max_age: Duration,
}

impl ParkRules {
    fn of(details: &ConnectionDetails) -> ParkRules {
        ParkRules {
            per_peer: details.config.max_idle_connections_per_host().max(1),
            total: details.config.max_idle_connections().max(1),
            max_age: details.config.max_idle_age(),
        }
    }
}

struct Parked {
    link: Arc<Link>,
    buffers: LeanBuffers,
    since: Instant,
}

impl Parking {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        // A panic elsewhere cannot leave the list half-changed.
        self.idle.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// An idle connection to one of `details.addrs` that is still open.
    fn take(self: &Arc<Self>, details: &ConnectionDetails) -> Option<TcpTransport> {
        let rules = ParkRules::of(details);
        let mut idle = self.lock();
        idle.retain(|p| p.since.elapsed() < rules.max_age);
        while let Some(i) = idle
            .iter()
            .rposition(|p| p.link.peer.is_some_and(|a| details.addrs.contains(&a)))
        {
            let p = idle.swap_remove(i);
            if is_idle_and_open(&p.link.stream) {
                p.link.reader.store(READ_BY_UREQ, Ordering::Relaxed);
                return Some(TcpTransport {
                    link: p.link,
                    buffers: p.buffers,
                    park_in: Some(Arc::downgrade(self)),
                    park_rules: rules,
                });
            }
        }
        None
    }

    fn park(&self, p: Parked, rules: ParkRules) {
        let mut idle = self.lock();
        idle.retain(|q| q.since.elapsed() < rules.max_age);
        // Oldest first out, per peer and in all.
        let peer = p.link.peer;
        if idle.iter().filter(|q| q.link.peer == peer).count() >= rules.per_peer {
            if let Some(oldest) = idle.iter().position(|q| q.link.peer == peer) {
                idle.remove(oldest);
            }
        }
        if idle.len() >= rules.total {
            idle.remove(0);
        }
        idle.push(p);
    }
}

impl Drop for TcpTransport {
    fn drop(&mut self) {
        if self.link.reader.load(Ordering::Relaxed) != BODY_DONE {
            return;
        }
        let Some(parking) = self.park_in.as_ref().and_then(Weak::upgrade) else {
            return;
        };
        if self.link.peer.is_none() {
            return;
        }
        let mut buffers = std::mem::replace(&mut self.buffers, LeanBuffers::new(1, 1));
        buffers.clear();
        parking.park(
            Parked {
                link: self.link.clone(),
                buffers,
                since: Instant::now(),
            },
            self.park_rules,
        );
    }
}

thread_local! {
    /// The plain connection this thread last read from: after a request
    /// returns, the one its answer's body is on.
    static LAST_PLAIN: RefCell<Weak<Link>> = const { RefCell::new(Weak::new()) };
}

/// Forgets the connection this thread last read from (before a request).
pub fn forget_plain_connection() {
    LAST_PLAIN.with(|l| *l.borrow_mut() = Weak::new());
}

/// The plain-http connection the answer just received on this thread came
/// on, if it did on one; None for TLS and proxied connections.
pub fn plain_body() -> Option<PlainBody> {
    LAST_PLAIN
        .with(|l| std::mem::take(&mut *l.borrow_mut()))
        .upgrade()
        .map(|link| PlainBody { link })
}

/// Reads a length-delimited body straight from the socket, past ureq,
/// once ureq's input buffer holds none of it (`buffered() == 0`). Its
/// reads wait as ureq's transport does: `CANCEL_POLL` at a time, seeing a
/// cancel and the host's heartbeat, up to the per-read timeout.
pub struct PlainBody {
    link: Arc<Link>,
}

impl PlainBody {
    /// Body bytes ureq has buffered: read those through ureq first.
    pub fn buffered(&self) -> usize {
        self.link.unread.load(Ordering::Relaxed)
    }

    /// Reads into `buf`, which must not reach past the body's end, waiting
    /// at most the agent's per-read timeout. From the first call on, ureq
    /// must not read this answer again.
    pub fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let (deadline, timeout) = self.take_over();
        self.link
            .read_waiting(buf, deadline, &timeout)
            .map_err(ureq::Error::into_io)
    }

    /// Moves up to `max` body bytes (never past the body's end) from the
    /// socket into `pipe`, which must be empty, without their entering user
    /// space (`Pipe::drain_into` takes them on to a file). Waits like
    /// `read`; 0 is the end of the stream.
    #[cfg(target_os = "linux")]
    pub fn splice_into(&mut self, pipe: &mut Pipe, max: usize) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        debug_assert!(pipe.is_empty());
        let (deadline, timeout) = self.take_over();
        let socket = self.link.stream.as_raw_fd();
        let into_pipe = pipe.write.as_raw_fd();
        let want = max.min(pipe.capacity);
        let n = self
            .link
            .receive_waiting(deadline, &timeout, || {
                // SAFETY: the socket and the pipe stay open across the call;
                // null offsets, as neither has a position.
                let r = unsafe {
                    libc::splice(
                        socket,
                        std::ptr::null_mut(),
                        into_pipe,
                        std::ptr::null_mut(),
                        want,
                        libc::SPLICE_F_MOVE,
                    )
                };
                usize::try_from(r).map_err(|_| io::Error::last_os_error())
            })
            .map_err(ureq::Error::into_io)?;
        pipe.held = n;
        Ok(n)
    }

    #[cfg(not(target_os = "linux"))]
    pub fn splice_into(&mut self, pipe: &mut Pipe, _max: usize) -> io::Result<usize> {
        match pipe.0 {}
    }

    /// From the first direct read on, ureq must not read this answer again;
    /// each read waits at most the per-read timeout.
    fn take_over(&self) -> (Option<Instant>, NextTimeout) {
        self.link.reader.store(READ_DIRECT, Ordering::Relaxed);
        let timeout = NextTimeout {
            reason: ureq::Timeout::RecvBody,
            ..NextTimeout::default()
        };
        (self.link.per_read.map(|d| Instant::now() + d), timeout)
    }

    /// The whole body was read and nothing past it: the connection may be
    /// used again once ureq lets go of it.
    pub fn finished(&self) {
        self.link.reader.store(BODY_DONE, Ordering::Relaxed);
    }
}

/// How much a splice pipe holds: the kernel's default is 64 KiB (16
/// pages); one MiB takes a fast sender's bursts in a quarter of the calls.
#[cfg(target_os = "linux")]
const PIPE_SIZE: usize = 1024 * 1024;
/// A smaller pipe is not used: bytes are read and written instead.
#[cfg(target_os = "linux")]
const MIN_PIPE_SIZE: usize = 64 * 1024;

/// A pipe through which body bytes go from the socket to a file inside the
/// kernel (splice): they are copied once, into the file's pages, instead of
/// into user space and out again. Empty between calls.
#[cfg(target_os = "linux")]
pub struct Pipe {
    read: std::os::fd::OwnedFd,
    write: std::os::fd::OwnedFd,
    capacity: usize,
    /// Bytes in the pipe (only after a failed write to the file).
    held: usize,
    /// The file it last drained into took no splice, so bytes went through
    /// user space anyway, one copy more than reading them: until it serves
    /// another transfer (`for_another_transfer`), it is not used.
    copied: bool,
}

#[cfg(target_os = "linux")]
impl Pipe {
    /// A new pipe, or None when the process is out of descriptors or of
    /// pipe budget (the caller then reads and writes as usual).
    pub fn new() -> Option<Pipe> {
        use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
        let mut fds = [0 as libc::c_int; 2];
        // SAFETY: fds has room for the two descriptors pipe2 writes.
        if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
            return None;
        }
        // SAFETY: both descriptors were just created and are owned only here.
        let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        // SAFETY: fcntl on our own pipe; a refusal (the per-user pipe
        // budget) leaves the default size, which is asked for next.
        let mut capacity = unsafe {
            libc::fcntl(
                write.as_raw_fd(),
                libc::F_SETPIPE_SZ,
                PIPE_SIZE as libc::c_int,
            )
        };
        if capacity <= 0 {
            // SAFETY: as above.
            capacity = unsafe { libc::fcntl(write.as_raw_fd(), libc::F_GETPIPE_SZ) };
        }
        // A process past its pipe budget (pipe-user-pages-soft) gets pipes
        // of a page or two: more calls than plain reads would make.
        Some(Pipe {
            read,
            write,
            capacity: usize::try_from(capacity)
                .ok()
                .filter(|&c| c >= MIN_PIPE_SIZE)?,
            held: 0,
            copied: false,
        })
    }

    /// The pipe in `slot`, made anew when there is none or when it still
    /// holds a failed transfer's bytes (they are dropped with it); None when
    /// no pipe can be had, or when this transfer's file takes no splice.
    pub fn ready(slot: &mut Option<Pipe>) -> Option<&mut Pipe> {
        if !slot.as_ref().is_some_and(Pipe::is_empty) {
            *slot = Pipe::new();
        }
        slot.as_mut().filter(|p| !p.copied)
    }

    /// Kept for another transfer, whose file may take splice.
    pub fn for_another_transfer(mut self) -> Pipe {
        self.copied = false;
        self
    }

    /// Nothing is left in it: it may serve another transfer.
    pub fn is_empty(&self) -> bool {
        self.held == 0
    }

    /// Bytes waiting in it for `drain_into`.
    pub fn held(&self) -> usize {
        self.held
    }

    /// Moves everything the pipe holds into `file`, at its position or at
    /// offset `at`. A file that takes no splice (a file system without it)
    /// gets the bytes read back and written.
    pub fn drain_into(&mut self, file: &std::fs::File, at: Option<u64>) -> io::Result<()> {
        use std::os::fd::AsRawFd;
        let mut offset = match at {
            Some(a) => Some(
                libc::loff_t::try_from(a)
                    .map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
            ),
            None => None,
        };
        while self.held > 0 {
            let offset_ptr = offset
                .as_mut()
                .map_or(std::ptr::null_mut(), |o| o as *mut libc::loff_t);
            // SAFETY: both descriptors are open; offset_ptr is null or points
            // to a live loff_t that the kernel advances.
            let r = unsafe {
                libc::splice(
                    self.read.as_raw_fd(),
                    std::ptr::null_mut(),
                    file.as_raw_fd(),
                    offset_ptr,
                    self.held,
                    libc::SPLICE_F_MOVE,
                )
            };
            match usize::try_from(r) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.held -= n,
                Err(_) => {
                    let e = io::Error::last_os_error();
                    match e.raw_os_error() {
                        Some(libc::EINTR) => {}
                        Some(libc::EINVAL | libc::ENOSYS | libc::EOPNOTSUPP) => {
                            return self.copy_into(file, offset);
                        }
                        _ => return Err(e),
                    }
                }
            }
        }
        Ok(())
    }

    /// The fallback of `drain_into`: read the pipe, write the file.
    fn copy_into(
        &mut self,
        mut file: &std::fs::File,
        offset: Option<libc::loff_t>,
    ) -> io::Result<()> {
        use std::os::unix::fs::FileExt;
        let mut bytes = vec![0u8; self.held];
        let mut pipe = std::fs::File::from(self.read.try_clone()?);
        pipe.read_exact(&mut bytes)?;
        self.held = 0;
        self.copied = true;
        match offset {
            Some(o) => file.write_all_at(&bytes, o as u64),
            None => file.write_all(&bytes),
        }
    }
}

/// Elsewhere than Linux there is no splice: no pipe is ever made, so
/// bytes always pass through user space.
#[cfg(not(target_os = "linux"))]
pub struct Pipe(std::convert::Infallible);

#[cfg(not(target_os = "linux"))]
impl Pipe {
    pub fn new() -> Option<Pipe> {
        None
    }
    pub fn ready(_slot: &mut Option<Pipe>) -> Option<&mut Pipe> {
        None
    }
    pub fn for_another_transfer(self) -> Pipe {
        match self.0 {}
    }
    pub fn is_empty(&self) -> bool {
        match self.0 {}
    }
    pub fn held(&self) -> usize {
        match self.0 {}
    }
    pub fn drain_into(&mut self, _file: &std::fs::File, _at: Option<u64>) -> io::Result<()> {
        match self.0 {}
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
#[cfg(unix)]
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

#[cfg(not(unix))]
fn connect_one(addr: &SocketAddr, within: Option<Duration>) -> Result<TcpStream, ConnectFailure> {
    match within {
        Some(d) => TcpStream::connect_timeout(addr, d),
        None => TcpStream::connect(addr),
    }
    .map_err(|e| match e.kind() {
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectFailure::TimedOut,
        _ => ConnectFailure::Io(e),
    })
}

#[cfg(unix)]
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
    link: Arc<Link>,
    buffers: LeanBuffers,
    /// Plain http only: where the connection goes when a `PlainBody` read
    /// its answer to the end.
    park_in: Option<Weak<Parking>>,
    park_rules: ParkRules,
}

/// A new connection reads at most `FIRST_READS` at a time until it has
/// received `FIRST_READS_UNTIL` bytes, then its whole input buffer. Each
/// page of a fresh buffer costs a page fault (~2 us here) the first time it
/// is filled, in ureq's input buffer and again in the caller's: a 1 MiB
/// media read 256 KiB at a time paid for 128 of them, a quarter of its
/// transfer time (curl 7.88 reads 100 KiB at a time). 32, 64, 128 and
/// 256 KiB first reads measured 761, 748, 788 and 804 us for 1 MiB from
/// nginx (bench/FINDINGS.md). Reads past ureq (`PlainBody`) fill only the
/// caller's buffer, and 128 KiB first reads measured the same as 64 there.
const FIRST_READS: usize = 64 * 1024;
const FIRST_READS_UNTIL: u64 = 1024 * 1024;

impl std::fmt::Debug for TcpTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpTransport")
            .field("peer", &self.link.stream.peer_addr().ok())
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
            match (&*self.link.stream).write(&self.buffers.output.as_slice()[sent..amount]) {
                Ok(0) => return Err(ureq::Error::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => sent += n,
                Err(e) if is_wait_over(&e) => on_wait_slice(deadline, &timeout)?,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(ureq::Error::Io(e)),
            }
        }
        Ok(())
    }

    fn await_input(&mut self, timeout: NextTimeout) -> Result<bool, ureq::Error> {
        let timeout = timeout.for_read();
        let deadline = timeout.not_zero().map(|d| Instant::now() + *d);
        let n = self
            .link
            .read_waiting(self.buffers.input_append_buf(), deadline, &timeout)?;
        self.buffers.input_appended(n);
        if self.park_in.is_some() {
            LAST_PLAIN.with(|l| *l.borrow_mut() = Arc::downgrade(&self.link));
        }
        Ok(n > 0)
    }

    fn is_open(&mut self) -> bool {
        is_idle_and_open(&self.link.stream)
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
/// Range requests (bench/FINDINGS.md #10).
fn quick_ack(stream: &TcpStream) {
    #[cfg(target_os = "linux")]
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
    #[cfg(not(target_os = "linux"))]
    let _ = stream;
}

/// Peeks without waiting: one call where ureq's probe makes three.
#[cfg(unix)]
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

#[cfg(not(unix))]
fn peek_nonblocking(stream: &TcpStream, buf: &mut [u8]) -> io::Result<usize> {
    stream.set_nonblocking(true)?;
    let r = stream.peek(buf);
    stream.set_nonblocking(false)?;
    r
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
    /// `filled - consumed`, for a `PlainBody` on another struct.
    unread: Arc<AtomicUsize>,
}

/// A buffer of zero-filled pages mapped straight from the kernel: a page
/// costs nothing until it is touched. A `vec![0; n]` is calloc, which
/// memsets whatever heap it reuses: glibc does so for a 64 KiB block, and
/// for 256 KiB ones once a freed mapping has raised its mmap threshold, so
/// a connection's output buffer faulted in 16 pages for a 150-byte request
/// head (bench/FINDINGS.md).
struct Pages {
    mem: PagesMem,
}

enum PagesMem {
    #[cfg(unix)]
    Mapped {
        ptr: std::ptr::NonNull<u8>,
        len: usize,
    },
    /// No buffer yet, no mapping to be had, or not unix.
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

    #[cfg(unix)]
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

    #[cfg(not(unix))]
    fn zeroed(len: usize) -> Pages {
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
            #[cfg(unix)]
            PagesMem::Mapped { ptr, len } => unsafe {
                std::slice::from_raw_parts(ptr.as_ptr(), *len)
            },
            PagesMem::Heap(v) => v,
        }
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        match &mut self.mem {
            // SAFETY: as in as_slice; &mut self makes the borrow exclusive.
            #[cfg(unix)]
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
        #[cfg(unix)]
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
            unread: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Empty, for a parked connection's next answer.
    fn clear(&mut self) {
        self.consumed = 0;
        self.filled = 0;
        self.progress = false;
        self.unread.store(0, Ordering::Relaxed);
    }

    fn note_unread(&self) {
        self.unread
            .store(self.filled - self.consumed, Ordering::Relaxed);
    }

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
        self.note_unread();
    }

    fn input_consume(&mut self, amount: usize) {
        self.progress = amount > 0;
        self.consumed = (self.consumed + amount).min(self.filled);
        self.note_unread();
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

    /// Fills a pipe as a socket splice would (test-only: plain writes).
    #[cfg(target_os = "linux")]
    fn pipe_holding(bytes: &[u8]) -> Pipe {
        let mut pipe = Pipe::new().expect("a pipe");
        let mut end = std::fs::File::from(pipe.write.try_clone().expect("dup"));
        end.write_all(bytes).expect("into the pipe");
        pipe.held = bytes.len();
        pipe
    }

    /// A file that takes no splice (here: opened for appending, which
    /// splice refuses) still gets every byte, by the copying fallback; at
    /// an offset too.
    #[cfg(target_os = "linux")]
    #[test]
    fn pipes_drain_into_files_by_splice_or_by_copy() {
        let dir = std::env::temp_dir().join(format!("wxm-pipe-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let bytes: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        for append in [false, true] {
            let path = dir.join(format!("append-{append}"));
            let file = std::fs::OpenOptions::new()
                .create_new(true)
                .write(true)
                .append(append)
                .open(&path)
                .expect("file");
            let mut pipe = pipe_holding(&bytes[..150_000]);
            pipe.drain_into(&file, None).expect("drained");
            assert!(pipe.is_empty());
            let mut pipe = pipe_holding(&bytes[150_000..]);
            pipe.drain_into(&file, (!append).then_some(150_000))
                .expect("drained");
            assert!(pipe.is_empty());
            // A file that refused splice gets reads for the rest of its
            // transfer; the next transfer may splice again.
            let mut slot = Some(pipe);
            assert_eq!(Pipe::ready(&mut slot).is_some(), !append);
            let mut slot = slot.map(Pipe::for_another_transfer);
            assert!(Pipe::ready(&mut slot).is_some());
            assert!(
                std::fs::read(&path).expect("read") == bytes,
                "append {append}"
            );
        }
        let _ = std::fs::remove_dir_all(dir);
    }

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
