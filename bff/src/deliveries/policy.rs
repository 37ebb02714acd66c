//! The outbox's rules, the same for every channel: a delivery's state after an attempt, the wait
//! before the next one, and how lists of deliveries are paged and filtered.

use std::time::Duration;

use crate::infra::config::DeliveryConfig;
use crate::infra::error::AppError;

/// The paging and `state` filter of a list of deliveries (webhooks' and notifiers'), checked:
/// (page, page_size).
pub(crate) fn delivery_paging(
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
