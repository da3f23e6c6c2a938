//! `to_object`: a media straight into S3-compatible object storage. The
//! download's aligned Range spans become the parts of a multipart upload:
//! up to `parallelism` workers each fetch one part into memory (WeChat ->
//! buffer) and upload it (buffer -> store), so memory is bounded by
//! parallelism × part size and no byte touches a disk.
//!
//! Resume state lives in the store only: the upload id and the parts it
//! lists. To tell which upload of a key belongs to which media, each upload
//! carries a marker part, number 10000, whose bytes name the media, the
//! endpoint and the part size; its ETag (the MD5 of those bytes, checked
//! when it was uploaded) is compared on ListParts. A HEAD cannot see an
//! upload's metadata before it completes, and ListMultipartUploads lists
//! none, so metadata could not serve. The marker is never named in
//! CompleteMultipartUpload, which drops it with the upload.

use crate::cancel::{check_cancel, heartbeat, CancelScope};
use crate::client::Client;
use crate::download::{fetch_span, Endpoint, MediaInfo, Shared};
use crate::error::{Error, Result};
use crate::event::{self, Kind, Level};
use crate::objstore::{
    content_disposition, header_value, ObjectStore, PartInfo, Store, MARKER_PART,
};
use crate::sync::lock;
use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

/// What a part worker tells the calling thread.
enum Msg {
    Uploaded,
    Failed(Error),
}

/// The resume marker's bytes: what makes an upload this media's.
fn marker(media_id: &str, endpoint: Endpoint, part_size: u64) -> Vec<u8> {
    format!(
        "wxmedia to_object resume marker v1\nmedia_id={media_id}\nendpoint={endpoint:?}\npart_size={part_size}\n"
    )
    .into_bytes()
}

/// An upload found for the key that belongs to this media.
struct Resume {
    upload_id: String,
    parts: Vec<PartInfo>,
}

