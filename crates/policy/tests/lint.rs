//! Every class of policy error, with its exact (golden) message and position.

use warden_policy::{MemorySources, compile, limits, load, parse};

/// Loads and compiles `text` and returns every diagnostic as printed.
fn errors(text: &str) -> Vec<String> {
    match parse("p.yaml", text).and_then(compile) {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics.iter().map(|d| d.to_string()).collect(),
    }
}

const HEAD: &str = "version: warden/v1\nname: t\ndefault: deny\n";

fn with_rules(rules: &str) -> String {
    format!("{HEAD}rules:\n{rules}")
}

#[test]
fn yaml_syntax_error_has_a_position() {
    let e = errors("version: warden/v1\nrules: [a, b\n");
    assert_eq!(e.len(), 1);
    assert!(e[0].starts_with("p.yaml:"), "{e:?}");
    assert!(e[0].contains("invalid YAML"), "{e:?}");
}

#[test]
fn unknown_field_suggests_the_closest_name() {
    let e = errors(&with_rules("  - id: block-drop\n    verdcit: deny\n"));
    assert!(
        e.contains(
            &"p.yaml:6:5: unknown field 'verdcit' in rule 'block-drop' (did you mean 'verdict'?)"
                .to_string()
        ),
        "{e:?}"
    );
}

#[test]
fn unknown_top_level_field_lists_the_known_ones_when_nothing_is_close() {
    let e = errors(&format!("{HEAD}zzzzzz: 1\n"));
    assert_eq!(
        e,
        [
            "p.yaml:4:1: unknown field 'zzzzzz' in the policy (expected one of: version, name, default, rules, tools, include, egress, audit, identity, rings, limits)"
        ]
    );
}

#[test]
fn missing_default_is_an_error() {
    let e = errors("version: warden/v1\nname: t\nrules: []\n");
    assert_eq!(
        e,
        [
            "p.yaml:1:1: missing 'default' (a policy must say what happens when no rule matches: add 'default: deny' or 'default: allow')"
        ]
    );
}

#[test]
fn default_must_be_allow_or_deny() {
    let e = errors("version: warden/v1\nname: t\ndefault: alow\n");
    assert_eq!(
        e,
        ["p.yaml:3:10: invalid default 'alow': expected 'allow' or 'deny' (did you mean 'allow'?)"]
    );
}

#[test]
fn wrong_version_is_refused() {
    let e = errors("version: warden/v2\nname: t\ndefault: deny\n");
    assert_eq!(
        e,
        ["p.yaml:1:10: unsupported version 'warden/v2' (this warden reads 'warden/v1')"]
    );
}

#[test]
fn unknown_verdict() {
    let e = errors(&with_rules("  - id: r\n    verdict: dney\n"));
    assert_eq!(
        e,
        ["p.yaml:6:14: unknown verdict 'dney' in rule 'r' (did you mean 'deny'?)"]
    );
}

#[test]
fn unknown_intervention_point() {
    let e = errors(&with_rules(
        "  - id: r\n    on: [pre_tool_call, pre_tool_cal]\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        [
            "p.yaml:6:25: unknown intervention point 'pre_tool_cal' in rule 'r' (did you mean 'pre_tool_call'?)"
        ]
    );
}

#[test]
fn duplicate_rule_ids() {
    let e = errors(&with_rules(
        "  - id: r\n    verdict: deny\n  - id: r\n    verdict: allow\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:7:9: duplicate rule id 'r' (first defined at p.yaml:5)"]
    );
}

