//! Compiling a [`Policy`]: validate, compile every CEL condition once, and
//! index rules by intervention point and tool so a decision only touches the
//! rules that can match it.

use crate::diag::{Diagnostic, PolicyError, Pos, suggest};
use crate::limits::{MAX_GLOBS, MAX_RULES};
use crate::model::*;
use crate::native;
use crate::rate_limit::Limits;
use crate::tool_index::{GlobIndex, NameMap, ToolGlob, ToolGlobs, is_meta};
use globset::Glob;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// A policy ready to evaluate. Cheap to share: evaluation takes `&self`.
pub struct CompiledPolicy {
    pub(crate) name: String,
    pub(crate) default: DefaultVerdict,
    pub(crate) hash: String,
    pub(crate) rules: Vec<CompiledRule>,
    /// One index per [`Point`], in `Point::ALL` order.
    pub(crate) index: Vec<PointIndex>,
    pub(crate) tools: BTreeMap<String, ToolSpec>,
    /// Per catalog tool, how its arguments are classified.
    pub(crate) tool_args: NameMap<ToolArgs>,
    pub(crate) intent_config: warden_intent::Config,
    pub(crate) audit: AuditSettings,
    pub(crate) identity: IdentitySettings,
    pub(crate) rings: warden_identity::RingThresholds,
    pub(crate) limits: Limits,
    pub(crate) hidden: Vec<u32>,
    pub(crate) env: Arc<cel::Env>,
}

/// How one catalog tool's arguments are classified (from `tools.<name>.args`):
/// top-level argument name to kind. Unlisted arguments are read as `auto`;
/// `text` ones are not read.
pub type ToolArgs = BTreeMap<String, warden_intent::Kind>;

fn tool_args_of(spec: &ToolSpec) -> Result<ToolArgs, warden_intent::IntentError> {
    spec.args
        .iter()
        .map(|(arg, kind)| Ok((arg.clone(), kind.parse()?)))
        .collect()
}

impl std::fmt::Debug for CompiledPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledPolicy")
            .field("name", &self.name)
            .field("hash", &self.hash)
            .field("rules", &self.rules.len())
            .finish()
    }
}

pub(crate) struct CompiledRule {
    pub rule: Rule,
    pub exact_tools: Vec<String>,
    pub tool_globs: ToolGlobs,
    pub agent: Option<AgentMatcher>,
    pub cond: Option<Condition>,
}

pub(crate) enum AgentMatcher {
    Exact(String),
    Glob(ToolGlob),
}

impl AgentMatcher {
    pub fn is_match(&self, agent: &str) -> bool {
        match self {
            AgentMatcher::Exact(s) => s == agent,
            AgentMatcher::Glob(g) => g.is_match(agent),
        }
    }
}

pub(crate) struct Condition {
    pub program: cel::Program,
    pub native: Option<native::Expr>,
}

#[derive(Default)]
pub(crate) struct PointIndex {
    pub exact: NameMap<Vec<u32>>,
    pub globs: GlobIndex,
    /// For each glob in `globs`, the rules that wrote it.
    pub glob_rules: Vec<Vec<u32>>,
    /// Rules with no tool matcher: candidates for every action at this point.
    pub any_tool: Vec<u32>,
    /// For the tools the policy names (rules' exact tools, the catalog):
    /// every candidate, found once at compile time.
    pub resolved: NameMap<Vec<u32>>,
}

/// The rule numbers a decision checks. A tool usually has a few dozen
/// candidate rules at most, so they live on the stack.
pub(crate) type Candidates = smallvec::SmallVec<[u32; 64]>;

/// Most rule numbers kept in [`PointIndex::resolved`], over every point
/// (4 MiB). Tools past it are looked up rule list by rule list, glob by glob.
const MAX_RESOLVED_CANDIDATES: usize = 1 << 20;

