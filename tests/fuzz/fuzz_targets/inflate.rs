//! Compressed bodies from a peer: inflating never panics and never passes its limit (no zip
//! bombs); what deflates inflates back whole.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rcc::wire::compress;

fuzz_target!(|data: &[u8]| {
    const LIMIT: usize = 256 << 10;
    if let Ok(out) = compress::inflate(data, LIMIT) {
        assert!(out.len() <= LIMIT);
    }
    let level = data.first().map_or(1, |b| b % 10);
    let packed = compress::deflate(data, level);
    assert_eq!(compress::inflate(&packed, data.len()).unwrap(), data);
});