#[test]
fn cel_syntax_error_points_inside_the_expression() {
    let e = errors(&with_rules(
        "  - id: r\n    when: args.x ==\n    verdict: deny\n",
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with(
            "p.yaml:6:11: invalid CEL in 'when' of rule 'r' at 1:10 of the expression: Syntax error"
        ),
        "{e:?}"
    );
}

#[test]
fn cel_unknown_variable_is_caught_at_load() {
    let e = errors(&with_rules(
        "  - id: r\n    when: argz.x == 1\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:6:11: unknown variable 'argz' in 'when' of rule 'r' (did you mean 'args'?)"]
    );
}

#[test]
fn comprehension_variables_are_not_unknown() {
    let e = errors(&with_rules(
        "  - id: r\n    when: args.to.exists(x, x.endsWith('@evil.io'))\n    verdict: deny\n",
    ));
    assert!(e.is_empty(), "{e:?}");
}

#[test]
fn unknown_intent_is_an_error_not_a_silent_miss() {
    let e = errors(&with_rules(
        "  - id: r\n    match: {intents: [destrutive]}\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:6:23: unknown intent 'destrutive' in rule 'r' (did you mean 'destructive'?)"]
    );
}

#[test]
fn transform_needs_its_list_and_only_with_its_verdict() {
    let e = errors(&with_rules("  - id: r\n    verdict: transform\n"));
    assert_eq!(
        e,
        [
            "p.yaml:5:5: rule 'r' has verdict 'transform' but no 'transform' list (add e.g. 'transform: [{path: password, redact: true}]')"
        ]
    );
    let e = errors(&with_rules(
        "  - id: r\n    verdict: deny\n    transform: [{path: a, redact: true}]\n",
    ));
    assert_eq!(
        e,
        [
            "p.yaml:7:16: 'transform' in rule 'r' has no effect with verdict 'deny' (use 'verdict: transform' or remove 'transform')"
        ]
    );
}

#[test]
fn invalid_ring_and_impossible_ring_range() {
    let e = errors(&with_rules(
        "  - id: r\n    match: {ring: {max: 7}}\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:6:25: invalid ring '7' (rings are 0 (most privileged) to 3)"]
    );
    let e = errors(&with_rules(
        "  - id: r\n    match: {ring: {min: 3, max: 1}}\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:6:19: 'ring' of rule 'r' can never hold: min 3 > max 1"]
    );
}

#[test]
fn wrong_types_say_what_was_expected() {
    let e = errors(&with_rules(
        "  - id: r\n    match: {tool: {a: 1}}\n    verdict: deny\n",
    ));
    assert_eq!(
        e,
        ["p.yaml:6:19: expected a string or a list of strings for 'tool', found a mapping"]
    );
    let e = errors(&format!("{HEAD}rules: 5\n"));
    assert_eq!(
        e,
        ["p.yaml:4:8: expected a list for 'rules', found an integer"]
    );
}

#[test]
fn strict_booleans_keep_no_as_a_string() {
    // `NO` must not turn into `false`: it is a (bad) verdict, reported as such.
    let e = errors(&with_rules("  - id: r\n    verdict: NO\n"));
    assert_eq!(
        e,
        [
            "p.yaml:6:14: unknown verdict 'NO' in rule 'r' (expected one of: allow, warn, transform, require_approval, deny)"
        ]
    );
}

#[test]
fn every_problem_is_reported_in_one_run_in_source_order() {
    let e = errors(
        "version: warden/v1\nname: t\nrules:\n  - id: a\n    verdcit: deny\n  - id: b\n    when: nope == 1\n    verdict: allow\n",
    );
    let lines: Vec<u64> = e
        .iter()
        .map(|d| d.split(':').nth(1).unwrap().parse().unwrap())
        .collect();
    assert_eq!(e.len(), 4, "{e:?}"); // missing default, unknown field, missing verdict, unknown variable
    assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{e:?}");
}

#[test]
fn file_size_limit() {
    let big = format!("{HEAD}# {}\n", "x".repeat(limits::MAX_POLICY_BYTES));
    let e = errors(&big);
    assert_eq!(
        e,
        [format!(
            "p.yaml: policy is {} bytes; the limit is {}",
            big.len(),
            limits::MAX_POLICY_BYTES
        )]
    );
}

#[test]
fn rule_count_limit() {
    let rules: String = (0..=limits::MAX_RULES)
        .map(|i| format!("  - {{id: r{i}, verdict: allow}}\n"))
        .collect();
    let e = errors(&with_rules(&rules));
    assert_eq!(
        e,
        [format!(
            "p.yaml: policy has {} rules; the limit is {}",
            limits::MAX_RULES + 1,
            limits::MAX_RULES
        )]
    );
}

#[test]
fn cel_length_limit() {
    let long = format!("args.x == '{}'", "a".repeat(limits::MAX_CEL_LEN));
    let e = errors(&with_rules(&format!(
        "  - id: r\n    when: \"{long}\"\n    verdict: deny\n"
    )));
    assert_eq!(
        e,
        [format!(
            "p.yaml:6:11: 'when' in rule 'r' is {} bytes; the limit is {}",
            long.len(),
            limits::MAX_CEL_LEN
        )]
    );
}

#[test]
fn glob_count_limit() {
    let per_rule = 100;
    let n_rules = limits::MAX_GLOBS / per_rule + 1;
    let rules: String = (0..n_rules)
        .map(|i| {
            let globs: Vec<String> = (0..per_rule).map(|g| format!("\"t{i}_{g}.*\"")).collect();
            format!(
                "  - {{id: r{i}, match: {{tool: [{}]}}, verdict: allow}}\n",
                globs.join(", ")
            )
        })
        .collect();
    let e = errors(&with_rules(&rules));
    assert_eq!(
        e,
        [format!(
            "p.yaml: policy has {} tool globs; the limit is {}",
            n_rules * per_rule,
            limits::MAX_GLOBS
        )]
    );
}

#[test]
fn yaml_depth_limit_is_refused_on_a_small_stack() {
    // Test threads have 2 MiB stacks: the limit must hold well within that,
    // in flow style, block style, and far past the limit.
    let nested = |d: usize| format!("{HEAD}tools: {}{}\n", "[".repeat(d), "]".repeat(d));
    let e = errors(&nested(limits::MAX_YAML_DEPTH + 1));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].ends_with(&format!(
            "YAML nests deeper than {} levels (a policy never needs this much nesting)",
            limits::MAX_YAML_DEPTH
        )),
        "{e:?}"
    );
    assert_eq!(errors(&nested(100_000)).len(), 1);
    let block: String = (0..200)
        .map(|i| format!("{}k:\n", "  ".repeat(i)))
        .collect();
    assert_eq!(errors(&format!("{HEAD}tools:\n{block}")).len(), 1);
    // Just under the limit still parses (and fails later only for its content).
    let ok = errors(&nested(limits::MAX_YAML_DEPTH - 2));
    assert!(ok.iter().all(|d| !d.contains("nests deeper")), "{ok:?}");
}

