//! Host lists as users type them (RCC_HOSTS, DISTCC_HOSTS, files): parsing never panics, and
//! a list that parses reads the same from its own tokens.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rcc::rules::hosts;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(list) = hosts::parse(text, "fuzz") {
        for h in &list.hosts {
            let _ = h.key();
            let _ = h.addr_string();
            let again = hosts::parse(&h.token, "fuzz").expect("a token that parsed parses alone");
            assert_eq!(again.hosts.len(), 1, "{:?}", h.token);
            assert_eq!(again.hosts[0].key(), h.key());
        }
    }
});
