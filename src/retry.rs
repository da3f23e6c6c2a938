//! One policy for repeating a request after a failure: whether it may go
//! again at all (what it does on the server), after how long, and whether
//! the access_token is refreshed first. The loops that send requests (media
//! downloads, uploads, the JSON APIs) only ask it.

use crate::cancel::{check_cancel, sleep_cancellable};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::event::{self, Kind, Level};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

/// What a request does on the server: it decides whether a request whose
/// answer was lost may be sent again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Reads only (media/get, a job's result): always safe to repeat.
    Reads,
    /// Creates a temporary media (media/upload). Repeated after a lost
    /// answer it may create a second one, which nobody references and which
    /// expires after 3 days: accepted, and documented in the header.
    CreatesMedia,
    /// Submits a job (upload_by_url). Never sent again once it may have
    /// reached the server, unless an answer proved that nothing was created;
    /// it fails with `Error::OutcomeUnknown` instead.
    SubmitsJob,
}

/// How far a failed attempt got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reached {
    /// Nothing left this host: resolving, connecting or the TLS handshake failed.
    Nowhere,
    /// The request may have reached the server.
    Server,
}

/// What one attempt of a request came to.
pub enum Attempt<T> {
    Done(T),
    /// Not a failure: go on at once (a download's next range, a redirect,
    /// an upload sent again without `Expect`).
    Again,
    /// Failed: the policy decides whether to go again.
    Failed {
        error: Error,
        reached: Reached,
        /// The access_token the attempt used, if any.
        token: Option<String>,
    },
    /// Failed in a way no repetition can mend (a reader that cannot be
    /// read again).
    Final(Error),
}

/// More refreshes than this with no byte moved between them is a loop.
const MAX_REFRESHES_WITHOUT_PROGRESS: u32 = 4;

/// The retry state of one request sequence (a span of a download, an
/// upload, an API call).
pub struct Retry<'c> {
    client: &'c Client,
    effect: Effect,
    /// What is being done, for messages ("upload_by_url").
    what: &'static str,
    /// The path the attempts go to, for retry events, when it is not the
    /// API's `cgi-bin/{what}` (a video_url, jssdk).
    endpoint: Option<String>,
    /// Transient failures since the last progress.
    failures: u32,
    /// The token the last refresh fetched, while no byte has moved since.
    refreshed_to: Option<String>,
    refreshes_without_progress: u32,
}

