//! Byte-bounded recency index of the in-process tier.
//!
//! The bytes live in a JS `Map` under the same keys; this index decides what stays. Every
//! operation is O(1): a hash map from key to slot, and a doubly linked list threaded through
//! a slab of slots by index (no pointers, no `unsafe`).

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use crate::envelope::DecodedHeader;
use crate::strhash::{reseed, str_map, HashSeed, StrMap};
use crate::time::Millis;

/// "No slot" in the links.
const NIL: usize = usize::MAX;

/// How many keys whose copy left the index the index remembers, with the number that copy
/// came from ([`LruIndex::read_may_keep`]). Past it the oldest is forgotten and its number
/// raises one floor for every key: memory stays bounded (this many keys and numbers) however
/// many copies are evicted, at the cost of refusing fills from reads sent before the floor.
pub const REMOVED_KEYS_REMEMBERED: usize = 1024;

/// What each item of the tier costs the process besides its value and its key, charged to the
/// budget by an index that counts bookkeeping ([`LruIndex::counting_bookkeeping`], the engine's):
/// in the JS heap, the host's `Map` entry and the `Buffer` object over the value (and the
/// `ArrayBuffer`'s own record); in the wasm memory, the index's slot and its map entry, with
/// their share of the slab's and the hash table's spare room.
///
/// Measured, not derived (V8 and the allocator decide it): a `'use cache'` handler over a
/// real Redis with a 1 GiB budget, 20,000 and 40,000 entries set after 2,000 (16-byte and
/// 1 KiB values), the process's `heapUsed + arrayBuffers` and wasm memory after four
/// `gc()` under `node --expose-gc` (Node 20, x86-64), less the values' bytes, per entry:
/// 605 to 624 bytes (JS heap 310 to 332, wasm 292 to 306), with 58-byte tier keys, of which
/// the key as [`item_overhead`] counts it is 174. The rest, about 450, is rounded up to leave
/// room for what that measurement cannot see (V8's native record of each `ArrayBuffer`,
/// malloc's headers).
pub const ITEM_BOOKKEEPING_BYTES: u64 = 512;

/// What an item under `key` costs besides its value ([`ITEM_BOOKKEEPING_BYTES`] and its key):
/// the key is held twice here (the slot's and the map's) and once by the host as a JS string,
/// one byte per character when ASCII and at most two per UTF-8 byte otherwise (two bytes per
/// UTF-16 unit, of which a UTF-8 byte makes at most one).
pub fn item_overhead(key: &str) -> u64 {
    let len = u64::try_from(key.len()).unwrap_or(u64::MAX);
    let host = if key.is_ascii() {
        len
    } else {
        len.saturating_mul(2)
    };
    ITEM_BOOKKEEPING_BYTES
        .saturating_add(len.saturating_mul(2))
        .saturating_add(host)
}

#[derive(Clone, Debug)]
struct Node {
    key: String,
    size: u64,
    /// What the item costs besides its bytes ([`item_overhead`]), 0 in an index that does not
    /// count bookkeeping.
    books: u64,
    /// Bytes the host holds for the item besides its own (see [`LruIndex::charge`]).
    charge: u64,
    /// The header decoded from the item's bytes when a read judged them, and what it costs
    /// the budget (see [`LruIndex::keep_header`]).
    header: Option<Rc<DecodedHeader>>,
    header_cost: u64,
    expires_at: Millis,
    /// Made by this process and not written to Redis (see [`LruIndex::mark_local`]).
    local: bool,
    /// Kept only for when Redis cannot be reached (see [`LruIndex::mark_outage_only`]).
    outage_only: bool,
    /// The page generation it serves under, 0 for none (see [`LruIndex::bind_page`]).
    page_gen: u32,
    /// Where its bytes come from in this process's order of Redis commands (see
    /// [`LruIndex::read_may_keep`]).
    order: u64,
    /// Towards the most recently used end.
    prev: usize,
    /// Towards the least recently used end.
    next: usize,
}

impl Node {
    /// The header kept for this item, when the bytes it is asked for are the item's
    /// (`total_len` long): a header decoded from other bytes judges nothing here.
    fn header_for(&self, total_len: usize) -> Option<Rc<DecodedHeader>> {
        if u64::try_from(total_len).ok() != Some(self.size) {
            return None;
        }
        self.header.clone()
    }
}

/// How an item held is marked ([`LruIndex::marks`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Marks {
    /// Marked with [`LruIndex::mark_local`].
    pub local: bool,
    /// Marked with [`LruIndex::mark_outage_only`].
    pub outage_only: bool,
    /// Set by [`LruIndex::bind_page`]; 0 when not bound.
    pub page_gen: u32,
}

/// What [`LruIndex::touch_unless`] found and did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Touch {
    /// Not held.
    Absent,
    /// Held and live: marked as just used.
    Touched,
    /// Held but expired: removed (the host drops its bytes).
    Expired,
    /// Held with these marks, and left as it was: `decline` said so.
    Declined(Marks),
}

/// A write's mark on its key in the index ([`LruIndex::write_begins`]): handed back with
/// [`LruIndex::write_ends`] when the write ends. Dropped unended (its write machine freed
/// before its end, as the wasm binding's JS may do at any time), it leaves its number where
/// the index collects abandoned marks, and the index ends it at its next mutable call: a mark
/// cannot outlive its write. Not `Clone`: one write, one mark, ended once.
#[derive(Debug)]
pub struct WriteMark {
    id: u64,
    /// The index's abandoned marks; weak, so a mark that outlives its index keeps nothing.
    abandoned: Weak<RefCell<Vec<u64>>>,
    /// False once handed back to [`LruIndex::write_ends`].
    armed: bool,
}

impl PartialEq for WriteMark {
    /// The same mark: each index numbers its marks from the start, so the number alone is not.
    fn eq(&self, other: &WriteMark) -> bool {
        self.id == other.id && Weak::ptr_eq(&self.abandoned, &other.abandoned)
    }
}

impl Drop for WriteMark {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(abandoned) = self.abandoned.upgrade() {
            // The index is single-threaded and never holds this borrow across a call out.
            if let Ok(mut ids) = abandoned.try_borrow_mut() {
                ids.push(self.id);
            }
        }
    }
}

/// A least-recently-used index bounded by the sum of item sizes (and, when it counts
/// bookkeeping, of what each item costs besides: [`LruIndex::counting_bookkeeping`]).
#[derive(Debug)]
pub struct LruIndex {
    capacity: u64,
    used: u64,
    /// Charges each item its [`item_overhead`] besides its size.
    books: bool,
    map: StrMap<usize>,
    slots: Vec<Option<Node>>,
    free: Vec<usize>,
    /// Most recently used.
    head: usize,
    /// Least recently used: the next to evict.
    tail: usize,
    /// The last number [`LruIndex::issue`] gave out.
    issued: u64,
    /// Keys with this process's writes in flight that keep a copy here, and how many: at
    /// most one item per write in flight, removed when the last ends.
    writing: StrMap<usize>,
    /// The marks of those writes, by number, with their key until ended (`None` then): in
    /// increasing order, since marks are numbered increasingly and pushed as numbered, so a
    /// mark is found by binary search (no new map type: the wasm size). Ended entries are
    /// swept out once they are more than half (`marks_ended`), so each operation is O(log n)
    /// amortised, where a linear search made thousands of writes in flight quadratic.
    marks_live: Vec<(u64, Option<String>)>,
    /// Entries of `marks_live` ended and not swept out yet.
    marks_ended: usize,
    /// The last mark number given out.
    last_mark: u64,
    /// Numbers of marks dropped unended, ended at the next mutable call
    /// ([`LruIndex::settle`]); shared with every [`WriteMark`] as a weak reference.
    abandoned: Rc<RefCell<Vec<u64>>>,
    /// Keys whose copy left the index (evicted, expired, forgotten, or a write's ended with
    /// none held), with the number the last such copy came from: a ring of at most
    /// [`REMOVED_KEYS_REMEMBERED`], `removed_next` the oldest once full, and each key's place
    /// in it (a map of the type the index already uses: no new hash table code in the module).
    removed: Vec<String>,
    /// The number of each key in `removed`, at the same place.
    removed_orders: Vec<u64>,
    removed_at: StrMap<usize>,
    removed_next: usize,
    /// The largest number of a removed copy no longer remembered in `removed`.
    floor: u64,
}

impl LruIndex {
    /// An empty index holding at most `capacity_bytes`.
    pub fn new(capacity_bytes: u64) -> LruIndex {
        LruIndex::with_seed(capacity_bytes, HashSeed::default())
    }

