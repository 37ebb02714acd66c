//! When a schedule comes due: a cron expression (croner: five fields, an optional sixth in front
//! for seconds, `@hourly`-style names) or one local date-time, in an IANA zone (chrono-tz), minus
//! its exclusion windows. Pure: no clock, no database.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc, Weekday,
};
use chrono_tz::Tz;
use croner::parser::{CronParser, Seconds, Year};
use croner::Cron;
use shared::schedules::Exclusion;

/// How far ahead a schedule's runs are looked for; beyond it a schedule never fires (croner
/// itself gives up after a few thousand years).
const HORIZON_DAYS: i64 = 5 * 366;
/// Runs missed during downtime are counted up to this many (a year of every-second runs would
/// take the ticker seconds to count).
pub const DUE_COUNTED: usize = 100_000;

#[derive(Debug, Clone)]
pub enum When {
    Cron(Box<Cron>),
    Once(DateTime<Utc>),
}

#[derive(Debug, Clone)]
enum Excluded {
    Window(DateTime<Utc>, DateTime<Utc>),
    /// Days of the week, Monday = bit 0.
    Weekly(u8),
}

/// A checked timing.
#[derive(Debug, Clone)]
pub struct Timing {
    pub when: When,
    pub zone: Tz,
    excluded: Vec<Excluded>,
}

const FIELDS: [&str; 6] = ["second", "minute", "hour", "day of month", "month", "day of week"];

/// Reads a cron expression; the error names the field, its position and what is wrong.
pub fn parse_cron(text: &str) -> Result<Cron, String> {
    let parser = CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
    let text = text.trim();
    if text.is_empty() {
        return Err("`cron` is empty".into());
    }
    if text.chars().any(|c| c.is_control() && c != ' ' && c != '\t') || text.len() > 200 {
        return Err("`cron` is one line of at most 200 characters".into());
    }
    if text.starts_with('@') {
        let known = ["@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"];
        if !known.iter().any(|k| k.eq_ignore_ascii_case(text)) {
            return Err(format!("`cron`: unknown name {text:?} (one of {})", known.join(", ")));
        }
        let text = if text.eq_ignore_ascii_case("@midnight") { "@daily" } else { text };
        return parser.parse(text).map_err(|e| format!("`cron`: {e}"));
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    let names: &[&str] = match fields.len() {
        5 => &FIELDS[1..],
        6 => &FIELDS[..],
        n => {
            return Err(format!(
                "`cron` has {n} fields; it has 5 (minute hour day-of-month month day-of-week), \
                 or 6 with seconds first"
            ))
        }
    };
    // Each field alone, the others `*`, finds which one is wrong.
    for (i, field) in fields.iter().enumerate() {
        let mut probe = vec!["*"; fields.len()];
        probe[i] = field;
        if let Err(e) = parser.parse(&probe.join(" ")) {
            return Err(format!("`cron`: field {} ({}) {field:?} is not valid: {e}", i + 1, names[i]));
        }
    }
    parser.parse(text).map_err(|e| format!("`cron`: {e}"))
}

/// A zone by its IANA name.
pub fn parse_zone(name: &str) -> Result<Tz, String> {
    name.trim().parse::<Tz>().map_err(|_| {
        format!("`time_zone`: unknown zone {name:?} (an IANA name such as Europe/Berlin or UTC)")
    })
}

/// A local date-time without offset: `2026-12-24T22:00:00`, `2026-12-24T22:00`, or with a space.
pub fn parse_local(field: &str, text: &str) -> Result<NaiveDateTime, String> {
    let t = text.trim();
    for f in
        ["%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S%.f"]
    {
        if let Ok(n) = NaiveDateTime::parse_from_str(t, f) {
            return Ok(n);
        }
    }
    if let Ok(d) = NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default());
    }
    if DateTime::parse_from_rfc3339(t).is_ok() {
        return Err(format!(
            "`{field}` is a local date-time in the schedule's `time_zone`, without an offset: {text:?}"
        ));
    }
    Err(format!("`{field}` is a local date-time such as 2026-12-24T22:00:00, not {text:?}"))
}

/// The instant of a local time: the earlier one when the clocks go back, refused when they skip it.
fn instant(field: &str, zone: Tz, local: NaiveDateTime) -> Result<DateTime<Utc>, String> {
    match zone.from_local_datetime(&local) {
        LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        LocalResult::Ambiguous(a, _) => Ok(a.with_timezone(&Utc)),
        LocalResult::None => Err(format!(
            "`{field}`: {local} does not exist in {zone} (the clocks skip it); pick a time outside the change"
        )),
    }
}

