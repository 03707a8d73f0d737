//! Runs the tag scripts on a real `redis-server` and checks they agree with the Rust rules
//! (and the seed's write with the rule the simulation's model of Redis runs).
//!
//! Each test starts its own server on a free loopback port (no persistence) and kills it when
//! done. When `redis-server` is not on PATH the tests fail: a suite that passes with nothing
//! run would hide a broken script (`make setup` installs it).
//!
//! `REDIS_SERVER` names another server binary (`make test-valkey`: valkey-server), which must
//! then start; with `REDIS_SERVER_NAME` set, the server must report that `server_name` in INFO
//! (Redis reports none, taken as `redis`), as in tests/support/redis.mjs.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fleetcache_core::{
    netstring, scripts, Config, Engine, Millis, Revalidation, ScriptCall, TagRecord, TAG_REFRESH,
};
use proptest::prelude::*;

#[path = "support/seed_rule.rs"]
mod seed_rule;

/// A RESP2 reply.
#[derive(Clone, Debug, PartialEq)]
enum Reply {
    Simple(String),
    Error(String),
    Int(i64),
    Bulk(Option<Vec<u8>>),
    Array(Vec<Reply>),
}

impl Reply {
    fn bulk(&self) -> &[u8] {
        match self {
            Reply::Bulk(Some(b)) => b,
            other => panic!("expected a bulk string, got {other:?}"),
        }
    }
}

/// A child `redis-server`, killed (by its own handle, i.e. its PID) on drop.
struct Server {
    child: Child,
    conn: Conn,
    port: u16,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Conn {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Conn {
    fn send(&mut self, args: &[&[u8]]) -> Reply {
        let mut out = format!("*{}\r\n", args.len()).into_bytes();
        for a in args {
            out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
            out.extend_from_slice(a);
            out.extend_from_slice(b"\r\n");
        }
        self.writer.write_all(&out).unwrap();
        self.read()
    }

    fn cmd(&mut self, args: &[&str]) -> Reply {
        let args: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.send(&args)
    }

    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).unwrap();
        assert!(line.ends_with("\r\n"), "bad RESP line {line:?}");
        line.truncate(line.len() - 2);
        line
    }

    fn read(&mut self) -> Reply {
        let line = self.line();
        let (kind, rest) = line.split_at(1);
        match kind {
            "+" => Reply::Simple(rest.to_owned()),
            "-" => Reply::Error(rest.to_owned()),
            ":" => Reply::Int(rest.parse().unwrap()),
            "$" => {
                let n: i64 = rest.parse().unwrap();
                if n < 0 {
                    return Reply::Bulk(None);
                }
                let mut buf = vec![0u8; n as usize + 2];
                self.reader.read_exact(&mut buf).unwrap();
                buf.truncate(n as usize);
                Reply::Bulk(Some(buf))
            }
            "*" => {
                let n: i64 = rest.parse().unwrap();
                Reply::Array((0..n.max(0)).map(|_| self.read()).collect())
            }
            _ => panic!("unknown RESP type in {line:?}"),
        }
    }

    /// EVALSHA, falling back to EVAL on NOSCRIPT as the host does.
    fn run(&mut self, call: &ScriptCall) -> Reply {
        let numkeys = call.keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVALSHA", call.sha1.as_bytes(), numkeys.as_bytes()];
        args.extend(call.keys.iter().map(|k| k.as_bytes()));
        args.extend(call.args.iter().map(|a| a.as_bytes()));
        match self.send(&args) {
            Reply::Error(e) if e.starts_with("NOSCRIPT") => {
                args[0] = b"EVAL";
                args[1] = call.script.source.as_bytes();
                self.send(&args)
            }
            reply => reply,
        }
    }
}

/// The process id the server on `conn` reports, or `None` when it does not answer.
fn server_pid(conn: &mut Conn) -> Option<u32> {
    conn.writer
        .write_all(b"*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")
        .ok()?;
    let mut header = String::new();
    conn.reader.read_line(&mut header).ok()?;
    let len: usize = header.trim_end().strip_prefix('$')?.parse().ok()?;
    let mut body = vec![0; len + 2];
    conn.reader.read_exact(&mut body).ok()?;
    String::from_utf8_lossy(&body)
        .lines()
        .find_map(|l| l.strip_prefix("process_id:")?.trim().parse().ok())
}

/// Starts a server; a missing or failing binary fails the test, with what to install.
fn start() -> Server {
    let chosen = std::env::var("REDIS_SERVER").ok().filter(|b| !b.is_empty());
    let bin = chosen.as_deref().unwrap_or("redis-server");
    if let Err(e) = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        panic!("cannot run {bin} ({e}): the Lua script tests need a real server; install redis-server (make setup) or set REDIS_SERVER");
    }
    // The free port is found by binding port 0 and letting it go, so a test running beside
    // this one can be handed the same port: its server then fails to bind, and this test
    // would connect to the other test's server and share its keys. Only a server that reports
    // this child's process id is ours; otherwise try another port.
    let mut server = None;
    'ports: for _ in 0..5 {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
        let deadline = Instant::now() + Duration::from_secs(10);
        let stream = loop {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                // It could not listen (the port was taken meanwhile): another port.
                Err(_) if matches!(child.try_wait(), Ok(Some(_))) => continue 'ports,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("{bin} did not start on port {port}: {e}"),
            }
        };
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let conn = Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        };
        // Dropping a candidate kills its child, ours or not. The other test's server may be
        // going away as this one asks (a reset): not ours either.
        let mut candidate = Server { child, conn, port };
        if server_pid(&mut candidate.conn) == Some(candidate.child.id()) {
            server = Some(candidate);
            break;
        }
    }
    let mut server = server.unwrap_or_else(|| panic!("{bin}: no port of its own in 5 tries"));
    assert_eq!(server.conn.cmd(&["PING"]), Reply::Simple("PONG".into()));
    if let Some(want) = std::env::var("REDIS_SERVER_NAME")
        .ok()
        .filter(|w| !w.is_empty())
    {
        let info = server.conn.cmd(&["INFO", "server"]);
        let info = String::from_utf8_lossy(info.bulk());
        let name = info
            .lines()
            .find_map(|l| l.strip_prefix("server_name:"))
            .unwrap_or("redis");
        assert_eq!(
            name, want,
            "{bin} is not the server REDIS_SERVER_NAME asks for"
        );
    }
    server
}

impl Server {
    /// Another connection to this server (a subscriber's).
    fn connect(&self) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        Conn {
            reader: BufReader::new(stream.try_clone().unwrap()),
            writer: stream,
        }
    }
}

fn engine() -> Engine {
    Engine::new(Config {
        prefix: "t".into(),
        ..Config::default()
    })
    .unwrap()
}

fn update(conn: &mut Conn, e: &mut Engine, tags: &[&str], rev: Revalidation, now: f64) -> Vec<u8> {
    let call = e
        .plan_tag_update(tags, &rev, Millis(now), "epoch-1")
        .unwrap();
    conn.run(&call).bulk().to_vec()
}

fn update_as(conn: &mut Conn, e: &mut Engine, tag: &str, now: f64, candidate: &str) -> Vec<u8> {
    let call = e
        .plan_tag_update(&[tag], &Revalidation::Expire, Millis(now), candidate)
        .unwrap();
    conn.run(&call).bulk().to_vec()
}

/// One refresh as a server does it: when the reply is full, the pages of the whole state and
/// the refresh that catches up follow. Returns the first reply and its summary.
fn refresh(conn: &mut Conn, e: &mut Engine) -> (Vec<u8>, fleetcache_core::RefreshSummary) {
    let reply = conn.run(&e.plan_tag_refresh()).bulk().to_vec();
    let summary = e.apply_refresh(&reply, Millis(LATER)).unwrap();
    if summary.full {
        for _ in 0..10_000 {
            if !e.mirror().is_loading() {
                break;
            }
            let page = conn.run(&e.plan_tag_refresh()).bulk().to_vec();
            e.apply_refresh(&page, Millis(LATER)).unwrap();
        }
        if !e.mirror().is_synced() {
            let catch_up = conn.run(&e.plan_tag_refresh()).bulk().to_vec();
            e.apply_refresh(&catch_up, Millis(LATER)).unwrap();
        }
        assert!(e.mirror().is_synced());
    }
    (reply, summary)
}

/// A time after every update these tests make, well within the pruning age.
const LATER: f64 = 100_000.0;

fn tags_in(reply: &[u8]) -> Vec<String> {
    let items = netstring::decode(reply).unwrap();
    items[6..]
        .chunks(2)
        .map(|p| String::from_utf8(p[0].to_vec()).unwrap())
        .collect()
}

const POOL: [&str; 4] = ["a", "b", "_N_T_/x", "tag with, comma: and {brace}"];

fn any_rev() -> impl Strategy<Value = Revalidation> {
    prop_oneof![
        1 => Just(Revalidation::Expire),
        1 => Just(Revalidation::Stale {
            expire_seconds: None
        }),
        1 => Just(Revalidation::Stale {
            expire_seconds: Some(31_536_000.0)
        }),
        1 => Just(Revalidation::Stale {
            expire_seconds: Some(f64::INFINITY)
        }),
        1 => (-1.0f64..30.0).prop_map(|e| Revalidation::Stale {
            expire_seconds: Some(e)
        }),
        // On the 500 ms grid of `any_offset`, so updates land exactly on scheduled expiries.
        4 => (0u32..4).prop_map(|k| Revalidation::Stale {
            expire_seconds: Some(f64::from(k) * 0.5)
        }),
    ]
}

fn any_offset() -> impl Strategy<Value = f64> {
    prop_oneof![
        1 => 0.0f64..60_000.0,
        3 => (0u32..8).prop_map(|k| f64::from(k) * 500.0),
    ]
}

#[test]
fn lua_rules_agree_with_rust() {
    let mut server = start();
    // The runner wants an `Fn`; the connection is used by one case at a time.
    let cell = std::cell::RefCell::new(&mut server.conn);
    let base = 1_795_690_530_000.0;
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(32));
    runner
        .run(
            &proptest::collection::vec(
                (
                    proptest::sample::subsequence(POOL.to_vec(), 1..=POOL.len()),
                    any_rev(),
                    any_offset(),
                ),
                1..12,
            ),
            |updates| {
                let mut guard = cell.borrow_mut();
                let conn: &mut Conn = &mut guard;
                conn.cmd(&["FLUSHALL"]);
                let mut writer = engine();
                for (tags, rev, offset) in &updates {
                    update(conn, &mut writer, tags, *rev, base + offset);
                }
                // What Redis holds is byte-for-byte what the Rust rules compute.
                let keys = writer.namespace().tag_keys();
                for tag in POOL {
                    let stored = conn.cmd(&["HGET", &keys.state, tag]);
                    match writer.mirror().record(tag) {
                        Some(r) => prop_assert_eq!(stored.bulk(), r.encode().into_bytes()),
                        None => prop_assert_eq!(stored, Reply::Bulk(None)),
                    }
                }
                // A fresh reader ends up with the writer's records.
                let mut reader = engine();
                let (_, summary) = refresh(conn, &mut reader);
                prop_assert!(summary.full);
                prop_assert_eq!(reader.mirror().version(), updates.len() as u64);
                prop_assert_eq!(reader.mirror().epoch(), "epoch-1");
                for tag in POOL {
                    prop_assert_eq!(reader.mirror().record(tag), writer.mirror().record(tag));
                }
                Ok(())
            },
        )
        .unwrap();
}

#[test]
fn refresh_is_incremental() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    let mut reader = engine();

    // Nothing stored yet: epoch "" and version 0, no tags, not full.
    let (reply, s) = refresh(conn, &mut reader);
    assert_eq!(reply, b"0:,1:0,0:,1:0,1:0,0:,");
    assert!(!s.full);

    update(conn, &mut writer, &["a", "b"], Revalidation::Expire, 1000.0);
    // A new state: its first page comes with the reply, here the whole of it (cursor 0).
    let (reply, s) = refresh(conn, &mut reader);
    assert!(s.full);
    let items = netstring::decode(&reply).unwrap();
    assert_eq!(items[6], b"0");
    assert_eq!(items.len(), 7 + 4);
    assert_eq!(reader.mirror().version(), 1);
    assert!(reader.mirror().record("a").is_some() && reader.mirror().record("b").is_some());

    // Up to date: no tags.
    let (reply, s) = refresh(conn, &mut reader);
    assert_eq!((s.full, s.changed), (false, 0));
    assert!(tags_in(&reply).is_empty());

    // Only what changed since the known version.
    let rev = Revalidation::Stale {
        expire_seconds: Some(60.0),
    };
    update(conn, &mut writer, &["c"], rev, 2000.0);
    update(conn, &mut writer, &["a"], rev, 3000.0);
    let (reply, s) = refresh(conn, &mut reader);
    assert_eq!((s.full, s.changed, s.version), (false, 2, 3));
    let mut tags = tags_in(&reply);
    tags.sort();
    assert_eq!(tags, ["a", "c"]);
    for tag in ["a", "b", "c"] {
        assert_eq!(reader.mirror().record(tag), writer.mirror().record(tag));
    }

    // The update reply: epoch, version, its id, 0. The writer's version stays; its next
    // refresh fetches its own update with the others' and checks its version is still there.
    let mut fresh = engine();
    refresh(conn, &mut fresh);
    let reply = update(conn, &mut fresh, &["d"], Revalidation::Expire, 4000.0);
    assert_eq!(reply, b"7:epoch-1,1:4,7:epoch-1,1:0,");
    assert_eq!(fresh.apply_update_reply(&reply).unwrap().version, 3);
    update(conn, &mut writer, &["e"], Revalidation::Expire, 5000.0);
    let reply = update(conn, &mut fresh, &["f"], Revalidation::Expire, 6000.0);
    assert_eq!(fresh.apply_update_reply(&reply).unwrap().version, 3);
    let (reply, s) = refresh(conn, &mut fresh);
    assert!(!s.full);
    let mut tags = tags_in(&reply);
    tags.sort();
    assert_eq!(tags, ["d", "e", "f"]);
    assert!(fresh.mirror().unconfirmed_updates().is_empty());

    // A reader that claims a version beyond the state's gets everything.
    let mut ahead = engine();
    refresh(conn, &mut ahead);
    let epoch = ahead.mirror().epoch().to_owned();
    let fake = netstring::encode([epoch.as_str(), "99", "", "0", "0", ""]);
    ahead.apply_refresh(&fake, Millis(LATER)).unwrap();
    assert_eq!(ahead.mirror().version(), 99);
    let (_, s) = refresh(conn, &mut ahead);
    assert!(s.full);
    assert_eq!(ahead.mirror().version(), 6);

    // Redis flushed: a new epoch, so every reader does a full refresh.
    conn.cmd(&["FLUSHALL"]);
    let mut other = engine();
    let call = other
        .plan_tag_update(&["z"], &Revalidation::Expire, Millis(7000.0), "epoch-2")
        .unwrap();
    conn.run(&call);
    let (_, s) = refresh(conn, &mut reader);
    assert!(s.full);
    assert_eq!(reader.mirror().epoch(), "epoch-2");
    // What the reader knew stays in force, and goes back to Redis.
    assert!(reader.mirror().record("a").is_some());
    assert!(reader.mirror().record("z").is_some());
    assert!(reader.resend_len() >= 3);
    let call = reader.plan_resend("merge-1").unwrap().unwrap();
    conn.run(&call);
    reader.ack_resend();
    assert_eq!(reader.resend_len(), 0);
    let mut newcomer = engine();
    refresh(conn, &mut newcomer);
    for tag in ["a", "b", "c", "z"] {
        assert_eq!(
            newcomer.mirror().record(tag),
            reader.mirror().record(tag),
            "{tag}"
        );
    }
}

/// Keys and their `DUMP`s.
type Dumps = Vec<(String, Vec<u8>)>;

/// The tag keys' values, to put back later as a failover to a lagging replica would.
fn snapshot(conn: &mut Conn, e: &Engine) -> Dumps {
    e.namespace()
        .tag_keys()
        .to_vec()
        .into_iter()
        .map(|k| {
            let dump = conn.cmd(&["DUMP", &k]).bulk().to_vec();
            (k, dump)
        })
        .collect()
}

fn restore(conn: &mut Conn, snap: &[(String, Vec<u8>)]) {
    for (k, dump) in snap {
        let r = conn.send(&[b"RESTORE", k.as_bytes(), b"0", dump, b"REPLACE"]);
        assert_eq!(r, Reply::Simple("OK".into()));
    }
}

#[test]
fn a_failover_that_reuses_version_numbers_is_detected_and_repaired() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut a = engine();
    let mut b = engine();
    update(conn, &mut a, &["base"], Revalidation::Expire, 1000.0);
    refresh(conn, &mut a);
    refresh(conn, &mut b);
    let before = snapshot(conn, &a);
    // A's revalidation lands, A sees it...
    let reply = update_as(conn, &mut a, "lost", 2000.0, "id-a");
    a.apply_update_reply(&reply).unwrap();
    assert_eq!(a.mirror().unconfirmed_updates(), &[(2, "id-a".to_owned())]);
    // ...then the master dies and the replica, which never got it, takes over.
    restore(conn, &before);
    // B revalidates: version 2 again, another update.
    update_as(conn, &mut b, "other", 3000.0, "id-b");
    let (_, s) = refresh(conn, &mut a);
    assert!(s.full, "a reused version number must force a full refresh");
    assert!(a.mirror().record("other").is_some());
    assert!(a.mirror().record("lost").is_some());
    assert_eq!(a.resend_len(), 1);
    let call = a.plan_resend("merge-a").unwrap().unwrap();
    conn.run(&call);
    a.ack_resend();
    // B hears of A's lost revalidation through the ordinary refresh.
    let (_, s) = refresh(conn, &mut b);
    assert!(!s.full);
    assert_eq!(b.mirror().record("lost"), a.mirror().record("lost"));
    // Caught up: A follows incrementally again.
    let (_, s) = refresh(conn, &mut a);
    assert!(!s.full);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn the_merge_script_agrees_with_the_rust_merge(
        stored in proptest::collection::vec((any_rev(), 1.0f64..5000.0), 0..3),
        given in proptest::collection::vec((any_rev(), 1.0f64..5000.0), 1..3),
    ) {
        let mut server = start();
        let conn = &mut server.conn;
        let mut e = engine();
        let mut expected = TagRecord::default();
        for (rev, now) in &stored {
            update(conn, &mut e, &["t"], *rev, *now);
            expected.apply(rev, Millis(*now));
        }
        let mut record = TagRecord::default();
        for (rev, now) in &given {
            record.apply(rev, Millis(*now));
        }
        expected.merge(&record);
        let call = ScriptCall {
            script: &fleetcache_core::scripts::TAG_MERGE,
            sha1: fleetcache_core::scripts::TAG_MERGE.sha1(),
            keys: e.namespace().tag_keys().to_vec(),
            args: fleetcache_core::scripts::tag_merge_args("m", &[("t".to_owned(), record)]),
        };
        conn.run(&call);
        let keys = e.namespace().tag_keys();
        let stored = conn.cmd(&["HGET", &keys.state, "t"]);
        let stored = TagRecord::parse(stored.bulk()).unwrap();
        if stored.has_pending() || expected.has_pending() {
            prop_assert_eq!(stored, expected);
        } else {
            prop_assert_eq!(stored.stale, expected.stale);
            prop_assert_eq!(stored.expired, expected.expired);
            prop_assert_eq!(stored.updated_at, expected.updated_at);
        }
    }
}

