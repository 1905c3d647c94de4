//! Cost of the raw parsers on the benchmark inputs (not part of the API).
use std::hint::black_box;
use std::time::Instant;

fn time<F: FnMut()>(name: &str, mut f: F) {
    for _ in 0..500 {
        f();
    }
    let n = 5000;
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    println!(
        "{name}: {:.1} µs",
        t.elapsed().as_secs_f64() * 1e6 / n as f64
    );
}

fn main() {
    let sql = std::fs::read_to_string("/tmp/sql1kb.txt").unwrap();
    let sh = std::fs::read_to_string("/tmp/sh1kb.txt").unwrap();
    use sqlparser::dialect::PostgreSqlDialect;
    time("sqlparser parse_sql", || {
        black_box(
            sqlparser::parser::Parser::parse_sql(&PostgreSqlDialect {}, black_box(&sql)).unwrap(),
        );
    });
    time("sql tokenize", || {
        black_box(
            sqlparser::tokenizer::Tokenizer::new(&PostgreSqlDialect {}, black_box(&sql))
                .tokenize()
                .unwrap(),
        );
    });
    time("brush parse_program", || {
        black_box(
            brush_parser::Parser::new(black_box(sh.as_bytes()), &Default::default())
                .parse_program()
                .unwrap(),
        );
    });
    time("brush tokenize", || {
        black_box(
            brush_parser::uncached_tokenize_str(black_box(&sh), &Default::default()).unwrap(),
        );
    });
    time("classify sql", || {
        black_box(warden_intent::classify(
            warden_intent::Kind::Sql,
            black_box(&sql),
        ));
    });
    time("classify shell", || {
        black_box(warden_intent::classify(
            warden_intent::Kind::Shell,
            black_box(&sh),
        ));
    });
}