/// The instant a local day starts (the first minute that exists, on a day that starts in a gap).
fn day_start(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let mut local = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    for _ in 0..48 {
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(30);
    }
    Utc.from_utc_datetime(&local)
}

fn weekday(name: &str) -> Option<Weekday> {
    let n = name.trim().to_ascii_lowercase();
    let all = [
        ("mon", Weekday::Mon),
        ("tue", Weekday::Tue),
        ("wed", Weekday::Wed),
        ("thu", Weekday::Thu),
        ("fri", Weekday::Fri),
        ("sat", Weekday::Sat),
        ("sun", Weekday::Sun),
    ];
    all.iter().find(|(short, _)| n.len() >= 3 && short.starts_with(&n[..3]) && n.len() <= 9).map(|(_, d)| *d)
}

impl Timing {
    /// Checks a timing; the error names the field.
    pub fn parse(
        cron: Option<&str>,
        at: Option<&str>,
        zone: &str,
        exclusions: &[Exclusion],
    ) -> Result<Timing, String> {
        let zone = parse_zone(zone)?;
        let when = match (cron, at) {
            (Some(c), None) => When::Cron(Box::new(parse_cron(c)?)),
            (None, Some(a)) => When::Once(instant("at", zone, parse_local("at", a)?)?),
            (Some(_), Some(_)) => return Err("give `cron` (repeating) or `at` (one time), not both".into()),
            (None, None) => return Err("say when: `cron` (repeating) or `at` (one time)".into()),
        };
        if exclusions.len() > 100 {
            return Err("`exclusions`: at most 100".into());
        }
        let mut excluded = Vec::new();
        for (i, e) in exclusions.iter().enumerate() {
            match (&e.from, &e.to, &e.weekly) {
                (Some(from), Some(to), None) => {
                    let field = format!("exclusions[{i}].from");
                    let f = parse_local(&field, from)?;
                    let t = parse_local(&format!("exclusions[{i}].to"), to)?;
                    if t <= f {
                        return Err(format!("`exclusions[{i}]` ends ({to}) before it starts ({from})"));
                    }
                    let start = zone.from_local_datetime(&f).earliest().map(|x| x.with_timezone(&Utc));
                    let end = zone.from_local_datetime(&t).latest().map(|x| x.with_timezone(&Utc));
                    let (Some(start), Some(end)) = (start, end) else {
                        return Err(format!(
                            "`exclusions[{i}]`: a bound does not exist in {zone} (the clocks skip it)"
                        ));
                    };
                    excluded.push(Excluded::Window(start, end));
                }
                (None, None, Some(weekly)) => {
                    if weekly.is_empty() {
                        return Err(format!("`exclusions[{i}].weekly` names no day"));
                    }
                    let mut bits = 0u8;
                    for d in weekly {
                        let day = weekday(d).ok_or_else(|| {
                            format!("`exclusions[{i}].weekly`: {d:?} is not a day (mon, tue, wed, thu, fri, sat, sun)")
                        })?;
                        bits |= 1 << day.num_days_from_monday();
                    }
                    excluded.push(Excluded::Weekly(bits));
                }
                _ => {
                    return Err(format!(
                        "`exclusions[{i}]` is {{\"from\", \"to\"}} (local date-times) or {{\"weekly\": [\"sat\", \"sun\"]}}"
                    ))
                }
            }
        }
        let all_days = excluded.iter().fold(0u8, |acc, e| match e {
            Excluded::Weekly(b) => acc | b,
            _ => acc,
        });
        if all_days == 0x7f {
            return Err("`exclusions` exclude every day of the week: the schedule would never run".into());
        }
        Ok(Timing { when, zone, excluded })
    }

    /// When `t` falls in an exclusion: the instant that exclusion ends.
    fn excluded_until(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut end: Option<DateTime<Utc>> = None;
        for e in &self.excluded {
            let until = match e {
                Excluded::Window(from, to) if *from <= t && t < *to => *to,
                Excluded::Weekly(bits) => {
                    let mut day = t.with_timezone(&self.zone).date_naive();
                    if bits & (1 << day.weekday().num_days_from_monday()) == 0 {
                        continue;
                    }
                    while bits & (1 << day.weekday().num_days_from_monday()) != 0 {
                        day = day.succ_opt().unwrap_or(day);
                    }
                    day_start(self.zone, day)
                }
                _ => continue,
            };
            end = Some(end.map_or(until, |e| e.max(until)));
        }
        end
    }

    /// Whether a run at `t` is excluded.
    pub fn is_excluded(&self, t: DateTime<Utc>) -> bool {
        self.excluded_until(t).is_some()
    }

