//! WeChat's JSON APIs (a POST with a JSON body, a JSON answer), through
//! the one retry policy: what upload_by_url and its result polling use.

use crate::client::Client;
use crate::error::Result;
use crate::retry::{Attempt, Effect, Reached, Retry};
use std::sync::atomic::AtomicBool;

impl Client {
    /// POSTs a JSON body to `cgi-bin/{path}` with the token, and returns the
    /// answer's fields (a non-zero errcode is an error). Failures are
    /// retried as `effect` allows (`crate::retry`): a job submission is
    /// never sent twice.
    pub fn call_api(
        &self,
        path: &'static str,
        body: &serde_json::Value,
        effect: Effect,
        cancel: &AtomicBool,
    ) -> Result<serde_json::Map<String, serde_json::Value>> {
        let payload = body.to_string();
        let events = &self.config.events;
        Retry::new(self, effect, path).run(cancel, |retry| {
            let token = match self.token() {
                Ok(t) => t,
                Err(e) => return Attempt::Final(e),
            };
            let url = format!(
                "{}/cgi-bin/{path}?access_token={}",
                self.config.base_url,
                crate::range::query_encode(&token)
            );
            let mut reached = Reached::Server;
            let mut status = 0;
            let trace = events.request_started(
                |e| {
                    e.method = "POST";
                    e.endpoint = format!("cgi-bin/{path}");
                    e.attempt = retry.attempt();
                },
                |e| format!("POST {}", e.endpoint),
            );
            let answer = self
                .agent
                .post(&url)
                .header("Content-Type", "application/json")
                .send(payload.as_bytes())
                .map_err(|e| {
                    if crate::http::sent_nothing(&e) {
                        reached = Reached::Nowhere;
                    }
                    crate::http::map_ureq(e)
                })
                .and_then(|response| {
                    status = response.status().as_u16();
                    let within = crate::http::small_answer_deadline(self.config.io_timeout);
                    crate::http::read_api_answer(response, within, path)
                });
            events.request_finished(
                trace,
                status,
                0,
                || self.event_failure(answer.as_ref().err()),
                |_| {},
            );
            match answer {
                Ok(map) => Attempt::Done(map),
                Err(e) => Attempt::Failed {
                    error: e,
                    reached,
                    token: Some(token),
                },
            }
        })
    }
}
