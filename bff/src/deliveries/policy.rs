//! The outbox's rules, the same for every channel: a delivery's state after an attempt, the wait
//! before the next one, and how lists of deliveries are paged, filtered and read with their
//! attempts.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::Object;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use crate::infra::config::DeliveryConfig;
use crate::infra::error::AppError;
use crate::infra::extract::{page_of, path_id_type};
use shared::Page;

/// The paging and `state` filter of a list of deliveries (webhooks' and notifiers'), checked:
/// (page, page_size).
fn delivery_paging(
    page: Option<i64>,
    page_size: Option<i64>,
    state: Option<&str>,
) -> Result<(i64, i64), AppError> {
    let page = page.unwrap_or(1);
    let page_size = page_size.unwrap_or(25);
    if page < 1 || !(1..=200).contains(&page_size) {
        return Err(AppError::BadRequest("`page` starts at 1 and `page_size` is 1 to 200".into()));
    }
    if let Some(s) = state {
        if !matches!(s, "pending" | "delivered" | "failed") {
            return Err(AppError::BadRequest(format!("`state` is pending, delivered or failed, not {s:?}")));
        }
    }
    Ok((page, page_size))
}

/// A delivery's state after its `n`th attempt.
pub(crate) fn next_state(cfg: &DeliveryConfig, delivered: bool, permanent: bool, n: i32) -> &'static str {
    if delivered {
        "delivered"
    } else if permanent || n >= cfg.max_attempts {
        "failed"
    } else {
        "pending"
    }
}

/// The wait before the attempt after the `n`th: the backoff, doubled each time, at most an hour.
pub(crate) fn retry_wait(cfg: &DeliveryConfig, n: i32) -> Duration {
    cfg.backoff.saturating_mul(1u32 << (n - 1).clamp(0, 20) as u32).min(Duration::from_secs(3600))
}

/// The outbox's channels, each with its deliveries' and attempts' tables.
#[derive(Debug, Clone, Copy)]
pub enum Channel {
    Webhooks,
    Notifiers,
}

impl Channel {
    fn name(self) -> &'static str {
        match self {
            Channel::Webhooks => "webhook",
            Channel::Notifiers => "notifier",
        }
    }

    /// The column naming a delivery's webhook or notifier.
    fn owner_column(self) -> &'static str {
        match self {
            Channel::Webhooks => "webhook_id",
            Channel::Notifiers => "notifier_id",
        }
    }

    fn deliveries_table(self) -> &'static str {
        match self {
            Channel::Webhooks => "webhook_deliveries",
            Channel::Notifiers => "notifier_deliveries",
        }
    }

    fn attempts_table(self) -> &'static str {
        match self {
            Channel::Webhooks => "webhook_attempts",
            Channel::Notifiers => "notifier_attempts",
        }
    }

    /// The column with the answer's code (an HTTP status; for mail, the SMTP reply code).
    fn code_column(self) -> &'static str {
        match self {
            Channel::Webhooks => "status_code",
            Channel::Notifiers => "code",
        }
    }
}

/// Ends the pending deliveries of a webhook or notifier being deleted (`why` says so): there is
/// nothing left to send them with.
pub async fn end_pending(
    tx: &tokio_postgres::Transaction<'_>,
    channel: Channel,
    owner: i64,
    why: &str,
) -> Result<(), AppError> {
    let owner_column = channel.owner_column();
    tx.execute(
        &format!(
            "update {} set state = 'failed', last_error = $2 where {owner_column} = $1 and state = 'pending'",
            channel.deliveries_table()
        ),
        &[&owner, &why],
    )
    .await?;
    Ok(())
}

/// How one attempt ended, for [`record_attempt`].
pub struct Attempted {
    pub delivery: i64,
    pub job: i64,
    /// Which attempt this was (1 for the first).
    pub attempt: i32,
    /// The answer's code (HTTP status; SMTP reply code), if any.
    pub code: Option<i32>,
    pub error: Option<String>,
    pub delivered: bool,
    /// Retrying cannot help (the URL is refused, the notifier is gone).
    pub permanent: bool,
    pub duration_ms: i32,
}

/// Records an attempt and moves its delivery on: delivered, given up (`failed`) or pending again
/// after the policy's wait. The same for every channel.
pub async fn record_attempt(
    db: &Object,
    channel: Channel,
    cfg: &DeliveryConfig,
    a: &Attempted,
) -> Result<(), AppError> {
    let state = next_state(cfg, a.delivered, a.permanent, a.attempt);
    let wait = retry_wait(cfg, a.attempt);
    db.execute(
        &format!(
            "insert into {} (delivery_id, attempt, {}, error, duration_ms) values ($1, $2, $3, $4, $5)",
            channel.attempts_table(),
            channel.code_column()
        ),
        &[&a.delivery, &a.attempt, &a.code, &a.error, &a.duration_ms],
    )
    .await?;
    let wait = wait.as_secs_f64();
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&a.delivery, &a.attempt, &a.error, &state, &wait];
    // Webhook deliveries also keep the last HTTP status on the delivery itself.
    let last_status = match channel {
        Channel::Webhooks => {
            params.push(&a.code);
            "last_status = $6,"
        }
        Channel::Notifiers => "",
    };
    db.execute(
        &format!(
            "update {} set attempts = $2, {last_status} last_error = $3, state = $4,
                    next_attempt = now() + make_interval(secs => $5),
                    delivered = case when $4 = 'delivered' then now() else delivered end
              where id = $1",
            channel.deliveries_table()
        ),
        &params,
    )
    .await?;
    if state == "failed" {
        tracing::warn!(
            delivery = a.delivery,
            job = a.job,
            attempts = a.attempt,
            error = ?a.error,
            channel = channel.name(),
            "gave up a delivery"
        );
    }
    Ok(())
}