    /// The first run strictly after `after` that no exclusion covers.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.when {
            When::Once(t) => (*t > after && !self.is_excluded(*t)).then_some(*t),
            When::Cron(cron) => {
                let horizon = after + Duration::days(HORIZON_DAYS);
                // Runs fall on whole seconds (croner keeps the start's fraction).
                let after = after.with_nanosecond(0).unwrap_or(after);
                let mut from = after.with_timezone(&self.zone);
                let mut inclusive = false;
                for _ in 0..10_000 {
                    let t = cron.find_next_occurrence(&from, inclusive).ok()?.with_timezone(&Utc);
                    let t = t.with_nanosecond(0).unwrap_or(t);
                    if t > horizon {
                        return None;
                    }
                    match self.excluded_until(t) {
                        None => return Some(t),
                        Some(end) => {
                            from = end.with_timezone(&self.zone);
                            inclusive = true;
                        }
                    }
                }
                None
            }
        }
    }

    /// The next `count` runs after `after`.
    pub fn upcoming(&self, after: DateTime<Utc>, count: usize) -> Vec<DateTime<Utc>> {
        let mut out = Vec::with_capacity(count);
        let mut t = after;
        while out.len() < count {
            match self.next_after(t) {
                Some(n) => {
                    out.push(n);
                    t = n;
                }
                None => break,
            }
        }
        out
    }

    /// The runs in `(after, until]` that came due (at most `limit`), and how many there were.
    pub fn due(
        &self,
        after: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
    ) -> (Vec<DateTime<Utc>>, usize) {
        let mut out = Vec::new();
        let mut n = 0;
        let mut t = after;
        while let Some(next) = self.next_after(t) {
            if next > until {
                break;
            }
            n += 1;
            if out.len() < limit {
                out.push(next);
            } else {
                *out.last_mut().expect("limit > 0") = next;
            }
            t = next;
            if n >= DUE_COUNTED {
                break;
            }
        }
        (out, n)
    }

    /// A time as the schedule's zone shows it, with its offset.
    pub fn local(&self, t: DateTime<Utc>) -> DateTime<chrono::FixedOffset> {
        t.with_timezone(&self.zone).fixed_offset()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).expect("time").with_timezone(&Utc)
    }

    fn timing(cron: &str, zone: &str, ex: &[Exclusion]) -> Timing {
        Timing::parse(Some(cron), None, zone, ex).expect("timing")
    }

    #[test]
    fn five_fields_in_a_zone_with_offsets_across_the_summer_time_change() {
        let t = timing("0 22 * * 1-5", "Europe/Berlin", &[]);
        // Friday 2026-03-27, then Monday 30 (after the clocks went forward on Sunday 29).
        let runs = t.upcoming(utc("2026-03-27T12:00:00Z"), 2);
        let shown: Vec<String> = runs.iter().map(|r| t.local(*r).to_rfc3339()).collect();
        assert_eq!(shown, ["2026-03-27T22:00:00+01:00", "2026-03-30T22:00:00+02:00"]);
    }

    #[test]
    fn six_fields_put_seconds_first_and_names_work() {
        let t = timing("*/10 * * * * *", "UTC", &[]);
        // A start with a fraction of a second: the runs are still on whole seconds.
        assert_eq!(t.next_after(utc("2026-01-01T00:00:09.700Z")), Some(utc("2026-01-01T00:00:10Z")));
        assert_eq!(
            t.upcoming(utc("2026-01-01T00:00:01Z"), 2),
            [utc("2026-01-01T00:00:10Z"), utc("2026-01-01T00:00:20Z")]
        );
        let h = timing("@hourly", "UTC", &[]);
        assert_eq!(h.next_after(utc("2026-01-01T00:30:00Z")), Some(utc("2026-01-01T01:00:00Z")));
        let m = timing("@midnight", "America/New_York", &[]);
        assert_eq!(m.next_after(utc("2026-01-01T12:00:00Z")), Some(utc("2026-01-02T05:00:00Z")));
    }

    #[test]
    fn errors_name_the_field_and_its_position() {
        let e = parse_cron("0 25 * * *").expect_err("refused");
        assert!(e.contains("field 2 (hour) \"25\""), "{e}");
        let e = parse_cron("*/5 * * * * * *").expect_err("refused");
        assert!(e.contains("has 7 fields"), "{e}");
        let e = parse_cron("0 0 * * 1-5 61").expect_err("refused");
        assert!(e.contains("field 6"), "{e}");
        let e = parse_cron("@sometimes").expect_err("refused");
        assert!(e.contains("unknown name"), "{e}");
        let e = parse_cron("61 0 * * * *").expect_err("refused");
        assert!(e.contains("field 1 (second)"), "{e}");
        assert!(parse_zone("Mars/Olympus").expect_err("refused").contains("unknown zone"));
    }

    #[test]
    fn one_time_runs_once_and_a_skipped_local_time_is_refused() {
        let t = Timing::parse(None, Some("2026-12-24T22:00:00"), "Europe/Berlin", &[]).expect("at");
        assert_eq!(t.next_after(utc("2026-12-01T00:00:00Z")), Some(utc("2026-12-24T21:00:00Z")));
        assert_eq!(t.next_after(utc("2026-12-24T21:00:00Z")), None);
        let e = Timing::parse(None, Some("2026-03-29T02:30:00"), "Europe/Berlin", &[]).expect_err("refused");
        assert!(e.contains("does not exist"), "{e}");
        let e = Timing::parse(None, Some("2026-12-24T22:00:00+01:00"), "Europe/Berlin", &[])
            .expect_err("refused");
        assert!(e.contains("without an offset"), "{e}");
        // Twice at 02:30 when the clocks go back: the first.
        let t = Timing::parse(None, Some("2026-10-25T02:30:00"), "Europe/Berlin", &[]).expect("at");
        assert_eq!(t.next_after(utc("2026-10-01T00:00:00Z")), Some(utc("2026-10-25T00:30:00Z")));
    }

    #[test]
    fn exclusions_skip_weekends_and_windows_in_the_zone() {
        let weekend = Exclusion { weekly: Some(vec!["sat".into(), "Sunday".into()]), ..Exclusion::default() };
        let t = timing("0 9 * * *", "Europe/Berlin", std::slice::from_ref(&weekend));
        // Friday 2026-12-04 09:00, then Monday 7.
        let runs = t.upcoming(utc("2026-12-04T00:00:00Z"), 2);
        assert_eq!(runs, [utc("2026-12-04T08:00:00Z"), utc("2026-12-07T08:00:00Z")]);
        // Every second over a weekend jumps to Monday 00:00 local, not 172 800 steps.
        let s = timing("* * * * * *", "Europe/Berlin", &[weekend]);
        assert_eq!(s.next_after(utc("2026-12-05T10:00:00Z")), Some(utc("2026-12-06T23:00:00Z")));
        let window = Exclusion {
            from: Some("2026-12-24T00:00".into()),
            to: Some("2026-12-27T00:00".into()),
            weekly: None,
        };
        let w = timing("0 9 * * *", "Europe/Berlin", &[window]);
        assert_eq!(w.next_after(utc("2026-12-23T12:00:00Z")), Some(utc("2026-12-27T08:00:00Z")));
        let backwards = Exclusion {
            from: Some("2026-12-27T00:00".into()),
            to: Some("2026-12-24T00:00".into()),
            weekly: None,
        };
        let e = Timing::parse(Some("0 9 * * *"), None, "UTC", &[backwards]).expect_err("refused");
        assert!(e.contains("`exclusions[0]` ends"), "{e}");
        let days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"].map(String::from).to_vec();
        let every = Exclusion { weekly: Some(days), ..Exclusion::default() };
        assert!(Timing::parse(Some("0 9 * * *"), None, "UTC", &[every])
            .expect_err("refused")
            .contains("never run"));
        let bad = Exclusion { weekly: Some(vec!["funday".into()]), ..Exclusion::default() };
        assert!(Timing::parse(Some("0 9 * * *"), None, "UTC", &[bad])
            .expect_err("refused")
            .contains("not a day"));
    }

    #[test]
    fn due_counts_the_runs_missed_and_keeps_the_latest() {
        let t = timing("* * * * *", "UTC", &[]);
        let (runs, n) = t.due(utc("2026-01-01T00:00:00Z"), utc("2026-01-01T01:00:30Z"), 1);
        assert_eq!(n, 60);
        assert_eq!(runs, [utc("2026-01-01T01:00:00Z")]);
    }
}
#[cfg(test)]
mod never {
    use super::*;

    #[test]
    fn a_date_that_never_comes_has_no_next_run() {
        let t = Timing::parse(Some("0 0 31 2 *"), None, "UTC", &[]).expect("parses");
        assert_eq!(t.next_after(Utc::now()), None);
        let t = Timing::parse(Some("0 0 30 2 *"), None, "Europe/Berlin", &[]).expect("parses");
        assert!(t.upcoming(Utc::now(), 5).is_empty());
    }
}