    /// [`LruIndex::new`] with its keys hashed with `seed` (the host's random one: keys come
    /// from requests).
    pub fn with_seed(capacity_bytes: u64, seed: HashSeed) -> LruIndex {
        LruIndex {
            capacity: capacity_bytes,
            used: 0,
            books: false,
            map: str_map(0, seed),
            slots: Vec::new(),
            free: Vec::new(),
            head: NIL,
            tail: NIL,
            issued: 0,
            writing: str_map(0, seed),
            marks_live: Vec::new(),
            marks_ended: 0,
            last_mark: 0,
            abandoned: Rc::new(RefCell::new(Vec::new())),
            removed: Vec::new(),
            removed_orders: Vec::new(),
            removed_at: str_map(0, seed),
            removed_next: 0,
            floor: 0,
        }
    }

    /// This index charging each item what it costs the process besides its bytes
    /// ([`item_overhead`]), so that the budget bounds what the tier retains whatever the size
    /// of its values: with values of a few bytes, the bookkeeping is most of it.
    #[must_use]
    pub fn counting_bookkeeping(mut self) -> LruIndex {
        self.books = true;
        self
    }

    /// Rehashes the keys of every map with `seed` ([`crate::Engine::reseed_hashes`]).
    pub fn reseed(&mut self, seed: HashSeed) {
        reseed(&mut self.map, seed);
        reseed(&mut self.writing, seed);
        reseed(&mut self.removed_at, seed);
    }

    /// The seeds the maps are hashed with.
    #[cfg(test)]
    pub(crate) fn hash_seeds(&self) -> [HashSeed; 3] {
        [
            *self.map.hasher(),
            *self.writing.hasher(),
            *self.removed_at.hasher(),
        ]
    }

    /// The byte budget.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// Bytes of all items held, with what is charged alongside them (their bookkeeping when
    /// counted, kept headers, decoded values).
    pub fn used_bytes(&self) -> u64 {
        self.used
    }

    /// Number of items held.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// True when `key` is held (expired or not); does not change recency.
    pub fn contains(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Records `size` bytes under `key`, valid until `expires_at`, as most recently used.
    ///
    /// Returns the keys the host must drop from its byte store, least recently used first:
    /// those evicted to make room, or `key` itself when it is larger than the whole budget,
    /// with its bookkeeping when counted (then nothing is evicted and any older item under `key` is gone too). Re-inserting a
    /// key replaces its old item, which is not reported.
    pub fn insert(&mut self, key: &str, size: u64, expires_at: Millis) -> Vec<String> {
        self.insert_ordered(key, size, expires_at, 0)
    }

    /// [`LruIndex::insert`] of the bytes a read brought, `order` the number its `GET` (or
    /// poll) went out under ([`LruIndex::issue`]); 0 for this process's own write, whose
    /// order is set when it ends ([`LruIndex::write_ends`]).
    pub fn insert_ordered(
        &mut self,
        key: &str,
        size: u64,
        expires_at: Millis,
        order: u64,
    ) -> Vec<String> {
        // Replaced, not removed: the new copy comes from a later command (or is this
        // process's own write), so nothing older than it needs remembering.
        let old = match self.map.get(key) {
            Some(&slot) => self.take_slot(slot).map_or(0, |n| n.order),
            None => 0,
        };
        let books = if self.books { item_overhead(key) } else { 0 };
        let cost = size.saturating_add(books);
        if cost > self.capacity {
            self.remember_removed(key, old.max(order));
            return vec![key.to_owned()];
        }
        let mut evicted = Vec::new();
        while self.used.saturating_add(cost) > self.capacity {
            match self.remove_slot(self.tail) {
                Some(node) => evicted.push(node.key),
                // Unreachable while `used` matches the items; never loop forever regardless.
                None => {
                    self.used = 0;
                    break;
                }
            }
        }
        let node = Node {
            key: key.to_owned(),
            size,
            books,
            charge: 0,
            header: None,
            header_cost: 0,
            expires_at,
            local: false,
            outage_only: false,
            page_gen: 0,
            order,
            prev: NIL,
            next: NIL,
        };
        let slot = match self.free.pop() {
            Some(slot) => {
                if let Some(entry) = self.slots.get_mut(slot) {
                    *entry = Some(node);
                }
                slot
            }
            None => {
                self.slots.push(Some(node));
                self.slots.len() - 1
            }
        };
        self.push_front(slot);
        self.map.insert(key.to_owned(), slot);
        self.used = self.used.saturating_add(cost);
        evicted
    }

    /// Charges `extra` bytes the host keeps alongside the item under `key` (a decoded form of
    /// its bytes) to the budget, in place of any charge it had: the item counts `size + extra`
    /// from now on and both leave together, however it leaves. The item becomes the most
    /// recently used, and the least recently used others are evicted until the charge fits.
    ///
    /// Returns the keys evicted, least recently used first, which the host drops from its byte
    /// store; `None`, with nothing changed, when `key` is not held or `size + extra` exceeds
    /// the whole budget (the host then keeps nothing alongside the item).
    pub fn charge(&mut self, key: &str, extra: u64) -> Option<Vec<String>> {
        let slot = *self.map.get(key)?;
        let (size, old) = self.node(slot).map(|n| {
            let size = n.size.saturating_add(n.books);
            (size.saturating_add(n.header_cost), n.charge)
        })?;
        if size.saturating_add(extra) > self.capacity {
            return None;
        }
        self.unlink(slot);
        self.push_front(slot);
        self.used = self.used.saturating_sub(old);
        let mut evicted = Vec::new();
        // The item is at the head and fits alone, so the loop stops before it reaches it.
        while self.used.saturating_add(extra) > self.capacity && self.tail != slot {
            match self.remove_slot(self.tail) {
                Some(node) => evicted.push(node.key),
                None => break,
            }
        }
        if let Some(n) = self.node_mut(slot) {
            n.charge = extra;
        }
        self.used = self.used.saturating_add(extra);
        Some(evicted)
    }

    /// Charges the decoded value the host keeps alongside the tier's copy of `key` ([`LruIndex::charge`]),
    /// reckoned here so that the bound on memory is the core's: `structural` is the number of
    /// `{`, `[`, `:` and `,` bytes in the value's JSON part, the one thing the host measures.
    /// An estimate of V8's heap, not a measurement:
    /// - strings (html, postponed, header values, keys) decoded from UTF-8: one byte per byte
    ///   when Latin-1, two per UTF-16 unit otherwise, at most 2 per UTF-8 byte: twice the
    ///   copy's length; Buffers (RSC data, segments, a route's body) are views of the copy;
    /// - 64 bytes per structural byte for the objects and arrays parsed from the JSON part,
    ///   above every shape measured with `node --expose-gc` (`[{},{},...]` 43 bytes of heap per
    ///   structural byte, many small keys 5.6 per JSON byte, a page's headers 1.06);
    /// - 1 KiB for the memo's own objects (the value, its Map, Buffer views, the record).
    pub fn charge_decoded(&mut self, key: &str, structural: u64) -> Option<Vec<String>> {
        let size = self.node(*self.map.get(key)?)?.size;
        let extra = size
            .saturating_mul(2)
            .saturating_add(structural.saturating_mul(64))
            .saturating_add(1024);
        self.charge(key, extra)
    }

    /// Keeps `header`, decoded from the `total_len` bytes the host holds for `key` and judged
    /// just now, with the item, so that the next reads of those bytes judge it without the
    /// bytes crossing into wasm or being decoded again ([`LruIndex::kept_header`]). It is
    /// charged to the budget ([`DecodedHeader::heap_bytes`]) and leaves with the item however
    /// the item leaves (replaced by an insert, removed, evicted, expired). Kept only in the
    /// room the budget has left: a read reports no evictions to the host, so none is made for
    /// it (the bytes are then judged afresh on every read, as without this). True when the
    /// item now keeps `header`.
    ///
    /// The caller vouches that the bytes are the item's: given by the host for `key` in the
    /// same call that found the item held (the host replaces its bytes only through
    /// [`LruIndex::insert_ordered`], which replaces the item and its header).
    pub fn keep_header(&mut self, key: &str, total_len: usize, header: &Rc<DecodedHeader>) -> bool {
        let capacity = self.capacity;
        let used = self.used;
        let Some(n) = self.held_mut(key) else {
            return false;
        };
        if u64::try_from(total_len).ok() != Some(n.size) {
            return false;
        }
        if n.header.as_ref().is_some_and(|h| Rc::ptr_eq(h, header)) {
            return true;
        }
        let cost = header.heap_bytes();
        let used = used.saturating_sub(n.header_cost).saturating_add(cost);
        if used > capacity {
            return false;
        }
        n.header = Some(Rc::clone(header));
        n.header_cost = cost;
        self.used = used;
        true
    }

    /// The header kept with the item under `key` ([`LruIndex::keep_header`]) when the host's
    /// bytes for it are `total_len` long, as they were when judged; `None` otherwise.
    pub fn kept_header(&self, key: &str, total_len: usize) -> Option<Rc<DecodedHeader>> {
        self.held(key)?.header_for(total_len)
    }

    /// Marks `key` as just used. Returns false when it is absent, or when it has expired
    /// (`now >= expires_at`), in which case it is removed and the host should drop its bytes.
    pub fn touch(&mut self, key: &str, now: Millis) -> bool {
        let Some(&slot) = self.map.get(key) else {
            return false;
        };
        let expired = self.node(slot).map_or(true, |n| now >= n.expires_at);
        if expired {
            self.remove_slot(slot);
            return false;
        }
        self.unlink(slot);
        self.push_front(slot);
        true
    }

    /// [`LruIndex::touch`] in one lookup, unless `decline`, given the item's marks, says to
    /// leave it as it is (neither touched nor expired).
    pub fn touch_unless(
        &mut self,
        key: &str,
        now: Millis,
        decline: impl FnOnce(Marks) -> bool,
    ) -> Touch {
        self.touch_unless_kept(key, now, None, decline).0
    }

    /// [`LruIndex::touch_unless`] and, when touched, [`LruIndex::kept_header`] for bytes
    /// `total_len` long (with `Some`), in the one lookup of a tier hit.
    pub fn touch_unless_kept(
        &mut self,
        key: &str,
        now: Millis,
        total_len: Option<usize>,
        decline: impl FnOnce(Marks) -> bool,
    ) -> (Touch, Option<Rc<DecodedHeader>>) {
        let Some(&slot) = self.map.get(key) else {
            return (Touch::Absent, None);
        };
        let Some(node) = self.node(slot) else {
            self.remove_slot(slot);
            return (Touch::Expired, None);
        };
        let marks = Marks {
            local: node.local,
            outage_only: node.outage_only,
            page_gen: node.page_gen,
        };
        if decline(marks) {
            return (Touch::Declined(marks), None);
        }
        if now >= node.expires_at {
            self.remove_slot(slot);
            return (Touch::Expired, None);
        }
        let header = total_len.and_then(|len| node.header_for(len));
        self.unlink(slot);
        self.push_front(slot);
        (Touch::Touched, header)
    }

    /// Marks the item under `key` as this process's own: its write to Redis failed, so the
    /// fleet does not have it. True when `key` is held.
    pub fn mark_local(&mut self, key: &str) -> bool {
        self.held_mut(key).map(|n| n.local = true).is_some()
    }

    /// Marks the item under `key` as a copy kept for outages only: served while Redis cannot
    /// be reached, never while it answers (then Redis holds the newest value). True when held.
    pub fn mark_outage_only(&mut self, key: &str) -> bool {
        self.held_mut(key).map(|n| n.outage_only = true).is_some()
    }

    /// Binds the page copy under `key` to page generation `gen` (non-zero): it serves while
    /// Redis answers only while that generation is the one the announcement channel serves
    /// (docs/decisions/0031-page-entries-in-the-tier-by-push.md). True when held.
    pub fn bind_page(&mut self, key: &str, gen: u32) -> bool {
        self.held_mut(key).map(|n| n.page_gen = gen).is_some()
    }

    /// The number a read's `GET` or poll goes out under: one per command, increasing, so on
    /// one connection (which Redis serves in order) a larger number ran later.
    ///
    /// Marks dropped unended are ended first ([`LruIndex::settle`]), so a command sent after
    /// the drop is ordered after that end.
    pub fn issue(&mut self) -> u64 {
        self.settle();
        self.next_order()
    }

    /// The next number, without settling (ending a mark takes one).
    fn next_order(&mut self) -> u64 {
        self.issued = self.issued.saturating_add(1);
        self.issued
    }

    /// This process's write of `key` keeps its copy here now and is about to be sent: no read
    /// keeps what it brings until the write ends ([`LruIndex::read_may_keep`]), that is until
    /// the mark returned is handed to [`LruIndex::write_ends`] or dropped.
    pub fn write_begins(&mut self, key: &str) -> WriteMark {
        self.settle();
        // Not `entry`: the core's maps of this type do without its code (crate::keyed).
        let n = self.writing.get(key).copied().unwrap_or(0);
        self.writing.insert(key.to_owned(), n.saturating_add(1));
        self.last_mark = self.last_mark.wrapping_add(1);
        self.marks_live.push((self.last_mark, Some(key.to_owned())));
        WriteMark {
            id: self.last_mark,
            abandoned: Rc::downgrade(&self.abandoned),
            armed: true,
        }
    }

    /// The write of `mark` has ended (stored, failed or abandoned). When it was the last of
    /// its key in flight, the copy held, the last of those writes' (no read kept one
    /// meanwhile), is ordered after every command sent so far: only a read sent after this
    /// replaces it.
    ///
    /// A mark another index gave is not this one's to end (its number may be one of this
    /// index's own writes): it is dropped armed, so it ends in its own index as abandoned.
    pub fn write_ends(&mut self, mut mark: WriteMark) {
        if !std::ptr::eq(mark.abandoned.as_ptr(), Rc::as_ptr(&self.abandoned)) {
            return;
        }
        mark.armed = false;
        self.settle();
        self.end_mark(mark.id);
    }

    /// Ends the marks dropped unended since the last call, as [`LruIndex::write_ends`] would
    /// (a write abandoned): every mutable call that reads or changes the marks does this
    /// first, so a dropped mark holds its key at most until the index is next used.
    pub fn settle(&mut self) {
        let ids = match self.abandoned.try_borrow_mut() {
            Ok(mut ids) if !ids.is_empty() => std::mem::take(&mut *ids),
            _ => return,
        };
        for id in ids {
            self.end_mark(id);
        }
    }

    /// Ends the mark numbered `id`, once: a number not live (already ended) is ignored.
    fn end_mark(&mut self, id: u64) {
        let Ok(at) = self.marks_live.binary_search_by_key(&id, |(m, _)| *m) else {
            return;
        };
        let Some(key) = self.marks_live.get_mut(at).and_then(|(_, k)| k.take()) else {
            return;
        };
        self.marks_ended += 1;
        if self.marks_ended * 2 > self.marks_live.len() {
            self.marks_live.retain(|(_, k)| k.is_some());
            self.marks_ended = 0;
        }
        match self.writing.get_mut(&key) {
            None => {}
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                self.writing.remove(&key);
                let order = self.next_order();
                match self.held_mut(&key) {
                    Some(node) => node.order = order,
                    // Its copy was evicted meanwhile: a read sent before this end may still
                    // bring what the write replaced.
                    None => self.remember_removed(&key, order),
                }
            }
        }
    }

