//! JSON-RPC 2.0 over HTTP (`POST /`) and WebSocket (`GET /ws`), on actix-web.
//! WebSocket adds `chain_subscribeHeads` / `chain_unsubscribeHeads`.

mod dashboard;
pub mod gov;
pub mod history;
pub mod limits;
pub mod methods;
pub mod subnets;
pub mod views;

use std::collections::HashMap;
use std::net::SocketAddr;

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use agora_core::genesis::ChainParams;
use agora_core::Hash;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio::sync::broadcast;

use crate::actors::chain::{ChainHandle, HeadInfo};
use crate::actors::mempool::MempoolHandle;
use crate::actors::producer::ProducerHandle;
use methods::{dispatch, parse_request, response, RpcError, INVALID_REQUEST, PARSE_ERROR};

/// Largest accepted request body or WebSocket message.
pub const RPC_MAX_BODY: usize = 1024 * 1024;
/// Most requests in one JSON-RPC batch.
pub const RPC_MAX_BATCH: usize = 100;
/// Most head subscriptions per WebSocket connection. Overflow policy: refused.
pub const WS_MAX_SUBSCRIPTIONS: usize = 16;

#[derive(Clone)]
pub struct AppState {
    pub chain: ChainHandle,
    pub mempool: MempoolHandle,
    pub params: ChainParams,
    pub genesis_hash: Hash,
    pub heads: broadcast::Sender<HeadInfo>,
    /// The dev producer (`--dev` only): `dev_produceBlocks` drives it.
    pub producer: Option<ProducerHandle>,
    /// Networked nodes only: consensus, the network bridge, the node's identity.
    pub consensus: Option<crate::actors::consensus::ConsensusHandle>,
    pub network: Option<crate::actors::network::NetworkHandle>,
    pub net_info: Option<crate::node::NetInfo>,
    pub metrics: crate::metrics::NodeMetrics,
    /// Subnet prices, shares and pools sampled at each head (`subnet_history`).
    pub history: history::SubnetHistory,
    /// Requests per second per client address.
    pub limiter: limits::RateLimiter,
}

/// One request's answer; `None` for a notification (a valid request without an `id`
/// member: JSON-RPC 2.0 says the server must not reply, though it still runs it).
async fn handle_value(state: &AppState, v: &Value) -> Option<Value> {
    match parse_request(v) {
        Ok((id, method, params)) => {
            let result = dispatch(state, &method, &params).await;
            is_notification(v)
                .then_some(())
                .map_or(Some(response(id, result)), |()| None)
        }
        Err((id, e)) => Some(response(id, Err(e))),
    }
}

fn is_notification(v: &Value) -> bool {
    v.as_object().is_some_and(|o| !o.contains_key("id"))
}

/// One HTTP body: a request or a batch. `None`: nothing to answer (notifications only).
async fn handle_body(state: &AppState, body: &[u8]) -> Option<Value> {
    let v: Value = match serde_json::from_slice(body) {
        Ok(v) => v,
        Err(e) => {
            return Some(response(
                Value::Null,
                Err(RpcError::new(PARSE_ERROR, format!("parse error: {e}"))),
            ))
        }
    };
    match v {
        Value::Array(items) if items.is_empty() => Some(response(
            Value::Null,
            Err(RpcError::new(INVALID_REQUEST, "empty batch")),
        )),
        Value::Array(items) if items.len() > RPC_MAX_BATCH => Some(response(
            Value::Null,
            Err(RpcError::new(
                INVALID_REQUEST,
                format!(
                    "batch of {} requests, the limit is {RPC_MAX_BATCH}",
                    items.len()
                ),
            )),
        )),
        Value::Array(items) => {
            let mut out = Vec::with_capacity(items.len());
            for item in &items {
                out.extend(handle_value(state, item).await);
            }
            (!out.is_empty()).then_some(Value::Array(out))
        }
        single => handle_value(state, &single).await,
    }
}

/// How many requests a body holds (a batch counts each).
fn request_count(body: &[u8]) -> u32 {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Array(items)) => u32::try_from(items.len()).unwrap_or(u32::MAX).max(1),
        _ => 1,
    }
}

fn rate_limited(limiter: &limits::RateLimiter) -> Value {
    response(
        Value::Null,
        Err(RpcError::new(
            methods::RATE_LIMITED,
            format!(
                "rate limited: at most {} requests per second from one address",
                limiter.per_second()
            ),
        )),
    )
}

