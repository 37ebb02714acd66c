//! Property test of the ingest parser: whatever the body, it never panics, and what it refuses it
//! refuses with a 4xx; what it accepts it accepts whole (one event per distinct counter).

use bff::ingest::parse_and_prepare;
use serde_json::{json, Value};

/// xorshift64*: deterministic, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn random_value(rng: &mut Rng, depth: u32) -> Value {
    match rng.below(if depth > 2 { 6 } else { 8 }) {
        0 => Value::Null,
        1 => json!(rng.below(2) == 0),
        2 => json!(rng.next() as i64),
        3 => json!(-(rng.below(1000) as i64)),
        4 => json!((rng.next() as f64) / 3.0),
        5 => {
            let pool = [
                "",
                "runner_on_ok",
                "\u{0}",
                "ünï",
                "\u{1b}[31m",
                "2026-11-23T10:00:00Z",
                "x".repeat(300).as_str(),
                "💥",
            ]
            .map(String::from);
            json!(pool[rng.below(pool.len() as u64) as usize])
        }
        6 => Value::Array((0..rng.below(4)).map(|_| random_value(rng, depth + 1)).collect()),
        _ => {
            let keys = [
                "counter",
                "event",
                "event_data",
                "created",
                "stdout",
                "uuid",
                "host",
                "res",
                "start_line",
                "failed",
            ];
            Value::Object(
                (0..rng.below(5))
                    .map(|_| {
                        (
                            keys[rng.below(keys.len() as u64) as usize].to_string(),
                            random_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            )
        }
    }
}

fn valid_batch(rng: &mut Rng) -> Value {
    let events: Vec<Value> = (0..1 + rng.below(6))
        .map(|i| {
            json!({"counter": i + 1, "event": "runner_on_ok", "uuid": format!("u{i}"), "created": "2026-11-23T10:00:00.5",
                   "stdout": "ok", "start_line": i, "end_line": i + 1,
                   "event_data": {"host": "web-01", "task": "t", "res": {"changed": i % 2 == 0}}})
        })
        .collect();
    json!({"source": "local", "job": {"external_id": rng.below(100).to_string(), "name": "n"}, "events": events})
}

/// Replaces one value somewhere in the document with a random one.
fn mutate(v: &mut Value, rng: &mut Rng) {
    match v {
        Value::Object(m) if !m.is_empty() && rng.below(3) != 0 => {
            let keys: Vec<String> = m.keys().cloned().collect();
            let k = &keys[rng.below(keys.len() as u64) as usize];
            if rng.below(5) == 0 {
                m.remove(k);
            } else if let Some(child) = m.get_mut(k) {
                mutate(child, rng);
            }
        }
        Value::Array(a) if !a.is_empty() && rng.below(3) != 0 => {
            let i = rng.below(a.len() as u64) as usize;
            mutate(&mut a[i], rng);
        }
        other => *other = random_value(rng, 0),
    }
}

fn check(raw: &[u8]) -> bool {
    match parse_and_prepare(raw) {
        Ok(p) => {
            // What comes out is exactly the set of counters that went in, each once, in order.
            let out: Vec<i64> = p.events.iter().map(|e| e.counter).collect();
            let sent: Value = serde_json::from_slice(raw).expect("an accepted body is JSON");
            let given: Vec<i64> = sent["events"]
                .as_array()
                .map(|evs| evs.iter().filter_map(|e| e["counter"].as_i64()).collect())
                .unwrap_or_default();
            let set: std::collections::BTreeSet<i64> = given.iter().copied().collect();
            assert_eq!(out, set.iter().copied().collect::<Vec<_>>(), "the counters in are the counters out");
            assert_eq!(
                p.repeated_in_batch as usize,
                given.len() - set.len(),
                "repeats are counted, not kept"
            );
            true
        }
        Err(e) => {
            let status = e.status().as_u16();
            assert!((400..500).contains(&status), "refused with {status}: {e}");
            assert!(!e.to_string().is_empty());
            false
        }
    }
}

#[test]
fn the_ingest_parser_never_panics_and_refuses_with_4xx() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let (mut accepted, mut refused) = (0, 0);
    for round in 0..20_000u32 {
        let raw: Vec<u8> = match round % 4 {
            // Random bytes.
            0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
            // A valid batch with one value changed.
            1 | 2 => {
                let mut v = valid_batch(&mut rng);
                for _ in 0..1 + rng.below(3) {
                    mutate(&mut v, &mut rng);
                }
                v.to_string().into_bytes()
            }
            // A valid batch cut short.
            _ => {
                let s = valid_batch(&mut rng).to_string();
                let cut = rng.below(s.len() as u64) as usize;
                s.as_bytes()[..cut].to_vec()
            }
        };
        if check(&raw) {
            accepted += 1;
        } else {
            refused += 1;
        }
    }
    // Both outcomes are exercised: the mutations leave many batches valid and break many.
    assert!(accepted > 200 && refused > 1_000, "accepted {accepted}, refused {refused}");
}

/// What an event stores, read back: its columns and its data.
fn stored(e: &bff::store::events::Event) -> Value {
    let data = match &e.raw_data {
        Some(raw) => serde_json::from_str(raw.get()).expect("raw data is JSON"),
        None => e.event_data.clone(),
    };
    json!([
        e.counter,
        e.event,
        e.uuid,
        e.parent_uuid,
        e.created,
        e.host,
        e.play,
        e.task,
        e.role,
        e.stdout,
        e.start_line,
        e.end_line,
        e.failed,
        e.changed,
        e.ignore_errors,
        data
    ])
}

/// The body read in one pass (event data kept as sent when it can be) stores exactly what
/// reading it whole and masking it stores, and refuses what that refuses: over random batches
/// whose data carries secrets, `no_log`, NULs, escapes and odd shapes.
#[test]
fn reading_the_body_in_one_pass_stores_what_reading_it_whole_does() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    let datas = [
        json!({"host": "web-01", "task": "t", "res": {"changed": true, "msg": "ok"}}),
        json!({"host": "web-01", "res": {"password": "hunter2", "changed": false}}),
        json!({"host": "web-01", "res": {"_ansible_no_log": true, "stdout": "secret", "changed": true}}),
        json!({"host": "web-01", "res": {"Api_Key": "abc", "nested": [{"token": "t"}]}}),
        json!({"host": "web\u{0}01", "play": "p"}),
        json!({"host": "web-01", "res": {"stdout": "a\u{0}b"}}),
        json!({"host": 5, "play": ["x"], "task": {"a": 1}, "ignore_errors": "yes", "res": "text"}),
        json!({"host": "wéb-01", "task": "t\"q", "res": {"changed": "yes", "key": "k"}}),
        json!({"remote_addr": "10.0.0.1", "host_name": "db-01", "ignore_errors": true, "res": {"changed": true}}),
        json!({"task": "t", "res": {"results": [{"item": 1, "changed": true}], "changed": true}}),
        json!({"stats": {"ok": {"web-01": 1}}, "ok": {"web-01": 1}}),
        json!({}),
        Value::Null,
        json!([1, 2]),
        json!("text"),
    ];
    let kinds = [
        "runner_on_ok",
        "runner_on_failed",
        "playbook_on_stats",
        "runner_on_unreachable",
        "playbook_on_task_start",
    ];
    for round in 0..3_000u32 {
        let events: Vec<Value> = (0..1 + rng.below(5))
            .map(|i| {
                let mut e = json!({"counter": i + 1, "event": kinds[rng.below(kinds.len() as u64) as usize],
                                   "uuid": format!("u{i}"), "stdout": "out", "created": "2026-11-23T10:00:00Z",
                                   "event_data": datas[rng.below(datas.len() as u64) as usize].clone()});
                if rng.below(4) == 0 {
                    mutate(&mut e, &mut rng);
                }
                e
            })
            .collect();
        let body = json!({"source": "local", "job": {"external_id": "1"}, "events": events}).to_string();
        // The escaped form too (what Python's json.dumps sends for non-ASCII text).
        let body = if round % 2 == 0 { body } else { escape_non_ascii(&body) };
        let whole = serde_json::from_str::<shared::IngestBatch>(&body)
            .map_err(|e| e.to_string())
            .and_then(|b| bff::ingest::prepare(b).map_err(|e| e.to_string()));
        match (parse_and_prepare(body.as_bytes()), whole) {
            (Ok(fast), Ok(slow)) => {
                let a: Vec<Value> = fast.events.iter().map(stored).collect();
                let b: Vec<Value> = slow.events.iter().map(stored).collect();
                assert_eq!(a, b, "{body}");
            }
            (Err(fast), Err(_)) => assert!((400..500).contains(&fast.status().as_u16())),
            (fast, slow) => {
                panic!("{body}\none way {:?}, the other {:?}", fast.map(|_| ()), slow.map(|_| ()))
            }
        }
    }
}

