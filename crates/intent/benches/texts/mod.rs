//! The benchmark inputs, shared with `examples/classify_calls.rs`.

/// Repeats `unit` (joined by `sep`) until the text is about 1 KB.
fn about_1kb(units: &[&str], sep: &str) -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 1000 {
        if !s.is_empty() {
            s.push_str(sep);
        }
        s.push_str(units[i % units.len()]);
        i += 1;
    }
    s
}

pub fn shell_1kb() -> String {
    about_1kb(
        &[
            "cd /srv/app",
            "git fetch origin && git status --short",
            "grep -rn 'TODO' src/ | sort | uniq -c | head -n 20",
            "find . -name '*.log' -mtime +7 -print",
            "curl -s https://api.example.com/v1/health | jq '.status'",
            "tar czf /tmp/build-$(date +%s).tgz target/release/app",
            "echo \"deploying $VERSION\" >> /tmp/deploy.log",
            "docker ps --format '{{.Names}}' | xargs -n1 docker inspect",
        ],
        " && ",
    )
}

pub fn sql_1kb() -> String {
    about_1kb(
        &[
            "SELECT u.id, u.name, count(o.id) AS orders FROM users u LEFT JOIN orders o ON o.user_id = u.id WHERE u.created_at > '2024-01-01' GROUP BY u.id, u.name ORDER BY orders DESC LIMIT 50",
            "UPDATE orders SET status = 'shipped', shipped_at = now() WHERE id IN (SELECT order_id FROM shipments WHERE carrier = 'ups')",
            "INSERT INTO audit_log (actor, action, at) VALUES ('agent-7', 'report', now())",
            "DELETE FROM sessions WHERE expires_at < now() - interval '1 day'",
        ],
        ";\n",
    )
}