#[test]
fn pruning_drops_old_tags_and_stops_at_the_first_young_one() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = Engine::new(Config {
        prefix: "t".into(),
        max_ttl_seconds: 1.0,
        tag_prune_after_ms: Some(1000.0),
        ..Config::default()
    })
    .unwrap();
    update(conn, &mut e, &["old1"], Revalidation::Expire, 1000.0);
    update(conn, &mut e, &["young"], Revalidation::Expire, 4800.0);
    // Old by time but newer by version: behind the young one, so it survives this round.
    update(conn, &mut e, &["old2"], Revalidation::Expire, 1000.0);
    update(conn, &mut e, &["now"], Revalidation::Expire, 5000.0);
    let keys = e.namespace().tag_keys();
    let exists = |conn: &mut Conn, tag: &str| {
        let h = conn.cmd(&["HEXISTS", &keys.state, tag]);
        let z = conn.cmd(&["ZSCORE", &keys.log, tag]);
        assert_eq!(
            h == Reply::Int(1),
            z != Reply::Bulk(None),
            "{tag}: {h:?} {z:?}"
        );
        h == Reply::Int(1)
    };
    assert!(!exists(conn, "old1"));
    assert!(exists(conn, "young"));
    assert!(exists(conn, "old2"));
    assert!(exists(conn, "now"));
    // Later, the young one has aged too.
    update(conn, &mut e, &["later"], Revalidation::Expire, 9000.0);
    assert!(!exists(conn, "young"));
    assert!(!exists(conn, "old2"));
    assert!(!exists(conn, "now"));
    assert!(exists(conn, "later"));
    assert_eq!(e.prune_mirror(Millis(9000.0)), 4);
    assert_eq!(e.mirror().len(), 1);
}

/// A meta hash lost alone leaves log scores up to the lost state's version. The next update
/// (or merge) that makes the meta anew goes on above them, so every log score is a version of
/// the state: the oldest-first pruning is not blocked behind young tags of low versions
/// (bfe9d19), and a refresh never meets a score above the state's version.
#[test]
fn a_state_made_anew_over_an_old_log_numbers_its_versions_above_it() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = Engine::new(Config {
        prefix: "t".into(),
        max_ttl_seconds: 1.0,
        tag_prune_after_ms: Some(1000.0),
        ..Config::default()
    })
    .unwrap();
    for i in 0..5 {
        update(
            conn,
            &mut e,
            &[&format!("old{i}")],
            Revalidation::Expire,
            1000.0,
        );
    }
    let keys = e.namespace().tag_keys();
    assert_eq!(conn.cmd(&["DEL", &keys.meta]), Reply::Int(1));
    // Both scripts that make the meta hash: an update, and a merge of no record.
    update_as(conn, &mut e, "new", 5000.0, "epoch-2");
    let ver = |conn: &mut Conn| match conn.cmd(&["HGET", &keys.meta, "ver"]) {
        Reply::Bulk(Some(v)) => String::from_utf8(v).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(
        ver(conn),
        "6",
        "the update's version is above the old log's 5"
    );
    for i in 0..5 {
        assert_eq!(
            conn.cmd(&["HEXISTS", &keys.state, &format!("old{i}")]),
            Reply::Int(0),
            "old{i} pruned behind no young tag"
        );
    }
    update(conn, &mut e, &["old5"], Revalidation::Expire, 5000.0);
    assert_eq!(conn.cmd(&["DEL", &keys.meta]), Reply::Int(1));
    let merge = ScriptCall {
        script: &fleetcache_core::scripts::TAG_MERGE,
        sha1: fleetcache_core::scripts::TAG_MERGE.sha1(),
        keys: vec![keys.state.clone(), keys.log.clone(), keys.meta.clone()],
        args: vec!["epoch-3".to_owned()],
    };
    conn.run(&merge);
    assert_eq!(
        ver(conn),
        "8",
        "the merge's version is above the old log's 7"
    );
}

/// `n` revalidations of `old0`... by a writer, then the meta hash lost alone and made anew as
/// entry_write.lua's first write leaves it: an epoch (`wpage`) and a page-write sequence, no
/// version.
fn old_log_under_a_page_writes_meta_hash(
    conn: &mut Conn,
    n: usize,
) -> (Engine, fleetcache_core::keys::TagKeys) {
    let mut writer = engine();
    for i in 0..n {
        update(
            conn,
            &mut writer,
            &[&format!("old{i}")],
            Revalidation::Expire,
            1000.0,
        );
    }
    let keys = writer.namespace().tag_keys();
    assert_eq!(conn.cmd(&["DEL", &keys.meta]), Reply::Int(1));
    assert_eq!(
        conn.cmd(&["HSET", &keys.meta, "epoch", "wpage", "pver", "1", "pvid", "wid"]),
        Reply::Int(3)
    );
    (writer, keys)
}

/// A page write that makes the meta hash anew after it was lost alone gives the state an epoch
/// but no version, over the old log. Its readers follow it from the log's highest score, which
/// is where the next update numbers its version: that update's refresh is its tags alone, not
/// the whole old log again (parts of 4,000 tags per reader, unsynced meanwhile).
#[test]
fn a_reader_of_a_state_a_page_write_made_anew_is_not_sent_the_old_log_again() {
    let mut server = start();
    let conn = &mut server.conn;
    let (mut writer, _) = old_log_under_a_page_writes_meta_hash(conn, 6);
    let mut reader = engine();
    let (reply, summary) = refresh(conn, &mut reader);
    assert!(summary.full);
    assert_eq!(head_of(&reply)[..2], ["wpage", "6"]);
    update_as(conn, &mut writer, "new", 2000.0, "epoch-2");
    let (reply, summary) = refresh(conn, &mut reader);
    assert!(!summary.full);
    assert_eq!(
        tags_in(&reply),
        ["new"],
        "the old log comes once, with the load"
    );
    assert_eq!(
        (reader.mirror().epoch(), reader.mirror().version()),
        ("wpage", 7)
    );
    assert!(reader.mirror().is_synced());
}

/// A page of a state whose meta hash a page write made anew (an epoch, no version) reads the
/// version the refresh answers, the log's highest score, with no id: a load that began there
/// goes on. Once the state hash is lost, the page reads version 0, below the version named,
/// and says the state rolled back although there is no id to check, so the reader loads again
/// (else a rollback that brings the hash back leaves it synced without what its later pages
/// found gone: freshness_sim `a_load_whose_page_saw_the_state_hash_lost_loads_again`).
#[test]
fn a_page_of_a_state_with_an_epoch_and_no_version_tells_a_lost_state_hash() {
    let mut server = start();
    let conn = &mut server.conn;
    let (_, keys) = old_log_under_a_page_writes_meta_hash(conn, 3);
    let page = |args: &[&str]| ScriptCall {
        script: &scripts::TAG_PAGE,
        sha1: scripts::TAG_PAGE.sha1(),
        keys: keys.to_vec(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    };
    let reply = conn.run(&page(&["0", "10", "3", ""]));
    let items = netstring::decode(reply.bulk()).unwrap();
    assert_eq!(items[2..5], [&b"3"[..], b"", b"0"], "{items:?}");
    assert_eq!(items.len(), 5 + 6, "the three records: {items:?}");
    assert_eq!(conn.cmd(&["DEL", &keys.state]), Reply::Int(1));
    let reply = conn.run(&page(&["0", "10", "3", ""]));
    assert_eq!(reply.bulk(), b"4:page,1:0,1:0,0:,1:1,");
}

/// A page names the state its load began under as the refresh named it, and the page script
/// names the state the same way: a load of a state that lost its log (records left, named
/// `<epoch>~<ver>+`) whose records then go too reads a state of another name (`~`), and is
/// rolled back; so is a load of records without a meta hash (`no-meta`) whose records go.
/// Ended instead, the reader's catch-up after a failover that brought the records back found
/// the name it knew, and it stayed synced without the records its later pages missed
/// (freshness_sim `a_load_whose_records_went_between_two_pages_loads_again`).
#[test]
fn a_page_of_a_state_that_lost_a_key_since_the_load_began_is_rolled_back() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    for tag in ["a", "b", "c"] {
        update(conn, &mut writer, &[tag], Revalidation::Expire, 1000.0);
    }
    let keys = writer.namespace().tag_keys();
    let page = |args: &[&str]| ScriptCall {
        script: &scripts::TAG_PAGE,
        sha1: scripts::TAG_PAGE.sha1(),
        keys: keys.to_vec(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    };
    let name = |conn: &mut Conn| {
        let reply = conn.run(&engine().plan_tag_refresh()).bulk().to_vec();
        head_of(&reply)[0].clone()
    };
    let rolled_back = |conn: &mut Conn, name: &str| {
        let reply = conn.run(&page(&["0", "10", "0", "", name]));
        let items = netstring::decode(reply.bulk()).unwrap();
        items[4] == b"1"
    };
    // Healthy: the epoch names it.
    let epoch = name(conn);
    assert!(!rolled_back(conn, &epoch));
    // The log lost: records left.
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let plus = name(conn);
    assert_eq!(
        plus,
        format!("{epoch}~3.epoch-1+"),
        "named after the version's id too"
    );
    assert!(!rolled_back(conn, &plus), "the same state");
    assert!(rolled_back(conn, &epoch), "the state before the loss");
    // Then the records: another state.
    let kept = conn.cmd(&["DUMP", &keys.state]);
    assert_eq!(conn.cmd(&["DEL", &keys.state]), Reply::Int(1));
    assert_eq!(name(conn), format!("{epoch}~3.epoch-1~"));
    assert!(
        rolled_back(conn, &plus),
        "the records went since the load began"
    );
    // Records without a meta hash.
    let Reply::Bulk(Some(dump)) = kept else {
        panic!("{kept:?}");
    };
    let mut restore: Vec<&[u8]> = vec![b"RESTORE", keys.state.as_bytes(), b"0"];
    restore.push(&dump);
    assert_eq!(conn.send(&restore), Reply::Simple("OK".to_owned()));
    assert_eq!(conn.cmd(&["DEL", &keys.meta]), Reply::Int(1));
    assert_eq!(name(conn), "no-meta");
    assert!(!rolled_back(conn, "no-meta"));
    assert_eq!(conn.cmd(&["DEL", &keys.state]), Reply::Int(1));
    assert_eq!(name(conn), "");
    assert!(
        rolled_back(conn, "no-meta"),
        "the records went since the load began"
    );
    assert!(!rolled_back(conn, ""));
}

#[test]
fn scripts_reject_bad_arguments_and_precision_survives() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = engine();
    let mut call = e
        .plan_tag_update(&["a"], &Revalidation::Expire, Millis(1.0), "ep")
        .unwrap();
    call.args[3] = "q".into();
    assert!(matches!(conn.run(&call), Reply::Error(m) if m.contains("bad arguments")));
    call.args.truncate(2);
    assert!(matches!(conn.run(&call), Reply::Error(_)));
    let mut call = e.plan_tag_refresh();
    call.args[1] = "x".into();
    assert!(matches!(conn.run(&call), Reply::Error(_)));
    assert_eq!(call.script, &TAG_REFRESH);
    let page = |args: &[&str]| ScriptCall {
        script: &scripts::TAG_PAGE,
        sha1: scripts::TAG_PAGE.sha1(),
        keys: e.namespace().tag_keys().to_vec(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    };
    for args in [
        &["0", "1000", "1"][..],
        &["0", "x", "1", "v"],
        &["0", "10", "x", "v"],
    ] {
        let reply = conn.run(&page(args));
        assert!(
            matches!(&reply, Reply::Error(m) if m.contains("bad arguments")),
            "{args:?}: {reply:?}"
        );
    }
    // An empty state (no meta): version 0, no id; a version named above it is gone.
    let reply = conn.run(&page(&["0", "10", "0", ""]));
    assert_eq!(reply.bulk(), b"4:page,1:0,1:0,0:,1:0,");
    let reply = conn.run(&page(&["0", "10", "3", "v3"]));
    assert_eq!(reply.bulk(), b"4:page,1:0,1:0,0:,1:1,");

    // 13-digit times plus the largest scheduled expiry stay exact (no %.14g rounding).
    let now = 1_795_690_530_487.4;
    let rev = Revalidation::Stale {
        expire_seconds: Some(f64::INFINITY),
    };
    update(conn, &mut e, &["big"], rev, now);
    let keys = e.namespace().tag_keys();
    let stored = conn.cmd(&["HGET", &keys.state, "big"]);
    assert_eq!(
        stored.bulk(),
        b"1795690530488,0,1795690530488,6090657824488,1795690530488"
    );
    assert_eq!(
        TagRecord::parse(stored.bulk()).as_ref().ok(),
        e.mirror().record("big")
    );
}

#[test]
fn a_page_refuses_a_seen_version_that_is_not_a_whole_number() {
    // Redis's Lua reads "nan" and "inf" as numbers (strtod): "nan" passed the argument check
    // and, comparing false with everything, skipped the rolled-back test (fixed in d5a6df6).
    let mut server = start();
    let conn = &mut server.conn;
    let e = engine();
    let page = |args: &[&str]| ScriptCall {
        script: &scripts::TAG_PAGE,
        sha1: scripts::TAG_PAGE.sha1(),
        keys: e.namespace().tag_keys().to_vec(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    };
    for seen in ["nan", "inf", "-1", "1.5"] {
        let reply = conn.run(&page(&["0", "10", seen, "v"]));
        assert!(
            matches!(&reply, Reply::Error(m) if m.contains("bad arguments")),
            "{seen}: {reply:?}"
        );
    }
    // The refresh script's known version has the same check.
    for known in ["nan", "inf"] {
        let refresh = ScriptCall {
            script: &TAG_REFRESH,
            sha1: TAG_REFRESH.sha1(),
            keys: e.namespace().tag_keys().to_vec(),
            args: vec![
                String::new(),
                known.to_owned(),
                String::new(),
                "0".to_owned(),
                String::new(),
            ],
        };
        let reply = conn.run(&refresh);
        assert!(
            matches!(&reply, Reply::Error(m) if m.contains("bad arguments")),
            "{known}: {reply:?}"
        );
    }
}

#[test]
fn boundaries_agree_with_rust() {
    let mut server = start();
    let conn = &mut server.conn;
    let second = Revalidation::Stale {
        expire_seconds: Some(1.0),
    };
    let later = Revalidation::Stale {
        expire_seconds: Some(5.0),
    };
    // A second update exactly when, just before and just after the first one's scheduled
    // expiry falls due.
    for at in [999.0, 1000.0, 1001.0] {
        for rev in [Revalidation::Expire, second, later] {
            conn.cmd(&["FLUSHALL"]);
            let mut e = engine();
            update(conn, &mut e, &["t"], second, 10_000.0);
            update(conn, &mut e, &["t"], rev, 10_000.0 + at);
            let keys = e.namespace().tag_keys();
            let stored = conn.cmd(&["HGET", &keys.state, "t"]);
            assert_eq!(
                stored.bulk(),
                e.mirror().record("t").unwrap().encode().as_bytes(),
                "second update {rev:?} at +{at}"
            );
        }
    }
}

/// 2,500 tags revalidated by `writer`, 100 an update (versions 1 to 25): more than two pages
/// of the whole state. Returns their names.
fn large_state(conn: &mut Conn, writer: &mut Engine) -> Vec<String> {
    let names: Vec<String> = (0..2500).map(|i| format!("tag-{i}")).collect();
    for (n, batch) in names.chunks(100).enumerate() {
        let tags: Vec<&str> = batch.iter().map(String::as_str).collect();
        update(conn, writer, &tags, Revalidation::Expire, 1000.0 + n as f64);
    }
    names
}

/// A writer's [`large_state`] and a reader whose first refresh began loading it.
fn reader_loading_large_state(conn: &mut Conn) -> (Engine, Vec<String>, Engine) {
    let mut writer = engine();
    let names = large_state(conn, &mut writer);
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    assert!(
        reader.mirror().is_loading(),
        "2,500 tags do not fit in one page"
    );
    (writer, names, reader)
}

/// The reader holds each of `names` as the writer knows it.
fn assert_records_as_writer<'a>(
    reader: &Engine,
    writer: &Engine,
    names: impl Iterator<Item = &'a String>,
) {
    for name in names {
        assert_eq!(
            reader.mirror().record(name),
            writer.mirror().record(name),
            "{name}"
        );
    }
}

#[test]
fn a_large_state_loads_in_pages_and_catches_up_with_updates_made_meanwhile() {
    let mut server = start();
    let conn = &mut server.conn;
    let (mut writer, names, mut reader) = reader_loading_large_state(conn);
    let mut pages = 0;
    while reader.mirror().is_loading() {
        let call = reader.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_page");
        if pages == 0 {
            // An update while the pages are read: the catch-up refresh brings it.
            update(conn, &mut writer, &["late"], Revalidation::Expire, 9000.0);
        }
        let page = conn.run(&call).bulk().to_vec();
        reader.apply_refresh(&page, Millis(LATER)).unwrap();
        pages += 1;
        assert!(pages < 100, "the load ends");
    }
    assert!(pages >= 1);
    assert!(
        !reader.mirror().is_synced(),
        "synced only after catching up"
    );
    let catch_up = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    let s = reader.apply_refresh(&catch_up, Millis(LATER)).unwrap();
    assert!(!s.full);
    assert!(reader.mirror().is_synced());
    let late = ["late".to_owned()];
    assert_records_as_writer(&reader, &writer, names.iter().chain(&late));
}

/// A load during which more revalidations are recorded than the state keeps version ids of
/// (1,024), none of its pages more than that apart: the catch-up refresh's version (the load's)
/// has no id any more, and the version the last page was read at, which still holds, stands
/// for it (the anchor). The reader catches up in part and is synced, where it was answered in
/// full and loaded again (under such a rate sustained, for ever).
#[test]
fn a_load_outrun_by_over_1024_revalidations_catches_up_in_part() {
    let mut server = start();
    let conn = &mut server.conn;
    let (mut writer, names, mut reader) = reader_loading_large_state(conn);
    let mut late = Vec::new();
    while reader.mirror().is_loading() {
        // 600 revalidations before each page: 1,200 over the load's two pages.
        for _ in 0..600 {
            let tag = format!("late-{}", late.len());
            update(conn, &mut writer, &[&tag], Revalidation::Expire, 9000.0);
            late.push(tag);
        }
        let call = reader.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_page");
        let page = conn.run(&call).bulk().to_vec();
        reader.apply_refresh(&page, Millis(LATER)).unwrap();
        assert!(late.len() < 10_000, "the load ends");
    }
    assert!(late.len() > 1024);
    let catch_up = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    let s = reader.apply_refresh(&catch_up, Millis(LATER)).unwrap();
    assert!(!s.full, "answered in part, not loaded again");
    assert!(reader.mirror().is_synced());
    assert_records_as_writer(&reader, &writer, names.iter().chain(&late));
}

/// A load outrun by over 1,024 revalidations (its version's id gone), then a failover between
/// its last page and the catch-up refresh, back to a snapshot taken just before an update the
/// last page showed: the anchor (the last page's version) now carries another update's id. The
/// catch-up must not take the anchor as proof (answered in part, the lost update would stay
/// lost for every other process): it answers '1' (a rollback seen, not merely '2' too far
/// behind), and the reload gives back what only the last page had shown.
#[test]
fn a_failover_between_an_outrun_loads_last_page_and_its_catch_up_is_seen_and_repaired() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    let names = large_state(conn, &mut writer);
    let tags: Vec<&str> = names.iter().map(String::as_str).collect();
    let keys = writer.namespace().tag_keys();
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    let load_version = reader.mirror().version();
    let (mut before, mut last_page, mut churn) = (Vec::new(), Vec::new(), 0);
    let mut round = 0.0;
    while reader.mirror().is_loading() {
        // 600 revalidations before each page (the next page checks the one before it, whose id
        // must still be kept): the load's version has no id by the end.
        for _ in 0..600 {
            update(
                conn,
                &mut writer,
                &["churn"],
                Revalidation::Expire,
                5000.0 + churn as f64,
            );
            churn += 1;
        }
        // The replica a failover promotes has everything up to here...
        before = snapshot(conn, &writer);
        // ...but not this update of every tag, which the next page shows.
        round += 1.0;
        update(
            conn,
            &mut writer,
            &tags,
            Revalidation::Expire,
            20_000.0 + round,
        );
        let call = reader.plan_tag_refresh();
        assert_eq!(call.script.name, "tag_page");
        last_page = conn.run(&call).bulk().to_vec();
        reader.apply_refresh(&last_page, Millis(LATER)).unwrap();
        assert!(churn < 20_000, "the load ends");
    }
    let anchor = reader.mirror().anchor().map(|(v, id)| (v, id.to_owned()));
    let (anchor_version, _) = anchor
        .clone()
        .expect("every page checked the one before it");
    assert!(anchor_version > load_version + 1024);
    let shown: Vec<String> = netstring::decode(&last_page).unwrap()[5..]
        .iter()
        .step_by(2)
        .map(|t| String::from_utf8(t.to_vec()).unwrap())
        .filter(|t| t.starts_with("tag-"))
        .collect();
    assert!(
        !shown.is_empty(),
        "the last page shows tags of the update lost"
    );
    // The failover, and two updates of another process: the anchor's version number reused.
    restore(conn, &before);
    let mut other = engine();
    update_as(conn, &mut other, "after-a", 30_000.0, "id-after-a");
    update_as(conn, &mut other, "after-b", 30_000.0, "id-after-b");
    let id = conn
        .cmd(&["HGET", &keys.meta, &format!("v:{anchor_version}")])
        .bulk()
        .to_vec();
    assert_ne!(Some(id), anchor.map(|(_, id)| id.into_bytes()));
    assert!(conn.cmd(&["HGET", &keys.meta, &format!("v:{load_version}")]) == Reply::Bulk(None));
    let (catch_up, s) = refresh(conn, &mut reader);
    assert_eq!(
        netstring::decode(&catch_up).unwrap()[3],
        b"1",
        "a rollback below the anchor is seen as one"
    );
    assert!(s.full && reader.mirror().is_synced());
    assert!(reader.resend_len() > 0);
    while let Some(call) = reader.plan_resend("merge-r").unwrap() {
        conn.run(&call);
        reader.ack_resend();
    }
    for tag in &shown {
        assert_eq!(
            conn.cmd(&["HGET", &keys.state, tag]).bulk(),
            writer.mirror().record(tag).unwrap().encode().as_bytes(),
            "{tag}: what only the last page showed is given back"
        );
    }
}

