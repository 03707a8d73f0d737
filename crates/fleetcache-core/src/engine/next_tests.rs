//! The engine with the running Next release: tests of what `next.rs` changes in the engine.

use crate::config::Config;
use crate::engine::Engine;
use crate::keys::Interface;
use crate::next::NextRelease;

#[test]
fn an_engine_with_durable_entries_keys_use_cache_by_release() {
    let engine = |durable| {
        Engine::new(Config {
            prefix: "fc".into(),
            deployment: "dpl1".into(),
            next_release: Some(NextRelease::new(16, 4, 6, false)),
            durable_use_cache: durable,
            ..Config::default()
        })
        .unwrap()
    };
    let uc = Interface::UseCache("default");
    assert!(engine(true)
        .entry_key(&uc, "k")
        .starts_with("fc:next-16.4.6:uc-default:"));
    assert!(engine(true)
        .entry_key(&Interface::Incremental, "k")
        .starts_with("fc:dpl1:inc:"));
    assert!(engine(false)
        .entry_key(&uc, "k")
        .starts_with("fc:dpl1:uc-default:"));
}
