//! A local receiver for RESTOP_NOTIFY_URL: keeps every JSON body it is sent and answers
//! with the statuses it was given, in order, then 200.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde_json::Value;

#[derive(Default)]
struct Log {
    answers: Vec<u16>,
    received: Vec<Value>,
}

pub struct Webhook {
    pub url: String,
    log: Arc<Mutex<Log>>,
}

impl Webhook {
    /// `answers`: the statuses of the first deliveries (e.g. `[500, 503]`: two refusals).
    pub async fn start(answers: Vec<u16>) -> Self {
        let log = Arc::new(Mutex::new(Log {
            answers,
            received: Vec::new(),
        }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/restop", listener.local_addr().unwrap());
        let hook = axum::Router::new()
            .route("/hooks/restop", axum::routing::post(receive))
            .with_state(log.clone());
        tokio::spawn(async move { axum::serve(listener, hook).await.unwrap() });
        Self { url, log }
    }

    /// Every body received so far, in order.
    pub fn received(&self) -> Vec<Value> {
        self.log.lock().unwrap().received.clone()
    }

    /// The first body, once it arrives (at most 15 s).
    pub async fn first(&self) -> Value {
        for _ in 0..300 {
            if let Some(body) = self.received().into_iter().next() {
                return body;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the webhook received nothing");
    }
}

async fn receive(State(log): State<Arc<Mutex<Log>>>, Json(body): Json<Value>) -> StatusCode {
    let mut log = log.lock().unwrap();
    log.received.push(body);
    let answer = if log.answers.is_empty() {
        200
    } else {
        log.answers.remove(0)
    };
    StatusCode::from_u16(answer).unwrap()
}
