//! S3-compatible object storage, the target of `to_object` (issue 23):
//! where the store is and who we are (`ObjectStore`: the host's settings,
//! else the AWS tools' environment variables), and the multipart calls.
//!
//! Requests are presigned by `rusty-s3`, which is sans-IO: no hand-made
//! SigV4, and every byte goes through the client's own ureq agent, so TLS
//! verification, `wxm_config_set_ca_file`, the timeouts and cancellation
//! hold as they do for WeChat. Each call is one request repeated by the
//! one retry policy (`Retry::run`).

use crate::client::Client;
use crate::error::{Error, Result};
use crate::event::{self, Level};
use crate::http::{
    header_str, map_ureq, read_small_body_within, sent_nothing, small_answer_deadline,
};
use crate::retry::{Attempt, Effect, Reached, Retry};
use crate::scrub::Secrets;
use instant_xml::FromXml;
use rusty_s3::{Bucket, Credentials, S3Action, UrlStyle};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// S3's least part size (all parts but the last).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// The AWS CLI's default: a part is held in memory per connection.
pub const DEFAULT_PART_SIZE: u64 = 8 * 1024 * 1024;
/// Parts are held in memory (parallelism × part size): a cap that keeps
/// that bounded.
pub const MAX_PART_SIZE: u64 = 512 * 1024 * 1024;
/// S3's highest part number. It holds the resume marker (see `to_object`);
/// the media's parts are 1 to `MARKER_PART - 1`.
pub const MARKER_PART: u16 = 10_000;
/// A presigned request is valid this long; each attempt is signed afresh.
const SIGNED_FOR: Duration = Duration::from_secs(3600);
/// S3 error codes that mean the credentials (or their rights) were refused.
const AUTH_CODES: &[&str] = &[
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "AccessDenied",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "InvalidSecurity",
    "AuthorizationHeaderMalformed",
    "AuthorizationQueryParametersError",
    "RequestTimeTooSkewed",
    // versitygw's answer (HTTP 404) for an access key it does not know.
    "XAdminUserNotFound",
];

/// Where objects go and with which credentials: the host's settings, each
/// falling back to the environment the AWS tools read when unset.
/// (No `Debug`: it holds the secret.)
#[derive(Clone)]
pub struct ObjectStore {
    endpoint: Option<String>,
    region: Option<String>,
    credentials: Option<(String, String, Option<String>)>,
    path_style: Option<bool>,
    keep_parts_on_failure: bool,
    part_size: u64,
}