    /// Whether a read of `key` whose `GET` or poll went out under `order` may keep what it
    /// brought in place of the copy held: not while this process has a write of `key` in
    /// flight, nor when the copy comes from a command sent after it (a write that ended after
    /// the read went out included), whose value is at least as new in Redis's order. A read
    /// that `joined` another's command (under that command's number) only fills an empty
    /// place: the read that sent it keeps the same bytes.
    ///
    /// With nothing held, the place is filled only from a command sent after the last copy
    /// of `key` that left the index (evicted, expired, forgotten) came from, so the copy never
    /// goes back in this process's order of commands: that copy's number when `key` is among
    /// the last [`REMOVED_KEYS_REMEMBERED`] keys removed, else the floor those forgotten
    /// raised. Copies of one key only ever come from later commands, so the last one's number
    /// bounds them all.
    pub fn read_may_keep(&mut self, key: &str, order: u64, joined: bool) -> bool {
        self.settle();
        if self.writing.contains_key(key) {
            return false;
        }
        match self.held(key) {
            None => {
                let removed = self
                    .removed_at
                    .get(key)
                    .and_then(|&i| self.removed_orders.get(i));
                order > removed.copied().unwrap_or(self.floor)
            }
            Some(_) if joined => false,
            Some(n) => order > n.order,
        }
    }

    /// How many keys the index remembers the removed copy of, and the floor for the others
    /// ([`LruIndex::read_may_keep`]; for tests and diagnostics).
    pub fn removed_remembered(&self) -> (usize, u64) {
        (self.removed_at.len(), self.floor)
    }

    /// Remembers that `key`'s copy, from the command numbered `order`, left the index; past
    /// [`REMOVED_KEYS_REMEMBERED`] keys the oldest is forgotten into the floor.
    fn remember_removed(&mut self, key: &str, order: u64) {
        // 0: this process's write in flight (ordered when it ends) or an unordered copy.
        if order == 0 {
            return;
        }
        if let Some(&i) = self.removed_at.get(key) {
            if let Some(n) = self.removed_orders.get_mut(i) {
                *n = (*n).max(order);
            }
            return;
        }
        let at = if self.removed.len() < REMOVED_KEYS_REMEMBERED {
            self.removed.push(key.to_owned());
            self.removed_orders.push(order);
            self.removed.len() - 1
        } else {
            let at = self.removed_next;
            self.removed_next = (at + 1) % REMOVED_KEYS_REMEMBERED;
            let (Some(old), Some(n)) = (self.removed.get_mut(at), self.removed_orders.get_mut(at))
            else {
                return;
            };
            let old = std::mem::replace(old, key.to_owned());
            self.floor = self.floor.max(std::mem::replace(n, order));
            self.removed_at.remove(&old);
            at
        };
        self.removed_at.insert(key.to_owned(), at);
    }