impl<'c> Retry<'c> {
    pub fn new(client: &'c Client, effect: Effect, what: &'static str) -> Retry<'c> {
        Retry {
            client,
            effect,
            what,
            endpoint: None,
            failures: 0,
            refreshed_to: None,
            refreshes_without_progress: 0,
        }
    }

    /// The one retry loop: runs `attempt` until it is done or the policy
    /// gives up, checking the cancel flag before each attempt.
    pub fn run<T>(
        &mut self,
        cancel: &AtomicBool,
        mut attempt: impl FnMut(&mut Self) -> Attempt<T>,
    ) -> Result<T> {
        loop {
            check_cancel(cancel)?;
            match attempt(self) {
                Attempt::Done(v) => return Ok(v),
                Attempt::Again => {}
                Attempt::Failed {
                    error,
                    reached,
                    token,
                } => self.after_failure(error, reached, token.as_deref(), cancel)?,
                Attempt::Final(e) => return Err(e),
            }
        }
    }

    /// The transfer moved bytes: failures count anew, and the token in use
    /// has proved itself.
    pub fn progressed(&mut self) {
        self.failures = 0;
        self.refreshed_to = None;
        self.refreshes_without_progress = 0;
    }

    /// Decides after a failed attempt: `Ok(())` when the request may go
    /// again (a token was refreshed, or the backoff slept), or the error to
    /// give up with. `token` is the access_token the attempt used (None
    /// for a URL that takes none, such as a video_url).
    fn after_failure(
        &mut self,
        e: Error,
        reached: Reached,
        token: Option<&str>,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let answered_with_errcode = matches!(e, Error::WeChat { .. });
        let would_repeat = e.is_token_rejected() || e.is_transient();
        if would_repeat
            && self.effect == Effect::SubmitsJob
            && reached == Reached::Server
            && !answered_with_errcode
        {
            return Err(Error::OutcomeUnknown(format!(
                "{}: the request may have reached WeChat but its answer was lost ({e}); \
                 it was not sent again, since that could submit a second job",
                self.what
            )));
        }
        if e.is_token_rejected() {
            return self.refresh(e, token);
        }
        if !e.is_transient() {
            return Err(e);
        }
        self.failures += 1;
        if self.failures >= self.client.config.max_attempts {
            return Err(e);
        }
        let pause = backoff(self.client.config.backoff, self.failures);
        event::add(|c| &c.retries, 1);
        self.client
            .config
            .events
            .emit(Level::Warning, Kind::RetryScheduled, |ev| {
                ev.endpoint = match &self.endpoint {
                    Some(path) => path.clone(),
                    None => format!("cgi-bin/{}", self.what),
                };
                ev.attempt = self.attempt();
                ev.retry_reason = e.code();
                ev.errcode = e.code();
                ev.backoff_ms = pause.as_millis() as u64;
                ev.message = self.client.clean_message(&format!(
                    "{}: attempt {} in {} ms after: {e}",
                    self.what,
                    self.attempt(),
                    pause.as_millis()
                ));
            });
        sleep_cancellable(pause, cancel)
    }

    /// Names the path the coming attempts go to, as their request events
    /// do, so that a retry event names it too.
    /// An empty one (no handler wants it) changes nothing.
    pub fn requesting(&mut self, endpoint: &str) {
        if !endpoint.is_empty() && self.endpoint.as_deref() != Some(endpoint) {
            self.endpoint = Some(endpoint.to_string());
        }
    }

    /// The number of the next attempt since the last progress (1: the
    /// first), for events.
    pub fn attempt(&self) -> u32 {
        self.failures + self.refreshes_without_progress + 1
    }

    /// WeChat rejected `used`. Refresh whenever the transfer moved bytes
    /// since the last refresh, so a long transfer outlives any number of
    /// invalidations; give up when the token the last refresh gave is
    /// rejected before any byte moved, so it can never loop.
    fn refresh(&mut self, rejection: Error, used: Option<&str>) -> Result<()> {
        let Some(used) = used else {
            return Err(rejection);
        };
        if self.refreshed_to.as_deref() == Some(used)
            || self.refreshes_without_progress >= MAX_REFRESHES_WITHOUT_PROGRESS
        {
            return Err(rejection);
        }
        let fetches = &self.client.tokens.fetches;
        let before = fetches.load(Ordering::Relaxed);
        let token = self.client.refresh_token(used, rejection)?;
        self.refreshes_without_progress += 1;
        // A token another thread had already fetched may have been
        // invalidated since; one fetched for this rejection is the newest
        // there is, and its rejection is final.
        let fetched = fetches.load(Ordering::Relaxed) > before;
        self.refreshed_to = fetched.then_some(token);
        Ok(())
    }
}

/// Exponential backoff with jitter for attempt `n` (1-based), capped.
fn backoff(base: Duration, n: u32) -> Duration {
    let base = base.as_millis() as u64;
    let exp = base.saturating_mul(1u64 << n.saturating_sub(1).min(10));
    let capped = exp.min(10_000);
    // Jitter in [50%, 150%) so that parallel workers and processes spread out.
    let jitter = 50 + (pseudo_random() % 100);
    Duration::from_millis(capped * jitter / 100)
}

