//! A hostile box answering the master (second review): a proxy in front of a real rccd
//! passes every frame as it is, except the Done of a shipped job, whose dependency file it
//! rewrites. The master must not write into the build's dependency file anything the job did
//! not read: the prerequisites the box names are taken as they come, and `;` in the
//! prerequisite part of a make rule starts a recipe, so a box can make the master's `make`
//! run a shell command the next time the object is out of date.

use crate::util::*;

use rcc::wire::protocol::{self, Limits, Message};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::thread;

/// A proxy at the returned address to `upstream`, rewriting each Done with `edit`.
fn hostile_proxy(upstream: String, edit: fn(&mut protocol::Done)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap().to_string();
    thread::spawn(move || {
        for c in l.incoming().flatten() {
            let up = upstream.clone();
            thread::spawn(move || {
                let Ok(u) = TcpStream::connect(&up) else {
                    return;
                };
                let (mut c_in, mut u_out) = (c.try_clone().unwrap(), u.try_clone().unwrap());
                // Master to box: as it is.
                thread::spawn(move || {
                    let _ = std::io::copy(&mut c_in, &mut u_out);
                    let _ = u_out.shutdown(std::net::Shutdown::Write);
                });
                // Box to master: frame by frame.
                let (mut u_in, mut c_out) = (u, c);
                let mut buf = Vec::new();
                let mut chunk = [0u8; 65536];
                loop {
                    while let Ok(Some((m, used))) = protocol::decode(&buf, &Limits::default()) {
                        let frame: Vec<u8> = buf.drain(..used).collect();
                        let out = match m {
                            Message::Done(mut d) => {
                                edit(&mut d);
                                protocol::encode(&Message::Done(d), None)
                            }
                            _ => frame,
                        };
                        if c_out.write_all(&out).is_err() {
                            return;
                        }
                    }
                    match u_in.read(&mut chunk) {
                        Ok(0) | Err(_) => {
                            let _ = c_out.shutdown(std::net::Shutdown::Write);
                            return;
                        }
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    addr
}

/// Appends a prerequisite to the first rule of the box's dependency file: `;` and a recipe
/// (`$$` is make's `$`, and the shell's `${IFS}` a blank that needs none in the name).
fn inject_recipe(d: &mut protocol::Done) {
    for (role, data) in d.outputs.iter_mut() {
        if role == "d" {
            let text = String::from_utf8_lossy(data).replace(" \\\n ", " ");
            let first = text.lines().next().unwrap_or("").to_string();
            *data = format!("{first} ;touch$${{IFS}}PWNED_BY_BOX\n").into_bytes();
        }
    }
}

#[test]
fn a_box_cannot_put_a_recipe_into_the_masters_dependency_file() {
    let d = Daemon::start(2, &[]);
    let proxy = hostile_proxy(d.addr(), inject_recipe);
    let t = TempDir::new("hostile-box");
    t.write("a.c", "int a(void) { return 1; }\n");
    t.write("Makefile", "a.o: a.c\n\tgcc -c a.c -o a.o\n-include a.d\n");
    let out = ok(rcc(t.path(), &t.join(".rcc"), &format!("{proxy}/2"))
        .env("RCC_VERBOSE", "1")
        .args(["gcc", "-MMD", "-c", "a.c", "-o", "a.o"]));
    let dep = s(&read(t.join("a.d")));
    eprintln!("rcc said: {}\na.d: {dep}", s(&out.stderr));
    assert!(
        d.counter("sources") >= 1,
        "the job did not ship: {}",
        s(&out.stderr)
    );
    // The object is out of date: make runs a.o's recipe, which must be the Makefile's.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    t.write("a.c", "int a(void) { return 2; }\n");
    let made = run(std::process::Command::new("make").current_dir(t.path()));
    assert!(
        !t.join("PWNED_BY_BOX").exists() && !dep.contains(';'),
        "the box's reply ran a command through make on the master:\na.d: {dep}\nmake: {}{}",
        s(&made.stdout),
        s(&made.stderr)
    );
}
