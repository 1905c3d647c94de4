//! Runs the labelled corpus in `corpus/` (format in `corpus/README.md`) and
//! fails under 95 % recall on attacks or over 2 % false positives on benign
//! look-alikes. Prints precision and recall per argument kind and per intent.

use std::collections::BTreeMap;

use warden_intent::{Config, Egress, Intent, Kind, classify_with};

const MIN_RECALL: f64 = 0.95;
const MAX_FALSE_POSITIVE_RATE: f64 = 0.02;
const MIN_CASES: usize = 300;

const RISKY: [Intent; 7] = [
    Intent::Destructive,
    Intent::Exfiltration,
    Intent::PrivilegeEscalation,
    Intent::CodeExecution,
    Intent::CredentialAccess,
    Intent::Persistence,
    Intent::Unknown,
];

struct Case {
    file: String,
    line: usize,
    attack: bool,
    kind: Kind,
    intents: Vec<Intent>,
    egress: Option<Vec<String>>,
    text: String,
}

fn load() -> Vec<Case> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("corpus directory")
        .map(|e| e.expect("corpus entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "txt"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    for path in files {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let body = std::fs::read_to_string(&path).expect("corpus file");
        for (i, line) in body.lines().enumerate() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            let (head, text) = line
                .split_once(" :: ")
                .unwrap_or_else(|| panic!("{name}:{}: missing ` :: `", i + 1));
            let mut parts = head.split_whitespace();
            let label = parts.next().unwrap();
            let kind: Kind = parts.next().unwrap().parse().unwrap();
            let intents = parts
                .next()
                .unwrap()
                .split(',')
                .map(|s| {
                    s.parse()
                        .unwrap_or_else(|e| panic!("{name}:{}: {e}", i + 1))
                })
                .collect();
            let egress = parts
                .next()
                .and_then(|p| p.strip_prefix("@egress="))
                .map(|e| e.split(',').map(str::to_string).collect());
            assert!(
                label == "attack" || label == "benign",
                "{name}:{}: label must be attack or benign",
                i + 1
            );
            cases.push(Case {
                file: name.clone(),
                line: i + 1,
                attack: label == "attack",
                kind,
                intents,
                egress,
                text: text.replace("{NL}", "\n").replace("{TAB}", "\t"),
            });
        }
    }
    cases
}

#[derive(Default)]
struct Tally {
    attacks: usize,
    caught: usize,
    benign: usize,
    flagged: usize,
}

impl Tally {
    fn recall(&self) -> f64 {
        ratio(self.caught, self.attacks)
    }
    fn precision(&self) -> f64 {
        ratio(self.caught, self.caught + self.flagged)
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 1.0 } else { a as f64 / b as f64 }
}

#[test]
fn corpus_recall_and_false_positive_rate() {
    let cases = load();
    assert!(
        cases.len() >= MIN_CASES,
        "corpus has {} cases, want at least {MIN_CASES}",
        cases.len()
    );
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_intent: BTreeMap<Intent, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut report = Vec::new();
    let mut mislabelled = 0usize;
    for c in &cases {
        let config = Config {
            egress: c
                .egress
                .as_ref()
                .map(|e| Egress::new(e).expect("valid egress in corpus")),
            ..Config::default()
        };
        let got = classify_with(&config, c.kind, &c.text);
        let kind = by_kind.entry(c.kind.to_string()).or_default();
        if c.attack {
            let caught = c.intents.iter().all(|i| got.has(*i));
            total.attacks += 1;
            kind.attacks += 1;
            total.caught += caught as usize;
            kind.caught += caught as usize;
            for i in &c.intents {
                let t = by_intent.entry(*i).or_default();
                t.attacks += 1;
                t.caught += got.has(*i) as usize;
            }
            if !caught {
                report.push(format!(
                    "MISSED   {}:{} want {:?} got {:?}: {}",
                    c.file, c.line, c.intents, got.intents, c.text
                ));
            }
        } else {
            let wrong: Vec<Intent> = got
                .intents
                .iter()
                .copied()
                .filter(|i| RISKY.contains(i) && !c.intents.contains(i))
                .collect();
            total.benign += 1;
            kind.benign += 1;
            total.flagged += !wrong.is_empty() as usize;
            kind.flagged += !wrong.is_empty() as usize;
            for i in &wrong {
                by_intent.entry(*i).or_default().flagged += 1;
            }
            if !wrong.is_empty() {
                report.push(format!(
                    "FALSE+   {}:{} flagged {:?} ({:?}): {}",
                    c.file,
                    c.line,
                    wrong,
                    got.findings
                        .iter()
                        .map(|f| f.evidence.as_str())
                        .collect::<Vec<_>>(),
                    c.text
                ));
            } else if got.intents != c.intents {
                mislabelled += 1;
                report.push(format!(
                    "(label)  {}:{} labelled {:?} got {:?}: {}",
                    c.file, c.line, c.intents, got.intents, c.text
                ));
            }
        }
    }
    for line in &report {
        println!("{line}");
    }
    // Benign cases are labelled with what they do (`write`, `read_only`);
    // the classifier must say exactly that, not merely avoid risky intents.
    assert_eq!(
        mislabelled, 0,
        "{mislabelled} benign cases got other intents than their labels (the (label) lines above)"
    );
    println!("\n| kind | attacks | benign | precision | recall | false positives |");
    println!("|---|---:|---:|---:|---:|---:|");
    for (k, t) in &by_kind {
        println!(
            "| {k} | {} | {} | {:.1} % | {:.1} % | {} ({:.1} %) |",
            t.attacks,
            t.benign,
            100.0 * t.precision(),
            100.0 * t.recall(),
            t.flagged,
            100.0 * ratio(t.flagged, t.benign)
        );
    }
    println!("\n| intent | attacks labelled | recall | benign flagged with it |");
    println!("|---|---:|---:|---:|");
    for (i, t) in &by_intent {
        println!(
            "| {i} | {} | {:.1} % | {} |",
            t.attacks,
            100.0 * t.recall(),
            t.flagged
        );
    }
    let recall = total.recall();
    let fp_rate = ratio(total.flagged, total.benign);
    println!(
        "\noverall: {} cases, {} attacks, {} benign; recall {:.1} %, false positives {:.1} % ({}), precision {:.1} %",
        cases.len(),
        total.attacks,
        total.benign,
        100.0 * recall,
        100.0 * fp_rate,
        total.flagged,
        100.0 * total.precision()
    );
    assert!(
        recall >= MIN_RECALL,
        "recall {:.3} is under {MIN_RECALL}",
        recall
    );
    assert!(
        fp_rate <= MAX_FALSE_POSITIVE_RATE,
        "false-positive rate {:.3} is over {MAX_FALSE_POSITIVE_RATE}",
        fp_rate
    );
}
