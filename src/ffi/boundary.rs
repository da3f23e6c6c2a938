//! The panic boundary, argument checks and the thread-local last error.
//! Every export goes through `guard` (or `guard_ptr`), so no panic unwinds
//! into a host and every failure leaves a message.

use crate::error::{Error, Result, WXM_E_PANIC, WXM_OK};
use std::cell::RefCell;
use std::ffi::{c_char, CStr, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

thread_local! {
    static LAST_ERROR: RefCell<CString> = RefCell::new(CString::default());
}

/// Text without interior NULs, as a C string.
pub fn to_cstring(s: &str) -> CString {
    CString::new(s.replace('\0', "")).unwrap_or_default()
}

pub fn set_last_error(msg: &str) {
    LAST_ERROR.with(|l| *l.borrow_mut() = to_cstring(msg));
}

pub fn clear_last_error() {
    LAST_ERROR.with(|l| *l.borrow_mut() = CString::default());
}

pub fn last_error_ptr() -> *const c_char {
    LAST_ERROR.with(|l| l.borrow().as_ptr())
}

fn panic_text(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_string()
    }
}

/// Runs `f`, turning an error into its code and a panic into
/// `WXM_E_PANIC`; the message goes to the thread-local last error.
pub fn guard(f: impl FnOnce() -> Result<()>) -> i32 {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => {
            clear_last_error();
            WXM_OK
        }
        Ok(Err(e)) => {
            set_last_error(&crate::scrub::pairs(&e.to_string()));
            e.code()
        }
        Err(p) => {
            set_last_error(&format!("internal error (panic): {}", panic_text(&*p)));
            WXM_E_PANIC
        }
    }
}

/// Like `guard` for constructors: NULL on any failure.
pub fn guard_ptr<T>(f: impl FnOnce() -> Result<*mut T>) -> *mut T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(p)) => {
            clear_last_error();
            p
        }
        Ok(Err(e)) => {
            set_last_error(&crate::scrub::pairs(&e.to_string()));
            std::ptr::null_mut()
        }
        Err(p) => {
            set_last_error(&format!("internal error (panic): {}", panic_text(&*p)));
            std::ptr::null_mut()
        }
    }
}

/// For exports with nothing to return (free, cancel): swallow a panic.
pub fn guard_void(f: impl FnOnce()) {
    let _ = catch_unwind(AssertUnwindSafe(f));
}

/// For getters: a default value on NULL or panic.
pub fn guard_value<T>(default: T, f: impl FnOnce() -> T) -> T {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or(default)
}

/// A getter's read of a handle: `default` for NULL or a panic.
///
/// # Safety
/// `handle` is NULL or a live handle of type `T`.
pub unsafe fn read_handle<T, R: Copy>(handle: *const T, default: R, f: impl FnOnce(&T) -> R) -> R {
    guard_value(default, || {
        // SAFETY: the caller promises NULL or a live handle.
        unsafe { handle.as_ref() }.map_or(default, f)
    })
}

/// Releases a handle made by `Box::into_raw`; NULL is ignored.
///
/// # Safety
/// `handle` is NULL or a handle of type `T` from `Box::into_raw`, freed once.
pub unsafe fn free_handle<T>(handle: *mut T) {
    guard_void(|| {
        if !handle.is_null() {
            // SAFETY: the caller promises a Box-made handle, freed once.
            drop(unsafe { Box::from_raw(handle) });
        }
    })
}

/// A borrowed UTF-8 string argument.
///
/// # Safety
/// `p` is NULL or points to a NUL-terminated string valid for the call.
pub unsafe fn arg_str<'a>(p: *const c_char, what: &str) -> Result<&'a str> {
    if p.is_null() {
        return Err(Error::InvalidArg(format!("{what} is NULL")));
    }
    // SAFETY: non-NULL, and the caller promises a NUL-terminated string.
    let c = unsafe { CStr::from_ptr(p) };
    c.to_str()
        .map_err(|_| Error::InvalidArg(format!("{what} is not valid UTF-8")))
}

/// A borrowed handle argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `T` created by this library.
pub unsafe fn arg_ref<'a, T>(p: *const T, what: &str) -> Result<&'a T> {
    // SAFETY: the caller promises `p` is NULL or a live handle.
    unsafe { p.as_ref() }.ok_or_else(|| Error::InvalidArg(format!("{what} is NULL")))
}

/// A borrowed mutable handle argument.
///
/// # Safety
/// `p` is NULL or a live handle of type `T`, not used by another thread now.
pub unsafe fn arg_mut<'a, T>(p: *mut T, what: &str) -> Result<&'a mut T> {
    // SAFETY: the caller promises `p` is NULL or a live, unshared handle.
    unsafe { p.as_mut() }.ok_or_else(|| Error::InvalidArg(format!("{what} is NULL")))
}

/// Pointer to an optional owned C string: NULL when absent.
pub fn opt_ptr(s: &Option<CString>) -> *const c_char {
    s.as_ref().map_or(std::ptr::null(), |c| c.as_ptr())
}
