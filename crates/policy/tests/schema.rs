//! The JSON Schema for `warden/v1` (`schema/warden-v1.schema.json`) against
//! the example policies and the real loader: what the schema accepts the
//! loader loads, and what it rejects the loader rejects too.

use serde_json::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use warden_policy::{ARG_KINDS, KNOWN_INTENTS, Point, Sources, Verdict, compile, load, parse};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn schema_json() -> Value {
    let path = repo_root().join("schema/warden-v1.schema.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}

fn validator_for(schema: &Value) -> jsonschema::Validator {
    jsonschema::draft202012::new(schema).expect("the schema compiles")
}

fn validator() -> jsonschema::Validator {
    validator_for(&schema_json())
}

/// YAML text as JSON, the way an editor hands a YAML file to a JSON Schema.
/// `strict_booleans` as in the loader (and YAML 1.2 editors): `no` is a string.
fn yaml_to_json(text: &str) -> Value {
    let mut options = serde_saphyr::Options::default();
    options.strict_booleans = true;
    serde_saphyr::from_str_with_options::<Value>(text, options).expect("valid YAML")
}

/// Every schema error for `instance`, one line each.
fn schema_errors(v: &jsonschema::Validator, instance: &Value) -> Vec<String> {
    v.iter_errors(instance)
        .map(|e| format!("{}: {e}", e.instance_path()))
        .collect()
}

/// Loads and compiles `text` with the real loader; every diagnostic on failure.
fn loader_errors(text: &str) -> Vec<String> {
    match parse("p.yaml", text).and_then(compile) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

/// Policy files on disk, below one directory.
struct DirSources(PathBuf);

impl Sources for DirSources {
    fn read(&self, path: &str) -> Result<String, String> {
        std::fs::read_to_string(self.0.join(path)).map_err(|e| e.to_string())
    }
}

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            yaml_files(&path, out);
        } else if path.extension().is_some_and(|x| x == "yaml" || x == "yml") {
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            if !name.starts_with("fixtures") {
                out.push(path);
            }
        }
    }
}

