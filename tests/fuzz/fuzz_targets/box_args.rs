//! Arguments straight from the wire: the box's checker never panics, and what it lets
//! through never names a plugin, specs, another program, a response file or an output
//! outside the job dir.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let args: Vec<Vec<u8>> = data.split(|b| *b == 0).take(256).map(|a| a.to_vec()).collect();
    if let Ok(ok) = rcc::box_rules::check_args(&args) {
        for a in &ok {
            for bad in ["-fplugin", "-specs", "--specs", "-wrapper", "-B", "@", "--sysroot", "-o"] {
                assert!(!a.starts_with(bad), "{bad} let through in {ok:?}");
            }
        }
    }
});
