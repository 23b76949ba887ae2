//! `FsLoader` reads only regular files of bounded size, never blocking: FIFOs, devices, sockets
//! and directories are errors naming the file (and the `%include` site).

use std::path::Path;
use std::time::{Duration, Instant};

use kickstart::loader::{MAX_FILE_BYTES, read_regular_file};
use kickstart::{FsLoader, Loader, Options, Version, parse_path};

fn mkfifo(p: &Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .expect("run mkfifo");
    assert!(st.success());
}

fn loader(dir: &Path) -> FsLoader {
    FsLoader {
        cwd: Some(dir.to_path_buf()),
    }
}

#[test]
fn special_files_are_refused_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    mkfifo(&d.path().join("fifo.ks"));
    let _sock = std::os::unix::net::UnixListener::bind(d.path().join("sock.ks")).unwrap();
    std::fs::create_dir(d.path().join("dir.ks")).unwrap();
    std::os::unix::fs::symlink("/dev/zero", d.path().join("zero.ks")).unwrap();
    let l = loader(d.path());
    let start = Instant::now();
    for (name, want) in [
        ("fifo.ks", "not a regular file (a FIFO): 'fifo.ks'"),
        ("sock.ks", "not a regular file (a socket): 'sock.ks'"),
        (
            "zero.ks",
            "not a regular file (a character device): 'zero.ks'",
        ),
        (
            "/dev/zero",
            "not a regular file (a character device): '/dev/zero'",
        ),
        ("dir.ks", "[Errno 21] Is a directory: 'dir.ks'"),
        ("none.ks", "[Errno 2] No such file or directory: 'none.ks'"),
    ] {
        assert_eq!(l.read(name).unwrap_err(), want);
    }
    assert!(start.elapsed() < Duration::from_secs(10), "a read blocked");
}

#[test]
fn files_over_the_limit_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let p = d.path().join("big.ks");
    let f = std::fs::File::create(&p).unwrap();
    f.set_len(MAX_FILE_BYTES + 1).unwrap();
    assert_eq!(
        loader(d.path()).read("big.ks").unwrap_err(),
        "larger than the limit of 16 MiB: 'big.ks'"
    );
    f.set_len(MAX_FILE_BYTES).unwrap();
    assert_eq!(
        loader(d.path()).read("big.ks").unwrap().len() as u64,
        MAX_FILE_BYTES
    );
    std::fs::write(&p, "0123456789").unwrap();
    let e = read_regular_file(&p, 9).unwrap_err();
    assert_eq!(e.to_string(), "larger than the limit of 9 bytes");
    assert_eq!(read_regular_file(&p, 10).unwrap(), b"0123456789");
}

#[test]
fn includes_of_special_files_name_the_include_site() {
    let d = tempfile::tempdir().unwrap();
    mkfifo(&d.path().join("fifo.ks"));
    std::fs::write(d.path().join("top.ks"), "lang en_US\n%include inc.ks\n").unwrap();
    std::fs::write(
        d.path().join("inc.ks"),
        "keyboard us\n%include /dev/zero\n%include fifo.ks\n",
    )
    .unwrap();
    let start = Instant::now();
    let r = parse_path(
        "top.ks",
        &Options::validate(Version::devel()),
        &loader(d.path()),
    );
    assert!(start.elapsed() < Duration::from_secs(10));
    // the first unreadable include stops the parse, as pykickstart's missing include does
    assert_eq!(r.diagnostics.len(), 1, "{:?}", r.diagnostics);
    let text = r.diagnostics[0].render();
    assert_eq!(
        text,
        "/dev/zero:0: error: Unable to open input kickstart file: Error opening file: not a regular file (a character device): '/dev/zero'\n  included from inc.ks:2\n  included from top.ks:2"
    );
    std::fs::write(d.path().join("inc.ks"), "%include fifo.ks\n").unwrap();
    let r = parse_path(
        "top.ks",
        &Options::validate(Version::devel()),
        &loader(d.path()),
    );
    let text = r.diagnostics[0].render();
    assert!(
        text.contains("not a regular file (a FIFO): 'fifo.ks'")
            && text.contains("included from inc.ks:1"),
        "{text}"
    );
}