async fn http_rpc(state: web::Data<AppState>, req: HttpRequest, body: web::Bytes) -> HttpResponse {
    let ip = req.peer_addr().map(|a| a.ip());
    if !state
        .limiter
        .allow(ip, request_count(&body), limits::now_second())
    {
        return HttpResponse::TooManyRequests().json(rate_limited(&state.limiter));
    }
    let answer =
        tokio::time::timeout(limits::RPC_REQUEST_TIMEOUT, handle_body(&state, &body)).await;
    match answer {
        Ok(Some(answer)) => {
            let body = serde_json::to_vec(&answer).unwrap_or_default();
            if body.len() > limits::RPC_MAX_RESPONSE {
                return HttpResponse::Ok().json(response(
                    Value::Null,
                    Err(RpcError::new(
                        INVALID_REQUEST,
                        format!(
                            "the answer would be {} bytes, over the {} byte limit: ask for less (a smaller batch, or subnet_metagraph with weights: false)",
                            body.len(),
                            limits::RPC_MAX_RESPONSE
                        ),
                    )),
                ));
            }
            HttpResponse::Ok()
                .content_type("application/json")
                .body(body)
        }
        Ok(None) => HttpResponse::NoContent().finish(),
        Err(_) => HttpResponse::Ok().json(response(
            Value::Null,
            Err(RpcError::new(
                methods::INTERNAL_ERROR,
                format!(
                    "timed out after {} s",
                    limits::RPC_REQUEST_TIMEOUT.as_secs()
                ),
            )),
        )),
    }
}

async fn health(state: web::Data<AppState>) -> HttpResponse {
    match state.chain.head().await {
        Ok(h) => HttpResponse::Ok().json(json!({"ok": true, "height": h.height})),
        Err(e) => {
            HttpResponse::ServiceUnavailable().json(json!({"ok": false, "error": e.to_string()}))
        }
    }
}

async fn ws_rpc(
    state: web::Data<AppState>,
    req: HttpRequest,
    body: web::Payload,
) -> actix_web::Result<HttpResponse> {
    let ip = req.peer_addr().map(|a| a.ip());
    let (resp, session, stream) = actix_ws::handle(&req, body)?;
    // A message split over continuation frames is reassembled (up to the body limit)
    // before it is read, instead of being ignored.
    let mut stream = stream
        .max_frame_size(RPC_MAX_BODY)
        .aggregate_continuations()
        .max_continuation_size(RPC_MAX_BODY);
    let state = state.get_ref().clone();
    actix_rt::spawn(async move {
        let mut session = session;
        let mut subs: HashMap<u64, actix_rt::task::JoinHandle<()>> = HashMap::new();
        let mut next_sub: u64 = 1;
        while let Some(Ok(msg)) = stream.next().await {
            let text = match msg {
                actix_ws::AggregatedMessage::Text(t) => t.to_string(),
                actix_ws::AggregatedMessage::Ping(p) => {
                    if session.pong(&p).await.is_err() {
                        break;
                    }
                    continue;
                }
                actix_ws::AggregatedMessage::Close(_) => break,
                _ => continue,
            };
            if !state
                .limiter
                .allow(ip, request_count(text.as_bytes()), limits::now_second())
            {
                if session
                    .text(rate_limited(&state.limiter).to_string())
                    .await
                    .is_err()
                {
                    break;
                }
                continue;
            }
            let reply = match serde_json::from_str::<Value>(&text) {
                Err(e) => response(
                    Value::Null,
                    Err(RpcError::new(PARSE_ERROR, format!("parse error: {e}"))),
                ),
                Ok(v) => match parse_request(&v) {
                    Err((id, e)) => response(id, Err(e)),
                    Ok((id, method, _)) if method == "chain_subscribeHeads" => {
                        if subs.len() >= WS_MAX_SUBSCRIPTIONS {
                            response(id, Err(RpcError::new(INVALID_REQUEST, format!("at most {WS_MAX_SUBSCRIPTIONS} subscriptions per connection"))))
                        } else {
                            let sub = next_sub;
                            next_sub += 1;
                            subs.insert(
                                sub,
                                spawn_head_forwarder(sub, state.heads.subscribe(), session.clone()),
                            );
                            response(id, Ok(json!(sub)))
                        }
                    }
                    Ok((id, method, params)) if method == "chain_unsubscribeHeads" => {
                        let sub = params
                            .get(0)
                            .or_else(|| params.get("subscription"))
                            .and_then(Value::as_u64);
                        match sub.and_then(|s| subs.remove(&s)) {
                            Some(task) => {
                                task.abort();
                                response(id, Ok(json!(true)))
                            }
                            None => response(id, Err(RpcError::params("unknown subscription id"))),
                        }
                    }
                    Ok((id, method, params)) => {
                        response(id, dispatch(&state, &method, &params).await)
                    }
                },
            };
            // Notifications (valid requests without an `id`) run and get no reply.
            let quiet = serde_json::from_str::<Value>(&text)
                .is_ok_and(|v| is_notification(&v) && parse_request(&v).is_ok());
            if quiet {
                continue;
            }
            if session.text(reply.to_string()).await.is_err() {
                break;
            }
        }
        for (_, task) in subs {
            task.abort();
        }
        let _ = session.close(None).await;
    });
    Ok(resp)
}

