//! The web dashboard at `/dashboard`: a static page embedded in the binary (no CDN, works
//! offline) whose script reads only the public JSON-RPC and the WebSocket head
//! subscription, like any other client.

use actix_web::HttpResponse;

const INDEX: &str = include_str!("dashboard/index.html");
const SCRIPT: &str = include_str!("dashboard/app.js");
const STYLE: &str = include_str!("dashboard/style.css");

fn asset(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header(("Cache-Control", "no-cache"))
        .body(body)
}

pub async fn index() -> HttpResponse {
    asset(INDEX, "text/html; charset=utf-8")
}

pub async fn script() -> HttpResponse {
    asset(SCRIPT, "text/javascript; charset=utf-8")
}

pub async fn style() -> HttpResponse {
    asset(STYLE, "text/css; charset=utf-8")
}