impl Default for ObjectStore {
    fn default() -> Self {
        ObjectStore::new()
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn check_endpoint(url: &str) -> Result<url::Url> {
    let u = url::Url::parse(url)
        .map_err(|e| Error::InvalidArg(format!("object store endpoint {url:?}: {e}")))?;
    if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
        return Err(Error::InvalidArg(format!(
            "object store endpoint {url:?} is not an http(s) URL with a host"
        )));
    }
    if u.query().is_some() || u.fragment().is_some() {
        return Err(Error::InvalidArg(format!(
            "object store endpoint {url:?} has a query or fragment"
        )));
    }
    Ok(u)
}

impl ObjectStore {
    pub fn new() -> ObjectStore {
        ObjectStore {
            endpoint: None,
            region: None,
            credentials: None,
            path_style: None,
            keep_parts_on_failure: false,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// `https://s3.example.com` or `http://127.0.0.1:9000`. Unset: the
    /// environment's `AWS_ENDPOINT_URL_S3` or `AWS_ENDPOINT_URL`, else AWS's
    /// regional endpoint.
    pub fn set_endpoint(&mut self, url: &str) -> Result<()> {
        check_endpoint(url)?;
        self.endpoint = Some(url.trim_end_matches('/').to_string());
        Ok(())
    }

    /// Unset: `AWS_REGION`, `AWS_DEFAULT_REGION`, else `us-east-1`.
    pub fn set_region(&mut self, region: &str) -> Result<()> {
        if region.is_empty() || !region.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(Error::InvalidArg("region must be non-empty ASCII".into()));
        }
        self.region = Some(region.to_string());
        Ok(())
    }

    /// An access key and secret (and a session token for temporary
    /// credentials). Unset: `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
    /// `AWS_SESSION_TOKEN`.
    pub fn set_credentials(&mut self, key: &str, secret: &str, token: Option<&str>) -> Result<()> {
        if key.is_empty() || secret.is_empty() {
            return Err(Error::InvalidArg(
                "the access key and the secret must be non-empty".into(),
            ));
        }
        self.credentials = Some((
            key.to_string(),
            secret.to_string(),
            token.filter(|t| !t.is_empty()).map(str::to_string),
        ));
        Ok(())
    }

    /// Path-style URLs (`endpoint/bucket/key`) or virtual-hosted ones
    /// (`bucket.endpoint/key`). Unset: path style with an endpoint (what
    /// S3-compatible servers expect), virtual-hosted on AWS.
    pub fn set_path_style(&mut self, path_style: bool) {
        self.path_style = Some(path_style);
    }

    /// After a failure or a cancel, keep the multipart upload and its parts
    /// for a later resume instead of aborting it.
    pub fn set_keep_parts_on_failure(&mut self, keep: bool) {
        self.keep_parts_on_failure = keep;
    }

    /// Part size: at least 5 MiB, a multiple of 16 (encrypted media's
    /// alignment), at most 512 MiB. Memory: parallelism × this.
    pub fn set_part_size(&mut self, bytes: u64) -> Result<()> {
        if !(MIN_PART_SIZE..=MAX_PART_SIZE).contains(&bytes) || bytes % 16 != 0 {
            return Err(Error::InvalidArg(format!(
                "part size {bytes} must be a multiple of 16 between {MIN_PART_SIZE} and {MAX_PART_SIZE}"
            )));
        }
        self.part_size = bytes;
        Ok(())
    }

    /// The store for one transfer to `bucket`, the environment read now.
    pub(crate) fn open(&self, bucket: &str) -> Result<Store> {
        if bucket.is_empty() || bucket.len() > 255 || !bucket.bytes().all(|b| b.is_ascii_graphic())
        {
            return Err(Error::InvalidArg(format!("invalid bucket name {bucket:?}")));
        }
        let region = self
            .region
            .clone()
            .or_else(|| env("AWS_REGION"))
            .or_else(|| env("AWS_DEFAULT_REGION"))
            .unwrap_or_else(|| "us-east-1".to_string());
        let configured = self
            .endpoint
            .clone()
            .or_else(|| env("AWS_ENDPOINT_URL_S3"))
            .or_else(|| env("AWS_ENDPOINT_URL"));
        let path_style = self.path_style.unwrap_or(configured.is_some());
        let endpoint = configured.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
        let url = check_endpoint(&endpoint)?;
        let style = if path_style {
            UrlStyle::Path
        } else {
            UrlStyle::VirtualHost
        };
        let host = url.host_str().unwrap_or_default().to_string();
        let bucket = Bucket::new(url, style, bucket.to_string(), region)
            .map_err(|e| Error::InvalidArg(format!("object store endpoint: {e}")))?;
        let (key, secret, token) = match &self.credentials {
            Some(c) => c.clone(),
            None => match (env("AWS_ACCESS_KEY_ID"), env("AWS_SECRET_ACCESS_KEY")) {
                (Some(k), Some(s)) => (k, s, env("AWS_SESSION_TOKEN")),
                _ => {
                    return Err(Error::InvalidArg(
                        "no object store credentials: set them on the store, or \
                         AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
                            .into(),
                    ))
                }
            },
        };
        let secrets = Secrets::new([secret.clone()].into_iter().chain(token.clone()));
        Ok(Store {
            bucket,
            credentials: match token {
                Some(t) => Credentials::new_with_token(key, secret, t),
                None => Credentials::new(key, secret),
            },
            secrets,
            keep_parts_on_failure: self.keep_parts_on_failure,
            part_size: self.part_size,
            host,
        })
    }
}

/// One bucket of a store, resolved for one transfer.
pub(crate) struct Store {
    bucket: Bucket,
    credentials: Credentials,
    /// The secret and session token, kept out of every message.
    pub secrets: Secrets,
    pub keep_parts_on_failure: bool,
    pub part_size: u64,
    /// The endpoint's host, for messages.
    host: String,
}

/// A 2xx answer.
pub(crate) struct Answer {
    pub headers: ureq::http::HeaderMap,
    pub body: Vec<u8>,
}

/// One part the store holds.
#[derive(Debug, Clone)]
pub(crate) struct PartInfo {
    pub number: u16,
    pub etag: String,
    pub size: u64,
}

/// An upload in progress for a key.
#[derive(Debug, Clone)]
pub(crate) struct UploadInfo {
    pub upload_id: String,
    pub initiated: String,
}

/// S3's error body.
#[derive(Debug, FromXml)]
#[xml(rename = "Error")]
struct S3Error {
    #[xml(rename = "Code")]
    code: Option<String>,
    #[xml(rename = "Message")]
    message: Option<String>,
}

const S3_NS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

#[derive(Debug, FromXml)]
#[xml(rename = "ListMultipartUploadsResult", ns(S3_NS))]
struct ListUploadsXml {
    #[xml(rename = "IsTruncated")]
    is_truncated: Option<bool>,
    #[xml(rename = "NextKeyMarker")]
    next_key_marker: Option<String>,
    #[xml(rename = "NextUploadIdMarker")]
    next_upload_id_marker: Option<String>,
    uploads: Vec<UploadXml>,
}

#[derive(Debug, FromXml)]
#[xml(rename = "Upload", ns(S3_NS))]
struct UploadXml {
    #[xml(rename = "Key")]
    key: String,
    #[xml(rename = "UploadId")]
    upload_id: String,
    #[xml(rename = "Initiated")]
    initiated: Option<String>,
}

enum Verb {
    Get,
    Head,
    Put,
    Post,
    Delete,
}

impl Store {
    pub fn part_size(&self) -> u64 {
        self.part_size
    }