fn sources(files: &[(&str, &str)]) -> MemorySources {
    MemorySources(
        files
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    )
}

#[test]
fn include_outside_the_directory_is_refused() {
    let src = sources(&[("dir/p.yaml", &format!("{HEAD}include: [../secret.yaml]\n"))]);
    let e = load("dir/p.yaml", &src).unwrap_err().to_string();
    assert_eq!(
        e,
        "dir/p.yaml:4:11: include '../secret.yaml' is outside the directory of 'dir/p.yaml' (includes must stay in the including file's directory)"
    );
    let src = sources(&[("p.yaml", &format!("{HEAD}include: [/etc/passwd]\n"))]);
    assert!(
        load("p.yaml", &src)
            .unwrap_err()
            .to_string()
            .contains("must be a relative path")
    );
}

#[test]
fn include_cycles_are_refused() {
    let src = sources(&[
        ("p.yaml", &format!("{HEAD}include: [a.yaml]\n")),
        ("a.yaml", "version: warden/v1\ninclude: [sub/b.yaml]\n"),
        ("sub/b.yaml", "version: warden/v1\ninclude: [../a.yaml]\n"),
    ]);
    // sub/b.yaml may not climb out of sub/: confinement is per including file.
    let e = load("p.yaml", &src).unwrap_err().to_string();
    assert!(e.contains("outside the directory of 'sub/b.yaml'"), "{e}");

    let src = sources(&[
        ("p.yaml", &format!("{HEAD}include: [a.yaml]\n")),
        ("a.yaml", "version: warden/v1\ninclude: [p.yaml]\n"),
    ]);
    let e = load("p.yaml", &src).unwrap_err().to_string();
    assert_eq!(e, "a.yaml:2:11: include cycle: p.yaml -> a.yaml -> p.yaml");
}

