//! WeCom's asynchronous upload by URL (异步上传临时素材): WeChat fetches a
//! file of up to 200 MiB from a URL that supports Range, and the host polls
//! for the job's result.

use crate::cancel::{check_cancel, sleep_cancellable, CancelScope};
use crate::client::Client;
use crate::error::{Error, Result};
use crate::retry::Effect;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Size limits of the async upload: more than 5 bytes, at most 200 MiB.
pub const MIN_SIZE: u64 = 6;
pub const MAX_SIZE: u64 = 200 * 1024 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlUploadRequest {
    pub scene: u32,
    pub kind: String,
    pub filename: String,
    pub url: String,
    pub md5: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStatus {
    Processing,
    Done { media_id: String, created_at: i64 },
    Failed { errcode: i32, errmsg: String },
}

/// Local checks, with the codes WeChat would answer.
pub fn validate(client: &Client, req: &UrlUploadRequest) -> Result<()> {
    if !client.config.platform.is_wecom_family() {
        return Err(Error::wechat(
            48001,
            "upload_by_url exists on WeCom and WeChat Customer Service only",
        ));
    }
    if req.kind != "video" && req.kind != "file" {
        return Err(Error::wechat(
            40004,
            format!("upload_by_url takes type video or file, not {:?}", req.kind),
        ));
    }
    let bad = |what: &str| Err(Error::wechat(40058, format!("invalid parameter: {what}")));
    if req.filename.is_empty() || req.filename.len() > 128 {
        return bad("filename must be 1 to 128 bytes");
    }
    let lower = req.url.to_ascii_lowercase();
    if req.url.len() > 1024 || !(lower.starts_with("http://") || lower.starts_with("https://")) {
        return bad("url must be http(s) and at most 1024 bytes");
    }
    if req.md5.len() != 32 || !req.md5.bytes().all(|b| b.is_ascii_hexdigit()) {
        return bad("md5 must be 32 hex digits");
    }
    Ok(())
}

fn parse_status(v: Option<&serde_json::Value>) -> Option<i64> {
    match v? {
        serde_json::Value::Number(n) => n.as_i64(),
        serde_json::Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

fn parse_created_at(v: Option<&serde_json::Value>) -> i64 {
    parse_status(v).unwrap_or(0)
}

impl Client {
    /// Submits the job; returns its jobid.
    pub fn upload_by_url_submit(
        &self,
        req: &UrlUploadRequest,
        cancel: &Arc<AtomicBool>,
    ) -> Result<String> {
        let _scope = CancelScope::enter(cancel);
        validate(self, req)?;
        let body = serde_json::json!({
            "scene": req.scene,
            "type": req.kind,
            "filename": req.filename,
            "url": req.url,
            "md5": req.md5.to_ascii_lowercase(),
        });
        let map = self.call_api("media/upload_by_url", &body, Effect::SubmitsJob, cancel)?;
        map.get("jobid")
            .and_then(|j| j.as_str())
            .filter(|j| !j.is_empty())
            .map(str::to_string)
            .ok_or_else(|| Error::Protocol("upload_by_url answer without a jobid".into()))
    }

    /// Asks once for the job's state.
    pub fn upload_by_url_result(&self, jobid: &str, cancel: &Arc<AtomicBool>) -> Result<JobStatus> {
        let _scope = CancelScope::enter(cancel);
        let map = self.call_api(
            "media/get_upload_by_url_result",
            &serde_json::json!({ "jobid": jobid }),
            Effect::Reads,
            cancel,
        )?;
        let detail = map.get("detail");
        let field = |k: &str| detail.and_then(|d| d.get(k));
        match parse_status(map.get("status")) {
            Some(1) => Ok(JobStatus::Processing),
            Some(2) => {
                let media_id = field("media_id")
                    .and_then(|m| m.as_str())
                    .filter(|m| !m.is_empty())
                    .ok_or_else(|| Error::Protocol("finished job without a media_id".into()))?;
                Ok(JobStatus::Done {
                    media_id: media_id.to_string(),
                    created_at: parse_created_at(field("created_at")),
                })
            }
            Some(3) => {
                let errcode = parse_status(field("errcode"))
                    .and_then(|c| i32::try_from(c).ok())
                    .filter(|c| *c != 0)
                    .unwrap_or(830003);
                let errmsg = field("errmsg").and_then(|m| m.as_str()).unwrap_or("");
                Ok(JobStatus::Failed {
                    errcode,
                    errmsg: crate::scrub::pairs(errmsg),
                })
            }
            other => Err(Error::Protocol(format!(
                "upload_by_url job status {other:?} is unknown"
            ))),
        }
    }

    /// Polls with backoff until the job is done or failed, or `timeout`
    /// passes (`WXM_E_TIMEOUT`; the job goes on and can be waited for again).
    /// A finished job is `Ok(Done)` or `Ok(Failed)`; `Err` is a failure to
    /// learn the job's state (an unknown jobid, the network, a cancel).
    pub fn upload_by_url_wait(
        &self,
        jobid: &str,
        timeout: Duration,
        cancel: &Arc<AtomicBool>,
    ) -> Result<JobStatus> {
        let deadline = Instant::now() + timeout;
        let mut pause = Duration::from_millis(100);
        loop {
            check_cancel(cancel)?;
            match self.upload_by_url_result(jobid, cancel)? {
                JobStatus::Processing => {}
                finished => return Ok(finished),
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::Timeout(format!(
                    "upload_by_url job {jobid} still processing after {} ms",
                    timeout.as_millis()
                )));
            }
            sleep_cancellable(pause.min(deadline - now), cancel)?;
            pause = (pause * 3 / 2).min(Duration::from_secs(5));
        }
    }
}