/// A reader that revalidates once early in each load, while the fleet makes over 1,024
/// revalidations in that load: its own update's id is gone by the catch-up refresh. The pages
/// checked each other up to the anchor, and the load compared every record the mirror held
/// (its own update's included) with what the pages showed, so that update needs no check of
/// its own: the reader catches up in part. Checked, it answered in full ('2') and the reader
/// loaded the state again, revalidated again during that load, and never synced in part.
#[test]
fn a_reader_revalidating_during_an_outrun_load_still_catches_up_in_part() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    let names = large_state(conn, &mut writer);
    let mut reader = engine();
    let mut churn = 0;
    for round in 0..3 {
        if round > 0 {
            // Made to load again (as after a flush): the same load, the same revalidations.
            conn.cmd(&["FLUSHALL"]);
            large_state(conn, &mut writer);
        }
        let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
        let own = format!("own-{round}");
        let mut pages = 0;
        while reader.mirror().is_loading() {
            if pages == 0 {
                let reply = update(conn, &mut reader, &[&own], Revalidation::Expire, 9000.0);
                reader.apply_update_reply(&reply).unwrap();
            }
            for _ in 0..700 {
                update(
                    conn,
                    &mut writer,
                    &["churn"],
                    Revalidation::Expire,
                    5000.0 + churn as f64,
                );
                churn += 1;
            }
            let page = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
            reader.apply_refresh(&page, Millis(LATER)).unwrap();
            pages += 1;
            assert!(pages < 100, "the load ends");
        }
        assert!(pages >= 2, "over 1,024 revalidations during the load");
        let catch_up = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        let s = reader.apply_refresh(&catch_up, Millis(LATER)).unwrap();
        assert!(!s.full, "round {round}: answered in part, not loaded again");
        assert!(reader.mirror().is_synced());
        for name in names
            .iter()
            .map(String::as_str)
            .chain(["churn", own.as_str()])
        {
            assert_eq!(
                conn.cmd(&["HGET", &writer.namespace().tag_keys().state, name])
                    .bulk(),
                reader.mirror().record(name).unwrap().encode().as_bytes(),
                "{name}"
            );
        }
    }
}

/// A load whose later pages are read after an update: each page carries the state's version
/// and id, the next page checks the one before it still holds, and the catch-up refresh checks
/// the last. A failover back below it, whatever the versions reached since, forces a reload
/// whose comparison gives back what only a page had shown.
#[test]
fn a_load_checks_the_versions_its_pages_were_read_at() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    let names: Vec<String> = (0..5000).map(|i| format!("tag-{i}")).collect();
    for batch in names.chunks(500) {
        let tags: Vec<&str> = batch.iter().map(String::as_str).collect();
        update(conn, &mut writer, &tags, Revalidation::Expire, 1000.0);
    }
    let keys = writer.namespace().tag_keys();
    let meta_ver = |conn: &mut Conn| {
        let ver =
            String::from_utf8(conn.cmd(&["HGET", &keys.meta, "ver"]).bulk().to_vec()).unwrap();
        let id = conn
            .cmd(&["HGET", &keys.meta, &format!("v:{ver}")])
            .bulk()
            .to_vec();
        (ver, String::from_utf8(id).unwrap())
    };

    // 1. A page finds the version the page before it was read at lost: the load starts again.
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    let before = snapshot(conn, &writer);
    update_as(conn, &mut writer, "gone", 2000.0, "id-gone");
    let call = reader.plan_tag_refresh();
    assert_eq!(call.script.name, "tag_page");
    assert_eq!(call.keys, keys.to_vec());
    assert_eq!(&call.args[2..], ["10", "epoch-1", "epoch-1"]);
    let page = conn.run(&call).bulk().to_vec();
    let items = netstring::decode(&page).unwrap();
    let (ver, id) = meta_ver(conn);
    assert_eq!(items[2..5], [ver.as_bytes(), id.as_bytes(), b"0"]);
    reader.apply_refresh(&page, Millis(LATER)).unwrap();
    assert_eq!(reader.mirror().page_seen(), Some((11, "id-gone")));
    restore(conn, &before);
    update_as(conn, &mut writer, "other", 3000.0, "id-other");
    update_as(conn, &mut writer, "more", 3000.0, "id-more");
    let page = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert_eq!(
        netstring::decode(&page).unwrap(),
        [&b"page"[..], b"0", b"12", b"id-more", b"1"],
        "version 11 now carries another id: no tags, the load is over"
    );
    let s = reader.apply_refresh(&page, Millis(LATER)).unwrap();
    assert!(s.full && !reader.mirror().is_loading() && !reader.mirror().is_synced());
    assert_eq!(reader.mirror().version(), 0);
    let (_, s) = refresh(conn, &mut reader);
    assert!(s.full && reader.mirror().is_synced());
    assert!(reader.mirror().record("more").is_some());

    // 2. The last page shows an update above the load's version; a failover back to that
    // version keeps its id, and only the check of the last page's version finds the loss.
    conn.cmd(&["FLUSHALL"]);
    for batch in names.chunks(500) {
        let tags: Vec<&str> = batch.iter().map(String::as_str).collect();
        update(conn, &mut writer, &tags, Revalidation::Expire, 1000.0);
    }
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    let before = snapshot(conn, &writer);
    // A tag the first page did not bring: HSCAN returns it in a later page, after this update.
    let first_page: Vec<&[u8]> = netstring::decode(&first).unwrap()[7..]
        .iter()
        .step_by(2)
        .copied()
        .collect();
    let late = names
        .iter()
        .find(|n| !first_page.contains(&n.as_bytes()))
        .unwrap();
    update_as(conn, &mut writer, late, 4000.0, "id-late");
    while reader.mirror().is_loading() {
        let page = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        reader.apply_refresh(&page, Millis(LATER)).unwrap();
    }
    assert_eq!(reader.mirror().version(), 10);
    assert_eq!(reader.resend_len(), 0);
    assert_eq!(
        reader.mirror().unconfirmed_updates(),
        &[(11, "id-late".to_owned())]
    );
    restore(conn, &before);
    let (_, s) = refresh(conn, &mut reader);
    assert!(s.full, "the catch-up refresh finds version 11 gone");
    assert_eq!(reader.resend_len(), 1);
    let call = reader.plan_resend("merge-r").unwrap().unwrap();
    conn.run(&call);
    reader.ack_resend();
    assert_eq!(
        conn.cmd(&["HGET", &keys.state, late]).bulk(),
        writer.mirror().record(late).unwrap().encode().as_bytes()
    );
}

/// Next sends one request's revalidations as one call with all their tags, and an entry may
/// carry thousands: the update script takes them all in one call, with
/// tags as long as the core accepts, and a refresh brings every one back.
#[test]
fn one_update_with_thousands_of_tags() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = engine();
    let mut tags: Vec<String> = (0..5000).map(|i| format!("_N_T_/p/{i}")).collect();
    tags.push("x".repeat(fleetcache_core::MAX_TAG_BYTES));
    tags.push("\u{6f22}".repeat(256));
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    let call = e
        .plan_tag_update(
            &refs,
            &Revalidation::Expire,
            Millis(1_795_690_530_000.0),
            "epoch-1",
        )
        .unwrap();
    assert_eq!(call.args.len(), 5 + tags.len());
    let reply = conn.run(&call);
    assert!(matches!(reply, Reply::Bulk(Some(_))), "{reply:?}");
    assert_eq!(
        conn.cmd(&["HLEN", &call.keys[0]]),
        Reply::Int(tags.len() as i64)
    );
    let mut other = engine();
    // Loaded page by page; every tag arrives.
    refresh(conn, &mut other);
    for tag in &tags {
        let expected = fleetcache_core::canonical_tag(tag);
        assert_eq!(
            other.mirror().record(&expected).map(|r| r.expired),
            Some(Millis(1_795_690_530_000.0)),
            "{}",
            &expected[..expected.len().min(40)]
        );
    }
}

#[test]
fn an_update_announces_what_a_refresh_from_the_version_before_returns() {
    let mut server = start();
    let mut writer = engine();
    writer.follow_tags_by_push(1000.0).unwrap();
    let channel = writer.tag_announce_channel().to_owned();
    let mut sub = server.connect();
    let confirmed = sub.cmd(&["SSUBSCRIBE", &channel]);
    assert_eq!(
        confirmed,
        Reply::Array(vec![
            Reply::Bulk(Some(b"ssubscribe".to_vec())),
            Reply::Bulk(Some(channel.clone().into_bytes())),
            Reply::Int(1),
        ])
    );
    let conn = &mut server.conn;
    // A process that pulls per request does not announce.
    let mut puller = engine();
    update(conn, &mut puller, &["x"], Revalidation::Expire, 500.0);
    let mut pushed = engine();
    refresh(conn, &mut pushed);
    let mut pulled = engine();
    refresh(conn, &mut pulled);
    assert_eq!(pushed.mirror().version(), 1);

    let rev = Revalidation::Stale {
        expire_seconds: Some(60.0),
    };
    update(conn, &mut writer, &["a", "b"], rev, 1000.0);
    let msg = match sub.read() {
        Reply::Array(items) => {
            assert_eq!(items[0], Reply::Bulk(Some(b"smessage".to_vec())));
            items[2].bulk().to_vec()
        }
        other => panic!("expected a message, got {other:?}"),
    };
    assert_eq!(
        pushed.apply_announcement(&msg, Millis(0.0)),
        Ok(fleetcache_core::tags::Announced::Applied(2))
    );
    refresh(conn, &mut pulled);
    assert_eq!(pushed.mirror().version(), pulled.mirror().version());
    assert_eq!(pushed.mirror().version_id(), pulled.mirror().version_id());
    for tag in ["a", "b", "x"] {
        assert_eq!(
            pushed.mirror().record(tag),
            pulled.mirror().record(tag),
            "{tag}"
        );
    }
}

/// An announcement names the id of the version it follows as the state records it: after a
/// rollback with the subscription up gave version 1 to another update (its id written here
/// by hand), the next version's announcement is a gap for a follower that saw the first
/// version 1, and the next version for one that saw the other.
#[test]
fn an_update_announces_the_id_of_the_version_it_follows() {
    use fleetcache_core::tags::Announced;
    let mut server = start();
    let mut writer = engine();
    writer.follow_tags_by_push(1000.0).unwrap();
    let keys = writer.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    let mut sub = server.connect();
    sub.cmd(&["SSUBSCRIBE", &channel]);
    let conn = &mut server.conn;
    let mut first = engine();
    update(conn, &mut first, &["x"], Revalidation::Expire, 500.0);
    let mut saw_first = engine();
    refresh(conn, &mut saw_first);
    assert_eq!(conn.cmd(&["HSET", &meta, "v:1", "another"]), Reply::Int(0));
    let mut saw_other = engine();
    refresh(conn, &mut saw_other);
    assert_eq!(saw_other.mirror().version_id(), "another");
    update(conn, &mut writer, &["a"], Revalidation::Expire, 1000.0);
    let msg = message(&mut sub);
    assert_eq!(netstring::decode(&msg).unwrap()[4], b"another");
    assert_eq!(
        saw_first.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Gap)
    );
    assert_eq!(
        saw_other.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(1))
    );
}

/// The next message on a subscriber's connection.
fn message(sub: &mut Conn) -> Vec<u8> {
    match sub.read() {
        Reply::Array(items) => {
            assert_eq!(items[0], Reply::Bulk(Some(b"smessage".to_vec())));
            items[2].bulk().to_vec()
        }
        other => panic!("expected a message, got {other:?}"),
    }
}

#[test]
fn every_page_write_announces_itself_in_the_page_write_sequence() {
    use fleetcache_core::scripts::{entry_write_call, ENTRY_WRITE};
    use fleetcache_core::tags::Announced;
    use fleetcache_core::Interface;

    let mut server = start();
    let mut writer = engine();
    writer.announce_page_writes();
    let keys = writer.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    let mut sub = server.connect();
    sub.cmd(&["SSUBSCRIBE", &channel]);
    let conn = &mut server.conn;
    let mut follower = engine();
    follower.follow_tags_by_push(1000.0).unwrap();
    update(conn, &mut engine(), &["x"], Revalidation::Expire, 500.0);
    refresh(conn, &mut follower);
    assert_eq!(follower.mirror().version(), 1);
    let mut pulled = engine();
    refresh(conn, &mut pulled);

    let entry = writer.entry_key(&Interface::Incremental, "/p");
    let run_with_value = |conn: &mut Conn, call: &ScriptCall, value: &[u8]| {
        assert_eq!(call.script, &ENTRY_WRITE);
        eval_with_value(conn, call, value)
    };
    let plain = |id: &str| entry_write_call(&[&entry, &meta, &channel], &["60000", "", "", id]);
    // The plain write.
    assert_eq!(run_with_value(conn, &plain("a"), b"v1"), Reply::Int(1));
    assert_eq!(
        conn.cmd(&["GET", &entry]),
        Reply::Bulk(Some(b"v1".to_vec()))
    );
    let msg = message(&mut sub);
    let items = netstring::decode(&msg).unwrap();
    assert_eq!(items[0], b"p");
    assert_eq!(items[1], follower.mirror().epoch().as_bytes());
    assert_eq!(items[2], b"1");
    assert_eq!(items[3], b"wa");
    assert_eq!(items[4], entry.as_bytes());
    // The id of the write it follows: none before the first.
    assert_eq!(items[5], b"");
    assert_eq!(items.len(), 6);
    // The next page write after the one the follower's pull found (none: 0).
    assert_eq!(
        follower.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(0))
    );
    // Not a version of the tag state: a pull finds the same version, and the page write.
    let (reply, s) = refresh(conn, &mut pulled);
    assert!(!s.full);
    assert_eq!(pulled.mirror().version(), 1);
    let items = netstring::decode(&reply).unwrap();
    assert_eq!((items[4], items[5]), (&b"1"[..], &b"wa"[..]));

    // Mode 'l': the write releases the lease the token holds, as lease_write.lua.
    let lease = format!("{entry}:lease");
    conn.cmd(&["SET", &lease, "tok", "PX", "60000"]);
    let with_lease = |token: &str| {
        entry_write_call(
            &[&entry, &meta, &channel, &lease],
            &["60000", "l", token, token],
        )
    };
    assert_eq!(
        run_with_value(conn, &with_lease("other"), b"v2"),
        Reply::Int(0)
    );
    assert_eq!(
        conn.cmd(&["GET", &lease]),
        Reply::Bulk(Some(b"tok".to_vec()))
    );
    let msg = message(&mut sub);
    assert_eq!(
        follower.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(0))
    );
    assert_eq!(
        run_with_value(conn, &with_lease("tok"), b"v3"),
        Reply::Int(1)
    );
    assert_eq!(conn.cmd(&["EXISTS", &lease]), Reply::Int(0));
    let msg = message(&mut sub);
    let items = netstring::decode(&msg).unwrap();
    // The key, then the id of the write it follows (the lease write refused its release).
    assert_eq!((items[4], items[5]), (entry.as_bytes(), &b"wother"[..]));
    assert_eq!(
        follower.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(0))
    );

    // Mode 's', a seed: announced when stored, not when the stored entry is kept.
    let seed = writer
        .plan_seed_write(
            &Interface::Incremental,
            "/s",
            Millis(1000.0),
            3_600_000,
            Millis(2000.0),
        )
        .unwrap();
    assert_eq!(seed.args[1], "s");
    let seeded = writer.entry_key(&Interface::Incremental, "/s");
    assert_eq!(run_with_value(conn, &seed, b"s1"), Reply::Int(1));
    let msg = message(&mut sub);
    assert_eq!(netstring::decode(&msg).unwrap()[4], seeded.as_bytes());
    assert_eq!(
        follower.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(0))
    );
    // An envelope newer than the seed is kept (its creation time at offset 16).
    let mut newer = b"FLCE".to_vec();
    newer.extend_from_slice(&[0; 12]);
    newer.extend_from_slice(&5000.0f64.to_le_bytes());
    conn.send(&[b"SET", seeded.as_bytes(), &newer]);
    assert_eq!(run_with_value(conn, &seed, b"s2"), Reply::Int(0));
    // Nothing was announced since: the next message is the next write's, page write 5.
    assert_eq!(run_with_value(conn, &plain("b"), b"v4"), Reply::Int(1));
    let msg = message(&mut sub);
    assert_eq!(netstring::decode(&msg).unwrap()[2], b"5");
    assert_eq!(
        follower.apply_announcement(&msg, Millis(0.0)),
        Ok(Announced::Applied(0))
    );
    // The tag state's version is the update's still; the meta hash keeps the last page
    // write's number and id (the one its call carried), and no id per page write.
    assert_eq!(follower.mirror().version(), 1);
    assert_eq!(
        conn.cmd(&["HMGET", &meta, "ver", "pver", "pvid", "v:2"]),
        Reply::Array(vec![
            Reply::Bulk(Some(b"1".to_vec())),
            Reply::Bulk(Some(b"5".to_vec())),
            Reply::Bulk(Some(b"wb".to_vec())),
            Reply::Bulk(None),
        ])
    );
    // Pulling per request (no announcing), a seed is seed_write.lua as before.
    assert_eq!(
        engine()
            .plan_seed_write(
                &Interface::Incremental,
                "/s",
                Millis(1000.0),
                3_600_000,
                Millis(2000.0)
            )
            .unwrap()
            .script
            .name,
        "seed_write"
    );
}

