//! The numeric codes that cross the boundary, as `#[wasm_bindgen]` enums: TypeScript sees them
//! as numeric enums exported by the module and keeps no copy of the numbers.

use wasm_bindgen::prelude::*;

/// How a revalidation expires its tags (Next's `durations` argument).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RevalidationMode {
    /// No durations (`updateTag`, `revalidatePath`, one-argument `revalidateTag`): expired at once.
    Expire = 0,
    /// A profile: stale-while-revalidate, with the profile's expire when it has one.
    Stale = 1,
}

impl RevalidationMode {
    /// The core's revalidation (`Revalidation::from_durations`: an expire of 0 or less
    /// expires at once); `expire_seconds` NaN means the profile has no expire.
    pub(crate) fn with_expire(self, expire_seconds: f64) -> fleetcache_core::Revalidation {
        fleetcache_core::Revalidation::from_durations(match self {
            RevalidationMode::Expire => None,
            RevalidationMode::Stale => Some((!expire_seconds.is_nan()).then_some(expire_seconds)),
        })
    }
}

/// What a Redis command is for: it picks the command's budget.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// On a request's critical path: `GET`, tag refresh.
    Read = 0,
    /// Off it or rare: `SET`, tag update.
    Write = 1,
    /// The lease protocol: acquire, poll, renew.
    Lease = 2,
}

impl From<CommandKind> for fleetcache_core::OpKind {
    fn from(kind: CommandKind) -> Self {
        match kind {
            CommandKind::Read => fleetcache_core::OpKind::Read,
            CommandKind::Write => fleetcache_core::OpKind::Write,
            CommandKind::Lease => fleetcache_core::OpKind::Lease,
        }
    }
}

/// How an admitted command ended, for `Engine.report`.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandResult {
    /// Redis replied.
    Reply = 0,
    /// No answer: the connection failed or was not available.
    NoAnswer = 1,
    /// No answer within the command's budget.
    Timeout = 2,
    /// An error reply: Redis is reachable (a success for the breaker), counted as a reply error.
    ErrorReply = 3,
}

/// The bits `Engine.report` returns.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reported {
    /// The circuit breaker changed state (opened, half-opened or closed).
    BreakerChanged = 1,
    /// Revalidations wait to be sent: the outbox or the resend list is not empty.
    Backlog = 2,
}

/// The circuit breaker's state.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BreakerState {
    /// Commands are sent.
    Closed = 0,
    /// Commands are refused until the open period ends.
    Open = 1,
    /// One probe is in flight; every other command is refused.
    HalfOpen = 2,
}

impl From<fleetcache_core::BreakerState> for BreakerState {
    fn from(state: fleetcache_core::BreakerState) -> Self {
        match state {
            fleetcache_core::BreakerState::Closed => BreakerState::Closed,
            fleetcache_core::BreakerState::Open => BreakerState::Open,
            fleetcache_core::BreakerState::HalfOpen => BreakerState::HalfOpen,
        }
    }
}

/// What became of a revalidation Redis answered with an error (`Engine.refuseOutbox`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutboxRefusal {
    /// Kept at the head, replayed after the backoff (`outboxRetryInMs`).
    Kept = 0,
    /// Dropped for want of a permission, the first since a revalidation last went through:
    /// log it, with `missingPermission`.
    Dropped = 1,
    /// Dropped for want of a permission, after the first: count it.
    DroppedAgain = 2,
    /// Parked (an error that kept coming back), the first since a revalidation last went
    /// through: log it.
    Parked = 3,
    /// Parked, after the first.
    ParkedAgain = 4,
}

impl From<fleetcache_core::outbox::Refusal> for OutboxRefusal {
    fn from(refusal: fleetcache_core::outbox::Refusal) -> Self {
        use fleetcache_core::outbox::Refusal;
        match refusal {
            Refusal::Kept => OutboxRefusal::Kept,
            Refusal::Dropped { first: true } => OutboxRefusal::Dropped,
            Refusal::Dropped { first: false } => OutboxRefusal::DroppedAgain,
            Refusal::Parked { first: true } => OutboxRefusal::Parked,
            Refusal::Parked { first: false } => OutboxRefusal::ParkedAgain,
        }
    }
}

/// How the tag mirror judges an entry (`Engine.tagFreshness`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Freshness {
    /// Serve it.
    Fresh = 0,
    /// Serve it once and regenerate in the background.
    Stale = 1,
    /// A miss: regenerate before serving.
    Expired = 2,
}

impl From<fleetcache_core::Freshness> for Freshness {
    fn from(f: fleetcache_core::Freshness) -> Self {
        match f {
            fleetcache_core::Freshness::Fresh => Freshness::Fresh,
            fleetcache_core::Freshness::Stale => Freshness::Stale,
            fleetcache_core::Freshness::Expired => Freshness::Expired,
        }
    }
}

/// Which of Next's `IncrementalCacheValue` kinds a singular-handler value is (the value
/// descriptor's kind).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueKind {
    /// `null`: a cached "not found".
    Null = 0,
    /// `APP_PAGE`.
    AppPage = 1,
    /// `PAGES`.
    Pages = 2,
    /// `APP_ROUTE`.
    AppRoute = 3,
    /// `FETCH`.
    Fetch = 4,
    /// `REDIRECT`.
    Redirect = 5,
    /// `IMAGE`.
    Image = 6,
}

/// The value descriptor's flag bits; a descriptor's `flags` is their bitwise or.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ValueFlag {
    /// `rscData` is present (`APP_PAGE`).
    Rsc = 1,
    /// `cacheControl.revalidate` is `false`.
    RevalidateFalse = 2,
    /// `cacheControl.expire` is absent.
    NoExpire = 4,
    /// The value came without a `cacheControl`.
    NoCacheControl = 8,
}

/// What a message of the tag announcement channel did (`Engine.applyAnnouncement`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Announcement {
    /// Applied to the mirror.
    Applied = 0,
    /// Known already: nothing changed.
    Known = 1,
    /// A gap: updates were missed; the next pulls catch up.
    Gap = 2,
}

/// What the host's one timer does now its time has come (`Engine.handleTimeout`, core
/// `Wake`).
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Pull the tag state (`planTagPull`): the periodic pull, or one a revalidation made due.
    Pull = 0,
    /// Retry: join the pull out or start one, then send what waits; arm the retry again
    /// (`armRetry`) while the breaker is not closed or something waits.
    Retry = 1,
    /// The retry with nothing to pull for: send what waits (the outbox, the records to give
    /// back), and pull nothing; arm it again (`armRetry`) while something waits.
    Send = 2,
}

/// The codec of a compressed entry (the write machine's Compress step, `Engine.planInflation`);
/// the host maps it to its runtime's implementation.
#[wasm_bindgen]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    /// A zlib stream (RFC 1950): `node:zlib` `deflate`, `CompressionStream('deflate')`.
    Deflate = 1,
}

impl From<fleetcache_core::Codec> for Codec {
    fn from(codec: fleetcache_core::Codec) -> Self {
        match codec {
            fleetcache_core::Codec::Deflate => Codec::Deflate,
        }
    }
}