fn escape_non_ascii(s: &str) -> String {
    let mut out = String::new();
    for c in s.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut buf = [0u16; 2];
            for unit in c.encode_utf16(&mut buf) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// Secrets in event data are masked on the one-pass way too, at any depth, and data without
/// any is kept as sent.
#[test]
fn secrets_in_event_data_are_masked_and_plain_data_is_kept_as_sent() {
    let body = json!({"source": "local", "job": {"external_id": "1"}, "events": [
        {"counter": 1, "event": "runner_on_ok", "event_data": {"host": "h", "res": {"deep": [{"db_password": "hunter2"}]}}},
        {"counter": 2, "event": "runner_on_ok", "event_data": {"host": "h", "res": {"_ansible_no_log": true, "stdout": "s3cret"}}},
        {"counter": 3, "event": "runner_on_ok", "event_data": {"host": "h", "res": {"msg": "plain", "changed": true}}}
    ]})
    .to_string();
    let p = parse_and_prepare(body.as_bytes()).expect("parse");
    let text: Vec<String> = p.events.iter().map(|e| stored(e)[15].to_string()).collect();
    assert!(!text[0].contains("hunter2") && !text[1].contains("s3cret"), "{text:?}");
    assert!(p.events[0].raw_data.is_none() && p.events[1].raw_data.is_none());
    assert!(p.events[2].raw_data.is_some(), "plain data is stored as sent");
    assert!(p.events[2].changed);
    assert_eq!(p.events[2].host.as_deref(), Some("h"));
}