/// The same page write (a seed: the same bytes) stored again after a `FLUSHALL` (or a failover
/// that lost the first) is page write 1 again: its id must differ, or a process following by
/// push that knew the first takes the second for it and misses what came with it.
#[test]
fn the_same_page_write_after_a_flushall_is_another_page_write_id() {
    use fleetcache_core::Interface;

    let mut server = start();
    let mut writer = engine();
    writer.announce_page_writes();
    let meta = writer.namespace().tag_keys().meta.clone();
    let conn = &mut server.conn;
    let seed = || {
        writer
            .plan_seed_write(
                &Interface::Incremental,
                "/s",
                Millis(1000.0),
                3_600_000,
                Millis(2000.0),
            )
            .unwrap()
    };
    let mut ids = Vec::new();
    for _ in 0..2 {
        conn.cmd(&["FLUSHALL"]);
        let call = seed();
        let numkeys = call.keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", call.script.source.as_bytes(), numkeys.as_bytes()];
        args.extend(call.keys.iter().map(|k| k.as_bytes()));
        args.extend(call.args.iter().map(|a| a.as_bytes()));
        args.push(b"same bytes");
        assert_eq!(conn.send(&args), Reply::Int(1));
        match conn.cmd(&["HMGET", &meta, "pver", "pvid"]) {
            Reply::Array(items) => ids.push(items),
            other => panic!("no version: {other:?}"),
        }
    }
    assert_eq!(ids[0][0], Reply::Bulk(Some(b"1".to_vec())));
    assert_eq!(ids[0][0], ids[1][0], "both are page write 1");
    assert_ne!(ids[0][1], ids[1][1], "page write 1's id is another");
}

/// Page writes are not versions of the tag state (docs/decisions/0031): a reader that pulled
/// before 1,100 of them (more than the 1,024 version ids the state keeps) pulls after them
/// incrementally, and the page-write sequence a push process follows is in the reply.
#[test]
fn page_writes_leave_a_pull_incremental_however_many() {
    use fleetcache_core::Interface;

    let mut server = start();
    let mut writer = engine();
    writer.announce_page_writes();
    let keys = writer.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    let conn = &mut server.conn;
    update(conn, &mut engine(), &["x"], Revalidation::Expire, 500.0);
    let mut reader = engine();
    refresh(conn, &mut reader);
    assert_eq!(reader.mirror().version(), 1);
    let entry = writer.entry_key(&Interface::Incremental, "/p");
    for i in 0..1_100 {
        let id = format!("s.{i}");
        let call = entry_write_call_for(&entry, &meta, &channel, &id);
        let numkeys = call.keys.len().to_string();
        let mut args: Vec<&[u8]> = vec![b"EVAL", call.script.source.as_bytes(), numkeys.as_bytes()];
        args.extend(call.keys.iter().map(|k| k.as_bytes()));
        args.extend(call.args.iter().map(|a| a.as_bytes()));
        args.push(b"v");
        assert_eq!(conn.send(&args), Reply::Int(1));
    }
    let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    let items = netstring::decode(&reply).unwrap();
    // epoch, ver, vid, full, pver, pvid
    assert_eq!(items[1], b"1", "the tag state's version is untouched");
    assert_eq!(items[3], b"0", "an incremental reply");
    assert_eq!(items[4], b"1100");
    assert_eq!(items[5], b"ws.1099");
    assert!(!reader.apply_refresh(&reply, Millis(LATER)).unwrap().full);
    assert_eq!(
        conn.cmd(&["HMGET", &meta, "ver", "pver", "pvid", "v:2"]),
        Reply::Array(vec![
            Reply::Bulk(Some(b"1".to_vec())),
            Reply::Bulk(Some(b"1100".to_vec())),
            Reply::Bulk(Some(b"ws.1099".to_vec())),
            Reply::Bulk(None),
        ])
    );
}

/// A process that follows by push reads a page entry with page_read.lua while its page copies
/// may serve: the entry, and whether the page-write sequence is at the last write the process
/// knows. A write it has not heard of answers 0; a rollback to exactly the write it knows (a
/// master demoted to a replica that lacks the last write) answers 1 again, with the value
/// Redis holds then (docs/decisions/0031-page-entries-in-the-tier-by-push.md).
#[test]
fn a_page_read_tells_whether_the_page_write_sequence_is_the_one_known() {
    use fleetcache_core::Interface;

    let mut server = start();
    let mut writer = engine();
    writer.announce_page_writes();
    let keys = writer.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    let conn = &mut server.conn;
    let entry = writer.entry_key(&Interface::Incremental, "/p");
    let write = |conn: &mut Conn, id: &str, value: &[u8]| {
        let call = entry_write_call_for(&entry, &meta, &channel, id);
        assert_eq!(eval_with_value(conn, &call, value), Reply::Int(1));
    };
    write(conn, "a", b"v1");
    let (_, call) = caught_up_page_read(conn);
    let call = call.expect("a page read while page copies may serve");
    assert_eq!(call.script.name, "page_read");
    let read = |conn: &mut Conn, value: &[u8], at: i64| {
        assert_eq!(
            conn.run(&call),
            Reply::Array(vec![Reply::Bulk(Some(value.to_vec())), Reply::Int(at)])
        );
    };
    read(conn, b"v1", 1);
    // A write the reader has not heard of.
    let before = (
        conn.cmd(&["HGET", &meta, "pver"]),
        conn.cmd(&["HGET", &meta, "pvid"]),
    );
    write(conn, "b", b"v2");
    read(conn, b"v2", 0);
    // Rolled back to exactly the write the reader knows: the value then, and 1.
    let field = |r: Reply| match r {
        Reply::Bulk(Some(b)) => String::from_utf8(b).unwrap(),
        other => panic!("{other:?}"),
    };
    let (pver, pvid) = (field(before.0), field(before.1));
    conn.cmd(&["HSET", &meta, "pver", &pver, "pvid", &pvid]);
    conn.cmd(&["SET", &entry, "v1"]);
    read(conn, b"v1", 1);
    // The same number with another id (a failover that reused it): 0.
    conn.cmd(&["HSET", &meta, "pvid", "wz"]);
    read(conn, b"v1", 0);
    conn.cmd(&["HSET", &meta, "pvid", &pvid]);
    read(conn, b"v1", 1);
    // Another epoch at the same number and id (the state flushed and made anew): 0.
    conn.cmd(&["HSET", &meta, "epoch", "another"]);
    read(conn, b"v1", 0);
    // No meta hash at all, no entry: nothing, and 0.
    conn.cmd(&["FLUSHALL"]);
    assert_eq!(
        conn.run(&call),
        Reply::Array(vec![Reply::Bulk(None), Reply::Int(0)])
    );
}

fn entry_write_call_for(entry: &str, meta: &str, channel: &str, id: &str) -> ScriptCall {
    fleetcache_core::scripts::entry_write_call(&[entry, meta, channel], &["60000", "", "", id])
}

/// Runs `call` with `value` appended to its arguments (EVAL: a page write and a seed's carry
/// the value last).
fn eval_with_value(conn: &mut Conn, call: &ScriptCall, value: &[u8]) -> Reply {
    let numkeys = call.keys.len().to_string();
    let mut args: Vec<&[u8]> = vec![b"EVAL", call.script.source.as_bytes(), numkeys.as_bytes()];
    args.extend(call.keys.iter().map(|k| k.as_bytes()));
    args.extend(call.args.iter().map(|a| a.as_bytes()));
    args.push(value);
    conn.send(&args)
}

/// What a key holds when a seed arrives. `delta` is the stored time less the seed's (ms).
#[derive(Clone, Debug)]
enum Stored {
    Nothing,
    /// Any bytes (an envelope only by chance).
    Bytes(Vec<u8>),
    /// Begins as an envelope, shorter than the 24 bytes the scripts read.
    Short(usize),
    /// An envelope's first 24 bytes with that time at offset 16, and a tail.
    Header {
        delta: f64,
        tail: Vec<u8>,
    },
    /// An envelope the core encodes, created at that time.
    Envelope {
        delta: f64,
    },
}

fn any_stored() -> impl Strategy<Value = Stored> {
    // Equal times most often: the seed keeps an entry as new as it (seeding twice writes once).
    let delta = prop_oneof![
        2 => Just(0.0),
        3 => prop::sample::select(vec![-1.0, -0.5, 0.5, 1.0, 1e6, -1e6]),
        1 => -60_000.0f64..60_000.0,
        1 => Just(f64::NAN),
    ];
    let bytes = proptest::collection::vec(any::<u8>(), 0..40);
    prop_oneof![
        1 => Just(Stored::Nothing),
        1 => bytes.clone().prop_map(Stored::Bytes),
        1 => (4usize..24).prop_map(Stored::Short),
        2 => (delta.clone(), bytes).prop_map(|(delta, tail)| Stored::Header { delta, tail }),
        2 => delta.prop_map(|delta| Stored::Envelope { delta }),
    ]
}

/// The seed's rule as `seed_write.lua` and `entry_write.lua`'s mode 's' run it on a real
/// server is the one the simulation's model of Redis runs (`support/seed_rule.rs`), with the
/// arguments the core plans (`plan_seed_write`, announcing or not): for nothing stored, other
/// values, and envelopes created before, at and after the seed's time. The time the scripts
/// read at offset 16 is the one the core's header decoder reads.
#[test]
fn the_seed_scripts_keep_what_the_model_of_redis_keeps() {
    use fleetcache_core::incremental::{Descriptor, IncrementalSet, ValueKind};
    use fleetcache_core::Interface;

    let mut server = start();
    let cell = std::cell::RefCell::new(&mut server.conn);
    let base = 1_795_690_530_000.0;
    let mut announcing = engine();
    announcing.announce_page_writes();
    let plain = engine();
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(256));
    runner
        .run(
            &(any_stored(), 0.0f64..60_000.0, any::<bool>()),
            |(stored, offset, announce)| {
                let mut guard = cell.borrow_mut();
                let conn: &mut Conn = &mut guard;
                conn.cmd(&["FLUSHALL"]);
                let created = base + offset;
                let seeder = if announce { &announcing } else { &plain };
                let call = seeder
                    .plan_seed_write(
                        &Interface::Incremental,
                        "/s",
                        Millis(created),
                        3_600_000,
                        Millis(created),
                    )
                    .unwrap();
                // The seed's time as the script reads it: its argument's text.
                let (name, arg) = if announce {
                    ("entry_write", 2)
                } else {
                    ("seed_write", 1)
                };
                prop_assert_eq!(call.script.name, name);
                let seed_time: f64 = call.args[arg].parse().unwrap();
                prop_assert_eq!(seed_time, created);
                let stored = match stored {
                    Stored::Nothing => None,
                    Stored::Bytes(b) => Some(b),
                    Stored::Short(n) => {
                        let mut v = b"FLCE".to_vec();
                        v.resize(n, 0xff);
                        Some(v)
                    }
                    Stored::Header { delta, tail } => {
                        let mut v = b"FLCE".to_vec();
                        v.extend_from_slice(&[0; 12]);
                        v.extend_from_slice(&(created + delta).to_le_bytes());
                        v.extend_from_slice(&tail);
                        Some(v)
                    }
                    Stored::Envelope { delta } => {
                        let at = Millis(created + delta);
                        let desc =
                            Descriptor::from_wire(ValueKind::AppPage as u8, 2 | 4, 0).unwrap();
                        let set = IncrementalSet {
                            desc,
                            revalidate: f64::NAN,
                            expire: f64::NAN,
                            tags: &["_N_T_/s"],
                            parts: &[2, 1],
                            created: at,
                            made: None,
                            now: at,
                        };
                        match plain.plan_incremental_set("/s", &set) {
                            Ok(plan) => {
                                let mut v = plan.header;
                                v.extend_from_slice(b"{}x");
                                let header = fleetcache_core::decode_header(&v, v.len()).unwrap();
                                let t = header.meta.timestamp.0;
                                prop_assert!(t == at.0 || (t.is_nan() && at.0.is_nan()));
                                Some(v)
                            }
                            // A time the envelope refuses (NaN) makes no entry.
                            Err(_) => None,
                        }
                    }
                };
                let key = call.keys[0].as_bytes();
                if let Some(v) = &stored {
                    conn.send(&[b"SET", key, v]);
                }
                let keeps = seed_rule::seed_keeps(stored.as_deref(), seed_time);
                let reply = eval_with_value(conn, &call, b"seeded");
                prop_assert_eq!(reply, Reply::Int(if keeps { 0 } else { 1 }));
                let now_held = conn.send(&[b"GET", key]);
                let expected = if keeps {
                    stored
                } else {
                    Some(b"seeded".to_vec())
                };
                prop_assert_eq!(now_held, Reply::Bulk(expected));
                Ok(())
            },
        )
        .unwrap();
}

/// A refresh answered in full says why: `1` when the state was replaced (another epoch, a
/// version ahead of it, a version the reader names made by another update), `2` when a version
/// the reader names is too old to check (its id pruned): the reader saw no loss then, and a
/// process past its tag bound gives back nothing on that ground alone.
#[test]
fn a_full_refresh_says_whether_it_saw_a_loss() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = engine();
    for (i, tag) in ["a", "b", "c"].iter().enumerate() {
        update(
            conn,
            &mut e,
            &[tag],
            Revalidation::Expire,
            1000.0 + i as f64,
        );
    }
    let keys = e.namespace().tag_keys();
    let epoch = conn.cmd(&["HGET", &keys.meta, "epoch"]).bulk().to_vec();
    let epoch = String::from_utf8(epoch).unwrap();
    let id1 = String::from_utf8(conn.cmd(&["HGET", &keys.meta, "v:1"]).bulk().to_vec()).unwrap();
    // The known version, its id and the anchor, then the pairs of `args` past the first three.
    let anchored = |conn: &mut Conn, anchor: [&str; 2], args: &[&str]| {
        let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
        all.splice(3..3, anchor.iter().map(|a| (*a).to_owned()));
        let call = ScriptCall {
            script: &TAG_REFRESH,
            sha1: TAG_REFRESH.sha1(),
            keys: keys.to_vec(),
            args: all,
        };
        let reply = conn.run(&call).bulk().to_vec();
        netstring::decode(&reply).unwrap()[3].to_vec()
    };
    let flag = |conn: &mut Conn, args: &[&str]| anchored(conn, ["0", ""], args);
    assert_eq!(flag(conn, &[&epoch, "1", &id1]), b"0");
    assert_eq!(
        flag(conn, &[&epoch, "1", "another"]),
        b"1",
        "a version reused"
    );
    assert_eq!(flag(conn, &[&epoch, "9", "x"]), b"1", "a version ahead");
    assert_eq!(flag(conn, &["other", "1", &id1]), b"1", "another epoch");
    // The id of version 1 pruned, as 1,024 versions later.
    conn.cmd(&["HDEL", &keys.meta, "v:1"]);
    assert_eq!(
        flag(conn, &[&epoch, "1", &id1]),
        b"2",
        "too far behind to tell"
    );
    assert_eq!(
        flag(conn, &[&epoch, "1", &id1, "2", "another"]),
        b"1",
        "an own update reused, besides"
    );
    // The last page of a load read at version 3, which still holds its id: the load's version 1
    // needs no check of its own (the pages checked each other from it), and the reader is
    // answered in part.
    let id3 = String::from_utf8(conn.cmd(&["HGET", &keys.meta, "v:3"]).bulk().to_vec()).unwrap();
    assert_eq!(
        anchored(conn, ["3", &id3], &[&epoch, "1", &id1, "3", &id3]),
        b"0",
        "anchored"
    );
    assert_eq!(
        anchored(conn, ["3", "another"], &[&epoch, "1", &id1]),
        b"2",
        "an anchor made by another update spares nothing"
    );
    assert_eq!(
        anchored(conn, ["3", "another"], &[&epoch, "1", &id1, "3", "another"]),
        b"1",
        "an anchor reused is a rollback, as it is checked among the pairs"
    );
    assert_eq!(
        anchored(conn, ["9", "x"], &[&epoch, "1", &id1]),
        b"2",
        "an anchor ahead of the state spares nothing"
    );
    // Not an own update that holds: it says nothing of what came before it.
    assert_eq!(
        flag(conn, &[&epoch, "1", &id1, "3", &id3]),
        b"2",
        "an own update holding spares nothing"
    );
    // A known version above the anchor is not covered by it.
    let id2 = String::from_utf8(conn.cmd(&["HGET", &keys.meta, "v:2"]).bulk().to_vec()).unwrap();
    conn.cmd(&["HDEL", &keys.meta, "v:3"]);
    assert_eq!(
        anchored(conn, ["2", &id2], &[&epoch, "3", &id3, "2", &id2]),
        b"2",
        "an anchor below the known version spares nothing"
    );
}

/// A writer that revalidated `tag` (version 1) and a reader synced at that version.
fn reader_at_version_one(conn: &mut Conn, tag: &str) -> (Engine, Engine) {
    let mut writer = engine();
    update(conn, &mut writer, &[tag], Revalidation::Expire, 1000.0);
    let mut reader = engine();
    refresh(conn, &mut reader);
    assert_eq!(reader.mirror().version(), 1);
    (writer, reader)
}

/// `n` tag names `<prefix>-<from>`, ...
fn names_from(prefix: &str, from: usize, n: usize) -> Vec<String> {
    (from..from + n).map(|i| format!("{prefix}-{i}")).collect()
}

/// One expiring revalidation of every tag in `tags`, by `writer`, at `at`.
fn write_all(conn: &mut Conn, writer: &mut Engine, tags: &[String], at: f64) {
    let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
    update(conn, writer, &refs, Revalidation::Expire, at);
}

/// A refresh reply's flag, version and how many tags it carries; a part (`3`) names the
/// state's version it was cut from, above its own.
fn part_head(reply: &[u8]) -> (String, String, usize) {
    let items = netstring::decode(reply).unwrap();
    let text = |i: usize| String::from_utf8(items[i].to_vec()).unwrap();
    let mut head = 6;
    if text(3) == "3" {
        let (cut_from, upto) = (text(6).parse::<u64>(), text(1).parse::<u64>());
        assert!(
            cut_from.unwrap() > upto.unwrap(),
            "a part is cut from a later version"
        );
        head = 8;
    }
    (text(3), text(1), (items.len() - head) / 2)
}

