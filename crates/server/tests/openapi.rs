//! The OpenAPI document describes exactly the routes the server has. The
//! router is built from `api::routes()`, so comparing the document with that
//! list compares it with the router; the probes below check that each listed
//! route answers and that nothing else on those paths does.

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::{POLICY, TestServer};
use warden_server::api::routes;

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
                let declared = routes()
                    .into_iter()
                    .find(|r| r.method.as_str().eq_ignore_ascii_case(method) && r.path == path)
                    .and_then(|r| r.role)
                    .map(|r| r.as_str());
                assert_eq!(role.as_str(), declared, "{method} {path}");
                assert!(op["responses"].get("401").is_some(), "{method} {path}");
            }
        }
    }
    let routes: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|r| (r.method.to_string(), r.path.to_string()))
        .collect();
    assert_eq!(documented, routes);

    // Each documented route answers on the router (the fallbacks would
    // answer no_route / method_not_allowed); every other method on its path
    // is refused, and a path next to them is not found.
    let probe = |method: &str, path: &str| {
        let concrete = path
            .replace("{id}", "apr_0")
            .replace("{seq}", "0")
            .replace(
                "{did}",
                "did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
            )
            .replace("{transition}", "suspend");
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let request = server
            .client
            .request(method, format!("{}{concrete}", server.url))
            .body("{}");
        async move {
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let text = response.text().await.unwrap();
            let code = serde_json::from_str::<Value>(&text)
                .ok()
                .and_then(|v| v["error"]["code"].as_str().map(str::to_string));
            (status, code, text)
        }
    };
    for (method, path) in &routes {
        let (status, code, text) = probe(method, path).await;
        assert!(
            !matches!(code.as_deref(), Some("no_route" | "method_not_allowed")),
            "{method} {path}: {status} {text}"
        );
    }
    let paths: BTreeSet<&String> = routes.iter().map(|(_, p)| p).collect();
    for path in paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            if routes.contains(&(method.to_string(), path.clone())) {
                continue;
            }
            let (status, code, text) = probe(method, path).await;
            assert_eq!(
                (status, code.as_deref()),
                (405, Some("method_not_allowed")),
                "{method} {path} is not documented: {text}"
            );
        }
    }
    for path in [
        "/",
        "/v1",
        "/v1/decide/one",
        "/v1/approvals/apr_0/maybe",
        "/v2/decide",
    ] {
        let (status, code, text) = probe("GET", path).await;
        assert_eq!(
            (status, code.as_deref()),
            (404, Some("no_route")),
            "{path}: {text}"
        );
    }
    // Every $ref resolves.
    let text = doc.to_string();
    for piece in text.split("\"$ref\":\"#/").skip(1) {
        let pointer = format!("/{}", &piece[..piece.find('"').unwrap()]);
        assert!(doc.pointer(&pointer).is_some(), "dangling $ref {pointer}");
    }
}