    /// Sends one signed request, counted and reported as the transfer's
    /// other requests are; a non-2xx answer becomes the store's error.
    fn send(
        &self,
        client: &Client,
        retry: &mut Retry,
        verb: Verb,
        url: &url::Url,
        headers: &[(String, String)],
        body: &[u8],
    ) -> std::result::Result<Answer, (Error, Reached)> {
        let events = &client.config.events;
        // The bucket and key: a presigned URL's query holds its signature.
        let endpoint = if events.wants(Level::Warning) {
            event::endpoint_of(url.as_str())
        } else {
            String::new()
        };
        retry.requesting(&endpoint);
        let sends_media = matches!(verb, Verb::Put);
        let method = match verb {
            Verb::Get => "GET",
            Verb::Head => "HEAD",
            Verb::Put => "PUT",
            Verb::Post => "POST",
            Verb::Delete => "DELETE",
        };
        let trace = events.request_started(
            |e| {
                e.method = method;
                e.endpoint = endpoint;
                e.attempt = retry.attempt();
            },
            |e| {
                format!(
                    "{method} {} (object store, {} bytes)",
                    e.endpoint,
                    body.len()
                )
            },
        );
        let mut status = 0;
        let result = self.send_once(client, verb, url, headers, body, &mut status);
        // Media bytes only (parts and PutObject), as an upload counts its
        // file's bytes, not the XML of Complete.
        if status != 0 && sends_media {
            event::add(|c| &c.bytes_sent, body.len() as u64);
        }
        let failure = || client.event_failure(result.as_ref().err().map(|(e, _)| e));
        events.request_finished(trace, status, body.len() as u64, failure, |_| {});
        result
    }