/// A reader more changed tags behind than one reply carries (`PART_TAGS`, the script's own
/// limit: exactly that many still come in one reply) gets the changes in parts, each ending
/// after a whole version (`3`, the part's last version and its id), and is synced after the
/// last, holding every record as the state does. One version of more tags comes whole.
#[test]
fn a_reader_far_behind_catches_up_in_parts_of_whole_versions() {
    use fleetcache_core::tags::PART_TAGS;
    let mut server = start();
    let conn = &mut server.conn;
    let (mut writer, mut reader) = reader_at_version_one(conn, "again");
    let batch = |from: usize, n: usize| names_from("t", from, n);
    let mut write =
        |conn: &mut Conn, tags: &[String], at: f64| write_all(conn, &mut writer, tags, at);
    let head = |reply: &[u8]| part_head(reply);
    let step = |conn: &mut Conn, reader: &mut Engine| {
        let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        reader.apply_refresh(&reply, Millis(LATER)).unwrap();
        head(&reply)
    };
    // Exactly PART_TAGS changed: one reply.
    write(conn, &batch(0, PART_TAGS - 1), 2000.0);
    write(conn, &["again".to_owned()], 2001.0);
    assert_eq!(step(conn, &mut reader), ("0".into(), "3".into(), PART_TAGS));
    assert!(reader.mirror().is_synced());
    // Versions 4 (3,000 tags), 5 (2,000 tags and "again"), 6 (one): the first part ends after
    // version 4, since version 5 does not fit beside it.
    write(conn, &batch(10_000, 3000), 3000.0);
    write(
        conn,
        &[batch(20_000, 2000), vec!["again".to_owned()]].concat(),
        3001.0,
    );
    write(conn, &batch(30_000, 1), 3002.0);
    assert_eq!(step(conn, &mut reader), ("3".into(), "4".into(), 3000));
    assert!(
        !reader.mirror().is_synced(),
        "nothing tagged is fresh between parts"
    );
    assert!(reader.mirror().is_catching_up());
    assert_eq!(reader.mirror().version(), 4);
    assert_eq!(step(conn, &mut reader), ("0".into(), "6".into(), 2002));
    assert!(reader.mirror().is_synced());
    // One version of more tags than a part comes whole, then the next part.
    write(conn, &batch(40_000, PART_TAGS + 500), 4000.0);
    write(conn, &batch(50_000, 1), 4001.0);
    assert_eq!(
        step(conn, &mut reader),
        ("3".into(), "7".into(), PART_TAGS + 500)
    );
    assert_eq!(step(conn, &mut reader), ("0".into(), "8".into(), 1));
    assert!(reader.mirror().is_synced());
    for tag in (0..PART_TAGS - 1)
        .map(|i| format!("t-{i}"))
        .chain(batch(10_000, 3000))
        .chain(batch(20_000, 2000))
        .chain(batch(40_000, PART_TAGS + 500))
        .chain([
            "again".to_owned(),
            "t-30000".to_owned(),
            "t-50000".to_owned(),
        ])
    {
        assert_eq!(
            reader.mirror().record(&tag),
            writer.mirror().record(&tag),
            "{tag}"
        );
    }
    assert_eq!(reader.mirror().resend_len(), 0, "nothing to give back");
}

/// The script's limit is `PART_TAGS` from above too: one changed tag more than a reply
/// carries, over two versions, is answered in a part. (The test above holds the limit only
/// from below: with the script's 4000 raised to anything up to 5000 it passes, since its
/// second batch crosses the limit inside a version either way.) A part that names no tag (every
/// tag of the first version changed again later) still moves the reader on.
#[test]
fn one_changed_tag_past_the_limit_makes_a_part() {
    use fleetcache_core::tags::PART_TAGS;
    let mut server = start();
    let conn = &mut server.conn;
    let (mut writer, mut reader) = reader_at_version_one(conn, "base");
    let names = |from: usize, n: usize| names_from("p", from, n);
    let mut write =
        |conn: &mut Conn, tags: &[String], at: f64| write_all(conn, &mut writer, tags, at);
    let step = |conn: &mut Conn, reader: &mut Engine| {
        let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        reader.apply_refresh(&reply, Millis(LATER)).unwrap();
        part_head(&reply)
    };
    // Versions 2 (half) and 3 (the rest and one more): PART_TAGS + 1 changed.
    let half = PART_TAGS / 2;
    write(conn, &names(0, half), 2000.0);
    write(conn, &names(half, PART_TAGS - half + 1), 2001.0);
    assert_eq!(step(conn, &mut reader), ("3".into(), "2".into(), half));
    assert!(!reader.mirror().is_synced());
    assert_eq!(
        step(conn, &mut reader),
        ("0".into(), "3".into(), PART_TAGS - half + 1)
    );
    assert!(reader.mirror().is_synced());
    // Version 4 changes "x"; version 5 changes it again beside PART_TAGS more: the first part
    // (up to version 4) holds no tag, the next one is version 5 whole.
    write(conn, &["x".to_owned()], 3000.0);
    write(
        conn,
        &[names(10_000, PART_TAGS), vec!["x".to_owned()]].concat(),
        3001.0,
    );
    assert_eq!(step(conn, &mut reader), ("3".into(), "4".into(), 0));
    assert_eq!(
        step(conn, &mut reader),
        ("0".into(), "5".into(), PART_TAGS + 1)
    );
    assert!(reader.mirror().is_synced());
    assert_eq!(reader.mirror().record("x"), writer.mirror().record("x"));
}

/// A reader answered a part up to version 2, cut from version 3: version 2 changes "x", and
/// version 3 changes it again beside `PART_TAGS` more, so the part holds no tag and "x" comes
/// with the part of version 3. Also the tag keys as they were at version 2 (a replica that has
/// it and nothing after) and "x"'s record then.
fn reader_at_a_part_cut_from_three(conn: &mut Conn) -> (Engine, Dumps, Option<TagRecord>) {
    use fleetcache_core::tags::PART_TAGS;
    let (mut writer, mut reader) = reader_at_version_one(conn, "base");
    write_all(conn, &mut writer, &["x".to_owned()], 2000.0);
    let replica = snapshot(conn, &writer);
    let at_two = writer.mirror().record("x").copied();
    write_all(
        conn,
        &mut writer,
        &[names_from("p", 0, PART_TAGS), vec!["x".to_owned()]].concat(),
        3000.0,
    );
    let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    reader.apply_refresh(&reply, Millis(LATER)).unwrap();
    assert_eq!(reader.mirror().version(), 2);
    (reader, replica, at_two)
}

/// A part ends before a tag's later change ("it comes with a later part"), and a failover
/// that loses that later change but keeps the part's version would leave the reader at that
/// version without the tag's earlier change: nothing later names it. The part's reply names
/// the state's version it was cut from, and the next refresh checks the state still holds
/// it: a failover below it is answered in full, and the reader learns the tag.
#[test]
fn a_failover_below_the_version_a_part_was_cut_from_is_seen() {
    let mut server = start();
    let conn = &mut server.conn;
    let (mut reader, replica, at_two) = reader_at_a_part_cut_from_three(conn);
    assert!(reader.mirror().record("x").is_none());
    // The master dies; the replica at version 2 takes over.
    restore(conn, &replica);
    let (_, s) = refresh(conn, &mut reader);
    assert!(
        s.full,
        "the version the part was cut from is gone: loaded whole"
    );
    assert!(reader.mirror().is_synced());
    assert_eq!(reader.mirror().record("x").copied(), at_two);
}

/// The same failover, and another process's update then made the version the part was cut
/// from again: the state is back at that number, with another id. Only the id tells the two
/// apart, and the reader is answered in full all the same.
#[test]
fn a_part_cut_from_a_version_a_failover_gave_to_another_update_is_seen() {
    let mut server = start();
    let conn = &mut server.conn;
    let (mut reader, replica, at_two) = reader_at_a_part_cut_from_three(conn);
    assert_eq!(reader.mirror().part_check().map(|(v, _)| v), Some(3));
    restore(conn, &replica);
    let mut other = engine();
    update_as(conn, &mut other, "y", 4000.0, "another-3");
    let (_, s) = refresh(conn, &mut reader);
    assert!(s.full, "version 3 is another update's now: loaded whole");
    assert_eq!(reader.mirror().record("x").copied(), at_two);
    assert!(reader.mirror().record("y").is_some());
}

/// A load reads the state's hash with `HSCAN`, whose cursor means something to the server
/// process that gave it only (each draws its hash seed at start): a load continued on another
/// process holding the same state (a failover that lost nothing, a restart with persistence, a
/// slot migrated) skipped tags with every version check holding, about a fifth of 3,000 here.
/// A cursor names the server it came from, and a page asked of another server scans from the
/// start.
#[test]
fn a_load_continued_on_another_server_reads_every_tag() {
    let mut a = start();
    let mut b = start();
    let (writer, tags) = three_thousand_tags(&mut a.conn);
    let mut reader = engine();
    // The state moves to another server as it is, after the load's first two pages.
    load_moving(&mut a.conn, &mut b.conn, &mut reader, |a, b| {
        restore(b, &snapshot(a, &writer));
    });
    drop(a);
    assert_eq!(missing(&reader, &tags), 0, "tags the load skipped");
}

/// A user whose ACL refuses `INFO` (an ACL from before the server check) loads as before: its
/// cursors name no server (`:<cursor>`), and a load on one server reads every tag.
#[test]
fn without_info_a_load_reads_every_tag_as_before() {
    let mut server = start();
    let conn = &mut server.conn;
    let (_, tags) = three_thousand_tags(conn);
    refuse_info(conn);
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    reader.apply_refresh(&first, Millis(LATER)).unwrap();
    assert_eq!(
        reader
            .mirror()
            .page_cursor()
            .and_then(|c| c.split_once(':'))
            .map(|(s, _)| s),
        Some(""),
        "no server named"
    );
    load_to_the_end(conn, &mut reader);
    assert_eq!(missing(&reader, &tags), 0);
}

/// A load that moves between a server whose ACL refuses `INFO` and one that allows it, either
/// way, reads every tag: a cursor that names no server (`:<cursor>`) is another server's to one
/// that has a `run_id`, and a named one is another server's to one that reports none.
#[test]
fn a_load_moving_between_servers_with_and_without_info_reads_every_tag() {
    for refused_on_first in [true, false] {
        let mut a = start();
        let mut b = start();
        let (writer, tags) = three_thousand_tags(&mut a.conn);
        restore(&mut b.conn, &snapshot(&mut a.conn, &writer));
        refuse_info(if refused_on_first {
            &mut a.conn
        } else {
            &mut b.conn
        });
        let mut reader = engine();
        load_moving(&mut a.conn, &mut b.conn, &mut reader, |_, _| {});
        assert_eq!(
            missing(&reader, &tags),
            0,
            "tags skipped, INFO refused on the first: {refused_on_first}"
        );
    }
}

/// 3,000 tags revalidated in three updates (a hash table, which `HSCAN` pages by cursor), by a
/// writer returned with their names.
fn three_thousand_tags(conn: &mut Conn) -> (Engine, Vec<String>) {
    let mut writer = engine();
    let tags: Vec<String> = (0..3)
        .flat_map(|c| names_from("t", c * 1000, 1000))
        .collect();
    for (c, chunk) in tags.chunks(1000).enumerate() {
        write_all(conn, &mut writer, chunk, 1000.0 + c as f64);
    }
    (writer, tags)
}

/// Logs `conn` in as a user whose ACL refuses `INFO`.
fn refuse_info(conn: &mut Conn) {
    conn.cmd(&[
        "ACL", "SETUSER", "noinfo", "on", "nopass", "~*", "&*", "+@all", "-info",
    ]);
    assert_eq!(
        conn.cmd(&["AUTH", "noinfo", "x"]),
        Reply::Simple("OK".into())
    );
}

/// `reader` starts a load of the state on `a` (the full reply and one page), `moved` runs,
/// and the load goes on on `b` until the reader is synced.
fn load_moving(
    a: &mut Conn,
    b: &mut Conn,
    reader: &mut Engine,
    moved: impl FnOnce(&mut Conn, &mut Conn),
) {
    let first = a.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    let page = a.run(&reader.plan_tag_refresh()).bulk().to_vec();
    reader.apply_refresh(&page, Millis(LATER)).unwrap();
    assert!(reader.mirror().is_loading(), "more pages to read");
    moved(a, b);
    load_to_the_end(b, reader);
}

/// Refreshes `reader` on `conn` until it is synced (at most 100 calls).
fn load_to_the_end(conn: &mut Conn, reader: &mut Engine) {
    for _ in 0..100 {
        if reader.mirror().is_synced() {
            break;
        }
        let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        reader.apply_refresh(&reply, Millis(LATER)).unwrap();
    }
    assert!(reader.mirror().is_synced());
}

/// How many of `tags` the reader holds no record of.
fn missing(reader: &Engine, tags: &[String]) -> usize {
    tags.iter()
        .filter(|t| reader.mirror().record(t).is_none())
        .count()
}

/// The refresh script never answers a version above the state's own, and a reader of a state
/// made anew over an old log (its meta hash lost alone: deleted by hand, or evicted by an
/// `allkeys-*` policy, while the log stayed) learns every later update. The part's
/// cut looked for the 4,001st changed tag up to `+inf`, and the old log's scores, then above
/// the new state's versions, made it end a "part" past `ver` (flag 0, that version, no id):
/// the update that later made that version never reached the reader. The cut is bounded by
/// `ver`, and a state made anew now numbers its versions above the old log's scores.
#[test]
fn a_part_never_ends_past_the_states_version() {
    use fleetcache_core::tags::PART_TAGS;
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    for (i, tag) in ["a", "b", "c"].into_iter().enumerate() {
        update(
            conn,
            &mut writer,
            &[tag],
            Revalidation::Expire,
            1000.0 + i as f64,
        );
    }
    let many: Vec<String> = (0..=PART_TAGS).map(|i| format!("m-{i}")).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    update(conn, &mut writer, &refs, Revalidation::Expire, 2000.0);
    // The meta hash goes alone; the next update makes a state whose versions go on above the
    // old log's scores (1 to 4): from 5.
    assert_eq!(conn.cmd(&["DEL", "t:tags:{t}:meta"]), Reply::Int(1));
    update_as(conn, &mut writer, "w", 3000.0, "epoch-2");
    let mut reader = engine();
    refresh(conn, &mut reader);
    assert_eq!(
        (reader.mirror().epoch(), reader.mirror().version()),
        ("epoch-2", 5)
    );
    update_as(conn, &mut writer, "w2", 3001.0, "epoch-2");
    let (reply, _) = refresh(conn, &mut reader);
    let head: Vec<String> = netstring::decode(&reply).unwrap()[..4]
        .iter()
        .map(|i| String::from_utf8_lossy(i).into_owned())
        .collect();
    // Version 7 of the new state: a revalidation every reader must learn.
    update_as(conn, &mut writer, "w3", 3002.0, "epoch-2");
    refresh(conn, &mut reader);
    assert!(reader.mirror().is_synced());
    assert_eq!(
        reader.mirror().record("w3"),
        writer.mirror().record("w3"),
        "a synced reader misses version 3 (the reply before it: {head:?})"
    );
    assert_eq!(reader.mirror().version(), 7);
}

/// The first four items of a refresh reply (epoch, version, id, flag), as text.
fn head_of(reply: &[u8]) -> Vec<String> {
    netstring::decode(reply).unwrap()[..4]
        .iter()
        .map(|i| String::from_utf8_lossy(i).into_owned())
        .collect()
}

/// Runs the merge `e` plans until none waits (what the host's drain does); returns how many.
fn merge_back(conn: &mut Conn, e: &mut Engine, candidate: &str) -> usize {
    let mut merges = 0;
    while e.resend_len() > 0 {
        let call = e
            .plan_resend(candidate)
            .unwrap()
            .expect("a merge is planned");
        let reply = conn.run(&call).bulk().to_vec();
        e.ack_resend();
        e.apply_update_reply(&reply).unwrap();
        merges += 1;
        assert!(merges < 100);
    }
    merges
}

#[test]
fn a_state_that_lost_its_meta_hash_alone_is_loaded_by_a_new_reader() {
    use fleetcache_core::tags::EPOCH_WITHOUT_META;
    let mut server = start();
    let conn = &mut server.conn;
    // A fleet that never revalidated: no meta hash, no state. Its refreshes stay partial and
    // empty, however many (no load per request), and it has nothing to merge.
    let mut fresh = engine();
    for _ in 0..3 {
        let (reply, summary) = refresh(conn, &mut fresh);
        assert_eq!(head_of(&reply), ["", "0", "", "0"]);
        assert!(!summary.full && fresh.mirror().is_synced() && fresh.resend_len() == 0);
    }
    let mut writer = engine();
    update(conn, &mut writer, &["a", "b"], Revalidation::Expire, 1000.0);
    let mut follower = engine();
    refresh(conn, &mut follower);
    assert_eq!(follower.mirror().epoch(), "epoch-1");
    // The meta hash goes alone (an operator's DEL, an eviction): the records stay.
    assert_eq!(conn.cmd(&["DEL", "t:tags:{t}:meta"]), Reply::Int(1));
    // A process that starts now names no epoch: it must load the records, not take the state
    // for an empty one.
    let mut started = engine();
    for round in 0..2 {
        // Every refresh loads it whole (and compares) while it has no epoch.
        let (reply, summary) = refresh(conn, &mut started);
        assert_eq!(
            head_of(&reply)[..2],
            [EPOCH_WITHOUT_META, "0"],
            "round {round}"
        );
        assert!(summary.full && started.mirror().is_synced());
        for tag in ["a", "b"] {
            assert_eq!(started.mirror().record(tag), writer.mirror().record(tag));
        }
        // Nothing to give back but the meta hash to make anew.
        assert_eq!(
            (started.mirror().resend_len(), started.resend_len()),
            (0, 1)
        );
    }
    // The process that followed the old epoch loads the state again and finds nothing lost.
    let (_, summary) = refresh(conn, &mut follower);
    assert!(summary.full);
    assert_eq!(follower.mirror().epoch(), EPOCH_WITHOUT_META);
    assert_eq!(
        (follower.mirror().lost(), follower.mirror().resend_len()),
        (0, 0)
    );
    // A merge of no record, planned again until acknowledged (a failed call is retried).
    for candidate in ["x", "y"] {
        let call = started.plan_resend(candidate).unwrap().unwrap();
        assert_eq!(call.args, [candidate]);
    }
    assert_eq!(started.resend_len(), 1);
    // One merge of no record makes the meta hash anew; the other reader's then writes nothing
    // (a version over no log would read as a log lost: tag_merge.lua).
    assert_eq!(merge_back(conn, &mut started, "epoch-m"), 1);
    assert_eq!(
        conn.cmd(&["HGET", "t:tags:{t}:meta", "epoch"]),
        Reply::Bulk(Some(b"epoch-m".to_vec()))
    );
    assert_eq!(merge_back(conn, &mut follower, "epoch-n"), 1);
    for reader in [&mut started, &mut follower] {
        let (_, summary) = refresh(conn, reader);
        assert!(summary.full, "a state made anew is loaded once");
        assert_eq!(
            (reader.mirror().epoch(), reader.mirror().version()),
            ("epoch-m", 2),
            "version 1 of the lost state's log, then the first merge"
        );
        let (reply, summary) = refresh(conn, reader);
        assert_eq!(head_of(&reply)[3], "0");
        assert!(!summary.full && reader.resend_len() == 0);
        assert_eq!(reader.mirror().lost(), 0);
    }
    // The next update: both learn it in part.
    update_as(conn, &mut writer, "c", 2000.0, "epoch-2");
    for reader in [&mut started, &mut follower] {
        let (_, summary) = refresh(conn, reader);
        assert!(!summary.full);
        assert_eq!(reader.mirror().record("c"), writer.mirror().record("c"));
        assert_eq!(reader.mirror().record("a"), writer.mirror().record("a"));
    }
    // A page write that makes the meta hash anew (its epoch, no version) ends it too: the state
    // is followed from the log's highest score (c's 3), in part, with nothing to give back.
    assert_eq!(conn.cmd(&["DEL", "t:tags:{t}:meta"]), Reply::Int(1));
    refresh(conn, &mut started);
    assert_eq!(started.mirror().epoch(), EPOCH_WITHOUT_META);
    assert_eq!(
        conn.cmd(&["HSET", "t:tags:{t}:meta", "epoch", "wpage", "pver", "1"]),
        Reply::Int(2)
    );
    let (reply, summary) = refresh(conn, &mut started);
    assert_eq!(head_of(&reply)[..2], ["wpage", "3"]);
    assert!(summary.full && started.mirror().is_synced() && started.resend_len() == 0);
    let (reply, summary) = refresh(conn, &mut started);
    assert_eq!(head_of(&reply), ["wpage", "3", "", "0"]);
    assert!(!summary.full && started.resend_len() == 0);
}

