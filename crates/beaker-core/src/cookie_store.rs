//! Cookie-only sessions (Beaker's `type = cookie`): the whole session, encrypted and
//! authenticated with AES-256-GCM, lives in the cookie; the server keeps nothing.

use crate::id::SessionId;
use crate::secret::Keys;
use crate::store::Record;

/// Marker for cookie-only sessions; pass it to
/// [`SessionManagerBuilder::cookie_store`](crate::SessionManagerBuilder::cookie_store).
///
/// Limits, by design: the payload (after encryption and base64) must fit the configured
/// `cookie_limit` (4096 bytes by default); a write past it fails with
/// [`Error::CookieTooLarge`](crate::Error::CookieTooLarge) and the previous cookie stays
/// valid. The server keeps nothing, so an ended cookie-only session cannot be retired:
/// logging out or regenerating the id cannot revoke a copy of the old cookie held
/// elsewhere, which replays until its expiry (bound it with `absolute_timeout`). Use a
/// server-side store when that matters.
#[derive(Debug, Clone, Copy, Default)]
pub struct CookieStore;

/// Where a cookie-only session keeps its id.
pub(crate) const ID_ENTRY: &str = "_beaker.id";

pub(crate) fn seal(keys: &Keys, cookie_name: &str, record: &Record) -> String {
    keys.encrypt(cookie_name, &record.to_bytes())
}

/// Opens a sealed session: `None` for anything tampered, foreign or undecodable.
pub(crate) fn open(keys: &Keys, cookie_name: &str, sealed: &str) -> Option<(Record, SessionId, bool)> {
    let (plain, old_key) = keys.decrypt(cookie_name, sealed)?;
    let record = Record::from_bytes(&plain).ok()?;
    let id = record
        .entries
        .get(ID_ENTRY)
        .and_then(|b| crate::serializer::DataSerializer::decode::<String>(b).ok())
        .and_then(|s| SessionId::parse(&s))?;
    Some((record, id, old_key))
}
