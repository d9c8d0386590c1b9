//! rcc writes dependency files for jobs compiled from shipped files; they must be gcc's,
//! byte for byte. Random header names (spaces, `#`, `$`, backslashes, lengths around the
//! line limit), random targets and `-MP`: gcc writes a rule, rcc reads its prerequisites
//! and writes it again, and the two must be the same text.

use crate::util::*;
use rcc::rules::depfile;
use std::process::Command;

#[test]
fn rcc_writes_what_gcc_writes() {
    let mut seed: u64 = 0x5eed_1234_abcd_0001;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for trial in 0..100 {
        let t = TempDir::new("dep");
        let mut src = String::new();
        for i in 0..(1 + next(25)) {
            let len = 1 + next(45) as usize;
            let mut name: String = (0..len)
                .map(|_| match next(30) {
                    0 => ' ',
                    1 => '#',
                    2 => '$',
                    3 => '\\',
                    k => (b'a' + (k % 26) as u8) as char,
                })
                .collect();
            // Names gcc can take in an #include: no trailing backslash, no quote.
            name = format!("{}{i}.h", name.trim_end_matches('\\'));
            std::fs::write(t.join(&name), "").unwrap();
            src.push_str(&format!("#include \"{name}\"\n"));
        }
        std::fs::write(t.join("t.c"), &src).unwrap();
        let mut args: Vec<String> = vec!["-M".into()];
        let (mut mt, mut mq) = (Vec::new(), Vec::new());
        for _ in 0..(1 + next(3)) {
            let name = format!("{}{}.o", "o".repeat(1 + next(60) as usize), next(9));
            if next(2) == 0 {
                args.extend(["-MT".into(), name.clone()]);
                mt.push(name);
            } else {
                let name = format!("q ${name}");
                args.extend(["-MQ".into(), name.clone()]);
                mq.push(name);
            }
        }
        let targets = depfile::targets(&mt, &mq);
        let phony = next(2) == 0;
        if phony {
            args.push("-MP".into());
        }
        let out = Command::new("gcc")
            .current_dir(t.path())
            .args(&args)
            .arg("t.c")
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", s(&out.stderr));
        let gccs = s(&out.stdout);
        let deps = depfile::prerequisites(&gccs, &targets.join(" ")).unwrap_or_else(|| {
            panic!(
                "trial {trial}: cannot read {:?} ({args:?}) in\n{gccs}",
                targets.join(" ")
            )
        });
        assert_eq!(
            depfile::write(&targets, &deps, phony),
            gccs,
            "trial {trial} with {args:?}"
        );
    }
}