/// A state of 2,500 records whose meta hash was lost alone is loaded page by page by a new
/// reader (the pages name no version to check: `no-meta` has none). Another process makes the
/// meta hash anew and a revalidation follows while the pages are read: the reader's next page
/// finds an epoch where its load began under none and is rolled back (no merge of no record
/// from that load), the next refresh loads the new state, and once synced the reader holds
/// the revalidation and follows the state in part.
#[test]
fn a_large_state_that_lost_its_meta_hash_is_loaded_in_pages_and_made_anew_once() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    let names = large_state(conn, &mut writer);
    let meta = writer.namespace().tag_keys().meta.clone();
    assert_eq!(conn.cmd(&["DEL", &meta]), Reply::Int(1));
    // Pages until the load in progress ends; returns how many.
    let pages = |conn: &mut Conn, e: &mut Engine| {
        let mut n = 0;
        while e.mirror().is_loading() {
            let call = e.plan_tag_refresh();
            assert_eq!(call.script.name, "tag_page");
            let page = conn.run(&call).bulk().to_vec();
            e.apply_refresh(&page, Millis(LATER)).unwrap();
            n += 1;
            assert!(n < 100, "the load ends");
        }
        n
    };
    let mut reader = engine();
    let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
    assert_eq!(head_of(&first)[..2], [EPOCH_WITHOUT_META_STR, "0"]);
    assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
    assert!(
        reader.mirror().is_loading(),
        "2,500 tags do not fit in one page"
    );
    // Another process loads the same records whole, and its catch-up refresh is answered in
    // full again: without an epoch, nothing tells this state from the next.
    let mut remaker = engine();
    let r = conn.run(&remaker.plan_tag_refresh()).bulk().to_vec();
    remaker.apply_refresh(&r, Millis(LATER)).unwrap();
    assert!(pages(conn, &mut remaker) > 0);
    assert!(remaker.mirror().remakes_meta() && !remaker.mirror().is_synced());
    let again = conn.run(&remaker.plan_tag_refresh()).bulk().to_vec();
    assert_eq!(head_of(&again)[3], "1");
    // It makes the meta hash anew; a revalidation follows.
    assert_eq!(merge_back(conn, &mut remaker, "epoch-m"), 1);
    update_as(conn, &mut writer, "late", 9000.0, "epoch-2");
    assert!(pages(conn, &mut reader) > 0);
    assert!(
        !reader.mirror().is_synced(),
        "a load of records without an epoch is never taken as synced after its pages"
    );
    // Its load was rolled back at the first page after the meta hash was made anew (an epoch
    // where the load began under none): no comparison, so no merge of no record to send.
    assert_eq!(merge_back(conn, &mut reader, "epoch-r"), 0);
    assert_eq!(
        conn.cmd(&["HGET", &meta, "epoch"]),
        Reply::Bulk(Some(b"epoch-m".to_vec()))
    );
    for e in [&mut reader, &mut remaker] {
        let (reply, summary) = refresh(conn, e);
        assert!(summary.full);
        // 25 versions of the lost state's log, then the remake and the update.
        assert_eq!(head_of(&reply)[..2], ["epoch-m", "27"]);
        assert!(e.mirror().is_synced() && e.resend_len() == 0 && e.mirror().lost() == 0);
        for name in names.iter().map(String::as_str).chain(["late"]) {
            assert_eq!(
                e.mirror().record(name),
                writer.mirror().record(name),
                "{name}"
            );
        }
        let (reply, summary) = refresh(conn, e);
        assert_eq!(head_of(&reply)[3], "0");
        assert!(!summary.full && e.resend_len() == 0);
    }
}

const EPOCH_WITHOUT_META_STR: &str = fleetcache_core::tags::EPOCH_WITHOUT_META;

/// A reader one version behind a writer, each knowing what it made or read: `a` at version 1,
/// `b` at version 2 (the reader knows `a` only).
fn reader_behind_writer(conn: &mut Conn) -> (Engine, Engine) {
    let mut writer = engine();
    let mut reader = engine();
    update_as(conn, &mut writer, "a", 1000.0, "id-1");
    refresh(conn, &mut writer);
    refresh(conn, &mut reader);
    let reply = update_as(conn, &mut writer, "b", 2000.0, "id-2");
    writer.apply_update_reply(&reply).unwrap();
    refresh(conn, &mut writer);
    assert!(reader.mirror().record("a").is_some() && reader.mirror().record("b").is_none());
    (writer, reader)
}

/// Every reader (and a new one) holds `tags` exactly as `writer` does, and a refresh of each
/// is answered in part (no load again and again).
fn all_know(conn: &mut Conn, readers: &mut [&mut Engine], writer: &Engine, tags: &[&str]) {
    for e in readers.iter_mut() {
        refresh(conn, e);
        let (_, summary) = refresh(conn, e);
        assert!(!summary.full, "loaded once");
    }
    let mut new = engine();
    refresh(conn, &mut new);
    for e in readers.iter().map(|e| &**e).chain([&new]) {
        for tag in tags {
            assert_eq!(e.mirror().record(tag), writer.mirror().record(tag), "{tag}");
        }
    }
}

/// The state hash or the version log deleted alone (an operator's `DEL`, an `allkeys-*`
/// eviction, which picks rarely read keys) while the meta hash keeps the versions: a refresh
/// from an older version found no record for the tags the log named (or no log), answered
/// in part, and the reader took itself for synced without `b`. Now such a state reads as one
/// of its own: every reader loads it once and gives back what it knows.
#[test]
fn a_state_hash_or_log_lost_alone_is_loaded_and_given_back_by_every_reader() {
    for lost in [":state", ":log", ":state:log"] {
        let mut server = start();
        let conn = &mut server.conn;
        let (mut writer, mut reader) = reader_behind_writer(conn);
        let keys = writer.namespace().tag_keys();
        for (suffix, key) in [(":state", &keys.state), (":log", &keys.log)] {
            if lost.contains(suffix) {
                assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1), "{lost}");
            }
        }
        for e in [&mut reader, &mut writer] {
            let (reply, summary) = refresh(conn, e);
            assert!(summary.full, "{lost}: a state that lost a key is loaded");
            let name = if lost == ":log" {
                "id-1~2.id-2+"
            } else {
                "id-1~2.id-2~"
            };
            assert_eq!(head_of(&reply)[..2], [name, "0"], "{lost}");
        }
        merge_back(conn, &mut reader, "epoch-r");
        merge_back(conn, &mut writer, "epoch-w");
        all_know(conn, &mut [&mut reader], &writer, &["a", "b"]);
        // The next update: every reader learns it and keeps the rest.
        let reply = update_as(conn, &mut writer, "c", 3000.0, "epoch-c");
        writer.apply_update_reply(&reply).unwrap();
        all_know(conn, &mut [&mut reader], &writer, &["a", "b", "c"]);
    }
}

/// The same loss, but an update runs before any reader refreshes: written over what is left
/// as if nothing were gone, its own tag on top of the log would hide the loss from every later
/// refresh. It makes the keys a new state of what is left, which every reader loads.
#[test]
fn an_update_over_a_state_hash_or_log_lost_alone_starts_a_new_state() {
    for lost in [":state", ":log"] {
        let mut server = start();
        let conn = &mut server.conn;
        let (mut writer, mut reader) = reader_behind_writer(conn);
        let keys = writer.namespace().tag_keys();
        let key = if lost == ":state" {
            &keys.state
        } else {
            &keys.log
        };
        assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1));
        let mut third = engine();
        update_as(conn, &mut third, "c", 3000.0, "epoch-c");
        assert_eq!(
            (
                conn.cmd(&["HGET", &keys.meta, "epoch"]),
                conn.cmd(&["HGET", &keys.meta, "ver"])
            ),
            (
                Reply::Bulk(Some(b"epoch-c".to_vec())),
                Reply::Bulk(Some(b"1".to_vec()))
            ),
            "{lost}: the update made a new state"
        );
        for e in [&mut reader, &mut writer] {
            let (_, summary) = refresh(conn, e);
            assert!(summary.full, "{lost}: a new state is loaded");
            merge_back(conn, e, "merge");
        }
        refresh(conn, &mut writer);
        all_know(
            conn,
            &mut [&mut reader, &mut third],
            &writer,
            &["a", "b", "c"],
        );
    }
}

/// A state of 2,500 records whose log goes, before a load and during one: the pages read
/// version 0 as the refresh does, so the reader loads what is left once (a page naming the
/// state's version would be checked by the next refresh against version 0 and load it again
/// for ever), and a load the loss overtakes starts again.
#[test]
fn a_large_state_that_lost_its_log_is_loaded_in_pages_once() {
    for during in [false, true] {
        let mut server = start();
        let conn = &mut server.conn;
        let (writer, names, mut reader) = reader_loading_large_state(conn);
        let log = writer.namespace().tag_keys().log;
        if during {
            // A page of the load first, read at the state's version.
            let page = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
            reader.apply_refresh(&page, Millis(LATER)).unwrap();
            assert!(reader.mirror().is_loading());
        }
        assert_eq!(conn.cmd(&["DEL", &log]), Reply::Int(1));
        let mut pages = 0;
        while reader.mirror().is_loading() || !reader.mirror().is_synced() {
            let reply = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
            reader.apply_refresh(&reply, Millis(LATER)).unwrap();
            pages += 1;
            assert!(pages < 20, "during {during}: loads again and again");
        }
        assert_eq!(
            reader.mirror().epoch(),
            "epoch-1~25.epoch-1+",
            "during {during}"
        );
        let (_, summary) = refresh(conn, &mut reader);
        assert!(!summary.full, "during {during}: loaded once");
        assert_records_as_writer(&reader, &writer, names.iter());
    }
}

/// The log goes, a reader loads the records left; then the state hash goes too: the state is
/// named another, so the reader loads again and gives back what it knows, which a process that
/// starts later then finds.
#[test]
fn a_state_hash_lost_after_its_log_is_loaded_again() {
    let mut server = start();
    let conn = &mut server.conn;
    let (writer, mut reader) = reader_behind_writer(conn);
    let keys = writer.namespace().tag_keys();
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let (reply, _) = refresh(conn, &mut reader);
    assert_eq!(head_of(&reply)[0], "id-1~2.id-2+");
    assert_eq!(conn.cmd(&["DEL", &keys.state]), Reply::Int(1));
    let (reply, summary) = refresh(conn, &mut reader);
    assert_eq!(head_of(&reply)[0], "id-1~2.id-2~");
    assert!(summary.full);
    merge_back(conn, &mut reader, "epoch-r");
    all_know(conn, &mut [&mut reader], &writer, &["a", "b"]);
}

/// A process that follows by push loads a state whose log went (named `<epoch>~<ver>+`), and
/// page writes go on while no tag update comes: they announce the meta hash's own epoch.
/// Taken for another state's, each one was a tag gap (a pull) and a new page generation (the
/// tier's page copies never served), for as long as no revalidation came.
#[test]
fn page_writes_over_a_state_that_lost_its_log_keep_a_push_follower_caught_up() {
    use fleetcache_core::tags::Announced;
    use fleetcache_core::Interface;

    let mut server = start();
    let mut sub = server.connect();
    let mut follower = engine();
    follower.follow_tags_by_push(600_000.0).unwrap();
    follower.confirm_plain_redis();
    let keys = follower.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    sub.cmd(&["SSUBSCRIBE", &channel]);
    follower.tag_channel_up();
    let conn = &mut server.conn;
    let mut writer = engine();
    writer.announce_page_writes();
    update_as(conn, &mut writer, "a", 1000.0, "id-1");
    let entry = writer.entry_key(&Interface::Incremental, "/p");
    let page_write = |conn: &mut Conn, id: &str| {
        let call = entry_write_call_for(&entry, &meta, &channel, id);
        assert_eq!(eval_with_value(conn, &call, b"v"), Reply::Int(1));
    };
    page_write(conn, "1");
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    // The page write's message is older than the pulls below (the update announced nothing:
    // its writer pulls).
    message(&mut sub);
    // Pulls until caught up: the load, then the pull that finds the page write it knows.
    let now = LATER;
    for _ in 0..4 {
        if follower.tags_caught_up(Millis(now)) {
            break;
        }
        let reply = conn
            .run(&follower.plan_tag_pull(Millis(now)))
            .bulk()
            .to_vec();
        follower.apply_refresh(&reply, Millis(now)).unwrap();
    }
    assert_eq!(follower.mirror().epoch(), "id-1~1.id-1+");
    assert!(follower.tags_caught_up(Millis(now)));
    let stamp = follower.page_heard();
    for id in ["2", "3"] {
        page_write(conn, id);
        let msg = message(&mut sub);
        assert_eq!(netstring::decode(&msg).unwrap()[1], b"id-1");
        assert_eq!(
            follower.apply_announcement(&msg, Millis(0.0)),
            Ok(Announced::Applied(0)),
            "page write {id}: the next of the sequence, of the state followed"
        );
        assert!(follower.tags_caught_up(Millis(now)), "page write {id}");
    }
    // Two page writes heard, no gap (a gap counts too, and starts a new page generation).
    assert_eq!(follower.page_heard(), stamp.wrapping_add(2));
}

/// The meta hash and the log lost together, the records left: every reader loads them
/// (`no-meta`) and plans its merge of no record, to make the meta hash anew. The merges land
/// one after another, the readers refreshing between them. The first leaves a version over no
/// log (a state named `<epoch>~1+`); each later one, taken for an update over a lost log, made
/// a new state, which every reader loaded again: a load per reader per merge.
#[test]
fn merges_of_no_record_after_the_meta_hash_and_log_went_load_the_state_a_bounded_number_of_times() {
    const READERS: usize = 4;
    let mut server = start();
    let conn = &mut server.conn;
    let (writer, _) = reader_behind_writer(conn);
    let keys = writer.namespace().tag_keys();
    let mut readers: Vec<Engine> = (0..READERS).map(|_| engine()).collect();
    for r in readers.iter_mut() {
        refresh(conn, r);
    }
    let mut loads = [0usize; READERS];
    for key in [&keys.meta, &keys.log] {
        assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1));
    }
    let mut merges = Vec::new();
    for (i, r) in readers.iter_mut().enumerate() {
        let (reply, summary) = refresh(conn, r);
        assert_eq!(head_of(&reply)[0], EPOCH_WITHOUT_META_STR);
        loads[i] += usize::from(summary.full);
        let call = r
            .plan_resend(&format!("merge-{i}"))
            .unwrap()
            .expect("a merge of no record");
        merges.push(call);
    }
    for (i, call) in merges.iter().enumerate() {
        let reply = conn.run(call).bulk().to_vec();
        readers[i].ack_resend();
        readers[i].apply_update_reply(&reply).unwrap();
        for (j, r) in readers.iter_mut().enumerate() {
            loads[j] += usize::from(refresh(conn, r).1.full);
        }
    }
    for (j, r) in readers.iter_mut().enumerate() {
        merge_back(conn, r, "late");
        loads[j] += usize::from(refresh(conn, r).1.full);
        assert!(!refresh(conn, r).1.full, "reader {j}: settled");
        for tag in ["a", "b"] {
            assert_eq!(r.mirror().record(tag), writer.mirror().record(tag), "{tag}");
        }
    }
    assert!(
        loads.iter().all(|&n| n <= 3),
        "loads per reader: {loads:?} (no-meta, the state made anew, once more at most)"
    );
}

/// A writer's revalidation of `a` (version 1), the meta hash then lost alone and made anew by a
/// page write (epoch `w1`, no version), and a reader that follows the state from the log's
/// highest score with no id to check (the ids went with the meta hash).
fn reader_of_a_meta_hash_a_page_write_made_anew(
    conn: &mut Conn,
) -> (Engine, fleetcache_core::keys::TagKeys, Engine) {
    let mut writer = engine();
    update_as(conn, &mut writer, "a", 1000.0, "id-1");
    let keys = writer.namespace().tag_keys();
    assert_eq!(conn.cmd(&["DEL", &keys.meta]), Reply::Int(1));
    let entry = writer.entry_key(&fleetcache_core::Interface::Incremental, "/p");
    let call = entry_write_call_for(&entry, &keys.meta, &keys.announce, "1");
    assert_eq!(eval_with_value(conn, &call, b"v"), Reply::Int(1));
    let mut reader = engine();
    refresh(conn, &mut reader);
    assert_eq!(
        (reader.mirror().epoch(), reader.mirror().version()),
        ("w1", 1)
    );
    (writer, keys, reader)
}

/// The meta hash lost alone and made anew by a page write (an epoch, no version), then the log
/// lost: no version tells that a log is gone. Records were left without one, so the state is
/// named as a state that lost its log, and: the state hash going next is seen (a reader that
/// loaded the records gives them back; seen as nothing changed, a process started later never
/// learnt them), and the next update makes a new state (numbered from 1 again over the same
/// epoch, its version was the one a reader had followed with no id to check, and that reader
/// took itself for up to date without it).
#[test]
fn a_log_lost_under_a_meta_hash_a_page_write_made_anew_is_seen() {
    for then in ["state lost", "update"] {
        let mut server = start();
        let conn = &mut server.conn;
        let (writer, keys, mut reader) = reader_of_a_meta_hash_a_page_write_made_anew(conn);
        assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
        if then == "state lost" {
            let (reply, summary) = refresh(conn, &mut reader);
            assert!(summary.full && head_of(&reply)[0] == "w1~0.+", "{reply:?}");
            assert_eq!(conn.cmd(&["DEL", &keys.state]), Reply::Int(1));
            let (_, summary) = refresh(conn, &mut reader);
            assert!(summary.full, "the state hash lost after the log is seen");
            merge_back(conn, &mut reader, "epoch-r");
            let mut late = engine();
            refresh(conn, &mut late);
            assert_eq!(late.mirror().record("a"), writer.mirror().record("a"));
        } else {
            let mut other = engine();
            let reply = update_as(conn, &mut other, "t", 2000.0, "id-t");
            let (_, summary) = refresh(conn, &mut reader);
            assert_eq!(reader.mirror().record("t"), other.mirror().record("t"));
            assert_eq!(reader.mirror().record("a"), writer.mirror().record("a"));
            assert!(summary.full, "a new state is loaded");
            assert_eq!(netstring::decode(&reply).unwrap()[0], b"id-t");
        }
    }
}

/// The meta hash lost alone and made anew by a page write; a reader follows the state from the
/// log's highest score (version 1, no id: the ids went with the meta hash); then the log and
/// the state hash go too, and another process revalidates `b`. Numbered 1 again over the same
/// epoch, that update passed for the version the reader followed: it never learnt `b` (judging
/// entries of `b` fresh after their revalidation) nor gave back `a`. A known version with no id
/// that has one now is another update's.
#[test]
fn a_version_followed_with_no_id_that_has_one_now_is_another_updates() {
    let mut server = start();
    let conn = &mut server.conn;
    let (writer, keys, mut reader) = reader_of_a_meta_hash_a_page_write_made_anew(conn);
    for key in [&keys.log, &keys.state] {
        assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1));
    }
    let mut other = engine();
    update_as(conn, &mut other, "b", 2000.0, "id-b");
    let (_, summary) = refresh(conn, &mut reader);
    assert_eq!(reader.mirror().record("b"), other.mirror().record("b"));
    assert!(summary.full);
    merge_back(conn, &mut reader, "epoch-r");
    let mut late = engine();
    refresh(conn, &mut late);
    for (tag, knows) in [("a", &writer), ("b", &other)] {
        assert_eq!(
            late.mirror().record(tag),
            knows.mirror().record(tag),
            "{tag}"
        );
    }
    // The state made anew by the page write, followed in part after its next update: no load.
    let (_, summary) = refresh(conn, &mut reader);
    assert!(!summary.full);
}

