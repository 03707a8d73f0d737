//! Runs the tag scripts on a real `redis-server` and checks they agree with the Rust rules.
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
    netstring, Config, Engine, Millis, Revalidation, ScriptCall, TagRecord, TAG_REFRESH,
};
use proptest::prelude::*;

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

/// Starts a server. Never `None`: a missing binary fails the test (the `Option` keeps the
/// tests' `let Some(..) = start() else` form).
fn start() -> Option<Server> {
    let chosen = std::env::var("REDIS_SERVER").ok().filter(|b| !b.is_empty());
    let bin = chosen.as_deref().unwrap_or("redis-server");
    if let Err(e) = Command::new(bin)
        .arg("--version")
        .stdout(Stdio::null())
        .status()
    {
        panic!("cannot run {bin} ({e}): the Lua script tests need a real server; install redis-server (make setup) or set REDIS_SERVER");
    }
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(bin)
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
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(20)),
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
    let mut server = Server { child, conn };
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
    Some(server)
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

fn refresh(conn: &mut Conn, e: &mut Engine) -> (Vec<u8>, fleetcache_core::RefreshSummary) {
    let reply = conn.run(&e.plan_tag_refresh()).bulk().to_vec();
    let summary = e.apply_refresh(&reply).unwrap();
    (reply, summary)
}

fn tags_in(reply: &[u8]) -> Vec<String> {
    let items = netstring::decode(reply).unwrap();
    items[3..]
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
    let Some(mut server) = start() else { return };
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
                prop_assert_eq!(summary.version, updates.len() as u64);
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
    let Some(mut server) = start() else { return };
    let conn = &mut server.conn;
    let mut writer = engine();
    let mut reader = engine();

    // Nothing stored yet: epoch "" and version 0, no tags, not full.
    let (reply, s) = refresh(conn, &mut reader);
    assert_eq!(reply, b"0:,1:0,1:0,");
    assert!(!s.full);

    update(conn, &mut writer, &["a", "b"], Revalidation::Expire, 1000.0);
    let (reply, s) = refresh(conn, &mut reader);
    assert!(s.full);
    assert_eq!(s.version, 1);
    let mut tags = tags_in(&reply);
    tags.sort();
    assert_eq!(tags, ["a", "b"]);

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

    // The update reply: epoch, version, 0. It moves the writer's version only when contiguous.
    let mut fresh = engine();
    refresh(conn, &mut fresh);
    let reply = update(conn, &mut fresh, &["d"], Revalidation::Expire, 4000.0);
    assert_eq!(reply, b"7:epoch-1,1:4,1:0,");
    assert_eq!(fresh.apply_update_reply(&reply).unwrap().version, 4);
    update(conn, &mut writer, &["e"], Revalidation::Expire, 5000.0);
    let reply = update(conn, &mut fresh, &["f"], Revalidation::Expire, 6000.0);
    assert_eq!(fresh.apply_update_reply(&reply).unwrap().version, 4);
    let (reply, _) = refresh(conn, &mut fresh);
    let mut tags = tags_in(&reply);
    tags.sort();
    assert_eq!(tags, ["e", "f"]);

    // A reader that claims a version beyond the state's gets everything.
    let mut ahead = engine();
    let (reply, _) = refresh(conn, &mut ahead);
    let mut items = netstring::decode(&reply).unwrap();
    items[1] = b"99";
    let fake = netstring::encode(&items);
    ahead.apply_refresh(&fake).unwrap();
    let (_, s) = refresh(conn, &mut ahead);
    assert!(s.full);
    assert_eq!(s.version, 6);

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
    assert!(reader.mirror().record("a").is_none());
    assert!(reader.mirror().record("z").is_some());
}

#[test]
fn pruning_drops_old_tags_and_stops_at_the_first_young_one() {
    let Some(mut server) = start() else { return };
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

#[test]
fn scripts_reject_bad_arguments_and_precision_survives() {
    let Some(mut server) = start() else { return };
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
fn boundaries_agree_with_rust() {
    let Some(mut server) = start() else { return };
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

/// Next sends one request's revalidations as one call with all their tags, and an entry may
/// carry thousands: the update script takes them all in one call (issue 13, item 2), with
/// tags as long as the core accepts, and a refresh brings every one back.
#[test]
fn one_update_with_thousands_of_tags() {
    let Some(mut server) = start() else { return };
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
    let (_, summary) = refresh(conn, &mut other);
    assert_eq!(summary.changed, tags.len());
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
