//! Job events: the checked event as the ingest path stores it, and reading events back in the
//! order they were stored (`seq`).

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use serde_json::Value;
use shared::JobEvent;
use tokio_postgres::Row;

use crate::infra::error::AppError;

/// One event, checked and with the columns the tables index pulled out of it.
#[derive(Debug, Clone)]
pub struct Event {
    pub counter: i64,
    pub event: String,
    pub uuid: Option<String>,
    pub parent_uuid: Option<String>,
    pub created: Option<DateTime<Utc>>,
    pub host: Option<String>,
    pub play: Option<String>,
    pub task: Option<String>,
    pub role: Option<String>,
    /// Ansible's uuids of the play and the task (`event_data.play_uuid`, `task_uuid`), which both
    /// copies of a controller job's events carry (see `ingest::copies`).
    pub play_uuid: Option<String>,
    pub task_uuid: Option<String>,
    pub stdout: String,
    pub start_line: i64,
    pub end_line: i64,
    pub failed: bool,
    pub changed: bool,
    pub ignore_errors: bool,
    /// Null when `raw_data` holds the data.
    pub event_data: Value,
    /// The data exactly as sent, when storing it so is what masking and cleaning would do anyway
    /// (the ingest path's fast way; see `ingest::wire`).
    pub raw_data: Option<Box<serde_json::value::RawValue>>,
}

impl Event {
    /// The event as it reads back once stored as `seq` of `job_id` (what `event_from_row` gives):
    /// `created` in whole microseconds, data kept as sent parsed as the read would parse it.
    /// `None` when that data does not parse here (the read then gives it).
    pub fn into_stored(self, job_id: i64, seq: i64) -> Option<JobEvent> {
        let event_data = match &self.raw_data {
            Some(raw) => serde_json::from_str(raw.get()).ok()?,
            None => self.event_data,
        };
        Some(JobEvent {
            job_id,
            counter: self.counter,
            cursor: seq.to_string(),
            event: self.event,
            uuid: self.uuid,
            parent_uuid: self.parent_uuid,
            created: self.created.map(as_stored_time),
            host: self.host,
            play: self.play,
            task: self.task,
            role: self.role,
            stdout: self.stdout,
            start_line: self.start_line,
            end_line: self.end_line,
            failed: self.failed,
            changed: self.changed,
            event_data,
        })
    }
}

/// A time as `timestamptz` stores it when sent in binary: whole microseconds since 2000, the
/// rest cut off toward 2000 (as tokio-postgres encodes it).
fn as_stored_time(t: DateTime<Utc>) -> DateTime<Utc> {
    let base = DateTime::<Utc>::from_naive_utc_and_offset(
        chrono::NaiveDate::from_ymd_opt(2000, 1, 1).and_then(|d| d.and_hms_opt(0, 0, 0)).unwrap_or_default(),
        Utc,
    );
    match (t - base).num_microseconds() {
        Some(us) => base + chrono::Duration::microseconds(us),
        None => t,
    }
}

pub const EVENT_COLUMNS: &str = "job_id, counter, seq, event, uuid, parent_uuid, created, host, play, task,
    role, stdout, start_line, end_line, failed, changed, event_data";

pub fn event_from_row(r: &Row) -> JobEvent {
    JobEvent {
        job_id: r.get("job_id"),
        counter: r.get("counter"),
        cursor: r.get::<_, i64>("seq").to_string(),
        event: r.get("event"),
        uuid: r.get("uuid"),
        parent_uuid: r.get("parent_uuid"),
        created: r.get("created"),
        host: r.get("host"),
        play: r.get("play"),
        task: r.get("task"),
        role: r.get("role"),
        stdout: r.get("stdout"),
        start_line: r.get("start_line"),
        end_line: r.get("end_line"),
        failed: r.get("failed"),
        changed: r.get("changed"),
        event_data: r.get("event_data"),
    }
}

/// Events in arrival order with seq in `(after, upto]`.
pub async fn events_by_seq(
    db: &Object,
    job_id: i64,
    after: i64,
    upto: Option<i64>,
    limit: i64,
) -> Result<Vec<JobEvent>, AppError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "select {EVENT_COLUMNS} from job_events
              where job_id = $1 and seq > $2 and ($3::bigint is null or seq <= $3)
              order by seq limit $4"
        )
    });
    let rows = db.query(&db.prepare_cached(&SQL).await?, &[&job_id, &after, &upto, &limit]).await?;
    Ok(rows.iter().map(event_from_row).collect())
}

/// Several jobs' events at once, each job's with seq in `(after, upto]` of its `(job, after,
/// upto)`, each range's in seq order: the live relay's one read for every batch that waited.
/// A range each is read by the index on (job, seq) (`lateral … offset 0`: joined as a whole, the
/// planner may hash all of `job_events` while it believes the table small).
pub async fn events_in_ranges(db: &Object, ranges: &[(i64, i64, i64)]) -> Result<Vec<JobEvent>, AppError> {
    static SQL: LazyLock<String> = LazyLock::new(|| {
        format!(
            "select e.* from unnest($1::bigint[], $2::bigint[], $3::bigint[]) as r (job, lo, hi),
                    lateral (select {EVENT_COLUMNS} from job_events
                              where job_id = r.job and seq > r.lo and seq <= r.hi
                              order by seq offset 0) e"
        )
    });
    if ranges.is_empty() {
        return Ok(Vec::new());
    }
    let jobs: Vec<i64> = ranges.iter().map(|r| r.0).collect();
    let afters: Vec<i64> = ranges.iter().map(|r| r.1).collect();
    let uptos: Vec<i64> = ranges.iter().map(|r| r.2).collect();
    let rows = db.query(&db.prepare_cached(&SQL).await?, &[&jobs, &afters, &uptos]).await?;
    Ok(rows.iter().map(event_from_row).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_kept_as_timestamptz_stores_them() {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).map(|t| t.with_timezone(&Utc)).ok();
        let at = |s: &str| t(s).map(as_stored_time);
        assert_eq!(at("2026-12-02T10:00:00.123456789Z"), t("2026-12-02T10:00:00.123456Z"));
        assert_eq!(at("2026-12-02T10:00:00.5Z"), t("2026-12-02T10:00:00.5Z"));
        // Before 2000, toward 2000.
        assert_eq!(at("1999-12-31T23:59:59.0000019Z"), t("1999-12-31T23:59:59.000002Z"));
    }
}