    /// Keys with this process's writes in flight (for tests and diagnostics); marks dropped
    /// since the last mutable call still count ([`LruIndex::settle`]).
    pub fn writes_in_flight(&self) -> usize {
        self.writing.len()
    }

    /// Marks not ended ([`LruIndex::write_begins`]; for tests and diagnostics): one per write
    /// in flight, dropped ones until the next mutable call.
    pub fn marks_live(&self) -> usize {
        self.marks_live.len() - self.marks_ended
    }

    /// True when `key` is held and marked with [`LruIndex::mark_outage_only`].
    pub fn is_outage_only(&self, key: &str) -> bool {
        self.held(key).is_some_and(|n| n.outage_only)
    }

    /// True when `key` is held and marked with [`LruIndex::mark_local`].
    pub fn is_local(&self, key: &str) -> bool {
        self.held(key).is_some_and(|n| n.local)
    }

    /// The marks of the item under `key`, `None` when it is not held: one lookup where
    /// [`LruIndex::is_local`] and [`LruIndex::is_outage_only`] take one each (every read
    /// asks both).
    pub fn marks(&self, key: &str) -> Option<Marks> {
        self.held(key).map(|n| Marks {
            local: n.local,
            outage_only: n.outage_only,
            page_gen: n.page_gen,
        })
    }

    fn held(&self, key: &str) -> Option<&Node> {
        self.map.get(key).and_then(|&slot| self.node(slot))
    }