    fn send_once(
        &self,
        client: &Client,
        verb: Verb,
        url: &url::Url,
        headers: &[(String, String)],
        body: &[u8],
        answer_status: &mut u16,
    ) -> std::result::Result<Answer, (Error, Reached)> {
        let agent = &client.agent;
        let u = url.as_str();
        fn with<B>(
            mut rb: ureq::RequestBuilder<B>,
            headers: &[(String, String)],
        ) -> ureq::RequestBuilder<B> {
            for (k, v) in headers {
                rb = rb.header(k.as_str(), v.as_str());
            }
            rb
        }
        let sent = match verb {
            Verb::Get => with(agent.get(u), headers).call(),
            Verb::Head => with(agent.head(u), headers).call(),
            Verb::Delete => with(agent.delete(u), headers).call(),
            Verb::Put => with(agent.put(u), headers).send(body),
            Verb::Post => with(agent.post(u), headers).send(body),
        };
        let response = match sent {
            Ok(r) => r,
            Err(e) => {
                let reached = if sent_nothing(&e) {
                    Reached::Nowhere
                } else {
                    Reached::Server
                };
                let host = self.host.clone();
                let e = map_ureq(e).map_text(|t| format!("object store {host}: {t}"));
                return Err((e, reached));
            }
        };
        let status = response.status().as_u16();
        *answer_status = status;
        let (parts, body) = response.into_parts();
        let within = small_answer_deadline(client.config.io_timeout);
        let bytes = read_small_body_within(body, within).map_err(|e| (e, Reached::Server))?;
        if (200..300).contains(&status) {
            // CompleteMultipartUpload may answer 200 with an error body.
            if bytes.starts_with(b"<?xml") || bytes.starts_with(b"<Error") {
                if let Some(e) = parse_error(&bytes) {
                    return Err((self.error(status.max(500), e), Reached::Server));
                }
            }
            return Ok(Answer {
                headers: parts.headers,
                body: bytes,
            });
        }
        let parsed = parse_error(&bytes).unwrap_or(S3Error {
            code: None,
            message: None,
        });
        Err((self.error(status, parsed), Reached::Server))
    }

    fn error(&self, status: u16, e: S3Error) -> Error {
        let code = e.code.unwrap_or_else(|| match status {
            403 => "AccessDenied".into(),
            404 => "NotFound".into(),
            _ => String::new(),
        });
        let msg = e.message.unwrap_or_default();
        let bucket = self.bucket.name();
        if AUTH_CODES.contains(&code.as_str()) {
            return Error::ObjectStoreAuth(format!(
                "{code} (HTTP {status}) from {} for bucket {bucket:?}: {msg}",
                self.host
            ));
        }
        if code == "NoSuchBucket" {
            return Error::NoSuchBucket(format!("{bucket:?} at {}", self.host));
        }
        Error::ObjectStore { status, code, msg }
    }

    /// One call through the retry policy.
    fn call(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        what: &'static str,
        mut attempt: impl FnMut(&mut Retry) -> std::result::Result<Answer, (Error, Reached)>,
    ) -> Result<Answer> {
        // Every call here may be repeated: reads, parts (a part sent again
        // replaces itself), complete (the same parts again; a lost answer
        // is settled by `complete`), abort, and create: a create whose
        // answer was lost leaves an upload id nobody knows, without a
        // marker (so never resumed), to the bucket's lifecycle rules, as the
        // AWS SDKs do.
        Retry::new(client, Effect::Reads, what).run(cancel, |retry| match attempt(retry) {
            Ok(a) => Attempt::Done(a),
            Err((error, reached)) => Attempt::Failed {
                error,
                reached,
                token: None,
            },
        })
    }

    /// A presigned URL for `action` (each attempt signs afresh).
    fn sign<'a>(&'a self, action: &impl S3Action<'a>) -> url::Url {
        action.sign(SIGNED_FOR)
    }

    /// `sign`, with `headers` signed too (they must then be sent as they are).
    fn signed<'a>(
        &'a self,
        mut action: impl S3Action<'a>,
        headers: &'a [(String, String)],
    ) -> url::Url {
        for (k, v) in headers {
            action.headers_mut().insert(k.as_str(), v.as_str());
        }
        self.sign(&action)
    }

