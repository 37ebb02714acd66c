//! When a request should run, in the operator's words: "tonight at 22:00", "today at 18:30",
//! "tomorrow at 6", "at 7pm", "on 2026-12-24 at 22:00". The phrase is taken out of the message
//! before the action is read (so "22:00" is never taken for a host), and resolved in the
//! person's zone against the time the request was made.

use std::sync::LazyLock;

use chrono::{DateTime, Duration, NaiveDate, NaiveDateTime, NaiveTime, Utc};
use regex::Regex;

/// Which day a phrase names.
#[derive(Debug, Clone, PartialEq)]
enum Day {
    /// No day: today if the time is still to come, else tomorrow.
    Next,
    Today,
    /// Today, and a small hour means the evening ("tonight at 10" is 22:00).
    Tonight,
    Tomorrow,
    On(NaiveDate),
}

/// A time phrase found in a message.
#[derive(Debug, Clone, PartialEq)]
pub struct Phrase {
    day: Day,
    time: NaiveTime,
    /// As typed, for the answer.
    pub words: String,
}

static PHRASE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?ix)
        \b(?: (?P<day>tonight|this\s+evening|today|tomorrow)
            | on\s+(?P<date>\d{4}-\d{2}-\d{2}) )?
        \s*\bat\s+(?P<h>\d{1,2})(?:[:.h](?P<m>\d{2}))?\s*(?P<ampm>am|pm|h|o'clock)?\b
        (?:\s+(?P<day2>tonight|today|tomorrow))?",
    )
    .expect("the when pattern")
});

/// Takes the last time phrase out of a message: the message without it, and the phrase.
pub fn take(text: &str) -> (String, Option<Phrase>) {
    let Some(c) = PHRASE.captures_iter(text).last() else { return (text.to_string(), None) };
    let whole = c.get(0).expect("match");
    let Some(mut hour) = c.name("h").and_then(|h| h.as_str().parse::<u32>().ok()) else {
        return (text.to_string(), None);
    };
    let minute = c.name("m").and_then(|m| m.as_str().parse::<u32>().ok()).unwrap_or(0);
    let ampm = c.name("ampm").map(|a| a.as_str().to_ascii_lowercase());
    let day_word = c.name("day").or(c.name("day2")).map(|d| d.as_str().to_ascii_lowercase());
    let day = match (day_word.as_deref(), c.name("date")) {
        (_, Some(d)) => match NaiveDate::parse_from_str(d.as_str(), "%Y-%m-%d") {
            Ok(d) => Day::On(d),
            Err(_) => return (text.to_string(), None),
        },
        (Some("tonight"), _) => Day::Tonight,
        (Some(w), _) if w.starts_with("this") => Day::Tonight,
        (Some("today"), _) => Day::Today,
        (Some("tomorrow"), _) => Day::Tomorrow,
        _ => Day::Next,
    };
    match ampm.as_deref() {
        Some("pm") if hour < 12 => hour += 12,
        Some("am") if hour == 12 => hour = 0,
        None if day == Day::Tonight && (1..12).contains(&hour) => hour += 12,
        _ => {}
    }
    let Some(time) = NaiveTime::from_hms_opt(hour, minute, 0) else { return (text.to_string(), None) };
    let rest = format!("{} {}", &text[..whole.start()], &text[whole.end()..]);
    (rest, Some(Phrase { day, time, words: whole.as_str().trim().to_string() }))
}

impl Phrase {
    /// The local date-time it names, for a request made at `made` (in the zone's local time).
    pub fn resolve(&self, made: NaiveDateTime) -> NaiveDateTime {
        let today = made.date();
        match &self.day {
            Day::Today | Day::Tonight => today.and_time(self.time),
            Day::Tomorrow => (today + Duration::days(1)).and_time(self.time),
            Day::On(d) => d.and_time(self.time),
            Day::Next => {
                let t = today.and_time(self.time);
                if t > made {
                    t
                } else {
                    t + Duration::days(1)
                }
            }
        }
    }
}

/// The local time in `zone` of an instant.
pub fn local_in(zone: chrono_tz::Tz, t: DateTime<Utc>) -> NaiveDateTime {
    t.with_timezone(&zone).naive_local()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> NaiveDateTime {
        NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("time")
    }

    fn when(text: &str, made: &str) -> Option<(String, NaiveDateTime)> {
        let (rest, p) = take(text);
        p.map(|p| (rest.split_whitespace().collect::<Vec<_>>().join(" "), p.resolve(at(made))))
    }

    #[test]
    fn the_usual_phrases_resolve_in_local_time() {
        let made = "2026-12-01 15:10";
        assert_eq!(
            when("Patch server web-01 with Group-1 tonight at 22:00", made),
            Some(("Patch server web-01 with Group-1".into(), at("2026-12-01 22:00")))
        );
        assert_eq!(
            when("patch web-01 with Group-1 tomorrow at 6", made).map(|w| w.1),
            Some(at("2026-12-02 06:00"))
        );
        assert_eq!(when("patch web-01 tonight at 10", made).map(|w| w.1), Some(at("2026-12-01 22:00")));
        assert_eq!(when("patch web-01 at 7pm", made).map(|w| w.1), Some(at("2026-12-01 19:00")));
        assert_eq!(
            when("patch web-01 at 9:30", made).map(|w| w.1),
            Some(at("2026-12-02 09:30")),
            "passed today: tomorrow"
        );
        assert_eq!(when("patch web-01 at 18h30 today", made).map(|w| w.1), Some(at("2026-12-01 18:30")));
        assert_eq!(
            when("patch web-01 on 2026-12-24 at 22:00", made).map(|w| w.1),
            Some(at("2026-12-24 22:00"))
        );
        // "tonight at 22:00" said after 22:00 names a time that has passed (the caller refuses it).
        assert_eq!(
            when("patch web-01 tonight at 22:00", "2026-12-01 23:00").map(|w| w.1),
            Some(at("2026-12-01 22:00"))
        );
    }

    #[test]
    fn no_phrase_or_no_time_leaves_the_message_alone() {
        assert_eq!(take("Patch server web-01 with Group-1").1, None);
        assert_eq!(take("patch web-01 at 25:00").1, None);
        assert_eq!(take("patch web-01 tonight").1, None);
        assert_eq!(take("patch 10.0.0.1 with Group-1").1, None);
    }
}
