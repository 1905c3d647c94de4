//! Reading `warden/v1` documents: YAML nodes to a [`Policy`], with every
//! problem reported at its place. The crate reads no files: the caller hands
//! in a [`Sources`] that returns the text of a (confined, relative) path.

use crate::diag::{Diagnostic, PolicyError, Pos, suggest};
use crate::limits::{
    MAX_CEL_LEN, MAX_INCLUDE_DEPTH, MAX_LIMIT_CALLS, MAX_POLICY_BYTES, MAX_TOOL_LIMITS,
};
use crate::model::*;
use crate::rate_limit::{Limit, Rate, ToolLimit, parse_window};
use crate::yaml::{self, Node, Value};
use std::collections::{BTreeMap, HashMap};

/// The only `version:` this crate reads.
pub const VERSION: &str = "warden/v1";

/// Intents a policy may name in `match.intents`: those the classifier
/// (`warden-intent`) reports. A name outside this list is a lint error: a
/// misspelt intent would silently never match.
pub const KNOWN_INTENTS: &[&str] = &[
    "destructive",
    "exfiltration",
    "privilege_escalation",
    "code_execution",
    "credential_access",
    "persistence",
    "write",
    "read_only",
    "unknown",
];

/// Where policy text comes from. Implemented by the caller (a directory on
/// disk, an embedded string, a test map); this crate never touches files.
pub trait Sources {
    /// The text of `path`. `path` is the root as given, or an include already
    /// resolved against its including file and confined to that file's directory.
    fn read(&self, path: &str) -> Result<String, String>;
}

/// In-memory sources: path → text.
#[derive(Debug, Clone, core::default::Default)]
pub struct MemorySources(pub BTreeMap<String, String>);

impl Sources for MemorySources {
    fn read(&self, path: &str) -> Result<String, String> {
        self.0
            .get(path)
            .cloned()
            .ok_or_else(|| "no such file".to_string())
    }
}

/// Loads the policy rooted at `root`, following `include:`s.
pub fn load(root: &str, sources: &dyn Sources) -> Result<Policy, PolicyError> {
    let mut loader = Loader {
        sources,
        diags: Vec::new(),
        stack: Vec::new(),
        loaded: Vec::new(),
        rule_ids: HashMap::new(),
        policy: Policy {
            name: String::new(),
            default: DefaultVerdict::Deny,
            rules: Vec::new(),
            tools: BTreeMap::new(),
            egress: None,
            audit: AuditSettings::default(),
            identity: IdentitySettings::default(),
            rings: warden_identity::RingThresholds::default(),
            limits: crate::Limits::default(),
            sources: Vec::new(),
        },
        default_seen: None,
        audit_seen: None,
        rings_seen: None,
        tool_origin: HashMap::new(),
        conditions: Vec::new(),
    };
    match sources.read(root) {
        Ok(text) => loader.file(root, &text, true),
        Err(e) => loader.diags.push(
            Diagnostic::new(root, Pos::default(), format!("cannot read policy: {e}"))
                .hint("check the path"),
        ),
    }
    if loader.diags.is_empty() {
        return Ok(loader.policy);
    }
    // The load failed, so `compile` will not run: check the conditions here
    // so one lint run reports every problem.
    let env = cel::Env::stdlib();
    for (id, when) in &loader.conditions {
        if let Err(d) = crate::compile::check_condition(&env, id, when) {
            loader.diags.push(d);
        }
    }
    // Report in source order: files in load order, then line and column.
    let order: Vec<String> = loader
        .policy
        .sources
        .iter()
        .map(|(f, _)| f.clone())
        .collect();
    loader.diags.sort_by_key(|d| {
        let file = order
            .iter()
            .position(|f| *f == d.file)
            .unwrap_or(usize::MAX);
        (file, d.line, d.column)
    });
    Err(PolicyError {
        diagnostics: loader.diags,
    })
}

/// Parses a single policy text that has no `include:`s.
pub fn parse(file: &str, text: &str) -> Result<Policy, PolicyError> {
    let mut map = BTreeMap::new();
    map.insert(file.to_string(), text.to_string());
    load(file, &MemorySources(map))
}

/// Resolves `include` written in `from` to a path next to or below `from`'s directory.
pub fn resolve_include(from: &str, include: &str) -> Result<String, String> {
    if include.is_empty() {
        return Err("empty include path".into());
    }
    if include.starts_with('/') || include.contains('\\') || include.contains('\0') {
        return Err(format!("include '{include}' must be a relative path"));
    }
    let mut parts: Vec<&str> = Vec::new();
    for seg in include.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(format!(
                        "include '{include}' is outside the directory of '{from}'"
                    ));
                }
            }
            s => parts.push(s),
        }
    }
    if parts.is_empty() {
        return Err(format!("include '{include}' names no file"));
    }
    let dir = match from.rfind('/') {
        Some(i) => &from[..=i],
        None => "",
    };
    Ok(format!("{dir}{}", parts.join("/")))
}

struct Loader<'s> {
    sources: &'s dyn Sources,
    diags: Vec<Diagnostic>,
    /// Files being loaded, outermost first (for cycle detection).
    stack: Vec<String>,
    /// Files already loaded (a file included twice is read once).
    loaded: Vec<String>,
    rule_ids: HashMap<String, Origin>,
    policy: Policy,
    default_seen: Option<(DefaultVerdict, String)>,
    audit_seen: Option<(AuditSettings, String)>,
    rings_seen: Option<(warden_identity::RingThresholds, String)>,
    tool_origin: HashMap<String, String>,
    /// Every `when:` seen, so a failed load can still report CEL errors.
    conditions: Vec<(String, crate::model::Spanned<String>)>,
}