#[test]
fn include_conflicts_are_refused() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [a.yaml]\nrules:\n  - {{id: r, verdict: deny}}\n"),
        ),
        (
            "a.yaml",
            "version: warden/v1\ndefault: allow\nrules:\n  - {id: r, verdict: allow}\ntools:\n  x: {labels: [pii]}\n",
        ),
    ]);
    let e: Vec<String> = load("p.yaml", &src)
        .unwrap_err()
        .diagnostics
        .iter()
        .map(|d| d.to_string())
        .collect();
    assert_eq!(
        e,
        [
            "p.yaml:6:10: duplicate rule id 'r' (first defined at a.yaml:4)",
            "a.yaml:2:10: conflicting default: 'allow' here, but 'deny' in p.yaml",
        ]
    );
}

#[test]
fn includes_merge_rules_first_and_tools() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [lib/common.yaml]\nrules:\n  - {{id: own, verdict: allow}}\n"),
        ),
        (
            "lib/common.yaml",
            "version: warden/v1\ntools:\n  db.query: {labels: [pii], args: {sql: sql}}\nrules:\n  - {id: base, verdict: deny}\n",
        ),
    ]);
    let p = load("p.yaml", &src).unwrap();
    let ids: Vec<&str> = p.rules.iter().map(|r| &*r.id).collect();
    assert_eq!(ids, ["base", "own"]);
    assert_eq!(p.tools["db.query"].labels, ["pii"]);
    assert_eq!(p.sources.len(), 2);
}

#[test]
fn egress_entries_are_checked_one_by_one() {
    let e = errors(&format!(
        "{HEAD}egress: [api.example.com, \"a.*.com\", \"*.ok.org\", \"exa mple.com\"]\n"
    ));
    assert_eq!(
        e,
        [
            "p.yaml:4:27: invalid egress entry \"a.*.com\": `*` is only allowed as the whole first label; write a host name (`api.example.com`) or a wildcard (`*.example.com`)",
            "p.yaml:4:50: invalid egress entry \"exa mple.com\": only letters, digits, `-`, `.` (and `:` in IPv6 literals) are allowed; write internationalised names in punycode; write a host name (`api.example.com`) or a wildcard (`*.example.com`)",
        ]
    );
    let e = errors(&format!("{HEAD}egress: api.example.com\n"));
    assert_eq!(
        e,
        [
            "p.yaml:4:9: expected a list for 'egress', found a string (write 'egress: [api.example.com, \"*.example.org\"]')"
        ]
    );
}

#[test]
fn egress_lists_merge_across_includes() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [a.yaml]\negress: [api.example.com]\n"),
        ),
        (
            "a.yaml",
            "version: warden/v1\negress: [\"*.corp.example\", api.example.com]\n",
        ),
    ]);
    let p = load("p.yaml", &src).unwrap();
    assert_eq!(
        p.egress.as_deref(),
        Some(&["*.corp.example".to_string(), "api.example.com".to_string()][..])
    );
    let none = parse("p.yaml", HEAD).unwrap();
    assert_eq!(none.egress, None);
}

#[test]
fn audit_arguments_must_be_full_or_hash() {
    let e = errors(&format!("{HEAD}audit: {{arguments: hsh}}\n"));
    assert_eq!(
        e,
        [
            "p.yaml:4:20: invalid audit.arguments 'hsh': expected 'full' or 'hash' (did you mean 'hash'?)"
        ]
    );
    let e = errors(&format!("{HEAD}audit: {{argument: hash}}\n"));
    assert_eq!(
        e,
        ["p.yaml:4:9: unknown field 'argument' in 'audit' (did you mean 'arguments'?)"]
    );
    let p = parse("p.yaml", &format!("{HEAD}audit: {{arguments: hash}}\n")).unwrap();
    assert_eq!(p.audit.arguments, warden_policy::AuditArguments::Hash);
    assert_eq!(
        parse("p.yaml", HEAD).unwrap().audit.arguments,
        warden_policy::AuditArguments::Full
    );
}