/// Cheap per-call randomness for jitter; not for anything secret.
fn pseudo_random() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0),
    );
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Config, Platform};

    fn client(attempts: u32) -> Client {
        let mut config = Config::new(Platform::WeCom);
        config.set_retries(attempts, 0).expect("retries");
        config.set_token("static-token-for-tests").expect("token");
        Client::new(config).expect("client")
    }

    #[test]
    fn a_job_submission_is_repeated_only_when_nothing_was_created() {
        let c = client(4);
        let stop = AtomicBool::new(false);
        let lost = || Error::Network("connection reset".into());
        let mut r = Retry::new(&c, Effect::SubmitsJob, "media/upload_by_url");
        let e = r.after_failure(lost(), Reached::Server, None, &stop);
        assert!(matches!(e, Err(Error::OutcomeUnknown(_))), "{e:?}");
        // Nothing left this host, or WeChat answered an errcode: again.
        assert!(r
            .after_failure(lost(), Reached::Nowhere, None, &stop)
            .is_ok());
        let busy = Error::wechat(-1, "system busy");
        assert!(r.after_failure(busy, Reached::Server, None, &stop).is_ok());
        // The same failure of a request that only reads, or uploads a media.
        for effect in [Effect::Reads, Effect::CreatesMedia] {
            let mut r = Retry::new(&c, effect, "media/get");
            assert!(r
                .after_failure(lost(), Reached::Server, None, &stop)
                .is_ok());
        }
        // A final failure stays what it is, whatever the effect.
        let mut r = Retry::new(&c, Effect::SubmitsJob, "media/upload_by_url");
        let e = r.after_failure(Error::wechat(40058, "bad"), Reached::Server, None, &stop);
        assert!(matches!(e, Err(Error::WeChat { code: 40058, .. })));
    }

    #[test]
    fn a_retry_event_names_its_endpoint_as_request_events_do() {
        use crate::event::{Event, Events, Level};
        use std::sync::{Arc, Mutex};
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = seen.clone();
        let mut config = Config::new(Platform::WeCom);
        config.set_retries(4, 0).expect("retries");
        config.set_token("static-token-for-tests").expect("token");
        config.set_events(Events::new(
            Arc::new(move |e: &Event| s.lock().expect("lock").push(e.endpoint.clone())),
            Level::Debug,
        ));
        let c = Client::new(config).expect("client");
        let stop = AtomicBool::new(false);
        let mut r = Retry::new(&c, Effect::Reads, "media/get/jssdk");
        let e = r.after_failure(
            Error::Timeout("stalled".into()),
            Reached::Server,
            None,
            &stop,
        );
        assert!(e.is_ok(), "{e:?}");
        assert_eq!(*seen.lock().expect("lock"), ["cgi-bin/media/get/jssdk"]);
    }

    #[test]
    fn attempts_are_counted_from_the_last_progress() {
        let c = client(3);
        let stop = AtomicBool::new(false);
        let mut r = Retry::new(&c, Effect::Reads, "media/get");
        let timeout = || Error::Timeout("stalled".into());
        assert!(r
            .after_failure(timeout(), Reached::Server, None, &stop)
            .is_ok());
        assert!(r
            .after_failure(timeout(), Reached::Server, None, &stop)
            .is_ok());
        r.progressed();
        assert!(r
            .after_failure(timeout(), Reached::Server, None, &stop)
            .is_ok());
        assert!(r
            .after_failure(timeout(), Reached::Server, None, &stop)
            .is_ok());
        let e = r.after_failure(timeout(), Reached::Server, None, &stop);
        assert!(matches!(e, Err(Error::Timeout(_))), "{e:?}");
        // A cancel is seen in the backoff.
        let mut r = Retry::new(&c, Effect::Reads, "media/get");
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let e = r.after_failure(timeout(), Reached::Server, None, &stop);
        assert!(matches!(e, Err(Error::Cancelled)), "{e:?}");
    }

    #[test]
    fn a_rejected_static_token_is_final() {
        let c = client(4);
        let stop = AtomicBool::new(false);
        let mut r = Retry::new(&c, Effect::Reads, "media/get");
        let e = r.after_failure(
            Error::wechat(42001, "expired"),
            Reached::Server,
            Some("static-token-for-tests"),
            &stop,
        );
        assert!(matches!(e, Err(Error::WeChat { code: 42001, .. })), "{e:?}");
    }
}