    /// Uploads in progress for exactly `key`, oldest first.
    pub fn list_uploads(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
    ) -> Result<Vec<UploadInfo>> {
        let mut out = Vec::new();
        let mut markers: Option<(String, String)> = None;
        // A bound on pages: a key with more uploads than this is not ours
        // to sort out.
        for _ in 0..20 {
            let answer = self.call(client, cancel, "ListMultipartUploads", |retry| {
                let (km, um) = markers.clone().unwrap_or_default();
                // Sorted by name, as the signer wants.
                let mut query: Vec<(&str, &str)> = Vec::new();
                if markers.is_some() {
                    query.push(("key-marker", &km));
                }
                query.push(("max-uploads", "100"));
                query.push(("prefix", key));
                if markers.is_some() {
                    query.push(("upload-id-marker", &um));
                }
                query.push(("uploads", ""));
                let url = rusty_s3::signing::sign(
                    &jiff::Timestamp::now(),
                    rusty_s3::Method::Get,
                    self.bucket.base_url().clone(),
                    self.credentials.key(),
                    self.credentials.secret(),
                    self.credentials.token(),
                    self.bucket.region(),
                    SIGNED_FOR.as_secs(),
                    query.iter().copied(),
                    std::iter::empty(),
                );
                self.send(client, retry, Verb::Get, &url, &[], &[])
            })?;
            let text = String::from_utf8_lossy(&answer.body);
            let list: ListUploadsXml = instant_xml::from_str(&text).map_err(|e| {
                Error::Protocol(format!(
                    "object store: unreadable ListMultipartUploads: {e}"
                ))
            })?;
            out.extend(
                list.uploads
                    .into_iter()
                    .filter(|u| u.key == key)
                    .map(|u| UploadInfo {
                        upload_id: u.upload_id,
                        initiated: u.initiated.unwrap_or_default(),
                    }),
            );
            match (
                list.is_truncated.unwrap_or(false),
                list.next_key_marker,
                list.next_upload_id_marker,
            ) {
                (true, Some(k), Some(u)) if k.starts_with(key) => markers = Some((k, u)),
                _ => break,
            }
        }
        out.sort_by(|a, b| a.initiated.cmp(&b.initiated));
        Ok(out)
    }

