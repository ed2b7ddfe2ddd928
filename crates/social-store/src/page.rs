//! Pages of a list: the items asked for and the total, in one round trip where possible.

use sqlx::Row;

use crate::{Reader, Result};

/// One page of a list and the length of the whole list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

impl<T> Page<T> {
    pub fn new(items: Vec<T>, total: i64) -> Self {
        Page { items, total }
    }

    /// The same page with each item changed by `f` (which may fail, as reading a row does).
    pub(crate) fn try_map<U>(self, f: impl FnMut(T) -> Result<U>) -> Result<Page<U>> {
        Ok(Page {
            items: self.items.into_iter().map(f).collect::<Result<_>>()?,
            total: self.total,
        })
    }
}

impl Reader {
    /// One round trip for a page whose column `total_column` is `COUNT(*) OVER ()` (the
    /// total on every row); past the last page, where there is no row, `count_sql` gives it.
    /// Both statements take the address as `$1`; the page takes `LIMIT $2 OFFSET $3`.
    pub(crate) async fn page_with_total(
        &self,
        page_sql: &str,
        total_column: usize,
        count_sql: &str,
        address: &str,
        limit: i64,
        offset: i64,
    ) -> Result<Page<sqlx::any::AnyRow>> {
        let rows = sqlx::query(page_sql)
            .bind(address.to_owned())
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?;
        let total: i64 = match rows.first() {
            Some(r) => r.try_get(total_column)?,
            None if offset == 0 => 0,
            None => sqlx::query(count_sql)
                .bind(address.to_owned())
                .fetch_one(&self.pool)
                .await?
                .try_get(0)?,
        };
        Ok(Page::new(rows, total))
    }
}