/// As above, for a reader that follows by push: it missed the announcement of the update
/// numbered 1 again (`b`) and heard the next one (`c`, version 2) as the next of the version it
/// followed with no id; the pull that checks that version (as it checks every version the
/// mirror took an announcement as the next of) finds it has an id now, and answers in full.
/// Answered in part from version 2, the reader took itself for up to date without `b`
/// (freshness_sim `a_push_follower_past_a_version_it_followed_with_no_id_checks_it`).
#[test]
fn a_version_followed_with_no_id_then_passed_by_an_announcement_is_checked_by_the_next_pull() {
    let mut server = start();
    let conn = &mut server.conn;
    let (_, keys, mut reader) = reader_of_a_meta_hash_a_page_write_made_anew(conn);
    reader.follow_tags_by_push(1000.0).unwrap();
    let mut sub = server.connect();
    sub.cmd(&["SSUBSCRIBE", &keys.announce]);
    let conn = &mut server.conn;
    for key in [&keys.log, &keys.state] {
        assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1));
    }
    let mut other = engine();
    other.follow_tags_by_push(1000.0).unwrap();
    update_as(conn, &mut other, "b", 2000.0, "id-b");
    let _missed = message(&mut sub);
    update_as(conn, &mut other, "c", 2001.0, "id-c");
    let heard = message(&mut sub);
    assert_eq!(
        reader.apply_announcement(&heard, Millis(0.0)),
        Ok(fleetcache_core::tags::Announced::Applied(1)),
        "taken as the next of version 1"
    );
    let (_, summary) = refresh(conn, &mut reader);
    assert!(
        summary.full,
        "version 1, followed with no id, is another update's now"
    );
    assert!(other.mirror().record("b").is_some());
    assert_eq!(reader.mirror().record("b"), other.mirror().record("b"));
}

/// A load of a state whose meta hash a page write made anew (an epoch, no version: the pages
/// name no id to check), the state flushed between its pages: the next page finds no epoch
/// where the load began under one, and is rolled back, not read from the empty state as the
/// end of the load. The same for a page write's new epoch after the flush, and for the state
/// hash and log lost with an update after them, which numbers its version 1 under the same
/// epoch (a version written where the load began under none).
#[test]
fn a_page_of_a_state_flushed_since_the_load_began_is_rolled_back() {
    for (rewritten, renumbered) in [(false, false), (true, false), (false, true)] {
        let mut server = start();
        let conn = &mut server.conn;
        let mut writer = engine();
        large_state(conn, &mut writer);
        let keys = writer.namespace().tag_keys();
        let meta = keys.meta.clone();
        assert_eq!(conn.cmd(&["DEL", &meta]), Reply::Int(1));
        conn.cmd(&[
            "HSET", &meta, "epoch", "wpage", "pver", "1", "pvid", "wpage",
        ]);
        let mut reader = engine();
        let first = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        assert!(reader.apply_refresh(&first, Millis(LATER)).unwrap().full);
        assert!(reader.mirror().is_loading());
        if renumbered {
            assert_eq!(conn.cmd(&["DEL", &keys.state, &keys.log]), Reply::Int(2));
            update_as(conn, &mut writer, "late", 9000.0, "epoch-late");
            assert_eq!(
                conn.cmd(&["HGET", &meta, "epoch"]),
                Reply::Bulk(Some(b"wpage".to_vec()))
            );
        } else {
            assert_eq!(conn.cmd(&["FLUSHALL"]), Reply::Simple("OK".into()));
        }
        if rewritten {
            conn.cmd(&[
                "HSET", &meta, "epoch", "wother", "pver", "1", "pvid", "wother",
            ]);
        }
        let page = conn.run(&reader.plan_tag_refresh()).bulk().to_vec();
        assert_eq!(
            netstring::decode(&page).unwrap()[4],
            b"1",
            "rewritten {rewritten}, renumbered {renumbered}: the page is rolled back"
        );
    }
}

/// A push reader caught up with what Redis holds now (pulled until caught up), and its page
/// read of `/p` as the read machine plans it; `None` when it plans a plain `GET`.
fn caught_up_page_read(conn: &mut Conn) -> (Engine, Option<ScriptCall>) {
    use fleetcache_core::read_machine::{ReadAction, ReadInput};
    use fleetcache_core::Consumer;

    let mut reader = engine();
    reader.follow_tags_by_push(600_000.0).unwrap();
    reader.tag_channel_up();
    reader.confirm_plain_redis();
    for _ in 0..20 {
        if reader.tags_caught_up(Millis(LATER)) {
            break;
        }
        let pull = reader.plan_tag_pull(Millis(LATER));
        let reply = conn.run(&pull).bulk().to_vec();
        reader.apply_refresh(&reply, Millis(LATER)).unwrap();
        // A state that lost its meta hash is made anew by its reader (the host's drain).
        merge_back(conn, &mut reader, "merge-1");
    }
    assert!(reader.tags_caught_up(Millis(LATER)));
    let mut m = reader.read_incremental(
        "/p",
        false,
        Vec::new(),
        f64::NAN,
        Consumer::Serves,
        false,
        "0123456789abcdef".to_owned(),
        Millis(LATER),
    );
    let mut step = reader
        .read_step(&mut m, ReadInput::Start, Millis(LATER))
        .unwrap();
    for _ in 0..3 {
        step = match step.action {
            ReadAction::Refresh => reader.read_step(&mut m, ReadInput::Refreshed, Millis(LATER)),
            ReadAction::PeekTier => reader.read_step(&mut m, ReadInput::Tier(None), Millis(LATER)),
            _ => break,
        }
        .unwrap();
    }
    match step.action {
        ReadAction::PageRead { call, .. } => (reader, Some(call)),
        ReadAction::Get { .. } => (reader, None),
        other => panic!("{other:?}"),
    }
}

/// Every state a push reader can be caught up with and that nothing writes meanwhile: its
/// page read finds the page-write sequence at the write it knows (1), or page copies would
/// never serve there. States made by tag updates only (no page write yet), by page writes
/// only, a state that lost its log or its state hash under page writes, one whose meta hash a
/// page write made anew, the empty state. (Not a state that lost its meta hash alone: the
/// reader's pull names it `no-meta`, which no meta hash holds, so its page reads answer 0
/// until its next pull or page announcement after the merge makes the hash anew.)
#[test]
fn a_caught_up_readers_page_read_finds_the_write_it_knows_in_every_state_form() {
    use fleetcache_core::Interface;

    let mut server = start();
    let mut writer = engine();
    writer.announce_page_writes();
    let keys = writer.namespace().tag_keys();
    let (meta, channel) = (keys.meta.clone(), keys.announce.clone());
    let entry = writer.entry_key(&Interface::Incremental, "/p");
    let page_write = |conn: &mut Conn, id: &str| {
        let call = entry_write_call_for(&entry, &meta, &channel, id);
        assert_eq!(eval_with_value(conn, &call, b"v"), Reply::Int(1));
    };
    type Setup =
        fn(&mut Conn, &mut Engine, &dyn Fn(&mut Conn, &str), &fleetcache_core::keys::TagKeys);
    let cases: Vec<(&str, Setup)> = vec![
        ("empty", |_, _, _, _| {}),
        ("tag updates only", |c, w, _, _| {
            update_as(c, w, "a", 1000.0, "id-1");
            update_as(c, w, "b", 2000.0, "id-1");
        }),
        ("page writes only", |c, _, pw, _| {
            pw(c, "1");
            pw(c, "2");
        }),
        ("both", |c, w, pw, _| {
            update_as(c, w, "a", 1000.0, "id-1");
            pw(c, "1");
        }),
        ("log lost under page writes", |c, w, pw, k| {
            update_as(c, w, "a", 1000.0, "id-1");
            pw(c, "1");
            c.cmd(&["DEL", &k.log]);
        }),
        ("state hash lost under page writes", |c, w, pw, k| {
            update_as(c, w, "a", 1000.0, "id-1");
            pw(c, "1");
            c.cmd(&["DEL", &k.state]);
        }),
        ("log lost, then a page write", |c, w, pw, k| {
            update_as(c, w, "a", 1000.0, "id-1");
            c.cmd(&["DEL", &k.log]);
            pw(c, "1");
        }),
        ("meta hash lost, then a page write", |c, w, pw, k| {
            update_as(c, w, "a", 1000.0, "id-1");
            pw(c, "1");
            c.cmd(&["DEL", &k.meta]);
            pw(c, "2");
        }),
    ];
    for (name, setup) in cases {
        let conn = &mut server.conn;
        conn.cmd(&["FLUSHALL"]);
        let mut w = engine();
        setup(conn, &mut w, &page_write, &keys);
        let (_reader, call) = caught_up_page_read(conn);
        let Some(call) = call else {
            panic!("{name}: a caught-up push reader reads a page with a plain GET");
        };
        let Reply::Array(items) = conn.run(&call) else {
            panic!("{name}: not an array");
        };
        assert_eq!(
            items[1],
            Reply::Int(1),
            "{name}: nothing was written, yet the reader's page read finds another write \
             than the one it knows (args {:?}, meta {:?})",
            call.args,
            conn.cmd(&["HGETALL", &meta])
        );
    }
}

/// A small tag state as the three keys may hold it after any mix of writes and losses: a meta
/// hash (always with an epoch: every script that makes one sets it) with or without a version,
/// some version ids; a log of tags and scores; records, a few or enough for the hash to leave
/// the listpack encoding (HSCAN then walks buckets, some empty), or that many and most of them
/// deleted (a table above a tenth full is not shrunk: the first buckets are often all empty,
/// and an `HSCAN 0 COUNT 1` returns no field with a cursor not 0).
#[derive(Clone, Debug)]
struct RawState {
    meta: Option<(String, Option<u64>, Vec<u64>)>,
    log: Vec<(usize, u64)>,
    records: Vec<usize>,
    /// 0: no more records; 1: 600 more (past the default hash-max-listpack-entries, 512,
    /// Redis 7 and Valkey); 2: 600 more, then all but 110 deleted; 3: 600 more,
    /// then those of the first buckets (still over a tenth full: not shrunk).
    many: u8,
}

fn any_version() -> impl Strategy<Value = u64> {
    prop_oneof![
        6 => 0u64..6,
        // Past 1e14 (tostring() would print it with an exponent) up to 2^53 - 1, the last
        // whole number a Lua number holds exactly. Further no version gets (one per update):
        // past 2^53 the page reads 'ver' as written and the refresh as rounded; from 1e17 a
        // log score reads back from Redis with an exponent.
        1 => Just(123_456_789_012_345u64),
        1 => Just(9_007_199_254_740_991u64),
    ]
}

fn any_raw_state() -> impl Strategy<Value = RawState> {
    let meta = proptest::option::of((
        prop_oneof![Just("E".to_owned()), Just("wpage".to_owned())],
        proptest::option::of(any_version().prop_map(|v| v.max(1))),
        proptest::collection::vec(any_version(), 0..3),
    ));
    (
        meta,
        proptest::collection::vec((0usize..5, any_version()), 0..4),
        proptest::collection::vec(0usize..5, 0..4),
        prop_oneof![6 => Just(0u8), 1 => Just(1), 1 => Just(2), 2 => Just(3)],
    )
        .prop_map(|(meta, log, records, many)| RawState {
            meta,
            log,
            records,
            many,
        })
}

impl RawState {
    /// Writes this state over the three keys.
    fn write(&self, conn: &mut Conn, keys: &fleetcache_core::TagKeys) {
        conn.cmd(&["DEL", &keys.state, &keys.log, &keys.meta]);
        let record = "1,2,0,0,3";
        if let Some((epoch, ver, ids)) = &self.meta {
            conn.cmd(&[
                "HSET", &keys.meta, "epoch", epoch, "pver", "1", "pvid", "w1",
            ]);
            if let Some(ver) = ver {
                conn.cmd(&["HSET", &keys.meta, "ver", &ver.to_string()]);
                // The current version always has its id (the update that made it wrote it).
                conn.cmd(&["HSET", &keys.meta, &format!("v:{ver}"), "id-cur"]);
            }
            for id in ids {
                conn.cmd(&["HSET", &keys.meta, &format!("v:{id}"), &format!("id-{id}")]);
            }
        }
        for (tag, score) in &self.log {
            conn.cmd(&["ZADD", &keys.log, &score.to_string(), &format!("t{tag}")]);
        }
        for tag in &self.records {
            conn.cmd(&["HSET", &keys.state, &format!("t{tag}"), record]);
        }
        if self.many > 0 {
            for i in 0..600 {
                conn.cmd(&["HSET", &keys.state, &format!("many-{i}"), record]);
            }
        }
        if self.many == 2 {
            for i in 110..600 {
                conn.cmd(&["HDEL", &keys.state, &format!("many-{i}")]);
            }
        }
        if self.many == 3 {
            // The fields of the first buckets deleted until one HSCAN step from 0 finds none
            // (the scripts' probe for records must read the cursor too).
            for _ in 0..600 {
                let Reply::Array(r) = conn.cmd(&["HSCAN", &keys.state, "0", "COUNT", "1"]) else {
                    panic!("HSCAN");
                };
                let Reply::Array(fields) = &r[1] else {
                    panic!("HSCAN fields");
                };
                let names: Vec<String> = fields
                    .chunks(2)
                    .map(|p| String::from_utf8_lossy(p[0].bulk()).into_owned())
                    .collect();
                if names.is_empty() || names.iter().any(|n| !n.starts_with("many-")) {
                    break;
                }
                for n in names {
                    conn.cmd(&["HDEL", &keys.state, &n]);
                }
            }
        }
    }
}

/// The page script names every state as the refresh script does: a load begun under the
/// refresh's name for a state reads its pages (no name taken for another: a hole; the same
/// state never rolled back: a load that never ends), at the version and id the refresh
/// answered, and every other name rolls the page back.
#[test]
fn a_page_names_every_state_as_the_refresh_does() {
    let mut server = start();
    let cell = std::cell::RefCell::new(&mut server.conn);
    let keys = engine().namespace().tag_keys();
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|c| c.parse().ok())
        .unwrap_or(256);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(cases));
    runner
        .run(&any_raw_state(), |raw| {
            let mut conn = cell.borrow_mut();
            raw.write(&mut conn, &keys);
            let reply = conn.run(&engine().plan_tag_refresh()).bulk().to_vec();
            let head = head_of(&reply);
            let (name, ver, vid) = (&head[0], &head[1], &head[2]);
            let page = |conn: &mut Conn, args: &[&str]| {
                let call = ScriptCall {
                    script: &scripts::TAG_PAGE,
                    sha1: scripts::TAG_PAGE.sha1(),
                    keys: keys.to_vec(),
                    args: args.iter().map(|a| (*a).to_owned()).collect(),
                };
                let reply = conn.run(&call);
                netstring::decode(reply.bulk())
                    .unwrap()
                    .iter()
                    .map(|i| String::from_utf8_lossy(i).into_owned())
                    .collect::<Vec<_>>()
            };
            // Other names: every state's name these keys could have had.
            let mut others = vec![String::new(), "no-meta".to_owned()];
            let mut versions = vec![0u64, 1, 2];
            versions.extend(raw.log.iter().map(|l| l.1));
            versions.extend(raw.meta.iter().filter_map(|m| m.1));
            for epoch in ["E", "wpage"] {
                others.push(epoch.to_owned());
                for v in &versions {
                    for mark in ["~", "+"] {
                        others.push(format!("{epoch}~{v}{mark}"));
                    }
                }
            }
            for other in others.iter().chain([name]) {
                let items = page(&mut conn, &["0", "10", "0", "", other]);
                prop_assert_eq!(
                    &items[4],
                    if other == name { "0" } else { "1" },
                    "page under {:?}, refresh named {:?}: {:?}",
                    other,
                    name,
                    items
                );
            }
            // At the version and id the refresh answered: not rolled back, and read there.
            let items = page(&mut conn, &["0", "10", ver, vid, name]);
            prop_assert_eq!(&items[4], "0", "refresh {:?}: {:?}", head, items);
            prop_assert_eq!((&items[2], &items[3]), (ver, vid), "refresh {:?}", head);
            Ok(())
        })
        .unwrap();
}

/// A large state (hashtable encoded, several pages) loaded while page writes (each an
/// `HSETNX` of the meta hash's epoch) and, with `updates`, tag updates land between every two
/// pages, over a healthy state and over states that lost a key. Each kind of activity changes
/// the state's name at most once (a page write gives a lost meta hash its epoch; an update
/// over a damaged state makes it a new state): loads end, a bounded number of them, where a
/// page rule that took one of those writes for a loss at every page would load for ever.
#[test]
fn loads_end_while_page_writes_and_updates_land_between_their_pages() {
    let losses: [&[&str]; 4] = [&[], &["log"], &["meta"], &["meta", "log"]];
    for lost in losses {
        for updates in [false, true] {
            let mut server = start();
            let conn = &mut server.conn;
            let mut writer = engine();
            writer.announce_page_writes();
            let mut names = large_state(conn, &mut writer);
            let keys = writer.namespace().tag_keys();
            for key in lost {
                let key = if *key == "log" { &keys.log } else { &keys.meta };
                assert_eq!(conn.cmd(&["DEL", key]), Reply::Int(1));
            }
            let entry = writer.entry_key(&fleetcache_core::Interface::Incremental, "/p");
            let mut reader = engine();
            let (mut loads, mut calls) = (0, 0);
            while calls < 300 && (reader.mirror().is_loading() || !reader.mirror().is_synced()) {
                let call = reader.plan_tag_refresh();
                if call.script.name == "tag_page" {
                    let write = entry_write_call_for(
                        &entry,
                        &keys.meta,
                        &keys.announce,
                        &calls.to_string(),
                    );
                    assert_eq!(eval_with_value(conn, &write, b"v"), Reply::Int(1));
                    if updates {
                        let tag = format!("late-{calls}");
                        update(conn, &mut writer, &[&tag], Revalidation::Expire, 9000.0);
                        names.push(tag);
                    }
                }
                let reply = conn.run(&call).bulk().to_vec();
                let s = reader.apply_refresh(&reply, Millis(LATER)).unwrap();
                loads += usize::from(call.script.name == "tag_refresh" && s.full);
                calls += 1;
                merge_back(conn, &mut reader, &format!("merge-{calls}"));
            }
            assert!(
                reader.mirror().is_synced(),
                "lost {lost:?}, updates {updates}: still loading after {calls} calls, {loads} loads"
            );
            assert!(
                loads <= 3,
                "lost {lost:?}, updates {updates}: {loads} loads in {calls} calls"
            );
            if updates || lost.is_empty() {
                assert_records_as_writer(&reader, &writer, names.iter());
            }
            eprintln!("lost {lost:?}, updates {updates}: {loads} loads, {calls} calls");
        }
    }
}