#[test]
fn included_files_must_agree_on_audit_settings() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [a.yaml]\naudit: {{arguments: hash}}\n"),
        ),
        ("a.yaml", "version: warden/v1\naudit: {arguments: full}\n"),
    ]);
    let e = load("p.yaml", &src).unwrap_err().to_string();
    assert_eq!(
        e,
        "p.yaml:5:8: conflicting audit settings: arguments 'hash' here, but 'full' in a.yaml"
    );
}

#[test]
fn argument_kinds_are_the_classifiers_kinds() {
    for kind in warden_policy::ARG_KINDS {
        let parsed: warden_intent::Kind = kind.parse().unwrap();
        assert_eq!(parsed.as_str(), *kind);
    }
}

#[test]
fn known_intents_are_the_classifiers_intents() {
    let classifier: Vec<&str> = warden_intent::Intent::ALL
        .iter()
        .map(|i| i.as_str())
        .collect();
    assert_eq!(warden_policy::KNOWN_INTENTS, classifier.as_slice());
}

const ORG: &str = "did:key:z6MkiTBz1ymuepAQ4HEHYSF1H8quG5GLVVQR3djdX3mDooWp";
const OTHER_ORG: &str = "did:key:z6MknGc3ocHs3zdPiJbnaaqDi58NGb4pk1Sp9WxWufuXSdxf";

#[test]
fn identity_short_and_long_forms() {
    let short = compile(parse("p.yaml", &format!("{HEAD}identity: required\n")).unwrap()).unwrap();
    assert!(short.identity().required);
    assert!(short.identity().issuers.is_empty());
    assert!(short.uses_identity());

    let long = compile(
        parse(
            "p.yaml",
            &format!(
                "{HEAD}identity: {{required: true, issuers: [{ORG}], signed_requests: required}}\n"
            ),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(long.identity().required);
    assert_eq!(long.identity().issuers[0].as_str(), ORG);
    assert_eq!(
        long.identity().signed_requests,
        warden_policy::SignedRequests::Required
    );

    let none = compile(parse("p.yaml", HEAD).unwrap()).unwrap();
    assert_eq!(*none.identity(), warden_policy::IdentitySettings::default());
    assert!(!none.uses_identity());
}

#[test]
fn identity_errors_point_at_the_value() {
    assert_eq!(
        errors(&format!("{HEAD}identity: requird\n")),
        [
            "p.yaml:4:11: invalid identity 'requird': expected 'required' or 'optional' (did you mean 'required'?)"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}identity: {{required: yes}}\n")),
        [
            "p.yaml:4:22: expected true or false for 'identity.required', found a string (write 'required: true')"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}identity: {{issuer: [{ORG}]}}\n")),
        ["p.yaml:4:12: unknown field 'issuer' in 'identity' (did you mean 'issuers'?)"]
    );
    let e = errors(&format!(
        "{HEAD}identity:\n  issuers:\n    - {ORG}\n    - did:web:example.com\n"
    ));
    assert_eq!(e.len(), 1, "{e:?}");
    assert!(
        e[0].starts_with("p.yaml:7:7: invalid issuer: \"did:web:example.com\" is not a did:key"),
        "{e:?}"
    );
    assert_eq!(
        errors(&format!("{HEAD}identity: {{issuers: {ORG}}}\n")),
        [
            "p.yaml:4:21: expected a list for 'identity.issuers', found a string (write 'issuers: [did:key:z6Mk…]')"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}identity: {{signed_requests: always}}\n")),
        [
            "p.yaml:4:29: invalid identity.signed_requests 'always': expected 'required' or 'optional'"
        ]
    );
}

#[test]
fn rule_identity_must_be_required_or_optional() {
    let p = compile(
        parse(
            "p.yaml",
            &with_rules("  - id: r\n    identity: required\n    verdict: allow\n"),
        )
        .unwrap(),
    )
    .unwrap();
    assert!(p.rules().next().unwrap().identity_required);
    assert!(p.uses_identity());
    assert!(!p.identity().required);
    assert_eq!(
        errors(&with_rules(
            "  - id: r\n    identity: yes\n    verdict: allow\n"
        )),
        ["p.yaml:6:15: invalid identity 'yes' in rule 'r' (expected 'required' or 'optional')"]
    );
}

#[test]
fn identity_merges_towards_the_stricter_across_includes() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [a.yaml]\nidentity: {{issuers: [{ORG}]}}\n"),
        ),
        (
            "a.yaml",
            &format!(
                "version: warden/v1\nidentity: {{required: true, issuers: [{OTHER_ORG}, {ORG}], signed_requests: required}}\n"
            ),
        ),
    ]);
    let p = load("p.yaml", &src).unwrap();
    assert!(p.identity.required);
    let issuers: Vec<&str> = p.identity.issuers.iter().map(|d| d.as_str()).collect();
    assert_eq!(issuers, [OTHER_ORG, ORG]);
    assert_eq!(
        p.identity.signed_requests,
        warden_policy::SignedRequests::Required
    );
}

