//! Evaluating a compiled policy against one action.
//!
//! [`CompiledPolicy::evaluate`] is the fast path; [`CompiledPolicy::explain`]
//! walks every rule and says why each did or did not match. Both use the same
//! per-rule check, so they cannot disagree about what matched.

use crate::compile::{Candidates, CompiledPolicy, CompiledRule, Condition};
use crate::model::{Point, Rule, Verdict};
use crate::native;
use serde_json::Value as Json;
use std::fmt;

/// What a policy sees of an action. Built by the gate.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Intervention point.
    pub point: Point,
    /// Tool name, at tool points.
    pub tool: Option<&'a str>,
    /// Agent DID.
    pub agent: Option<&'a str>,
    /// Session id.
    pub session: Option<&'a str>,
    /// Tool arguments (JSON; `{}` when none).
    pub args: &'a Json,
    /// Free-form context.
    pub context: &'a serde_json::Map<String, Json>,
    /// Labels present in the session.
    pub labels: &'a [String],
    /// Intents of the action.
    pub intents: &'a [String],
    /// The agent's privilege ring, 0 (most privileged) to 3.
    pub ring: u8,
}

/// Why evaluation could not finish. The gate turns this into `deny`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EvalErrorKind {
    /// A condition read a field the action does not have.
    MissingField,
    /// A condition applied an operator to values of the wrong type, or did not yield a boolean.
    TypeError,
    /// Any other failure while running a condition.
    Condition,
}

impl EvalErrorKind {
    /// The reserved decision reason, e.g. `error:missing_field`.
    pub fn reason(self) -> &'static str {
        match self {
            EvalErrorKind::MissingField => "error:missing_field",
            EvalErrorKind::TypeError => "error:type_error",
            EvalErrorKind::Condition => "error:condition",
        }
    }
}

/// A failure while evaluating one rule's condition.
#[derive(Debug, Clone)]
pub struct EvalError<'p> {
    /// The rule whose condition failed.
    pub rule: &'p Rule,
    /// What kind of failure.
    pub kind: EvalErrorKind,
    /// Detail for humans.
    pub detail: String,
}

/// The result of evaluating a policy.
#[derive(Debug, Clone)]
pub struct Evaluation<'p> {
    /// The composed verdict (deny-overrides), or the default when nothing matched.
    pub verdict: Verdict,
    /// The first rule (rule order) with the winning verdict; `None` when the default applied.
    pub rule: Option<&'p Rule>,
    /// Every rule that matched, in rule order.
    pub matched: Vec<&'p Rule>,
    /// Set when a condition failed; the verdict is then `deny`.
    pub error: Option<EvalError<'p>>,
}

/// Why a rule did not match.
#[derive(Debug, Clone, PartialEq)]
pub enum Miss {
    /// The rule is not for this intervention point.
    Point,
    /// The rule names tools and the action has none.
    NoTool,
    /// The tool matches none of the rule's patterns.
    Tool,
    /// The agent does not match (or the action has none).
    Agent,
    /// The agent's ring is below the rule's `min`.
    RingMin(u8),
    /// The agent's ring is above the rule's `max`.
    RingMax(u8),
    /// Required labels are missing.
    Labels,
    /// Required intents are missing.
    Intents,
    /// The `when:` condition is false.
    Condition,
}

/// How one rule fared, for `explain`.
#[derive(Debug, Clone)]
pub enum Outcome<'p> {
    /// It matched.
    Matched,
    /// It did not; here is the first matcher that failed.
    Missed(Miss),
    /// Its condition failed to evaluate.
    Error(EvalError<'p>),
}

/// One rule's trace, for `explain`.
#[derive(Debug, Clone)]
pub struct Trace<'p> {
    /// The rule.
    pub rule: &'p Rule,
    /// Whether the index offered this rule as a candidate (tool and point fit).
    pub candidate: bool,
    /// What happened.
    pub outcome: Outcome<'p>,
    /// Whether the condition ran natively (`Some(true)`), in CEL (`Some(false)`), or not at all.
    pub native: Option<bool>,
}