impl Client {
    /// Downloads `media_id` into `bucket`/`key` of `store`, resuming an
    /// upload of the same media to the same key left by an earlier run.
    /// The object appears only when complete.
    #[allow(clippy::too_many_arguments)]
    pub fn download_to_object(
        &self,
        media_id: &str,
        endpoint: Endpoint,
        store: &ObjectStore,
        bucket: &str,
        key: &str,
        cancel: Arc<AtomicBool>,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<MediaInfo> {
        if key.is_empty() || key.len() > 1024 {
            return Err(Error::InvalidArg(
                "object key must be 1 to 1024 bytes".into(),
            ));
        }
        let store = store.open(bucket)?;
        let _scope = CancelScope::enter(&cancel);
        self.to_object(media_id, endpoint, &store, key, &cancel, progress)
            .map_err(|e| store.secrets.clean_error(e))
    }

    fn to_object(
        &self,
        media_id: &str,
        endpoint: Endpoint,
        store: &Store,
        key: &str,
        cancel: &Arc<AtomicBool>,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<MediaInfo> {
        let part = store.part_size();
        let marker = marker(media_id, endpoint, part);
        let marker_md5 = crate::md5::hex(&crate::md5::digest_of(&marker));
        let mut resume = self.find_upload(store, key, cancel, &marker_md5)?;
        let mut note = None;
        loop {
            let shared = Shared::new(self, media_id, endpoint);
            let done: BTreeSet<u16> = resume
                .as_ref()
                .map(|r| r.parts.iter().map(|p| p.number).collect())
                .unwrap_or_default();
            let first_no = (1..MARKER_PART).find(|n| !done.contains(n)).unwrap_or(1);
            let first_start = u64::from(first_no - 1) * part;
            // The first missing part, fetched here: it tells the size (and
            // the type and filename the object gets).
            // Sized once: growing by doubling could take twice a part.
            let mut first = Vec::with_capacity(part as usize);
            let fetched = fetch_span(
                &shared,
                cancel,
                first_start,
                Some(first_start + part),
                &mut |_, d, _| {
                    first.extend_from_slice(d);
                    Ok(())
                },
            );
            if let Err(e) = fetched {
                // A resumed upload fails as any other: aborted unless kept.
                if let (Some(r), false) = (&resume, store.keep_parts_on_failure) {
                    self.abort_quietly(store, key, &r.upload_id);
                }
                return Err(e);
            }
            let total = shared.total().unwrap_or(first_start + first.len() as u64);
            let parts = total.div_ceil(part).max(1);
            if parts >= u64::from(MARKER_PART) {
                return Err(Error::InvalidArg(format!(
                    "a media of {total} bytes needs {parts} parts of {part}: more than the \
                     store allows; set a larger part size"
                )));
            }
            let parts = parts as u16;
            let part_len = |n: u16| {
                let start = u64::from(n - 1) * part;
                (start + part).min(total) - start
            };
            let mut info = shared.info();
            info.size = Some(total);
            if let Some(r) = &resume {
                let fits = r
                    .parts
                    .iter()
                    .all(|p| p.number <= parts && p.size == part_len(p.number));
                if !fits {
                    // The marker matched but the parts do not fit the size:
                    // nothing of it can be trusted.
                    self.abort_quietly(store, key, &r.upload_id);
                    resume = None;
                    note = Some(
                        "a kept upload of this media did not fit its size: aborted, uploaded \
                         again from byte 0"
                            .to_string(),
                    );
                    continue;
                }
            }
            let headers = object_headers(&info, media_id, total);
            // The upload the parts go to: the kept one (its parts' bytes
            // reported as progress first), or a new one with its marker.
            let (r, kept) = match resume.take() {
                Some(r) => {
                    let kept: u64 = r.parts.iter().map(|p| p.size).sum();
                    event::count(|c| c.resumed_from.store(kept, Ordering::Relaxed));
                    self.config
                        .events
                        .emit(Level::Info, Kind::ResumeDecided, |e| {
                            e.endpoint = key.to_string();
                            e.resume_offset = kept;
                            e.message = format!(
                                "resuming the object store's upload of this media: {} parts \
                                 ({kept} bytes) are kept, the rest is fetched",
                                r.parts.len()
                            );
                        });
                    (r, Some(kept))
                }
                None if total <= part => {
                    store.put_object(self, cancel, key, &headers, &first)?;
                    progress(total, total)?;
                    info.note = note;
                    return Ok(info);
                }
                None => {
                    let upload_id = store.create(self, cancel, key, &headers)?;
                    let r = Resume {
                        upload_id,
                        parts: Vec::new(),
                    };
                    let marked =
                        store.upload_part(self, cancel, key, &r.upload_id, MARKER_PART, &marker);
                    if let Err(e) = marked {
                        return self.finish(store, key, &r.upload_id, Err(e), info, note, cancel);
                    }
                    (r, None)
                }
            };
            let result = kept
                .map_or(Ok(()), |kept| progress(kept, total))
                .and_then(|_| {
                    self.upload_parts(
                        &shared, store, key, &r, first, first_no, parts, &part_len, total, cancel,
                        progress,
                    )
                });
            return self.finish(store, key, &r.upload_id, result, info, note, cancel);
        }
    }

    /// After the parts: complete, or abort (unless parts are kept).
    #[allow(clippy::too_many_arguments)]
    fn finish(
        &self,
        store: &Store,
        key: &str,
        upload_id: &str,
        parts: Result<(Vec<String>, u64)>,
        mut info: MediaInfo,
        note: Option<String>,
        cancel: &AtomicBool,
    ) -> Result<MediaInfo> {
        let result = parts
            .and_then(|(etags, total)| store.complete(self, cancel, key, upload_id, &etags, total));
        match result {
            Ok(()) => {
                info.note = note;
                Ok(info)
            }
            Err(e) => {
                if !store.keep_parts_on_failure {
                    self.abort_quietly(store, key, upload_id);
                }
                Err(e)
            }
        }
    }

    /// Aborts an upload even after a cancel (its own flag): a failure to
    /// abort leaves the upload to the store's lifecycle rules, and the
    /// transfer's own error is the one reported.
    fn abort_quietly(&self, store: &Store, key: &str, upload_id: &str) {
        let flag = Arc::new(AtomicBool::new(false));
        let _scope = CancelScope::enter(&flag);
        let _ = store.abort(self, &flag, key, upload_id);
    }

    /// The newest upload of `key` whose marker names this media.
    fn find_upload(
        &self,
        store: &Store,
        key: &str,
        cancel: &AtomicBool,
        marker_md5: &str,
    ) -> Result<Option<Resume>> {
        for up in store.list_uploads(self, cancel, key)?.into_iter().rev() {
            let parts = match store.list_parts(self, cancel, key, &up.upload_id) {
                Ok(p) => p,
                // Completed or aborted since it was listed.
                Err(Error::ObjectStore { code, .. }) if code == "NoSuchUpload" => continue,
                Err(e) => return Err(e),
            };
            let ours = parts.iter().any(|p| {
                p.number == MARKER_PART && p.etag.trim_matches('"').eq_ignore_ascii_case(marker_md5)
            });
            if ours {
                return Ok(Some(Resume {
                    upload_id: up.upload_id,
                    parts: parts
                        .into_iter()
                        .filter(|p| p.number != MARKER_PART)
                        .collect(),
                }));
            }
        }
        Ok(None)
    }

    /// Fetches and uploads every part not yet in `r`, `parallelism` at a
    /// time; `first` is part `first_no`, already fetched. Returns the
    /// ETags of parts 1..=parts and the size.
    #[allow(clippy::too_many_arguments)]
    fn upload_parts(
        &self,
        shared: &Shared,
        store: &Store,
        key: &str,
        r: &Resume,
        first: Vec<u8>,
        first_no: u16,
        parts: u16,
        part_len: &(dyn Fn(u16) -> u64 + Sync),
        total: u64,
        cancel: &AtomicBool,
        progress: &mut dyn FnMut(u64, u64) -> Result<()>,
    ) -> Result<(Vec<String>, u64)> {
        let part = store.part_size();
        let etags: Mutex<BTreeMap<u16, String>> =
            Mutex::new(r.parts.iter().map(|p| (p.number, p.etag.clone())).collect());
        let queue: Mutex<VecDeque<u16>> = Mutex::new(
            (1..=parts)
                .filter(|n| *n != first_no && !lock(&etags).contains_key(n))
                .collect(),
        );
        let first_job = Mutex::new(
            (first_no <= parts && !lock(&etags).contains_key(&first_no))
                .then_some((first_no, first)),
        );
        let todo = lock(&queue).len() + usize::from(lock(&first_job).is_some());
        let done_bytes = AtomicU64::new(r.parts.iter().map(|p| p.size).sum());
        let workers = (self.config.parallelism as usize).min(todo);
        let halt = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel::<Msg>();
        let transfer = event::current();
        std::thread::scope(|s| -> Result<()> {
            for _ in 0..workers {
                let tx = tx.clone();
                let transfer = transfer.clone();
                let (queue, first_job, etags, done_bytes, halt) =
                    (&queue, &first_job, &etags, &done_bytes, &halt);
                s.spawn(move || {
                    let _scope = CancelScope::enter(halt);
                    let _counted = transfer.map(event::TransferScope::enter);
                    let mut buf: Vec<u8> = Vec::new();
                    loop {
                        if halt.load(Ordering::Relaxed) {
                            return;
                        }
                        let taken = lock(first_job).take();
                        let no = match taken {
                            Some((no, b)) => {
                                buf = b;
                                no
                            }
                            None => {
                                let Some(no) = lock(queue).pop_front() else {
                                    return;
                                };
                                buf.clear();
                                buf.reserve_exact(part as usize);
                                let start = u64::from(no - 1) * part;
                                let end = start + part_len(no);
                                let fetched =
                                    fetch_span(shared, halt, start, Some(end), &mut |_, d, _| {
                                        buf.extend_from_slice(d);
                                        Ok(())
                                    });
                                if let Err(e) = fetched {
                                    let _ = tx.send(Msg::Failed(e));
                                    return;
                                }
                                no
                            }
                        };
                        let want = part_len(no);
                        let result = if buf.len() as u64 != want {
                            Err(Error::Protocol(format!(
                                "part {no}: fetched {} bytes of {want}",
                                buf.len()
                            )))
                        } else {
                            store.upload_part(self, halt, key, &r.upload_id, no, &buf)
                        };
                        match result {
                            Ok(etag) => {
                                lock(etags).insert(no, etag);
                                done_bytes.fetch_add(want, Ordering::Relaxed);
                                if tx.send(Msg::Uploaded).is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                let _ = tx.send(Msg::Failed(e));
                                return;
                            }
                        }
                    }
                });
            }
            drop(tx);
            let outcome = (|| -> Result<()> {
                loop {
                    check_cancel(cancel)?;
                    match rx.recv_timeout(Duration::from_millis(50)) {
                        Ok(Msg::Uploaded) => progress(done_bytes.load(Ordering::Relaxed), total)?,
                        Ok(Msg::Failed(e)) => return Err(e),
                        Err(mpsc::RecvTimeoutError::Timeout) => heartbeat()?,
                        Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
                    }
                }
            })();
            if outcome.is_err() {
                halt.store(true, Ordering::Relaxed);
            }
            outcome
        })?;
        let etags = lock(&etags);
        let list: Vec<String> = (1..=parts)
            .map(|n| etags.get(&n).cloned())
            .collect::<Option<_>>()
            .ok_or_else(|| Error::Panic("a part was neither uploaded nor failed".into()))?;
        Ok((list, total))
    }
}

/// The object's headers: Content-Type and the WeChat filename as
/// Content-Disposition, as WeChat answered them, and the media's identity
/// as metadata.
fn object_headers(info: &MediaInfo, media_id: &str, total: u64) -> Vec<(String, String)> {
    let mut h = vec![(
        "content-type".to_string(),
        info.content_type
            .as_deref()
            .and_then(header_value)
            .unwrap_or_else(|| "application/octet-stream".to_string()),
    )];
    if let Some(name) = &info.filename {
        h.push(("content-disposition".to_string(), content_disposition(name)));
    }
    h.push((
        "x-amz-meta-wxmedia-media-id".to_string(),
        crate::range::query_encode(media_id),
    ));
    h.push(("x-amz-meta-wxmedia-size".to_string(), total.to_string()));
    h
}