fn spawn_head_forwarder(
    sub: u64,
    mut heads: broadcast::Receiver<HeadInfo>,
    mut session: actix_ws::Session,
) -> actix_rt::task::JoinHandle<()> {
    actix_rt::spawn(async move {
        loop {
            let head = match heads.recv().await {
                Ok(h) => h,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    // Told, not silently skipped: the subscriber can re-read what it missed.
                    let note = json!({"jsonrpc": "2.0", "method": "chain_head", "params": {"subscription": sub, "lagged": missed}});
                    if session.text(note.to_string()).await.is_err() {
                        break;
                    }
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            let note = json!({"jsonrpc": "2.0", "method": "chain_head", "params": {"subscription": sub, "result": head}});
            if session.text(note.to_string()).await.is_err() {
                break;
            }
        }
    })
}

/// Bind the RPC server; returns the running server and the address actually bound.
/// `GET /metrics`: the gauges that mirror state are read now, through the same handles
/// the RPC uses; then the whole registry as Prometheus text.
async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    let m = &state.metrics;
    if let Ok(head) = state.chain.head().await {
        let h = i64::try_from(head.height).unwrap_or(i64::MAX);
        m.height.set(h);
        m.finalized_height.set(h);
    }
    if let Some(net) = &state.network {
        m.peers
            .set(i64::try_from(net.peers().await.len()).unwrap_or(0));
    }
    if let Ok(n) = state.mempool.size().await {
        m.mempool.set(i64::try_from(n).unwrap_or(i64::MAX));
    }
    if let Ok(Value::Array(subnets)) = methods::dispatch(&state, "subnet_list", &Value::Null)
        .await
        .map(|mut v| v["subnets"].take())
    {
        for s in subnets {
            let Some(netuid) = s["netuid"].as_u64().and_then(|n| u16::try_from(n).ok()) else {
                continue;
            };
            let label = crate::metrics::NetuidLabel { netuid };
            let rao = |v: &Value| v.as_u64().unwrap_or(0) as f64 / 1e9;
            m.subnet_price
                .get_or_create(&label)
                .set(rao(&s["price_rao"]));
            m.subnet_pool_tao
                .get_or_create(&label)
                .set(rao(&s["pool_tao"]));
            m.subnet_emission_share
                .get_or_create(&label)
                .set(s["emission_share"].as_f64().unwrap_or(0.0));
        }
    }
    HttpResponse::Ok()
        .content_type(crate::metrics::CONTENT_TYPE)
        .body(m.render())
}

pub fn serve(
    state: AppState,
    addr: SocketAddr,
) -> std::io::Result<(actix_web::dev::Server, SocketAddr)> {
    let server = HttpServer::new(move || {
        App::new()
            .app_data(web::Data::new(state.clone()))
            .app_data(web::PayloadConfig::new(RPC_MAX_BODY))
            .route("/", web::post().to(http_rpc))
            .route("/health", web::get().to(health))
            .route("/metrics", web::get().to(metrics))
            .route("/dashboard", web::get().to(dashboard::index))
            .route("/dashboard/", web::get().to(dashboard::index))
            .route("/dashboard/app.js", web::get().to(dashboard::script))
            .route("/dashboard/style.css", web::get().to(dashboard::style))
            .route("/ws", web::get().to(ws_rpc))
    })
    .workers(2)
    .max_connections(limits::RPC_MAX_CONNECTIONS)
    .client_request_timeout(limits::RPC_CLIENT_TIMEOUT)
    .disable_signals()
    .bind(addr)?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}