#[test]
fn rings_are_parsed_and_validated() {
    let p = compile(
        parse(
            "p.yaml",
            &format!("{HEAD}rings: {{ring2: 500, ring1: 800, ring1_requires_approval: false}}\n"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        *p.rings(),
        warden_identity::RingThresholds {
            ring2: 500,
            ring1: 800,
            ring1_requires_approval: false
        }
    );
    let defaults =
        compile(parse("p.yaml", &format!("{HEAD}rings: {{ring2: 700}}\n")).unwrap()).unwrap();
    assert_eq!(defaults.rings().ring2, 700);
    assert_eq!(defaults.rings().ring1, 900);
    assert!(defaults.rings().ring1_requires_approval);

    assert_eq!(
        errors(&format!("{HEAD}rings: {{ring2: 950, ring1: 900}}\n")),
        [
            "p.yaml:4:16: trust configuration: rings.ring2 = 950 is above rings.ring1 (ring 2 must be easier to reach than ring 1)"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}rings: {{ring2: 0}}\n")),
        [
            "p.yaml:4:16: trust configuration: rings.ring2 = 0 would put every agent in ring 2 (hint: ring 3 is the default ring)"
        ]
    );
    assert_eq!(
        errors(&format!("{HEAD}rings: {{ring1: 1001}}\n")),
        ["p.yaml:4:16: invalid rings.ring1 '1001' (a trust score is an integer from 0 to 1000)"]
    );
    assert_eq!(
        errors(&format!("{HEAD}rings: {{ring3: 10}}\n")),
        ["p.yaml:4:9: unknown field 'ring3' in 'rings' (did you mean 'ring2'?)"]
    );
}

#[test]
fn included_files_must_agree_on_rings() {
    let src = sources(&[
        (
            "p.yaml",
            &format!("{HEAD}include: [a.yaml]\nrings: {{ring2: 650}}\n"),
        ),
        ("a.yaml", "version: warden/v1\nrings: {ring2: 600}\n"),
    ]);
    let e = load("p.yaml", &src).unwrap_err().to_string();
    assert_eq!(
        e,
        "p.yaml:5:8: conflicting rings: ring2 650, ring1 900 here, but ring2 600, ring1 900 in a.yaml"
    );
}

#[test]
fn catalog_findings_is_allow_or_hide() {
    let text = |v: &str| {
        format!(
            "{HEAD}tools:\n  t: {{findings: {v}}}\n  u: {{}}\nrules:\n  - {{id: r, verdict: allow}}\n"
        )
    };
    let p = parse("p.yaml", &text("allow")).unwrap();
    assert!(p.tools["t"].findings_allowed);
    assert!(!p.tools["u"].findings_allowed);
    assert!(!parse("p.yaml", &text("hide")).unwrap().tools["t"].findings_allowed);
    assert_eq!(
        errors(&text("maybe")),
        ["p.yaml:5:17: invalid findings 'maybe' in tool 't' (expected 'allow' or 'hide')"]
    );
}
