//! Arguments straight from the wire: the box's parser never panics; what it lets through
//! comes out as whole options only (each starts with `-`, none with `@`, none of the options
//! that read, write or run something in any spelling); and parsing what it wrote gives the
//! same options again, so the canonical form is a fixed point.
#![no_main]
use libfuzzer_sys::fuzz_target;
use rcc::rules::box_args::BoxArgs;

const NEVER: &[&str] = &[
    "-fplugin", "-specs", "--", "-wrapper", "-B", "@", "-o", "-I", "-i", "-x", "-M", "-E",
    "-fdump", "-fprofile", "-save-temps", "-dump", "-aux-info", "-Wp,", "-Wl,", "-X", "-v",
];

fuzz_target!(|data: &[u8]| {
    let args: Vec<Vec<u8>> = data.split(|b| *b == 0).take(256).map(|a| a.to_vec()).collect();
    let Ok(parsed) = BoxArgs::parse(&args) else {
        return;
    };
    let out = parsed.argv(None);
    for a in &out {
        assert!(a.starts_with('-') && a.len() > 1, "{a:?} let through in {out:?}");
        // `--param=` is the one double-dash spelling a box writes.
        let param = a.starts_with("--param=");
        for bad in NEVER {
            assert!(param || !a.starts_with(bad), "{bad} let through in {out:?}");
        }
        assert!(!a.contains(['\0', '\n', '\r']), "{a:?}");
    }
    let again: Vec<Vec<u8>> = out.iter().map(|a| a.as_bytes().to_vec()).collect();
    assert_eq!(BoxArgs::parse(&again).as_ref(), Ok(&parsed), "{out:?}");
});
