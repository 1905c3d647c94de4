//! The OpenAPI document describes exactly the routes the server has. The
//! router is built from `api::routes()`, so comparing the document with that
//! list compares it with the router; the probes below check that each listed
//! route answers and that nothing else on those paths does. Real answers of
//! every route are validated against the schemas the document gives for
//! their status (JSON Schema 2020-12, as OpenAPI 3.1 uses).

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

/// The schema the document gives for `status` of `method` on `template`,
/// with the document's components beside it so that its `$ref`s resolve.
fn documented_schema(doc: &Value, method: &str, template: &str, status: u16) -> Value {
    let op = &doc["paths"][template][method.to_lowercase()];
    assert!(op.is_object(), "{method} {template} is not documented");
    let mut response = op["responses"][status.to_string()].clone();
    assert!(
        response.is_object(),
        "{method} {template} answered {status}, which the document does not list"
    );
    if let Some(reference) = response["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/responses/");
        response = doc["components"]["responses"][name].clone();
    }
    let mut schema = response["content"]["application/json"]["schema"].clone();
    assert!(
        schema.is_object(),
        "{method} {template} {status} has no JSON schema"
    );
    schema["components"] = doc["components"].clone();
    schema
}

/// Real answers of every kind, each checked against the schema the
/// document gives for its route and status: the document describes what
/// the server sends, not only where.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_answers_match_the_documented_schemas() {
    let server = TestServer::start(POLICY).await;
    let (_, doc) = server.get("/v1/openapi.json").await;
    let select = serde_json::json!({"point": "pre_tool_call", "tool": "db.query", "agent": "a", "args": {"sql": "SELECT 1"}});
    let mail = serde_json::json!({"point": "pre_tool_call", "tool": "email.send", "args": {"to": "x@example.com", "body": "hi"}});

    let mut checked = 0;
    let mut call = async |method: &str, template: &str, path: &str, body: Option<Value>| {
        let method_ = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = server
            .client
            .request(method_, format!("{}{path}", server.url));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, value) = server.send(request).await;
        let schema = documented_schema(&doc, method, template, status);
        let validator = jsonschema::draft202012::new(&schema).unwrap_or_else(|e| {
            panic!("{method} {template} {status}: the schema does not compile: {e}")
        });
        let errors: Vec<String> = validator
            .iter_errors(&value)
            .map(|e| format!("{}: {e}", e.instance_path()))
            .collect();
        assert!(
            errors.is_empty(),
            "{method} {path} {status}: {errors:?}\n{value}"
        );
        checked += 1;
        (status, value)
    };

    let (_, allowed) = call("POST", "/v1/decide", "/v1/decide", Some(select.clone())).await;
    let (_, asked) = call("POST", "/v1/decide", "/v1/decide", Some(mail.clone())).await;
    let id = asked["approval"]["id"].as_str().unwrap().to_string();
    let (status, _) = call(
        "POST",
        "/v1/decide",
        "/v1/decide",
        Some(serde_json::json!({"point": 7})),
    )
    .await;
    assert_eq!(status, 400);
    call(
        "POST",
        "/v1/decide/batch",
        "/v1/decide/batch",
        Some(serde_json::json!({"actions": [select.clone(), mail.clone()]})),
    )
    .await;
    call("GET", "/v1/approvals", "/v1/approvals?state=pending", None).await;
    call(
        "GET",
        "/v1/approvals/{id}",
        &format!("/v1/approvals/{id}"),
        None,
    )
    .await;
    let (status, _) = call(
        "POST",
        "/v1/approvals/{id}/approve",
        &format!("/v1/approvals/{id}/approve"),
        Some(serde_json::json!({"approver": "dba@example.com", "comment": "ok"})),
    )
    .await;
    assert_eq!(status, 200);
    call(
        "POST",
        "/v1/outcomes",
        "/v1/outcomes",
        Some(serde_json::json!({"decision_seq": allowed["seq"], "outcome": "succeeded"})),
    )
    .await;
    call(
        "POST",
        "/v1/kill",
        "/v1/kill",
        Some(serde_json::json!({"agent": "a", "reason": "test"})),
    )
    .await;
    call("GET", "/v1/kill", "/v1/kill", None).await;
    let (_, lifted) = call("DELETE", "/v1/kill", "/v1/kill?agent=a", None).await;
    assert_eq!(lifted["lifted"], true, "{lifted}");
    call("GET", "/v1/policy", "/v1/policy", None).await;
    call("POST", "/v1/policy/reload", "/v1/policy/reload", None).await;
    call(
        "GET",
        "/v1/audit/entries",
        "/v1/audit/entries?after=0",
        None,
    )
    .await;
    call("GET", "/v1/audit/checkpoint", "/v1/audit/checkpoint", None).await;
    call("GET", "/v1/audit/proof/{seq}", "/v1/audit/proof/0", None).await;
    call("GET", "/v1/agents", "/v1/agents", None).await;
    call(
        "GET",
        "/v1/agents/{did}",
        "/v1/agents/did:key:z6MkhaXgBZDvotDkL5257faiztiGiC2QtKLGpbnnEGta2doK",
        None,
    )
    .await;
    call("GET", "/healthz", "/healthz", None).await;
    call("GET", "/readyz", "/readyz", None).await;
    assert_eq!(checked, 20);
}