impl PointIndex {
    /// Rules that can match an action with `tool` at this point, in rule order.
    pub fn candidates(&self, tool: Option<&str>, out: &mut Candidates) {
        if let Some(all) = tool.and_then(|t| self.resolved.get(t)) {
            out.extend_from_slice(all);
            return;
        }
        self.find_candidates(tool, out);
    }

    /// [`PointIndex::candidates`] from the rule lists and globs.
    fn find_candidates(&self, tool: Option<&str>, out: &mut Candidates) {
        out.extend_from_slice(&self.any_tool);
        if let Some(tool) = tool {
            if let Some(rules) = self.exact.get(tool) {
                out.extend_from_slice(rules);
            }
            self.globs
                .for_each_match(tool, |slot| out.extend_from_slice(&self.glob_rules[slot]));
        }
        out.sort_unstable();
        out.dedup();
    }

    /// Resolves the candidates of each of `tools` while `budget` (rule
    /// numbers) lasts.
    fn resolve<'t>(&mut self, tools: impl Iterator<Item = &'t String>, budget: &mut usize) {
        if self.exact.is_empty() && self.glob_rules.is_empty() {
            return; // `any_tool` alone: nothing to find.
        }
        for tool in tools {
            if self.resolved.contains_key(tool) {
                continue;
            }
            let mut found = Candidates::new();
            self.find_candidates(Some(tool), &mut found);
            let Some(left) = budget.checked_sub(found.len()) else {
                return;
            };
            *budget = left;
            self.resolved.insert(tool.clone(), found.to_vec());
        }
    }
}

fn is_glob(pattern: &str) -> bool {
    pattern.contains(['*', '?', '[', '{', '\\'])
}

/// Checks a tool or agent pattern: a name without glob syntax is always
/// valid (most are; parsing each as a glob was a tenth of the load time of a
/// 1,000-rule policy), anything else must parse as [`glob`] parses it.
pub(crate) fn check_glob(pattern: &str) -> Result<(), globset::Error> {
    // Every byte of glob syntax, `]` and `}` too: globset refuses an
    // unopened `}`.
    if pattern.bytes().any(is_meta) {
        glob(pattern)?;
    }
    Ok(())
}

/// How every tool and agent glob is compiled (`match.tool`, `match.agent`, `limits.tools`).
pub(crate) fn glob(pattern: &str) -> Result<Glob, globset::Error> {
    globset::GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()
}

