//! A native evaluator for the common, simple part of CEL.
//!
//! Most `when:` conditions are comparisons of an argument with a literal,
//! joined by `&&`/`||`. Running those through the CEL interpreter costs a
//! context, a JSON-to-CEL conversion and a tree walk; here they are compiled to
//! a small tree evaluated straight over the action's JSON.
//!
//! The rule that keeps this honest: the native evaluator answers only when it
//! is certain CEL would give the same boolean. On anything else — a missing
//! key, mixed types, an unsupported function, NaN — it returns `None` and the
//! caller runs the real CEL program, which also produces CEL's own errors.
//! A property test checks the two agree.

use cel::common::ast::{Expr as CelExpr, IdedExpr, LiteralValue};
use serde_json::Value as Json;
use std::cmp::Ordering;

use crate::eval::Input;

/// Variables a condition can read.
pub(crate) const VARIABLES: &[&str] = &[
    "tool", "args", "agent", "session", "point", "context", "labels", "intents",
];

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Var {
    Tool,
    Args,
    Agent,
    Session,
    Point,
    Context,
    Labels,
    Intents,
}

impl Var {
    fn parse(name: &str) -> Option<Var> {
        Some(match name {
            "tool" => Var::Tool,
            "args" => Var::Args,
            "agent" => Var::Agent,
            "session" => Var::Session,
            "point" => Var::Point,
            "context" => Var::Context,
            "labels" => Var::Labels,
            "intents" => Var::Intents,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum StrFn {
    StartsWith,
    EndsWith,
    Contains,
}

/// A compiled native condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(String),
    Path(Var, Vec<String>),
    Has(Var, Vec<String>, String),
    List(Vec<Expr>),
    Not(Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Cmp(Cmp, Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
    Str2(StrFn, Box<Expr>, Box<Expr>),
    Size(Box<Expr>),
}

/// Compiles a CEL expression tree to a native one, if every part is supported.
pub(crate) fn compile(e: &IdedExpr) -> Option<Expr> {
    Some(match &e.expr {
        CelExpr::Literal(lit) => match lit {
            LiteralValue::Boolean(b) => Expr::Bool(*b.inner()),
            LiteralValue::Int(i) => Expr::Int(*i.inner()),
            LiteralValue::UInt(u) => Expr::UInt(*u.inner()),
            LiteralValue::Double(d) => Expr::Double(*d.inner()),
            LiteralValue::String(s) => Expr::Str(s.inner().to_string()),
            LiteralValue::Null => Expr::Null,
            LiteralValue::Bytes(_) => return None,
        },
        CelExpr::Ident(name) => Expr::Path(Var::parse(name)?, Vec::new()),
        CelExpr::Select(sel) => match compile(&sel.operand)? {
            Expr::Path(v, path) if sel.test => Expr::Has(v, path, sel.field.clone()),
            Expr::Path(v, mut path) => {
                path.push(sel.field.clone());
                Expr::Path(v, path)
            }
            _ => return None,
        },
        CelExpr::List(list) if list.optional_indices.is_empty() => {
            Expr::List(list.elements.iter().map(compile).collect::<Option<_>>()?)
        }
        CelExpr::Call(call) => {
            let arg = |i: usize| call.args.get(i).and_then(compile).map(Box::new);
            let target = || call.target.as_deref().and_then(compile).map(Box::new);
            let n = call.args.len();
            match (call.func_name.as_str(), call.target.is_some(), n) {
                ("_&&_", false, 2) => Expr::And(arg(0)?, arg(1)?),
                ("_||_", false, 2) => Expr::Or(arg(0)?, arg(1)?),
                ("!_", false, 1) => Expr::Not(arg(0)?),
                ("_==_", false, 2) => Expr::Cmp(Cmp::Eq, arg(0)?, arg(1)?),
                ("_!=_", false, 2) => Expr::Cmp(Cmp::Ne, arg(0)?, arg(1)?),
                ("_<_", false, 2) => Expr::Cmp(Cmp::Lt, arg(0)?, arg(1)?),
                ("_<=_", false, 2) => Expr::Cmp(Cmp::Le, arg(0)?, arg(1)?),
                ("_>_", false, 2) => Expr::Cmp(Cmp::Gt, arg(0)?, arg(1)?),
                ("_>=_", false, 2) => Expr::Cmp(Cmp::Ge, arg(0)?, arg(1)?),
                ("@in", false, 2) => Expr::In(arg(0)?, arg(1)?),
                ("startsWith", true, 1) => Expr::Str2(StrFn::StartsWith, target()?, arg(0)?),
                ("endsWith", true, 1) => Expr::Str2(StrFn::EndsWith, target()?, arg(0)?),
                ("contains", true, 1) => Expr::Str2(StrFn::Contains, target()?, arg(0)?),
                ("size", false, 1) => Expr::Size(arg(0)?),
                ("size", true, 0) => Expr::Size(target()?),
                _ => return None,
            }
        }
        _ => return None,
    })
}

/// A value during native evaluation.
#[derive(Debug, Clone)]
enum V<'a> {
    Null,
    Bool(bool),
    Int(i64),
    UInt(u64),
    Double(f64),
    Str(&'a str),
    /// A JSON list or object.
    Json(&'a Json),
    StrList(&'a [String]),
    List(Vec<V<'a>>),
}

/// Evaluates to `Some(bool)` when certain to agree with CEL, else `None`.
pub(crate) fn eval_bool(e: &Expr, input: &Input<'_>) -> Option<bool> {
    match eval(e, input)? {
        V::Bool(b) => Some(b),
        _ => None,
    }
}

fn eval<'a>(e: &'a Expr, input: &Input<'a>) -> Option<V<'a>> {
    Some(match e {
        Expr::Null => V::Null,
        Expr::Bool(b) => V::Bool(*b),
        Expr::Int(i) => V::Int(*i),
        Expr::UInt(u) => V::UInt(*u),
        Expr::Double(d) => V::Double(*d),
        Expr::Str(s) => V::Str(s),
        Expr::Path(var, path) => lookup(*var, path, input)?,
        Expr::Has(var, path, name) => match lookup(*var, path, input)? {
            V::Json(Json::Object(map)) => V::Bool(field(map, name).is_some()),
            _ => return None,
        },
        Expr::List(items) => V::List(
            items
                .iter()
                .map(|i| eval(i, input))
                .collect::<Option<_>>()?,
        ),
        Expr::Not(a) => match eval(a, input)? {
            V::Bool(b) => V::Bool(!b),
            _ => return None,
        },
        Expr::And(a, b) => match eval(a, input)? {
            V::Bool(false) => V::Bool(false),
            V::Bool(true) => V::Bool(eval_bool(b, input)?),
            _ => return None,
        },
        Expr::Or(a, b) => match eval(a, input)? {
            V::Bool(true) => V::Bool(true),
            V::Bool(false) => V::Bool(eval_bool(b, input)?),
            _ => return None,
        },
        Expr::Cmp(op, a, b) => {
            let (a, b) = (eval(a, input)?, eval(b, input)?);
            // Ordering is defined here for numbers and strings only; CEL
            // refuses `null < null`, so anything else goes to CEL.
            let orderable = |v: &V<'_>| number(v).is_some() || matches!(v, V::Str(_));
            let allowed = matches!(op, Cmp::Eq | Cmp::Ne) || (orderable(&a) && orderable(&b));
            if !allowed {
                return None;
            }
            V::Bool(match op {
                Cmp::Eq => equal(&a, &b)?,
                Cmp::Ne => !equal(&a, &b)?,
                Cmp::Lt => compare(&a, &b)? == Ordering::Less,
                Cmp::Le => compare(&a, &b)? != Ordering::Greater,
                Cmp::Gt => compare(&a, &b)? == Ordering::Greater,
                Cmp::Ge => compare(&a, &b)? != Ordering::Less,
            })
        }
        Expr::In(a, b) => {
            let needle = eval(a, input)?;
            match eval(b, input)? {
                V::StrList(list) => match needle {
                    V::Str(s) => V::Bool(list.iter().any(|x| x == s)),
                    _ => return None,
                },
                V::List(items) => {
                    let mut found = false;
                    for item in &items {
                        // Any element of another kind: let CEL decide.
                        found |= equal(&needle, item)?;
                    }
                    V::Bool(found)
                }
                _ => return None,
            }
        }
        Expr::Str2(f, a, b) => match (eval(a, input)?, eval(b, input)?) {
            (V::Str(s), V::Str(t)) => V::Bool(match f {
                StrFn::StartsWith => s.starts_with(t),
                StrFn::EndsWith => s.ends_with(t),
                StrFn::Contains => s.contains(t),
            }),
            _ => return None,
        },
        Expr::Size(a) => V::Int(match eval(a, input)? {
            V::Str(s) => s.chars().count() as i64,
            V::StrList(l) => l.len() as i64,
            V::List(l) => l.len() as i64,
            V::Json(Json::Array(a)) => a.len() as i64,
            V::Json(Json::Object(o)) => o.len() as i64,
            _ => return None,
        }),
    })
}

fn opt_str(s: Option<&str>) -> V<'_> {
    s.map_or(V::Null, V::Str)
}

fn lookup<'a>(var: Var, path: &[String], input: &Input<'a>) -> Option<V<'a>> {
    let (root, path) = match var {
        Var::Args => (input.args, path),
        // The context map itself is rare in conditions: leave it to CEL.
        Var::Context => (field(input.context, path.first()?)?, &path[1..]),
        other => {
            if !path.is_empty() {
                return None;
            }
            return Some(match other {
                Var::Tool => opt_str(input.tool),
                Var::Agent => opt_str(input.agent),
                Var::Session => opt_str(input.session),
                Var::Point => V::Str(input.point.as_str()),
                Var::Labels => V::StrList(input.labels),
                Var::Intents => V::StrList(input.intents),
                Var::Args | Var::Context => unreachable!("handled above"),
            });
        }
    };
    let mut at = root;
    for key in path {
        at = field(at.as_object()?, key)?;
    }
    Some(match at {
        Json::Null => V::Null,
        Json::Bool(b) => V::Bool(*b),
        Json::Number(n) => {
            if let Some(u) = n.as_u64() {
                V::UInt(u)
            } else if let Some(i) = n.as_i64() {
                V::Int(i)
            } else {
                V::Double(n.as_f64()?)
            }
        }
        Json::String(s) => V::Str(s),
        Json::Array(_) | Json::Object(_) => V::Json(at),
    })
}

/// `map[key]`. Objects of a few keys (the usual arguments) are scanned:
/// comparing short keys costs less than hashing one.
fn field<'a>(map: &'a serde_json::Map<String, Json>, key: &str) -> Option<&'a Json> {
    const SCAN_UP_TO: usize = 8;
    if map.len() <= SCAN_UP_TO {
        map.iter().find_map(|(k, v)| (k == key).then_some(v))
    } else {
        map.get(key)
    }
}

/// Whether two values are equal, as [`compare`] would say; strings compare
/// their lengths first (most unequal strings stop there).
fn equal(a: &V<'_>, b: &V<'_>) -> Option<bool> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x == y),
        _ => Some(compare(a, b)? == Ordering::Equal),
    }
}

