//! The OpenAPI document describes exactly the routes the server has.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{POLICY, TestServer};
use warden_server::api::ROUTES;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_matches_the_real_routes() {
    let server = TestServer::start(POLICY).await;
    let (status, doc) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            // Every operation needing a role says which, and offers 401/403.
            if let Some(role) = op.get("x-warden-role") {
                let declared = ROUTES
                    .iter()
                    .find(|(m, p, _)| m.eq_ignore_ascii_case(method) && p == path)
                    .and_then(|r| r.2)
                    .map(|r| r.as_str());
                assert_eq!(role.as_str(), declared, "{method} {path}");
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            }
        }
    }
    let routes: BTreeSet<(String, String)> = ROUTES
        .iter()
        .map(|(m, p, _)| (m.to_string(), p.to_string()))
        .collect();
    assert_eq!(documented, routes);

    // Each documented route exists on the router: the fallback would
    // answer no_route / method_not_allowed.
    for (method, path) in &routes {
        let concrete = path
            .replace("{id}", "apr_0")
            .replace("{seq}", "0")
            .replace(
                "{did}",
                "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            )
            .replace("{transition}", "suspend");
        let url = format!("{}{concrete}", server.url);
        let request = match method.as_str() {
            "GET" => server.client.get(url),
            "POST" => server.client.post(url).body("{}"),
            "DELETE" => server.client.delete(url),
            other => panic!("unexpected method {other}"),
        };
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        let code = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
        assert!(
            !matches!(code.as_deref(), Some("no_route" | "method_not_allowed")),
            "{method} {path}: {status} {text}"
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
}