/// Field access for one mapping, collecting unknown-field errors.
struct Fields<'n> {
    entries: Vec<(&'n str, &'n Node, &'n Node)>,
}

impl<'n> Fields<'n> {
    fn get(&self, name: &str) -> Option<&'n Node> {
        self.entries
            .iter()
            .find(|(k, _, _)| *k == name)
            .map(|(_, _, v)| *v)
    }
}

impl Loader<'_> {
    fn err(&mut self, file: &str, pos: Pos, msg: impl Into<String>) {
        self.diags.push(Diagnostic::new(file, pos, msg));
    }

    fn file(&mut self, file: &str, text: &str, is_root: bool) {
        if text.len() > MAX_POLICY_BYTES {
            self.err(
                file,
                Pos::default(),
                format!(
                    "policy is {} bytes; the limit is {MAX_POLICY_BYTES}",
                    text.len()
                ),
            );
            return;
        }
        self.stack.push(file.to_string());
        self.loaded.push(file.to_string());
        self.policy
            .sources
            .push((file.to_string(), text.to_string()));
        match yaml::parse(file, text) {
            Ok(root) => self.document(file, &root, is_root),
            Err(e) => self.diags.extend(e.diagnostics),
        }
        self.stack.pop();
    }

    fn mapping<'n>(
        &mut self,
        file: &str,
        node: &'n Node,
        what: &str,
        allowed: &[&str],
    ) -> Option<Fields<'n>> {
        let Value::Map(entries) = &node.value else {
            self.err(
                file,
                node.pos,
                format!("expected a mapping for {what}, found {}", node.value.kind()),
            );
            return None;
        };
        let mut fields = Fields {
            entries: Vec::new(),
        };
        for (k, v) in entries {
            let Value::Str(name) = &k.value else {
                self.err(
                    file,
                    k.pos,
                    format!("keys in {what} must be strings, found {}", k.value.kind()),
                );
                continue;
            };
            if allowed.contains(&name.as_str()) {
                fields.entries.push((name, k, v));
            } else {
                let mut d =
                    Diagnostic::new(file, k.pos, format!("unknown field '{name}' in {what}"));
                d = match suggest(name, allowed) {
                    Some(s) => d.hint(format!("did you mean '{s}'?")),
                    None => d.hint(format!("expected one of: {}", allowed.join(", "))),
                };
                self.diags.push(d);
            }
        }
        Some(fields)
    }

    fn string(&mut self, file: &str, node: &Node, what: &str) -> Option<String> {
        match &node.value {
            Value::Str(s) => Some(s.clone()),
            other => {
                self.err(
                    file,
                    node.pos,
                    format!("expected a string for {what}, found {}", other.kind()),
                );
                None
            }
        }
    }

    /// One string or a list of strings.
    fn strings(&mut self, file: &str, node: &Node, what: &str) -> Vec<(String, Pos)> {
        match &node.value {
            Value::Str(s) => vec![(s.clone(), node.pos)],
            Value::Seq(items) => items
                .iter()
                .filter_map(|i| self.string(file, i, what).map(|s| (s, i.pos)))
                .collect(),
            other => {
                self.err(
                    file,
                    node.pos,
                    format!(
                        "expected a string or a list of strings for {what}, found {}",
                        other.kind()
                    ),
                );
                Vec::new()
            }
        }
    }

    fn document(&mut self, file: &str, root: &Node, is_root: bool) {
        const TOP: &[&str] = &[
            "version", "name", "default", "rules", "tools", "include", "egress", "audit",
            "identity", "rings", "limits",
        ];
        let Some(f) = self.mapping(file, root, "the policy", TOP) else {
            return;
        };
        match f.get("version") {
            None => self.diags.push(
                Diagnostic::new(file, root.pos, "missing 'version'")
                    .hint(format!("add 'version: {VERSION}'")),
            ),
            Some(v) => {
                if let Some(s) = self.string(file, v, "'version'")
                    && s != VERSION
                {
                    self.diags.push(
                        Diagnostic::new(file, v.pos, format!("unsupported version '{s}'"))
                            .hint(format!("this warden reads '{VERSION}'")),
                    );
                }
            }
        }
        if let Some(n) = f.get("name")
            && let Some(name) = self.string(file, n, "'name'")
            && is_root
        {
            self.policy.name = name;
        }
        self.default(file, root, f.get("default"), is_root);

        // Includes come first, so their rules precede this file's in rule order.
        if let Some(inc) = f.get("include") {
            for (path, pos) in self.strings(file, inc, "'include'") {
                self.include(file, &path, pos);
            }
        }
        if let Some(tools) = f.get("tools") {
            self.tools(file, tools);
        }
        if let Some(egress) = f.get("egress") {
            self.egress(file, egress);
        }
        if let Some(audit) = f.get("audit") {
            self.audit(file, audit);
        }
        if let Some(identity) = f.get("identity") {
            self.identity(file, identity);
        }
        if let Some(rings) = f.get("rings") {
            self.rings(file, rings);
        }
        if let Some(limits) = f.get("limits") {
            self.limits(file, limits);
        }
        if let Some(rules) = f.get("rules") {
            match &rules.value {
                Value::Seq(items) => {
                    for item in items {
                        if let Some(rule) = self.rule(file, item) {
                            self.policy.rules.push(rule);
                        }
                    }
                }
                Value::Null => {}
                other => self.err(
                    file,
                    rules.pos,
                    format!("expected a list for 'rules', found {}", other.kind()),
                ),
            }
        }
    }

    fn default(&mut self, file: &str, root: &Node, node: Option<&Node>, is_root: bool) {
        let Some(node) = node else {
            if is_root {
                self.diags.push(
                    Diagnostic::new(file, root.pos, "missing 'default'")
                        .hint("a policy must say what happens when no rule matches: add 'default: deny' or 'default: allow'"),
                );
            }
            return;
        };
        let Some(s) = self.string(file, node, "'default'") else {
            return;
        };
        let value = match s.as_str() {
            "allow" => DefaultVerdict::Allow,
            "deny" => DefaultVerdict::Deny,
            other => {
                let mut d = Diagnostic::new(
                    file,
                    node.pos,
                    format!("invalid default '{other}': expected 'allow' or 'deny'"),
                );
                if let Some(s) = suggest(other, &["allow", "deny"]) {
                    d = d.hint(format!("did you mean '{s}'?"));
                }
                self.diags.push(d);
                return;
            }
        };
        match &self.default_seen {
            None => {
                self.default_seen = Some((value, file.to_string()));
                self.policy.default = value;
            }
            Some((seen, seen_file)) if *seen != value => {
                let msg = format!(
                    "conflicting default: '{}' here, but '{}' in {seen_file}",
                    value.verdict(),
                    seen.verdict()
                );
                self.err(file, node.pos, msg);
            }
            Some(_) => {}
        }
    }

    /// `egress:` — host names and `*.domain` wildcards. Lists from every file
    /// are merged; an empty list allows no host.
    fn egress(&mut self, file: &str, node: &Node) {
        if !matches!(node.value, Value::Seq(_)) {
            let kind = node.value.kind();
            self.diags.push(
                Diagnostic::new(
                    file,
                    node.pos,
                    format!("expected a list for 'egress', found {kind}"),
                )
                .hint("write 'egress: [api.example.com, \"*.example.org\"]'"),
            );
            return;
        }
        let mut allowed = self.policy.egress.take().unwrap_or_default();
        for (entry, pos) in self.strings(file, node, "'egress'") {
            match warden_intent::Egress::new([entry.as_str()]) {
                Ok(_) if allowed.contains(&entry) => {}
                Ok(_) => allowed.push(entry),
                Err(e) => self.err(file, pos, e.to_string()),
            }
        }
        self.policy.egress = Some(allowed);
    }

    /// `audit: {arguments: full|hash}`. Files that set it must agree.
    fn audit(&mut self, file: &str, node: &Node) {
        let Some(f) = self.mapping(file, node, "'audit'", &["arguments"]) else {
            return;
        };
        let mut settings = AuditSettings::default();
        if let Some(a) = f.get("arguments") {
            let Some(s) = self.string(file, a, "'audit.arguments'") else {
                return;
            };
            settings.arguments = match s.as_str() {
                "full" => AuditArguments::Full,
                "hash" => AuditArguments::Hash,
                other => {
                    let mut d = Diagnostic::new(
                        file,
                        a.pos,
                        format!("invalid audit.arguments '{other}': expected 'full' or 'hash'"),
                    );
                    if let Some(s) = suggest(other, &["full", "hash"]) {
                        d = d.hint(format!("did you mean '{s}'?"));
                    }
                    self.diags.push(d);
                    return;
                }
            };
        }
        match &self.audit_seen {
            None => {
                self.audit_seen = Some((settings, file.to_string()));
                self.policy.audit = settings;
            }
            Some((seen, seen_file)) if *seen != settings => {
                let msg = format!(
                    "conflicting audit settings: arguments '{}' here, but '{}' in {seen_file}",
                    settings.arguments.as_str(),
                    seen.arguments.as_str()
                );
                self.err(file, node.pos, msg);
            }
            Some(_) => {}
        }
    }

    /// `identity: required`, or `identity: {required, issuers, signed_requests}`.
    /// Files merge towards the stricter: any file may require identity or
    /// signatures, and the trusted issuers are the union of every file's.
    fn identity(&mut self, file: &str, node: &Node) {
        if let Value::Str(s) = &node.value {
            match s.as_str() {
                "required" => self.policy.identity.required = true,
                "optional" => {}
                other => {
                    let mut d = Diagnostic::new(
                        file,
                        node.pos,
                        format!("invalid identity '{other}': expected 'required' or 'optional'"),
                    );
                    d = match suggest(other, &["required", "optional"]) {
                        Some(s) => d.hint(format!("did you mean '{s}'?")),
                        None => {
                            d.hint("or write 'identity: {required: true, issuers: [did:key:…]}'")
                        }
                    };
                    self.diags.push(d);
                }
            }
            return;
        }
        let Some(f) = self.mapping(
            file,
            node,
            "'identity'",
            &["required", "issuers", "signed_requests"],
        ) else {
            return;
        };
        if let Some(r) = f.get("required") {
            match r.value {
                Value::Bool(b) => self.policy.identity.required |= b,
                _ => self.diags.push(
                    Diagnostic::new(
                        file,
                        r.pos,
                        format!(
                            "expected true or false for 'identity.required', found {}",
                            r.value.kind()
                        ),
                    )
                    .hint("write 'required: true'"),
                ),
            }
        }
        if let Some(list) = f.get("issuers") {
            if !matches!(list.value, Value::Seq(_)) {
                let kind = list.value.kind();
                self.diags.push(
                    Diagnostic::new(
                        file,
                        list.pos,
                        format!("expected a list for 'identity.issuers', found {kind}"),
                    )
                    .hint("write 'issuers: [did:key:z6Mk…]'"),
                );
            } else {
                for (text, pos) in self.strings(file, list, "'identity.issuers'") {
                    match warden_identity::Did::parse(&text) {
                        Ok(did) if self.policy.identity.issuers.contains(&did) => {}
                        Ok(did) => self.policy.identity.issuers.push(did),
                        Err(e) => self.err(file, pos, format!("invalid issuer: {e}")),
                    }
                }
            }
        }
        if let Some(n) = f.get("signed_requests")
            && let Some(s) = self.string(file, n, "'identity.signed_requests'")
        {
            match s.as_str() {
                "required" => self.policy.identity.signed_requests = SignedRequests::Required,
                "optional" => {}
                other => {
                    let mut d = Diagnostic::new(
                        file,
                        n.pos,
                        format!(
                            "invalid identity.signed_requests '{other}': expected 'required' or 'optional'"
                        ),
                    );
                    if let Some(s) = suggest(other, &["required", "optional"]) {
                        d = d.hint(format!("did you mean '{s}'?"));
                    }
                    self.diags.push(d);
                }
            }
        }
    }

    /// `rings: {ring2: 600, ring1: 900, ring1_requires_approval: true}`;
    /// unset fields keep their defaults. Files that set it must agree.
    fn rings(&mut self, file: &str, node: &Node) {
        const FIELDS: &[&str] = &["ring2", "ring1", "ring1_requires_approval"];
        let Some(f) = self.mapping(file, node, "'rings'", FIELDS) else {
            return;
        };
        let before = self.diags.len();
        let mut rings = warden_identity::RingThresholds::default();
        let score = |this: &mut Self, name: &str, slot: &mut u16| {
            let Some(n) = f.get(name) else { return };
            match n.value {
                Value::Int(i)
                    if (0..=i64::from(warden_identity::trust::MAX_TRUST)).contains(&i) =>
                {
                    *slot = i as u16
                }
                Value::UInt(u) if u <= u64::from(warden_identity::trust::MAX_TRUST) => {
                    *slot = u as u16
                }
                _ => this.diags.push(
                    Diagnostic::new(
                        file,
                        n.pos,
                        format!("invalid rings.{name} '{}'", n.scalar_text()),
                    )
                    .hint("a trust score is an integer from 0 to 1000"),
                ),
            }
        };
        score(self, "ring2", &mut rings.ring2);
        score(self, "ring1", &mut rings.ring1);
        if let Some(n) = f.get("ring1_requires_approval") {
            match n.value {
                Value::Bool(b) => rings.ring1_requires_approval = b,
                _ => self.err(
                    file,
                    n.pos,
                    format!(
                        "expected true or false for 'rings.ring1_requires_approval', found {}",
                        n.value.kind()
                    ),
                ),
            }
        }
        if self.diags.len() > before {
            return;
        }
        if let Err(e) = rings.validate() {
            // Point at the field the error names, or at the section.
            let at = e
                .field
                .strip_prefix("rings.")
                .and_then(|name| f.get(name))
                .map_or(node.pos, |n| n.pos);
            self.err(file, at, e.to_string());
            return;
        }
        match &self.rings_seen {
            None => {
                self.rings_seen = Some((rings.clone(), file.to_string()));
                self.policy.rings = rings;
            }
            Some((seen, seen_file)) if *seen != rings => {
                let msg = format!(
                    "conflicting rings: ring2 {}, ring1 {} here, but ring2 {}, ring1 {} in {seen_file}",
                    rings.ring2, rings.ring1, seen.ring2, seen.ring1
                );
                self.err(file, node.pos, msg);
            }
            Some(_) => {}
        }
    }

    /// `limits: {agents: LIMIT, tools: {GLOB: LIMIT, ...}}`. When files limit
    /// the same thing (`agents`, or the same glob as written), the limits
    /// merge towards the stricter: the fewer `calls` over the longer `per`,
    /// and the smaller `per_session`.
    fn limits(&mut self, file: &str, node: &Node) {
        if node.value == Value::Null {
            return;
        }
        let Some(f) = self.mapping(file, node, "'limits'", &["agents", "tools"]) else {
            return;
        };
        if let Some(n) = f.get("agents")
            && let Some(limit) = self.limit(file, n, "'limits.agents'")
        {
            let merged = match self.policy.limits.agents {
                Some(seen) => seen.stricter(limit),
                None => limit,
            };
            self.policy.limits.agents = Some(merged);
        }
        let Some(tools) = f.get("tools") else {
            return;
        };
        let entries = match &tools.value {
            Value::Map(entries) => entries,
            Value::Null => return,
            other => {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        tools.pos,
                        format!(
                            "expected a mapping for 'limits.tools', found {}",
                            other.kind()
                        ),
                    )
                    .hint("write 'tools: {email.send: {calls: 10, per: 1h}}'"),
                );
                return;
            }
        };
        for (k, v) in entries {
            let Some(pattern) = self.string(file, k, "a tool pattern in 'limits.tools'") else {
                continue;
            };
            let what = format!("the limit of tool '{pattern}'");
            if pattern.is_empty() {
                self.err(file, k.pos, "empty tool pattern in 'limits.tools'");
                continue;
            }
            let Some(limit) = self.limit(file, v, &what) else {
                continue;
            };
            let tools = &mut self.policy.limits.tools;
            if let Some(seen) = tools.iter_mut().find(|t| t.tool == pattern) {
                seen.limit = seen.limit.stricter(limit);
                continue;
            }
            if tools.len() >= MAX_TOOL_LIMITS {
                self.err(
                    file,
                    k.pos,
                    format!("'limits.tools' names more than {MAX_TOOL_LIMITS} tool patterns"),
                );
                return;
            }
            match ToolLimit::new(pattern.clone(), limit) {
                Ok(t) => tools.push(t),
                Err(e) => self.err(
                    file,
                    k.pos,
                    format!(
                        "invalid tool pattern '{pattern}' in 'limits.tools': {}",
                        e.kind()
                    ),
                ),
            }
        }
    }

    /// One limit: `{calls: N, per: WINDOW}`, `{per_session: N}`, or all three.
    fn limit(&mut self, file: &str, node: &Node, what: &str) -> Option<Limit> {
        const EXAMPLE: &str = "e.g. '{calls: 100, per: 1m}', '{per_session: 500}' or both";
        if node.value == Value::Null {
            self.diags.push(
                Diagnostic::new(file, node.pos, format!("{what} sets no limit")).hint(format!(
                    "give 'calls' and 'per', 'per_session', or all three: {EXAMPLE}"
                )),
            );
            return None;
        }
        let f = self.mapping(file, node, what, &["calls", "per", "per_session"])?;
        let before = self.diags.len();
        let calls = f
            .get("calls")
            .and_then(|n| self.count(file, n, "calls", what));
        let per = f.get("per").and_then(|n| {
            let text = self.string(file, n, "'per'")?;
            match parse_window(&text) {
                Ok(d) => Some(d),
                Err(why) => {
                    self.diags.push(
                        Diagnostic::new(file, n.pos, format!("invalid per '{text}' in {what}"))
                            .hint(why),
                    );
                    None
                }
            }
        });
        let per_session = f
            .get("per_session")
            .and_then(|n| self.count(file, n, "per_session", what));
        match (f.get("calls"), f.get("per"), f.get("per_session")) {
            (Some(_), None, _) => self.diags.push(
                Diagnostic::new(file, node.pos, format!("{what} has 'calls' but no 'per'"))
                    .hint("'calls' counts calls per window: add e.g. 'per: 1m'"),
            ),
            (None, Some(_), _) => self.diags.push(
                Diagnostic::new(file, node.pos, format!("{what} has 'per' but no 'calls'"))
                    .hint("say how many calls each window allows: add e.g. 'calls: 100'"),
            ),
            (None, None, None) => self.diags.push(
                Diagnostic::new(file, node.pos, format!("{what} sets no limit")).hint(format!(
                    "give 'calls' and 'per', 'per_session', or all three: {EXAMPLE}"
                )),
            ),
            _ => {}
        }
        if self.diags.len() > before {
            return None;
        }
        let rate = match (calls, per) {
            (Some(calls), Some(per)) => Some(Rate { calls, per }),
            _ => None,
        };
        Some(Limit { rate, per_session })
    }

    /// A count in a limit: a whole number from 1 to [`MAX_LIMIT_CALLS`].
    fn count(&mut self, file: &str, node: &Node, field: &str, what: &str) -> Option<u64> {
        match node.value {
            Value::Int(i) if (1..=MAX_LIMIT_CALLS as i64).contains(&i) => Some(i as u64),
            Value::UInt(u) if (1..=MAX_LIMIT_CALLS).contains(&u) => Some(u),
            _ => {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        node.pos,
                        format!("invalid {field} '{}' in {what}", node.scalar_text()),
                    )
                    .hint(format!(
                        "'{field}' is a whole number from 1 to {MAX_LIMIT_CALLS}"
                    )),
                );
                None
            }
        }
    }

    fn include(&mut self, from: &str, path: &str, pos: Pos) {
        let target = match resolve_include(from, path) {
            Ok(t) => t,
            Err(msg) => {
                self.diags.push(
                    Diagnostic::new(from, pos, msg)
                        .hint("includes must stay in the including file's directory"),
                );
                return;
            }
        };
        if self.stack.contains(&target) {
            let chain = self.stack.join(" -> ");
            self.err(from, pos, format!("include cycle: {chain} -> {target}"));
            return;
        }
        if self.loaded.contains(&target) {
            return;
        }
        if self.stack.len() >= MAX_INCLUDE_DEPTH {
            self.err(
                from,
                pos,
                format!("includes nest deeper than {MAX_INCLUDE_DEPTH} files"),
            );
            return;
        }
        match self.sources.read(&target) {
            Ok(text) => self.file(&target, &text, false),
            Err(e) => self.err(from, pos, format!("cannot read include '{target}': {e}")),
        }
    }

    fn tools(&mut self, file: &str, node: &Node) {
        let Value::Map(entries) = &node.value else {
            if node.value != Value::Null {
                self.err(
                    file,
                    node.pos,
                    format!(
                        "expected a mapping for 'tools', found {}",
                        node.value.kind()
                    ),
                );
            }
            return;
        };
        for (k, v) in entries {
            let Some(name) = self.string(file, k, "a tool name") else {
                continue;
            };
            let what = format!("tool '{name}'");
            let mut spec = ToolSpec::default();
            if v.value != Value::Null {
                let Some(f) = self.mapping(
                    file,
                    v,
                    &what,
                    &["description", "labels", "args", "findings"],
                ) else {
                    continue;
                };
                if let Some(d) = f.get("description") {
                    spec.description = self.string(file, d, "'description'");
                }
                if let Some(l) = f.get("labels") {
                    spec.labels = self
                        .strings(file, l, "'labels'")
                        .into_iter()
                        .map(|(s, _)| s)
                        .collect();
                }
                if let Some(a) = f.get("args") {
                    spec.args = self.arg_kinds(file, a, &what);
                }
                if let Some(n) = f.get("findings") {
                    match self.string(file, n, "'findings'").as_deref() {
                        Some("allow") => spec.findings_allowed = true,
                        Some("hide") | None => {}
                        Some(other) => self.err(
                            file,
                            n.pos,
                            format!(
                                "invalid findings '{other}' in {what} (expected 'allow' or 'hide')"
                            ),
                        ),
                    }
                }
            }
            if let Some(prev) = self.policy.tools.get(&name) {
                if *prev != spec {
                    let first = self.tool_origin.get(&name).cloned().unwrap_or_default();
                    self.err(
                        file,
                        k.pos,
                        format!("tool '{name}' is described differently in {first}"),
                    );
                }
                continue;
            }
            self.tool_origin.insert(name.clone(), file.to_string());
            self.policy.tools.insert(name, spec);
        }
    }

    fn arg_kinds(&mut self, file: &str, node: &Node, what: &str) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        let Value::Map(entries) = &node.value else {
            self.err(
                file,
                node.pos,
                format!(
                    "expected a mapping of argument kinds for {what}, found {}",
                    node.value.kind()
                ),
            );
            return out;
        };
        for (k, v) in entries {
            let (Some(arg), Some(kind)) = (
                self.string(file, k, "an argument name"),
                self.string(file, v, "an argument kind"),
            ) else {
                continue;
            };
            if !ARG_KINDS.contains(&kind.as_str()) {
                let mut d = Diagnostic::new(
                    file,
                    v.pos,
                    format!("unknown argument kind '{kind}' in {what}"),
                );
                d = match suggest(&kind, ARG_KINDS) {
                    Some(s) => d.hint(format!("did you mean '{s}'?")),
                    None => d.hint(format!("expected one of: {}", ARG_KINDS.join(", "))),
                };
                self.diags.push(d);
                continue;
            }
            out.insert(arg, kind);
        }
        out
    }

    fn rule(&mut self, file: &str, node: &Node) -> Option<Rule> {
        const FIELDS: &[&str] = &[
            "id",
            "description",
            "on",
            "match",
            "when",
            "verdict",
            "reason",
            "approvers",
            "transform",
            "visibility",
            "identity",
            "add_labels",
        ];
        // Name the rule in messages about its own fields, so find the id first.
        let id = match &node.value {
            Value::Map(entries) => entries
                .iter()
                .find_map(|(k, v)| match (&k.value, &v.value) {
                    (Value::Str(k), Value::Str(v)) if k == "id" => Some(v.clone()),
                    _ => None,
                }),
            _ => None,
        };
        let what = match &id {
            Some(id) => format!("rule '{id}'"),
            None => "a rule".to_string(),
        };
        let errors_before = self.diags.len();
        let f = self.mapping(file, node, &what, FIELDS)?;
        let origin = Origin {
            file: file.to_string(),
            line: node.pos.line,
        };
        let id = match (f.get("id"), id) {
            (Some(_), Some(id)) if valid_id(&id) => id,
            (Some(n), Some(id)) => {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        n.pos,
                        format!("invalid rule id '{}'", id.escape_debug()),
                    )
                    .hint("use letters, digits, '-', '_', '.' or ':'"),
                );
                return None;
            }
            (Some(n), None) => {
                self.string(file, n, "'id'");
                return None;
            }
            (None, _) => {
                self.diags.push(
                    Diagnostic::new(file, node.pos, "rule without 'id'")
                        .hint("every rule needs a unique 'id'"),
                );
                return None;
            }
        };
        if let Some(first) = self.rule_ids.get(&id) {
            let msg = format!(
                "duplicate rule id '{id}' (first defined at {}:{})",
                first.file, first.line
            );
            self.err(file, f.get("id").map_or(node.pos, |n| n.pos), msg);
        } else {
            self.rule_ids.insert(id.clone(), origin.clone());
        }

        let verdict = match f.get("verdict") {
            None => {
                self.diags.push(
                    Diagnostic::new(file, node.pos, format!("missing 'verdict' in {what}"))
                        .hint(format!("expected one of: {}", Verdict::NAMES.join(", "))),
                );
                None
            }
            Some(v) => self.enum_value::<Verdict>(file, v, "verdict", &what),
        };

        let on = match f.get("on") {
            None => vec![Point::PreToolCall],
            Some(n) => {
                let names = self.strings(file, n, "'on'");
                if names.is_empty() {
                    self.err(
                        file,
                        n.pos,
                        format!("'on' in {what} names no intervention point"),
                    );
                }
                let mut points = Vec::new();
                for (name, pos) in names {
                    let node = Node {
                        value: Value::Str(name),
                        pos,
                    };
                    if let Some(p) =
                        self.enum_value::<Point>(file, &node, "intervention point", &what)
                        && !points.contains(&p)
                    {
                        points.push(p);
                    }
                }
                points
            }
        };

        let matcher = match f.get("match") {
            Some(m) => self.matcher(file, m, &what),
            None => Matcher::default(),
        };

        let when = f.get("when").and_then(|w| {
            let text = self.string(file, w, "'when'")?;
            if text.len() > MAX_CEL_LEN {
                self.err(
                    file,
                    w.pos,
                    format!(
                        "'when' in {what} is {} bytes; the limit is {MAX_CEL_LEN}",
                        text.len()
                    ),
                );
                return None;
            }
            let spanned = crate::model::Spanned {
                value: text,
                file: file.to_string(),
                line: w.pos.line,
                column: w.pos.column,
            };
            self.conditions.push((id.clone(), spanned.clone()));
            Some(spanned)
        });

        let description = f
            .get("description")
            .and_then(|n| self.string(file, n, "'description'"));
        let reason = f
            .get("reason")
            .and_then(|n| self.string(file, n, "'reason'"));
        let approvers: Vec<String> = f
            .get("approvers")
            .map(|n| {
                self.strings(file, n, "'approvers'")
                    .into_iter()
                    .map(|(s, _)| s)
                    .collect()
            })
            .unwrap_or_default();
        let transform = f
            .get("transform")
            .map(|n| self.transform(file, n, &what))
            .unwrap_or_default();
        let add_labels = f
            .get("add_labels")
            .map(|n| self.add_labels(file, n, &what))
            .unwrap_or_default();
        let hidden = match f.get("visibility") {
            None => false,
            Some(n) => match self.string(file, n, "'visibility'").as_deref() {
                Some("hidden") => true,
                Some("visible") => false,
                Some(other) => {
                    self.diags.push(
                        Diagnostic::new(
                            file,
                            n.pos,
                            format!("invalid visibility '{other}' in {what}"),
                        )
                        .hint("expected 'hidden' or 'visible'"),
                    );
                    false
                }
                None => false,
            },
        };

        let identity_required = match f.get("identity") {
            None => false,
            Some(n) => match self.string(file, n, "'identity'").as_deref() {
                Some("required") => true,
                Some("optional") => false,
                Some(other) => {
                    self.diags.push(
                        Diagnostic::new(
                            file,
                            n.pos,
                            format!("invalid identity '{other}' in {what}"),
                        )
                        .hint("expected 'required' or 'optional'"),
                    );
                    false
                }
                None => false,
            },
        };

        if let Some(v) = verdict {
            if v == Verdict::Transform && transform.is_empty() {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        node.pos,
                        format!("{what} has verdict 'transform' but no 'transform' list"),
                    )
                    .hint("add e.g. 'transform: [{path: password, redact: true}]'"),
                );
            }
            if v != Verdict::Transform && f.get("transform").is_some() {
                let pos = f.get("transform").map_or(node.pos, |n| n.pos);
                self.diags.push(
                    Diagnostic::new(
                        file,
                        pos,
                        format!("'transform' in {what} has no effect with verdict '{v}'"),
                    )
                    .hint("use 'verdict: transform' or remove 'transform'"),
                );
            }
            if v == Verdict::Deny
                && let Some(n) = f.get("add_labels")
            {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        n.pos,
                        format!("'add_labels' in {what} has no effect with verdict 'deny'"),
                    )
                    .hint("a denied action produces nothing to label: remove 'add_labels' or use another verdict"),
                );
            }
            if v != Verdict::RequireApproval && f.get("approvers").is_some() {
                let pos = f.get("approvers").map_or(node.pos, |n| n.pos);
                self.diags.push(
                    Diagnostic::new(
                        file,
                        pos,
                        format!("'approvers' in {what} has no effect with verdict '{v}'"),
                    )
                    .hint("use 'verdict: require_approval' or remove 'approvers'"),
                );
            }
        }
        if hidden && matcher.tools.is_empty() {
            self.diags.push(
                Diagnostic::new(file, node.pos, format!("{what} hides tools but names none"))
                    .hint("add 'match: {tool: ...}'"),
            );
        }

        if self.diags.len() > errors_before {
            return None;
        }
        Some(Rule {
            id: id.into(),
            description,
            on,
            matcher,
            when,
            verdict: verdict?,
            reason,
            approvers,
            transform,
            hidden,
            identity_required,
            add_labels,
            origin,
        })
    }

    /// `add_labels: LABEL` or `[LABEL, ...]`: non-empty names, kept once each.
    fn add_labels(&mut self, file: &str, node: &Node, what: &str) -> Vec<String> {
        let items = self.strings(file, node, "'add_labels'");
        if matches!(&node.value, Value::Seq(v) if v.is_empty()) {
            self.diags.push(
                Diagnostic::new(file, node.pos, format!("'add_labels' in {what} is empty"))
                    .hint("name the labels, e.g. 'add_labels: [pii]', or remove 'add_labels'"),
            );
        }
        let mut labels: Vec<String> = Vec::new();
        for (label, pos) in items {
            if label.is_empty() {
                self.err(file, pos, format!("empty label in 'add_labels' of {what}"));
            } else if !labels.contains(&label) {
                labels.push(label);
            }
        }
        labels
    }

    fn enum_value<T>(&mut self, file: &str, node: &Node, kind: &str, what: &str) -> Option<T>
    where
        T: std::str::FromStr + Copy + EnumNames,
    {
        let s = self.string(file, node, &format!("'{kind}'"))?;
        if let Ok(v) = s.parse::<T>() {
            return Some(v);
        }
        let mut d = Diagnostic::new(file, node.pos, format!("unknown {kind} '{s}' in {what}"));
        d = match suggest(&s, T::names()) {
            Some(x) => d.hint(format!("did you mean '{x}'?")),
            None => d.hint(format!("expected one of: {}", T::names().join(", "))),
        };
        self.diags.push(d);
        None
    }

    fn matcher(&mut self, file: &str, node: &Node, what: &str) -> Matcher {
        let mut m = Matcher::default();
        let mwhat = format!("'match' of {what}");
        let Some(f) = self.mapping(
            file,
            node,
            &mwhat,
            &["tool", "agent", "ring", "labels", "intents"],
        ) else {
            return m;
        };
        if let Some(t) = f.get("tool") {
            let before = self.diags.len();
            for (pat, pos) in self.strings(file, t, "'tool'") {
                if pat.is_empty() {
                    self.err(file, pos, format!("empty tool pattern in {what}"));
                } else if let Err(e) = crate::compile::check_glob(&pat) {
                    self.err(
                        file,
                        pos,
                        format!("invalid tool pattern '{pat}' in {what}: {}", e.kind()),
                    );
                } else {
                    m.tools.push(pat);
                }
            }
            if m.tools.is_empty() && self.diags.len() == before {
                self.err(file, t.pos, format!("'tool' in {what} names no tool"));
            }
        }
        if let Some(a) = f.get("agent")
            && let Some(pat) = self.string(file, a, "'agent'")
        {
            match crate::compile::check_glob(&pat) {
                Ok(()) => m.agent = Some(pat),
                Err(e) => self.err(
                    file,
                    a.pos,
                    format!("invalid agent pattern '{pat}' in {what}: {}", e.kind()),
                ),
            }
        }
        if let Some(r) = f.get("ring") {
            let rwhat = format!("'ring' of {what}");
            if let Some(rf) = self.mapping(file, r, &rwhat, &["min", "max"]) {
                m.ring_min = rf.get("min").and_then(|n| self.ring(file, n));
                m.ring_max = rf.get("max").and_then(|n| self.ring(file, n));
                if rf.get("min").is_none() && rf.get("max").is_none() {
                    self.diags.push(
                        Diagnostic::new(file, r.pos, format!("{rwhat} is empty"))
                            .hint("give 'min', 'max' or both, e.g. 'ring: {max: 1}'"),
                    );
                }
                if let (Some(lo), Some(hi)) = (m.ring_min, m.ring_max)
                    && lo > hi
                {
                    self.err(
                        file,
                        r.pos,
                        format!("{rwhat} can never hold: min {lo} > max {hi}"),
                    );
                }
            }
        }
        if let Some(l) = f.get("labels") {
            m.labels = self.set_match(file, l, "labels", what, None);
        }
        if let Some(i) = f.get("intents") {
            m.intents = self.set_match(file, i, "intents", what, Some(KNOWN_INTENTS));
        }
        m
    }

    fn ring(&mut self, file: &str, node: &Node) -> Option<u8> {
        match node.value {
            Value::Int(i) if (0..=3).contains(&i) => Some(i as u8),
            Value::UInt(u) if u <= 3 => Some(u as u8),
            _ => {
                self.diags.push(
                    Diagnostic::new(
                        file,
                        node.pos,
                        format!("invalid ring '{}'", node.scalar_text()),
                    )
                    .hint("rings are 0 (most privileged) to 3"),
                );
                None
            }
        }
    }

    fn set_match(
        &mut self,
        file: &str,
        node: &Node,
        field: &str,
        what: &str,
        known: Option<&[&str]>,
    ) -> SetMatch {
        let (items, any) = match &node.value {
            Value::Map(_) => {
                let swhat = format!("'{field}' of {what}");
                let Some(f) = self.mapping(file, node, &swhat, &["all", "any"]) else {
                    return SetMatch::Unset;
                };
                match (f.get("all"), f.get("any")) {
                    (Some(n), None) => (self.strings(file, n, &swhat), false),
                    (None, Some(n)) => (self.strings(file, n, &swhat), true),
                    _ => {
                        self.err(
                            file,
                            node.pos,
                            format!("{swhat} needs exactly one of 'all' or 'any'"),
                        );
                        return SetMatch::Unset;
                    }
                }
            }
            _ => (self.strings(file, node, &format!("'{field}'")), false),
        };
        if items.is_empty() {
            self.err(file, node.pos, format!("'{field}' in {what} is empty"));
        }
        if let Some(known) = known {
            for (item, pos) in &items {
                if !known.contains(&item.as_str()) {
                    let mut d =
                        Diagnostic::new(file, *pos, format!("unknown intent '{item}' in {what}"));
                    d = match suggest(item, known) {
                        Some(s) => d.hint(format!("did you mean '{s}'?")),
                        None => d.hint(format!("expected one of: {}", known.join(", "))),
                    };
                    self.diags.push(d);
                }
            }
        }
        let items = items.into_iter().map(|(s, _)| s).collect();
        if any {
            SetMatch::Any(items)
        } else {
            SetMatch::All(items)
        }
    }

    fn transform(&mut self, file: &str, node: &Node, what: &str) -> Vec<TransformOp> {
        let Value::Seq(items) = &node.value else {
            self.err(
                file,
                node.pos,
                format!(
                    "expected a list for 'transform' in {what}, found {}",
                    node.value.kind()
                ),
            );
            return Vec::new();
        };
        let mut ops = Vec::new();
        for item in items {
            let twhat = format!("a transform of {what}");
            let Some(f) = self.mapping(file, item, &twhat, &["path", "redact", "replace"]) else {
                continue;
            };
            let Some(path) = f.get("path").and_then(|n| self.string(file, n, "'path'")) else {
                if f.get("path").is_none() {
                    self.err(file, item.pos, format!("{twhat} has no 'path'"));
                }
                continue;
            };
            if let Err(msg) = crate::transform::check_path(&path) {
                self.err(
                    file,
                    f.get("path").map_or(item.pos, |n| n.pos),
                    format!("{msg} in {what}"),
                );
                continue;
            }
            let action = match (f.get("redact"), f.get("replace")) {
                (Some(r), None) => match r.value {
                    Value::Bool(true) => TransformAction::Redact(true),
                    _ => {
                        self.diags.push(
                            Diagnostic::new(
                                file,
                                r.pos,
                                format!("'redact' in {what} must be 'true'"),
                            )
                            .hint("to keep a value, leave the transform out"),
                        );
                        continue;
                    }
                },
                (None, Some(v)) => TransformAction::Replace(v.to_json()),
                _ => {
                    self.diags.push(Diagnostic::new(
                        file,
                        item.pos,
                        format!("{twhat} needs exactly one of 'redact: true' or 'replace: VALUE'"),
                    ));
                    continue;
                }
            };
            ops.push(TransformOp { path, action });
        }
        ops
    }
}

/// Names of a string enum, for suggestions.
trait EnumNames {
    fn names() -> &'static [&'static str];
}
impl EnumNames for Verdict {
    fn names() -> &'static [&'static str] {
        Verdict::NAMES
    }
}
impl EnumNames for Point {
    fn names() -> &'static [&'static str] {
        Point::NAMES
    }
}

fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'))
}