/// The paths a policy names in `include:`, resolved next to it.
fn includes_of(file: &Path, doc: &Value) -> Vec<PathBuf> {
    let dir = file.parent().expect("a file has a directory");
    match doc.get("include") {
        Some(Value::String(s)) => vec![dir.join(s)],
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .map(|s| dir.join(s))
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_schema_is_a_valid_draft_2020_12_schema() {
    let schema = schema_json();
    assert_eq!(
        schema["$schema"],
        "https://json-schema.org/draft/2020-12/schema"
    );
    assert_eq!(
        schema["$id"],
        "https://warden.invalid/schema/warden-v1.json"
    );
    if let Err(e) = jsonschema::meta::validate(&schema) {
        panic!("the schema does not match its meta-schema: {e}");
    }
    validator_for(&schema);
}

#[test]
fn every_example_policy_validates_and_loads() {
    let v = validator();
    // Included fragments may omit `default`: check them with a schema that
    // requires only `version`.
    let mut fragment_schema = schema_json();
    fragment_schema["required"] = serde_json::json!(["version"]);
    let fragment_v = validator_for(&fragment_schema);

    let mut files = Vec::new();
    yaml_files(&repo_root().join("examples"), &mut files);
    assert!(!files.is_empty(), "no example policies found");

    let docs: Vec<(PathBuf, Value)> = files
        .iter()
        .map(|f| {
            let text = std::fs::read_to_string(f).expect("readable example");
            (f.clone(), yaml_to_json(&text))
        })
        .collect();
    let included: BTreeSet<PathBuf> = docs
        .iter()
        .flat_map(|(f, d)| includes_of(f, d))
        .filter_map(|p| p.canonicalize().ok())
        .collect();

    let mut roots = 0;
    for (file, doc) in &docs {
        let fragment = included.contains(&file.canonicalize().expect("file exists"));
        let errors = schema_errors(if fragment { &fragment_v } else { &v }, doc);
        assert!(
            errors.is_empty(),
            "{} does not validate against the schema:\n{}",
            file.display(),
            errors.join("\n")
        );
        if !fragment {
            roots += 1;
            let dir = file.parent().expect("a file has a directory");
            let name = file.file_name().unwrap_or_default().to_string_lossy();
            let loaded = load(&name, &DirSources(dir.to_path_buf())).and_then(compile);
            if let Err(e) = loaded {
                panic!("{} does not load:\n{e}", file.display());
            }
        }
    }
    assert!(roots > 0, "no root example policy found");
}

const HEAD: &str = "version: warden/v1\nname: t\ndefault: deny\n";

/// A policy both the schema and the loader must reject.
struct Broken {
    what: &'static str,
    text: String,
    /// JSON pointer of the value the schema complains about.
    schema_at: &'static str,
    /// Part of the loader's message.
    loader_says: &'static str,
}

fn broken(
    what: &'static str,
    text: String,
    schema_at: &'static str,
    loader_says: &'static str,
) -> Broken {
    Broken {
        what,
        text,
        schema_at,
        loader_says,
    }
}

fn with_rules(rules: &str) -> String {
    format!("{HEAD}rules:\n{rules}")
}

fn broken_policies() -> Vec<Broken> {
    let r = with_rules;
    vec![
        broken(
            "unknown top-level field",
            format!("{HEAD}defaults: allow\n"),
            "",
            "unknown field 'defaults' in the policy",
        ),
        broken(
            "misspelt rule field",
            r("  - id: block-drop\n    verdcit: deny\n"),
            "/rules/0",
            "unknown field 'verdcit' in rule 'block-drop' (did you mean 'verdict'?)",
        ),
        broken(
            "unknown verdict",
            r("  - id: r\n    verdict: block\n"),
            "/rules/0/verdict",
            "unknown verdict 'block'",
        ),
        broken(
            "unknown intervention point",
            r("  - id: r\n    on: pre_tool\n    verdict: deny\n"),
            "/rules/0/on",
            "unknown intervention point 'pre_tool'",
        ),
        broken(
            "unknown intervention point in a list",
            r("  - id: r\n    on: [output, after_tool_call]\n    verdict: deny\n"),
            "/rules/0/on",
            "unknown intervention point 'after_tool_call'",
        ),
        broken(
            "ring 7",
            r("  - id: r\n    match: {ring: {max: 7}}\n    verdict: deny\n"),
            "/rules/0/match/ring/max",
            "invalid ring '7'",
        ),
        broken(
            "missing default",
            "version: warden/v1\nname: t\nrules: []\n".into(),
            "",
            "missing 'default'",
        ),
        broken(
            "missing version",
            "name: t\ndefault: deny\n".into(),
            "",
            "missing 'version'",
        ),
        broken(
            "other version",
            "version: warden/v2\ndefault: deny\n".into(),
            "/version",
            "unsupported version 'warden/v2'",
        ),
        broken(
            "default that is not allow or deny",
            "version: warden/v1\ndefault: warn\n".into(),
            "/default",
            "invalid default 'warn'",
        ),
        broken(
            "rule without id",
            r("  - verdict: deny\n"),
            "/rules/0",
            "rule without 'id'",
        ),
        broken(
            "rule without verdict",
            r("  - id: r\n"),
            "/rules/0",
            "missing 'verdict' in rule 'r'",
        ),
        broken(
            "invalid rule id",
            r("  - id: 'no spaces'\n    verdict: deny\n"),
            "/rules/0/id",
            "invalid rule id 'no spaces'",
        ),
        broken(
            "transform verdict without transform",
            r("  - id: r\n    verdict: transform\n"),
            "/rules/0",
            "has verdict 'transform' but no 'transform' list",
        ),
        broken(
            "empty transform list",
            r("  - id: r\n    verdict: transform\n    transform: []\n"),
            "/rules/0/transform",
            "has verdict 'transform' but no 'transform' list",
        ),
        broken(
            "transform with another verdict",
            r("  - id: r\n    verdict: deny\n    transform: [{path: a, redact: true}]\n"),
            "/rules/0",
            "'transform' in rule 'r' has no effect with verdict 'deny'",
        ),
        broken(
            "approvers without require_approval",
            r("  - id: r\n    verdict: deny\n    approvers: [a@example.com]\n"),
            "/rules/0",
            "'approvers' in rule 'r' has no effect with verdict 'deny'",
        ),
        broken(
            "transform with both redact and replace",
            r(
                "  - id: r\n    verdict: transform\n    transform: [{path: a, redact: true, replace: x}]\n",
            ),
            "/rules/0/transform/0",
            "needs exactly one of 'redact: true' or 'replace: VALUE'",
        ),
        broken(
            "transform with neither redact nor replace",
            r("  - id: r\n    verdict: transform\n    transform: [{path: a}]\n"),
            "/rules/0/transform/0",
            "needs exactly one of 'redact: true' or 'replace: VALUE'",
        ),
        broken(
            "redact: false",
            r("  - id: r\n    verdict: transform\n    transform: [{path: a, redact: false}]\n"),
            "/rules/0/transform/0/redact",
            "'redact' in rule 'r' must be 'true'",
        ),
        broken(
            "transform path with an empty segment",
            r("  - id: r\n    verdict: transform\n    transform: [{path: a..b, redact: true}]\n"),
            "/rules/0/transform/0/path",
            "has an empty segment",
        ),
        broken(
            "unknown intent",
            r("  - id: r\n    match: {intents: [destructiv]}\n    verdict: deny\n"),
            "/rules/0/match/intents",
            "unknown intent 'destructiv'",
        ),
        broken(
            "unknown intent under any",
            r("  - id: r\n    match: {intents: {any: [exfiltration, leak]}}\n    verdict: deny\n"),
            "/rules/0/match/intents",
            "unknown intent 'leak'",
        ),
        broken(
            "labels with both all and any",
            r("  - id: r\n    match: {labels: {all: [a], any: [b]}}\n    verdict: deny\n"),
            "/rules/0/match/labels",
            "needs exactly one of 'all' or 'any'",
        ),
        broken(
            "empty label set",
            r("  - id: r\n    match: {labels: {any: []}}\n    verdict: deny\n"),
            "/rules/0/match/labels",
            "'labels' in rule 'r' is empty",
        ),
        broken(
            "empty ring",
            r("  - id: r\n    match: {ring: {}}\n    verdict: deny\n"),
            "/rules/0/match/ring",
            "'ring' of rule 'r' is empty",
        ),
        broken(
            "ring that is not an integer",
            r("  - id: r\n    match: {ring: {min: '1'}}\n    verdict: deny\n"),
            "/rules/0/match/ring/min",
            "invalid ring '1'",
        ),
        broken(
            "unknown matcher",
            r("  - id: r\n    match: {tools: db.query}\n    verdict: deny\n"),
            "/rules/0/match",
            "unknown field 'tools' in 'match' of rule 'r'",
        ),
        broken(
            "empty tool list",
            r("  - id: r\n    match: {tool: []}\n    verdict: deny\n"),
            "/rules/0/match/tool",
            "'tool' in rule 'r' names no tool",
        ),
        broken(
            "empty tool pattern",
            r("  - id: r\n    match: {tool: [a, '']}\n    verdict: deny\n"),
            "/rules/0/match/tool",
            "empty tool pattern",
        ),
        broken(
            "empty on list",
            r("  - id: r\n    on: []\n    verdict: deny\n"),
            "/rules/0/on",
            "names no intervention point",
        ),
        broken(
            "unknown visibility",
            r("  - id: r\n    match: {tool: a}\n    visibility: secret\n    verdict: deny\n"),
            "/rules/0/visibility",
            "invalid visibility 'secret'",
        ),
        broken(
            "hidden without a tool",
            r("  - id: r\n    visibility: hidden\n    verdict: deny\n"),
            "/rules/0",
            "hides tools but names none",
        ),
        broken(
            "when that is not a string",
            r("  - id: r\n    when: true\n    verdict: deny\n"),
            "/rules/0/when",
            "expected a string for 'when'",
        ),
        broken(
            "when over the length limit",
            r(&format!(
                "  - id: r\n    when: '{}'\n    verdict: deny\n",
                "1".repeat(4097)
            )),
            "/rules/0/when",
            "the limit is 4096",
        ),
        broken(
            "unknown argument kind",
            format!("{HEAD}tools:\n  db.query: {{args: {{sql: sequel}}}}\n"),
            "/tools/db.query/args/sql",
            "unknown argument kind 'sequel'",
        ),
        broken(
            "unknown tool field",
            format!("{HEAD}tools:\n  db.query: {{label: [pii]}}\n"),
            "/tools/db.query",
            "unknown field 'label' in tool 'db.query'",
        ),
        broken(
            "tools as a list",
            format!("{HEAD}tools: [db.query]\n"),
            "/tools",
            "expected a mapping for 'tools'",
        ),
        broken(
            "absolute include",
            format!("{HEAD}include: /etc/warden/base.yaml\n"),
            "/include",
            "must be a relative path",
        ),
        broken(
            "identity short form that is not required or optional",
            format!("{HEAD}identity: always\n"),
            "/identity",
            "invalid identity 'always'",
        ),
        broken(
            "identity required that is not a boolean",
            format!("{HEAD}identity: {{required: 'yes'}}\n"),
            "/identity",
            "expected true or false for 'identity.required'",
        ),
        broken(
            "issuer that is not a did:key",
            format!("{HEAD}identity: {{issuers: ['did:web:example.com']}}\n"),
            "/identity",
            "invalid issuer",
        ),
        broken(
            "unknown identity field",
            format!("{HEAD}identity: {{requires: true}}\n"),
            "/identity",
            "unknown field 'requires' in 'identity'",
        ),
        broken(
            "rule identity that is not required or optional",
            r("  - id: r\n    identity: true\n    verdict: allow\n"),
            "/rules/0/identity",
            "expected a string for 'identity'",
        ),
        broken(
            "ring threshold above 1000",
            format!("{HEAD}rings: {{ring1: 1200}}\n"),
            "/rings/ring1",
            "invalid rings.ring1 '1200'",
        ),
        broken(
            "unknown rings field",
            format!("{HEAD}rings: {{ring0: 990}}\n"),
            "/rings",
            "unknown field 'ring0' in 'rings'",
        ),
        broken(
            "limits as a list",
            format!("{HEAD}limits: [agents]\n"),
            "/limits",
            "expected a mapping for 'limits'",
        ),
        broken(
            "unknown limits field",
            format!("{HEAD}limits: {{agent: {{per_session: 1}}}}\n"),
            "/limits",
            "unknown field 'agent' in 'limits' (did you mean 'agents'?)",
        ),
        broken(
            "calls without per",
            format!("{HEAD}limits: {{agents: {{calls: 10}}}}\n"),
            "/limits/agents",
            "'limits.agents' has 'calls' but no 'per'",
        ),
        broken(
            "per without calls",
            format!("{HEAD}limits: {{tools: {{db.query: {{per: 1m}}}}}}\n"),
            "/limits/tools/db.query",
            "the limit of tool 'db.query' has 'per' but no 'calls'",
        ),
        broken(
            "empty limit",
            format!("{HEAD}limits: {{agents: {{}}}}\n"),
            "/limits/agents",
            "'limits.agents' sets no limit",
        ),
        broken(
            "window with an unknown unit",
            format!("{HEAD}limits: {{agents: {{calls: 1, per: 10x}}}}\n"),
            "/limits/agents/per",
            "invalid per '10x'",
        ),
        broken(
            "zero window",
            format!("{HEAD}limits: {{agents: {{calls: 1, per: 0s}}}}\n"),
            "/limits/agents/per",
            "invalid per '0s'",
        ),
        broken(
            "zero calls",
            format!("{HEAD}limits: {{agents: {{calls: 0, per: 1m}}}}\n"),
            "/limits/agents/calls",
            "invalid calls '0'",
        ),
        broken(
            "too many calls per session",
            format!("{HEAD}limits: {{agents: {{per_session: 1000000001}}}}\n"),
            "/limits/agents/per_session",
            "invalid per_session '1000000001'",
        ),
        broken(
            "unknown limit field",
            format!("{HEAD}limits: {{agents: {{calls: 1, pre: 1m}}}}\n"),
            "/limits/agents",
            "unknown field 'pre' in 'limits.agents' (did you mean 'per'?)",
        ),
        broken(
            "add_labels on a deny rule",
            r("  - id: r\n    verdict: deny\n    add_labels: [secret]\n"),
            "/rules/0",
            "'add_labels' in rule 'r' has no effect with verdict 'deny'",
        ),
        broken(
            "empty add_labels",
            r("  - id: r\n    verdict: allow\n    add_labels: []\n"),
            "/rules/0/add_labels",
            "'add_labels' in rule 'r' is empty",
        ),
        broken(
            "empty label in add_labels",
            r("  - id: r\n    verdict: allow\n    add_labels: ['']\n"),
            "/rules/0/add_labels",
            "empty label in 'add_labels'",
        ),
        broken(
            "a document that is not a mapping",
            "- version: warden/v1\n".into(),
            "",
            "expected a mapping for the policy",
        ),
    ]
}

#[test]
fn the_schema_rejects_broken_policies() {
    let v = validator();
    for b in broken_policies() {
        let json = yaml_to_json(&b.text);
        let at: Vec<String> = v
            .iter_errors(&json)
            .map(|e| e.instance_path().to_string())
            .collect();
        assert!(!at.is_empty(), "the schema accepts: {}\n{}", b.what, b.text);
        assert!(
            at.iter().any(|p| p == b.schema_at),
            "{}: expected a schema error at '{}', got {:?}",
            b.what,
            b.schema_at,
            schema_errors(&v, &json)
        );
    }
}

#[test]
fn the_loader_rejects_what_the_schema_rejects() {
    for b in broken_policies() {
        let errors = loader_errors(&b.text);
        assert!(
            !errors.is_empty(),
            "the loader accepts: {}\n{}",
            b.what,
            b.text
        );
        assert!(
            errors.iter().any(|e| e.contains(b.loader_says)),
            "{}: expected the loader to say '{}', got {errors:?}",
            b.what,
            b.loader_says
        );
    }
}

/// Corner cases the loader accepts; the schema must not flag them in an editor.
#[test]
fn the_schema_accepts_what_the_loader_accepts() {
    let v = validator();
    let r = with_rules;
    let cases = [
        ("no rules", format!("{HEAD}rules:\n")),
        ("empty rule list", format!("{HEAD}rules: []\n")),
        ("empty tool catalog", format!("{HEAD}tools:\n")),
        (
            "tool without metadata",
            format!("{HEAD}tools:\n  a:\n  b: {{}}\n  c: {{args: {{}}}}\n"),
        ),
        ("empty include list", format!("{HEAD}include: []\n")),
        (
            "minimal",
            "version: warden/v1\ndefault: allow\n".to_string(),
        ),
        (
            "empty match",
            r("  - id: r\n    match: {}\n    verdict: deny\n"),
        ),
        (
            "repeated point",
            r("  - id: r\n    on: [output, output]\n    verdict: deny\n"),
        ),
        (
            "approval without approvers",
            r("  - id: r\n    verdict: require_approval\n    approvers: []\n"),
        ),
        (
            "wildcard transform path",
            r("  - id: r\n    verdict: transform\n    transform: [{path: '*', redact: true}]\n"),
        ),
        (
            "replace with null",
            r("  - id: r\n    verdict: transform\n    transform: [{path: a, replace: ~}]\n"),
        ),
        (
            "ring 0..0",
            r("  - id: r\n    match: {ring: {min: 0, max: 0}}\n    verdict: deny\n"),
        ),
        (
            "yes/no are strings",
            r("  - id: r\n    match: {labels: [yes, no, on, off]}\n    verdict: deny\n"),
        ),
        ("identity short form", format!("{HEAD}identity: required\n")),
        ("identity optional", format!("{HEAD}identity: optional\n")),
        ("empty identity", format!("{HEAD}identity: {{}}\n")),
        ("empty rings", format!("{HEAD}rings: {{}}\n")),
        ("empty limits", format!("{HEAD}limits:\n")),
        ("empty tool limits", format!("{HEAD}limits: {{tools: }}\n")),
        (
            "longest window",
            format!("{HEAD}limits: {{agents: {{calls: 1000000000, per: 7d}}}}\n"),
        ),
        (
            "add_labels as one label",
            r("  - id: r\n    verdict: warn\n    add_labels: secret\n"),
        ),
        (
            "longest id",
            r(&format!("  - id: {}\n    verdict: deny\n", "a".repeat(128))),
        ),
    ];
    for (what, text) in cases {
        assert!(
            loader_errors(&text).is_empty(),
            "{what}: {:?}",
            loader_errors(&text)
        );
        let errors = schema_errors(&v, &yaml_to_json(&text));
        assert!(
            errors.is_empty(),
            "{what}: the schema rejects what the loader accepts: {errors:?}"
        );
    }
}

/// What only the loader can check: the schema accepts these, the loader does
/// not. (Move a case to `broken_policies` if the schema learns to reject it.)
#[test]
fn the_loader_catches_what_a_schema_cannot() {
    let v = validator();
    let r = with_rules;
    let cases = [
        (
            "invalid tool glob",
            r("  - id: r\n    match: {tool: 'a['}\n    verdict: deny\n"),
            "invalid tool pattern",
        ),
        (
            "invalid agent glob",
            r("  - id: r\n    match: {agent: 'a['}\n    verdict: deny\n"),
            "invalid agent pattern",
        ),
        (
            "CEL syntax error",
            r("  - id: r\n    when: 'a +'\n    verdict: deny\n"),
            "invalid CEL",
        ),
        (
            "duplicate rule id",
            r("  - id: r\n    verdict: deny\n  - id: r\n    verdict: allow\n"),
            "duplicate rule id 'r'",
        ),
        (
            "ring min above max",
            r("  - id: r\n    match: {ring: {min: 3, max: 1}}\n    verdict: deny\n"),
            "can never hold",
        ),
        (
            "include outside the directory",
            format!("{HEAD}include: ../x.yaml\n"),
            "outside the directory",
        ),
        (
            "ring 2 threshold above ring 1",
            format!("{HEAD}rings: {{ring2: 950, ring1: 900}}\n"),
            "is above rings.ring1",
        ),
        (
            "window over seven days",
            format!("{HEAD}limits: {{agents: {{calls: 1, per: 8d}}}}\n"),
            "invalid per '8d'",
        ),
        (
            "invalid tool glob in limits",
            format!("{HEAD}limits: {{tools: {{'db.[': {{per_session: 1}}}}}}\n"),
            "invalid tool pattern 'db.['",
        ),
        (
            "did:key with a bad key",
            format!(
                "{HEAD}identity: {{issuers: [did:key:z6Mk1111111111111111111111111111111111111111111]}}\n"
            ),
            "invalid issuer",
        ),
    ];
    for (what, text, loader_says) in cases {
        let errors = loader_errors(&text);
        assert!(
            errors.iter().any(|e| e.contains(loader_says)),
            "{what}: {errors:?}"
        );
        assert!(
            v.is_valid(&yaml_to_json(&text)),
            "{what}: now rejected by the schema too"
        );
    }
}

/// Every feature of the language except `include:`.
const EVERYTHING: &str = r#"
version: warden/v1
name: everything
default: allow
identity:
  required: false
  issuers: [did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp]
  signed_requests: optional
rings: {ring2: 600, ring1: 900, ring1_requires_approval: true}
limits:
  agents: {calls: 600, per: 1m, per_session: 2000}
  tools:
    email.send: {calls: 10, per: 1h, per_session: 20}
    "db.*": {calls: 100, per: 30s}
    fs.write: {per_session: 5}
    "admin.*": {calls: 1, per: 7d}
tools:
  db.query:
    description: Run a read query.
    labels: [pii, customer]
    args: {sql: sql, note: text}
  shell.run:
    labels: exec
    args: {cmd: shell, cwd: path, target: url, input: auto}
  ticket.create:
  admin.reset_password: {}
rules:
  - id: defaults-only
    verdict: allow
  - id: every-point
    description: Applies everywhere.
    on:
      - agent_startup
      - input
      - pre_model_call
      - post_model_call
      - pre_tool_call
      - post_tool_call
      - output
      - agent_shutdown
      - message
      - delegation
    verdict: warn
    reason: logged
  - id: single-point
    on: output
    match: {labels: pii}
    verdict: warn
  - id: all-matchers
    on: [pre_tool_call, post_tool_call]
    match:
      tool: "db.*"
      agent: "did:key:*"
      ring: {min: 1, max: 3}
      labels: [pii, customer]
      intents: [destructive, privilege_escalation]
    when: args.limit > 1000 && "pii" in labels
    verdict: deny
  - id: set-forms
    match:
      tool: [db.query, "shell.*", "admin.{reset,delete}_*"]
      agent: did:key:z6MkExample
      ring: {max: 0}
      labels: {all: [a, b]}
      intents: {any: [exfiltration, code_execution, credential_access, persistence]}
    verdict: deny
  - id: more-set-forms
    match:
      ring: {min: 2}
      labels: {any: x}
      intents: {all: read_only}
    verdict: allow
  - id: single-intent
    match: {intents: unknown}
    verdict: require_approval
    approvers: security@example.com
  - id: approval
    match: {tool: db.execute}
    verdict: require_approval
    reason: reviewed
    approvers: [dba@example.com, security@example.com]
  - id: approval-without-approvers
    match: {tool: db.migrate}
    verdict: require_approval
  - id: rewrite
    match: {tool: ticket.create}
    when: has(args.password)
    verdict: transform
    reason: redacted
    transform:
      - {path: password, redact: true}
      - {path: headers.authorization, replace: "Bearer ***"}
      - {path: "messages.*.body", replace: {kept: false, n: 1}}
      - {path: recipients.0, replace: ~}
      - {path: limit, replace: 100}
  - id: hide-admin
    match: {tool: "admin.*"}
    visibility: hidden
    verdict: deny
  - id: visible
    match: {tool: ticket.create}
    visibility: visible
    verdict: allow
  - id: with-identity
    match: {tool: ticket.close}
    identity: required
    verdict: allow
  - id: without-identity
    match: {tool: ticket.read}
    identity: optional
    verdict: allow
    add_labels: [customer, pii]
  - id: labels-on-approval
    match: {tool: crm.export}
    verdict: require_approval
    add_labels: exported
  - id: "ns:dotted.id_with-chars"
    verdict: allow
"#;

#[test]
fn a_policy_using_every_feature_validates_and_loads() {
    let text = EVERYTHING;
    let errors = schema_errors(&validator(), &yaml_to_json(text));
    assert!(errors.is_empty(), "schema errors:\n{}", errors.join("\n"));
    let policy = parse("p.yaml", text).and_then(compile);
    if let Err(e) = policy {
        panic!("the loader rejects it:\n{e}");
    }
    let loaded = parse("p.yaml", text).expect("loads");
    assert_eq!(loaded.rules.len(), 16);
    assert!(loaded.rules.iter().any(|r| !r.add_labels.is_empty()));
    assert!(loaded.limits.agents.is_some());
    assert_eq!(loaded.limits.tools.len(), 4);
    assert!(loaded.rules.iter().any(|r| r.identity_required));
    assert_eq!(loaded.identity.issuers.len(), 1);
    assert_eq!(loaded.tools.len(), 4);
}

/// Reads `$defs.NAME.enum` as strings.
fn schema_enum(schema: &Value, name: &str) -> Vec<String> {
    schema["$defs"][name]["enum"]
        .as_array()
        .unwrap_or_else(|| panic!("$defs.{name}.enum is missing"))
        .iter()
        .map(|v| v.as_str().expect("string enum").to_string())
        .collect()
}

#[test]
fn the_schema_enums_match_the_loader() {
    let schema = schema_json();
    let strings = |names: &[&str]| names.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(schema_enum(&schema, "verdict"), strings(Verdict::NAMES));
    assert_eq!(schema_enum(&schema, "point"), strings(Point::NAMES));
    assert_eq!(schema_enum(&schema, "intent"), strings(KNOWN_INTENTS));
    assert_eq!(schema_enum(&schema, "argKind"), strings(ARG_KINDS));
}

/// Every property the schema declares has a description (editors show it on hover).
#[test]
fn every_property_has_a_description() {
    fn walk(node: &Value, at: &str, missing: &mut Vec<String>) {
        match node {
            Value::Object(map) => {
                if let Some(Value::Object(props)) = map.get("properties") {
                    for (name, prop) in props {
                        let has = prop
                            .get("description")
                            .and_then(Value::as_str)
                            .is_some_and(|d| !d.trim().is_empty());
                        // Properties inside `if`/`not` only constrain; they are not documentation.
                        if !has
                            && !at.contains("/if")
                            && !at.contains("/not")
                            && !at.contains("/then")
                        {
                            missing.push(format!("{at}/properties/{name}"));
                        }
                    }
                }
                for (k, v) in map {
                    walk(v, &format!("{at}/{k}"), missing);
                }
            }
            Value::Array(items) => {
                for (i, v) in items.iter().enumerate() {
                    walk(v, &format!("{at}/{i}"), missing);
                }
            }
            _ => {}
        }
    }
    let mut missing = Vec::new();
    walk(&schema_json(), "#", &mut missing);
    assert!(
        missing.is_empty(),
        "properties without a description: {missing:#?}"
    );
}