/// One attempt of a delivery, as either channel records it.
#[derive(Debug, Clone)]
pub struct Attempt {
    pub attempt: i64,
    pub at: DateTime<Utc>,
    pub code: Option<i64>,
    pub error: Option<String>,
    pub duration_ms: i64,
}

/// What a list of deliveries asks for: by job, by their webhook or notifier (`owner`), by state;
/// which page.
pub struct DeliveryFilter {
    /// Only deliveries of jobs the caller may see (`Access::sql` on `jobs`); `None`: all.
    pub scope: Option<String>,
    pub job_id: Option<i64>,
    pub owner: Option<i64>,
    pub state: Option<String>,
    pub page: Option<i64>,
    pub page_size: Option<i64>,
}

/// A page of a channel's deliveries as read: their count under the filter, the rows, and what
/// the page's links repeat.
pub struct Listed {
    pub count: i64,
    pub rows: Vec<Row>,
    channel: Channel,
    page: i64,
    page_size: i64,
    links: Vec<(&'static str, Option<String>)>,
}

impl Listed {
    /// The page of `results` (made from `rows`), with its next/previous links.
    pub fn page<T>(&self, results: Vec<T>) -> Page<T> {
        let path = match self.channel {
            Channel::Webhooks => "/api/v1/webhooks/deliveries",
            Channel::Notifiers => "/api/v1/notifiers/deliveries",
        };
        page_of(path, self.page, self.page_size, &self.links, self.count, results)
    }
}

/// Reads a page of a channel's deliveries, newest first: `from` is the table as `d` (with
/// joins), `columns` what to select.
pub async fn list_deliveries(
    db: &Object,
    channel: Channel,
    from: &str,
    columns: &str,
    f: &DeliveryFilter,
) -> Result<Listed, AppError> {
    let (page, page_size) = delivery_paging(f.page, f.page_size, f.state.as_deref())?;
    let owner = channel.owner_column();
    let scope = f
        .scope
        .as_ref()
        .map(|c| format!(" and d.job_id in (select id from jobs where {c})"))
        .unwrap_or_default();
    let filter = format!(
        "($1::bigint is null or d.job_id = $1) and ($2::bigint is null or d.{owner} = $2)
         and ($3::text is null or d.state = $3){scope}"
    );
    let params: [&(dyn ToSql + Sync); 3] = [&f.job_id, &f.owner, &f.state];
    let count: i64 =
        db.query_one(&format!("select count(*) from {from} where {filter}"), &params).await?.get(0);
    let rows = db
        .query(
            &format!(
                "select {columns} from {from} where {filter} order by d.id desc limit {page_size} offset {}",
                (page - 1) * page_size
            ),
            &params,
        )
        .await?;
    let (job, owner_value) =
        (("job_id", f.job_id.map(|j| j.to_string())), (owner, f.owner.map(|o| o.to_string())));
    // The links name the filters in the order each channel's list has always used.
    let mut links = match channel {
        Channel::Webhooks => vec![job, owner_value],
        Channel::Notifiers => vec![owner_value, job],
    };
    links.push(("state", f.state.clone()));
    Ok(Listed { count, rows, channel, page, page_size, links })
}

/// The attempts of these deliveries, in order, by delivery id.
pub async fn attempts_of(
    db: &Object,
    channel: Channel,
    ids: &[i64],
) -> Result<HashMap<i64, Vec<Attempt>>, AppError> {
    let rows = db
        .query(
            &format!(
                "select delivery_id, attempt, at, {}, error, duration_ms from {}
                  where delivery_id = any($1) order by delivery_id, attempt",
                channel.code_column(),
                channel.attempts_table()
            ),
            &[&ids],
        )
        .await?;
    let mut by_delivery: HashMap<i64, Vec<Attempt>> = HashMap::new();
    for a in rows {
        by_delivery.entry(a.get(0)).or_default().push(Attempt {
            attempt: a.get::<_, i32>(1) as i64,
            at: a.get(2),
            code: a.get::<_, Option<i32>>(3).map(i64::from),
            error: a.get(4),
            duration_ms: a.get::<_, i32>(5) as i64,
        });
    }
    Ok(by_delivery)
}

path_id_type!(
    /// A delivery's id from the path (a webhook's or a notifier's).
    DeliveryId,
    "a delivery"
);
