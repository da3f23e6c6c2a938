//! Cancellation and the host's heartbeat, as data: a flag per transfer that
//! every wait checks, and typed stops (`Stop`) carried through ureq's I/O
//! errors and found again by type, never by their text.
//!
//! Pooled connections outlive transfers, so the transport looks up the
//! flag of the transfer running on its thread (`CancelScope`) at each wait
//! rather than holding one.

use crate::error::{Error, Result};
use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a blocked wait wakes to look at the cancel flag and the
/// heartbeat: a cancel is honoured within about this long, even while the
/// server stalls.
pub const CANCEL_POLL: Duration = Duration::from_millis(100);

thread_local! {
    /// The cancel flag of the transfer running on this thread.
    static CURRENT_CANCEL: RefCell<Option<Arc<AtomicBool>>> = const { RefCell::new(None) };
    /// The heartbeat of the transfer running on this thread (its calling
    /// thread only: workers of a parallel download have none).
    static CURRENT_HEARTBEAT: RefCell<Option<Heartbeat>> = const { RefCell::new(None) };
    /// Why the heartbeat stopped the transfer, until the error is mapped.
    static HOST_STOP: RefCell<Option<Error>> = const { RefCell::new(None) };
}

/// Marks this thread as working for a transfer until dropped.
pub struct CancelScope {
    previous: Option<Arc<AtomicBool>>,
}

impl CancelScope {
    pub fn enter(flag: &Arc<AtomicBool>) -> CancelScope {
        let previous = CURRENT_CANCEL.with(|c| c.replace(Some(flag.clone())));
        CancelScope { previous }
    }
}

impl Drop for CancelScope {
    fn drop(&mut self) {
        let prev = self.previous.take();
        CURRENT_CANCEL.with(|c| *c.borrow_mut() = prev);
    }
}

/// Whether the transfer running on this thread was cancelled.
pub fn cancelled_here() -> bool {
    CURRENT_CANCEL.with(|c| {
        c.borrow()
            .as_ref()
            .is_some_and(|f| f.load(Ordering::Relaxed))
    })
}

pub fn check_cancel(flag: &AtomicBool) -> Result<()> {
    if flag.load(Ordering::Relaxed) {
        Err(Error::Cancelled)
    } else {
        Ok(())
    }
}

/// A host's heartbeat: called on the transfer's own thread whenever a wait
/// wakes without news (about every `CANCEL_POLL`); an error stops the
/// transfer with it.
pub type Heartbeat = Rc<dyn Fn() -> Result<()>>;

/// Installs a heartbeat on this thread until dropped.
pub struct HeartbeatScope {
    previous: Option<Heartbeat>,
}

impl HeartbeatScope {
    pub fn enter(beat: Heartbeat) -> HeartbeatScope {
        let previous = CURRENT_HEARTBEAT.with(|c| c.replace(Some(beat)));
        HOST_STOP.with(|s| s.borrow_mut().take());
        HeartbeatScope { previous }
    }
}

impl Drop for HeartbeatScope {
    fn drop(&mut self) {
        let prev = self.previous.take();
        CURRENT_HEARTBEAT.with(|c| *c.borrow_mut() = prev);
        HOST_STOP.with(|s| s.borrow_mut().take());
    }
}

/// Calls this thread's heartbeat, if any. Waits of the library's own (the
/// parallel download's calling thread, a retry's pause) call it between polls.
pub fn heartbeat() -> Result<()> {
    // Cloned out first: the host's callback may start another transfer.
    let beat = CURRENT_HEARTBEAT.with(|c| c.borrow().clone());
    match beat {
        Some(beat) => beat(),
        None => Ok(()),
    }
}

/// Sleeps `d`, waking early (with `Cancelled`) when `cancel` is set, and
/// calling the heartbeat between polls.
pub fn sleep_cancellable(d: Duration, cancel: &AtomicBool) -> Result<()> {
    let end = Instant::now() + d;
    loop {
        check_cancel(cancel)?;
        let now = Instant::now();
        if now >= end {
            return Ok(());
        }
        std::thread::sleep((end - now).min(Duration::from_millis(50)));
        heartbeat()?;
    }
}

/// Why our side stopped a transfer inside ureq: the payload of the I/O
/// error that carries it out, found again by `stop_of`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The transfer's cancel flag was set.
    Cancelled,
    /// The host's heartbeat returned an error (kept in `HOST_STOP`).
    Host,
}

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stop::Cancelled => "wxmedia transfer cancelled",
            Stop::Host => "wxmedia transfer stopped by a host callback",
        })
    }
}

impl std::error::Error for Stop {}

/// A cancel, in the form the transport returns to ureq.
pub fn cancel_error() -> ureq::Error {
    ureq::Error::Io(std::io::Error::new(
        std::io::ErrorKind::Interrupted,
        Stop::Cancelled,
    ))
}

/// A heartbeat's error, in the form the transport returns to ureq: an I/O
/// error that is not retried; `host_stop` gives back the original.
pub fn host_stop_error(e: Error) -> ureq::Error {
    HOST_STOP.with(|s| *s.borrow_mut() = Some(e));
    ureq::Error::Io(std::io::Error::other(Stop::Host))
}

/// The error the heartbeat stopped this thread's transfer with.
pub fn host_stop() -> Error {
    HOST_STOP
        .with(|s| s.borrow_mut().take())
        .unwrap_or_else(|| Error::Aborted("stopped by a host callback".into()))
}

/// The stop an I/O error carries, looking through the layers that wrap it
/// (ureq's errors inside I/O errors and back).
pub fn stop_of(e: &std::io::Error) -> Option<Stop> {
    let mut inner: &(dyn std::error::Error + 'static) = e.get_ref()?;
    for _ in 0..8 {
        if let Some(stop) = inner.downcast_ref::<Stop>() {
            return Some(*stop);
        }
        inner = match inner.downcast_ref::<ureq::Error>() {
            Some(ureq::Error::Io(io)) => io.get_ref()?,
            _ => match inner.downcast_ref::<std::io::Error>() {
                Some(io) => io.get_ref()?,
                None => inner.source()?,
            },
        };
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_are_found_by_type_through_their_wrappers() {
        let ureq::Error::Io(cancel) = cancel_error() else {
            panic!("an I/O error");
        };
        assert_eq!(stop_of(&cancel), Some(Stop::Cancelled));
        // ureq wraps its own errors into I/O errors out of body readers.
        let wrapped = std::io::Error::other(cancel_error());
        assert_eq!(stop_of(&wrapped), Some(Stop::Cancelled));
        let ureq::Error::Io(host) = host_stop_error(Error::Aborted("x".into())) else {
            panic!("an I/O error");
        };
        assert_eq!(stop_of(&host), Some(Stop::Host));
        assert_eq!(host_stop(), Error::Aborted("x".into()));
        // The same words from elsewhere are not a stop.
        let text = std::io::Error::new(
            std::io::ErrorKind::Interrupted,
            "wxmedia transfer cancelled",
        );
        assert_eq!(stop_of(&text), None);
        assert_eq!(stop_of(&std::io::ErrorKind::Interrupted.into()), None);
    }
}