/// The result of `explain`.
#[derive(Debug, Clone)]
pub struct Explanation<'p> {
    /// The same evaluation `evaluate` returns.
    pub evaluation: Evaluation<'p>,
    /// One trace per rule, in rule order.
    pub traces: Vec<Trace<'p>>,
}

impl fmt::Display for Miss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Miss::Point => f.write_str("not for this intervention point"),
            Miss::NoTool => f.write_str("the rule names tools and the action has none"),
            Miss::Tool => f.write_str("the tool matches none of the rule's patterns"),
            Miss::Agent => f.write_str("the agent does not match"),
            Miss::RingMin(min) => write!(f, "the agent's ring is below min {min}"),
            Miss::RingMax(max) => write!(f, "the agent's ring is above max {max}"),
            Miss::Labels => f.write_str("required session labels are missing"),
            Miss::Intents => f.write_str("required intents are missing"),
            Miss::Condition => f.write_str("'when' is false"),
        }
    }
}

/// Lazily built CEL context: only decisions that reach a non-native condition pay for it.
struct CelScope<'i> {
    input: &'i Input<'i>,
    ctx: Option<cel::Context<'static, 'static>>,
}

impl<'i> CelScope<'i> {
    fn run(
        &mut self,
        policy: &CompiledPolicy,
        program: &cel::Program,
    ) -> Result<bool, (EvalErrorKind, String)> {
        if self.ctx.is_none() {
            self.ctx =
                Some(build_context(policy, self.input).map_err(|e| (EvalErrorKind::Condition, e))?);
        }
        let Some(ctx) = self.ctx.as_ref() else {
            return Err((EvalErrorKind::Condition, "no CEL context".into()));
        };
        match program.execute(ctx) {
            Ok(cel::Value::Bool(b)) => Ok(b),
            Ok(other) => Err((
                EvalErrorKind::TypeError,
                format!("'when' must be a boolean, got {:?}", other.type_of()),
            )),
            Err(e) => Err((classify(&e), e.to_string())),
        }
    }
}

fn classify(e: &cel::ExecutionError) -> EvalErrorKind {
    use cel::ExecutionError as E;
    match e {
        E::NoSuchKey(_) | E::UndeclaredReference(_) | E::IndexOutOfBounds(_) => {
            EvalErrorKind::MissingField
        }
        E::NoSuchOverload(_)
        | E::ValuesNotComparable(..)
        | E::UnsupportedBinaryOperator(..)
        | E::UnsupportedIndex(..)
        | E::UnsupportedKeyType(_)
        | E::UnsupportedTargetType { .. }
        | E::NotSupportedAsMethod { .. } => EvalErrorKind::TypeError,
        _ => EvalErrorKind::Condition,
    }
}

fn build_context(
    policy: &CompiledPolicy,
    input: &Input<'_>,
) -> Result<cel::Context<'static, 'static>, String> {
    let mut ctx = cel::Context::with_env(policy.env.clone());
    let conv = |name: &str, e: cel::SerializationError| format!("cannot give '{name}' to CEL: {e}");
    macro_rules! var {
        ($name:literal, $value:expr) => {
            ctx.add_variable_from_value($name, cel::to_value($value).map_err(|e| conv($name, e))?);
        };
    }
    var!("tool", &input.tool);
    var!("agent", &input.agent);
    var!("session", &input.session);
    var!("point", input.point.as_str());
    var!("args", input.args);
    var!("context", input.context);
    var!("labels", input.labels);
    var!("intents", input.intents);
    Ok(ctx)
}