    /// Every part of an upload.
    pub fn list_parts(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<PartInfo>> {
        let mut out = Vec::new();
        let mut marker: Option<u16> = None;
        loop {
            let answer = self.call(client, cancel, "ListParts", |retry| {
                let mut action = self
                    .bucket
                    .list_parts(Some(&self.credentials), key, upload_id);
                action.set_max_parts(200);
                if let Some(m) = marker {
                    action.set_part_number_marker(m);
                }
                let url = self.sign(&action);
                self.send(client, retry, Verb::Get, &url, &[], &[])
            })?;
            let text = String::from_utf8_lossy(&answer.body);
            let list = rusty_s3::actions::ListParts::parse_response(&text)
                .map_err(|e| Error::Protocol(format!("object store: unreadable ListParts: {e}")))?;
            out.extend(list.parts.into_iter().map(|p| PartInfo {
                number: p.number,
                etag: p.etag,
                size: p.size,
            }));
            match list.next_part_number_marker {
                Some(m) if marker.is_none_or(|old| m > old) => marker = Some(m),
                _ => break,
            }
        }
        Ok(out)
    }

    /// Starts a multipart upload; returns its id.
    pub fn create(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        headers: &[(String, String)],
    ) -> Result<String> {
        let answer = self.call(client, cancel, "CreateMultipartUpload", |retry| {
            let action = self
                .bucket
                .create_multipart_upload(Some(&self.credentials), key);
            let url = self.signed(action, headers);
            self.send(client, retry, Verb::Post, &url, headers, &[])
        })?;
        let text = String::from_utf8_lossy(&answer.body);
        let parsed = rusty_s3::actions::CreateMultipartUpload::parse_response(&text)
            .map_err(|e| Error::Protocol(format!("object store: unreadable upload id: {e}")))?;
        Ok(parsed.upload_id().to_string())
    }

    /// Uploads one part with its Content-MD5 (the store checks the bytes
    /// against it); returns its ETag, itself checked against the MD5 when
    /// the store answers a plain MD5 ETag.
    pub fn upload_part(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        upload_id: &str,
        number: u16,
        data: &[u8],
    ) -> Result<String> {
        let (md5_b64, md5_hex) = md5_of(data);
        let headers = [("content-md5".to_string(), md5_b64)];
        let answer = self.call(client, cancel, "UploadPart", |retry| {
            let action = self
                .bucket
                .upload_part(Some(&self.credentials), key, number, upload_id);
            let url = self.signed(action, &headers);
            let answer = self.send(client, retry, Verb::Put, &url, &headers, data)?;
            check_etag(&answer, &md5_hex).map_err(|e| (e, Reached::Server))?;
            Ok(answer)
        })?;
        etag_of(&answer)
    }

    /// A whole object in one request (media smaller than one part).
    pub fn put_object(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        headers: &[(String, String)],
        data: &[u8],
    ) -> Result<()> {
        let (md5_b64, md5_hex) = md5_of(data);
        let mut all = headers.to_vec();
        all.push(("content-md5".to_string(), md5_b64));
        self.call(client, cancel, "PutObject", |retry| {
            let action = self.bucket.put_object(Some(&self.credentials), key);
            let url = self.signed(action, &all);
            let answer = self.send(client, retry, Verb::Put, &url, &all, data)?;
            check_etag(&answer, &md5_hex).map_err(|e| (e, Reached::Server))?;
            Ok(answer)
        })?;
        Ok(())
    }

    /// Completes an upload from parts 1..=n (their ETags in order): the
    /// object appears only now. A repeat after a lost answer may find the
    /// upload gone (`NoSuchUpload`): then the object is checked instead.
    pub fn complete(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        upload_id: &str,
        etags: &[String],
        size: u64,
    ) -> Result<()> {
        let mut tries = 0u32;
        let result = self.call(client, cancel, "CompleteMultipartUpload", |retry| {
            tries += 1;
            let action = self.bucket.complete_multipart_upload(
                Some(&self.credentials),
                key,
                upload_id,
                etags.iter().map(String::as_str),
            );
            let url = self.sign(&action);
            let body = action.body();
            self.send(client, retry, Verb::Post, &url, &[], body.as_bytes())
        });
        match result {
            Err(Error::ObjectStore { code, .. }) if code == "NoSuchUpload" && tries > 1 => {
                match self.head(client, cancel, key)? {
                    Some(s) if s == size => Ok(()),
                    _ => Err(Error::ObjectStore {
                        status: 404,
                        code,
                        msg: "the upload vanished while completing it".into(),
                    }),
                }
            }
            other => other.map(|_| ()),
        }
    }

    /// Aborts an upload: its parts are deleted.
    pub fn abort(
        &self,
        client: &Client,
        cancel: &AtomicBool,
        key: &str,
        upload_id: &str,
    ) -> Result<()> {
        let result = self.call(client, cancel, "AbortMultipartUpload", |retry| {
            let action =
                self.bucket
                    .abort_multipart_upload(Some(&self.credentials), key, upload_id);
            let url = self.sign(&action);
            self.send(client, retry, Verb::Delete, &url, &[], &[])
        });
        match result {
            Err(Error::ObjectStore { code, .. }) if code == "NoSuchUpload" => Ok(()),
            other => other.map(|_| ()),
        }
    }

    /// The object's size, None when there is none.
    pub fn head(&self, client: &Client, cancel: &AtomicBool, key: &str) -> Result<Option<u64>> {
        let result = self.call(client, cancel, "HeadObject", |retry| {
            let action = self.bucket.head_object(Some(&self.credentials), key);
            let url = self.sign(&action);
            self.send(client, retry, Verb::Head, &url, &[], &[])
        });
        match result {
            Ok(a) => Ok(crate::http::header_u64(&a.headers, "content-length")),
            Err(Error::ObjectStore { status: 404, .. }) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

fn parse_error(bytes: &[u8]) -> Option<S3Error> {
    let text = std::str::from_utf8(bytes).ok()?;
    let start = text.find("<Error")?;
    instant_xml::from_str::<S3Error>(&text[start..]).ok()
}

fn md5_of(data: &[u8]) -> (String, String) {
    use base64::Engine;
    let digest = crate::md5::digest_of(data);
    let b64 = base64::engine::general_purpose::STANDARD.encode(digest);
    (b64, crate::md5::hex(&digest))
}

fn etag_of(answer: &Answer) -> Result<String> {
    header_str(&answer.headers, "etag")
        .map(str::to_string)
        .ok_or_else(|| Error::Protocol("object store: a part's answer has no ETag".into()))
}

/// A plain (unencrypted, single-part) ETag is the MD5 of the bytes: one
/// that differs means the store holds other bytes than were sent. ETags of
/// SSE-KMS or SSE-C objects are not MD5s and are not compared.
fn check_etag(answer: &Answer, md5_hex: &str) -> Result<()> {
    let encrypted = header_str(&answer.headers, "x-amz-server-side-encryption")
        .is_some_and(|v| v.contains("kms"))
        || answer
            .headers
            .contains_key("x-amz-server-side-encryption-customer-algorithm");
    let etag = etag_of(answer)?;
    let plain = etag.trim_matches('"');
    let md5_like = plain.len() == 32 && plain.bytes().all(|b| b.is_ascii_hexdigit());
    if !encrypted && md5_like && !plain.eq_ignore_ascii_case(md5_hex) {
        return Err(Error::Protocol(format!(
            "object store: ETag {plain} is not the MD5 {md5_hex} of the bytes sent"
        )));
    }
    Ok(())
}

/// `Content-Disposition` for a WeChat filename: an ASCII fallback and the
/// UTF-8 name (RFC 6266 / 5987), since header values are ASCII.
pub(crate) fn content_disposition(filename: &str) -> String {
    const ATTR: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'!')
        .remove(b'#')
        .remove(b'$')
        .remove(b'&')
        .remove(b'+')
        .remove(b'-')
        .remove(b'.')
        .remove(b'^')
        .remove(b'_')
        .remove(b'`')
        .remove(b'|')
        .remove(b'~');
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if fallback == filename {
        format!("attachment; filename=\"{filename}\"")
    } else {
        let encoded = percent_encoding::utf8_percent_encode(filename, ATTR);
        format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
    }
}

/// A header value fit to send and sign (visible ASCII), or None.
pub(crate) fn header_value(v: &str) -> Option<String> {
    let v = v.trim();
    (!v.is_empty() && v.bytes().all(|b| b.is_ascii_graphic() || b == b' ')).then(|| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disposition_is_ascii_with_the_utf8_name() {
        assert_eq!(
            content_disposition("a b.mp4"),
            "attachment; filename=\"a b.mp4\""
        );
        let d = content_disposition("报告\".pdf");
        assert!(d.is_ascii(), "{d}");
        assert!(
            d.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%22.pdf"),
            "{d}"
        );
    }

    #[test]
    fn settings_are_checked() {
        let mut s = ObjectStore::new();
        assert!(s.set_endpoint("ftp://x").is_err());
        assert!(s.set_endpoint("http://127.0.0.1:9000/").is_ok());
        assert!(s.set_part_size(MIN_PART_SIZE - 16).is_err());
        assert!(s.set_part_size(MIN_PART_SIZE + 1).is_err());
        assert!(s.set_part_size(MIN_PART_SIZE).is_ok());
        assert!(s.set_credentials("", "x", None).is_err());
        assert!(s.open("").is_err());
    }

    #[test]
    fn s3_errors_are_read() {
        let e = parse_error(
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>NoSuchBucket</Code>\
              <Message>The specified bucket does not exist</Message><Resource>/b</Resource></Error>",
        )
        .expect("parsed");
        assert_eq!(e.code.as_deref(), Some("NoSuchBucket"));
    }
}
