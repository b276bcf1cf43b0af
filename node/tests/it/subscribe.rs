use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};

use crate::harness::*;

async fn next_json(framed: &mut actix_codec::Framed<awc::BoxedSocket, awc::ws::Codec>) -> Value {
    loop {
        let frame = actix_rt::time::timeout(Duration::from_secs(20), framed.next())
            .await
            .expect("no message in 20s")
            .unwrap()
            .unwrap();
        if let awc::ws::Frame::Text(t) = frame {
            return serde_json::from_slice(&t).unwrap();
        }
    }
}

/// `chain_subscribeHeads` over WebSocket delivers consecutive new heads; ordinary methods
/// work on the same socket; unsubscribe stops the stream. Blocks are sealed by hand, so
/// the test knows exactly which heads must (and must not) arrive.
#[actix_rt::test]
async fn websocket_head_subscription_streams_new_blocks() {
    let dir = tempfile::tempdir().unwrap();
    let (_, genesis_path) = fast_genesis(dir.path());
    let node = Node::start(dir.path(), &genesis_path, Mode::Manual, "1");
    let (_, mut ws) = awc::Client::new()
        .ws(format!("ws://127.0.0.1:{}/ws", node.port))
        .connect()
        .await
        .unwrap();

    let send = |v: Value| awc::ws::Message::Text(v.to_string().into());
    ws.send(send(
        json!({"jsonrpc": "2.0", "id": 1, "method": "chain_subscribeHeads"}),
    ))
    .await
    .unwrap();
    let sub = next_json(&mut ws).await;
    let sub_id = sub["result"].as_u64().expect("subscription id");
    let start = node.height();
    node.produce(3);

    let mut heights = Vec::new();
    while heights.len() < 3 {
        let note = next_json(&mut ws).await;
        assert_eq!(note["method"], "chain_head");
        assert_eq!(note["params"]["subscription"], sub_id);
        heights.push(note["params"]["result"]["height"].as_u64().unwrap());
    }
    assert_eq!(heights, [start + 1, start + 2, start + 3]);

    ws.send(send(
        json!({"jsonrpc": "2.0", "id": 2, "method": "chain_supply"}),
    ))
    .await
    .unwrap();
    let mut reply = next_json(&mut ws).await;
    while reply.get("id").is_none() {
        reply = next_json(&mut ws).await; // skip head notifications in between
    }
    assert_eq!(reply["id"], 2);
    assert!(reply["result"]["issued"].as_u64().unwrap() > 0);

    // A request split over continuation frames is reassembled and answered.
    let whole = json!({"jsonrpc": "2.0", "id": 9, "method": "chain_head"}).to_string();
    let (a, rest) = whole.as_bytes().split_at(10);
    let (b, c) = rest.split_at(10);
    use actix_http::ws::Item;
    use awc::ws::Message;
    for frame in [
        Message::Continuation(Item::FirstText(a.to_vec().into())),
        Message::Continuation(Item::Continue(b.to_vec().into())),
        Message::Continuation(Item::Last(c.to_vec().into())),
    ] {
        ws.send(frame).await.unwrap();
    }
    let mut reply = next_json(&mut ws).await;
    while reply.get("id").is_none() {
        reply = next_json(&mut ws).await;
    }
    assert_eq!(reply["id"], 9, "{reply}");
    assert!(reply["result"]["height"].as_u64().is_some());

    ws.send(send(
        json!({"jsonrpc": "2.0", "id": 3, "method": "chain_unsubscribeHeads", "params": [sub_id]}),
    ))
    .await
    .unwrap();
    let mut reply = next_json(&mut ws).await;
    while reply.get("id").is_none() {
        reply = next_json(&mut ws).await;
    }
    assert_eq!(reply["result"], true);
    // After unsubscribing, new blocks bring no notification.
    node.produce(2);
    let quiet = actix_rt::time::timeout(Duration::from_millis(700), ws.next()).await;
    assert!(
        quiet.is_err(),
        "still receiving after unsubscribe: {quiet:?}"
    );
}