impl CompiledPolicy {
    /// Evaluates the policy against `input`: deny-overrides over every matching rule.
    pub fn evaluate<'p>(&'p self, input: &Input<'_>) -> Evaluation<'p> {
        let mut candidates = Candidates::new();
        self.candidates(input, &mut candidates);
        let mut scope = CelScope { input, ctx: None };
        let mut matched = Vec::with_capacity(candidates.len());
        let mut best: Option<&Rule> = None;
        for &i in &candidates {
            let cr = &self.rules[i as usize];
            match self.check(cr, input, &mut scope, false) {
                Ok((None, _)) => {
                    matched.push(&cr.rule);
                    if best.is_none_or(|b| cr.rule.verdict > b.verdict) {
                        best = Some(&cr.rule);
                    }
                }
                Ok((Some(_), _)) => {}
                Err(error) => {
                    return Evaluation {
                        verdict: Verdict::Deny,
                        rule: Some(error.rule),
                        matched,
                        error: Some(error),
                    };
                }
            }
        }
        match best {
            Some(rule) => Evaluation {
                verdict: rule.verdict,
                rule: Some(rule),
                matched,
                error: None,
            },
            None => Evaluation {
                verdict: self.default.verdict(),
                rule: None,
                matched,
                error: None,
            },
        }
    }

    /// Evaluates every rule and records why each matched or not.
    pub fn explain<'p>(&'p self, input: &Input<'_>) -> Explanation<'p> {
        let mut candidates = Candidates::new();
        self.candidates(input, &mut candidates);
        let mut scope = CelScope { input, ctx: None };
        let traces = self
            .rules
            .iter()
            .enumerate()
            .map(|(i, cr)| {
                let (outcome, native) = match self.check(cr, input, &mut scope, true) {
                    Ok((None, native)) => (Outcome::Matched, native),
                    Ok((Some(miss), native)) => (Outcome::Missed(miss), native),
                    Err(e) => (Outcome::Error(e), None),
                };
                Trace {
                    rule: &cr.rule,
                    candidate: candidates.binary_search(&(i as u32)).is_ok(),
                    outcome,
                    native,
                }
            })
            .collect();
        Explanation {
            evaluation: self.evaluate(input),
            traces,
        }
    }

    /// Rules that can match this point and tool, in rule order.
    fn candidates(&self, input: &Input<'_>, out: &mut Candidates) {
        self.index[input.point as usize].candidates(input.tool, out);
    }

    /// Checks one rule. `full` also checks point and tool (which the index
    /// already guarantees for candidates). Returns the first miss, or `None`
    /// when the rule matched, plus whether a condition ran natively.
    fn check<'p>(
        &'p self,
        cr: &'p CompiledRule,
        input: &Input<'_>,
        scope: &mut CelScope<'_>,
        full: bool,
    ) -> Result<(Option<Miss>, Option<bool>), EvalError<'p>> {
        let r = &cr.rule;
        let m = &r.matcher;
        if full {
            if !r.on.contains(&input.point) {
                return Ok((Some(Miss::Point), None));
            }
            if !m.tools.is_empty() {
                match input.tool {
                    None => return Ok((Some(Miss::NoTool), None)),
                    Some(t) if !cr.matches_tool(t) => return Ok((Some(Miss::Tool), None)),
                    Some(_) => {}
                }
            }
        }
        if let Some(agent) = &cr.agent
            && !input.agent.is_some_and(|a| agent.is_match(a))
        {
            return Ok((Some(Miss::Agent), None));
        }
        if let Some(min) = m.ring_min
            && input.ring < min
        {
            return Ok((Some(Miss::RingMin(min)), None));
        }
        if let Some(max) = m.ring_max
            && input.ring > max
        {
            return Ok((Some(Miss::RingMax(max)), None));
        }
        if !m.labels.holds(input.labels) {
            return Ok((Some(Miss::Labels), None));
        }
        if !m.intents.holds(input.intents) {
            return Ok((Some(Miss::Intents), None));
        }
        let Some(Condition { program, native }) = &cr.cond else {
            return Ok((None, None));
        };
        if let Some(b) = native.as_ref().and_then(|n| native::eval_bool(n, input)) {
            return Ok((if b { None } else { Some(Miss::Condition) }, Some(true)));
        }
        match scope.run(self, program) {
            Ok(b) => Ok((if b { None } else { Some(Miss::Condition) }, Some(false))),
            Err((kind, detail)) => Err(EvalError {
                rule: r,
                kind,
                detail,
            }),
        }
    }
}