    fn held_mut(&mut self, key: &str) -> Option<&mut Node> {
        let slot = *self.map.get(key)?;
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Forgets `key`; true when it was held.
    pub fn remove(&mut self, key: &str) -> bool {
        match self.map.get(key) {
            Some(&slot) => self.remove_slot(slot).is_some(),
            None => false,
        }
    }

    /// Keys from most to least recently used (for tests and diagnostics; O(n)).
    pub fn keys_by_recency(&self) -> Vec<&str> {
        let mut out = Vec::with_capacity(self.len());
        let mut at = self.head;
        while let Some(node) = self.node(at) {
            out.push(node.key.as_str());
            at = node.next;
        }
        out
    }

    fn node(&self, slot: usize) -> Option<&Node> {
        self.slots.get(slot).and_then(Option::as_ref)
    }

    fn node_mut(&mut self, slot: usize) -> Option<&mut Node> {
        self.slots.get_mut(slot).and_then(Option::as_mut)
    }

    fn unlink(&mut self, slot: usize) {
        let Some((prev, next)) = self.node(slot).map(|n| (n.prev, n.next)) else {
            return;
        };
        match self.node_mut(prev) {
            Some(p) => p.next = next,
            None => self.head = next,
        }
        match self.node_mut(next) {
            Some(n) => n.prev = prev,
            None => self.tail = prev,
        }
        if let Some(n) = self.node_mut(slot) {
            n.prev = NIL;
            n.next = NIL;
        }
    }

    fn push_front(&mut self, slot: usize) {
        let old_head = self.head;
        if let Some(n) = self.node_mut(slot) {
            n.prev = NIL;
            n.next = old_head;
        }
        match self.node_mut(old_head) {
            Some(h) => h.prev = slot,
            None => self.tail = slot,
        }
        self.head = slot;
    }

    /// Removes the item in `slot` and remembers where its copy came from.
    // One copy for its several callers (module size, docs/decisions/0028-wasm-size-budget.md).
    #[inline(never)]
    fn remove_slot(&mut self, slot: usize) -> Option<Node> {
        let node = self.take_slot(slot)?;
        self.remember_removed(&node.key, node.order);
        Some(node)
    }

    /// Removes the item in `slot`, its copy being replaced.
    fn take_slot(&mut self, slot: usize) -> Option<Node> {
        self.unlink(slot);
        let node = self.slots.get_mut(slot).and_then(Option::take)?;
        self.free.push(slot);
        self.map.remove(&node.key);
        self.used = self.used.saturating_sub(
            node.size
                .saturating_add(node.books)
                .saturating_add(node.charge)
                .saturating_add(node.header_cost),
        );
        Some(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::HashMap;

    const NEVER: Millis = Millis(f64::INFINITY);

    /// With values of a few bytes, what each item costs besides them (its slot, its
    /// key, the host's Map entry and Buffer) is most of what the tier retains; the engine's
    /// index charges it.
    #[test]
    fn an_index_counting_bookkeeping_charges_each_item_its_overhead() {
        let key = "prefix:d1:uc-default:{0123456789abcdef0123456789abcdef}:e";
        let each = 16 + item_overhead(key);
        assert_eq!(
            item_overhead(key),
            ITEM_BOOKKEEPING_BYTES + 3 * key.len() as u64
        );
        assert_eq!(item_overhead("é"), ITEM_BOOKKEEPING_BYTES + 2 * 2 + 2 * 2);
        let mut l = LruIndex::new(10 * each).counting_bookkeeping();
        for i in 0..10u8 {
            let k = key.replace('0', &char::from(b'a' + i).to_string());
            assert!(l.insert(&k, 16, NEVER).is_empty());
        }
        assert_eq!(l.used_bytes(), 10 * each);
        // An eleventh evicts the first: the budget is full of bookkeeping, not of values.
        assert_eq!(l.insert(&key.replace('0', "z"), 16, NEVER).len(), 1);
        assert_eq!(l.len(), 10);
        assert!(l.remove(&key.replace('0', "z")));
        assert_eq!(
            l.used_bytes(),
            9 * each,
            "an item leaves with its bookkeeping"
        );
        // A value that fits the budget only without its bookkeeping is refused.
        let whole = l.capacity();
        assert_eq!(l.insert("big", whole, NEVER), vec!["big".to_owned()]);
        assert!(l.insert("big", whole - item_overhead("big"), NEVER).len() == 9);
        assert_eq!(l.used_bytes(), whole);
        // An index that does not count it charges the values alone.
        let mut plain = LruIndex::new(100);
        assert!(plain.insert(key, 16, NEVER).is_empty());
        assert_eq!(plain.used_bytes(), 16);
    }

    #[test]
    fn evicts_least_recent_first() {
        let mut l = LruIndex::new(10);
        assert!(l.insert("a", 4, NEVER).is_empty());
        assert!(l.insert("b", 4, NEVER).is_empty());
        assert!(l.touch("a", Millis(0.0)));
        assert_eq!(l.insert("c", 4, NEVER), vec!["b".to_owned()]);
        assert_eq!(l.keys_by_recency(), vec!["c", "a"]);
        assert_eq!(
            l.insert("d", 10, NEVER),
            vec!["a".to_owned(), "c".to_owned()]
        );
        assert_eq!((l.used_bytes(), l.len(), l.capacity()), (10, 1, 10));
    }

    #[test]
    fn oversized_and_replaced_items() {
        let mut l = LruIndex::new(10);
        l.insert("a", 5, NEVER);
        assert_eq!(l.insert("big", 11, NEVER), vec!["big".to_owned()]);
        assert_eq!(l.len(), 1);
        // Replacing an item with an oversized one drops the old one too.
        assert_eq!(l.insert("a", 11, NEVER), vec!["a".to_owned()]);
        assert!(l.is_empty());
        l.insert("a", 5, NEVER);
        assert!(l.insert("a", 8, NEVER).is_empty());
        assert_eq!(l.used_bytes(), 8);
        let mut zero = LruIndex::new(0);
        assert_eq!(zero.insert("x", 1, NEVER), vec!["x".to_owned()]);
        assert!(zero.insert("empty", 0, NEVER).is_empty());
    }

    #[test]
    fn a_charge_counts_with_its_item_and_evicts_others_to_fit() {
        let mut l = LruIndex::new(10);
        assert_eq!(l.charge("a", 1), None);
        l.insert("a", 3, NEVER);
        l.insert("b", 3, NEVER);
        // Over the budget even alone: refused, nothing changed.
        assert_eq!(l.charge("a", 8), None);
        assert_eq!((l.used_bytes(), l.len()), (6, 2));
        // Fits after evicting `b`; `a` itself, the least recent before, is never evicted.
        assert_eq!(l.charge("a", 5), Some(vec!["b".to_owned()]));
        assert_eq!((l.used_bytes(), l.keys_by_recency()), (8, vec!["a"]));
        // A new charge replaces the old one.
        assert_eq!(l.charge("a", 2), Some(vec![]));
        assert_eq!(l.used_bytes(), 5);
        // The charge leaves with its item: replaced, removed or evicted.
        l.insert("a", 4, NEVER);
        assert_eq!(l.used_bytes(), 4);
        l.charge("a", 4);
        assert!(l.remove("a"));
        assert_eq!(l.used_bytes(), 0);
        l.insert("a", 4, NEVER);
        l.charge("a", 4);
        assert_eq!(l.insert("c", 5, NEVER), vec!["a".to_owned()]);
        assert_eq!(l.used_bytes(), 5);
    }

    /// A decoded value's charge: twice the copy's bytes, 64 per structural byte of its JSON
    /// part, 1 KiB of objects; refused, as any charge, when it does not fit the budget.
    #[test]
    fn a_decoded_charge_is_reckoned_from_the_copy_and_its_json() {
        let mut l = LruIndex::new(10_000);
        assert_eq!(l.charge_decoded("a", 0), None);
        l.insert("a", 100, NEVER);
        assert_eq!(l.charge_decoded("a", 3), Some(vec![]));
        assert_eq!(l.used_bytes(), 100 + 2 * 100 + 64 * 3 + 1024);
        assert_eq!(l.charge_decoded("a", 0), Some(vec![]));
        assert_eq!(l.used_bytes(), 100 + 2 * 100 + 1024);
        assert_eq!(l.charge_decoded("a", 200), None);
        assert_eq!(l.charge_decoded("a", u64::MAX), None);
    }

    #[test]
    fn marks_are_read_in_one_lookup() {
        let mut l = LruIndex::new(100);
        assert_eq!(l.marks("a"), None);
        l.insert("a", 1, NEVER);
        let none = Marks {
            local: false,
            outage_only: false,
            page_gen: 0,
        };
        assert_eq!(l.marks("a"), Some(none));
        l.mark_local("a");
        l.mark_outage_only("a");
        let both = Marks {
            local: true,
            outage_only: true,
            page_gen: 0,
        };
        assert_eq!(l.marks("a"), Some(both));
        assert!(l.is_local("a") && l.is_outage_only("a"));
    }

    #[test]
    fn touch_unless_declines_by_marks_in_one_lookup() {
        let mut l = LruIndex::new(100);
        assert_eq!(l.touch_unless("a", Millis(0.0), |_| false), Touch::Absent);
        l.insert("a", 1, Millis(50.0));
        l.insert("b", 1, NEVER);
        l.mark_local("a");
        let local = Marks {
            local: true,
            outage_only: false,
            page_gen: 0,
        };
        // Declined: neither touched nor expired, whatever the time.
        assert_eq!(
            l.touch_unless("a", Millis(60.0), |m| m.local),
            Touch::Declined(local)
        );
        assert_eq!(l.keys_by_recency(), vec!["b", "a"]);
        assert_eq!(l.touch_unless("a", Millis(10.0), |_| false), Touch::Touched);
        assert_eq!(l.keys_by_recency(), vec!["a", "b"]);
        assert_eq!(l.touch_unless("a", Millis(50.0), |_| false), Touch::Expired);
        assert!(!l.contains("a"));
    }

    #[test]
    fn touch_expires_and_remove() {
        let mut l = LruIndex::new(100);
        l.insert("a", 1, Millis(50.0));
        assert!(l.touch("a", Millis(49.0)));
        assert!(!l.touch("a", Millis(50.0)));
        assert!(!l.contains("a"));
        assert!(!l.touch("missing", Millis(0.0)));
        l.insert("b", 1, NEVER);
        assert!(l.remove("b"));
        assert!(!l.remove("b"));
        assert_eq!(l.used_bytes(), 0);
    }

    #[test]
    fn a_read_sent_before_the_copys_source_does_not_replace_it() {
        let mut l = LruIndex::new(100);
        let before = l.issue();
        // This process's write keeps its copy; no read keeps anything until it ends.
        let m = l.write_begins("k");
        l.insert("k", 1, NEVER);
        let during = l.issue();
        assert!(!l.read_may_keep("k", before, false));
        assert!(!l.read_may_keep("k", during, false));
        l.write_ends(m);
        assert_eq!(l.writes_in_flight(), 0);
        // Both went out before the write ended: they may bring what it replaced.
        assert!(!l.read_may_keep("k", before, false));
        assert!(!l.read_may_keep("k", during, false));
        let after = l.issue();
        assert!(l.read_may_keep("k", after, false));
        l.insert_ordered("k", 1, NEVER, after);
        // A read copy: only a later command replaces it; a joined read only fills a gap.
        assert!(!l.read_may_keep("k", after, false));
        let later = l.issue();
        assert!(l.read_may_keep("k", later, false));
        assert!(!l.read_may_keep("k", later, true));
        assert!(l.read_may_keep("other", before, true));
        // Two writes of a key in flight: the copy is ordered when the last ends.
        let m1 = l.write_begins("k");
        let m2 = l.write_begins("k");
        l.write_ends(m1);
        let between = l.issue();
        assert!(!l.read_may_keep("k", between, false));
        l.write_ends(m2);
        assert!(!l.read_may_keep("k", between, false));
        assert!(l.read_may_keep("k", l.issued + 1, false));
        assert_eq!(l.writes_in_flight(), 0);
        assert_eq!(l.marks_live(), 0);
    }

    /// A mark dropped unended (its write machine freed before its end) ends as an abandoned
    /// write at the index's next mutable call: the copy is ordered then, and the key is free
    /// for reads sent after.
    #[test]
    fn a_dropped_mark_ends_its_write() {
        let mut l = LruIndex::new(100);
        let before = l.issue();
        let kept = l.write_begins("k");
        let other = l.write_begins("k");
        l.insert("k", 1, NEVER);
        drop(kept);
        // The other write of k is still in flight: nothing is kept.
        assert!(!l.read_may_keep("k", l.issued + 1, false));
        assert_eq!(l.marks_live(), 1);
        drop(other);
        // Sent before the drop: it may bring what the writes replaced.
        assert!(!l.read_may_keep("k", before, false));
        assert_eq!((l.writes_in_flight(), l.marks_live()), (0, 0));
        assert!(l.read_may_keep("k", l.issued + 1, false));
        // A mark that outlives its index is dropped without effect.
        let orphan = l.write_begins("z");
        drop(l);
        drop(orphan);
    }

    /// Marks are numbered per index. A mark handed to the `write_ends` of an index other than
    /// the one that issued it (a wasm `WriteMachine` stepped with another `Engine` than the one
    /// it started on: the binding takes the engine per call) ends nothing there, where a write
    /// of the same number may be in flight, and ends in its own index as an abandoned write.
    #[test]
    fn a_mark_handed_to_another_index_ends_no_write_there() {
        let mut a = LruIndex::new(100);
        let mut b = LruIndex::new(100);
        let from_a = a.write_begins("k");
        // B's own write of k, in flight, numbered as A's.
        let _in_flight = b.write_begins("k");
        b.insert("k", 1, NEVER);
        b.write_ends(from_a);
        let later = b.issue();
        assert!(
            !b.read_may_keep("k", later, false),
            "B's write of k is still in flight: no read may keep a copy of k there"
        );
        assert_eq!(b.marks_live(), 1);
        // A's write has ended one way or the other: A's mark must not outlive it.
        a.settle();
        assert_eq!((a.marks_live(), a.writes_in_flight()), (0, 0));
    }

    /// A copy that left the tier: the copy is evicted between this process's write and the reply of a
    /// read sent before that write (which brings the value the write replaced): the empty
    /// place is filled with that older value, so the next outage serves a value older than
    /// the process's own write that landed ("never goes back", docs/failures.md).
    #[test]
    fn an_eviction_does_not_let_an_older_read_refill_the_copy() {
        let mut l = LruIndex::new(2);
        // Read R's GET goes out; Redis answers it with v0 before it runs the write below.
        let r = l.issue();
        // This process's write of k (v1) keeps its copy, is sent, lands and ends.
        let m = l.write_begins("k");
        l.insert("k", 1, NEVER);
        l.write_ends(m);
        // Another key's copy pushes k's out (or k's copy is forgotten).
        assert_eq!(l.insert("x", 2, NEVER), vec!["k".to_owned()]);
        // R's reply (v0) is judged now: it was sent before the write ended.
        assert!(
            !l.read_may_keep("k", r, false),
            "a read sent before the write ended refills the evicted copy with the value the \
             write replaced"
        );
    }

    /// A copy that left the tier (reads only): a copy from read 2 (v1) is evicted; read 1's reply (v0,
    /// sent earlier) is judged after: it fills the place with the older value.
    #[test]
    fn an_eviction_does_not_let_an_earlier_read_replace_a_later_ones_copy() {
        let mut l = LruIndex::new(2);
        let first = l.issue();
        let second = l.issue();
        assert!(l.read_may_keep("k", second, false));
        l.insert_ordered("k", 1, NEVER, second);
        assert_eq!(l.insert("x", 2, NEVER), vec!["k".to_owned()]);
        assert!(
            !l.read_may_keep("k", first, false),
            "read 1 (sent before read 2, whose copy was evicted) refills the tier with an older \
             value"
        );
    }

    /// A joined read: a read that joined another's GET filled the empty place under its own
    /// number, later than a lease poll of the key sent after that GET, so the poll's reply (a
    /// newer value another instance wrote between the GET and the poll) was refused, though
    /// docs/failures.md says another instance's write "replaces the copy as soon as a read
    /// sent after it brings it". The joiner now fills it under the GET's number.
    #[test]
    fn a_joiners_copy_does_not_refuse_a_poll_sent_after_the_shared_get() {
        let mut l = LruIndex::new(100);
        // Read A's GET goes out (Redis answers v0), then a follower's poll (not shareable with
        // a GET: read-driver.ts keeps GETs and polls apart) goes out after another instance's
        // write (v1), then read B joins A's GET.
        let get = l.issue();
        let poll = l.issue();
        // B joins A's GET under that GET's number (read-driver.ts `share` hands it over with
        // the reply: `ReadMachine::joined`), not a later one of its own.
        let _later = l.issue();
        let joined = get;
        // B is judged first (A waits for its tag refresh): the place is empty, B fills it.
        assert!(l.read_may_keep("k", joined, true));
        l.insert_ordered("k", 1, NEVER, joined);
        // A's reply (same bytes) is rightly refused.
        assert!(!l.read_may_keep("k", get, false));
        // The poll went out after the GET whose bytes the copy holds: it brings a newer value.
        assert!(
            l.read_may_keep("k", poll, false),
            "the poll, sent after the GET whose bytes the joiner kept, may not replace them"
        );
    }

    /// The record's bound: past [`REMOVED_KEYS_REMEMBERED`] keys removed the oldest is forgotten
    /// and its number becomes the floor for every key not remembered; a million evictions
    /// keep the record at that size.
    #[test]
    fn removed_copies_are_remembered_by_count_then_by_one_floor() {
        let mut l = LruIndex::new(1);
        let early = l.issue();
        let mut orders = Vec::new();
        for i in 0..1_000_000u32 {
            let key = format!("k{i}");
            let order = l.issue();
            assert!(l.read_may_keep(&key, order, false));
            // Each copy evicts the one before.
            l.insert_ordered(&key, 1, NEVER, order);
            if i < 3 {
                orders.push(order);
            }
        }
        let (remembered, floor) = l.removed_remembered();
        assert_eq!(remembered, REMOVED_KEYS_REMEMBERED);
        assert!(floor > orders[2], "{floor}");
        // A key forgotten long ago, and a key never held: only reads sent after the floor.
        assert!(!l.read_may_keep("k0", early, false));
        assert!(!l.read_may_keep("never", floor, false));
        assert!(l.read_may_keep("never", floor + 1, false));
        // A key still remembered: its own number, below the floor here, is the bar.
        let last = format!("k{}", 1_000_000 - 2);
        let recent = l.issued - 1;
        assert!(!l.read_may_keep(&last, recent, false));
        assert!(l.read_may_keep(&last, recent + 1, false));
        // An own write's copy (order 0) evicted leaves the bar alone until the write ends.
        let m = l.write_begins("w");
        l.insert("w", 1, NEVER);
        l.insert("x", 1, NEVER);
        l.write_ends(m);
        let ended = l.issued;
        assert!(!l.read_may_keep("w", ended, false));
        assert!(l.read_may_keep("w", ended + 1, false));
    }

    /// One key read and written over one connection (Redis runs its commands in the order
    /// they went out) while another process writes it too; replies are judged in any order.
    #[derive(Clone, Debug)]
    enum Flow {
        /// A read's `GET` goes out.
        Get,
        /// A read joins the last `GET` still in flight.
        Join,
        /// Another process's write runs in Redis.
        Other,
        /// This process's write keeps its copy (at most two in flight).
        Begin,
        /// The oldest write kept and not yet sent goes out.
        Send,
        /// Redis runs the oldest command sent.
        Run,
        /// The reply of read `n` (modulo those answered) is judged.
        Judge(u8),
        /// The oldest write run in Redis ends.
        End,
        /// The copy is evicted.
        Evict,
    }

    fn any_flow() -> impl Strategy<Value = Flow> {
        prop_oneof![
            3 => Just(Flow::Get),
            1 => Just(Flow::Join),
            1 => Just(Flow::Other),
            2 => Just(Flow::Begin),
            2 => Just(Flow::Send),
            4 => Just(Flow::Run),
            4 => (0u8..8).prop_map(Flow::Judge),
            2 => Just(Flow::End),
            1 => Just(Flow::Evict),
        ]
    }

    /// Where the tier's copy comes from, for the check.
    #[derive(Clone, Copy, Debug)]
    enum Copy {
        /// A value Redis held at this version.
        Read(u64),
        /// This process's write `n` (its version once Redis ran it).
        Own(usize),
    }

    #[derive(Default)]
    struct Conn {
        /// Redis's version of the key: one more per write run.
        version: u64,
        /// Commands sent, not yet run: a read's `GET` (its index) or a write (its index).
        queue: std::collections::VecDeque<Result<usize, usize>>,
        /// Per read: its order, whether it joined, its `GET`'s index, judged yet.
        reads: Vec<(u64, bool, usize, bool)>,
        /// Per `GET` sent: the version it read once run.
        gets: Vec<Option<u64>>,
        /// Per own write: sent, the version Redis ran it at, ended.
        writes: Vec<(bool, Option<u64>, bool)>,
        copy: Option<Copy>,
        /// Every copy the tier held of the key, evicted ones included.
        ever: Vec<Copy>,
    }

    impl Conn {
        fn version_of(&self, c: Copy) -> u64 {
            match c {
                Copy::Read(v) => v,
                // Not run yet: newer than anything Redis holds now.
                Copy::Own(w) => self.writes[w].1.unwrap_or(u64::MAX),
            }
        }
    }

    /// The body of the two properties below; `strict`: also across evictions, a kept
    /// read is never older than any copy the tier held of the key before.
    fn check_flows(flows: Vec<Flow>, strict: bool) -> Result<(), TestCaseError> {
        let mut l = LruIndex::new(100);
        let mut c = Conn::default();
        // The mark of each write in `c.writes`, taken when it ends.
        let mut marks: Vec<Option<WriteMark>> = Vec::new();
        for flow in flows {
            match flow {
                Flow::Get => {
                    let order = l.issue();
                    c.queue.push_back(Ok(c.gets.len()));
                    c.reads.push((order, false, c.gets.len(), false));
                    c.gets.push(None);
                }
                Flow::Join => {
                    // The read driver shares only the last `GET` of a key sent, while it
                    // is in flight.
                    let last = c.gets.len().checked_sub(1);
                    if let Some(g) = last.filter(|&g| c.gets[g].is_none()) {
                        // Under the number of the `GET` it joined (`ReadMachine::joined`).
                        let sender = c.reads.iter().find(|r| r.2 == g && !r.1);
                        let order = sender.map_or(0, |r| r.0);
                        c.reads.push((order, true, g, false));
                    }
                }
                Flow::Other => c.version += 1,
                Flow::Begin => {
                    if c.writes.iter().filter(|w| !w.2).count() < 2 {
                        marks.push(Some(l.write_begins("k")));
                        l.insert("k", 1, NEVER);
                        c.copy = Some(Copy::Own(c.writes.len()));
                        c.ever.push(Copy::Own(c.writes.len()));
                        c.writes.push((false, None, false));
                    }
                }
                Flow::Send => {
                    if let Some(w) = c.writes.iter().position(|w| !w.0) {
                        c.writes[w].0 = true;
                        c.queue.push_back(Err(w));
                    }
                }
                Flow::Run => match c.queue.pop_front() {
                    Some(Ok(g)) => c.gets[g] = Some(c.version),
                    Some(Err(w)) => {
                        c.version += 1;
                        c.writes[w].1 = Some(c.version);
                    }
                    None => {}
                },
                Flow::Judge(n) => {
                    let ready: Vec<usize> = (0..c.reads.len())
                        .filter(|&r| !c.reads[r].3 && c.gets[c.reads[r].2].is_some())
                        .collect();
                    if !ready.is_empty() {
                        let r = ready[usize::from(n) % ready.len()];
                        let (order, joined, g, _) = c.reads[r];
                        c.reads[r].3 = true;
                        let v = c.gets[g].unwrap_or(0);
                        if l.read_may_keep("k", order, joined) {
                            if let Some(old) = c.copy {
                                prop_assert!(
                                    c.version_of(old) <= v,
                                    "read {} (version {}) replaced {:?} ({})",
                                    r,
                                    v,
                                    old,
                                    c.version_of(old)
                                );
                            }
                            if strict {
                                let newest = c.ever.iter().map(|&e| c.version_of(e)).max();
                                prop_assert!(
                                    newest.map_or(true, |n| n <= v),
                                    "read {} (version {}) kept after the tier held version {:?}",
                                    r,
                                    v,
                                    newest
                                );
                            }
                            l.insert_ordered("k", 1, NEVER, order);
                            c.copy = Some(Copy::Read(v));
                            c.ever.push(Copy::Read(v));
                        }
                    }
                }
                Flow::End => {
                    if let Some(w) = c.writes.iter().position(|w| w.1.is_some() && !w.2) {
                        c.writes[w].2 = true;
                        if let Some(m) = marks.get_mut(w).and_then(Option::take) {
                            l.write_ends(m);
                        }
                    }
                }
                Flow::Evict => {
                    l.remove("k");
                    c.copy = None;
                }
            }
        }
        // Everything settles: every write goes out, runs and ends.
        for w in 0..c.writes.len() {
            if !c.writes[w].0 {
                c.writes[w].0 = true;
                c.queue.push_back(Err(w));
            }
        }
        while let Some(cmd) = c.queue.pop_front() {
            if let Err(w) = cmd {
                c.version += 1;
                c.writes[w].1 = Some(c.version);
            }
        }
        for w in 0..c.writes.len() {
            if !c.writes[w].2 {
                c.writes[w].2 = true;
                if let Some(m) = marks.get_mut(w).and_then(Option::take) {
                    l.write_ends(m);
                }
            }
        }
        prop_assert_eq!(l.writes_in_flight(), 0);
        // The next read replaces whatever is held.
        let order = l.issue();
        prop_assert!(l.read_may_keep("k", order, false));
        Ok(())
    }

    /// What a write machine does with its mark: begins a write of a key (of three), ends
    /// one in flight, or is dropped before its end.
    #[derive(Clone, Copy, Debug)]
    enum MarkOp {
        Begin(u8),
        End(u8),
        Drop(u8),
    }

    fn any_mark_op() -> impl Strategy<Value = MarkOp> {
        prop_oneof![
            (0u8..3).prop_map(MarkOp::Begin),
            any::<u8>().prop_map(MarkOp::End),
            any::<u8>().prop_map(MarkOp::Drop),
        ]
    }

    proptest! {
        /// Marks never outlive their writes: after any sequence of writes begun, ended and
        /// dropped unended, once the index is next used (here: a command issued), it marks
        /// exactly the keys of the writes still alive, with one mark each.
        #[test]
        fn marks_never_outlive_their_writes(
            ops in proptest::collection::vec(any_mark_op(), 0..60),
        ) {
            let mut l = LruIndex::new(100);
            let mut live: Vec<(WriteMark, String)> = Vec::new();
            for op in ops {
                match op {
                    MarkOp::Begin(k) => {
                        let key = format!("k{k}");
                        l.insert(&key, 1, NEVER);
                        live.push((l.write_begins(&key), key));
                    }
                    MarkOp::End(i) if !live.is_empty() => {
                        let (m, _) = live.swap_remove(usize::from(i) % live.len());
                        l.write_ends(m);
                    }
                    MarkOp::Drop(i) if !live.is_empty() => {
                        drop(live.swap_remove(usize::from(i) % live.len()));
                    }
                    _ => {}
                }
                let order = l.issue();
                prop_assert_eq!(l.marks_live(), live.len());
                let mut keys: Vec<&String> = live.iter().map(|(_, k)| k).collect();
                keys.sort();
                keys.dedup();
                prop_assert_eq!(l.writes_in_flight(), keys.len());
                for k in 0..3u8 {
                    let key = format!("k{k}");
                    let writing = keys.contains(&&key);
                    // A key with no write alive takes a read sent after every end.
                    prop_assert_eq!(l.read_may_keep(&key, order + 1, false), !writing);
                }
            }
            live.clear();
            l.issue();
            prop_assert_eq!((l.marks_live(), l.writes_in_flight()), (0, 0));
        }
    }

    proptest! {
        /// The rule of [`LruIndex::read_may_keep`]: a read never replaces the tier's copy
        /// with a value older in Redis's order (this process's write in flight counts as
        /// newer than anything), and once everything has settled the next read replaces it.
        #[test]
        fn a_kept_read_is_never_older_than_the_copy(
            flows in proptest::collection::vec(any_flow(), 0..80),
        ) {
            check_flows(flows, false)?;
        }

        /// The copy never goes back in Redis's order, an eviction between a
        /// read's `GET` and its judgement included (docs/failures.md, "The copy an outage
        /// serves": "That copy never goes back in the order in which the process sent its
        /// commands").
        #[test]
        fn a_kept_read_is_never_older_than_any_copy_held_before(
            flows in proptest::collection::vec(any_flow(), 0..80),
        ) {
            check_flows(flows, true)?;
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Insert(u8, u64, u8),
        Touch(u8, u8),
        Remove(u8),
        Charge(u8, u64),
    }

    fn any_op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..12, 0u64..40, 0u8..20).prop_map(|(k, s, e)| Op::Insert(k, s, e)),
            (0u8..12, 0u8..20).prop_map(|(k, n)| Op::Touch(k, n)),
            (0u8..12).prop_map(Op::Remove),
            (0u8..12, 0u64..60).prop_map(|(k, c)| Op::Charge(k, c)),
        ]
    }

    /// The obvious O(n) model: a Vec from most to least recent.
    #[derive(Default)]
    struct Model {
        /// Key, size plus charge, expiry, size alone.
        items: Vec<(String, u64, f64, u64)>,
    }

    impl Model {
        fn remove(&mut self, key: &str) -> bool {
            let before = self.items.len();
            self.items.retain(|(k, _, _, _)| k != key);
            before != self.items.len()
        }
    }

    proptest! {
        #[test]
        fn matches_model(cap in 0u64..100, ops in proptest::collection::vec(any_op(), 0..200)) {
            let mut l = LruIndex::new(cap);
            let mut m = Model::default();
            for op in ops {
                match op {
                    Op::Insert(k, size, exp) => {
                        let key = format!("k{k}");
                        m.remove(&key);
                        let mut expected = Vec::new();
                        if size > cap {
                            expected.push(key.clone());
                        } else {
                            while m.items.iter().map(|i| i.1).sum::<u64>() + size > cap {
                                expected.push(m.items.pop().unwrap().0);
                            }
                            m.items.insert(0, (key.clone(), size, f64::from(exp), size));
                        }
                        prop_assert_eq!(l.insert(&key, size, Millis(f64::from(exp))), expected);
                    }
                    Op::Touch(k, now) => {
                        let key = format!("k{k}");
                        let now = f64::from(now);
                        let expected = match m.items.iter().position(|i| i.0 == key) {
                            Some(p) if now < m.items[p].2 => {
                                let item = m.items.remove(p);
                                m.items.insert(0, item);
                                true
                            }
                            Some(p) => {
                                m.items.remove(p);
                                false
                            }
                            None => false,
                        };
                        prop_assert_eq!(l.touch(&key, Millis(now)), expected);
                    }
                    Op::Remove(k) => {
                        let key = format!("k{k}");
                        prop_assert_eq!(l.remove(&key), m.remove(&key));
                    }
                    Op::Charge(k, extra) => {
                        let key = format!("k{k}");
                        let expected = match m.items.iter().position(|i| i.0 == key) {
                            Some(p) if m.items[p].3 + extra <= cap => {
                                let mut item = m.items.remove(p);
                                item.1 = item.3 + extra;
                                let mut evicted = Vec::new();
                                while m.items.iter().map(|i| i.1).sum::<u64>() + item.1 > cap {
                                    evicted.push(m.items.pop().unwrap().0);
                                }
                                m.items.insert(0, item);
                                Some(evicted)
                            }
                            _ => None,
                        };
                        prop_assert_eq!(l.charge(&key, extra), expected);
                    }
                }
                let sum: u64 = m.items.iter().map(|i| i.1).sum();
                prop_assert!(l.used_bytes() <= cap);
                prop_assert_eq!(l.used_bytes(), sum);
                prop_assert_eq!(l.len(), m.items.len());
                let keys: Vec<&str> = m.items.iter().map(|i| i.0.as_str()).collect();
                prop_assert_eq!(l.keys_by_recency(), keys);
            }
        }
    }

    /// The host's bytes of one copy: an envelope whose fields come from `version`, every
    /// version of a key the same length (a replaced copy the length check cannot tell apart).
    fn copy_bytes(key: u8, version: u8) -> Vec<u8> {
        let m = crate::envelope::EntryMeta {
            kind: crate::envelope::EntryKind::UseCache,
            timestamp: Millis(f64::from(version)),
            made_at: None,
            revalidate: 60.0,
            expire: f64::from(version) + 1.0,
            stale: 0.0,
            key: format!("k{key}"),
            tags: vec![format!("t{}", version % 10)],
            meta: vec![version],
            parts: vec![3],
        };
        let mut v = crate::envelope::encode_header(&m).unwrap();
        v.extend_from_slice(b"abc");
        v
    }

    #[derive(Clone, Debug)]
    enum HeaderOp {
        Insert(u8, u8),
        Hit(u8),
        Remove(u8),
        Touch(u8, u8),
        Charge(u8, u64),
    }

    fn any_header_op() -> impl Strategy<Value = HeaderOp> {
        prop_oneof![
            (0u8..4, 0u8..30).prop_map(|(k, v)| HeaderOp::Insert(k, v)),
            (0u8..4).prop_map(HeaderOp::Hit),
            (0u8..4).prop_map(HeaderOp::Remove),
            (0u8..4, 0u8..40).prop_map(|(k, n)| HeaderOp::Touch(k, n)),
            (0u8..4, 0u64..300).prop_map(|(k, c)| HeaderOp::Charge(k, c)),
        ]
    }

    proptest! {
        /// Whatever the sequence of inserts (over a copy of the same length included),
        /// removals, evictions, expiries and charges, a hit finds kept only the header decoded
        /// afresh from the bytes the host holds for the key; the budget counts the kept headers
        /// and bounds them with the bytes.
        #[test]
        fn a_kept_header_is_the_one_the_bytes_held_decode_to(
            cap in 0u64..3000,
            ops in proptest::collection::vec(any_header_op(), 0..120),
        ) {
            let mut l = LruIndex::new(cap);
            // The host's map: what it holds under each key, as the index's answers make it.
            let mut host: HashMap<String, Vec<u8>> = HashMap::new();
            for op in ops {
                match op {
                    HeaderOp::Insert(k, version) => {
                        let key = format!("k{k}");
                        let bytes = copy_bytes(k, version);
                        let size = bytes.len() as u64;
                        let evicted = l.insert(&key, size, Millis(f64::from(version) + 20.0));
                        host.insert(key.clone(), bytes);
                        for e in evicted {
                            host.remove(&e);
                        }
                    }
                    HeaderOp::Hit(k) => {
                        let key = format!("k{k}");
                        let Some(bytes) = host.get(&key) else { continue };
                        if !l.contains(&key) {
                            host.remove(&key);
                            continue;
                        }
                        let afresh = crate::envelope::decode_header(bytes, bytes.len()).unwrap();
                        if let Some(h) = l.kept_header(&key, bytes.len()) {
                            prop_assert_eq!(&*h, &afresh);
                        }
                        let header = Rc::new(afresh);
                        if l.keep_header(&key, bytes.len(), &header) {
                            let h = l.kept_header(&key, bytes.len());
                            prop_assert!(h.is_some_and(|h| Rc::ptr_eq(&h, &header)));
                        }
                    }
                    HeaderOp::Remove(k) => {
                        let key = format!("k{k}");
                        l.remove(&key);
                        host.remove(&key);
                    }
                    HeaderOp::Touch(k, now) => {
                        let key = format!("k{k}");
                        if !l.touch(&key, Millis(f64::from(now))) {
                            host.remove(&key);
                        }
                    }
                    HeaderOp::Charge(k, extra) => {
                        if let Some(evicted) = l.charge(&format!("k{k}"), extra) {
                            for e in evicted {
                                host.remove(&e);
                            }
                        }
                    }
                }
                prop_assert!(l.used_bytes() <= cap);
                for key in host.keys() {
                    prop_assert!(l.contains(key), "the host holds bytes the index dropped");
                }
            }
            for k in 0..4u8 {
                l.remove(&format!("k{k}"));
            }
            prop_assert_eq!(l.used_bytes(), 0, "a kept header's charge left with its item");
        }
    }

    #[test]
    fn a_reseeded_index_finds_every_key_in_every_map() {
        use crate::strhash::reseed_checks::{finds_all, held};
        let new = crate::strhash::HashSeed::from_bytes([9; 16]);
        let mut l = LruIndex::new(1 << 20);
        for i in 0..600 {
            let order = l.issue();
            l.insert_ordered(&format!("k{i}"), 10, NEVER, order);
        }
        // Removed copies remembered (`removed_at`), writes in flight (`writing`).
        for i in 0..200 {
            assert!(l.remove(&format!("k{i}")));
        }
        let marks: Vec<WriteMark> = (150..350)
            .map(|i| l.write_begins(&format!("k{i}")))
            .collect();
        let before = [held(&l.map), held(&l.writing), held(&l.removed_at)];
        assert_eq!(before.each_ref().map(Vec::len), [400, 200, 200]);
        l.reseed(new);
        finds_all(&l.map, &before[0], new);
        finds_all(&l.writing, &before[1], new);
        finds_all(&l.removed_at, &before[2], new);
        assert_eq!(l.hash_seeds(), [new; 3]);
        // The index still works through its maps: writes end, reads are judged, keys go.
        for m in marks {
            l.write_ends(m);
        }
        assert_eq!(l.writes_in_flight(), 0);
        assert!(
            !l.read_may_keep("k10", 1, false),
            "older than the removed copy"
        );
        let later = l.issue();
        assert!(l.read_may_keep("k10", later, false));
        assert!(l.remove("k599"));
        assert!(!l.contains("k599"));
        assert_eq!(l.len(), 399);
    }

    #[test]
    fn a_touch_hands_back_the_kept_header_in_the_same_lookup() {
        let bytes = copy_bytes(1, 2);
        let header = Rc::new(crate::envelope::decode_header(&bytes, bytes.len()).unwrap());
        let mut l = LruIndex::with_seed(1 << 20, crate::strhash::HashSeed::from_bytes([7; 16]));
        l.insert("k1", bytes.len() as u64, Millis(100.0));
        l.insert("k2", 1, NEVER);
        let touch = |l: &mut LruIndex, len, now, decline: bool| {
            l.touch_unless_kept("k1", Millis(now), len, |_| decline)
        };
        // Nothing kept yet: touched, no header.
        assert_eq!(
            touch(&mut l, Some(bytes.len()), 1.0, false),
            (Touch::Touched, None)
        );
        assert!(l.keep_header("k1", bytes.len(), &header));
        let (t, kept) = touch(&mut l, Some(bytes.len()), 2.0, false);
        assert_eq!(t, Touch::Touched);
        assert!(kept.is_some_and(|h| Rc::ptr_eq(&h, &header)));
        assert_eq!(l.keys_by_recency(), vec!["k1", "k2"]);
        // Other bytes, or none named: no header, as `kept_header` says.
        assert_eq!(
            touch(&mut l, Some(bytes.len() + 1), 3.0, false),
            (Touch::Touched, None)
        );
        assert_eq!(touch(&mut l, None, 3.0, false), (Touch::Touched, None));
        // Declined or expired: no header, and the same outcome as `touch_unless`.
        assert!(matches!(
            touch(&mut l, Some(bytes.len()), 4.0, true),
            (Touch::Declined(_), None)
        ));
        assert_eq!(
            touch(&mut l, Some(bytes.len()), 100.0, false),
            (Touch::Expired, None)
        );
        assert_eq!(
            touch(&mut l, Some(bytes.len()), 100.0, false),
            (Touch::Absent, None)
        );
    }

    #[test]
    fn a_kept_header_is_charged_and_kept_only_in_the_room_left() {
        let bytes = copy_bytes(1, 2);
        let header = Rc::new(crate::envelope::decode_header(&bytes, bytes.len()).unwrap());
        let len = bytes.len() as u64;
        let cost = header.heap_bytes();
        let mut l = LruIndex::new(len + cost);
        l.insert("k1", len, Millis(1e9));
        assert!(
            !l.keep_header("k1", bytes.len() + 1, &header),
            "other bytes"
        );
        assert!(!l.keep_header("k2", bytes.len(), &header), "not held");
        assert!(l.keep_header("k1", bytes.len(), &header));
        assert_eq!(l.used_bytes(), len + cost);
        assert!(l.kept_header("k1", bytes.len()).is_some());
        assert_eq!(l.kept_header("k1", bytes.len() - 1), None);
        // Replaced by an insert of the same length: the header leaves with the old copy.
        l.insert("k1", len, Millis(1e9));
        assert_eq!(
            (l.kept_header("k1", bytes.len()), l.used_bytes()),
            (None, len)
        );
        // No room left: nothing is evicted for it.
        let mut l = LruIndex::new(len + cost - 1);
        l.insert("k1", len, Millis(1e9));
        assert!(!l.keep_header("k1", bytes.len(), &header));
        assert_eq!(l.used_bytes(), len);
        // A charge that no longer fits beside the header is refused, and an expiry takes both.
        let mut l = LruIndex::new(len + cost + 10);
        l.insert("k1", len, Millis(5.0));
        assert!(l.keep_header("k1", bytes.len(), &header));
        assert_eq!(l.charge("k1", 11), None);
        assert!(l.charge("k1", 10).is_some());
        assert!(!l.touch("k1", Millis(5.0)));
        assert_eq!(l.used_bytes(), 0);
    }
}