/// A state that lost its log was named after the epoch and the version it came from
/// (`<epoch>~<ver>+`), not that version's id. A reader loaded `id-1~2+`; a failover went back
/// to version 1, another update took number 2, and the log went again: the state was named
/// `id-1~2+` again, the reader was answered in part with nothing, and stayed synced without the
/// later revalidation of `a`. Found by
/// `any_hscan_answers_a_caught_up_mirror_knows_its_last_pull_and_what_it_heard_since` at
/// 1,000,000 cases (review 34). The name carries the version's id too
/// (`<epoch>~<ver>.<id>+`): another update's number 2 is another name.
#[test]
fn a_damaged_state_named_again_after_a_failover_reused_its_version_is_loaded_again() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut writer = engine();
    update_as(conn, &mut writer, "a", 1000.0, "id-1");
    let keys = writer.namespace().tag_keys();
    let before = snapshot(conn, &writer);
    update_as(conn, &mut writer, "a", 3000.0, "id-2");
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let mut reader = engine();
    let (reply, _) = refresh(conn, &mut reader);
    assert_eq!(head_of(&reply)[0], "id-1~2.id-2+");
    restore(conn, &before);
    let mut other = engine();
    update_as(conn, &mut other, "a", 7000.0, "id-3");
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let (reply, summary) = refresh(conn, &mut reader);
    assert_eq!(head_of(&reply)[0], "id-1~2.id-3+", "another name");
    assert!(
        summary.full,
        "another state under the same name: {:?}",
        head_of(&reply)
    );
    assert_eq!(reader.mirror().record("a"), other.mirror().record("a"));
}

/// The records of the state that have no log score, as an administrator reads them
/// (`HGETALL`, `ZSCORE`: not in the scripts' ACL).
fn orphans(conn: &mut Conn, keys: &fleetcache_core::TagKeys) -> Vec<String> {
    let Reply::Array(items) = conn.cmd(&["HGETALL", &keys.state]) else {
        panic!("not a hash");
    };
    let tags: Vec<String> = items
        .chunks(2)
        .map(|p| String::from_utf8(p[0].bulk().to_vec()).unwrap())
        .collect();
    tags.into_iter()
        .filter(|t| conn.cmd(&["ZSCORE", &keys.log, t]) == Reply::Bulk(None))
        .collect()
}

/// The tags of an announcement (`a`, epoch, ver, vid, prev, then tag, record, ...) with
/// their records, and its version.
fn announced(msg: &[u8]) -> (String, Vec<(String, String)>) {
    let items = netstring::decode(msg).unwrap();
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).unwrap();
    let pairs = items[5..]
        .chunks(2)
        .map(|p| (text(p[0]), text(p[1])))
        .collect();
    (text(items[2]), pairs)
}

/// The log lost alone (an `allkeys-*` eviction, a `DEL` by hand) left records with no log
/// score, which pruning (it walks the log) never reached: each such loss stranded them until
/// their tag was revalidated again, and the state grew without bound under repeated losses.
/// The update that makes the keys a new state starts a sweep of the state hash, one
/// `HSCAN ... COUNT 64` step per update: within one pass (here 700 records, about 700 / 64
/// updates) every record is logged again or, past the pruning age, deleted; a young one is
/// logged at the update's version and announced with it (an announcement is what a refresh
/// from the version before returns).
#[test]
fn records_a_lost_log_left_are_logged_again_or_deleted_within_one_pass_of_updates() {
    let mut server = start();
    let mut sub = server.connect();
    let mut e = Engine::new(Config {
        prefix: "t".into(),
        max_ttl_seconds: 1.0,
        tag_prune_after_ms: Some(1000.0),
        ..Config::default()
    })
    .unwrap();
    e.follow_tags_by_push(1000.0).unwrap();
    let keys = e.namespace().tag_keys();
    sub.cmd(&["SSUBSCRIBE", &keys.announce]);
    let conn = &mut server.conn;
    // Past the listpack encoding (512 fields): HSCAN walks buckets, a page per call.
    let old = names_from("old", 0, 400);
    let young = names_from("young", 0, 300);
    write_all(conn, &mut e, &old, 1000.0);
    write_all(conn, &mut e, &young, 1800.0);
    message(&mut sub);
    message(&mut sub);
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    assert_eq!(orphans(conn, &keys).len(), 700);
    // At 2500 the old ones (1000 + 1000) are past the pruning age, the young (1800) are not.
    let bound = 700usize.div_ceil(64) + 2;
    let mut heard = std::collections::HashSet::new();
    let mut updates = 0;
    while updates < bound {
        let tag = format!("c-{updates}");
        update(conn, &mut e, &[&tag], Revalidation::Expire, 2500.0);
        updates += 1;
        let (ver, pairs) = announced(&message(&mut sub));
        // Exactly what a refresh from ver - 1 returns: the tags logged at ver, as they are.
        let Reply::Array(logged) = conn.cmd(&["ZRANGEBYSCORE", &keys.log, &ver, &ver]) else {
            panic!("not a list");
        };
        let mut logged: Vec<(String, String)> = logged
            .iter()
            .map(|t| {
                let t = String::from_utf8(t.bulk().to_vec()).unwrap();
                let r = String::from_utf8(conn.cmd(&["HGET", &keys.state, &t]).bulk().to_vec());
                (t, r.unwrap())
            })
            .collect();
        let mut got = pairs.clone();
        logged.sort();
        got.sort();
        assert_eq!(got, logged, "update {updates}: the announcement");
        heard.extend(pairs.into_iter().map(|(t, _)| t));
        if conn.cmd(&["HEXISTS", &keys.meta, "sweep"]) == Reply::Int(0) {
            break;
        }
    }
    eprintln!("swept in {updates} updates");
    assert_eq!(
        conn.cmd(&["HEXISTS", &keys.meta, "sweep"]),
        Reply::Int(0),
        "the sweep ended within {bound} updates"
    );
    assert_eq!(orphans(conn, &keys), Vec::<String>::new());
    for tag in &old {
        assert_eq!(
            conn.cmd(&["HEXISTS", &keys.state, tag]),
            Reply::Int(0),
            "{tag}"
        );
    }
    for tag in &young {
        assert_eq!(
            conn.cmd(&["HEXISTS", &keys.state, tag]),
            Reply::Int(1),
            "{tag}"
        );
        assert!(heard.contains(tag), "{tag} was logged and announced");
    }
    // Pruning bounds them again: later, past their age, they go.
    for i in 0..20 {
        update(
            conn,
            &mut e,
            &[&format!("d-{i}")],
            Revalidation::Expire,
            9000.0,
        );
    }
    for tag in &young {
        assert_eq!(
            conn.cmd(&["HEXISTS", &keys.state, tag]),
            Reply::Int(0),
            "{tag}"
        );
    }
}

/// A sweep that goes on on another server (a failover, a restart with persistence: another
/// hash seed, so an HSCAN cursor of the first would skip records there) starts over, and
/// every record left without a log score is logged again.
#[test]
fn a_sweep_continued_on_another_server_logs_every_record() {
    let mut a = start();
    let mut b = start();
    let (writer, tags) = three_thousand_tags(&mut a.conn);
    let keys = writer.namespace().tag_keys();
    assert_eq!(a.conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let mut e = engine();
    for i in 0..5 {
        update_as(&mut a.conn, &mut e, &format!("c-{i}"), 3000.0, "epoch-c");
    }
    assert_eq!(a.conn.cmd(&["HEXISTS", &keys.meta, "sweep"]), Reply::Int(1));
    restore(&mut b.conn, &snapshot(&mut a.conn, &writer));
    drop(a);
    let bound = 3005usize.div_ceil(64) + 2;
    let mut updates = 0;
    while updates < bound && b.conn.cmd(&["HEXISTS", &keys.meta, "sweep"]) == Reply::Int(1) {
        update_as(
            &mut b.conn,
            &mut e,
            &format!("d-{updates}"),
            3000.0,
            "epoch-d",
        );
        updates += 1;
    }
    eprintln!("swept on the second server in {updates} updates");
    assert_eq!(b.conn.cmd(&["HEXISTS", &keys.meta, "sweep"]), Reply::Int(0));
    assert_eq!(orphans(&mut b.conn, &keys), Vec::<String>::new());
    for tag in &tags {
        assert_eq!(
            b.conn.cmd(&["HEXISTS", &keys.state, tag]),
            Reply::Int(1),
            "{tag}"
        );
    }
}

/// The sweep's steps call only commands of the documented ACL (docs/operating.md, "Access
/// control": no `ZSCORE`, `HLEN` or `ZCOUNT`): run as that user, with and without `INFO` (a
/// refused `INFO` names no server in the cursor, and the pass goes on on the one server).
#[test]
fn a_sweep_runs_under_the_documented_acl_with_and_without_info() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/operating.md"
    ))
    .unwrap();
    let line = doc
        .lines()
        .find(|l| l.starts_with("ACL SETUSER fleetcache on >CHANGE-ME "))
        .expect("docs/operating.md has the ACL SETUSER line");
    for refuse_info in [false, true] {
        let mut server = start();
        let mut admin = server.connect();
        let mut rules: Vec<&str> = line.split_whitespace().collect();
        if refuse_info {
            rules.push("-info");
        }
        assert_eq!(admin.cmd(&rules), Reply::Simple("OK".into()));
        let conn = &mut server.conn;
        assert_eq!(
            conn.cmd(&["AUTH", "fleetcache", "CHANGE-ME"]),
            Reply::Simple("OK".into())
        );
        let mut e = Engine::new(Config {
            max_ttl_seconds: 1.0,
            tag_prune_after_ms: Some(1000.0),
            ..Config::default()
        })
        .unwrap();
        e.follow_tags_by_push(1000.0).unwrap();
        let keys = e.namespace().tag_keys();
        write_all(conn, &mut e, &names_from("old", 0, 300), 1000.0);
        write_all(conn, &mut e, &names_from("young", 0, 300), 1800.0);
        assert_eq!(admin.cmd(&["DEL", &keys.log]), Reply::Int(1));
        let bound = 600usize.div_ceil(64) + 2;
        let mut updates = 0;
        while updates < bound {
            // A refused command fails the script: `update` takes an error for no bulk reply.
            update(
                conn,
                &mut e,
                &[&format!("c-{updates}")],
                Revalidation::Expire,
                2500.0,
            );
            updates += 1;
            if admin.cmd(&["HEXISTS", &keys.meta, "sweep"]) == Reply::Int(0) {
                break;
            }
        }
        assert_eq!(
            admin.cmd(&["HEXISTS", &keys.meta, "sweep"]),
            Reply::Int(0),
            "INFO refused: {refuse_info}"
        );
        assert_eq!(orphans(&mut admin, &keys), Vec::<String>::new());
        assert_eq!(
            admin.cmd(&["HLEN", &keys.state]),
            Reply::Int(300 + updates as i64),
            "INFO refused: {refuse_info}: the young and the updates' own are left"
        );
    }
}

/// The log lost again and again, more often than one pass of the sweep takes (every 20
/// updates; a pass over 6,000 records, half of them deleted as it goes, takes about 80): a sweep that started over at every loss walked the
/// first buckets again and again, their young records (logged again each time) filling its
/// pages, and the old records of the other buckets stayed for as long as the losses went on. A
/// loss during a pass lets it run to its end and asks for one more: every record is reached
/// within two passes of a loss, and the old ones go.
#[test]
fn a_log_lost_again_and_again_during_a_sweep_still_has_every_record_reached() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = Engine::new(Config {
        prefix: "t".into(),
        max_ttl_seconds: 1.0,
        tag_prune_after_ms: Some(1000.0),
        ..Config::default()
    })
    .unwrap();
    let keys = e.namespace().tag_keys();
    let old = names_from("old", 0, 3000);
    for chunk in old.chunks(1000) {
        write_all(conn, &mut e, chunk, 1000.0);
    }
    for chunk in names_from("young", 0, 3000).chunks(1000) {
        write_all(conn, &mut e, chunk, 1800.0);
    }
    for i in 0..110 {
        if i % 20 == 0 {
            assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1), "update {i}");
        }
        update(
            conn,
            &mut e,
            &[&format!("c-{i}")],
            Revalidation::Expire,
            2500.0,
        );
    }
    let left = old
        .iter()
        .filter(|t| conn.cmd(&["HEXISTS", &keys.state, t]) == Reply::Int(1))
        .count();
    assert_eq!(
        left, 0,
        "records past the pruning age left after 110 updates"
    );
    // The losses over, the pass under way at the last one ends, then one more: no record is
    // left without a log score.
    let bound = 2 * (3150usize.div_ceil(64) + 2);
    let mut updates = 0;
    while updates < bound && conn.cmd(&["HEXISTS", &keys.meta, "sweep"]) == Reply::Int(1) {
        update(
            conn,
            &mut e,
            &[&format!("d-{updates}")],
            Revalidation::Expire,
            2500.0,
        );
        updates += 1;
    }
    assert_eq!(conn.cmd(&["HEXISTS", &keys.meta, "sweep"]), Reply::Int(0));
    assert_eq!(
        orphans(conn, &keys),
        Vec::<String>::new(),
        "after {updates} updates"
    );
    eprintln!("the last passes took {updates} updates");
}

/// A merge that makes the keys a new state (here a reader's merge of one record after the log
/// went) starts the sweep as an update does: the next update logs every record left, and a
/// loss during a sweep marks the pass under way for one more (`+`) in the merge too.
#[test]
fn a_merge_that_makes_a_new_state_starts_the_sweep() {
    let mut server = start();
    let conn = &mut server.conn;
    let mut e = engine();
    let keys = e.namespace().tag_keys();
    write_all(conn, &mut e, &names_from("t", 0, 20), 1000.0);
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let merge = |conn: &mut Conn, candidate: &str| {
        let call = ScriptCall {
            script: &fleetcache_core::scripts::TAG_MERGE,
            sha1: fleetcache_core::scripts::TAG_MERGE.sha1(),
            keys: vec![keys.state.clone(), keys.log.clone(), keys.meta.clone()],
            args: [candidate, "t-0", "0,1000,0,0,1000"]
                .map(str::to_owned)
                .to_vec(),
        };
        conn.run(&call).bulk().to_vec()
    };
    merge(conn, "epoch-m");
    assert_eq!(
        conn.cmd(&["HGET", &keys.meta, "sweep"]),
        Reply::Bulk(Some(b"0".to_vec()))
    );
    assert_eq!(orphans(conn, &keys).len(), 19);
    // A sweep under way (a cursor), the log lost again: the merge marks it.
    conn.cmd(&["HSET", &keys.meta, "sweep", ":12"]);
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    merge(conn, "epoch-n");
    assert_eq!(
        conn.cmd(&["HGET", &keys.meta, "sweep"]),
        Reply::Bulk(Some(b":12+".to_vec()))
    );
    conn.cmd(&["HSET", &keys.meta, "sweep", "0"]);
    update_as(conn, &mut e, "c", 3000.0, "epoch-c");
    assert_eq!(conn.cmd(&["HEXISTS", &keys.meta, "sweep"]), Reply::Int(0));
    assert_eq!(orphans(conn, &keys), Vec::<String>::new());
}

/// The state's version, as its meta hash holds it.
fn state_ver(conn: &mut Conn, meta: &str) -> u64 {
    match conn.cmd(&["HGET", meta, "ver"]) {
        Reply::Bulk(Some(v)) => String::from_utf8(v).unwrap().parse().unwrap(),
        other => panic!("no version: {other:?}"),
    }
}

/// The follower pulls until it holds the state's version.
fn pull_to_the_top(conn: &mut Conn, follower: &mut Engine, meta: &str) {
    for _ in 0..100 {
        refresh(conn, follower);
        load_to_the_end(conn, follower);
        if follower.mirror().version() == state_ver(conn, meta) {
            return;
        }
    }
    panic!("the follower never reached the state's version");
}

/// A follower by push that pulled the state takes every announcement that comes next as its
/// next version (the id of the version it follows is the one it knows), whichever way it got
/// there: a paged load with an update between its pages, its own updates (reply first), a
/// merge (not announced: a gap, then the pull), the meta hash lost alone (a new epoch, then
/// the sweep's announcements) and over 1,024 versions (their ids pruned). Review of 952f9b5:
/// an id that differed on any such path would have push degrade to a pull per announcement.
#[test]
fn a_push_follower_applies_every_next_announcement_across_ordinary_paths() {
    use fleetcache_core::tags::Announced;
    let mut server = start();
    let keys = engine().namespace().tag_keys();
    let meta = keys.meta.clone();
    let mut sub = server.connect();
    sub.cmd(&["SSUBSCRIBE", &keys.announce]);
    let conn = &mut server.conn;
    // Writes nobody hears: an engine that does not follow by push names no channel.
    let mut quiet = engine();
    large_state(conn, &mut quiet);
    let mut writer = engine();
    writer.follow_tags_by_push(1000.0).unwrap();
    let mut follower = engine();
    follower.follow_tags_by_push(1000.0).unwrap();
    let mut now = 10_000.0;
    let mut heard = |conn: &mut Conn, sub: &mut Conn, e: &mut Engine, f: Option<&mut Engine>| {
        now += 1.0;
        // A fresh id per update, as the host draws one: equal ids would check nothing.
        let reply = update_as(conn, e, "t", now, &format!("id{now}"));
        let f = match f {
            Some(f) => f,
            None => {
                e.apply_update_reply(&reply).unwrap();
                e
            }
        };
        f.apply_announcement(&message(sub), Millis(now))
    };
    let applied = |r: Result<Announced, _>, what: &str| {
        assert!(matches!(r, Ok(Announced::Applied(_))), "{what}: {r:?}");
    };

    let first = conn.run(&follower.plan_tag_refresh()).bulk().to_vec();
    assert!(follower.apply_refresh(&first, Millis(LATER)).unwrap().full);
    assert!(follower.mirror().is_loading());
    update(conn, &mut quiet, &["between"], Revalidation::Expire, 9000.0);
    pull_to_the_top(conn, &mut follower, &meta);
    applied(
        heard(conn, &mut sub, &mut writer, Some(&mut follower)),
        "after a paged load",
    );

    applied(heard(conn, &mut sub, &mut follower, None), "its own update");
    applied(
        heard(conn, &mut sub, &mut writer, Some(&mut follower)),
        "after its own",
    );

    let merge = ScriptCall {
        script: &fleetcache_core::scripts::TAG_MERGE,
        sha1: fleetcache_core::scripts::TAG_MERGE.sha1(),
        keys: vec![keys.state.clone(), keys.log.clone(), keys.meta.clone()],
        args: fleetcache_core::scripts::tag_merge_args(
            "merged",
            &[("m".to_owned(), TagRecord::default())],
        ),
    };
    conn.run(&merge);
    pull_to_the_top(conn, &mut follower, &meta);
    applied(
        heard(conn, &mut sub, &mut writer, Some(&mut follower)),
        "after a merge",
    );

    assert_eq!(conn.cmd(&["DEL", &meta]), Reply::Int(1));
    let lost = heard(conn, &mut sub, &mut writer, Some(&mut follower));
    assert_eq!(lost, Ok(Announced::Gap), "a new epoch");
    pull_to_the_top(conn, &mut follower, &meta);
    applied(
        heard(conn, &mut sub, &mut writer, Some(&mut follower)),
        "after the meta hash lost alone",
    );
    // The log lost: a state made anew whose records the sweep logs and announces, 64 a step.
    assert_eq!(conn.cmd(&["DEL", &keys.log]), Reply::Int(1));
    let lost = heard(conn, &mut sub, &mut writer, Some(&mut follower));
    assert_eq!(lost, Ok(Announced::Gap), "a new epoch");
    pull_to_the_top(conn, &mut follower, &meta);
    let mut swept = 0;
    for i in 0..50 {
        let r = heard(conn, &mut sub, &mut writer, Some(&mut follower));
        applied(r.clone(), &format!("sweep step {i}"));
        if let Ok(Announced::Applied(n)) = r {
            swept += n - 1;
        }
    }
    // Less the step of the update that made the state anew (a gap: not counted).
    assert!(
        swept > 2400,
        "the sweep announced the records left unlogged: {swept}"
    );
    for i in 0..1100 {
        if i % 500 == 499 {
            pull_to_the_top(conn, &mut follower, &meta);
        }
        applied(
            heard(conn, &mut sub, &mut writer, Some(&mut follower)),
            &format!("version {i} past the meta loss"),
        );
    }
}
