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
            let mut counters: Vec<i64> = p.events.iter().map(|e| e.counter).collect();
            counters.dedup();
            assert_eq!(counters.len(), p.events.len(), "one event per counter");
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
