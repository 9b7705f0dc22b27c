//! [`Scan`]: a store's sessions, page by page, in memory bounded by the page size whatever
//! the store holds.

use std::sync::Arc;

use beaker_rs::store::{Page, SessionStore};
use beaker_rs::StoreError;

/// The default number of sessions asked for per page.
pub const DEFAULT_PAGE_SIZE: usize = 500;

/// A paged walk over every live session of a store ([`SessionStore::scan`]): one page is
/// held at a time, so listing or counting a store of any size needs memory for
/// `page_size` listings only.
#[derive(Debug)]
pub struct Scan {
    store: Arc<dyn SessionStore>,
    page_size: usize,
    cursor: Option<String>,
    done: bool,
}

impl Scan {
    /// A scan of `store` from its start, `page_size` sessions per page (at least one).
    pub fn new(store: Arc<dyn SessionStore>, page_size: usize) -> Self {
        Scan { store, page_size: page_size.max(1), cursor: None, done: false }
    }

    /// The next page, or `None` once the scan is complete. A store that breaks the
    /// contract by returning more than the page size asked for is an error, not a
    /// silent unbounded allocation downstream.
    pub async fn next_page(&mut self) -> Result<Option<Page>, StoreError> {
        if self.done {
            return Ok(None);
        }
        let page = self.store.scan(self.cursor.as_deref(), self.page_size).await?;
        if page.items.len() > self.page_size {
            return Err(StoreError::Corrupt {
                message: format!(
                    "the {} store returned a page of {} sessions when at most {} were asked for",
                    self.store.name(),
                    page.items.len(),
                    self.page_size
                ),
            });
        }
        match &page.next {
            // A cursor that does not move would loop for ever.
            Some(next) if Some(next) == self.cursor.as_ref() => {
                return Err(StoreError::Corrupt {
                    message: format!("the {} store's scan returned the same cursor twice", self.store.name()),
                })
            }
            Some(next) => self.cursor = Some(next.clone()),
            None => self.done = true,
        }
        Ok(Some(page))
    }
}