/// Compiles a loaded policy.
pub fn compile(policy: Policy) -> Result<CompiledPolicy, PolicyError> {
    let mut diags = Vec::new();
    let root = policy
        .sources
        .first()
        .map(|(f, _)| f.clone())
        .unwrap_or_default();
    if policy.rules.len() > MAX_RULES {
        diags.push(Diagnostic::new(
            &root,
            Pos::default(),
            format!(
                "policy has {} rules; the limit is {MAX_RULES}",
                policy.rules.len()
            ),
        ));
    }
    let glob_count: usize = policy
        .rules
        .iter()
        .map(|r| r.matcher.tools.iter().filter(|t| is_glob(t)).count())
        .sum();
    if glob_count > MAX_GLOBS {
        diags.push(Diagnostic::new(
            &root,
            Pos::default(),
            format!("policy has {glob_count} tool globs; the limit is {MAX_GLOBS}"),
        ));
    }
    if !diags.is_empty() {
        return Err(PolicyError { diagnostics: diags });
    }

    let env = Arc::new(cel::Env::stdlib());
    let mut rules = Vec::with_capacity(policy.rules.len());
    for rule in policy.rules {
        match compile_rule(&env, rule) {
            Ok(r) => rules.push(r),
            Err(mut d) => diags.append(&mut d),
        }
    }
    if !diags.is_empty() {
        return Err(PolicyError { diagnostics: diags });
    }

    let mut index: Vec<PointIndex> = Point::ALL.iter().map(|_| PointIndex::default()).collect();
    let mut glob_slots: Vec<HashMap<String, usize>> =
        Point::ALL.iter().map(|_| HashMap::new()).collect();
    let mut hidden = Vec::new();
    for (i, r) in rules.iter().enumerate() {
        let i = i as u32;
        if r.rule.hidden {
            hidden.push(i);
        }
        for point in &r.rule.on {
            let p = *point as usize;
            let idx = &mut index[p];
            if r.rule.matcher.tools.is_empty() {
                idx.any_tool.push(i);
                continue;
            }
            for t in &r.exact_tools {
                let list = idx.exact.entry(t.clone()).or_default();
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
            let seen = &mut glob_slots[p];
            for pat in r.rule.matcher.tools.iter().filter(|t| is_glob(t)) {
                let slot = match seen.get(pat) {
                    Some(&slot) => slot,
                    None => {
                        // Validated at load time; a failure here is a bug, reported not panicked.
                        idx.globs.add(pat).map_err(|e| internal(&r.rule, e))?;
                        idx.glob_rules.push(Vec::new());
                        seen.insert(pat.clone(), idx.glob_rules.len() - 1);
                        idx.glob_rules.len() - 1
                    }
                };
                let list = &mut idx.glob_rules[slot];
                if list.last() != Some(&i) {
                    list.push(i);
                }
            }
        }
    }
    let mut budget = MAX_RESOLVED_CANDIDATES;
    for idx in &mut index {
        let named = rules.iter().flat_map(|r| &r.exact_tools);
        idx.resolve(named.chain(policy.tools.keys()), &mut budget);
    }
    let mut hasher = Sha256::new();
    for (file, text) in &policy.sources {
        hasher.update((file.len() as u64).to_be_bytes());
        hasher.update(file.as_bytes());
        hasher.update((text.len() as u64).to_be_bytes());
        hasher.update(text.as_bytes());
    }
    let hash = format!("sha256:{}", hex::encode(hasher.finalize()));

    // Both were validated entry by entry at load time; an error here is a bug.
    let config_error = |e: warden_intent::IntentError| {
        PolicyError::one(Diagnostic::new(&root, Pos::default(), e.to_string()))
    };
    let mut tool_args = NameMap::default();
    for (name, spec) in &policy.tools {
        if !spec.args.is_empty() {
            tool_args.insert(name.clone(), tool_args_of(spec).map_err(config_error)?);
        }
    }
    let egress = match &policy.egress {
        Some(list) => Some(warden_intent::Egress::new(list).map_err(config_error)?),
        None => None,
    };

    Ok(CompiledPolicy {
        name: policy.name,
        default: policy.default,
        hash,
        rules,
        index,
        tools: policy.tools,
        tool_args,
        intent_config: warden_intent::Config {
            egress,
            ..Default::default()
        },
        audit: policy.audit,
        identity: policy.identity,
        rings: policy.rings,
        limits: policy.limits,
        hidden,
        env,
    })
}

fn internal(rule: &Rule, e: impl std::fmt::Display) -> PolicyError {
    PolicyError::one(Diagnostic::new(
        &rule.origin.file,
        Pos {
            line: rule.origin.line,
            column: 1,
        },
        format!("internal error compiling rule '{}': {e}", rule.id),
    ))
}

fn compile_rule(env: &cel::Env, rule: Rule) -> Result<CompiledRule, Vec<Diagnostic>> {
    let mut diags = Vec::new();
    let exact_tools: Vec<String> = rule
        .matcher
        .tools
        .iter()
        .filter(|t| !is_glob(t))
        .cloned()
        .collect();
    let mut tool_globs = ToolGlobs::default();
    for g in rule.matcher.tools.iter().filter(|t| is_glob(t)) {
        tool_globs
            .add(g)
            .map_err(|e| internal(&rule, e).diagnostics)?;
    }
    let agent = match &rule.matcher.agent {
        None => None,
        Some(a) if !is_glob(a) => Some(AgentMatcher::Exact(a.clone())),
        Some(a) => Some(AgentMatcher::Glob(
            ToolGlob::new(a).map_err(|e| internal(&rule, e).diagnostics)?,
        )),
    };
    let cond = match &rule.when {
        None => None,
        Some(when) => match compile_condition(env, &rule.id, when) {
            Ok(c) => Some(c),
            Err(d) => {
                diags.push(d);
                None
            }
        },
    };
    if !diags.is_empty() {
        return Err(diags);
    }
    Ok(CompiledRule {
        rule,
        exact_tools,
        tool_globs,
        agent,
        cond,
    })
}

/// Compiles a `when:` and checks the variables it reads, without keeping it.
pub(crate) fn check_condition(
    env: &cel::Env,
    rule_id: &str,
    when: &Spanned<String>,
) -> Result<(), Diagnostic> {
    compile_condition(env, rule_id, when).map(|_| ())
}

fn compile_condition(
    env: &cel::Env,
    rule_id: &str,
    when: &Spanned<String>,
) -> Result<Condition, Diagnostic> {
    let at = Pos {
        line: when.line,
        column: when.column,
    };
    let program = env.compile(&when.value).map_err(|errors| {
        let (msg, line, col) = match errors.errors.first() {
            Some(e) => (e.msg.clone(), e.pos.0, e.pos.1),
            None => ("cannot parse".to_string(), 0, 0),
        };
        Diagnostic::new(
            &when.file,
            at,
            format!(
                "invalid CEL in 'when' of rule '{rule_id}' at {line}:{col} of the expression: {msg}"
            ),
        )
        .hint(format!("variables: {}", native::VARIABLES.join(", ")))
    })?;
    let mut free = Vec::new();
    native::free_idents(program.expression(), &mut Vec::new(), &mut free);
    if let Some(unknown) = free
        .iter()
        .find(|v| !native::VARIABLES.contains(&v.as_str()))
    {
        let d = Diagnostic::new(
            &when.file,
            at,
            format!("unknown variable '{unknown}' in 'when' of rule '{rule_id}'"),
        );
        return Err(match suggest(unknown, native::VARIABLES) {
            Some(s) => d.hint(format!("did you mean '{s}'?")),
            None => d.hint(format!("variables: {}", native::VARIABLES.join(", "))),
        });
    }
    let native = native::compile(program.expression());
    Ok(Condition { program, native })
}

impl CompiledPolicy {
    /// The policy's `name:`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// `sha256:` + hex over every source file (name and text), in load order.
    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// The verdict when no rule matches.
    pub fn default(&self) -> DefaultVerdict {
        self.default
    }

    /// Every rule, in rule order.
    pub fn rules(&self) -> impl ExactSizeIterator<Item = &Rule> {
        self.rules.iter().map(|r| &r.rule)
    }

    /// The tool catalog.
    pub fn tools(&self) -> &BTreeMap<String, ToolSpec> {
        &self.tools
    }

    /// How `tool`'s arguments are classified, when the catalog pins any.
    pub fn tool_args(&self, tool: &str) -> Option<&ToolArgs> {
        self.tool_args.get(tool)
    }

    /// What the intent classifier is told: the policy's `egress` allowlist.
    pub fn intent_config(&self) -> &warden_intent::Config {
        &self.intent_config
    }

    /// What the audit log keeps of each decision.
    pub fn audit(&self) -> AuditSettings {
        self.audit
    }

    /// Who may act: whether actions need a token, whose tokens are trusted,
    /// whether they must be signed.
    pub fn identity(&self) -> &IdentitySettings {
        &self.identity
    }

    /// Whether identity can be demanded at all: at the top level, or by a rule.
    pub fn uses_identity(&self) -> bool {
        self.identity.required || self.rules.iter().any(|r| r.rule.identity_required)
    }

    /// The trust scores that earn rings (`rings:`; defaults when unset).
    pub fn rings(&self) -> &warden_identity::RingThresholds {
        &self.rings
    }

    /// Call limits per agent and per tool (`limits:`; empty when unset).
    /// The gate enforces them.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether a `visibility: hidden` rule names `tool`.
    pub fn is_hidden(&self, tool: &str) -> bool {
        self.hidden
            .iter()
            .any(|&i| self.rules[i as usize].matches_tool(tool))
    }

    /// How many rules have a `when:` that runs natively, and how many in total.
    pub fn native_conditions(&self) -> (usize, usize) {
        let conds = self.rules.iter().filter_map(|r| r.cond.as_ref());
        let (mut native, mut total) = (0, 0);
        for c in conds {
            total += 1;
            native += usize::from(c.native.is_some());
        }
        (native, total)
    }
}

impl CompiledRule {
    pub(crate) fn matches_tool(&self, tool: &str) -> bool {
        self.exact_tools.iter().any(|t| t == tool) || self.tool_globs.is_match(tool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: &str = r#"version: warden/v1
name: p
default: deny
tools:
  db.query: {args: {sql: sql}}
  fs.read: {}
rules:
  - {id: any, match: {}, verdict: allow}
  - {id: db, match: {tool: [db.query, db.exec]}, verdict: allow}
  - {id: db-glob, match: {tool: 'db.*'}, verdict: warn}
  - {id: one, match: {tool: 'db.quer?'}, verdict: deny}
  - {id: out, on: [post_tool_call], match: {tool: [db.query]}, verdict: allow}
  - {id: fs, match: {tool: ['fs.[a-z]ead', fs.write]}, verdict: deny}
"#;

    fn policy() -> CompiledPolicy {
        compile(crate::parse("p.yaml", POLICY).unwrap()).unwrap()
    }

    const TOOLS: &[&str] = &[
        "db.query", "db.exec", "db.other", "fs.read", "fs.write", "x",
    ];

    fn found(idx: &PointIndex, tool: Option<&str>) -> Candidates {
        let mut out = Candidates::new();
        idx.find_candidates(tool, &mut out);
        out
    }

    #[test]
    fn check_glob_parses_only_what_has_glob_syntax_and_agrees_with_globset() {
        for p in [
            "svc.op1",
            "did:key:z6Mk",
            "a b",
            "é",
            "a}",
            "a]",
            "a[",
            "{a,b",
            "x\\",
            "a*",
            "a[0-9]",
        ] {
            assert_eq!(
                check_glob(p).is_ok(),
                glob(p).is_ok(),
                "{p:?}: check_glob and globset disagree"
            );
        }
        assert!(check_glob("a}").is_err() && check_glob("a[").is_err());
    }

    #[test]
    fn resolved_candidates_are_the_ones_found_rule_list_by_rule_list() {
        let p = policy();
        let pre = &p.index[Point::PreToolCall as usize];
        assert!(pre.resolved.contains_key("db.query") && pre.resolved.contains_key("fs.read"));
        assert!(
            !pre.resolved.contains_key("db.other"),
            "not named by the policy"
        );
        for idx in &p.index {
            for tool in TOOLS.iter().map(|t| Some(*t)).chain([None]) {
                let mut got = Candidates::new();
                idx.candidates(tool, &mut got);
                assert_eq!(got, found(idx, tool), "{tool:?}");
            }
        }
        let mut got = Candidates::new();
        pre.candidates(Some("db.query"), &mut got);
        assert_eq!(&got[..], &[0, 1, 2, 3]);
    }

    #[test]
    fn tools_past_the_budget_are_found_when_asked() {
        let mut p = policy();
        let idx = &mut p.index[Point::PreToolCall as usize];
        idx.resolved.clear();
        let tools: Vec<String> = TOOLS.iter().map(|t| t.to_string()).collect();
        let mut budget = 5; // db.query's 4, not db.exec's 3
        idx.resolve(tools.iter(), &mut budget);
        assert_eq!(budget, 1);
        assert_eq!(idx.resolved.len(), 1);
        for tool in TOOLS {
            let mut got = Candidates::new();
            idx.candidates(Some(tool), &mut got);
            assert_eq!(got, found(idx, Some(tool)), "{tool}");
        }
    }
}
