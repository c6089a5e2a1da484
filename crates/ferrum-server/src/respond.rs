//! Turning a [`Driver`] into an HTTP response: one JSON body, or a server-sent event stream.
//!
//! Invariants:
//! - A stream always ends with `data: [DONE]`, after an error event if the request failed
//!   (including the shutdown abort), so clients never hang on a half-closed stream.
//! - Keep-alive comments are sent while no data flows; they are also how a silent stream
//!   (long prefill) notices that its client has gone: the write fails, the body is dropped,
//!   and with it the driver, which aborts the engine requests.
//! - A non-streamed request that fails returns the error's status and nothing else.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::driver::{Driver, Event};
use crate::response::{Accumulated, Kind, Renderer, Usage};

fn usage_of(driver: &Driver) -> Usage {
    Usage {
        prompt_tokens: driver.prompt_tokens(),
        completion_tokens: driver.completion_tokens(),
        cached_tokens: driver.cached_tokens(),
    }
}

pub async fn respond(
    driver: Driver,
    renderer: Renderer,
    stream: bool,
    keep_alive: Duration,
    want_logprobs: bool,
) -> Response {
    if stream {
        streamed(driver, renderer, keep_alive).into_response()
    } else {
        whole(driver, renderer, want_logprobs).await
    }
}

async fn whole(mut driver: Driver, renderer: Renderer, want_logprobs: bool) -> Response {
    let mut choices: Vec<Accumulated> = (0..driver.choices.len())
        .map(|_| Accumulated {
            want_logprobs,
            ..Accumulated::default()
        })
        .collect();
    while let Some(event) = driver.next().await {
        match event {
            Event::Delta(d) => {
                if let Some(c) = choices.get_mut(d.index) {
                    c.add(d);
                }
            }
            Event::Error(e) => return e.into_response(),
        }
    }
    let usage = usage_of(&driver);
    drop(driver);
    axum::Json(renderer.full(&choices, usage)).into_response()
}

struct StreamState {
    driver: Driver,
    renderer: Renderer,
    queue: VecDeque<String>,
    done: bool,
}

fn streamed(driver: Driver, renderer: Renderer, keep_alive: Duration) -> impl IntoResponse {
    let mut queue = VecDeque::new();
    if renderer.kind == Kind::Chat {
        for index in 0..driver.choices.len() {
            queue.push_back(renderer.role_chunk(index).to_string());
        }
    }
    let state = StreamState {
        driver,
        renderer,
        queue,
        done: false,
    };
    let events = futures_util::stream::unfold(state, |mut st| async move {
        loop {
            if let Some(data) = st.queue.pop_front() {
                return Some((Ok::<_, Infallible>(SseEvent::default().data(data)), st));
            }
            if st.done {
                return None;
            }
            match st.driver.next().await {
                Some(Event::Delta(d)) => {
                    for chunk in st.renderer.delta_chunks(&d) {
                        st.queue.push_back(chunk.to_string());
                    }
                }
                Some(Event::Error(e)) => {
                    st.queue.push_back(e.body().to_string());
                    st.queue.push_back("[DONE]".into());
                    st.done = true;
                }
                None => {
                    if st.renderer.include_usage {
                        let usage: Value = st.renderer.usage_chunk(usage_of(&st.driver));
                        st.queue.push_back(usage.to_string());
                    }
                    st.queue.push_back("[DONE]".into());
                    st.done = true;
                }
            }
        }
    });
    Sse::new(events).keep_alive(KeepAlive::new().interval(keep_alive).text("ping"))
}
