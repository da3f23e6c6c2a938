//! Locks that outlive a panic.

use std::sync::{Mutex, MutexGuard};

/// A poisoned lock only means another thread panicked while holding it; the
/// data is still consistent, so go on with it.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