/// Orders two values of the same kind; `None` when CEL's answer could differ.
fn compare(a: &V<'_>, b: &V<'_>) -> Option<Ordering> {
    match (a, b) {
        (V::Str(x), V::Str(y)) => Some(x.cmp(y)),
        (V::Bool(x), V::Bool(y)) => Some(x.cmp(y)),
        (V::Null, V::Null) => Some(Ordering::Equal),
        _ => {
            let (x, y) = (number(a)?, number(b)?);
            match (x, y) {
                (Num::I(x), Num::I(y)) => Some(x.cmp(&y)),
                // Mixed int/double: only where the int converts exactly.
                (x, y) if x.exact() && y.exact() => x.as_f64().partial_cmp(&y.as_f64()),
                _ => None,
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Num {
    I(i128),
    F(f64),
}

impl Num {
    fn exact(self) -> bool {
        match self {
            Num::I(i) => i.unsigned_abs() <= 1 << 53,
            Num::F(_) => true,
        }
    }

    fn as_f64(self) -> f64 {
        match self {
            Num::I(i) => i as f64,
            Num::F(f) => f,
        }
    }
}

fn number(v: &V<'_>) -> Option<Num> {
    match v {
        V::Int(i) => Some(Num::I(*i as i128)),
        V::UInt(u) => Some(Num::I(*u as i128)),
        V::Double(d) if d.is_finite() => Some(Num::F(*d)),
        _ => None,
    }
}

/// Identifiers the expression reads that no comprehension binds.
pub(crate) fn free_idents(e: &IdedExpr, bound: &mut Vec<String>, out: &mut Vec<String>) {
    match &e.expr {
        CelExpr::Ident(name) => {
            if !bound.contains(name) && !out.contains(name) {
                out.push(name.clone());
            }
        }
        CelExpr::Select(sel) => free_idents(&sel.operand, bound, out),
        CelExpr::Call(call) => {
            if let Some(t) = &call.target {
                free_idents(t, bound, out);
            }
            for a in &call.args {
                free_idents(a, bound, out);
            }
        }
        CelExpr::List(list) => {
            for el in &list.elements {
                free_idents(el, bound, out);
            }
        }
        CelExpr::Map(map) => {
            for entry in &map.entries {
                match &entry.expr {
                    cel::common::ast::EntryExpr::MapEntry(m) => {
                        free_idents(&m.key, bound, out);
                        free_idents(&m.value, bound, out);
                    }
                    cel::common::ast::EntryExpr::StructField(f) => {
                        free_idents(&f.value, bound, out)
                    }
                }
            }
        }
        CelExpr::Struct(s) => {
            for entry in &s.entries {
                if let cel::common::ast::EntryExpr::StructField(f) = &entry.expr {
                    free_idents(&f.value, bound, out);
                }
            }
        }
        CelExpr::Comprehension(c) => {
            free_idents(&c.iter_range, bound, out);
            free_idents(&c.accu_init, bound, out);
            let depth = bound.len();
            bound.push(c.iter_var.clone());
            bound.extend(c.iter_var2.clone());
            bound.push(c.accu_var.clone());
            free_idents(&c.loop_cond, bound, out);
            free_idents(&c.loop_step, bound, out);
            free_idents(&c.result, bound, out);
            bound.truncate(depth);
        }
        CelExpr::Literal(_) | CelExpr::Unspecified => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde_json::{Map, json};

    /// Expressions covering every native construct, including ones that must fall back.
    const EXPRS: &[&str] = &[
        "args.a == 1",
        "args.a != 1",
        "args.a < 2.5",
        "args.a <= args.b",
        "args.a > -3",
        "args.a >= 18446744073709551615u",
        "args.a == 1u",
        "args.a == 1.0",
        "args.s == 'x'",
        "args.s < 'm'",
        "args.s.startsWith('x')",
        "args.s.endsWith('y')",
        "args.s.contains('q')",
        "size(args.s) > 1",
        "args.s.size() == 2",
        "size(args.l) == 2",
        "args.s in ['x', 'y']",
        "args.a in [1, 2, 3]",
        "args.a in [1, 'x']",
        "has(args.a)",
        "has(args.o.k)",
        "args.o.k == true",
        "!(args.a == 1) && args.s != 'z'",
        "args.a == 1 || args.s == 'x'",
        "tool == 'db.query' && 'pii' in labels",
        "point == 'pre_tool_call'",
        "agent == null",
        "context.env == 'prod'",
        "args.n == null",
        "args.a == args.s",
        "args.a <= args.b",
        "args.o.k < true",
        "args.n >= null",
    ];

    fn scalar() -> impl Strategy<Value = serde_json::Value> {
        prop_oneof![
            Just(json!(null)),
            any::<bool>().prop_map(|b| json!(b)),
            (-5i64..5).prop_map(|i| json!(i)),
            any::<i64>().prop_map(|i| json!(i)),
            any::<u64>().prop_map(|u| json!(u)),
            (-10.0f64..10.0).prop_map(|f| json!(f)),
            prop::sample::select(vec!["x", "y", "xy", "q", "", "zz"]).prop_map(|s| json!(s)),
        ]
    }

    fn args() -> impl Strategy<Value = serde_json::Value> {
        (
            prop::option::of(scalar()),
            prop::option::of(scalar()),
            prop::option::of(scalar()),
            prop::option::of(scalar()),
            prop::option::of(scalar()),
            any::<bool>(),
        )
            .prop_map(|(a, b, s, n, k, list)| {
                let mut m = Map::new();
                for (name, v) in [("a", a), ("b", b), ("s", s), ("n", n)] {
                    if let Some(v) = v {
                        m.insert(name.into(), v);
                    }
                }
                if let Some(k) = k {
                    m.insert("o".into(), json!({"k": k}));
                }
                if list {
                    m.insert("l".into(), json!([1, "two"]));
                }
                serde_json::Value::Object(m)
            })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Whenever the native evaluator answers, CEL gives the same boolean.
        #[test]
        fn native_agrees_with_cel(expr in 0..EXPRS.len(), args in args(), pii in any::<bool>(), prod in any::<bool>()) {
            let env = std::sync::Arc::new(cel::Env::stdlib());
            let program = env.compile(EXPRS[expr]).unwrap();
            let native = compile(program.expression()).expect("all test expressions compile natively");
            let labels = if pii { vec!["pii".to_string()] } else { vec![] };
            let mut context = Map::new();
            context.insert("env".into(), json!(if prod { "prod" } else { "dev" }));
            let input = Input {
                point: crate::Point::PreToolCall, tool: Some("db.query"), agent: None, session: None,
                args: &args, context: &context, labels: &labels, intents: &[], ring: 3,
            };
            if let Some(fast) = eval_bool(&native, &input) {
                let mut ctx = cel::Context::with_env(env.clone());
                ctx.add_variable_from_value("args", cel::to_value(&args).unwrap());
                ctx.add_variable_from_value("tool", cel::to_value("db.query").unwrap());
                ctx.add_variable_from_value("point", cel::to_value("pre_tool_call").unwrap());
                ctx.add_variable_from_value("agent", cel::Value::Null);
                ctx.add_variable_from_value("labels", cel::to_value(&labels).unwrap());
                ctx.add_variable_from_value("context", cel::to_value(&context).unwrap());
                let slow = program.execute(&ctx);
                prop_assert_eq!(slow, Ok(cel::Value::Bool(fast)), "{} over {}", EXPRS[expr], args);
            }
        }
    }

    #[test]
    fn native_answers_the_common_cases() {
        let env = cel::Env::stdlib();
        let args = json!({"a": 1, "s": "xy", "o": {"k": true}});
        let input = Input {
            point: crate::Point::PreToolCall,
            tool: Some("db.query"),
            agent: None,
            session: None,
            args: &args,
            context: &Map::new(),
            labels: &[],
            intents: &[],
            ring: 3,
        };
        for e in [
            "args.a == 1",
            "args.a > 0.5",
            "args.s.startsWith('x')",
            "args.s in ['xy']",
            "has(args.o.k)",
            "size(args.s) == 2",
            "tool == 'db.query' && !(args.a != 1)",
        ] {
            let n = compile(env.compile(e).unwrap().expression()).unwrap();
            assert_eq!(eval_bool(&n, &input), Some(true), "{e}");
        }
    }

    #[test]
    fn unsupported_constructs_are_left_to_cel() {
        let env = cel::Env::stdlib();
        for e in [
            "args.l.exists(x, x == 1)",
            "args.a + 1 == 2",
            "matches(args.s, 'x+')",
            "args.l[0] == 1",
        ] {
            let p = env.compile(e).unwrap();
            assert!(compile(p.expression()).is_none(), "{e}");
        }
    }
}
